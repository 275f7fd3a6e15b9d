"""S3, S4, S8 and S9 of BENCH.md: the identity scenarios, against HAProxy.

S3: a bearer token verified on every request (ES256 and RS256, the same
claims checked by both systems: alg, iss, aud, exp, signature).
S4: an API key among 10,000 (Portcullis: keys issued through its CLI into
its store; HAProxy: a map lookup of the header).
S8: everything on over TLS 1.3: API key, ES256 token with scopes, the
OpenAPI contract on a 217-byte POST, a per-application rate limit that is
not reached, the context token to the backend, hardening headers, events.
HAProxy does the subset it can (TLS, map, jwt_verify, stick table,
set-header); the target compares with its S3 ES256 as well.
S9: rejections (a token with a bad signature, no API key, an unknown
route): each must be answered at least as fast as HAProxy's deny, and
never reach the upstream. The gateway's per-address budget of refused
credentials is off here, so every bad token is verified (the budget would
otherwise answer 429 without verifying: cheaper, and not what a flood from
many addresses costs).
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import subprocess
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://issuer.bench"
AUDIENCE = "bench-api"
KEYS = 10_000


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(n, size):
    return b64(n.to_bytes(size, "big"))


def _jwt(alg, kid, key, claims):
    head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    signing = f"{head}.{body}".encode()
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(signing, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(sig)}"


def material(d, write, sh, binary, gw_config):
    """Signing keys, the JWKS, tokens, PEM public keys for HAProxy, and
    10,000 API keys in the gateway's store and in a HAProxy map."""
    es = ec.generate_private_key(ec.SECP256R1())
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    esn = es.public_key().public_numbers()
    rsn = rs.public_key().public_numbers()
    jwks = {
        "keys": [
            {"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256", "use": "sig",
             "x": _int(esn.x, 32), "y": _int(esn.y, 32)},
            {"kty": "RSA", "kid": "rs", "alg": "RS256", "use": "sig",
             "n": _int(rsn.n, 256), "e": _int(rsn.e, 3)},
        ]
    }
    write(os.path.join(d, "jwks.json"), json.dumps(jwks))
    pem = serialization.PublicFormat.SubjectPublicKeyInfo
    for name, k in (("es.pem", es), ("rs.pem", rs)):
        write(os.path.join(d, name), k.public_key().public_bytes(serialization.Encoding.PEM, pem).decode())
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "client_id": "bench",
              "scope": "orders:read orders:write", "iat": now, "exp": now + 3 * 3600}
    tokens = {"ES256": _jwt("ES256", "es", es, claims), "RS256": _jwt("RS256", "rs", rs, claims)}
    good = tokens["ES256"]
    # A bad signature: the last byte of the signature's first half changed.
    head, body, sig = good.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[10] ^= 0x55
    tokens["bad"] = f"{head}.{body}.{b64(bytes(raw))}"
    # API keys: one application; ten keys through the CLI's own path, the
    # rest written beside them in the same form (HMAC-SHA256 under the
    # store's pepper), checked against the CLI's digests first.
    store = os.path.join(d, "store")
    os.makedirs(store, mode=0o700, exist_ok=True)
    sh(f"{binary} apps --config {gw_config} create bench")
    keys = []
    for _ in range(10):
        out = subprocess.run([binary, "keys", "--config", gw_config, "issue", "--app", "bench"],
                             check=True, text=True, capture_output=True).stdout
        keys.append(next(w for w in out.split() if w.startswith("pcsk_")))
    pepper = open(os.path.join(store, "pepper.key"), "rb").read()
    db = sqlite3.connect(os.path.join(store, "portcullis.db"))
    rows = {i: (app, bytes(mac), at) for i, app, mac, at in db.execute("SELECT id, app_id, mac, created_at FROM api_keys")}
    for k in keys:
        app, mac, at = rows[k.split("_")[1]]
        if hmac.new(pepper, k.encode(), hashlib.sha256).digest() != mac:
            raise RuntimeError("the store's key digest is not HMAC-SHA256(pepper, key): update bench/auth.py")
    for _ in range(KEYS - len(keys)):
        kid, secret = secrets.token_hex(6), secrets.token_hex(32)
        k = f"pcsk_{kid}_{secret}"
        db.execute("INSERT INTO api_keys (id, app_id, mac, created_at) VALUES (?, ?, ?, ?)",
                   (kid, app, hmac.new(pepper, k.encode(), hashlib.sha256).digest(), at))
        keys.append(k)
    db.commit()
    db.close()
    write(os.path.join(d, "keys.map"), "".join(f"{k} bench\n" for k in keys))
    return tokens, keys[len(keys) // 2]


def s8_openapi(openapi):
    """The S6 document with the order operation protected by an API key and
    an ES256 token carrying `orders:write`."""
    text = openapi.replace(
        "      security: []\n",
        "      security: [{ apiKey: [], oauth: [orders:write] }]\n",
    )
    return text + (
        "components:\n  securitySchemes:\n"
        "    apiKey: { type: apiKey, in: header, name: X-API-Key }\n"
        "    oauth:\n      type: oauth2\n      flows:\n        clientCredentials:\n"
        "          tokenUrl: https://issuer.bench/token\n"
        "          scopes: { 'orders:read': read, 'orders:write': write }\n"
    )


def gateway_configs(d, write, ports, upstream_port, cert, key, openapi):
    """The gateway for S3/S4/S9 (plain HTTP, like S1) and for S8 (TLS, every control)."""
    identity = (
        f"identity:\n  data_dir: {d}/store\n  issuers:\n"
        f"    - {{ issuer: '{ISSUER}', audiences: [{AUDIENCE}], jwks_file: {d}/jwks.json }}\n"
    )
    upstreams = f"upstreams:\n  nginx: {{ url: 'http://127.0.0.1:{upstream_port}', dangerous_plaintext_upstream: true }}\n"
    events = f"events: {{ file: {d}/events.jsonl }}\n"
    auth = write(
        os.path.join(d, "portcullis-auth.yaml"),
        f"mode: dev\nruntime: {{ worker_threads: 1 }}\n"
        f"listeners:\n  - name: public\n    bind: 127.0.0.1:{ports['portcullis-auth']}\n    plaintext: dangerous_serve\n"
        f"{identity}limits: {{ auth_failures_per_minute: 0 }}\n{upstreams}{events}"
        "apis:\n  - name: bench\n    upstream: nginx\n    routes:\n"
        "      - { path: '/orders/{id}', methods: [GET], auth: { token: true, scopes: [orders:read] } }\n"
        "      - { path: '/keyed/{id}', methods: [GET], auth: { api_key: true } }\n",
    )
    spec = write(os.path.join(d, "s8-openapi.yaml"), s8_openapi(openapi))
    s8 = write(
        os.path.join(d, "portcullis-s8.yaml"),
        f"mode: dev\nruntime: {{ worker_threads: 1 }}\n"
        f"listeners:\n  - name: public\n    bind: 127.0.0.1:{ports['portcullis-s8']}\n"
        f"    tls: {{ cert: {cert}, key: {key} }}\n"
        f"{identity}{upstreams}{events}"
        f"apis:\n  - name: bench\n    upstream: nginx\n    openapi: {spec}\n"
        "    rate_limits: [{ per: application, requests: 4000000000, per_seconds: 1 }]\n",
    )
    # S3 uncached: the same gateway with the verified-token cache off.
    text = open(auth).read().replace(f":{ports['portcullis-auth']}\n", f":{ports['portcullis-auth-nc']}\n")
    uncached = write(
        os.path.join(d, "portcullis-auth-nc.yaml"),
        text.replace(f"  data_dir: {d}/store\n", f"  data_dir: {d}/store\n  verified_token_cache: 0\n"),
    )
    return auth, uncached, s8


def haproxy_config(d, write, head, ports, upstream_port, hardening):
    """HAProxy 2.6 checking what the gateway checks: alg, iss, aud, exp and
    the signature (`jwt_verify`); the API key by a map lookup."""

    def jwt(alg, pem):
        return (
            "  http-request set-var(txn.bearer) http_auth_bearer\n"
            "  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')\n"
            f"  http-request deny unless {{ var(txn.alg) -m str {alg} }}\n"
            f"  http-request deny unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {ISSUER} }}\n"
            f"  http-request deny unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str {AUDIENCE} }}\n"
            "  http-request set-var(txn.now) date()\n"
            "  http-request deny if { var(txn.bearer),jwt_payload_query('$.exp','int'),sub(txn.now) -m int lt 0 }\n"
            f"  http-request deny unless {{ var(txn.bearer),jwt_verify(txn.alg,\"{d}/{pem}\") -m int 1 }}\n"
        )

    key = f"  http-request deny unless {{ req.hdr(x-api-key),map({d}/keys.map) -m found }}\n"
    headers = "".join(f'  http-response set-header {k} "{v}"\n' for k, v in hardening)
    return write(
        os.path.join(d, "haproxy-auth.cfg"),
        head
        + f"frontend s3es\n  bind 127.0.0.1:{ports['haproxy-s3es']}\n{jwt('ES256', 'es.pem')}  default_backend be\n"
        + f"frontend s3rs\n  bind 127.0.0.1:{ports['haproxy-s3rs']}\n{jwt('RS256', 'rs.pem')}  default_backend be\n"
        + f"frontend s4\n  bind 127.0.0.1:{ports['haproxy-s4']}\n  http-request deny unless {{ path_beg /keyed/ }}\n{key}  default_backend be\n"
        + f"frontend s8\n  bind 127.0.0.1:{ports['haproxy-s8']} ssl crt {d}/combined.pem ssl-min-ver TLSv1.3\n"
        + "  stick-table type ip size 100k expire 30s store http_req_rate(10s)\n  http-request track-sc0 src\n"
        + "  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }\n"
        + f"{key}{jwt('ES256', 'es.pem')}{headers}  default_backend be\n"
        + f"backend be\n  http-reuse always\n  server s1 127.0.0.1:{upstream_port}\n",
    )


# (scenario, the port each system answers it on, path, credentials sent, POST?).
# "cached": the gateway's default verified-token cache on (HAProxy has none).
SCENARIOS = [
    ("S3 ES256 uncached", {"portcullis": "portcullis-auth-nc", "haproxy": "haproxy-s3es"}, "/orders/1001", ["ES256"], False),
    ("S3 RS256 uncached", {"portcullis": "portcullis-auth-nc", "haproxy": "haproxy-s3rs"}, "/orders/1001", ["RS256"], False),
    ("S3 ES256 cached", {"portcullis": "portcullis-auth", "haproxy": "haproxy-s3es"}, "/orders/1001", ["ES256"], False),
    ("S3 RS256 cached", {"portcullis": "portcullis-auth", "haproxy": "haproxy-s3rs"}, "/orders/1001", ["RS256"], False),
    ("S4", {"portcullis": "portcullis-auth", "haproxy": "haproxy-s4"}, "/keyed/1001", ["key"], False),
    ("S8", {"portcullis": "portcullis-s8", "haproxy": "haproxy-s8"}, "/orders", ["key", "ES256"], True),
    ("S9 bad token", {"portcullis": "portcullis-auth", "haproxy": "haproxy-s3es"}, "/orders/1001", ["bad"], False),
    ("S9 no key", {"portcullis": "portcullis-auth", "haproxy": "haproxy-s4"}, "/keyed/1001", [], False),
    ("S9 unknown route", {"portcullis": "portcullis-auth", "haproxy": "haproxy-s4"}, "/nope", [], False),
]


def headers_for(kinds, tokens, api_key):
    out = []
    for k in kinds:
        if k == "key":
            out.append(("X-API-Key", api_key))
        else:
            out.append(("Authorization", f"Bearer {tokens[k]}"))
    return out
