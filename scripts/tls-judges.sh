#!/usr/bin/env bash
# External judges for the listener's TLS (PKI issue): testssl.sh (Debian)
# and sslyze with Mozilla's "modern" profile (PyPI) against the quickstart
# listener on loopback. Fails on any HIGH or CRITICAL testssl.sh finding,
# on any protocol below TLS 1.2 being offered, or when sslyze does not
# report the listener compliant. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
SSLYZE_VERSION=6.3.1
VENV=target/sslyze-venv

. scripts/judge-lib.sh
command -v testssl >/dev/null || apt_install testssl.sh
pip_tool "$VENV" sslyze "$SSLYZE_VERSION"
start_quickstart
URL=$(fact gateway_url)
HOSTPORT=${URL#https://}
CA="$DATA/qs/pki/ca.pem"

echo "tls-judges: testssl.sh against $HOSTPORT"
testssl --quiet --color 0 --warnings off --jsonfile "$DATA/testssl.json" --add-ca "$CA" "$HOSTPORT" >"$DATA/testssl.out" 2>&1 || true
python3 - "$DATA/testssl.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
old = [f for f in findings if f["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1") and "not offered" not in f["finding"]]
for f in findings:
    if f["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"):
        print(f"  {f['id']:7} {f['finding']}")
for f in bad + old:
    print(f"  FINDING {f['id']} {f['severity']}: {f['finding']}")
print(f"  testssl.sh: {len(findings)} results, {len(bad)} HIGH/CRITICAL, {len(old)} protocols below TLS 1.2 offered")
sys.exit(1 if bad or old else 0)
PY

echo "tls-judges: sslyze --mozilla_config modern against $HOSTPORT"
"$VENV/bin/python" -m sslyze --mozilla_config modern --certinfo_ca_file "$CA" "$HOSTPORT" >"$DATA/sslyze.out" 2>&1 || {
  cat "$DATA/sslyze.out"
  exit 1
}
grep -E "Compliant|Not compliant|TLS 1\.[0-3] Cipher Suites:|rejected all|Certificate is trusted" "$DATA/sslyze.out" | sed 's/^/  /' | sort -u

# The assessor's TLS verdicts against testssl.sh's, on the quickstart
# listener and on two deliberately weak servers.
# judge NAME HOST:PORT CA: testssl.sh and audit on one server, compared.
judge() {
  testssl --quiet --color 0 --warnings off --jsonfile "$DATA/testssl-$1.json" --add-ca "$3" "$2" >"$DATA/testssl-$1.out" 2>&1 || true
  target/debug/portcullis audit --format json --target "https://$2" --ca "$3" --operation "GET /" --burst 0 >"$DATA/audit-$1.json"
  python3 scripts/compare_tls_verdicts.py "$1" "$DATA/testssl-$1.json" "$DATA/audit-$1.json"
}
# wait_for FILE: until a fixture has printed its port(s) there.
wait_for() { for _ in $(seq 1 50); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "$1: no port"; exit 1; }
echo "tls-judges: portcullis audit against testssl.sh"
target/debug/portcullis audit --format json --target "$URL" --ca "$CA" --operation "GET /v1/health" --burst 0 >"$DATA/audit-qs.json"
python3 scripts/compare_tls_verdicts.py quickstart "$DATA/testssl.json" "$DATA/audit-qs.json"
FIXTURES=crates/portcullis/tests/fixtures
# TLS 1.2 with a CBC suite beside TLS 1.3.
python3 $FIXTURES/weak_api.py "$DATA/qs/pki/gateway.pem" "$DATA/qs/pki/gateway.key" judge-secret >"$DATA/weak.port" &
WEAK_PID=$!
# TLS 1.0-1.2, every suite OpenSSL has at security level 0, a 1024-bit RSA
# self-signed certificate for another name.
command -v openssl >/dev/null || apt_install openssl
openssl req -x509 -newkey rsa:1024 -nodes -days 365 -subj /CN=legacy.invalid \
  -addext subjectAltName=DNS:legacy.invalid -keyout "$DATA/legacy.key" -out "$DATA/legacy.pem" 2>/dev/null
python3 $FIXTURES/weak_legacy.py "$DATA/legacy.pem" "$DATA/legacy.key" judge-key >"$DATA/legacy.ports" &
LEGACY_PID=$!
trap 'kill "$WEAK_PID" "$LEGACY_PID" 2>/dev/null || true; if [ -n "$QS_PID" ]; then kill "$QS_PID" 2>/dev/null || true; wait "$QS_PID" 2>/dev/null || true; fi; rm -rf "$DATA"' EXIT
wait_for "$DATA/weak.port"
judge weak "127.0.0.1:$(cat "$DATA/weak.port")" "$CA"
wait_for "$DATA/legacy.ports"
judge legacy "127.0.0.1:$(cut -d' ' -f1 "$DATA/legacy.ports")" "$DATA/legacy.pem"
