#!/usr/bin/env bash
# Throughput and latency of every benchmark stack over real HTTP on 127.0.0.1.
#
#   scripts/bench-http.sh [STACK ...]
#
# Each stack's server (bench/src/bin/bench-server.rs, one current-thread runtime) runs pinned to
# core 0 with `taskset -c 0`; wrk runs pinned to core 1 for a fixed duration. Before a stack is
# measured, curl checks that GET /me answers 200 with alice (and 401 without the credential), and
# after it wrk's count of non-2xx answers must be zero: no fast 401 is ever counted. The Redis
# stacks use a private redis-server (no persistence) on core 1 unless REDIS_URL is set.
#
# Settings (environment): BENCH_DURATION (seconds per stack, default 10), BENCH_WARMUP (default
# 2), BENCH_CONNECTIONS (default 32), BENCH_OUT (default target/bench-http), BENCH_CHART (default
# docs/benchmarks-http.svg). Prints a markdown table (req/s, p50, p99, server CPU, ratio to bare and
# to the matching peer) and writes results.json, results.md and the SVG chart.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
OUT=${BENCH_OUT:-$ROOT/target/bench-http}
CHART=${BENCH_CHART:-$ROOT/docs/benchmarks-http.svg}
SERVER_CORE=${BENCH_SERVER_CORE:-0}
LOAD_CORE=${BENCH_LOAD_CORE:-1}

ALL_STACKS=(bare session-memory tower-sessions-memory session-redis tower-sessions-redis
  jwt-hs256 handwritten-jsonwebtoken-hs256 jwt-authorizer-hs256 jwt-es256 jwt-eddsa hybrid-hs256)
if [ $# -gt 0 ]; then STACKS=("$@"); else STACKS=("${ALL_STACKS[@]}"); fi

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "needs two cores (server on one, load on the other); this machine has $(nproc)" >&2
  exit 1
fi

echo "== building bench-server (release)" >&2
cargo build --release -q -p portcullis-bench --bin bench-server
SERVER_BIN=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/bench-server

mkdir -p "$OUT"
rm -f "$OUT"/*.wrk "$OUT"/*.server.log "$OUT"/*.json
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

if [ -z "${REDIS_URL:-}" ]; then
  port=$(free_port)
  mkdir -p "$OUT/redis"
  taskset -c "$LOAD_CORE" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$OUT/redis" --daemonize no --logfile "$OUT/redis/redis.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  export REDIS_URL="redis://127.0.0.1:$port"
fi

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for stack in "${STACKS[@]}"; do
  log="$OUT/$stack.server.log"
  taskset -c "$SERVER_CORE" "$SERVER_BIN" --stack "$stack" --addr 127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do grep -q '^credential: ' "$log" && break; sleep 0.05; done
  addr=$(sed -n 's|^listening on ||p' "$log")
  credential=$(sed -n 's|^credential: ||p' "$log")
  if [ -z "$addr" ] || [ -z "$credential" ]; then
    echo "!! $stack did not start:" >&2
    cat "$log" >&2
    exit 1
  fi

  # The pre-check: 200 with alice when signed in; 401 without the credential (except bare).
  body=$(curl -sS -H "$credential" -w '\n%{http_code}' "$addr/me")
  if [ "$(tail -n1 <<<"$body")" != 200 ] || ! grep -q '"user":"alice"' <<<"$body"; then
    echo "!! $stack: GET /me with the credential answered: $body" >&2
    exit 1
  fi
  anonymous=$(curl -sS -o /dev/null -w '%{http_code}' "$addr/me")
  if [ "$stack" != bare ] && [ "$anonymous" != 401 ]; then
    echo "!! $stack: GET /me without a credential answered $anonymous, not 401" >&2
    exit 1
  fi

  taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -H "$credential" "$addr/me" >/dev/null
  before=$(cpu_ticks "$pid")
  taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$credential" \
    "$addr/me" >"$OUT/$stack.wrk"
  after=$(cpu_ticks "$pid")
  echo "$(( (after - before) * 100 / $(getconf CLK_TCK) / DURATION ))" >"$OUT/$stack.cpu"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf '.. %-32s %s\n' "$stack" "$(grep 'Requests/sec' "$OUT/$stack.wrk")" >&2
done

python3 - "$OUT" "$CHART" "$DURATION" "$CONNECTIONS" "${STACKS[@]}" <<'PY'
import json, re, sys, html

out, chart, duration, connections, stacks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]

# The peer each portcullis stack is compared with (and the one the targets name).
PEER = {
    "session-memory": "tower-sessions-memory",
    "session-redis": "tower-sessions-redis",
    "jwt-hs256": "handwritten-jsonwebtoken-hs256",
    "hybrid-hs256": "jwt-hs256",
}

def seconds(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

results = {}
failed = False
for stack in stacks:
    text = open(f"{out}/{stack}.wrk").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = seconds(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = seconds(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    non2xx = int(non2xx.group(1)) if non2xx else 0
    if non2xx:
        failed = True
        print(f"!! {stack}: {non2xx} of {requests} answers were not 2xx", file=sys.stderr)
    cpu = int(open(f"{out}/{stack}.cpu").read())
    results[stack] = {"rps": rps, "p50_s": p50, "p99_s": p99, "requests": requests,
                      "non_2xx": non2xx, "socket_errors": errors.group(1) if errors else None,
                      "server_cpu_percent": cpu}

bare = results.get("bare", {}).get("rps")
rows = ["| stack | req/s | p50 | p99 | server CPU | × bare | × peer (peer) |",
        "|---|---:|---:|---:|---:|---:|---|"]
for stack, r in results.items():
    to_bare = f"{r['rps'] / bare:.3f}" if bare else "—"
    peer = PEER.get(stack)
    to_peer = (f"{r['rps'] / results[peer]['rps']:.3f} ({peer})"
               if peer in results else "—")
    rows.append(f"| {stack} | {r['rps']:,.0f} | {r['p50_s'] * 1e6:,.0f} µs | "
                f"{r['p99_s'] * 1e6:,.0f} µs | {r['server_cpu_percent']}% | {to_bare} | {to_peer} |")
table = "\n".join(rows)

def ratio(a, b):
    return results[a]["rps"] / results[b]["rps"] if a in results and b in results else None

targets = [
    ("jwt-hs256 ≥ 0.95 × bare", ratio("jwt-hs256", "bare"), 0.95),
    ("session-memory ≥ 0.95 × bare", ratio("session-memory", "bare"), 0.95),
    ("session-memory > tower-sessions-memory", ratio("session-memory", "tower-sessions-memory"), 1.0),
    ("session-redis ≥ 1.3 × tower-sessions-redis", ratio("session-redis", "tower-sessions-redis"), 1.3),
    ("hybrid-hs256 ≥ 0.95 × jwt-hs256", ratio("hybrid-hs256", "jwt-hs256"), 0.95),
    ("jwt-hs256 vs jwt-authorizer-hs256 (no target)", ratio("jwt-hs256", "jwt-authorizer-hs256"), None),
]
lines = []
for name, value, goal in targets:
    if value is None:
        continue
    verdict = "" if goal is None else ("met" if value >= goal else "MISSED")
    lines.append(f"| {name} | {value:.3f} | {verdict} |")
target_table = "| target | ratio | |\n|---|---:|---|\n" + "\n".join(lines)

report = (f"wrk -t1 -c{connections} -d{duration}s, server on one core, wrk on the other\n\n"
          f"{table}\n\n{target_table}\n")
print(report)
open(f"{out}/results.md", "w").write(report)
json.dump(results, open(f"{out}/results.json", "w"), indent=2)

# The chart: one horizontal bar per stack, req/s, bare as the reference line.
colors = {"bare": "#888888"}
for stack in results:
    if stack.startswith(("session-", "jwt-h", "jwt-e", "hybrid-")) and stack != "jwt-authorizer-hs256":
        colors.setdefault(stack, "#1f6feb")
    else:
        colors.setdefault(stack, "#d97706")
left, bar_h, gap, width = 240, 22, 8, 460
top = 40
height = top + len(results) * (bar_h + gap) + 40
top_rps = max(r["rps"] for r in results.values())
scale = width / top_rps
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
       f'font-family="sans-serif" font-size="13">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="10" y="22" font-size="15" font-weight="bold">GET /me over HTTP: requests per '
       f'second (one server core, wrk -c{connections}, {duration}s)</text>']
for i, (stack, r) in enumerate(results.items()):
    y = top + i * (bar_h + gap)
    w = r["rps"] * scale
    svg.append(f'<text x="{left - 8}" y="{y + bar_h * 0.72}" text-anchor="end">{html.escape(stack)}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors[stack]}"/>')
    label = f'{r["rps"]:,.0f}' + (f' ({r["rps"] / bare:.2f}× bare)' if bare else "")
    svg.append(f'<text x="{left + w + 6:.1f}" y="{y + bar_h * 0.72}">{label}</text>')
if bare:
    x = left + bare * scale
    svg.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 30}" stroke="#444" '
               'stroke-dasharray="4 3"/>')
legend_y = height - 12
svg.append(f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" fill="#1f6feb"/>'
           f'<text x="{left + 18}" y="{legend_y}">portcullis</text>'
           f'<rect x="{left + 110}" y="{legend_y - 10}" width="12" height="12" fill="#d97706"/>'
           f'<text x="{left + 128}" y="{legend_y}">peers</text>'
           f'<rect x="{left + 200}" y="{legend_y - 10}" width="12" height="12" fill="#888888"/>'
           f'<text x="{left + 218}" y="{legend_y}">bare router (no auth)</text>')
svg.append("</svg>")
open(chart, "w").write("\n".join(svg) + "\n")
print(f"chart: {chart}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
