#!/usr/bin/env bash
# What an idle cluster costs PostgreSQL: starts a throwaway PostgreSQL (the
# machine's binaries, a temporary directory, a free port), runs
# `gale bench idle-cluster` on it and stops it.
# Usage: bench/idle_cluster.sh GALE_BINARY [idle-cluster args, e.g. --workers 30]
set -euo pipefail
bin=$(realpath "$1")
shift
pgbin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as_pg=(runuser -u postgres --)
fi
trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
"${as_pg[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
"$bin" --database-url "postgres://postgres@127.0.0.1:$port/bench" bench idle-cluster "$@"
