#!/usr/bin/env bash
# External judge for contract enforcement (issue: contract enforcement):
# Schemathesis generates valid and invalid requests from the quickstart's
# OpenAPI document and sends them through the gateway to the demo backend,
# checking every response against the document. Installs what it needs:
# python3 + venv (Debian) and a pinned schemathesis (PyPI) in target/.
#
# Checks: all of Schemathesis' checks (its defaults plus
# negative_data_rejection, response_schema_conformance and the rest).
# Excluded operation: `debugState` is marked `x-environment: [dev]` and is
# deliberately absent from the quickstart's production listener (404 by
# design, CONTRACT-03), so no check about it can pass.
set -euo pipefail
cd "$(dirname "$0")/.."
ST_VERSION=4.32.5
VENV=target/schemathesis-venv

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
  echo "schemathesis: installing python3 and python3-venv (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
if [ ! -x "$VENV/bin/st" ] || [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version $ST_VERSION" ]; then
  echo "schemathesis: installing schemathesis $ST_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
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
fact() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$DATA/qs/quickstart.json" "$1"; }

"$VENV/bin/st" run "$(fact openapi)" \
  --url "$(fact gateway_url)/v1" \
  --tls-verify "$(fact ca_cert)" \
  -H "X-API-Key: $(fact api_key)" \
  -H "Authorization: Bearer $(fact token)" \
  --checks all \
  --exclude-operation-id debugState \
  --max-examples 100 \
  --seed 20261128 \
  --no-color
