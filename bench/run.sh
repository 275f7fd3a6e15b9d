#!/usr/bin/env bash
# One command: installs the peers and tools, builds the gateway with the
# `dist` profile (release, one codegen unit, fat LTO: what a deployment
# runs), runs the scenarios of BENCH.md and prints one table.
#   bench/run.sh            full run (3 alternating repetitions, ~15 min)
#   bench/run.sh --quick    one repetition, short windows (~3 min)
# Not part of the test command. Loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in wrk nginx haproxy taskset openssl pgrep; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light haproxy util-linux openssl procps >/dev/null
fi
# nginx from Debian starts a system instance on install; the benchmark runs its own.
pkill -f 'nginx: master process /usr/sbin/nginx -g' 2>/dev/null || true
command -v oha >/dev/null 2>&1 || cargo install oha --locked
cargo build --profile dist -p portcullis
exec python3 bench/run.py "$@"
