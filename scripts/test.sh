#!/usr/bin/env bash
# The project's test command (README, .ci/run). Needs only the Rust
# toolchain: external judges (schemathesis, testssl.sh, sslyze) are
# installed by the scripts that run them; Redis (Debian package) is
# installed here, and the tests that need it start and stop their own
# `redis-server` on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/judge-lib.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
command -v redis-server >/dev/null || apt_install redis-server
cargo test --workspace --locked
./scripts/schemathesis.sh
./scripts/tls-judges.sh
