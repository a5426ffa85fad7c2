#!/usr/bin/env bash
# Installs the tools `make test` needs into the cache (outside the clone),
# once per machine, and prints what the suite must export.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=${STRATA_CACHE:-$HOME/.cache/strata}/tools
if ! command -v cargo-nextest >/dev/null; then
  log "installing cargo-nextest into $root"
  cargo install --locked --root "$root" cargo-nextest >&2
fi
# cargo-chef, at the version deploy/Dockerfile pins: scripts/check-dockerfile.py
# replays the image's dependency layer with it.
chef_version=$(grep -o 'cargo-chef@[0-9.]*' "$(dirname "$0")/../deploy/Dockerfile" | cut -d@ -f2)
if ! cargo chef --version 2>/dev/null | grep -q " $chef_version\$"; then
  log "installing cargo-chef $chef_version into $root"
  cargo install --locked --root "$root" "cargo-chef@$chef_version" >&2
fi
# The README's examples run with curl (tests/it/docs_examples.rs).
command -v curl >/dev/null || apt_install curl
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >&2 || true

# Schemathesis (PyPI), the schema-driven fuzzer the suite runs against
# /openapi.json (tests/it/openapi.rs), in a virtualenv of its own.
st_version=4.32.5
st=$root/schemathesis
if [ "$("$st/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $st_version" ]; then
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3 python3-venv
  log "installing schemathesis $st_version into $st"
  rm -rf "$st"
  python3 -m venv "$st" >&2
  "$st/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$st_version" >&2
fi
echo "export STRATA_TEST_SCHEMATHESIS=$st/bin/schemathesis"

# The outside readers of the cold tier (docs/cold-tier.md's recipes, run by
# tests/it/cold_readers.rs and tests/it/lake.rs): DuckDB with its httpfs,
# ducklake and postgres_scanner extension wheels (loaded from their files:
# nothing is downloaded at run time) and pyarrow.
readers_pins="duckdb==1.5.5 duckdb-extension-httpfs==1.5.5 duckdb-extension-ducklake==1.5.5 duckdb-extension-postgres-scanner==1.5.5 pytz==2025.2 pyarrow==26.0.1"
rd=$root/readers
if [ "$(cat "$rd/pins" 2>/dev/null)" != "$readers_pins" ]; then
  log "installing $readers_pins into $rd"
  rm -rf "$rd"
  python3 -m venv "$rd" >&2
  # shellcheck disable=SC2086
  "$rd/bin/pip" install --quiet --disable-pip-version-check $readers_pins >&2
  echo "$readers_pins" >"$rd/pins"
fi
echo "export STRATA_TEST_READERS_PYTHON=$rd/bin/python"
for ext in httpfs ducklake postgres_scanner; do
  var=$(echo "$ext" | cut -d_ -f1 | tr a-z A-Z)
  echo "export STRATA_TEST_DUCKDB_$var=$(find "$rd" -name "$ext.duckdb_extension" | head -n 1)"
done
