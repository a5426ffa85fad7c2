# Sourced by run.sh and archive.sh: the environment of `make run`.
# Without STRATA_DATABASE_URL, a private PostgreSQL lives in ./.strata/pg.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(pwd)
state=$root/.strata
mkdir -p "$state"
if [ -z "${STRATA_DATABASE_URL:-}" ]; then
  port=${STRATA_DEV_PG_PORT:-54329}
  # Not a throwaway cluster: events acknowledged by `make run` must survive
  # a power cut, so fsync stays on.
  PG_DURABLE=1 start_private_pg "$state/pg" "$port"
  psql "postgres://postgres@127.0.0.1:$port/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'strata'" | grep -q 1 \
    || psql "postgres://postgres@127.0.0.1:$port/postgres" -qc "CREATE DATABASE strata"
  export STRATA_DATABASE_URL="postgres://postgres@127.0.0.1:$port/strata"
fi
export STRATA_COLD_URL=${STRATA_COLD_URL:-file://$state/cold}
bindir=${CARGO_TARGET_DIR:-$root/target}/debug
# Build with the whole workspace's features (`--workspace`), as `make test`
# does: building single packages would unify features differently and
# recompile dependencies (DuckDB's C++ among them) into the shared target.
