#!/usr/bin/env bash
# A real browser against the example apps: installs Debian's Chromium and playwright-core when
# missing, builds session-app and hybrid-app, starts them on free loopback ports (hybrid-app
# with transparent refresh and 2-second access tokens), runs tests/browser/apps.test.mjs with
# node's test runner, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== installing playwright-core"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

cargo build --quiet -p session-app -p hybrid-app
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

workdir=$(mktemp -d /tmp/portcullis-browser.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start NAME ENV... : runs target/debug/NAME on a free port with the given environment and
# waits for its "listening on" line; sets STARTED_URL. (Not in a subshell: the pid must reach
# the cleanup trap.)
start() {
  local name=$1; shift
  local port log
  port=$(free_port)
  log="$workdir/$name.log"
  env -u REDIS_URL "$@" RUST_LOG=warn "$target_dir/debug/$name" --addr "127.0.0.1:$port" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    if grep -q "listening on" "$log"; then STARTED_URL="http://127.0.0.1:$port"; return 0; fi
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$log" >&2
  return 1
}

start session-app
SESSION_APP_URL=$STARTED_URL
start hybrid-app HYBRID_TRANSPARENT_REFRESH=1 ACCESS_TTL_SECS=2 JWT_LEEWAY_SECS=0
HYBRID_APP_URL=$STARTED_URL
export SESSION_APP_URL HYBRID_APP_URL HYBRID_ACCESS_TTL_SECS=2
echo "== browser tests: session-app $SESSION_APP_URL, hybrid-app $HYBRID_APP_URL"
# Bounded: each test may take 2 minutes, the whole run 5 (a wedged browser fails, never hangs CI).
(cd tests/browser && timeout --kill-after=10 300 \
  node --test --test-concurrency=1 --test-timeout=120000 apps.test.mjs)
