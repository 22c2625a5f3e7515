#!/usr/bin/env bash
# Stops the local cluster that up.sh started in $GALE_CLUSTER_DIR (default
# /tmp/gale-cluster), by its pid files, never by process name: the Gale nodes
# first (SIGTERM: they drain, then SIGKILL after GALE_STOP_TIMEOUT, default 45 s),
# then HAProxy, then Patroni (the replicas, then the primary; each stops its
# PostgreSQL, and any postmaster still listed in a data directory's
# postmaster.pid is stopped too), then etcd. Checks that none of them runs any
# more and exits 1 if something under the state directory still does.
#
#   down.sh            stop; keep the state directory (data and logs)
#   down.sh --purge    stop, then remove the state directory
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Finish the job even if whoever reads our output goes away (a closed pipe, a
# hung-up terminal): a half-stopped cluster is the worst outcome.
trap '' HUP PIPE

purge=false
case ${1:-} in
--purge) purge=true ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
"") ;;
*) die "usage: down.sh [--purge]" ;;
esac

if [[ ! -d $STATE ]]; then
    log "nothing to stop: $STATE does not exist"
    exit 0
fi
[[ -f $MARKER ]] || die "$STATE is not a local cluster's state directory"
if [[ -f $STATE/cluster.env ]]; then
    lc_load
else
    # No settings recorded (up.sh failed early): the pid files are all we need.
    PORT_BASE=${GALE_CLUSTER_PORT_BASE:-25000}
    PG_BIN=${GALE_PG_BIN:-/usr/lib/postgresql/15/bin}
    lc_ports
fi
GRACE=${GALE_STOP_TIMEOUT:-45}

# stop_all TIMEOUT NAME...: SIGTERM every running NAME at once, then wait for each.
stop_all() {
    local timeout=$1 name pid
    shift
    local -A pids=()
    for name in "$@"; do
        pid=$(pid_of "$name") || continue
        pids[$name]=$pid
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    done
    for name in "${!pids[@]}"; do
        wait_gone "$name" "${pids[$name]}" "$timeout" || true
        kill_session "${pids[$name]}"
        rm -f "$(pidfile "$name")"
    done
}

# 1. Gale: SIGTERM lets running attempts finish within --shutdown-grace (30 s)
#    and marks each node stopped, which needs the database: so before PostgreSQL.
stop_all "$GRACE" gale1 gale2 gale3

# 2. HAProxy.
stop_all 10 haproxy

# 3. Patroni: replicas first, so none of them takes over from the primary.
leader=$(leader_name 2>/dev/null || true)
replicas=()
for n in "${NODES[@]}"; do [[ pg$n == "$leader" ]] || replicas+=("patroni$n"); done
stop_all 30 "${replicas[@]}"
[[ -n $leader ]] && stop_all 30 "patroni${leader#pg}"
stop_all 30 patroni1 patroni2 patroni3 # whatever is left (no leader known)
for n in "${NODES[@]}"; do
    pid=$(postmaster_pid "$n") || continue
    log "PostgreSQL of node $n (postmaster $pid) outlived Patroni: immediate shutdown"
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
        # Patroni starts each postmaster in a session of its own: its group is
        # that server's processes only.
        if [[ -n $pgid && $pgid != 0 && $pgid != "$(ps -o pgid= -p $$ | tr -d ' ')" ]]; then
            kill -KILL -- "-$pgid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
done

# 4. etcd, one member at a time: a leader that stops hands its leadership to
#    a live peer at once (stopped together, the last one waits for a timeout).
for n in "${NODES[@]}"; do stop_all 15 "etcd$n"; done

# ---------------------------------------------------------------- verify

sleep 0.5
left=()
for name in $(lc_names); do
    pid=$(pid_of "$name") && left+=("$name=$pid")
done
for n in "${NODES[@]}"; do
    pid=$(postmaster_pid "$n") && left+=("postgres$n=$pid")
done
# Any other process whose command line names the state directory.
for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [[ $p == "$$" ]] && continue
    ours "$p" 2>/dev/null && left+=("$p:$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-80)")
done
if ((${#left[@]})); then
    log "still running: ${left[*]}"
    exit 1
fi
listening=()
for p in $(lc_all_ports); do
    [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]] && listening+=("$p")
done
((${#listening[@]} == 0)) || log "warning: ports ${listening[*]} are still listened on (by processes this cluster did not start)"

if $purge; then
    rm -rf "$STATE"
    log "stopped; removed $STATE"
else
    log "stopped; data and logs kept in $STATE (down.sh --purge removes them; up.sh starts afresh)"
fi
