# shellcheck shell=bash disable=SC2034
# (SC2034: the variables set here are used by the scripts that source this.)
# Shared by up.sh, down.sh and ctl.sh: the layout of one local cluster, and how
# each of its processes is started, found and stopped. Sourced, not run.
#
# Everything lives under one state directory, $GALE_CLUSTER_DIR
# (default /tmp/gale-cluster):
#
#   cluster.env              the settings up.sh used (ports, binaries, TLS); no secret
#   secrets/                 the passwords of the database roles gale, postgres
#                            (superuser) and replicator, one file each (mode 600)
#   pgpass                   libpq's password file for psql as gale or postgres
#                            (PGPASSFILE; `ctl.sh env` exports it)
#   tls/                     with GALE_CLUSTER_TLS=on: ca.crt, the CA that signed
#                            server.crt (for 127.0.0.1 and localhost), which every
#                            PostgreSQL serves; sslrootcert= of the database URL
#   bin/gale                 the gale binary the cluster runs (a copy: rebuilding
#                            the source binary does not change a running cluster)
#   admin-password, admin-token
#   run/*.pid                one pid file per process up.sh started
#   dags/                    the DAG folder of every Gale node (GALE_CLUSTER_DAGS=copies:
#                            each node parses its own copy, nodeN/gale/dags)
#   haproxy/                 haproxy.cfg, haproxy.log
#   nodeN/etcd/              data, etcd.log                        (N = 1, 2, 3)
#   nodeN/pg/                patroni.yml, patroni.log, data/, log/ (PostgreSQL's own logs)
#   nodeN/gale/              GALE_HOME, gale.log, dags/ (a link to ../../dags, or
#                            the node's own copy with copies)
#
# Ports, from GALE_CLUSTER_PORT_BASE (B, default 25000), all on 127.0.0.1:
#   B+0  HAProxy: PostgreSQL, routed to the Patroni primary
#   B+1  HAProxy: HTTP, round-robin over the Gale webservers
#   B+2  HAProxy: stats page
#   B+10N+0  etcd client     B+10N+1  etcd peer      B+10N+2  PostgreSQL
#   B+10N+3  Patroni REST    B+10N+4  Gale web UI and API
# so node 1 uses 25010-25014, node 2 25020-25024, node 3 25030-25034.

# haproxy lives in /usr/sbin, which an ordinary user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin
LC_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LC_REPO_ROOT=$(cd "$LC_LIB_DIR/../.." && pwd)

STATE=${GALE_CLUSTER_DIR:-/tmp/gale-cluster}
STATE=${STATE%/}
RUN="$STATE/run"
NODES=(1 2 3)
MARKER="$STATE/.gale-local-cluster"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2 || true; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- settings

# Sets the defaults of everything up.sh records in cluster.env.
lc_defaults() {
    PORT_BASE=${GALE_CLUSTER_PORT_BASE:-25000}
    if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || ((PORT_BASE < 1024 || PORT_BASE > 65500)); then
        die "GALE_CLUSTER_PORT_BASE must be a number between 1024 and 65500 (got '$PORT_BASE')"
    fi
    PG_BIN=${GALE_PG_BIN:-/usr/lib/postgresql/15/bin}
    DAGS_MODE=${GALE_CLUSTER_DAGS:-shared}
    case $DAGS_MODE in shared | copies) ;; *) die "GALE_CLUSTER_DAGS must be shared or copies (got '$DAGS_MODE')" ;; esac
    DB_MODE=${GALE_CLUSTER_DB:-multihost}
    case $DB_MODE in multihost | haproxy) ;; *) die "GALE_CLUSTER_DB must be multihost or haproxy (got '$DB_MODE')" ;; esac
    TLS=${GALE_CLUSTER_TLS:-off}
    case $TLS in on | off) ;; *) die "GALE_CLUSTER_TLS must be on or off (got '$TLS')" ;; esac
    GALE_BIN=${GALE_BIN:-$(lc_find_gale)}
    [[ $GALE_BIN = */* ]] || GALE_BIN=$(command -v "$GALE_BIN" || true)
    [[ -x $GALE_BIN ]] || die "no gale binary: build it (cargo build -p gale) or set GALE_BIN=/path/to/gale"
    GALE_BIN=$(cd "$(dirname "$GALE_BIN")" && pwd)/$(basename "$GALE_BIN")
}

# GALE_BIN unset: the debug build, then the release build of this checkout
# (under $CARGO_TARGET_DIR or target/), then `gale` on the PATH.
lc_find_gale() {
    local t=${CARGO_TARGET_DIR:-$LC_REPO_ROOT/target} p
    for p in "$t/debug/gale" "$t/release/gale"; do
        [[ -x $p ]] && { echo "$p"; return; }
    done
    command -v gale || echo "$t/debug/gale"
}

# Loads the settings of the cluster in $STATE (written by up.sh).
lc_load() {
    [[ -f $STATE/cluster.env ]] || die "no cluster in $STATE (no cluster.env): start one with up.sh, or set GALE_CLUSTER_DIR"
    # shellcheck disable=SC1091
    source "$STATE/cluster.env"
    # A cluster.env without DAGS_MODE was written when every node had a copy.
    DAGS_MODE=${DAGS_MODE:-copies}
    TLS=${TLS:-off}
    lc_ports
}

lc_ports() {
    HA_PG_PORT=$((PORT_BASE + 0))
    HA_HTTP_PORT=$((PORT_BASE + 1))
    HA_STATS_PORT=$((PORT_BASE + 2))
    local n
    for n in "${NODES[@]}"; do
        ETCD_CLIENT[n]=$((PORT_BASE + 10 * n + 0))
        ETCD_PEER[n]=$((PORT_BASE + 10 * n + 1))
        PG_PORT[n]=$((PORT_BASE + 10 * n + 2))
        REST_PORT[n]=$((PORT_BASE + 10 * n + 3))
        GALE_PORT[n]=$((PORT_BASE + 10 * n + 4))
    done
    ETCD_ENDPOINTS=http://127.0.0.1:${ETCD_CLIENT[1]},http://127.0.0.1:${ETCD_CLIENT[2]},http://127.0.0.1:${ETCD_CLIENT[3]}
    lc_urls
}

# The database URLs, with gale's password (once secrets/ has it) and, with
# TLS on, the CA that the server's certificate must chain to and name
# 127.0.0.1 in (verify-full).
lc_urls() {
    local creds=gale query=""
    [[ -f $STATE/secrets/gale ]] && creds="gale:$(<"$STATE/secrets/gale")"
    [[ ${TLS:-off} == on ]] && query="?sslmode=verify-full&sslrootcert=$STATE/tls/ca.crt"
    MULTIHOST_URL="postgres://$creds@127.0.0.1:${PG_PORT[1]},127.0.0.1:${PG_PORT[2]},127.0.0.1:${PG_PORT[3]}/gale$query"
    HAPROXY_URL="postgres://$creds@127.0.0.1:${HA_PG_PORT}/gale$query"
    if [[ ${DB_MODE:-multihost} == haproxy ]]; then DATABASE_URL=$HAPROXY_URL; else DATABASE_URL=$MULTIHOST_URL; fi
    # The same URLs with the password hidden, for what is printed.
    SHOWN_URL=${DATABASE_URL/$creds@/gale:***@}
    SHOWN_HAPROXY_URL=${HAPROXY_URL/$creds@/gale:***@}
}

# A random password: 32 hex digits (URL- and SQL-safe as they are).
random_password() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

lc_all_ports() {
    local n
    echo "$HA_PG_PORT" "$HA_HTTP_PORT" "$HA_STATS_PORT"
    for n in "${NODES[@]}"; do
        echo "${ETCD_CLIENT[n]}" "${ETCD_PEER[n]}" "${PG_PORT[n]}" "${REST_PORT[n]}" "${GALE_PORT[n]}"
    done
}

# ---------------------------------------------------------------- processes

# alive PID: the process exists and is not a zombie.
alive() {
    local pid=$1 st
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# ours PID: alive, and its command line names the state directory (so a pid
# that was reused by an unrelated process is never signalled).
ours() {
    local pid=$1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STATE/"
}

pidfile() { echo "$RUN/$1.pid"; }

# pid_of NAME: the pid recorded for NAME (etcd1, patroni2, gale3, haproxy), if ours and alive.
pid_of() {
    local f pid
    f=$(pidfile "$1")
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    ours "$pid" || return 1
    echo "$pid"
}

# postmaster_pid N: the running postmaster of node N, from its data directory.
postmaster_pid() {
    local f="$STATE/node$1/pg/data/postmaster.pid" pid
    [[ -f $f ]] || return 1
    pid=$(head -n1 "$f" 2>/dev/null) || return 1
    ours "$pid" || return 1
    echo "$pid"
}

# server_children PID: the processes postmaster PID forked (backends,
# walsenders, background workers). Each calls setsid(), so they are not in
# the postmaster's process group: signalling the group reaches none of them.
server_children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# signal_server SIG PID: SIG to postmaster PID and every child of it. STOP
# stops the postmaster first (then it forks no more) and sweeps its children
# twice (one forked in between); CONT resumes the children first.
signal_server() {
    local sig=$1 pm=$2 c
    case $sig in
    CONT)
        for c in $(server_children "$pm"); do kill -CONT "$c" 2>/dev/null || true; done
        kill -CONT "$pm"
        ;;
    *)
        kill "-$sig" "$pm"
        for c in $(server_children "$pm") $(server_children "$pm"); do kill "-$sig" "$c" 2>/dev/null || true; done
        ;;
    esac
}

# Every name that may have a pid file.
lc_names() {
    local n
    for n in "${NODES[@]}"; do echo "gale$n"; done
    echo haproxy
    for n in "${NODES[@]}"; do echo "patroni$n"; done
    for n in "${NODES[@]}"; do echo "etcd$n"; done
}

# spawn NAME LOGFILE CMD...: runs CMD detached (own session, working
# directory $STATE, stdin from /dev/null, output appended to LOGFILE) and
# records its pid in run/NAME.pid. In a script without job control a
# background job is not a process group leader, so setsid does not fork, and
# the subshell execs it: $! is the pid of CMD itself.
spawn() {
    local name=$1 logf=$2
    shift 2
    mkdir -p "$RUN"
    (cd "$STATE" && exec setsid "$@" </dev/null >>"$logf" 2>&1) &
    local pid=$!
    echo "$pid" >"$(pidfile "$name")"
    sleep 0.2
    alive "$pid" || { tail -n 20 "$logf" >&2; die "$name exited at once (log: $logf)"; }
}

# AS_POSTGRES: the prefix that runs a command as the postgres user when we are
# root (PostgreSQL refuses to run as root), so Patroni and the PostgreSQL it
# starts run as postgres; empty otherwise. Each part execs the next, so the
# pid spawn records is the command's own.
if ((EUID == 0)); then
    AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --
        env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/var/lib/postgresql)
else
    AS_POSTGRES=()
fi

# stop_pid NAME PID TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S, then SIGKILL.
stop_pid() {
    alive "$2" || return 0
    kill -TERM "$2" 2>/dev/null || true
    wait_gone "$@"
}

# wait_gone NAME PID TIMEOUT_S: wait up to TIMEOUT_S for a process that was
# sent SIGTERM to exit, then SIGKILL it. (Never a second SIGTERM: Gale takes
# that as "stop at once, do not drain".)
wait_gone() {
    local name=$1 pid=$2 timeout=$3 i
    for ((i = 0; i < timeout * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) still running after ${timeout}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) survived SIGKILL"
    return 1
}

# kill_session SID: SIGKILL whatever is left in the session a spawned process
# led (its helpers, e.g. Gale's task guard). Sessions come from our pid files.
kill_session() {
    local sid=$1 p
    for p in $(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s && $1 != s {print $1}'); do
        alive "$p" && kill -KILL "$p" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------- components

start_etcd() {
    local n=$1 initial="" m
    for m in "${NODES[@]}"; do initial+="${initial:+,}etcd$m=http://127.0.0.1:${ETCD_PEER[m]}"; done
    mkdir -p "$STATE/node$n/etcd"
    spawn "etcd$n" "$STATE/node$n/etcd/etcd.log" \
        etcd --name "etcd$n" --data-dir "$STATE/node$n/etcd/data" \
        --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[n]}" \
        --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[n]}" \
        --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[n]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[n]}" \
        --initial-cluster "$initial" --initial-cluster-state new \
        --initial-cluster-token "gale-local-$PORT_BASE"
}

start_patroni() {
    local n=$1
    # By its full path: AS_POSTGRES resets PATH, and a newer Patroni may be
    # installed outside it (docs/ha.md: 3.0.3 or later).
    spawn "patroni$n" "$STATE/node$n/pg/patroni.log" "${AS_POSTGRES[@]}" "$(command -v patroni)" "$STATE/node$n/pg/patroni.yml"
}

start_haproxy() {
    spawn haproxy "$STATE/haproxy/haproxy.log" haproxy -db -f "$STATE/haproxy/haproxy.cfg"
}

# Gale node N: home (and task working directory) nodeN/gale, log
# nodeN/gale/gale.log, DAG folder dags/ (shared) or nodeN/gale/dags (copies).
start_gale() {
    local n=$1
    local d="$STATE/node$n/gale" dags="$STATE/dags"
    [[ $DAGS_MODE == copies ]] && dags="$STATE/node$n/gale/dags"
    mkdir -p "$d"
    spawn "gale$n" "$d/gale.log" env GALE_DATABASE_URL="$DATABASE_URL" GALE_HOME="$d" \
        "$GALE_BIN" node --home "$d" --dags-folder "$dags" \
        --bind 127.0.0.1 --port "${GALE_PORT[n]}"
}

# gale_cli ARGS...: the gale CLI against this cluster's database (the URL,
# which holds a password, in the environment: a command line is public).
gale_cli() { GALE_DATABASE_URL=$DATABASE_URL "$GALE_BIN" "$@"; }

patronictl_() { patronictl -c "$STATE/node1/pg/patroni.yml" "$@"; }

# ---------------------------------------------------------------- queries

# cluster_json: Patroni's view of the cluster, from the first REST API that answers.
cluster_json() {
    local n
    for n in "${NODES[@]}"; do
        curl -fsS --max-time 1 "http://127.0.0.1:${REST_PORT[n]}/cluster" 2>/dev/null && return 0
    done
    return 1
}

# leader_name: pgN of the current Patroni leader (primary).
leader_name() {
    cluster_json | jq -er '.members[] | select(.role == "leader") | .name'
}

# psql_node N SQL: one value from node N's PostgreSQL, as the superuser (its
# password from the cluster's pgpass).
psql_node() {
    PGPASSFILE=$STATE/pgpass PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -h 127.0.0.1 -p "${PG_PORT[$1]}" -U postgres -d postgres -XAtqc "$2" 2>/dev/null
}

# refuses_without_password PORT USER: a TCP connection as USER with no
# password (no pgpass, none in the environment) is refused for want of one.
refuses_without_password() {
    local out
    if out=$(env -u PGPASSWORD PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -w -h 127.0.0.1 -p "$1" -U "$2" -d postgres -XAtqc 'SELECT 1' 2>&1); then
        log "PostgreSQL on port $1 let $2 in without a password"
        return 1
    fi
    [[ $out == *"no password supplied"* || $out == *"password authentication failed"* ]] || {
        log "PostgreSQL on port $1 refused $2 for another reason: $out"
        return 1
    }
}

# streaming_replicas N: how many standbys stream from node N.
streaming_replicas() {
    psql_node "$1" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
}

# running_gale_nodes: the Gale processes of our pid files that `gale cluster
# status` shows running (a process killed moments ago still looks running
# until its heartbeat is 10 s old; it is not counted).
running_gale_nodes() {
    local pids="" n p
    for n in "${NODES[@]}"; do
        p=$(pid_of "gale$n") && pids+="${pids:+,}$p"
    done
    gale_cli -o json cluster status 2>/dev/null |
        jq -e --argjson pids "[$pids]" '[.nodes[] | select(.health == "running" and (.pid as $p | $pids | index($p)))] | length'
}

# wait_for WHAT TIMEOUT_S CMD...: retry CMD every 0.5 s until it succeeds.
wait_for() {
    local what=$1 timeout=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - start < timeout)) || { log "timed out after ${timeout}s waiting for $what"; return 1; }
        sleep 0.5
    done
}

# primary_with_replicas: Patroni has a leader whose PostgreSQL is a primary
# with two standbys streaming from it, Patroni reports those two as running
# replicas (its member state trails the server's by a loop or so), and one of
# them as the synchronous standby. Until a new leader has named one (a few
# seconds after a failover), Patroni promotes no one if that leader dies too:
# no replica is known to hold every acknowledged commit.
primary_with_replicas() {
    local json leader n want=$((${#NODES[@]} - 1))
    json=$(cluster_json) || return 1
    leader=$(jq -er '.members[] | select(.role == "leader" and .state == "running") | .name' <<<"$json") || return 1
    [[ $(jq '[.members[] | select((.role == "replica" or .role == "sync_standby") and (.state == "running" or .state == "streaming"))] | length' <<<"$json") == "$want" ]] || return 1
    [[ $(jq '[.members[] | select(.role == "sync_standby")] | length' <<<"$json") == 1 ]] || return 1
    n=${leader#pg}
    [[ $(psql_node "$n" "SELECT NOT pg_is_in_recovery()") == t ]] || return 1
    [[ $(streaming_replicas "$n") == "$want" ]]
}

gale_nodes_running() { [[ $(running_gale_nodes) == "${1:-${#NODES[@]}}" ]]; }
