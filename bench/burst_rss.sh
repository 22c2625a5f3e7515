#!/usr/bin/env bash
# Memory after a burst: a standalone with two 10,000-task DAGs of `true`:
# its RSS idle with them loaded, when both runs (triggered at once) have
# finished, and a minute later; and its SQLite WAL. Usage: bench/burst_rss.sh GALE_BINARY
set -eu
bin=$1
h=$(mktemp -d); mkdir $h/dags
for d in a b; do { echo "max_active_tasks: 64"; echo "tasks:"; for i in $(seq 1 10000); do echo "  t$i: {run: 'true'}"; done; } > $h/dags/burst_$d.yaml; done
GALE_HOME=$h GALE_LOG=error GALE_PORT=0 $bin standalone --no-examples --dags-folder $h/dags > $h/log 2>&1 &
pid=$!
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status; }
sleep 25
echo "idle: $(rss) MB"
GALE_HOME=$h $bin dags trigger burst_a >/dev/null; GALE_HOME=$h $bin dags trigger burst_b >/dev/null
t0=$(date +%s)
until [ "$(sqlite3 $h/gale.db "select count(*) from runs where state in ('success','failed')")" = 2 ]; do sleep 1; done
echo "burst done in $(( $(date +%s) - t0 )) s: $(rss) MB"
sqlite3 $h/gale.db "select state from runs"
ls -la $h/gale.db-wal | awk '{print "wal bytes", $5}'
sleep 60
echo "a minute later: $(rss) MB"
ls -la $h/gale.db-wal | awk '{print "wal bytes", $5}'
kill $pid; wait $pid 2>/dev/null || true
rm -rf $h
