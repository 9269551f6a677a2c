#!/usr/bin/env python3
"""Tables of the in-process benchmark from criterion's results:
`python3 bench/report.py [TARGET_DIR]` after `cargo bench -p portcullis-bench --bench stacks`.

Prints markdown: ns per GET /me and GET /public per stack (criterion's median), overhead over
the bare router, ratio to the matching peer, the JWT verification baselines, the scale table
and the targets that are judged in-process.
"""
import glob, json, os, sys

target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target")
results = {}
for path in glob.glob(os.path.join(target, "criterion", "**", "new", "benchmark.json"), recursive=True):
    meta = json.load(open(path))
    estimates = json.load(open(os.path.join(os.path.dirname(path), "estimates.json")))
    results[(meta["group_id"], meta["function_id"])] = estimates["median"]["point_estimate"]

PEER = {
    "session-memory": "tower-sessions-memory",
    "session-redis": "tower-sessions-redis",
    "jwt-hs256": "handwritten-jsonwebtoken-hs256",
    "hybrid-hs256": "jwt-hs256",
}
ORDER = ["bare", "session-memory", "tower-sessions-memory", "session-redis", "tower-sessions-redis",
         "jwt-hs256", "handwritten-jsonwebtoken-hs256", "jwt-authorizer-hs256", "jwt-es256",
         "jwt-eddsa", "hybrid-hs256"]

def ns(v):
    return f"{v:,.0f} ns" if v < 10_000 else f"{v / 1000:,.1f} µs"

for group, title in [("me", "GET /me (the handler asks for the user)"),
                     ("public", "GET /public (nobody asks; same credential sent)")]:
    bare = results.get((group, "bare"))
    print(f"### {title}\n")
    print("| stack | time/request | overhead over bare | × bare cost | peer time ÷ ours (peer) |")
    print("|---|---:|---:|---:|---|")
    for stack in ORDER:
        v = results.get((group, stack))
        if v is None:
            continue
        peer = PEER.get(stack)
        pv = results.get((group, peer)) if peer else None
        print(f"| {stack} | {ns(v)} | {ns(v - bare) if bare else '—'} | "
              f"{v / bare:.2f} | {f'{pv / v:.2f} ({peer})' if pv else '—'} |")
    print()

print("### JWT verification alone\n")
print("| algorithm | jsonwebtoken::decode | portcullis TokenVerifier | BearerLayer overhead over bare (GET /me) | overhead ÷ decode |")
print("|---|---:|---:|---:|---:|")
for alg, stack in [("hs256", "jwt-hs256"), ("es256", "jwt-es256"), ("eddsa", "jwt-eddsa")]:
    d = results.get(("decode", f"jsonwebtoken-{alg}"))
    p = results.get(("decode", f"portcullis-verify-{alg}"))
    me, bare = results.get(("me", stack)), results.get(("me", "bare"))
    if d is None:
        continue
    over = me - bare if me and bare else None
    print(f"| {alg.upper()} | {ns(d)} | {ns(p) if p else '—'} | {ns(over) if over else '—'} | "
          f"{over / d:.2f} |" if over else "— |")
print()

print("### GET /me on session-memory as live sessions grow\n")
print("| live sessions | time/request | × 1k |")
print("|---:|---:|---:|")
base = results.get(("scale", "session-memory/1k"))
for label in ["1k", "100k", "1m"]:
    v = results.get(("scale", f"session-memory/{label}"))
    if v is not None:
        print(f"| {label.upper()} | {ns(v)} | {v / base:.2f} |")
print()

def r(group, a, b):
    x, y = results.get((group, a)), results.get((group, b))
    return (x, y)

print("### In-process targets\n")
print("| target | value | |\n|---|---:|---|")
checks = []
me = lambda s: results.get(("me", s))
if me("jwt-hs256") and me("bare"):
    checks.append(("jwt-hs256 throughput ≥ 0.95 × bare (bare time ÷ ours)", me("bare") / me("jwt-hs256"), 0.95))
    d = results.get(("decode", "jsonwebtoken-hs256"))
    if d:
        checks.append(("jwt-hs256 per-request cost ≤ 1.1 × raw decode (overhead ÷ decode)",
                       (me("jwt-hs256") - me("bare")) / d, -1.1))
if me("session-memory") and me("bare"):
    checks.append(("session-memory throughput ≥ 0.95 × bare", me("bare") / me("session-memory"), 0.95))
if me("session-memory") and me("tower-sessions-memory"):
    checks.append(("session-memory ahead of tower-sessions-memory (theirs ÷ ours)",
                   me("tower-sessions-memory") / me("session-memory"), 1.0))
if me("session-redis") and me("tower-sessions-redis"):
    checks.append(("session-redis ≥ 1.3 × tower-sessions-redis (theirs ÷ ours)",
                   me("tower-sessions-redis") / me("session-redis"), 1.3))
if me("hybrid-hs256") and me("jwt-hs256"):
    checks.append(("hybrid-hs256 ≥ 0.95 × jwt-hs256 (jwt ÷ hybrid)", me("jwt-hs256") / me("hybrid-hs256"), 0.95))
for name, value, goal in checks:
    ok = value <= -goal if goal < 0 else value >= goal
    print(f"| {name} | {value:.3f} | {'met' if ok else 'MISSED'} |")
