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
# The stacks are measured in BENCH_ROUNDS interleaved rounds (a fresh server each time) and each
# figure is the median over the rounds, so a burst of other work on the machine hits one sample,
# not one stack. Besides req/s and latency the script reads the server's own CPU time
# (/proc/PID/schedstat) and reports CPU µs per request: on a machine shared with other work that
# is the steadier measure of what a stack costs. As root, server and wrk run at nice -10.
#
# Settings (environment): BENCH_PATH (the route wrk loads, default /me; /public asks for nobody),
# BENCH_COLD=1 (the JWT stacks without their verified-token cache), BENCH_DURATION (seconds per run, default 5), BENCH_ROUNDS (default 3),
# BENCH_WARMUP (default 1), BENCH_CONNECTIONS (default 32), BENCH_OUT (default
# target/bench-http), BENCH_CHART (default $BENCH_OUT/chart.svg; bench/chart.py draws the chart of docs/BENCHMARKS.md). Prints markdown tables (req/s,
# p50, p99, server CPU µs per request, ratios to bare and to the matching peer, the targets) and
# writes results.json, results.md and the SVG chart.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
OUT=${BENCH_OUT:-$ROOT/target/bench-http}
CHART=${BENCH_CHART:-$OUT/chart.svg}
SERVER_CORE=${BENCH_SERVER_CORE:-0}
LOAD_PATH=${BENCH_PATH:-/me}
LOAD_CORE=${BENCH_LOAD_CORE:-1}

ALL_STACKS=(bare session-memory tower-sessions-memory session-redis session-redis-near tower-sessions-redis
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
rm -f "$OUT"/*.wrk "$OUT"/*.cpu "$OUT"/*.server.log "$OUT"/*.json
NICE=()
if [ "$(id -u)" = 0 ]; then NICE=(nice -n -10); fi
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
  "${NICE[@]}" taskset -c "$LOAD_CORE" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$OUT/redis" --daemonize no --logfile "$OUT/redis/redis.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  export REDIS_URL="redis://127.0.0.1:$port"
fi

# Nanoseconds a process has spent on a CPU.
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }

for round in $(seq 1 "$ROUNDS"); do
for stack in "${STACKS[@]}"; do
  log="$OUT/$stack.server.log"
  : >"$log"
  "${NICE[@]}" taskset -c "$SERVER_CORE" "$SERVER_BIN" --stack "$stack" --addr 127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do grep -qs '^credential: ' "$log" && break; sleep 0.05; done
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

  "${NICE[@]}" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -H "$credential" \
    "$addr$LOAD_PATH" >/dev/null
  before=$(cpu_ns "$pid")
  "${NICE[@]}" taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -H "$credential" "$addr$LOAD_PATH" >"$OUT/$stack.$round.wrk"
  after=$(cpu_ns "$pid")
  echo $((after - before)) >"$OUT/$stack.$round.cpu"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf '.. round %s %-32s %s\n' "$round" "$stack" "$(grep 'Requests/sec' "$OUT/$stack.$round.wrk")" >&2
done
done

python3 - "$OUT" "$CHART" "$DURATION" "$CONNECTIONS" "$ROUNDS" "${STACKS[@]}" <<'PY'
import json, re, sys, html, statistics

out, chart, duration, connections, rounds = sys.argv[1:6]
stacks = sys.argv[6:]

# The peer each portcullis stack is compared with (and the one the targets name).
PEER = {
    "session-memory": "tower-sessions-memory",
    "session-redis": "tower-sessions-redis",
    "session-redis-near": "tower-sessions-redis",
    "jwt-hs256": "handwritten-jsonwebtoken-hs256",
    "hybrid-hs256": "jwt-hs256",
}

def seconds(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

results = {}
failed = False
for stack in stacks:
    runs = []
    for round_ in range(1, int(rounds) + 1):
        text = open(f"{out}/{stack}.{round_}.wrk").read()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        p50 = seconds(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
        p99 = seconds(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
        requests = int(re.search(r"(\d+) requests in", text).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        non2xx = int(non2xx.group(1)) if non2xx else 0
        errors = re.search(r"Socket errors: (.*)", text)
        if non2xx:
            failed = True
            print(f"!! {stack} round {round_}: {non2xx} of {requests} answers were not 2xx",
                  file=sys.stderr)
        cpu_ns = int(open(f"{out}/{stack}.{round_}.cpu").read())
        runs.append({"rps": rps, "p50_s": p50, "p99_s": p99, "requests": requests,
                     "non_2xx": non2xx, "socket_errors": errors.group(1) if errors else None,
                     "cpu_us_per_request": cpu_ns / 1000 / requests,
                     "server_cpu_percent": cpu_ns / 1e7 / float(duration)})
    median = {key: statistics.median(run[key] for run in runs)
              for key in ("rps", "p50_s", "p99_s", "cpu_us_per_request", "server_cpu_percent")}
    median["non_2xx"] = sum(run["non_2xx"] for run in runs)
    median["runs"] = runs
    results[stack] = median

bare = results.get("bare", {}).get("rps")
bare_cpu = results.get("bare", {}).get("cpu_us_per_request")
rows = ["| stack | req/s | p50 | p99 | server CPU | CPU µs/request | req/s × bare | CPU: bare ÷ ours | "
        "req/s × peer | CPU: peer ÷ ours | peer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
for stack, r in results.items():
    peer = PEER.get(stack) if PEER.get(stack) in results else None
    cells = [stack, f"{r['rps']:,.0f}", f"{r['p50_s'] * 1e6:,.0f} µs", f"{r['p99_s'] * 1e6:,.0f} µs",
             f"{r['server_cpu_percent']:.0f}%", f"{r['cpu_us_per_request']:.1f}",
             f"{r['rps'] / bare:.3f}" if bare else "—",
             f"{bare_cpu / r['cpu_us_per_request']:.3f}" if bare_cpu else "—",
             f"{r['rps'] / results[peer]['rps']:.3f}" if peer else "—",
             f"{results[peer]['cpu_us_per_request'] / r['cpu_us_per_request']:.3f}" if peer else "—",
             peer or "—"]
    rows.append("| " + " | ".join(cells) + " |")
table = "\n".join(rows)

def ratio(a, b):
    return results[a]["rps"] / results[b]["rps"] if a in results and b in results else None

def cpu_ratio(a, b):
    # What b's CPU per request is to a's: the throughput ratio of two CPU-bound servers.
    if a in results and b in results:
        return results[b]["cpu_us_per_request"] / results[a]["cpu_us_per_request"]
    return None

# Issue 15's targets, as throughput ratios (ours ÷ reference; a cost of ≤ 1.15 × bare is a
# throughput of ≥ 1/1.15 × bare).
targets = [
    ("jwt-hs256 cost ≤ 1.15 × bare", "jwt-hs256", "bare", 1 / 1.15),
    ("jwt-es256 cost ≤ 1.15 × bare", "jwt-es256", "bare", 1 / 1.15),
    ("jwt-eddsa cost ≤ 1.15 × bare", "jwt-eddsa", "bare", 1 / 1.15),
    ("hybrid-hs256 cost ≤ 1.15 × bare", "hybrid-hs256", "bare", 1 / 1.15),
    ("session-memory cost ≤ 1.10 × bare", "session-memory", "bare", 1 / 1.10),
    ("session-redis-near cost ≤ 1.35 × bare", "session-redis-near", "bare", 1 / 1.35),
    ("session-redis-near ≥ 1.8 × tower-sessions-redis", "session-redis-near", "tower-sessions-redis", 1.8),
    ("jwt-hs256 vs jwt-authorizer-hs256 (no target)", "jwt-hs256", "jwt-authorizer-hs256", None),
]
lines = []
for name, a, b, goal in targets:
    by_rps, by_cpu = ratio(a, b), cpu_ratio(a, b)
    if by_rps is None:
        continue
    verdict = lambda v: "" if goal is None else ("met" if v >= goal else "MISSED")
    lines.append(f"| {name} | {by_rps:.3f} {verdict(by_rps)} | {by_cpu:.3f} {verdict(by_cpu)} |")
target_table = ("| target | by req/s | by server CPU per request |\n|---|---:|---:|\n"
                + "\n".join(lines))

report = (f"wrk -t1 -c{connections} -d{duration}s × {rounds} interleaved rounds (medians), "
          f"server on one core, wrk on the other\n\n"
          f"{table}\n\n{target_table}\n")
print(report)
open(f"{out}/results.md", "w").write(report)
json.dump(results, open(f"{out}/results.json", "w"), indent=2)
json.dump(results, open(chart.rsplit(".", 1)[0] + ".json", "w"), indent=2)

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
       f'second (one server core, wrk -c{connections}, median of {rounds} × {duration}s)</text>']
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
