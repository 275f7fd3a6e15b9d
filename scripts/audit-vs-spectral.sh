#!/usr/bin/env bash
# Compares `portcullis audit`'s contract findings with Spectral's OWASP
# ruleset on the corpus in crates/audit/tests/corpus (and the quickstart's
# demo document). Installs Spectral from npm into target/spectral.
# Prints the comparison table (docs/audit-vs-spectral.md is its output).
set -euo pipefail
cd "$(dirname "$0")/.."
SPECTRAL=target/spectral
if [ ! -x "$SPECTRAL/node_modules/.bin/spectral" ]; then
  mkdir -p "$SPECTRAL"
  (cd "$SPECTRAL" && npm install --silent --no-audit --no-fund @stoplight/spectral-cli@6 @stoplight/spectral-owasp-ruleset@2)
fi
printf 'extends: ["@stoplight/spectral-owasp-ruleset"]\n' >"$SPECTRAL/ruleset.yaml"
cargo build -q -p portcullis --locked
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT/spectral" "$OUT/audit"
DOCS=(crates/audit/tests/corpus/*.yaml crates/portcullis/demo/orders-openapi.yaml)
for doc in "${DOCS[@]}"; do
  base=$(basename "$doc")
  "$SPECTRAL/node_modules/.bin/spectral" lint -q -r "$SPECTRAL/ruleset.yaml" -f json "$doc" >"$OUT/spectral/$base.json" 2>/dev/null || true
  target/debug/portcullis audit --spec "$doc" --format json >"$OUT/audit/$base.json"
done
python3 scripts/compare_spectral.py "$OUT/spectral" "$OUT/audit" "${DOCS[@]}"
