# Sourced by scripts/test.sh: makes sure the tests have a Redis (and a Redis Cluster, and a
# TLS-only Redis with an ACL user) on loopback, starting private ones when none is given.
# Everything started here is stopped by redis_env_teardown.

REDIS_ENV_DIR=""
REDIS_ENV_PIDS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  fi
  # scripts/redis-tls.sh generates its certificates with openssl.
  if ! command -v openssl >/dev/null 2>&1; then
    echo "== installing openssl"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl) >/dev/null
  fi
}

wait_for_redis() {
  local port=$1
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "redis on port $port did not start" >&2
  return 1
}

start_private_redis() {
  local port
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --maxmemory-policy noeviction --dir "$REDIS_ENV_DIR" --daemonize no \
    --logfile "$REDIS_ENV_DIR/redis-$port.log" &
  REDIS_ENV_PIDS+=($!)
  wait_for_redis "$port"
  export REDIS_URL="redis://127.0.0.1:$port"
}

redis_env_setup() {
  ensure_redis_installed
  REDIS_ENV_DIR=$(mktemp -d /tmp/portcullis-redis.XXXXXX)
  if [ -z "${REDIS_URL:-}" ]; then
    start_private_redis
  fi
  if [ -z "${REDIS_CLUSTER_URLS:-}" ] && [ -x scripts/redis-cluster.sh ]; then
    REDIS_CLUSTER_URLS=$(scripts/redis-cluster.sh start "$REDIS_ENV_DIR/cluster")
    export REDIS_CLUSTER_URLS
  fi
  # rediss:// with an ACL user, as managed services run it (tests/tests/redis_tls.rs).
  if [ -z "${REDIS_TLS_URL:-}" ] && [ -x scripts/redis-tls.sh ]; then
    REDIS_TLS_URL=$(scripts/redis-tls.sh start "$REDIS_ENV_DIR/tls")
    REDIS_TLS_CA_FILE="$REDIS_ENV_DIR/tls/ca.pem"
    export REDIS_TLS_URL REDIS_TLS_CA_FILE
  fi
}

redis_env_teardown() {
  if [ -x scripts/redis-cluster.sh ] && [ -n "$REDIS_ENV_DIR" ] && [ -d "$REDIS_ENV_DIR/cluster" ]; then
    scripts/redis-cluster.sh stop "$REDIS_ENV_DIR/cluster" || true
  fi
  if [ -x scripts/redis-tls.sh ] && [ -n "$REDIS_ENV_DIR" ] && [ -d "$REDIS_ENV_DIR/tls" ]; then
    scripts/redis-tls.sh stop "$REDIS_ENV_DIR/tls" || true
  fi
  for pid in "${REDIS_ENV_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$REDIS_ENV_DIR" ] && rm -rf "$REDIS_ENV_DIR"
}
