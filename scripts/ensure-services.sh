#!/usr/bin/env bash
# Makes sure the test suite has a PostgreSQL and a Redis, and prints the
# `export` lines that point the suite at them (eval the output).
#   PostgreSQL: STRATA_TEST_DATABASE_URL if set; else 127.0.0.1:5432 if it
#               answers; else a throwaway cluster made with initdb/pg_ctl.
#   Redis:      STRATA_TEST_REDIS_URL if set; else 127.0.0.1:6379 if it
#               answers; else a throwaway redis-server.
#   NATS:       STRATA_TEST_NATS_URL if set; else 127.0.0.1:4222 if it
#               answers; else a throwaway nats-server with JetStream. The
#               queue tests that stop NATS start their own from
#               STRATA_TEST_NATS_SERVER (the binary; installed when missing).
#   Browser:    STRATA_TEST_CHROMEDRIVER, Debian's chromedriver (with
#               chromium; installed when missing): the dashboard test starts
#               its own on a free port.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# PostgreSQL must be able to traverse the data directory, so not under /root.
state=${STRATA_TEST_STATE_DIR:-/var/tmp/strata-test}

if [ -n "${STRATA_TEST_DATABASE_URL:-}" ]; then
  db_url=$STRATA_TEST_DATABASE_URL
elif port_open 5432 && psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
  db_url="postgres://postgres@127.0.0.1:5432/postgres"
else
  port=${STRATA_TEST_PG_PORT:-55432}
  start_private_pg "$state/pg" "$port"
  db_url="postgres://postgres@127.0.0.1:$port/postgres"
fi

if [ -n "${STRATA_TEST_REDIS_URL:-}" ]; then
  redis_url=$STRATA_TEST_REDIS_URL
elif port_open 6379; then
  redis_url="redis://127.0.0.1:6379"
else
  port=${STRATA_TEST_REDIS_PORT:-56379}
  start_private_redis "$state/redis" "$port"
  redis_url="redis://127.0.0.1:$port"
fi

nats_bin=$(nats_server_bin)
if [ -n "${STRATA_TEST_NATS_URL:-}" ]; then
  nats_url=$STRATA_TEST_NATS_URL
elif port_open 4222; then
  nats_url="nats://127.0.0.1:4222"
else
  port=${STRATA_TEST_NATS_PORT:-54222}
  start_private_nats "$state/nats" "$port"
  nats_url="nats://127.0.0.1:$port"
fi

chromedriver=${STRATA_TEST_CHROMEDRIVER:-$(chromedriver_bin)}

log "PostgreSQL: $db_url"
log "Redis: $redis_url"
log "NATS: $nats_url ($nats_bin)"
echo "export STRATA_TEST_DATABASE_URL='$db_url'"
echo "export STRATA_TEST_REDIS_URL='$redis_url'"
echo "export STRATA_TEST_NATS_URL='$nats_url'"
echo "export STRATA_TEST_NATS_SERVER='$nats_bin'"
log "Browser: $chromedriver ($("$chromedriver" --version 2>/dev/null | cut -d' ' -f1-2))"
echo "export STRATA_TEST_CHROMEDRIVER='$chromedriver'"
