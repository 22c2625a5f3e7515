#!/usr/bin/env bash
# The idle cost of a standalone: % of a core (its children included, so the
# git processes of a follower count) and resident memory, over 60 s after
# 20 s to settle. Usage: bench/idle.sh GALE_BINARY LABEL [standalone args...]
set -euo pipefail
bin=$1
label=$2
shift 2
home=$(mktemp -d)
mkdir -p "$home/dags"
GALE_HOME=$home GALE_LOG=error GALE_PORT=0 "$bin" standalone --no-examples \
    --dags-folder "$home/dags" "$@" >"$home/log" 2>&1 &
pid=$!
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat"; }
sleep 20
t0=$(ticks)
sleep 60
t1=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill "$pid"
wait "$pid" 2>/dev/null || true
hz=$(getconf CLK_TCK)
echo "$label: $(echo "scale=3; ($t1 - $t0) * 100 / $hz / 60" | bc) % of a core, $((rss / 1024)) MB"
rm -rf "$home"
