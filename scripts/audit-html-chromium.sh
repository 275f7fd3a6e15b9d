#!/usr/bin/env bash
# Renders an `audit` HTML report in headless Chromium (Debian `chromium`,
# installed when missing) and checks it: no console errors or CSP
# refusals, the chart and one entry per checklist ID in the rendered DOM,
# and a screenshot (target/audit-report.png). Part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/judge-lib.sh
command -v chromium >/dev/null || apt_install chromium
cargo build -q -p portcullis --locked
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
target/debug/portcullis audit --spec crates/portcullis/demo/orders-openapi.yaml --format html -o "$OUT/report.html"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --user-data-dir="$OUT/profile" --enable-logging=stderr --v=0)
timeout 60 chromium "${flags[@]}" --dump-dom "file://$OUT/report.html" >"$OUT/dom.html" 2>"$OUT/console.log"
timeout 60 chromium "${flags[@]}" --window-size=1200,1600 --screenshot="$PWD/target/audit-report.png" "file://$OUT/report.html" >/dev/null 2>>"$OUT/console.log"
python3 - "$OUT/dom.html" "$OUT/console.log" <<'PY'
import re, sys
dom, log = open(sys.argv[1]).read(), open(sys.argv[2]).read()
problems = [l for l in log.splitlines() if re.search(r"CONSOLE|Refused to|Uncaught", l)]
details = dom.count('<details class="control')
chart = '<svg id="chart"' in dom
ok = not problems and details == 83 and chart and 'id="grade"' in dom
print(f"  chromium: {details} checklist entries, chart {'present' if chart else 'MISSING'}, {len(problems)} console errors")
for p in problems:
    print("  " + p)
sys.exit(0 if ok else 1)
PY
echo "  screenshot: target/audit-report.png"
