#!/usr/bin/env bash
# Compares `portcullis audit`'s contract findings with Spectral's OWASP
# ruleset on the corpus in crates/audit/tests/corpus (and the quickstart's
# demo document). Installs Spectral (pinned) from npm into target/spectral,
# and Node.js from Debian if it is missing. Exits 1 when Spectral finds
# something, under a rule that judges what an `audit` rule judges, that
# `audit` does not.
# Prints the comparison table (docs/audit-vs-spectral.md is its output).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/judge-lib.sh
command -v npm >/dev/null || apt_install nodejs npm
SPECTRAL=target/spectral
CLI=6.16.3
OWASP=2.0.1
if ! grep -qs "\"version\": \"$CLI\"" "$SPECTRAL/node_modules/@stoplight/spectral-cli/package.json" ||
  ! grep -qs "\"version\": \"$OWASP\"" "$SPECTRAL/node_modules/@stoplight/spectral-owasp-ruleset/package.json"; then
  echo "judges: installing Spectral $CLI with the OWASP ruleset $OWASP (npm)"
  rm -rf "$SPECTRAL" && mkdir -p "$SPECTRAL"
  (cd "$SPECTRAL" && npm install --silent --no-audit --no-fund "@stoplight/spectral-cli@$CLI" "@stoplight/spectral-owasp-ruleset@$OWASP")
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
python3 scripts/compare_spectral.py "$OUT/spectral" "$OUT/audit" "${DOCS[@]}" | tee "$OUT/table.md"
# The published table must be this run's.
if ! diff <(grep '^| `owasp' "$OUT/table.md") <(grep '^| `owasp' docs/audit-vs-spectral.md) >/dev/null; then
  echo "docs/audit-vs-spectral.md is out of date: put this table in it"
  exit 1
fi
