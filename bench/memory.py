"""Memory per idle keep-alive connection (BENCH.md "memory").

Each system under test gets N connections from this process, each carrying
one request (answered in full) and then left open and idle. Reported: RSS
of the system's processes before, with the N connections open, and two
seconds after they all closed; per connection = the difference ÷ N; and
what share of that came back after the close. Plain HTTP and TLS 1.3.
"""

import os
import socket
import ssl
import time

REQUEST = b"GET /orders/1001 HTTP/1.1\r\nHost: localhost\r\n\r\n"


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def _answered(sock):
    """Reads one response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed before the answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:60]!r}")


def open_idle(port, n, tls):
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(REQUEST)
        _answered(s)
        socks.append(s)
    return socks


def measure(name, port, sut, n, tls):
    """(kB per idle connection, share returned after close, RSS before/with/after in MiB)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    # Warm-up: the first connections allocate what every later one reuses.
    for s in open_idle(port, 50, tls):
        s.close()
    time.sleep(1)
    pids = sut.pids()
    before = rss_kib(pids)
    socks = open_idle(port, n, tls)
    time.sleep(1)
    held = rss_kib(pids)
    for s in socks:
        s.close()
    time.sleep(2)
    after = rss_kib(pids)
    grown = held - before
    per = grown * 1024 / n / 1000  # kB (10^3) per connection
    returned = (held - after) / grown if grown > 0 else 1.0
    return {
        "name": name,
        "per_conn_kb": per,
        "returned": returned,
        "mib": (before / 1024, held / 1024, after / 1024),
    }
