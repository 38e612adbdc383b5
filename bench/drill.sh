#!/usr/bin/env bash
# Restore drills: RTO of `holdfast drill` vs `holdfast restore` of the same logical backup (the
# overhead of the throwaway server and the checks), the drill server's peak memory, and a
# `drill report` after a point-in-time drill and a chain proof over a busy archive.
#
# Usage: bench/drill.sh [--quick] [--help]
# Environment (defaults in brackets):
#   ROWS [200000]  rows per sysbench table        TABLES [4]   sysbench tables
#   RUNS [3]       measured runs (medians)         THREADS [2]  restore connections
#   MEMORY [256M]  the drill server's buffer pool (--drill-memory)
#   HOLDFAST [target/release/holdfast]  WORK [/tmp/holdfast-drill-bench]
# --quick forces ROWS=20000 TABLES=2 RUNS=1.
#
# Needs mariadbd, mariadb-install-db, mariadb, sysbench, python3. The servers listen on Unix
# sockets in WORK only.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "drill.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then ROWS=20000 TABLES=2 RUNS=1; fi
ROWS=${ROWS:-200000}
TABLES=${TABLES:-4}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
MEMORY=${MEMORY:-256M}
WORK=${WORK:-/tmp/holdfast-drill-bench}
HOLDFAST=${HOLDFAST:-$REPO_ROOT/target/release/holdfast}
for cmd in mariadbd mariadb-install-db mariadb sysbench python3; do
  command -v "$cmd" >/dev/null || { echo "drill.sh: $cmd is needed" >&2; exit 2; }
done
[[ -x $HOLDFAST ]] || { echo "drill.sh: $HOLDFAST missing: cargo build --release -p holdfast-cli" >&2; exit 2; }

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
rm -rf "$WORK"; mkdir -p "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start_server NAME: a mariadbd with its binlog on, socket $WORK/NAME/sock.
start_server() {
  local d="$WORK/$1"
  mkdir -p "$d"
  mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=normal \
    --skip-test-db $([[ $EUID == 0 ]] && echo --user=root) >"$d/install.log" 2>&1
  mariadbd --no-defaults --datadir="$d/data" --socket="$d/sock" --skip-networking \
    --log-bin=mysql-bin --server-id=$((RANDOM + 1)) --binlog-format=ROW --log-error="$d/error.log" \
    --innodb-buffer-pool-size=256M --local-infile=1 --secure-file-priv= \
    $([[ $EUID == 0 ]] && echo --user=root) >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do mariadb --no-defaults -S "$d/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && return; sleep 0.1; done
  echo "drill.sh: $1 did not start" >&2; tail "$d/error.log" >&2; exit 1
}
url() { echo "mysql://root@localhost/?socket=$WORK/$1/sock"; }
sql() { mariadb --no-defaults -S "$WORK/$1/sock" -uroot -N -e "$2"; }
secs() { python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }
median() { python3 -c 'import sys,statistics; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' "$@"; }

start_server source
sql source "CREATE DATABASE sbtest"
log "sysbench prepare: $TABLES tables x $ROWS rows"
sysbench oltp_read_write --db-driver=mysql --mysql-socket="$WORK/source/sock" --mysql-user=root \
  --tables="$TABLES" --table-size="$ROWS" prepare >"$WORK/sysbench.log" 2>&1
REPO="file://$WORK/repo"
"$HOLDFAST" init --repo "$REPO" >/dev/null
"$HOLDFAST" backup --repo "$REPO" --source "$(url source)" --threads "$THREADS" --json >"$WORK/backup.json"
BYTES=$(du -sb "$WORK/repo/backups" | cut -f1)

RESTORE=() DRILL_RTO=() DRILL_WALL=() PEAK=()
for run in $(seq "$RUNS"); do
  start_server "target$run"
  t0=$(secs)
  "$HOLDFAST" restore --repo "$REPO" --target "$(url "target$run")" latest --threads "$THREADS" --json >"$WORK/restore$run.json"
  t1=$(secs)
  RESTORE+=("$(python3 -c "print($t1 - $t0)")")
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
  t0=$(secs)
  "$HOLDFAST" drill --repo "$REPO" latest --threads "$THREADS" --drill-memory "$MEMORY" --json >"$WORK/drill$run.json"
  t1=$(secs)
  DRILL_WALL+=("$(python3 -c "print($t1 - $t0)")")
  DRILL_RTO+=("$(python3 -c "import json; print(json.load(open('$WORK/drill$run.json'))['rto_seconds'])")")
  PEAK+=("$(python3 -c "import json; print(json.load(open('$WORK/drill$run.json'))['server'].get('peak_memory_bytes', 0) / 2**20)")")
  log "run $run: restore ${RESTORE[-1]}s, drill RTO ${DRILL_RTO[-1]}s (wall ${DRILL_WALL[-1]}s), drill server peak ${PEAK[-1]} MiB"
done

# A busy archive, a second backup, a PITR drill and a chain proof, then the report.
log "busy archive: sysbench oltp_write_only for 10 s while streaming, second backup in the middle"
"$HOLDFAST" binlog stream --repo "$REPO" --source "$(url source)" --flush-interval 500ms >"$WORK/stream.log" 2>&1 &
STREAM=$!
sysbench oltp_write_only --db-driver=mysql --mysql-socket="$WORK/source/sock" --mysql-user=root \
  --tables="$TABLES" --table-size="$ROWS" --time=10 --threads=2 run >"$WORK/sysbench-run.log" 2>&1 &
SB=$!
sleep 5
"$HOLDFAST" backup --repo "$REPO" --source "$(url source)" --threads "$THREADS" --json >"$WORK/backup2.json"
wait "$SB"
sleep 2
kill -TERM "$STREAM"; wait "$STREAM" || true
"$HOLDFAST" drill --repo "$REPO" --chain --threads "$THREADS" --drill-memory "$MEMORY" --json >"$WORK/chain.json" || true
"$HOLDFAST" drill --repo "$REPO" --pitr random --threads "$THREADS" --drill-memory "$MEMORY" --json >"$WORK/pitr.json" || true

echo
echo "data: $TABLES x $ROWS sysbench rows, backup $((BYTES / 1048576)) MiB in the repository; $RUNS runs, medians"
echo "holdfast restore (fresh server):      $(median "${RESTORE[@]}") s"
echo "holdfast drill, RTO (restore inside): $(median "${DRILL_RTO[@]}") s"
echo "holdfast drill, wall (init+checks):   $(median "${DRILL_WALL[@]}") s"
echo "drill server peak RSS (VmHWM):        $(median "${PEAK[@]}") MiB (buffer pool $MEMORY)"
python3 - "$WORK/chain.json" "$WORK/pitr.json" <<'EOF'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    g = r.get("range", {})
    print(f"{r['kind']}: {r['outcome']}, RTO {r['rto_seconds']:.2f}s, {g.get('transactions')} transactions "
          f"replayed, GTID {g.get('reached_gtid')} (expected {g.get('expected_gtid')}), "
          f"peak {r['server'].get('peak_memory_bytes', 0) / 2**20:.0f} MiB")
EOF
echo
"$HOLDFAST" drill report --repo "$REPO"
