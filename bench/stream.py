#!/usr/bin/env python3
"""Streams through the gateway against nginx (issue 21): server-sent events
and WebSocket messages, measured in the same run, same layout as run.py
(CPU0: load generator and upstreams; CPU1: the system under test, one
worker).

SSE: the upstream (nginx on CPU0) answers every GET with a
`text/event-stream` of 10 events (~60 bytes each); wrk reads whole streams
over keep-alive. Portcullis judges each event as it passes (stack-trace
scan); nginx passes bytes (`proxy_buffering off`). Reported: streams/s,
events/s and the SUT's CPU per event.

WS: the upstream is `ws_bench echo` (CPU0); `ws_bench load` keeps 32
sockets, each sending a 64-byte text message and awaiting its echo in
turn. Portcullis relays messages (each reassembled and checked against its
limits); nginx relays bytes after the upgrade. Reported: messages/s and
the SUT's CPU per message (one message each way counts once).

Usage: python3 bench/stream.py [--reps 2] [--seconds 8]
    [--binary target/dist/portcullis] [--ws-tool target/dist/examples/ws_bench]
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import CLK_TCK, ROOT, Proc, cpu_ticks, sh, start_all, write  # noqa: E402

PORTS = {"up-sse": 18480, "up-ws": 18481, "portcullis": 18482, "nginx": 18483}
EVENT = 'event: status\\ndata: {"id":"1001","status":"shipped","at":"2026-12-08T00:00:00Z"}\\n\\n'
EVENTS = 10


def configs(d):
    up = write(
        os.path.join(d, "up.conf"),
        f"""worker_processes 1; daemon off; pid {d}/up.pid; error_log /dev/null;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{PORTS['up-sse']} backlog=4096;
    location / {{ default_type text/event-stream; return 200 '{EVENT * EVENTS}'; }} }} }}
""",
    )
    nginx = write(
        os.path.join(d, "nginx.conf"),
        f"""worker_processes 1; daemon off; pid {d}/nginx.pid; error_log /dev/null; worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{ access_log off; server_tokens off; keepalive_requests 1000000;
  upstream sse {{ server 127.0.0.1:{PORTS['up-sse']}; keepalive 64; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']} backlog=4096;
    location /events {{ proxy_pass http://sse; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }}
    location /echo {{ proxy_pass http://127.0.0.1:{PORTS['up-ws']}; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; proxy_read_timeout 60s; }} }} }}
""",
    )
    gateway = write(
        os.path.join(d, "portcullis.yaml"),
        f"""mode: dev
runtime: {{ worker_threads: 1 }}
listeners:
  - name: public
    bind: 127.0.0.1:{PORTS['portcullis']}
    plaintext: dangerous_serve
upstreams:
  sse: {{ url: "http://127.0.0.1:{PORTS['up-sse']}", dangerous_plaintext_upstream: true }}
  ws: {{ url: "http://127.0.0.1:{PORTS['up-ws']}", dangerous_plaintext_upstream: true }}
apis:
  - name: events
    upstream: sse
    routes:
      - {{ path: /events, methods: [GET], auth: public }}
  - name: sockets
    base_path: /ws
    upstream: ws
    routes:
      - {{ path: /echo, methods: [GET], auth: public }}
    websockets:
      /echo: {{}}
""",
    )
    return up, nginx, gateway


def sse(port, sut, seconds):
    url = f"http://127.0.0.1:{port}/events"
    sh(f"taskset -c 0 wrk -t1 -c32 -d2s {url}")
    pids = sut.pids()
    t0 = cpu_ticks(pids)
    out = sh(f"taskset -c 0 wrk -t1 -c32 -d{seconds}s {url}").stdout
    t1 = cpu_ticks(pids)
    rps = float(out.split("Requests/sec:")[1].split()[0])
    n = int(out.split(" requests in")[0].split()[-1])
    errors = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    cpu = (t1 - t0) / CLK_TCK * 1e6 / (n * EVENTS) if n else None
    return {"streams_per_s": rps, "events_per_s": rps * EVENTS, "cpu_us_per_event": cpu, "errors": errors}


def ws(tool, port, sut, seconds):
    path = "/ws/echo" if port == PORTS["portcullis"] else "/echo"
    url = f"ws://127.0.0.1:{port}{path}"
    sh(f"taskset -c 0 {tool} load {url} 32 2")
    pids = sut.pids()
    t0 = cpu_ticks(pids)
    out = json.loads(sh(f"taskset -c 0 {tool} load {url} 32 {seconds}").stdout)
    t1 = cpu_ticks(pids)
    n = out["messages"]
    cpu = (t1 - t0) / CLK_TCK * 1e6 / n if n else None
    return {"messages_per_s": out["per_second"], "cpu_us_per_message": cpu, "errors": out["errors"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/dist/portcullis"))
    ap.add_argument("--ws-tool", default=os.path.join(ROOT, "target/dist/examples/ws_bench"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="portcullis-stream-")
    up_conf, nginx_conf, gw_conf = configs(d)
    ups = start_all(
        (["nginx", "-c", up_conf], 0, "up-sse", PORTS["up-sse"]),
        ([a.ws_tool, "echo", str(PORTS["up-ws"])], 0, "up-ws", PORTS["up-ws"]),
    )
    results = {}
    try:
        for rep in range(a.reps):
            order = [("portcullis", [a.binary, "run", "--config", gw_conf]), ("nginx", ["nginx", "-c", nginx_conf])]
            if rep % 2:
                order.reverse()
            for name, cmd in order:
                sut = Proc(cmd, 1, name, PORTS[name])
                try:
                    results.setdefault(("SSE", name), []).append(sse(PORTS[name], sut, a.seconds))
                    results.setdefault(("WS", name), []).append(ws(a.ws_tool, PORTS[name], sut, a.seconds))
                finally:
                    sut.stop()
    finally:
        for p in ups:
            p.stop()

    def med(key, field):
        vals = sorted(r[field] for r in results[key] if r[field] is not None)
        return vals[len(vals) // 2] if vals else None

    print(f"| scenario | system | rate (median of {a.reps}) | CPU µs per event/message | errors | ratio vs nginx |")
    print("|---|---|---|---|---|---|")
    for scen, rate, cpu in (("SSE", "events_per_s", "cpu_us_per_event"), ("WS", "messages_per_s", "cpu_us_per_message")):
        peer = med((scen, "nginx"), rate)
        for name in ("portcullis", "nginx"):
            r, c = med((scen, name), rate), med((scen, name), cpu)
            errs = sum(x["errors"] for x in results[(scen, name)])
            ratio = f"{r / peer:.2f}×" if peer and r else "-"
            print(f"| {scen} | {name} | {r:,.0f}/s | {c:.1f} | {errs} | {ratio} |")
    print(json.dumps({f"{k[0]} {k[1]}": v for k, v in results.items()}, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
