#!/usr/bin/env python3
"""The chart of docs/BENCHMARKS.md: server CPU per request, × the bare router, for a credential
seen before (warm) and one seen for the first time (cold), per stack and peer.

    python3 bench/chart.py WARM.json COLD.json OUT.svg [WARM_ROUND]

WARM.json and COLD.json are the results.json files of two runs of scripts/bench-http.sh: the
default run, and one with BENCH_COLD=1 (the JWT stacks without their verified-token cache).
A stack's cold figure is taken from COLD.json when it is there; the Redis session store's cold
figure is `session-redis` (no near-cache); stacks that keep nothing between requests (the peers,
the in-memory session store) cost the same either way and get one bar. WARM_ROUND (1-based)
takes the warm figures from that round rather than the median of the rounds (a round in which
every server ran at full CPU, when later rounds were disturbed by other work on the machine).
"""
import html
import json
import sys

# (label, warm stack, cold stack or None when warm and cold are the same path)
ROWS = [
    ("bare router (no authentication)", "bare", None),
    ("portcullis session, memory", "session-memory", None),
    ("tower-sessions, memory", "tower-sessions-memory", None),
    ("portcullis session, Redis + near-cache", "session-redis-near", "session-redis"),
    ("tower-sessions, Redis (fred)", "tower-sessions-redis", None),
    ("portcullis JWT HS256", "jwt-hs256", "jwt-hs256"),
    ("hand-written jsonwebtoken HS256", "handwritten-jsonwebtoken-hs256", None),
    ("jwt-authorizer HS256", "jwt-authorizer-hs256", None),
    ("portcullis JWT ES256", "jwt-es256", "jwt-es256"),
    ("portcullis JWT EdDSA", "jwt-eddsa", "jwt-eddsa"),
    ("portcullis hybrid edge HS256", "hybrid-hs256", None),
]
PEERS = {"tower-sessions-memory", "tower-sessions-redis", "handwritten-jsonwebtoken-hs256",
         "jwt-authorizer-hs256"}


def main():
    warm_path, cold_path, out = sys.argv[1:4]
    warm = json.load(open(warm_path))
    if len(sys.argv) > 4:
        index = int(sys.argv[4]) - 1
        warm = {stack: result["runs"][index] for stack, result in warm.items()}
    cold = json.load(open(cold_path))
    bare_warm = warm["bare"]["cpu_us_per_request"]
    bare_cold = cold.get("bare", warm["bare"])["cpu_us_per_request"]

    bars = []  # (label, [(kind, ratio)])
    for label, warm_stack, cold_stack in ROWS:
        if warm_stack not in warm:
            continue
        entries = [("warm", warm[warm_stack]["cpu_us_per_request"] / bare_warm)]
        if cold_stack == warm_stack and cold_stack in cold:
            entries.append(("cold", cold[cold_stack]["cpu_us_per_request"] / bare_cold))
        elif cold_stack and cold_stack in warm:
            entries.append(("cold", warm[cold_stack]["cpu_us_per_request"] / bare_warm))
        if warm_stack in PEERS:
            entries = [("peer", entries[0][1])]
        if warm_stack == "bare":
            entries = [("bare", 1.0)]
        bars.append((label, entries))

    colors = {"warm": "#1f6feb", "cold": "#9cc3ff", "peer": "#d97706", "bare": "#888888"}
    left, bar_h, gap, group_gap, width = 290, 16, 2, 10, 420
    top = 48
    top_ratio = max(ratio for _, entries in bars for _, ratio in entries)
    scale = width / top_ratio
    rows = sum(len(entries) for _, entries in bars)
    height = top + rows * (bar_h + gap) + len(bars) * group_gap + 50
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">GET /me over HTTP: server CPU per '
        'request, × the bare router (shorter is better)</text>',
        '<text x="10" y="36" fill="#555">warm: the client sends a credential the server has seen '
        'before; cold: first seen (no cache)</text>',
    ]
    y = top
    for label, entries in bars:
        svg.append(f'<text x="{left - 8}" y="{y + bar_h * 0.8}" text-anchor="end">'
                   f'{html.escape(label)}</text>')
        for kind, ratio in entries:
            w = ratio * scale
            svg.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                       f'fill="{colors[kind]}"/>')
            tag = f" {kind}" if kind in ("warm", "cold") and len(entries) > 1 else ""
            svg.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h * 0.8}">{ratio:.2f}×{tag}</text>')
            y += bar_h + gap
        y += group_gap
    x = left + scale
    svg.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y}" stroke="#444" '
               'stroke-dasharray="4 3"/>')
    legend = height - 16
    for i, (kind, text) in enumerate([("warm", "portcullis, warm"), ("cold", "portcullis, cold"),
                                      ("peer", "peer (same either way)")]):
        lx = left + i * 140
        svg.append(f'<rect x="{lx}" y="{legend - 10}" width="12" height="12" fill="{colors[kind]}"/>'
                   f'<text x="{lx + 17}" y="{legend}">{text}</text>')
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
