# Sourced by scripts/test.sh: gives the tests a throwaway PostgreSQL database and exports its URL
# as PORTCULLIS_TEST_DATABASE_URL. Everything made here is removed by postgres_env_teardown.
#
# - DATABASE_URL given: a database `portcullis_test_<pid>_<random>` is created on that server
#   and dropped at the end.
# - Otherwise a private server is started on a free loopback port (initdb into a temporary
#   directory, as the `postgres` user when run as root: initdb and postgres refuse root), with
#   the server package installed first when a fresh machine lacks it; stopped and removed at
#   the end.
#
# DATABASE_URL itself is unset afterwards: the example apps read it, and an app a test spawns
# must use PostgreSQL only when the test says so.

PG_ENV_DIR=""
PG_ENV_BIN=""
PG_ENV_ADMIN_URL=""
PG_ENV_DATABASE=""

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres_installed() {
  if [ -z "$(pg_bin_dir)" ] || ! command -v psql >/dev/null 2>&1; then
    echo "== installing postgresql"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
  fi
  PG_ENV_BIN=$(pg_bin_dir)
}

# as_postgres COMMAND...: runs COMMAND as the postgres user when we are root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_private_postgres() {
  local port
  port=$(pg_free_port)
  PG_ENV_DIR=$(mktemp -d /tmp/portcullis-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$PG_ENV_DIR"
  as_postgres "$PG_ENV_BIN/initdb" -D "$PG_ENV_DIR/data" -U postgres -A trust -E UTF8 \
    --no-sync >/dev/null
  # Durability is irrelevant to a throwaway test server; speed is not.
  as_postgres "$PG_ENV_BIN/pg_ctl" -D "$PG_ENV_DIR/data" -l "$PG_ENV_DIR/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $PG_ENV_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  PG_ENV_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

postgres_env_setup() {
  ensure_postgres_installed
  if [ -n "${DATABASE_URL:-}" ]; then
    PG_ENV_ADMIN_URL=$DATABASE_URL
  else
    start_private_postgres
  fi
  PG_ENV_DATABASE="portcullis_test_$$_$RANDOM"
  timeout 30 psql -q -v ON_ERROR_STOP=1 "$PG_ENV_ADMIN_URL" -c "CREATE DATABASE $PG_ENV_DATABASE" >/dev/null
  PORTCULLIS_TEST_DATABASE_URL=$(python3 -c '
import sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(url._replace(path="/" + sys.argv[2])))' "$PG_ENV_ADMIN_URL" "$PG_ENV_DATABASE")
  export PORTCULLIS_TEST_DATABASE_URL
  unset DATABASE_URL
}

postgres_env_teardown() {
  if [ -n "$PG_ENV_DATABASE" ] && [ -n "$PG_ENV_ADMIN_URL" ]; then
    timeout 30 psql -q "$PG_ENV_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_ENV_DATABASE WITH (FORCE)" \
      >/dev/null 2>&1 || true
  fi
  if [ -n "$PG_ENV_DIR" ]; then
    as_postgres "$PG_ENV_BIN/pg_ctl" -D "$PG_ENV_DIR/data" -m immediate -w -t 30 stop \
      >/dev/null 2>&1 || true
    rm -rf "$PG_ENV_DIR"
  fi
}
