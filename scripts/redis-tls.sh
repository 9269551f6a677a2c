#!/usr/bin/env bash
# Starts or stops a local Redis that speaks only TLS and requires an ACL user, the way managed
# Redis services are deployed, for the `rediss://` tests (tests/tests/redis_tls.rs).
#
#   scripts/redis-tls.sh start DIR   # prints the rediss:// URL (with the ACL user) on stdout;
#                                    # DIR/ca.pem is the CA to trust
#   scripts/redis-tls.sh stop DIR
#
# A throw-away CA and a server certificate for 127.0.0.1 and localhost are generated with
# openssl in DIR. The default user is off; the ACL user `portcullis` may only touch keys of
# the test prefixes (`pct-*`, `{pct-*`), any channel, and no @dangerous command: the stores
# must work within that. Used by scripts/redis-env.sh (REDIS_TLS_URL, REDIS_TLS_CA_FILE) and by
# the test harness when those are unset. Needs redis-server built with TLS (Debian's is),
# redis-cli and openssl. Everything is bounded: the server must answer within 10 s.
set -euo pipefail

log() { echo "redis-tls: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

certificates() {
  local dir=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=portcullis test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
  chmod 600 "$dir/ca.key" "$dir/server.key"
}

start() {
  local dir=$1
  mkdir -p "$dir"
  certificates "$dir"
  local port password
  port=$(free_port)
  password=$(openssl rand -hex 16)
  cat >"$dir/redis.conf" <<EOF
port 0
tls-port $port
bind 127.0.0.1
tls-cert-file $dir/server.pem
tls-key-file $dir/server.key
tls-ca-cert-file $dir/ca.pem
tls-auth-clients no
save ""
appendonly no
maxmemory-policy noeviction
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
user default off
user portcullis on >$password ~pct-* ~{pct-* &* +@all -@dangerous
EOF
  chmod 600 "$dir/redis.conf"
  if ! redis-server "$dir/redis.conf" >&2; then
    log "redis-server refused the TLS configuration (built without TLS?); see $dir/redis.log"
    return 1
  fi
  for _ in $(seq 1 200); do
    if [ "$(REDISCLI_AUTH=$password redis-cli --tls --cacert "$dir/ca.pem" -h 127.0.0.1 \
      -p "$port" --user portcullis ping 2>/dev/null)" = "PONG" ]; then
      echo "rediss://portcullis:$password@127.0.0.1:$port"
      return 0
    fi
    sleep 0.05
  done
  log "the TLS redis-server on port $port did not answer within 10 s; see $dir/redis.log"
  stop "$dir"
  return 1
}

stop() {
  local dir=$1
  if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
}

case "${1:-}" in
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
