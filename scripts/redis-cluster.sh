#!/usr/bin/env bash
# Starts or stops a local Redis Cluster of three masters on free loopback ports, for the
# cluster tests. Nothing is persisted; everything lives in DIR.
#
#   scripts/redis-cluster.sh start DIR   # prints the node URLs, comma-separated, on stdout
#   scripts/redis-cluster.sh stop DIR
#
# Used by scripts/redis-env.sh (REDIS_CLUSTER_URLS) and by the test harness when the
# variable is unset. Needs redis-server and redis-cli (Redis 7: cluster-port is set
# explicitly so the bus port need not be port + 10000).
set -euo pipefail

NODES=${REDIS_CLUSTER_NODES:-3}

log() { echo "redis-cluster: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {
  # wait_for DESCRIPTION COMMAND...: retries for up to 10 s.
  local what=$1
  shift
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  log "timed out waiting for $what"
  return 1
}

cluster_ok() {
  redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

start() {
  local dir=$1
  mkdir -p "$dir"
  local ports=() addrs=() urls=()
  for _ in $(seq 1 "$NODES"); do
    local port bus
    port=$(free_port)
    bus=$(free_port)
    while [ "$bus" = "$port" ]; do bus=$(free_port); done
    redis-server --port "$port" --cluster-port "$bus" --bind 127.0.0.1 \
      --cluster-enabled yes --cluster-config-file "$dir/nodes-$port.conf" \
      --cluster-node-timeout 2000 --save "" --appendonly no \
      --maxmemory-policy noeviction --dir "$dir" --daemonize yes \
      --pidfile "$dir/redis-$port.pid" --logfile "$dir/redis-$port.log" >&2
    echo "$port" >>"$dir/ports"
    ports+=("$port")
    addrs+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  for port in "${ports[@]}"; do
    wait_for "redis on port $port" redis-cli -p "$port" ping
  done
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
    >"$dir/create.log" 2>&1; then
    cat "$dir/create.log" >&2
    log "redis-cli --cluster create failed"
    return 1
  fi
  for port in "${ports[@]}"; do
    wait_for "cluster_state:ok on port $port" cluster_ok "$port"
  done
  log "cluster up on ports ${ports[*]}"
  local IFS=,
  echo "${urls[*]}"
}

stop() {
  local dir=$1
  [ -f "$dir/ports" ] || return 0
  while read -r port; do
    local pidfile="$dir/redis-$port.pid"
    if [ -f "$pidfile" ]; then
      local pid
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      # Wait for it to go, so the next run finds the ports free.
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
      done
    fi
  done <"$dir/ports"
  rm -f "$dir/ports"
}

case "${1:-}" in
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
