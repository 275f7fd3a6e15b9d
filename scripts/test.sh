#!/usr/bin/env bash
# The project's test command (README, .ci/run). Needs only the Rust
# toolchain: external judges (schemathesis) are installed by the scripts
# that run them; later suites that need Redis or PostgreSQL install and
# start them from here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
./scripts/schemathesis.sh
./scripts/tls-judges.sh
