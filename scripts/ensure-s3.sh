#!/usr/bin/env bash
# Makes sure the test suite has a real S3-compatible server and prints the
# `export` lines that point the suite at it (eval the output).
#   STRATA_TEST_S3_ENDPOINT set: used as is (MinIO, AWS, ...), with
#     STRATA_TEST_S3_BUCKET / _ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _REGION.
#   Otherwise: a single-node Garage (installed once into the cache by
#     ensure-garage.sh), started on 127.0.0.1:39900 with a bucket and a key.
set -euo pipefail
here=$(dirname "$0")
. "$here/lib.sh"

if [ -n "${STRATA_TEST_S3_ENDPOINT:-}" ]; then
  for v in STRATA_TEST_S3_BUCKET STRATA_TEST_S3_ACCESS_KEY_ID STRATA_TEST_S3_SECRET_ACCESS_KEY; do
    [ -n "${!v:-}" ] || { log "$v must be set with STRATA_TEST_S3_ENDPOINT"; exit 1; }
  done
  echo "export STRATA_TEST_S3_REGION='${STRATA_TEST_S3_REGION:-us-east-1}'"
  exit 0
fi

"$here/ensure-garage.sh"
cache=${STRATA_CACHE:-$HOME/.cache/strata}
garage=$cache/tools/bin/garage
state=${STRATA_TEST_STATE_DIR:-/var/tmp/strata-test}/garage
s3_port=${STRATA_TEST_GARAGE_PORT:-39900}
rpc_port=$((s3_port + 1))
admin_port=$((s3_port + 3))
bucket=strata-test
# Fixed test credentials in Garage's key format (GK + 24 hex, 64 hex).
key_id=GK5374726174615465737400aa
secret=5374726174612074657374207365637265742c206e6f7420666f722070726f64
mkdir -p "$state"
conf=$state/garage.toml
cat > "$conf" <<TOML
metadata_dir = "$state/meta"
data_dir = "$state/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(printf '%064d' 7)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
TOML
g() { "$garage" -c "$conf" "$@"; }

if ! port_open "$s3_port"; then
  log "starting Garage on 127.0.0.1:$s3_port ($state)"
  RUST_LOG=warn setsid "$garage" -c "$conf" server >>"$state/garage.log" 2>&1 < /dev/null &
  for _ in $(seq 100); do port_open "$s3_port" && g status >/dev/null 2>&1 && break; sleep 0.2; done
fi
if ! g bucket info "$bucket" >/dev/null 2>&1; then
  node=$(g node id -q 2>/dev/null | cut -d@ -f1)
  if ! g layout show 2>/dev/null | grep -q "$node"; then
    g layout assign -z dc1 -c 1G "$node" >/dev/null
  fi
  g layout apply --version 1 >/dev/null 2>&1 || true
  for _ in $(seq 50); do g bucket create "$bucket" >/dev/null 2>&1 && break; sleep 0.2; done
  g key import --yes -n strata-test "$key_id" "$secret" >/dev/null 2>&1 || true
  g bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
fi
g bucket info "$bucket" >/dev/null
log "S3 (Garage): http://127.0.0.1:$s3_port bucket $bucket"
echo "export STRATA_TEST_S3_ENDPOINT='http://127.0.0.1:$s3_port'"
echo "export STRATA_TEST_S3_BUCKET='$bucket'"
echo "export STRATA_TEST_S3_ACCESS_KEY_ID='$key_id'"
echo "export STRATA_TEST_S3_SECRET_ACCESS_KEY='$secret'"
echo "export STRATA_TEST_S3_REGION='garage'"
