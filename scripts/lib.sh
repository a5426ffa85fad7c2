# Shared shell helpers for the Makefile's scripts. Source, don't run.

log() { echo "strata: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Installs Debian packages when a command is missing (needs root).
apt_install() {
  log "installing $* with apt-get"
  if [ "$(id -u)" -ne 0 ]; then log "not root: install $* yourself"; return 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$d" ] && command -v pg_config >/dev/null; then d=$(pg_config --bindir); fi
  echo "$d"
}

# start_private_pg DIR PORT [-c NAME=VALUE ...]: a throwaway cluster (trust
# auth, user postgres, fsync off) in DIR listening on 127.0.0.1:PORT, with any
# further server settings; reused when already running.
start_private_pg() {
  local dir=$1 port=$2 bin run=()
  shift 2
  bin=$(pg_bindir)
  if [ -z "$bin" ]; then
    apt_install postgresql >/dev/null
    bin=$(pg_bindir)
  fi
  # PostgreSQL refuses to run as root: run its tools as the postgres user.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    run=(runuser -u postgres --)
  fi
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initdb $dir/data"
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  fi
  if ! "${run[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$port ($dir)"
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off $*" start >/dev/null
  fi
}

# start_private_redis DIR PORT
start_private_redis() {
  local dir=$1 port=$2
  command -v redis-server >/dev/null || apt_install redis-server >/dev/null
  mkdir -p "$dir"
  if ! port_open "$port"; then
    log "starting Redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save "" --appendonly no \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 50); do port_open "$port" && return 0; sleep 0.1; done
    log "Redis did not start; see $dir/redis.log"; return 1
  fi
}
