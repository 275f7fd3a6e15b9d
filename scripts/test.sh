#!/usr/bin/env bash
# The project's test command (README, .ci/run). Needs only the Rust
# toolchain: external judges (schemathesis, testssl.sh, sslyze, Spectral,
# Chromium, helm, kubernetes-validate, systemd-analyze) are installed by the scripts that run them; Redis and
# PostgreSQL (Debian packages) are installed here, and the tests that need them start and stop
# their own `redis-server` / `postgres` on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
# docs/controls.md is checked, never rewritten, by the test command.
unset UPDATE_CONTROLS
source scripts/judge-lib.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
command -v redis-server >/dev/null || apt_install redis-server
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_install postgresql
# The legacy fixture's 1024-bit RSA certificate (rustls and rcgen refuse to make one).
command -v openssl >/dev/null || apt_install openssl
cargo test --workspace --locked
./scripts/schemathesis.sh
./scripts/tls-judges.sh
# The assessor's judges: Spectral's OWASP ruleset on the contract corpus
# (Node.js, npm), its HTML report in headless Chromium (Debian).
./scripts/audit-vs-spectral.sh
./scripts/audit-html-chromium.sh
# Shipping: the Helm chart (helm lint/template, Kubernetes schemas), the
# systemd unit (systemd-analyze), and the image's binary (docker build where
# an engine answers, else the release build script the Dockerfile runs).
./scripts/deploy-check.sh
