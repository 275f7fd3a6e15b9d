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

. scripts/judge-lib.sh
pip_tool "$VENV" schemathesis "$ST_VERSION"
start_quickstart

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
