#!/usr/bin/env bash
# `make run`: a working Strata on this machine with no configuration.
set -euo pipefail
. "$(dirname "$0")/dev-env.sh"

cargo build --quiet --workspace --bins
bin=$bindir/strata-api
"$bin" migrate

# A demo key (project "demo": ingest, read, admin) and an operator key (the
# dashboard's archive runs and every project's tiers), kept in .strata while
# they stay valid.
valid_key() {
  [ -n "$1" ] && "$bin" keys list | awk -F'\t' -v p="${1:0:15}" '$3 == p && $6 == "" {found=1} END {exit !found}'
}
key=$(cat "$state/demo.key" 2>/dev/null || true)
if ! valid_key "$key"; then
  key=$("$bin" keys create --project demo --scopes ingest,read,admin | tail -n 1)
  echo "$key" > "$state/demo.key"
fi
operator=$(cat "$state/operator.key" 2>/dev/null || true)
if ! valid_key "$operator"; then
  operator=$("$bin" keys create --operator | tail -n 1)
  echo "$operator" > "$state/operator.key"
fi
listen=${STRATA_LISTEN:-127.0.0.1:8080}
cat >&2 <<MSG

  Strata is starting on http://$listen
  project: demo      key: $key
  operator key:      $operator
  dashboard: http://$listen/ui/  (paste both keys there; 'make demo' loads data)
  (keys also in .strata/demo.key and .strata/operator.key; cold tier: $STRATA_COLD_URL;
   archive with 'make archive')

MSG
exec "$bin" serve
