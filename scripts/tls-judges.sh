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

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v testssl >/dev/null || need+=(testssl.sh)
{ command -v python3 >/dev/null && python3 -m venv --help >/dev/null 2>&1; } || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "tls-judges: installing ${need[*]} (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/pip" ] || ! "$VENV/bin/pip" show sslyze 2>/dev/null | grep -qx "Version: $SSLYZE_VERSION"; then
  echo "tls-judges: installing sslyze $SSLYZE_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "sslyze==$SSLYZE_VERSION"
fi

cargo build -q -p portcullis --locked
DATA=$(mktemp -d)
QS_PID=
cleanup() {
  if [ -n "$QS_PID" ]; then kill "$QS_PID" 2>/dev/null || true; wait "$QS_PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT
target/debug/portcullis quickstart --port 0 --data-dir "$DATA/qs" >"$DATA/quickstart.log" 2>&1 &
QS_PID=$!
for _ in $(seq 1 200); do
  [ -s "$DATA/qs/quickstart.json" ] && break
  if ! kill -0 "$QS_PID" 2>/dev/null; then cat "$DATA/quickstart.log"; exit 1; fi
  sleep 0.1
done
URL=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['gateway_url'])" "$DATA/qs/quickstart.json")
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
