#!/usr/bin/env bash
# The PostgreSQL `make bench` measures on, and prints the `export` line that
# points the bench at it (eval the output): a private cluster of the system
# PostgreSQL on 127.0.0.1:55434 (STRATA_BENCH_PG_PORT), durable like a
# production server (fsync on), that
#   - preloads pg_stat_statements, for the per-statement accounts of ingest;
#   - preloads timescaledb when it is installed (run scripts/ensure-timescaledb.sh
#     first to build it), so both hot layouts run on the same server;
#   - runs with the server settings of deploy/postgres/strata.conf, the ones the
#     docs/operations.md recommends for a deployment, so Strata and every baseline get them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

state=${STRATA_TEST_STATE_DIR:-/var/tmp/strata-test}
port=${STRATA_BENCH_PG_PORT:-55434}
bindir=$(pg_bindir)
[ -n "$bindir" ] || { log "no PostgreSQL server binaries found"; exit 1; }
libdir=$(dirname "$bindir")/lib

preload=pg_stat_statements
extra=()
if ls "$libdir"/timescaledb-*.so >/dev/null 2>&1; then
  preload+=,timescaledb
  extra+=(-c timescaledb.telemetry_level=off)
fi
# `name = value` lines of the recommended settings, comments dropped.
while IFS= read -r line; do
  line=${line%%#*}
  [[ $line =~ ^[[:space:]]*([a-z_.]+)[[:space:]]*=[[:space:]]*\'?([^\']*[^\'[:space:]])\'?[[:space:]]*$ ]] || continue
  extra+=(-c "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
done <"$here/../deploy/postgres/strata.conf"

PG_DURABLE=1 start_private_pg "$state/pg-bench" "$port" \
  -c shared_preload_libraries="$preload" "${extra[@]}"
url="postgres://postgres@127.0.0.1:$port/postgres"
log "bench PostgreSQL: $url (preloads $preload; fsync on; settings of deploy/postgres/strata.conf)"
echo "export STRATA_TEST_DATABASE_URL='$url'"
