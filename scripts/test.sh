#!/usr/bin/env bash
# `make test` (what CI runs): starts or verifies the services, checks format
# and lints, then runs the whole suite once per hot layout this machine can
# offer — native day partitions, and a TimescaleDB hypertable when
# ensure-timescaledb.sh can provide a server that preloads it — and ends
# with one summary line per run and the totals.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

set -e
# An assignment keeps a failed script's status (`eval "$(…)"` would not).
for ensure in ensure-services ensure-s3 ensure-timescaledb; do
  exports=$("$here/$ensure.sh")
  eval "$exports"
done
exports=$("$here/ensure-tools.sh")
eval "$exports"
cargo fmt --all --check
"$here/check-sorted-deps.py"
"$here/check-layers.py"
"$here/check-dockerfile.py"
"$here/check-links.py"
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-run
# The compose stack's rules, and its key script run twice with the strata-api
# just built (Python with PyYAML: the Schemathesis virtualenv's).
PATH="$CARGO_TARGET_DIR/debug:$PATH" "$(dirname "$STRATA_TEST_SCHEMATHESIS")/python" \
  "$here/check-compose.py" --key-script "$STRATA_TEST_DATABASE_URL"
set +e

# What a server offers of TimescaleDB: preloaded, installed (not preloaded)
# or absent. The suite asserts it finds the case named here
# (STRATA_TEST_EXPECT_TIMESCALE), so a run meant for one path cannot quietly
# exercise another.
timescale_case() {
  psql "$1" -Atqc "SELECT CASE
      WHEN NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN 'absent'
      WHEN current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN 'preloaded'
      ELSE 'installed' END"
}

log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
summaries=()
passed=0 failed=0 status=0

# run_suite NAME DATABASE_URL EXPECTED_CASE
run_suite() {
  local name=$1 url=$2 case=$3 out=$log_dir/$1.log rc line
  log "running the suite on $name ($url; TimescaleDB $case)"
  STRATA_TEST_DATABASE_URL=$url STRATA_TEST_EXPECT_TIMESCALE=$case \
    cargo nextest run --workspace --no-fail-fast 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^ *Summary ' "$out" | tail -n 1 | sed -E 's/^ +//')
  summaries+=("$name: ${line:-no summary} (exit $rc)")
  passed=$((passed + $(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)))
  failed=$((failed + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)))
  [ "$rc" -eq 0 ] || status=1
}

# `make run`'s private PostgreSQL (scripts/dev-env.sh) must keep fsync on,
# unlike the throwaway test clusters: started here the way dev-env.sh does.
check_run_durability() {
  local dir=/var/tmp/strata-test/pg-durable port=55439 got
  rm -rf "$dir"
  PG_DURABLE=1 start_private_pg "$dir" "$port" >&2
  got=$(psql "postgres://postgres@127.0.0.1:$port/postgres" -Atqc \
    "SELECT current_setting('fsync') || ',' || current_setting('synchronous_commit')")
  runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 \
    || "$(pg_bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$dir"
  grep -q 'PG_DURABLE=1 start_private_pg' "$here/dev-env.sh" || got="dev-env.sh does not ask for durability"
  if [ "$got" = "on,on" ]; then
    summaries+=("make-run durability: passed (fsync=on, synchronous_commit=on)")
  else
    summaries+=("make-run durability: FAILED (got: $got)")
    failed=$((failed + 1)) status=1
  fi
}
check_run_durability

native_case=$(timescale_case "$STRATA_TEST_DATABASE_URL")
if [ "$native_case" = preloaded ]; then
  # The main server preloads TimescaleDB: auto gives the hypertable there.
  run_suite hypertable "$STRATA_TEST_DATABASE_URL" preloaded
  summaries+=("native-partitions: NOT RUN (STRATA_TEST_DATABASE_URL preloads TimescaleDB; point it at a server that does not)")
else
  run_suite native-partitions "$STRATA_TEST_DATABASE_URL" "$native_case"
fi
if [ -n "${STRATA_TEST_TIMESCALE_URL:-}" ] && [ "$STRATA_TEST_TIMESCALE_URL" != "$STRATA_TEST_DATABASE_URL" ]; then
  run_suite hypertable "$STRATA_TEST_TIMESCALE_URL" preloaded
elif [ "$native_case" != preloaded ]; then
  summaries+=("hypertable: NOT RUN (no PostgreSQL with TimescaleDB preloaded; see ensure-timescaledb.sh above)")
fi

echo
for s in "${summaries[@]}"; do log "$s"; done
echo "strata: $passed passed, $failed failed"
exit "$status"
