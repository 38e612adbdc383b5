#!/usr/bin/env bash
# Sustained load on the binlog stream: sysbench oltp_write_only for DURATION seconds (default
# 600) with a source restart at 40% and a SIGKILL of the stream at 70%; reports lag p50/p99,
# the stream's RSS per minute and checks every GTID was archived exactly once. Not part of the
# test suite. See bench/sustained.py for the method and variables.
#
# Usage: bench/sustained.sh        DURATION=180 THREADS=4 bench/sustained.sh
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
for cmd in mariadbd mariadb-install-db mariadb mariadb-binlog sysbench zstd python3; do
  command -v "$cmd" >/dev/null || { echo "sustained.sh: $cmd is missing (apt-get install mariadb-server mariadb-client sysbench zstd python3)" >&2; exit 2; }
done
DEFAULT_HOLDFAST="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/holdfast"
export HOLDFAST=${HOLDFAST:-$DEFAULT_HOLDFAST}
if [[ $HOLDFAST == "$DEFAULT_HOLDFAST" && ${HOLDFAST_BUILD:-1} == 1 ]]; then
  (cd "$REPO_ROOT" && nice cargo build --release -p holdfast-cli) >&2
fi
exec python3 "$BENCH_DIR/sustained.py" "$@"
