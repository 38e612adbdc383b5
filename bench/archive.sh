#!/usr/bin/env bash
# Binlog archiving benchmark: archive lag (p50/p99 seconds behind the server) and CPU seconds per
# MB of binlog, holdfast `binlog stream` vs `mariadb-binlog --raw --stop-never`, same server, same
# sysbench write load, same run. See bench/archive_lag.py for the method and variables.
#
# Usage: bench/archive.sh [--quick]
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
for cmd in mariadbd mariadb-install-db mariadb mariadb-binlog sysbench python3; do
  command -v "$cmd" >/dev/null || { echo "archive.sh: $cmd is missing (apt-get install mariadb-server mariadb-client sysbench python3)" >&2; exit 2; }
done
DEFAULT_HOLDFAST="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/holdfast"
export HOLDFAST=${HOLDFAST:-$DEFAULT_HOLDFAST}
if [[ $HOLDFAST == "$DEFAULT_HOLDFAST" && ${HOLDFAST_BUILD:-1} == 1 ]]; then
  (cd "$REPO_ROOT" && cargo build --release -p holdfast-cli) >&2
fi
exec python3 "$BENCH_DIR/archive_lag.py" "$@"
