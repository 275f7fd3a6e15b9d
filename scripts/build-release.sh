#!/usr/bin/env bash
# Builds the binary Portcullis ships: the `dist` profile (optimised, one
# codegen unit, whole-program LTO, stripped), from the locked dependency set.
# The container image (deploy/Dockerfile) runs exactly this script; the test
# command runs it too, so the shipped build is built on every CI run even
# where no container runtime exists.
#
#   scripts/build-release.sh [OUT_DIR]     (default target/ship)
#
# PORTCULLIS_COMMIT names the commit when there is no .git (container builds).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/ship}"
cargo build --locked --profile dist -p portcullis
mkdir -p "$out"
install -m 0755 target/dist/portcullis "$out/portcullis"
# The shipped binary must run, report its build and carry no debug info.
"$out/portcullis" --version
if command -v file >/dev/null && file "$out/portcullis" | grep -q 'not stripped'; then
    echo "build-release: $out/portcullis is not stripped" >&2
    exit 1
fi
echo "build-release: $out/portcullis, $(du -h "$out/portcullis" | cut -f1)"
