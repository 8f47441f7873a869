#!/usr/bin/env bash
# Start/stop Quarry's own PostgreSQL 15, Redis and Chroma instances on
# 127.0.0.1, separate from any system services (which we never touch).
#
# Usage: scripts/stack.sh up|down|status|env
#   up      start the three services (reusing running ones), wait until ready
#   down    stop them (ok if not running)
#   status  one line per service
#   env     print `export ...` lines: eval "$(scripts/stack.sh env)"
#
# Env:
#   QUARRY_HOME         state folder (default <repo>/.quarry)
#   QUARRY_PG_PORT      default 54329
#   QUARRY_REDIS_PORT   default 63799
#   QUARRY_CHROMA_PORT  default 18000
#   DATABASE_URL / REDIS_URL / CHROMA_URL: if set to anything other than our
#                       own URL, that service is external: we neither start
#                       nor stop it, and `env` passes it through unchanged.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PG_PORT="${QUARRY_PG_PORT:-54329}"
REDIS_PORT="${QUARRY_REDIS_PORT:-63799}"
CHROMA_PORT="${QUARRY_CHROMA_PORT:-18000}"
HOST=127.0.0.1
PG_BIN=/usr/lib/postgresql/15/bin
PG_USER=quarry PG_PASSWORD=quarry PG_DB=quarry
APP_USER=quarry_app APP_PASSWORD=quarry_app
PG_EXTENSIONS=(vector hypopg pg_stat_statements)
WAIT_SECS=60

# The URLs of our own instances. A *_URL env var equal to ours (e.g. after
# `eval "$(stack.sh env)"`) still means "ours", so up/down keep managing it.
OUR_DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB"
OUR_REDIS_URL="redis://$HOST:$REDIS_PORT/"
OUR_CHROMA_URL="http://$HOST:$CHROMA_PORT"

# True when VAR (DATABASE_URL, REDIS_URL or CHROMA_URL) points elsewhere.
external() { # VAR
  local ours="OUR_$1"
  [[ -n ${!1:-} && ${!1} != "${!ours}" ]]
}

RUN_DIR="$QUARRY_HOME/run"
LOG_DIR="$QUARRY_HOME/logs"
REDIS_DIR="$QUARRY_HOME/redis"
REDIS_PID="$RUN_DIR/redis.pid"
REDIS_LOG="$LOG_DIR/redis.log"
REDIS_PORT_FILE="$RUN_DIR/redis.port"
CHROMA_DIR="$QUARRY_HOME/chroma"
CHROMA_PID="$RUN_DIR/chroma.pid"
CHROMA_LOG="$LOG_DIR/chroma.log"
CHROMA_PORT_FILE="$RUN_DIR/chroma.port"

# ------------------------------------------------------------------ helpers

# True when something accepts TCP connections on 127.0.0.1:PORT. Uses bash's
# /dev/tcp so it needs no ss/netstat (absent on minimal images).
port_busy() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

port_conflict() { # PORT VAR
  die "port $1 is in use by another process; set $2 to a free port"
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

read_pid() { if [[ -f $1 ]]; then tr -dc '0-9' <"$1"; fi; }

# True when PID is alive and its command line contains PATTERN (guards
# against a stale pid file whose pid was reused by something else).
pid_matches() {
  pid_alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

log_tail() { # FILE: shown when a service fails to come up
  echo "---- last lines of $1 ----" >&2
  tail -n 30 "$1" >&2 2>/dev/null || echo "(no log)" >&2
  echo "----" >&2
}

# Hide the password part of a URL when echoing it.
redact() { sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

# Start a long-running service detached from us: own session (no SIGINT/SIGHUP
# from the caller's terminal/make), stdin from /dev/null and stdout/stderr to
# its log, so a calling `make` or CI pipe never waits on it.
spawn_detached() { # LOG CMD...
  local log="$1"; shift
  setsid nohup "$@" </dev/null >>"$log" 2>&1 &
  echo $!
}

# A running instance of ours on another port than requested: refuse rather
# than hand out a URL that points at nothing (or at someone else).
check_same_port() { # NAME RUNNING_PORT WANTED_PORT VAR
  [[ -z $2 || $2 == "$3" ]] \
    || die "$1 is already running on port $2 but $4=$3; run 'scripts/stack.sh down' first"
}

mkdirs() { mkdir -p "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR" "$CHROMA_DIR"; }

# --------------------------------------------------------------- PostgreSQL

# postgres refuses to run as root, so the data lives in a folder owned by the
# postgres user. If postgres cannot traverse $QUARRY_HOME (e.g. a clone under
# /root), use /var/lib/quarry/<hash of QUARRY_HOME> instead.
pg_base() {
  if as_postgres test -x "$QUARRY_HOME" 2>/dev/null; then
    echo "$QUARRY_HOME"
  else
    echo "/var/lib/quarry/$(printf %s "$QUARRY_HOME" | sha256sum | cut -c1-12)"
  fi
}
PG_BASE="$(pg_base)"
PGDATA="$PG_BASE/pg"
PG_SOCK="$PG_BASE/run/pg"          # unix socket dir, owned by postgres
PG_LOG="$PG_BASE/logs/postgres.log"

pg_ctl() { as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" "$@"; }
pg_running() { [[ -f $PGDATA/PG_VERSION ]] && pg_ctl status >/dev/null 2>&1; }
pg_pid() { sed -n 1p "$PGDATA/postmaster.pid" 2>/dev/null || true; }
pg_running_port() { sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null || true; }

# psql as the postgres superuser over our unix socket (local auth is trust).
pg_psql() { # DB ARGS...
  local db="$1"; shift
  PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$(pg_running_port)" \
    -U postgres -d "$db" "$@"
}

pg_initdb() {
  [[ -f $PGDATA/PG_VERSION ]] && return
  if [[ $PG_BASE != "$QUARRY_HOME" ]]; then
    step "postgres user cannot reach $QUARRY_HOME; using $PG_BASE for PostgreSQL data"
  fi
  step "postgres: initdb $PGDATA"
  # initdb into a temp dir and rename, so an interrupted initdb never leaves a
  # half-made data dir behind that blocks the next run.
  local tmp="$PGDATA.initdb-tmp"
  rm -rf "$tmp"
  install -d -o postgres -g postgres -m 0700 "$tmp"
  as_postgres "$PG_BIN/initdb" -D "$tmp" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >>"$PG_LOG" 2>&1 \
    || { log_tail "$PG_LOG"; die "initdb failed"; }
  mv "$tmp" "$PGDATA"
  echo "include_if_exists = 'quarry.conf'" >>"$PGDATA/postgresql.conf"
}

# Our settings, rewritten on every start so port changes take effect.
pg_write_conf() {
  cat >"$PGDATA/quarry.conf" <<CONF
# Written by scripts/stack.sh on each start; edits here are overwritten.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
max_connections = 200
shared_buffers = 256MB
fsync = on
CONF
  chown postgres:postgres "$PGDATA/quarry.conf"
}

pg_prepare_dirs() {
  mkdir -p "$PG_BASE" "$PG_BASE/run" "$PG_BASE/logs"
  install -d -o postgres -g postgres -m 0755 "$PG_SOCK"
  touch "$PG_LOG"; chown postgres:postgres "$PG_LOG"
  # postgres only needs to traverse these; it owns the data dir itself.
  chmod 0755 "$PG_BASE" "$PG_BASE/run" "$PG_BASE/logs"
}

pg_ensure_db() {
  pg_psql postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
SQL
  local ext sql=""
  for ext in "${PG_EXTENSIONS[@]}"; do sql+="CREATE EXTENSION IF NOT EXISTS $ext; "; done
  pg_psql "$PG_DB" -c "$sql" \
    || die "could not create extensions (${PG_EXTENSIONS[*]}) in '$PG_DB': run scripts/install.sh"
  step "postgres: extensions in '$PG_DB': $(pg_psql "$PG_DB" -At \
    -c "SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension")"
}

pg_up() {
  if external DATABASE_URL; then
    step "postgres: DATABASE_URL is set ($(redact "$DATABASE_URL")); not starting ours"
    return
  fi
  [[ -x $PG_BIN/pg_ctl ]] || die "PostgreSQL 15 not found in $PG_BIN: run scripts/install.sh"
  pg_prepare_dirs
  if pg_running; then
    local port; port="$(pg_running_port)"
    check_same_port postgres "$port" "$PG_PORT" QUARRY_PG_PORT
    step "postgres: already running (pid $(pg_pid), port $port)"
  else
    port_busy "$PG_PORT" && port_conflict "$PG_PORT" QUARRY_PG_PORT
    pg_initdb
    pg_write_conf
    step "postgres: starting on $HOST:$PG_PORT (data $PGDATA)"
    # -w -t: wait for readiness with a bounded timeout. Its own chatter goes
    # to stderr; the server's output goes to the log (-l).
    if ! setsid -w runuser -u postgres -- sh -c 'cd / && exec "$@"' _ \
        "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t "$WAIT_SECS" -l "$PG_LOG" start \
        </dev/null >&2; then
      log_tail "$PG_LOG"
      die "PostgreSQL did not start within ${WAIT_SECS}s (log: $PG_LOG)"
    fi
  fi
  pg_ensure_db
}

pg_down() {
  if external DATABASE_URL; then step "postgres: external (DATABASE_URL), not stopping"; return; fi
  if pg_running; then
    step "postgres: stopping"
    pg_ctl stop -m fast -w -t "$WAIT_SECS" >&2
  else
    step "postgres: not running"
  fi
}

pg_status() {
  if external DATABASE_URL; then
    echo "postgres: external  DATABASE_URL=$(redact "$DATABASE_URL")"
  elif pg_running; then
    echo "postgres: running   pid $(pg_pid)  $HOST:$(pg_running_port)  data $PGDATA"
  else
    echo "postgres: stopped   (port $PG_PORT, data $PGDATA)"
  fi
}

# -------------------------------------------------------------------- Redis

redis_running() { pid_matches "$(read_pid "$REDIS_PID")" redis-server; }

redis_up() {
  if external REDIS_URL; then
    step "redis: REDIS_URL is set ($(redact "$REDIS_URL")); not starting ours"
    return
  fi
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/install.sh"
  if redis_running; then
    check_same_port redis "$(cat "$REDIS_PORT_FILE" 2>/dev/null)" "$REDIS_PORT" QUARRY_REDIS_PORT
    step "redis: already running (pid $(read_pid "$REDIS_PID"))"
    return
  fi
  port_busy "$REDIS_PORT" && port_conflict "$REDIS_PORT" QUARRY_REDIS_PORT
  rm -f "$REDIS_PID"
  echo "$REDIS_PORT" >"$REDIS_PORT_FILE"
  step "redis: starting on $HOST:$REDIS_PORT (dir $REDIS_DIR)"
  # --daemonize: redis forks, detaches and closes stdio itself; setsid and the
  # redirections make sure nothing keeps our stdout/stderr open regardless.
  # Early errors (before redis opens --logfile) land in the same log.
  # shellcheck disable=SC2094
  setsid redis-server --bind "$HOST" --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --appendonly yes --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
    </dev/null >>"$REDIS_LOG" 2>&1 \
    || { log_tail "$REDIS_LOG"; die "redis-server failed to start"; }
  local i
  for ((i = 0; i < WAIT_SECS * 2; i++)); do
    if [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then
      step "redis: ready"
      return
    fi
    sleep 0.5
  done
  log_tail "$REDIS_LOG"
  die "redis did not answer PING on $HOST:$REDIS_PORT within ${WAIT_SECS}s"
}

redis_down() {
  if external REDIS_URL; then step "redis: external (REDIS_URL), not stopping"; return; fi
  local pid; pid="$(read_pid "$REDIS_PID")"
  if ! redis_running; then step "redis: not running"; rm -f "$REDIS_PID"; return; fi
  step "redis: stopping (pid $pid)"
  # SIGTERM is redis' clean shutdown (same as SHUTDOWN: flushes the AOF).
  # Signalling our verified pid, rather than `redis-cli -p $PORT shutdown`,
  # can never stop some other redis if the port variable changed meanwhile.
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" redis
  rm -f "$REDIS_PID" "$REDIS_PORT_FILE"
}

redis_status() {
  if external REDIS_URL; then
    echo "redis:    external  REDIS_URL=$(redact "$REDIS_URL")"
  elif redis_running; then
    echo "redis:    running   pid $(read_pid "$REDIS_PID")  $HOST:$REDIS_PORT  dir $REDIS_DIR"
  else
    echo "redis:    stopped   (port $REDIS_PORT)"
  fi
}

# ------------------------------------------------------------------- Chroma

chroma_running() { pid_matches "$(read_pid "$CHROMA_PID")" chroma; }
chroma_heartbeat() { curl -fsS -m 2 "http://$HOST:$CHROMA_PORT/api/v2/heartbeat" >/dev/null 2>&1; }

chroma_up() {
  if external CHROMA_URL; then
    step "chroma: CHROMA_URL is set ($CHROMA_URL); not starting ours"
    return
  fi
  local chroma="$QUARRY_VENV/bin/chroma"
  [[ -x $chroma ]] || die "$chroma not found: run scripts/install.sh"
  if chroma_running; then
    check_same_port chroma "$(cat "$CHROMA_PORT_FILE" 2>/dev/null)" "$CHROMA_PORT" QUARRY_CHROMA_PORT
    step "chroma: already running (pid $(read_pid "$CHROMA_PID"))"
  else
    port_busy "$CHROMA_PORT" && port_conflict "$CHROMA_PORT" QUARRY_CHROMA_PORT
    echo "$CHROMA_PORT" >"$CHROMA_PORT_FILE"
    step "chroma: starting on $HOST:$CHROMA_PORT (path $CHROMA_DIR)"
    spawn_detached "$CHROMA_LOG" env ANONYMIZED_TELEMETRY=False \
      "$chroma" run --path "$CHROMA_DIR" --host "$HOST" --port "$CHROMA_PORT" >"$CHROMA_PID"
  fi
  local i pid; pid="$(read_pid "$CHROMA_PID")"
  for ((i = 0; i < WAIT_SECS * 2; i++)); do
    if chroma_heartbeat; then step "chroma: ready"; return; fi
    pid_alive "$pid" || { log_tail "$CHROMA_LOG"; die "chroma exited during startup (log: $CHROMA_LOG)"; }
    sleep 0.5
  done
  log_tail "$CHROMA_LOG"
  die "chroma did not answer /api/v2/heartbeat on $HOST:$CHROMA_PORT within ${WAIT_SECS}s"
}

chroma_down() {
  if external CHROMA_URL; then step "chroma: external (CHROMA_URL), not stopping"; return; fi
  local pid; pid="$(read_pid "$CHROMA_PID")"
  if ! chroma_running; then step "chroma: not running"; rm -f "$CHROMA_PID"; return; fi
  step "chroma: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" chroma
  rm -f "$CHROMA_PID" "$CHROMA_PORT_FILE"
}

chroma_status() {
  if external CHROMA_URL; then
    echo "chroma:   external  CHROMA_URL=$CHROMA_URL"
  elif chroma_running; then
    local hb=ok; chroma_heartbeat || hb="NOT answering"
    echo "chroma:   running   pid $(read_pid "$CHROMA_PID")  $HOST:$CHROMA_PORT  heartbeat $hb"
  else
    echo "chroma:   stopped   (port $CHROMA_PORT)"
  fi
}

# Wait up to 30s for PID to exit, then SIGKILL it (never hang on `down`).
wait_gone() { # PID NAME
  local i
  for ((i = 0; i < 60; i++)); do pid_alive "$1" || return 0; sleep 0.5; done
  warn "$2 (pid $1) did not exit after 30s; sending SIGKILL"
  kill -KILL "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------- commands

cmd_env() {
  local q
  printf -v q '%q' "${DATABASE_URL:-$OUR_DATABASE_URL}"
  echo "export DATABASE_URL=$q"
  printf -v q '%q' "${REDIS_URL:-$OUR_REDIS_URL}"
  echo "export REDIS_URL=$q"
  printf -v q '%q' "${CHROMA_URL:-$OUR_CHROMA_URL}"
  echo "export CHROMA_URL=$q"
  # The restricted role the migrations create; `quarry migrate` sets its password from this URL.
  local app_url="${DATABASE_URL:-$OUR_DATABASE_URL}"
  app_url="${app_url/#postgres:\/\/*@/postgres://$APP_USER:$APP_PASSWORD@}"
  printf -v q '%q' "${APP_DATABASE_URL:-$app_url}"
  echo "export APP_DATABASE_URL=$q"
  printf -v q '%q' "${JWT_SECRET:-$(dev_jwt_secret)}"
  echo "export JWT_SECRET=$q"
}

# A development signing secret, made once per QUARRY_HOME and kept private to root. Real
# deployments set JWT_SECRET (or JWT_JWKS_URL) from their secret manager instead.
dev_jwt_secret() {
  local file="$QUARRY_HOME/jwt-secret"
  if [[ ! -s $file ]]; then
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

main() {
  [[ $# -eq 1 ]] || { sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
  case "$1" in
    up)
      [[ $EUID -eq 0 ]] || die "stack.sh up must run as root (it runs postgres as the postgres user)"
      mkdirs
      pg_up; redis_up; chroma_up
      step "stack up; use: eval \"\$($0 env)\""
      ;;
    down) chroma_down; redis_down; pg_down ;;
    status) pg_status; redis_status; chroma_status ;;
    env) cmd_env ;;
    -h|--help) sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2 ;;
    *) die "unknown command '$1' (expected up|down|status|env)" ;;
  esac
}

main "$@"
