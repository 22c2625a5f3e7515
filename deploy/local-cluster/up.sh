#!/usr/bin/env bash
# Starts a three-node Gale cluster on this machine, from nothing, on 127.0.0.1:
# 3 etcd members, 3 PostgreSQL 15 servers managed by Patroni (one primary, two
# streaming replicas), HAProxy in front of them and of the Gale webservers, and
# 3 `gale node` processes. Waits until all of it is healthy, prints where
# everything is, and exits; the processes run on in the background until
# down.sh stops them. ctl.sh inspects the cluster and injects failures.
#
# Needs: apt-get install -y patroni etcd-server etcd-client haproxy postgresql-15
#        (plus curl and jq), and a gale binary.
#
# Settings (environment):
#   GALE_CLUSTER_DIR        state directory, default /tmp/gale-cluster: every
#                           data directory, config, log and pid file lives in it
#   GALE_CLUSTER_PORT_BASE  first port, default 25000; the cluster uses B..B+34
#                           (see lib.sh), so bases 100 apart never collide
#   GALE_BIN                the gale binary; default: $CARGO_TARGET_DIR/debug/gale
#                           (or target/debug/gale of this checkout), then the
#                           release build, then `gale` on the PATH
#   GALE_CLUSTER_DB         how Gale reaches PostgreSQL: multihost (default:
#                           postgres://gale@127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/gale,
#                           Gale finds the primary) or haproxy (through HAProxy)
#   GALE_CLUSTER_DAGS       shared (default): every node parses the one DAG folder
#                           <state>/dags, as nodes on separate machines see the
#                           same path (<state>/nodeN/gale/dags links to it);
#                           copies: each node parses its own copy,
#                           <state>/nodeN/gale/dags. Gale tells DAGs apart by file
#                           path, so with copies nodes 2 and 3 report the DAGs
#                           of node 1 as duplicate ids (`gale dags errors`).
#   GALE_CLUSTER_TLS        off (default) or on: PostgreSQL serves TLS with a
#                           certificate up.sh makes (its CA in <state>/tls/ca.crt),
#                           refuses plaintext TCP connections (hostssl), and the
#                           database URL checks the certificate (sslmode=verify-full)
#   GALE_PG_BIN             PostgreSQL binaries, default /usr/lib/postgresql/15/bin
#
# Every TCP connection to PostgreSQL authenticates with scram-sha-256, the
# unix socket too: gale, postgres and replicator get random passwords
# (<state>/secrets/, and <state>/pgpass for psql; `ctl.sh env` exports
# GALE_DATABASE_URL with gale's and PGPASSFILE).
#
# up.sh refuses to start while processes of a cluster in the same directory
# run. A stopped cluster's directory (left by down.sh without --purge) is
# removed and started afresh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1:-} in
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
"") ;;
*) die "up.sh takes no arguments (settings are environment variables; see --help)" ;;
esac

T0=$SECONDS

# ---------------------------------------------------------------- preflight

live=()
if [[ -d $RUN ]]; then
    for name in $(lc_names); do
        pid=$(pid_of "$name") && live+=("$name=$pid")
    done
fi
for n in "${NODES[@]}"; do
    pid=$(postmaster_pid "$n") && live+=("postgres$n=$pid")
done
if ((${#live[@]})); then
    die "a cluster in $STATE is running (${live[*]}): stop it with down.sh first, or use another GALE_CLUSTER_DIR and GALE_CLUSTER_PORT_BASE"
fi

if [[ -d $STATE ]] && [[ -n $(ls -A "$STATE") ]]; then
    [[ -f $MARKER ]] || die "$STATE exists and is not a local cluster's state directory: choose another GALE_CLUSTER_DIR"
    log "removing the stopped cluster's state in $STATE"
    rm -rf "$STATE"
fi

lc_defaults
lc_ports
if ! "$GALE_BIN" users --help >/dev/null 2>&1 || ! "$GALE_BIN" node --help >/dev/null 2>&1; then
    die "$GALE_BIN is too old (no 'gale users' or 'gale node'): rebuild it, or set GALE_BIN"
fi

tools=(etcd etcdctl patroni patronictl haproxy curl jq)
[[ $TLS == on ]] && tools+=(openssl)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y patroni etcd-server etcd-client haproxy curl jq"
done
# Patroni before 3.0.3 lets a primary that stalled past its leader key's TTL
# (a paused VM, SIGSTOP) take the key back when it thaws, after another node
# was promoted: that node is rewound and what it acknowledged is lost
# (docs/ha.md). Without a watchdog (none here) only a newer Patroni prevents it.
patroni_version=$(patroni --version 2>/dev/null | awk '{print $2}')
if [[ $(printf '%s\n' "$patroni_version" 3.0.3 | sort -V | head -n1) != 3.0.3 ]]; then
    log "WARNING: Patroni ${patroni_version:-of unknown version} (before 3.0.3) may discard acknowledged writes when a stalled primary thaws; see docs/ha.md (pip install 'patroni[etcd3]==3.0.4' psycopg2-binary)"
fi
[[ -x $PG_BIN/postgres && -x $PG_BIN/psql ]] || die "no PostgreSQL in $PG_BIN: apt-get install -y postgresql-15, or set GALE_PG_BIN"
if ((EUID == 0)); then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (PostgreSQL refuses to run as root)"
    command -v setpriv >/dev/null || die "setpriv is missing (util-linux)"
fi

busy=()
for p in $(lc_all_ports); do
    if [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then busy+=("$p"); fi
done
((${#busy[@]} == 0)) || die "ports in use: ${busy[*]} (set GALE_CLUSTER_PORT_BASE to another base, e.g. $((PORT_BASE + 100)))"

# From here on, a failure leaves what started running, for its logs: say how to stop it.
trap 'rc=$?; ((rc == 0)) || log "up.sh failed; logs are under $STATE; stop what started with: $LC_LIB_DIR/down.sh"' EXIT

# ---------------------------------------------------------------- files

mkdir -p "$STATE" "$RUN" "$STATE/haproxy" "$STATE/dags" "$STATE/bin"
chmod 755 "$STATE"
touch "$MARKER"
# The cluster runs a copy of the binary, so a rebuild does not swap it under
# running nodes (ctl.sh start-gale starts the same version).
cp "$GALE_BIN" "$STATE/bin/gale"
GALE_BIN_SOURCE=$GALE_BIN
GALE_BIN=$STATE/bin/gale
{
    echo "# written by up.sh on $(date -u +%FT%TZ); read by ctl.sh and down.sh"
    printf 'PORT_BASE=%q\nPG_BIN=%q\nDB_MODE=%q\nDAGS_MODE=%q\nTLS=%q\nGALE_BIN=%q\nGALE_BIN_SOURCE=%q\n' \
        "$PORT_BASE" "$PG_BIN" "$DB_MODE" "$DAGS_MODE" "$TLS" "$GALE_BIN" "$GALE_BIN_SOURCE"
} >"$STATE/cluster.env"

# The roles' passwords. Patroni (as postgres) reads them from its own
# config; post_bootstrap.sh reads gale's from secrets/.
(umask 077 && mkdir -p "$STATE/secrets")
for role in gale postgres replicator; do
    (umask 077 && random_password >"$STATE/secrets/$role")
done
(umask 077 && printf '127.0.0.1:*:*:%s:%s\n' \
    gale "$(<"$STATE/secrets/gale")" postgres "$(<"$STATE/secrets/postgres")" >"$STATE/pgpass")
((EUID == 0)) && chown -R postgres:postgres "$STATE/secrets"
lc_urls

if [[ $TLS == on ]]; then
    # One CA, and one server certificate for every node (all on 127.0.0.1).
    log "making a CA and a server certificate for 127.0.0.1 in $STATE/tls"
    mkdir -p "$STATE/tls"
    (
        cd "$STATE/tls"
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
            -subj "/CN=gale local cluster CA $PORT_BASE" -keyout ca.key -out ca.crt \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
        printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature \
            extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
            -extfile server.ext -out server.crt 2>/dev/null
        chmod 644 ca.crt server.crt
        rm -f server.csr server.ext ca.srl
    ) || die "openssl could not make the certificates"
    # PostgreSQL refuses a key that others can read or that it does not own.
    ((EUID == 0)) && chown postgres:postgres "$STATE/tls/server.key" "$STATE/tls/server.crt"
    chmod 755 "$STATE/tls"
fi

cat >"$STATE/post_bootstrap.sh" <<EOF
#!/bin/sh
# Run by Patroni once, on the node that initialises the cluster, with a
# superuser connection string as its argument: creates Gale's role (its
# password read from secrets/, never on a command line) and database.
set -e
GALE_DB_PASSWORD=\$(cat "$STATE/secrets/gale")
export GALE_DB_PASSWORD
"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 "\$1" <<'SQL'
\\getenv pw GALE_DB_PASSWORD
CREATE ROLE gale LOGIN PASSWORD :'pw';
CREATE DATABASE gale OWNER gale;
SQL
EOF
chmod 755 "$STATE/post_bootstrap.sh"

# pg_hba.conf of every node. Nothing is trusted: local connections (Patroni's
# own, as postgres) prove the superuser's password as TCP ones do. With TLS,
# TCP connections must use it (hostssl).
host=host
[[ $TLS == on ]] && host=hostssl
tls_params=""
if [[ $TLS == on ]]; then
    tls_params="    ssl: \"on\"
    ssl_cert_file: $STATE/tls/server.crt
    ssl_key_file: $STATE/tls/server.key"
fi

etcd_hosts=127.0.0.1:${ETCD_CLIENT[1]},127.0.0.1:${ETCD_CLIENT[2]},127.0.0.1:${ETCD_CLIENT[3]}
for n in "${NODES[@]}"; do
    d="$STATE/node$n/pg"
    mkdir -p "$d" "$STATE/node$n/etcd" "$STATE/node$n/gale"
    cat >"$d/patroni.yml" <<EOF
# Patroni for node $n of the local cluster (written by up.sh; see
# deploy/patroni/patroni.yml for the documented template).
scope: gale-local-$PORT_BASE
namespace: /gale/
name: pg$n

restapi:
  listen: 127.0.0.1:${REST_PORT[n]}
  connect_address: 127.0.0.1:${REST_PORT[n]}

etcd3:
  hosts: $etcd_hosts

bootstrap:
  dcs:
    # A dead primary's leader key expires after ttl; then a replica is promoted.
    # loop_wait + 2 * retry_timeout must not exceed ttl.
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    # A commit waits for the synchronous standby: a failover loses nothing.
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 200
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
  # initdb's own pg_hba.conf lines ask for passwords too (Patroni rewrites the
  # file from postgresql.pg_hba below at every start).
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
    - auth-local: scram-sha-256
    - auth-host: scram-sha-256
  post_bootstrap: $STATE/post_bootstrap.sh

postgresql:
  listen: 127.0.0.1:${PG_PORT[n]}
  connect_address: 127.0.0.1:${PG_PORT[n]}
  data_dir: $d/data
  bin_dir: $PG_BIN
  pgpass: $d/pgpass
  # A new replica copies the primary with pg_basebackup; without a fast
  # checkpoint the copy waits for a spread one (minutes).
  basebackup:
    - checkpoint: fast
  authentication:
    superuser:
      username: postgres
      password: $(<"$STATE/secrets/postgres")
    replication:
      username: replicator
      password: $(<"$STATE/secrets/replicator")
  # The whole of pg_hba.conf, written by Patroni at every start.
  pg_hba:
    - local all all scram-sha-256
    - $host all all 127.0.0.1/32 scram-sha-256
    - $host replication replicator 127.0.0.1/32 scram-sha-256
  parameters:
    password_encryption: scram-sha-256
$tls_params
    unix_socket_directories: $d
    logging_collector: "on"
    log_directory: $d/log
    log_filename: postgresql.log
    log_line_prefix: "%m [%p] %q%u@%d "

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
    chmod 600 "$d/patroni.yml"
    ((EUID == 0)) && chown -R postgres:postgres "$d"
done

cat >"$STATE/haproxy/haproxy.cfg" <<EOF
# HAProxy for the local cluster (written by up.sh; see deploy/haproxy/haproxy.cfg).
global
    maxconn 2000
    log stdout format raw local0 info

defaults
    log global
    option dontlognull
    retries 2
    timeout connect 300ms
    timeout check 1s
    timeout client 30m
    timeout server 30m

# PostgreSQL: only the Patroni primary answers 200 on /primary.
listen postgres
    bind 127.0.0.1:$HA_PG_PORT
    mode tcp
    option tcplog
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 500ms fastinter 200ms downinter 200ms fall 2 rise 1 on-marked-down shutdown-sessions
    server pg1 127.0.0.1:${PG_PORT[1]} check port ${REST_PORT[1]}
    server pg2 127.0.0.1:${PG_PORT[2]} check port ${REST_PORT[2]}
    server pg3 127.0.0.1:${PG_PORT[3]} check port ${REST_PORT[3]}

# Gale's web UI and API: any node; /health is 200 only when the node reaches
# the database and a scheduler is alive.
listen gale
    bind 127.0.0.1:$HA_HTTP_PORT
    mode http
    option httplog
    balance roundrobin
    option redispatch
    retries 2
    timeout client 60s
    timeout server 60s
    option httpchk GET /health
    http-check expect status 200
    default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 1
    server gale1 127.0.0.1:${GALE_PORT[1]} check
    server gale2 127.0.0.1:${GALE_PORT[2]} check
    server gale3 127.0.0.1:${GALE_PORT[3]} check

listen stats
    bind 127.0.0.1:$HA_STATS_PORT
    mode http
    timeout client 60s
    timeout server 60s
    stats enable
    stats uri /
    stats refresh 2s
EOF

# The DAG folder the nodes parse (with GALE_CLUSTER_DAGS=copies, each node
# parses a copy of its own).
cat >"$STATE/dags/cluster_hello.yaml" <<'EOF'
# Manual: gale dags trigger cluster_hello --wait
description: Three tasks in a row; each says which Gale node ran it.
params:
  name: world
tags: [local-cluster]
tasks:
  greet:
    run: |
      # The task runs in its node's GALE_HOME, <state>/nodeN/gale.
      echo "hello, {{ params.name }}, from $(basename "$(dirname "$PWD")"), pid $$"
      echo "greeting=hello {{ params.name }}" >> "$GALE_OUTPUT"
  relay:
    needs: [greet]
    run: echo "relaying {{ tasks.greet.outputs.greeting | shell_quote }}"
  done:
    needs: [relay]
    run: echo "run {{ run_id }} done"
EOF
cat >"$STATE/dags/cluster_fanout.yaml" <<'EOF'
# Manual: 12 parallel tasks of about {{ params.seconds }} s each, then a join;
# spreads over every worker of the cluster. Used for failure injection.
description: Fan out to 12 sleeping tasks, then join.
params:
  seconds: 2
max_active_tasks: 32
tags: [local-cluster]
defaults:
  retries: 3
  retry_delay: 1s
tasks:
  t01: { run: "sleep {{ params.seconds }}" }
  t02: { run: "sleep {{ params.seconds }}" }
  t03: { run: "sleep {{ params.seconds }}" }
  t04: { run: "sleep {{ params.seconds }}" }
  t05: { run: "sleep {{ params.seconds }}" }
  t06: { run: "sleep {{ params.seconds }}" }
  t07: { run: "sleep {{ params.seconds }}" }
  t08: { run: "sleep {{ params.seconds }}" }
  t09: { run: "sleep {{ params.seconds }}" }
  t10: { run: "sleep {{ params.seconds }}" }
  t11: { run: "sleep {{ params.seconds }}" }
  t12: { run: "sleep {{ params.seconds }}" }
  join:
    needs: [t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, t12]
    run: echo joined
EOF
"$GALE_BIN" dags validate "$STATE/dags" >/dev/null
# Either way each node has nodeN/gale/dags: its copy, or a link to the shared folder.
for n in "${NODES[@]}"; do
    if [[ $DAGS_MODE == copies ]]; then
        cp -R "$STATE/dags" "$STATE/node$n/gale/dags"
    else
        ln -s ../../dags "$STATE/node$n/gale/dags"
    fi
done

# ---------------------------------------------------------------- etcd

log "starting etcd on ports ${ETCD_CLIENT[*]}"
for n in "${NODES[@]}"; do start_etcd "$n"; done
etcd_healthy() { ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" --command-timeout=2s endpoint health; }
wait_for "etcd to be healthy" 60 etcd_healthy

# ---------------------------------------------------------------- Patroni + PostgreSQL

log "starting Patroni (PostgreSQL on ports ${PG_PORT[*]}, REST on ${REST_PORT[*]})"
for n in "${NODES[@]}"; do start_patroni "$n"; done
wait_for "a Patroni leader and two streaming replicas" 180 primary_with_replicas
leader=$(leader_name)
gale_db_ready() { [[ $(psql_node "${leader#pg}" "SELECT count(*) FROM pg_database WHERE datname = 'gale'") == 1 ]]; }
wait_for "the gale database (post_bootstrap)" 60 gale_db_ready
log "primary: $leader; replicas streaming"
# A task on this machine that knows the ports but no password gets nothing.
for n in "${NODES[@]}"; do
    for role in gale postgres; do
        refuses_without_password "${PG_PORT[n]}" "$role" ||
            die "node $n's PostgreSQL must refuse $role without a password (see its pg_hba.conf)"
    done
done

# ---------------------------------------------------------------- HAProxy

log "starting HAProxy (PostgreSQL $HA_PG_PORT, HTTP $HA_HTTP_PORT, stats $HA_STATS_PORT)"
start_haproxy
haproxy_pg() {
    [[ $(PGPASSFILE=$STATE/pgpass PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -h 127.0.0.1 -p "$HA_PG_PORT" -U gale -d gale -XAtqc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null) == t ]]
}
wait_for "HAProxy to route to the primary" 30 haproxy_pg

# ---------------------------------------------------------------- Gale

log "creating Gale's schema, the admin user and an API token"
wait_for "gale db migrate" 60 gale_cli db migrate
admin_pw=$(gale_cli users create admin --role admin 2>/dev/null)
[[ -n $admin_pw ]] || die "gale users create admin printed no password"
(umask 077 && printf '%s\n' "$admin_pw" >"$STATE/admin-password")
token=$(gale_cli tokens create --user admin --name local-cluster 2>/dev/null)
[[ -n $token ]] || die "gale tokens create printed no token"
(umask 077 && printf '%s\n' "$token" >"$STATE/admin-token")

log "starting 3 Gale nodes (web on ports ${GALE_PORT[*]})"
for n in "${NODES[@]}"; do start_gale "$n"; done
wait_for "3 running Gale nodes in gale cluster status" 90 gale_nodes_running 3
gale_http() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$HA_HTTP_PORT/health"; }
wait_for "Gale's /health through HAProxy" 60 gale_http
all_dags() {
    [[ $(curl -fsS --max-time 2 -H "Authorization: Bearer $token" "http://127.0.0.1:$HA_HTTP_PORT/api/v1/dags" |
        jq '[.. | objects | select(has("dag_id")) | .dag_id] | unique | length') -ge 2 ]]
}
wait_for "the DAGs to be loaded" 30 all_dags || log "warning: the DAGs are not listed yet (see gale dags errors)"

took=$((SECONDS - T0))
cat <<EOF

Gale cluster up in ${took}s; state in $STATE

  Web UI and API    http://127.0.0.1:$HA_HTTP_PORT/   (HAProxy, round-robin over the nodes)
  Gale nodes        http://127.0.0.1:${GALE_PORT[1]}/  http://127.0.0.1:${GALE_PORT[2]}/  http://127.0.0.1:${GALE_PORT[3]}/
  HAProxy stats     http://127.0.0.1:$HA_STATS_PORT/
  Login             admin / $admin_pw   (also in $STATE/admin-password)
  API token         in $STATE/admin-token   (Authorization: Bearer ...)
  DAG folder        $( [[ $DAGS_MODE == copies ]] && echo "a copy per node: $STATE/nodeN/gale/dags" || echo "$STATE/dags (every node)")
  Database URL      $SHOWN_URL
  via HAProxy       $SHOWN_HAPROXY_URL
  Passwords         $STATE/secrets/ (gale, postgres, replicator); psql: PGPASSFILE=$STATE/pgpass
  PostgreSQL        ${PG_PORT[*]} (Patroni REST ${REST_PORT[*]}); primary now: $leader
  etcd              $ETCD_ENDPOINTS

  eval "\$(GALE_CLUSTER_DIR=$STATE $LC_LIB_DIR/ctl.sh env)"   # GALE_DATABASE_URL (with gale's password), PGPASSFILE, ...
  $GALE_BIN cluster status
  $GALE_BIN dags trigger cluster_hello --wait
  curl -H "Authorization: Bearer \$(cat $STATE/admin-token)" -H 'Content-Type: application/json' \\
       -d '{"conf": {"name": "you"}}' http://127.0.0.1:$HA_HTTP_PORT/api/v1/dags/cluster_hello/runs
  $LC_LIB_DIR/ctl.sh status        # Patroni and Gale side by side; ctl.sh help for failures to inject
  $LC_LIB_DIR/down.sh [--purge]    # stop everything (--purge: and remove $STATE)

  (gale is a copy of $GALE_BIN_SOURCE)
EOF
