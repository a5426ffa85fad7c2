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

# start_private_pg DIR PORT [-c NAME=VALUE ...]: a cluster (trust auth, user
# postgres) in DIR listening on 127.0.0.1:PORT, with any extra server
# settings. Test clusters are throwaway and run with fsync off; with
# PG_DURABLE=1 (`make run`) fsync stays on, so acknowledged events survive a
# power cut. A running cluster started with other settings is restarted.
start_private_pg() {
  local dir=$1 port=$2 bin run=() fsync=off opts
  shift 2
  [ "${PG_DURABLE:-0}" = 1 ] && fsync=on
  opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=$fsync $*"
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
    local sync=(--no-sync)
    [ "$fsync" = on ] && sync=()
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 "${sync[@]}" >/dev/null
  fi
  if "${run[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 \
    && [ "$(cat "$dir/options" 2>/dev/null)" != "$opts" ]; then
    log "restarting PostgreSQL on 127.0.0.1:$port with fsync=$fsync ($dir)"
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >/dev/null
  fi
  if ! "${run[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$port with fsync=$fsync ($dir)"
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$opts" start >/dev/null
    printf '%s' "$opts" >"$dir/options"
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

# nats_server_bin: the nats-server binary, installed from Debian when missing.
nats_server_bin() {
  local bin
  bin=$(command -v nats-server || true)
  [ -z "$bin" ] && [ -x /usr/sbin/nats-server ] && bin=/usr/sbin/nats-server
  if [ -z "$bin" ]; then
    apt_install nats-server >/dev/null
    bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  fi
  echo "$bin"
}

# chromedriver_bin: Debian's ChromeDriver (and Chromium with it), installed
# when missing, for the dashboard's browser test.
chromedriver_bin() {
  local bin
  bin=$(command -v chromedriver || true)
  if [ -z "$bin" ] || ! command -v chromium >/dev/null; then
    apt_install chromium chromium-driver >/dev/null
    bin=$(command -v chromedriver || echo /usr/bin/chromedriver)
  fi
  echo "$bin"
}

# start_private_nats DIR PORT: nats-server with JetStream (file storage in DIR).
start_private_nats() {
  local dir=$1 port=$2 bin
  bin=$(nats_server_bin)
  mkdir -p "$dir"
  if ! port_open "$port"; then
    log "starting NATS (JetStream) on 127.0.0.1:$port"
    nohup "$bin" -a 127.0.0.1 -p "$port" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
    echo $! >"$dir/nats.pid"
    for _ in $(seq 50); do port_open "$port" && return 0; sleep 0.1; done
    log "NATS did not start; see $dir/nats.log"; return 1
  fi
}
