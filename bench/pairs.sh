#!/bin/bash
# Alternating `gale bench` runs of two builds on SQLite, each on a fresh home:
# machine noise moves figures by ±15 %, so only pairs compare builds.
#   bench/pairs.sh N BINARY_A BINARY_B [gale bench options...]
# Prints, per run: the binary, chain hop p50 (ms), fan-out tasks/s, machine
# CPU per task (ms), the spawn ceiling (spawns/s) and the fan-out's ratio to it.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 N BINARY_A BINARY_B [gale bench options...]" >&2
  exit 2
fi
n=$1; a=$2; b=$3; shift 3
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
for _ in $(seq 1 "$n"); do
  for bin in "$a" "$b"; do
    rm -rf "${home:?}"/*
    GALE_HOME="$home" "$bin" bench --output json "$@" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
f = lambda k, p=2: "-" if d.get(k) is None else round(d[k], p)
print(sys.argv[1], "hop_p50_ms", f("chain_hop_p50_ms"), "tasks_per_s", f("fanout_tasks_per_s", 0),
      "machine_cpu_ms", f("machine_cpu_ms_per_task"), "ceiling", f("ceiling_spawns_per_s", 0),
      "ratio", f("fanout_ceiling_ratio"))' "$bin"
  done
done
