#!/usr/bin/env bash
# Looks at and breaks the local cluster that up.sh started (GALE_CLUSTER_DIR,
# default /tmp/gale-cluster). Every process is found through its pid file.
# Nodes are numbered 1, 2, 3; node N runs etcdN, Patroni pgN and Gale galeN.
#
#   status             Patroni's members, Gale's processes, and every pid
#   primary            the current primary: "pgN PORT" (from Patroni)
#   env                export lines for this cluster (eval "$(ctl.sh env)"):
#                      GALE_DATABASE_URL (with gale's password), PGPASSFILE for psql
#   wait [SECONDS]     until a primary with 2 streaming replicas (one synchronous) and 3 running
#                      Gale nodes exist (default 120 s); exit 1 on timeout
#   kill-gale N        SIGKILL Gale node N (its task guard kills its tasks)
#   stop-gale N        SIGTERM Gale node N and wait: it drains, then exits
#   start-gale N       start Gale node N again
#   freeze-gale N      SIGSTOP Gale node N (its task guard runs on and kills its
#                      tasks at their fence deadline)
#   thaw-gale N        SIGCONT Gale node N
#   kill-patroni N     SIGKILL Patroni of node N. Its PostgreSQL keeps running and,
#                      if it was the primary, stays writable to direct
#                      connections after a replica is promoted (no watchdog):
#                      the multi-host URL may then reach two primaries.
#                      kill-db is the realistic "database host died".
#   kill-postgres N    SIGKILL the PostgreSQL of node N (postmaster and children);
#                      Patroni restarts it (and keeps the leader key if it can)
#   kill-db N          SIGKILL Patroni and PostgreSQL of node N, as a crashed host
#   freeze-db N        SIGSTOP Patroni and PostgreSQL (postmaster and backends) of
#                      node N, as a stalled host: connections to it stay open and
#                      nothing answers. (A PostgreSQL frozen under a running
#                      Patroni 3.0 is never failed over: Patroni keeps the leader
#                      key while the postmaster's pid exists.)
#   thaw-db N          SIGCONT PostgreSQL, then Patroni, of node N
#   freeze-postgres N  SIGSTOP the PostgreSQL of node N alone (Patroni 3.0 keeps
#                      the leader key: an outage until it thaws, no failover)
#   thaw-postgres N    SIGCONT the PostgreSQL of node N
#   start-patroni N    start Patroni of node N again (it rejoins, rewinding if needed)
#   stop-patroni N     SIGTERM Patroni of node N (stops its PostgreSQL cleanly)
#   switchover [pgN]   planned switchover to pgN (default: the synchronous standby);
#                      exit 1 unless pgN leads within 60 s (Patroni may refuse)
#   stop-etcd N        SIGTERM etcd member N
#   kill-etcd N        SIGKILL etcd member N
#   start-etcd N       start etcd member N again
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

node_arg() {
    [[ ${1:-} =~ ^[123]$ ]] || die "give a node number: 1, 2 or 3"
    echo "$1"
}

require_dead() {
    local pid
    if pid=$(pid_of "$1"); then die "$1 is already running (pid $pid)"; fi
}

kill_named() { # kill_named SIGNAL NAME
    local pid
    pid=$(pid_of "$2") || die "$2 is not running"
    kill "-$1" "$pid"
    log "sent SIG$1 to $2 (pid $pid)"
    for ((i = 0; i < 150; i++)); do alive "$pid" || return 0; sleep 0.1; done
    log "$2 (pid $pid) is still running"
}

status() {
    echo "== Patroni"
    patronictl_ list 2>&1 || true
    echo
    echo "== Gale"
    gale_cli cluster status 2>&1 || true
    echo
    echo "== processes"
    local name pid n
    for name in $(lc_names); do
        if pid=$(pid_of "$name"); then printf '  %-9s %s\n' "$name" "$pid"; else printf '  %-9s -\n' "$name"; fi
    done
    for n in "${NODES[@]}"; do
        if pid=$(postmaster_pid "$n"); then printf '  %-9s %s\n' "postgres$n" "$pid"; else printf '  %-9s -\n' "postgres$n"; fi
    done
}

cmd=${1:-help}
shift || true
case $cmd in
help | -h | --help) usage; exit 0 ;;
esac
lc_load

case $cmd in
status) status ;;
primary)
    leader=$(leader_name) || die "no primary (no Patroni leader)"
    n=${leader#pg}
    echo "$leader ${PG_PORT[n]}"
    ;;
env)
    printf 'export GALE_CLUSTER_DIR=%q\n' "$STATE"
    printf 'export GALE_DATABASE_URL=%q\n' "$DATABASE_URL"
    printf 'export PGPASSFILE=%q\n' "$STATE/pgpass"
    printf 'export GALE_BIN=%q\n' "$GALE_BIN"
    printf 'export GALE_URL=%q\n' "http://127.0.0.1:$HA_HTTP_PORT"
    if [[ -f $STATE/admin-token ]]; then printf 'export GALE_TOKEN=%q\n' "$(<"$STATE/admin-token")"; fi
    ;;
wait)
    timeout=${1:-120}
    wait_for "a primary with 2 streaming replicas" "$timeout" primary_with_replicas || exit 1
    wait_for "3 running Gale nodes" "$timeout" gale_nodes_running 3 || exit 1
    log "healthy: primary $(leader_name), 2 streaming replicas, 3 Gale nodes"
    ;;
kill-gale) kill_named KILL "gale$(node_arg "${1:-}")" ;;
freeze-gale | thaw-gale)
    n=$(node_arg "${1:-}")
    pid=$(pid_of "gale$n") || die "gale$n is not running"
    sig=STOP
    [[ $cmd == thaw-gale ]] && sig=CONT
    kill "-$sig" "$pid"
    log "sent SIG$sig to gale$n (pid $pid)"
    ;;
stop-gale)
    n=$(node_arg "${1:-}")
    pid=$(pid_of "gale$n") || die "gale$n is not running"
    log "stopping gale$n (pid $pid): it drains running attempts"
    stop_pid "gale$n" "$pid" "${GALE_STOP_TIMEOUT:-45}"
    kill_session "$pid"
    ;;
start-gale)
    n=$(node_arg "${1:-}")
    require_dead "gale$n"
    start_gale "$n"
    log "started gale$n (pid $(pid_of "gale$n"))"
    ;;
kill-patroni) kill_named KILL "patroni$(node_arg "${1:-}")" ;;
stop-patroni)
    n=$(node_arg "${1:-}")
    pid=$(pid_of "patroni$n") || die "patroni$n is not running"
    stop_pid "patroni$n" "$pid" 30
    ;;
start-patroni)
    n=$(node_arg "${1:-}")
    require_dead "patroni$n"
    start_patroni "$n"
    log "started patroni$n (pid $(pid_of "patroni$n"))"
    ;;
freeze-db | thaw-db | freeze-postgres | thaw-postgres)
    n=$(node_arg "${1:-}")
    pid=$(postmaster_pid "$n") || die "PostgreSQL of node $n is not running"
    patroni=""
    if [[ $cmd == *-db ]]; then
        patroni=$(pid_of "patroni$n") || die "Patroni of node $n is not running"
    fi
    if [[ $cmd == freeze-* ]]; then
        # Patroni first (it would notice), then the postmaster (it forks no
        # more), then every process it had forked.
        [[ -n $patroni ]] && kill -STOP "$patroni"
        signal_server STOP "$pid"
    else
        signal_server CONT "$pid"
        [[ -n $patroni ]] && kill -CONT "$patroni"
    fi
    sig=STOP
    [[ $cmd == thaw-* ]] && sig=CONT
    log "sent SIG$sig to ${patroni:+Patroni (pid $patroni) and }PostgreSQL of node $n (postmaster $pid and its $(server_children "$pid" | wc -l) children)"
    ;;
kill-postgres | kill-db)
    n=$(node_arg "${1:-}")
    if [[ $cmd == kill-db ]] && pid_of "patroni$n" >/dev/null; then kill_named KILL "patroni$n"; fi
    pid=$(postmaster_pid "$n") || die "PostgreSQL of node $n is not running"
    signal_server KILL "$pid"
    log "sent SIGKILL to PostgreSQL of node $n (postmaster $pid and its children)"
    ;;
switchover)
    leader=$(leader_name) || die "no primary to switch over from"
    # With synchronous replication only the synchronous standby may take over.
    cand=${1:-$(cluster_json | jq -er --arg l "$leader" '([.members[] | select(.role == "sync_standby")] + [.members[] | select(.name != $l and .role != "leader")])[0].name')}
    log "switchover $leader -> $cand"
    # patronictl exits 0 even when Patroni refuses (e.g. "candidate name does
    # not match with sync_standby"): what counts is who leads afterwards.
    out=$(patronictl_ switchover --leader "$leader" --candidate "$cand" --force 2>&1) || true
    echo "$out"
    for ((i = 0; i < 300; i++)); do
        [[ $(leader_name 2>/dev/null) == "$cand" ]] && { log "$cand leads"; exit 0; }
        sleep 0.2
    done
    die "switchover $leader -> $cand did not happen within 60 s: $out"
    ;;
stop-etcd) kill_named TERM "etcd$(node_arg "${1:-}")" ;;
kill-etcd) kill_named KILL "etcd$(node_arg "${1:-}")" ;;
start-etcd)
    n=$(node_arg "${1:-}")
    require_dead "etcd$n"
    start_etcd "$n"
    log "started etcd$n (pid $(pid_of "etcd$n"))"
    ;;
*) usage >&2; die "unknown command: $cmd" ;;
esac
