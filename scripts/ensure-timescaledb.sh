#!/usr/bin/env bash
# Makes sure the test suite has a PostgreSQL with TimescaleDB preloaded for
# its second run (events as a hypertable), and prints the `export` line that
# points the suite at it (eval the output). Prints nothing, and says why on
# stderr, when no such server can be had: the suite then runs on native
# partitions alone.
#   STRATA_TEST_TIMESCALE_URL set: used as is (it must preload timescaledb).
#   Otherwise a throwaway cluster of the system PostgreSQL on 127.0.0.1:55433
#   with shared_preload_libraries = 'timescaledb', once TimescaleDB <version>
#   is installed there. When it is not, and TimescaleDB's Apache-2.0 source
#   tarball is at hand (STRATA_TIMESCALEDB_TARBALL, default
#   timescaledb-<version>-apache.tar.gz in ../shared/vendor beside the clone),
#   it is built once into the cache (needs cmake and
#   postgresql-server-dev-<major> from apt; ~30 s on 2 cores) and installed
#   (root only).
# Installing the extension files does not preload them: every other cluster
# of that PostgreSQL (the native run's) then has TimescaleDB installed but not
# preloaded, the case in which Strata must fall back to native partitions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

version=${STRATA_TIMESCALEDB_VERSION:-2.28.3}
state=${STRATA_TEST_STATE_DIR:-/var/tmp/strata-test}
cache=${STRATA_CACHE:-$HOME/.cache/strata}

preloaded() {
  [ "$(psql "$1" -Atqc "SELECT current_setting('shared_preload_libraries') LIKE '%timescaledb%'" 2>/dev/null)" = t ]
}

if [ -n "${STRATA_TEST_TIMESCALE_URL:-}" ]; then
  preloaded "$STRATA_TEST_TIMESCALE_URL" || {
    log "STRATA_TEST_TIMESCALE_URL does not answer with timescaledb in shared_preload_libraries"
    exit 1
  }
  log "TimescaleDB: $STRATA_TEST_TIMESCALE_URL (given)"
  echo "export STRATA_TEST_TIMESCALE_URL='$STRATA_TEST_TIMESCALE_URL'"
  exit 0
fi

skip() {
  log "TimescaleDB: $*; the hypertable layout is NOT exercised by this run"
  exit 0
}

bindir=$(pg_bindir)
[ -n "$bindir" ] || skip "no PostgreSQL server binaries found"
major=$(basename "$(dirname "$bindir")")
pg_config=$bindir/pg_config
libdir=$("$pg_config" --pkglibdir)
extdir=$("$pg_config" --sharedir)/extension

if [ ! -f "$libdir/timescaledb-$version.so" ] || [ ! -f "$extdir/timescaledb--$version.sql" ]; then
  tarball=${STRATA_TIMESCALEDB_TARBALL:-$here/../../shared/vendor/timescaledb-$version-apache.tar.gz}
  [ -f "$tarball" ] || skip "not installed, and no source tarball at $tarball (set STRATA_TIMESCALEDB_TARBALL or STRATA_TEST_TIMESCALE_URL)"
  [ -w "$libdir" ] && [ -w "$extdir" ] || skip "cannot install into $libdir (not root)"
  if ! command -v cmake >/dev/null || [ ! -d "$("$pg_config" --includedir-server)" ]; then
    apt_install cmake "postgresql-server-dev-$major" >/dev/null
  fi
  build=$cache/timescaledb-$version-pg$major
  if [ ! -f "$build/build/Makefile" ]; then
    log "building TimescaleDB $version (Apache-2.0 part) for PostgreSQL $major into $build (one-off, ~1 min)"
    rm -rf "$build" && mkdir -p "$build"
    tar xzf "$tarball" -C "$build" --strip-components=1
    (cd "$build" && ./bootstrap -DPG_CONFIG="$pg_config" -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF \
      -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DCMAKE_BUILD_TYPE=Release) >"$build/bootstrap.log" 2>&1 \
      || { log "TimescaleDB bootstrap failed; see $build/bootstrap.log"; rm -f "$build/build/Makefile"; exit 1; }
  fi
  log "installing TimescaleDB $version into $libdir"
  make -C "$build/build" -j"$(nproc)" install >"$build/install.log" 2>&1 \
    || { log "TimescaleDB build failed; see $build/install.log"; exit 1; }
fi

port=${STRATA_TEST_TIMESCALE_PORT:-55433}
start_private_pg "$state/pg-timescale" "$port" \
  -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off
url="postgres://postgres@127.0.0.1:$port/postgres"
preloaded "$url" || { log "the cluster on port $port does not preload timescaledb"; exit 1; }
log "TimescaleDB $version: $url (PostgreSQL $major, preloaded)"
echo "export STRATA_TEST_TIMESCALE_URL='$url'"
