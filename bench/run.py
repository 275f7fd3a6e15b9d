#!/usr/bin/env python3
"""Portcullis benchmarks against nginx and HAProxy, per shared BENCH.md.

Layout (2 cores): CPU0 runs the load generator and the upstream (nginx, one
worker, fixed ~140-byte JSON); CPU1 runs the system under test with one
worker. Loopback only; every run is bounded in time. Prints one table with
req/s, CPU microseconds per request of the SUT, p50/p99 at a fixed rate,
and ratios against peers measured in the same run.

Usage: bench/run.sh [--quick] [--scenarios S0,S1,S2,S2c,S2m,S2mc,S3,S4,S5,S6,S7,S8,S9]

S3 (tokens), S4 (API keys), S8 (every control) and S9 (rejections) are
described in bench/auth.py.

S5: a per-client rate limit that is not reached; S5b: the 429 path; "S5
redis": Portcullis with the limit kept in Redis (redis-server on CPU0).
Peers: HAProxy stick table + `sc_http_req_rate`, nginx `limit_req`.
The S5 block also runs "S1 pool": S1 through an upstream of three targets
(three ports of the same upstream nginx), against S1 in the same block.

S2m/S2mc: S2 with mutual TLS (client certificate required, checked against
a CRL), keep-alive and one new connection per request. wrk cannot present
a client certificate, so these use oha (--cert/--key) for every system
under test alike.

S6 (OpenAPI request validation) has no installable peer: it is compared with
the gateway's own S6base in the same run, the same POST bodies (217 B and
4 KiB) through an API without a contract.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import auth
import memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = '{"id":"1001","item":"book","quantity":1,"status":"shipped","total":{"amount":"12.50","currency":"EUR"},"tags":["a","b"]}'
PORTS = {
    "upstream": 18080,
    "portcullis": 18181,
    "portcullis-tls": 18182,
    "nginx": 18281,
    "nginx-tls": 18282,
    "nginx-tls-hdr": 18283,
    "haproxy": 18381,
    "haproxy-tls": 18382,
    "haproxy-tls-hdr": 18383,
    "portcullis-contract": 18184,
    "portcullis-mtls": 18185,
    "portcullis-s5": 18186,
    "portcullis-s5b": 18187,
    "portcullis-s5r": 18188,
    "redis": 18090,
    "nginx-s5": 18285,
    "nginx-s5b": 18286,
    "haproxy-s5": 18385,
    "haproxy-s5b": 18386,
    "nginx-mtls": 18284,
    "haproxy-mtls": 18384,
    "portcullis-auth": 18189,
    "portcullis-s8": 18190,
    "portcullis-auth-nc": 18191,
    "haproxy-s3es": 18387,
    "haproxy-s3rs": 18388,
    "haproxy-s4": 18389,
    "haproxy-s8": 18391,
    "portcullis-pool": 18192,
}

# S6: a 217-byte order and a 4 KiB one, both valid against OPENAPI below.
BODY_217 = '{"item":"book","quantity":2,"gift_note":"Happy birthday, see you soon!!!!!","customer":{"name":"Alice Example","city":"Lyon","country":"FR"},"tags":["gift","priority"],"delivery":"standard","coupon":"SPRING-2026-VIP"}'
BODY_4K = (
    '{"item":"book","quantity":2,"customer":{"name":"Alice Example","city":"Lyon","country":"FR"},"lines":['
    + ",".join('{"sku":"SKU-%06d","quantity":%d,"note":"handle with care"}' % (i, i % 9 + 1) for i in range(66))
    + '],"tags":["gift"],"delivery":"standard"}'
)
# The S6 contract; also used by `cargo run --release -p portcullis-contract --example cost`.
OPENAPI = open(os.path.join(ROOT, "bench", "s6-openapi.yaml")).read()
CLK_TCK = os.sysconf("SC_CLK_TCK")


# Global and default sections of every HAProxy config used here.
HAPROXY_HEAD = """global
  nbthread 1
  maxconn 9980
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
"""

HARDENING = [
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True, capture_output=True, **kw)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except FileNotFoundError:
            pass
    return total


def children(pid):
    """The pid and all its descendants (nginx/haproxy workers)."""
    out = [pid]
    try:
        kids = sh(f"pgrep -P {pid}").stdout.split()
    except subprocess.CalledProcessError:
        kids = []
    for k in kids:
        out += children(int(k))
    return out


def wait_port(port, timeout=15):
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def port_free(port):
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return False
    except OSError:
        return True


class Proc:
    def __init__(self, cmd, cpu, name, port):
        self.name = name
        # A leftover from an interrupted run would answer in our place.
        if not port_free(port):
            raise RuntimeError(f"port {port} is already in use: stop the old process first")
        self.p = subprocess.Popen(
            ["taskset", "-c", str(cpu)] + cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_port(port)
        except RuntimeError:
            self.stop()
            raise

    def pids(self):
        return children(self.p.pid)

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)


def start_all(*specs):
    """Starts every process, or none: a failure stops those already started."""
    started = []
    try:
        for spec in specs:
            started.append(Proc(*spec))
    except Exception:
        for p in started:
            p.stop()
        raise
    return started


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def make_certs(d):
    key = os.path.join(d, "key.pem")
    cert = os.path.join(d, "cert.pem")
    sh(
        f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        f"-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
        f"-keyout {key} -out {cert}"
    )
    os.chmod(key, 0o600)
    write(os.path.join(d, "combined.pem"), open(cert).read() + open(key).read())
    return cert, key


def make_client_pki(d):
    """A client CA, a client certificate it issued, and its (empty) CRL."""
    j = lambda n: os.path.join(d, n)
    sh(
        f"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-client-ca "
        f"-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign "
        f"-keyout {j('client-ca.key')} -out {j('client-ca.pem')}"
    )
    sh(
        f"openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-client "
        f"-keyout {j('client.key')} -out {j('client.csr')}"
    )
    write(j("client.ext"), "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:client.bench\n")
    sh(
        f"openssl x509 -req -in {j('client.csr')} -CA {j('client-ca.pem')} -CAkey {j('client-ca.key')} "
        f"-CAcreateserial -days 2 -extfile {j('client.ext')} -out {j('client.pem')}"
    )
    write(j("index.txt"), "")
    write(j("crlnumber"), "01\n")
    # A v2 CRL (CRL number, AKI), as RFC 5280 profiles and webpki require.
    write(
        j("ca.cnf"),
        f"[ca]\ndefault_ca=c\n[c]\ndatabase={j('index.txt')}\ncrlnumber={j('crlnumber')}\n"
        "default_md=sha256\ndefault_crl_days=2\ncrl_extensions=crl_ext\n[crl_ext]\nauthorityKeyIdentifier=keyid:always\n",
    )
    sh(
        f"openssl ca -batch -gencrl -config {j('ca.cnf')} -keyfile {j('client-ca.key')} "
        f"-cert {j('client-ca.pem')} -out {j('client-ca.crl')}"
    )
    for k in ("client-ca.key", "client.key"):
        os.chmod(j(k), 0o600)
    return j("client-ca.pem"), j("client-ca.crl"), j("client.pem"), j("client.key")


def configs(d, cert, key):
    up = PORTS["upstream"]
    upstream = write(
        os.path.join(d, "upstream.conf"),
        f"""worker_processes 1; daemon off; pid {d}/upstream.pid; error_log /dev/null;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{up} backlog=4096; listen 127.0.0.1:{up + 1} backlog=4096; listen 127.0.0.1:{up + 2} backlog=4096;
    location / {{ default_type application/json; return 200 '{BODY}'; }} }} }}
""",
    )
    hdrs = "\n".join(
        f"    add_header {k} \"{v}\" always;"
        for k, v in HARDENING
    )
    nginx = write(
        os.path.join(d, "nginx.conf"),
        f"""worker_processes 1; daemon off; pid {d}/nginx.pid; error_log /dev/null; worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{ access_log off; server_tokens off; keepalive_requests 1000000;
  upstream u {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']} backlog=4096;
    location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{PORTS['nginx-tls']} ssl backlog=4096; ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;
    location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{PORTS['nginx-mtls']} ssl backlog=4096; ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;
    ssl_verify_client on; ssl_client_certificate {d}/client-ca.pem; ssl_crl {d}/client-ca.crl;
    location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{PORTS['nginx-tls-hdr']} ssl backlog=4096; ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;
    location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_hide_header Server; proxy_hide_header X-Powered-By; proxy_hide_header Cache-Control;
{hdrs} }} }} }}
""",
    )
    hap_hdrs = "\n".join(
        f"  http-response set-header {k} \"{v}\""
        for k, v in HARDENING
    )
    haproxy = write(
        os.path.join(d, "haproxy.cfg"),
        HAPROXY_HEAD + f"""frontend plain
  bind 127.0.0.1:{PORTS['haproxy']}
  default_backend be
frontend tls
  bind 127.0.0.1:{PORTS['haproxy-tls']} ssl crt {d}/combined.pem ssl-min-ver TLSv1.3
  default_backend be
frontend mtls
  bind 127.0.0.1:{PORTS['haproxy-mtls']} ssl crt {d}/combined.pem ssl-min-ver TLSv1.3 verify required ca-file {d}/client-ca.pem crl-file {d}/client-ca.crl
  default_backend be
frontend tlshdr
  bind 127.0.0.1:{PORTS['haproxy-tls-hdr']} ssl crt {d}/combined.pem ssl-min-ver TLSv1.3
  http-response del-header Server
  http-response del-header X-Powered-By
{hap_hdrs}
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:{up}
""",
    )

    openapi = os.path.join(d, "bench-openapi.yaml")

    def gw(port, tls, contract=False, mtls=False):
        client_auth = (
            f", client_auth: {{ mode: required, ca: {d}/client-ca.pem, crls: [{d}/client-ca.crl] }}" if mtls else ""
        )
        listener = (
            f"    tls: {{ cert: {cert}, key: {key}{client_auth} }}\n" if tls else "    plaintext: dangerous_serve\n"
        )
        api = (
            f"  - name: bench\n    upstream: nginx\n    openapi: {openapi}\n    contract: {{ public_operations: [createOrder] }}\n"
            if contract
            else '  - name: bench\n    upstream: nginx\n    routes:\n      - { path: "/orders/{id}", methods: [GET], auth: public }\n      - { path: /orders, methods: [POST], auth: public }\n'
        )
        return write(
            os.path.join(d, f"portcullis-{port}.yaml"),
            f"""mode: dev
runtime: {{ worker_threads: 1 }}
listeners:
  - name: public
    bind: 127.0.0.1:{port}
{listener}upstreams:
  nginx: {{ url: "http://127.0.0.1:{up}", dangerous_plaintext_upstream: true }}
apis:
{api}""",
        )

    write(openapi, OPENAPI)
    return (
        upstream,
        nginx,
        haproxy,
        gw(PORTS["portcullis"], False),
        gw(PORTS["portcullis-tls"], True),
        gw(PORTS["portcullis-contract"], False, contract=True),
        gw(PORTS["portcullis-mtls"], True, mtls=True),
    )


def header_flags(headers):
    return "".join(f'-H "{k}: {v}" ' for k, v in headers)


def wrk(url, seconds, close=False, post=None, headers=()):
    hdr = '-H "Connection: close" ' if close else ""
    hdr += header_flags(headers)
    if post:
        hdr += f"-s {post} "
    out = sh(f"taskset -c 0 wrk -t1 -c32 -d{seconds}s --latency {hdr}{url}").stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(m.group(1)), int(total.group(1)), int(errors.group(1)) if errors else 0


def oha(url, rate, seconds, body_file=None, headers=()):
    if not shutil.which("oha"):
        return None, None
    post = f"-m POST -T application/json -D {body_file} " if body_file else ""
    post += header_flags(headers)
    out = sh(
        f"taskset -c 0 oha -z {seconds}s -q {rate} -c 32 --latency-correction --no-tui --output-format json --insecure {post}{url}"
    ).stdout
    j = json.loads(out)
    pct = j.get("latencyPercentiles", {})
    return pct.get("p50"), pct.get("p99")




def post_files(d, name, body):
    """A wrk Lua script and an oha body file that POST `body` as JSON."""
    lua = body.replace("\\", "\\\\").replace('"', '\\"')
    script = write(
        os.path.join(d, f"{name}.lua"),
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = "{lua}"\n',
    )
    return script, write(os.path.join(d, f"{name}.json"), body)


def s5_configs(d, gw_plain):
    """S5 (rate limit not reached) and S5b (the 429 path): Portcullis local
    and Redis-backed GCRA, HAProxy stick tables, nginx limit_req, all keyed
    by client address, plain HTTP like S1."""
    up = PORTS["upstream"]
    proxy = 'proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection "";'
    nginx = write(
        os.path.join(d, "nginx-s5.conf"),
        f"""worker_processes 1; daemon off; pid {d}/nginx-s5.pid; error_log /dev/null;
events {{ worker_connections 4096; }}
http {{ access_log off; server_tokens off; keepalive_requests 1000000;
  limit_req_zone $binary_remote_addr zone=hi:10m rate=100000000r/s;
  limit_req_zone $binary_remote_addr zone=lo:10m rate=1r/m;
  limit_req_status 429; limit_req_log_level info;
  upstream u {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{ listen 127.0.0.1:{PORTS['nginx-s5']} backlog=4096;
    location / {{ limit_req zone=hi burst=1000 nodelay; {proxy} }} }}
  server {{ listen 127.0.0.1:{PORTS['nginx-s5b']} backlog=4096;
    location / {{ limit_req zone=lo; {proxy} }} }} }}
""",
    )
    haproxy = write(
        os.path.join(d, "haproxy-s5.cfg"),
        HAPROXY_HEAD + f"""frontend s5
  bind 127.0.0.1:{PORTS['haproxy-s5']}
  stick-table type ip size 100k expire 30s store http_req_rate(10s)
  http-request track-sc0 src
  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 100000000 }}
  default_backend be
frontend s5b
  bind 127.0.0.1:{PORTS['haproxy-s5b']}
  stick-table type ip size 100k expire 30s store http_req_rate(60s)
  http-request track-sc0 src
  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 1 }}
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:{up}
""",
    )
    base = open(gw_plain).read()

    def limited(port, limit, shared=""):
        text = base.replace(f"127.0.0.1:{PORTS['portcullis']}", f"127.0.0.1:{port}")
        text = text.replace("  - name: bench\n", f"  - name: bench\n    rate_limits: [{limit}]\n")
        return write(os.path.join(d, f"portcullis-{port}.yaml"), text + shared)

    high = "{ per: client, requests: 4000000000, per_seconds: 1 }"
    low = "{ per: client, requests: 1, per_seconds: 60, burst: 1 }"
    shared = f"shared_state: {{ redis: {{ url: 'redis://127.0.0.1:{PORTS['redis']}/0' }} }}\n"
    return (
        nginx,
        haproxy,
        limited(PORTS["portcullis-s5"], high),
        limited(PORTS["portcullis-s5b"], low),
        limited(PORTS["portcullis-s5r"], high, shared),
    )


def oha_load(url, seconds, close, client):
    """Throughput with oha (for client certificates): (req/s, requests, non-2xx)."""
    cert, key = client
    flags = "--disable-keepalive " if close else ""
    out = sh(
        f"taskset -c 0 oha -z {seconds}s -c 32 --no-tui --output-format json --insecure "
        f"--cert {cert} --key {key} {flags}{url}"
    ).stdout
    j = json.loads(out)
    codes = {int(k): v for k, v in j.get("statusCodeDistribution", {}).items()}
    n = sum(codes.values())
    return n / seconds, n, sum(v for k, v in codes.items() if not 200 <= k < 300)


def measure_mtls(name, url, sut, seconds, close, client):
    oha_load(url, 2, close, client)  # warm-up
    pids = sut.pids()
    t0 = cpu_ticks(pids)
    rps, n, errors = oha_load(url, seconds, close, client)
    t1 = cpu_ticks(pids)
    cpu_us = (t1 - t0) / CLK_TCK * 1e6 / n if n else None
    return {"name": name, "rps": rps, "cpu_us": cpu_us, "p50": None, "p99": None, "errors": errors}


def measure(name, url, sut, seconds, close=False, rate=5000, lat_seconds=10, post=None, headers=()):
    """wrk at saturation (req/s, the SUT's CPU per request), then oha at a
    fixed rate for the latency (skipped when lat_seconds is 0)."""
    script, body_file = post or (None, None)
    wrk(url, 2, close, script, headers)  # warm-up
    pids = sut.pids() if sut else []
    t0 = cpu_ticks(pids)
    rps, n, errors = wrk(url, seconds, close, script, headers)
    t1 = cpu_ticks(pids)
    cpu_us = (t1 - t0) / CLK_TCK * 1e6 / n if sut and n else None
    p50 = p99 = None
    if not close and lat_seconds:
        p50, p99 = oha(url, rate, lat_seconds, body_file, headers)
    return {"name": name, "rps": rps, "cpu_us": cpu_us, "p50": p50, "p99": p99, "errors": errors}


def measure_s5(a, runs, rep, seconds, lat_seconds, s5, gw_plain, path):
    """S5/S5b for every system, and Portcullis's own S1 in the same block;
    also S1 through a pool of three targets (three ports of the same
    upstream nginx), against that S1."""
    nginx_s5, haproxy_s5, gw_s5, gw_s5b, gw_s5r = s5
    up = PORTS["upstream"]
    gw_pool = write(
        gw_plain.replace(".yaml", "-pool.yaml"),
        open(gw_plain).read()
        .replace(f"bind: 127.0.0.1:{PORTS['portcullis']}", f"bind: 127.0.0.1:{PORTS['portcullis-pool']}")
        .replace(
            f'url: "http://127.0.0.1:{up}"',
            f'targets: ["http://127.0.0.1:{up}", "http://127.0.0.1:{up + 1}", "http://127.0.0.1:{up + 2}"]',
        ),
    )
    if not shutil.which("redis-server"):
        sh("apt-get install -y -qq redis-server >/dev/null")
    redis = Proc(
        ["redis-server", "--port", str(PORTS["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        0, "redis", PORTS["redis"],
    )
    systems = [
        ("portcullis", [
            ([a.binary, "run", "--config", gw_plain], 1, "portcullis", PORTS["portcullis"]),
            ([a.binary, "run", "--config", gw_s5], 1, "portcullis-s5", PORTS["portcullis-s5"]),
            ([a.binary, "run", "--config", gw_s5b], 1, "portcullis-s5b", PORTS["portcullis-s5b"]),
            ([a.binary, "run", "--config", gw_s5r], 1, "portcullis-s5r", PORTS["portcullis-s5r"]),
            ([a.binary, "run", "--config", gw_pool], 1, "portcullis-pool", PORTS["portcullis-pool"]),
        ], [("S1", 0, PORTS["portcullis"]), ("S1 pool", 4, PORTS["portcullis-pool"]), ("S5", 1, PORTS["portcullis-s5"]), ("S5b", 2, PORTS["portcullis-s5b"]), ("S5 redis", 3, PORTS["portcullis-s5r"])]),
        ("nginx", [(["nginx", "-c", nginx_s5], 1, "nginx-s5", PORTS["nginx-s5"])],
         [("S5", 0, PORTS["nginx-s5"]), ("S5b", 0, PORTS["nginx-s5b"])]),
        ("haproxy", [(["haproxy", "-f", haproxy_s5], 1, "haproxy-s5", PORTS["haproxy-s5"])],
         [("S5", 0, PORTS["haproxy-s5"]), ("S5b", 0, PORTS["haproxy-s5b"])]),
    ]
    if rep % 2:
        systems.reverse()
    try:
        for name, specs, scenarios in systems:
            procs = start_all(*specs)
            try:
                for scenario, owner, port in scenarios:
                    r = measure(scenario, f"http://127.0.0.1:{port}{path}", procs[owner], seconds, lat_seconds=lat_seconds)
                    runs.setdefault(f"{scenario} {name}", []).append(r)
            finally:
                for p in procs:
                    p.stop()
    finally:
        redis.stop()


def auth_setup(a, d, cert, key):
    """Keys, tokens, 10,000 API keys and the configs of S3/S4/S8/S9."""
    gw_auth, gw_nc, gw_s8 = auth.gateway_configs(d, write, PORTS, PORTS["upstream"], cert, key, OPENAPI)
    tokens, api_key = auth.material(d, write, sh, a.binary, gw_auth)
    # A binary from before the verified-token cache has no such field: its
    # "uncached" gateway is the plain one (it never caches).
    if subprocess.run([a.binary, "check", "--config", gw_nc], capture_output=True).returncode != 0:
        write(gw_nc, open(gw_nc).read().replace("  verified_token_cache: 0\n", ""))
    hap = auth.haproxy_config(d, write, HAPROXY_HEAD, PORTS, PORTS["upstream"], HARDENING)
    post = post_files(d, "body217", BODY_217)
    return (gw_auth, gw_nc, gw_s8), hap, tokens, api_key, post


def measure_auth(a, runs, rep, seconds, lat_seconds, scen, setup):
    """S3/S4/S8/S9: Portcullis and HAProxy, alternating by repetition."""
    gateways, hap, tokens, api_key, post = setup
    wanted = [s for s in auth.SCENARIOS if s[0].split()[0] in scen]
    names = ["portcullis-auth", "portcullis-auth-nc", "portcullis-s8"]
    systems = [
        ("portcullis", [([a.binary, "run", "--config", g], 1, n, PORTS[n]) for g, n in zip(gateways, names)]),
        ("haproxy", [(["haproxy", "-f", hap], 1, "haproxy-auth", PORTS["haproxy-s3es"])]),
    ]
    if rep % 2:
        systems.reverse()
    for name, specs in systems:
        procs = start_all(*specs)
        try:
            for scenario, port_of, path, kinds, is_post in wanted:
                port_name = port_of[name]
                owner = procs[names.index(port_name)] if name == "portcullis" else procs[0]
                scheme = "https" if scenario == "S8" else "http"
                r = measure(
                    scenario,
                    f"{scheme}://127.0.0.1:{PORTS[port_name]}{path}",
                    owner,
                    seconds,
                    lat_seconds=0 if scenario.startswith("S9") else lat_seconds,
                    post=post if is_post else None,
                    headers=auth.headers_for(kinds, tokens, api_key),
                )
                runs.setdefault(f"{scenario} {name}", []).append(r)
        finally:
            for p in procs:
                p.stop()


def measure_memory(a, runs, gw_plain, gw_tls, hap_conf, nginx_conf, n):
    """Memory per idle keep-alive connection, plain and TLS, every system.
    The gateway's per-client connection cap (512) is raised for the run:
    every connection comes from 127.0.0.1."""
    raised = "limits: { max_connections: 20000, max_connections_per_client: 20000 }\n"
    gws = [write(g.replace(".yaml", "-mem.yaml"), open(g).read() + raised) for g in (gw_plain, gw_tls)]
    systems = [
        ("portcullis", lambda: start_all(
            ([a.binary, "run", "--config", gws[0]], 1, "portcullis", PORTS["portcullis"]),
            ([a.binary, "run", "--config", gws[1]], 1, "portcullis-tls", PORTS["portcullis-tls"]),
        ), {False: (0, PORTS["portcullis"]), True: (1, PORTS["portcullis-tls"])}),
        ("nginx", lambda: [Proc(["nginx", "-c", nginx_conf], 1, "nginx", PORTS["nginx"])],
         {False: (0, PORTS["nginx"]), True: (0, PORTS["nginx-tls"])}),
        ("haproxy", lambda: [Proc(["haproxy", "-f", hap_conf], 1, "haproxy", PORTS["haproxy"])],
         {False: (0, PORTS["haproxy"]), True: (0, PORTS["haproxy-tls"])}),
    ]
    for name, start, ports in systems:
        for tls in (False, True):
            procs = start()  # afresh for each: what one measurement left must not count
            try:
                owner, port = ports[tls]
                label = f"M idle {'TLS' if tls else 'plain'}"
                r = memory.measure(label, port, procs[owner], n, tls)
                runs.setdefault(f"{label} {name}", []).append(r)
            finally:
                for p in procs:
                    p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--scenarios", default="S0,S1,S2,S2c,S2m,S2mc,S3,S4,S5,S6,S7,S8,S9,M")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/dist/portcullis"))
    ap.add_argument("--json", default=None, help="also write raw results here")
    ap.add_argument(
        "--perf",
        default=None,
        metavar="DIR",
        help="record a CPU profile (perf record -g) of the gateway during each S1/S2/S7 run into DIR; "
        "the dist binary is stripped, so build `cargo build --profile profiling -p portcullis` and pass "
        "--binary target/profiling/portcullis for symbols",
    )
    ap.add_argument(
        "--connections",
        type=int,
        default=9_000,
        help="idle connections of the memory scenario M (BENCH.md asks 10,000; HAProxy needs two descriptors each, and a 20,000 hard limit that a container cannot raise fits 9,980)",
    )
    a = ap.parse_args()
    # Room for the memory scenario's idle connections in every system under
    # test (HAProxy wants two descriptors per connection); needs root, as
    # the rest of the bench (apt, perf) does.
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass
    # Found missing only at S2m, ten minutes in, the run would be lost.
    missing = [t for t in ("wrk", "oha", "nginx", "haproxy", "taskset", "openssl") if not shutil.which(t)]
    if missing:
        sys.exit(f"missing: {', '.join(missing)}; bench/run.sh installs them (oha: cargo install oha --locked)")
    reps = a.reps or (1 if a.quick else 3)
    seconds = 4 if a.quick else 10
    lat_seconds = 3 if a.quick else 10
    scen = a.scenarios.split(",")
    d = tempfile.mkdtemp(prefix="portcullis-bench-")
    cert, key = make_certs(d)
    _, _, client_cert, client_key = make_client_pki(d)
    client = (client_cert, client_key)
    up_conf, nginx_conf, hap_conf, gw_plain, gw_tls, gw_contract, gw_mtls = configs(d, cert, key)
    s5 = s5_configs(d, gw_plain)
    posts = {"217B": post_files(d, "body217", BODY_217), "4KiB": post_files(d, "body4k", BODY_4K)}
    path = "/orders/1001"
    setup = auth_setup(a, d, cert, key) if any(s in scen for s in ("S3", "S4", "S8", "S9")) else None
    upstream = Proc(["nginx", "-c", up_conf], 0, "upstream", PORTS["upstream"])
    runs = {}
    try:
        for rep in range(reps):
            order = ["portcullis", "nginx", "haproxy"]
            if rep % 2:
                order.reverse()
            if "S0" in scen:
                runs.setdefault("S0 direct nginx", []).append(
                    measure("S0", f"http://127.0.0.1:{PORTS['upstream']}{path}", None, seconds, lat_seconds=lat_seconds)
                )
            if "S6" in scen:
                # Own baseline and contract, alternating, same bodies (no peer can validate).
                procs = start_all(
                    ([a.binary, "run", "--config", gw_plain], 1, "portcullis", PORTS["portcullis"]),
                    ([a.binary, "run", "--config", gw_contract], 1, "portcullis-contract", PORTS["portcullis-contract"]),
                )
                try:
                    for size, post in posts.items():
                        pair = [("S6base", procs[0], PORTS["portcullis"]), ("S6", procs[1], PORTS["portcullis-contract"])]
                        if rep % 2:
                            pair.reverse()
                        for s6, proc, port in pair:
                            r = measure(s6, f"http://127.0.0.1:{port}/orders", proc, seconds, lat_seconds=lat_seconds, post=post)
                            runs.setdefault(f"{s6} {size} portcullis", []).append(r)
                finally:
                    for p in procs:
                        p.stop()
            if "M" in scen:
                measure_memory(a, runs, gw_plain, gw_tls, hap_conf, nginx_conf, a.connections)
            if setup:
                measure_auth(a, runs, rep, seconds, lat_seconds, scen, setup)
            if "S5" in scen:
                measure_s5(a, runs, rep, seconds, lat_seconds, s5, gw_plain, path)
            for sut_name in order:
                if sut_name == "portcullis":
                    procs = start_all(
                        ([a.binary, "run", "--config", gw_plain], 1, "portcullis", PORTS["portcullis"]),
                        ([a.binary, "run", "--config", gw_tls], 1, "portcullis-tls", PORTS["portcullis-tls"]),
                        ([a.binary, "run", "--config", gw_mtls], 1, "portcullis-mtls", PORTS["portcullis-mtls"]),
                    )
                    ports = {"S1": PORTS["portcullis"], "S2": PORTS["portcullis-tls"], "S7": PORTS["portcullis-tls"], "S2m": PORTS["portcullis-mtls"]}
                    owner = {"S1": procs[0], "S2": procs[1], "S7": procs[1], "S2m": procs[2]}
                elif sut_name == "nginx":
                    procs = [Proc(["nginx", "-c", nginx_conf], 1, "nginx", PORTS["nginx"])]
                    ports = {"S1": PORTS["nginx"], "S2": PORTS["nginx-tls"], "S7": PORTS["nginx-tls-hdr"], "S2m": PORTS["nginx-mtls"]}
                    owner = {k: procs[0] for k in ports}
                else:
                    procs = [Proc(["haproxy", "-f", hap_conf], 1, "haproxy", PORTS["haproxy"])]
                    ports = {"S1": PORTS["haproxy"], "S2": PORTS["haproxy-tls"], "S7": PORTS["haproxy-tls-hdr"], "S2m": PORTS["haproxy-mtls"]}
                    owner = {k: procs[0] for k in ports}
                try:
                    for s in ["S1", "S2", "S2c", "S2m", "S2mc", "S7"]:
                        if s not in scen:
                            continue
                        key_s = {"S2c": "S2", "S2mc": "S2m"}.get(s, s)
                        scheme = "http" if s == "S1" else "https"
                        url = f"{scheme}://127.0.0.1:{ports[key_s]}{path}"
                        if key_s == "S2m":
                            r = measure_mtls(s, url, owner[key_s], seconds, s == "S2mc", client)
                        else:
                            profiler = None
                            if a.perf and sut_name == "portcullis" and s in ("S1", "S2", "S7"):
                                os.makedirs(a.perf, exist_ok=True)
                                profiler = subprocess.Popen(
                                    ["perf", "record", "-F", "999", "-g", "-p", str(owner[key_s].p.pid),
                                     "-o", os.path.join(a.perf, f"{s}-rep{rep}.data"), "--", "sleep", str(seconds)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL,
                                )
                            r = measure(s, url, owner[key_s], seconds, close=(s == "S2c"), lat_seconds=lat_seconds)
                            if profiler:
                                profiler.wait()
                        runs.setdefault(f"{s} {sut_name}", []).append(r)
                finally:
                    for p in procs:
                        p.stop()
    finally:
        upstream.stop()

    def med(name, field):
        vals = [r[field] for r in runs.get(name, []) if r[field] is not None]
        return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)

    print(f"# Portcullis benchmark {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cores; reps={reps}, {seconds}s measured, wrk -t1 -c32; latency: oha at 5000 req/s, {lat_seconds}s")
    direct = med("S0 direct nginx", "rps")[0]
    print(f"| run | req/s (median, min–max) | × direct | CPU µs/req | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    mem = {k: v for k, v in runs.items() if k.startswith("M ")}
    for k in mem:
        del runs[k]
    for name in runs:
        rps, lo, hi = med(name, "rps")
        cpu = med(name, "cpu_us")[0]
        p50 = med(name, "p50")[0]
        p99 = med(name, "p99")[0]
        errs = sum(r["errors"] for r in runs[name])
        ratio = f"{rps / direct:.2f}" if direct else "—"
        f = lambda v, fmt: (fmt % v) if v is not None else "—"
        print(
            f"| {name} | {rps:,.0f} ({lo:,.0f}–{hi:,.0f}) | {ratio} | {f(cpu, '%.1f')} | {f(p50 and p50 * 1000, '%.3f')} | {f(p99 and p99 * 1000, '%.3f')} | {errs} |"
        )
    print()
    for s in ["S1", "S2", "S2c", "S2m", "S2mc", "S7"]:
        ours = med(f"{s} portcullis", "rps")[0]
        for peer in ["nginx", "haproxy"]:
            theirs = med(f"{s} {peer}", "rps")[0]
            if ours and theirs:
                oc = med(f"{s} portcullis", "cpu_us")[0]
                pc = med(f"{s} {peer}", "cpu_us")[0]
                cpu_ratio = f", CPU/req {oc / pc:.2f}× theirs" if oc and pc else ""
                print(f"{s}: portcullis / {peer} throughput = {ours / theirs:.2f}×{cpu_ratio}")
    own = med("S1 portcullis", "cpu_us")[0]
    pool, single = med("S1 pool portcullis", "rps")[0], med("S1 portcullis", "rps")[0]
    if pool and single:
        print(f"S1 pool (three targets): portcullis / own S1 throughput = {pool / single:.2f}× (target ≥ 0.95×)")
    for s5 in ["S5", "S5 redis", "S5b"]:
        ours = med(f"{s5} portcullis", "cpu_us")[0]
        if own and ours:
            print(f"{s5}: the limiter adds {ours - own:.1f} µs CPU per request over own S1 (same block)")
        for peer in ["nginx", "haproxy"]:
            theirs = med(f"{s5} {peer}", "rps")[0]
            mine = med(f"{s5} portcullis", "rps")[0]
            if mine and theirs:
                print(f"{s5}: portcullis / {peer} throughput = {mine / theirs:.2f}×")
    for size in ["217B", "4KiB"]:
        base = med(f"S6base {size} portcullis", "cpu_us")[0]
        ours = med(f"S6 {size} portcullis", "cpu_us")[0]
        if base and ours:
            rb = med(f"S6base {size} portcullis", "rps")[0]
            ro = med(f"S6 {size} portcullis", "rps")[0]
            print(f"S6 {size}: contract adds {ours - base:.1f} µs CPU per request ({ro / rb:.2f}× own S6base throughput)")
    if mem:
        print(f"\n| memory, {a.connections:,} idle keep-alive connections | kB per connection | returned after close | RSS before / with / after (MiB) |")
        print("|---|---|---|---|")
        for name, rs in mem.items():
            r = rs[-1]
            b, h, af = r["mib"]
            print(f"| {name} | {r['per_conn_kb']:.1f} | {r['returned'] * 100:.0f} % | {b:.1f} / {h:.1f} / {af:.1f} |")
        for kind in ("plain", "TLS"):
            ours = mem.get(f"M idle {kind} portcullis")
            for peer in ("nginx", "haproxy"):
                theirs = mem.get(f"M idle {kind} {peer}")
                if ours and theirs and theirs[-1]["per_conn_kb"] > 0:
                    print(f"M {kind}: portcullis / {peer} memory per idle connection = {ours[-1]['per_conn_kb'] / theirs[-1]['per_conn_kb']:.1f}×")
        print()
    own_rps = med("S1 portcullis", "rps")[0]
    for s, _, _, _, _ in auth.SCENARIOS:
        ours, theirs = med(f"{s} portcullis", "rps")[0], med(f"{s} haproxy", "rps")[0]
        if ours and theirs:
            oc, pc = med(f"{s} portcullis", "cpu_us")[0], med(f"{s} haproxy", "cpu_us")[0]
            cpu_ratio = f", CPU/req {oc / pc:.2f}× theirs" if oc and pc else ""
            print(f"{s}: portcullis / haproxy throughput = {ours / theirs:.2f}×{cpu_ratio}")
        if ours and own_rps and not s.startswith("S9"):
            print(f"{s}: portcullis / own S1 throughput = {ours / own_rps:.2f}×")
    s8, hes = med("S8 portcullis", "rps")[0], med("S3 ES256 uncached haproxy", "rps")[0]
    if s8 and hes:
        print(f"S8: portcullis (every control) / haproxy S3 ES256 (jwt_verify alone) = {s8 / hes:.2f}×")
    # Per-stage cost: what each control adds to a request, as CPU per
    # request over the run that lacks only it (same run, same layout).
    stages = [
        ("TLS 1.3 (keep-alive)", "S2 portcullis", "S1 portcullis"),
        ("hardening headers", "S7 portcullis", "S2 portcullis"),
        ("API key among 10,000", "S4 portcullis", "S1 portcullis"),
        ("ES256 token, verified every time", "S3 ES256 uncached portcullis", "S1 portcullis"),
        ("RS256 token, verified every time", "S3 RS256 uncached portcullis", "S1 portcullis"),
        ("ES256 token, verified-token cache", "S3 ES256 cached portcullis", "S1 portcullis"),
        ("rate limit (local)", "S5 portcullis", "S1 portcullis"),
        ("rate limit (Redis)", "S5 redis portcullis", "S1 portcullis"),
        ("contract, 217-byte body", "S6 217B portcullis", "S6base 217B portcullis"),
        ("contract, 4 KiB body", "S6 4KiB portcullis", "S6base 4KiB portcullis"),
        ("everything (S8) over S2", "S8 portcullis", "S2 portcullis"),
    ]
    rows = [(what, med(a, "cpu_us")[0], med(b, "cpu_us")[0]) for what, a, b in stages]
    rows = [(what, x, y) for what, x, y in rows if x and y]
    if rows:
        print("\n| stage | adds CPU µs per request | over |")
        print("|---|---|---|")
        for what, x, y in rows:
            print(f"| {what} | {x - y:+.1f} | {y:.1f} |")
        print()
    d0 = med("S0 direct nginx", "p99")[0]
    for name in runs:
        p99 = med(name, "p99")[0]
        if d0 and p99 and not name.startswith("S0"):
            print(f"{name}: added p99 at 5000 req/s = {(p99 - d0) * 1e6:.0f} µs")
    if a.json:
        write(a.json, json.dumps(runs, indent=1))
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
