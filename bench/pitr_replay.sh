#!/usr/bin/env bash
# Point-in-time replay throughput: holdfast's fast path (the target's own parallel replication,
# fed by holdfast as its primary) and portable path (SQL over one session) against
# `mariadb-binlog FILES | mariadb`, on the same binlog range, same base, same target, same run.
#
# Usage: bench/pitr_replay.sh [--quick]
# Environment: HOLDFAST [target/release/holdfast]  ROWS [100000] TABLES [4] EVENTS [20000]
#   RUNS [3]  WORK [/tmp/holdfast-bench-pitr]  SRC_PORT [33091] TGT_PORT [33092]
# The range: everything a sysbench oltp_write_only run of EVENTS transactions wrote after a
# logical backup. For holdfast, `restore --latest --replay P --json` restores the base and
# replays; its `replay_seconds` is the figure. For the peer, the base is restored by holdfast
# (untimed) and `mariadb-binlog --start-position=<backup pos> FILES | mariadb` is timed. After each
# step CHECKSUM TABLE of every sbtest table must equal the source's.
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
[[ ${1:-} == --quick ]] && { ROWS=20000; TABLES=2; EVENTS=3000; RUNS=1; }
ROWS=${ROWS:-100000} TABLES=${TABLES:-4} EVENTS=${EVENTS:-20000} RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/holdfast-bench-pitr} SRC_PORT=${SRC_PORT:-33091} TGT_PORT=${TGT_PORT:-33092}
DEFAULT_HOLDFAST="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/holdfast"
HOLDFAST=${HOLDFAST:-$DEFAULT_HOLDFAST}
if [[ $HOLDFAST == "$DEFAULT_HOLDFAST" ]]; then (cd "$REPO_ROOT" && cargo build --release -p holdfast-cli) >&2; fi
log() { echo "[$(date +%H:%M:%S)] $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"/s*/data; }
trap cleanup EXIT
start() { # N PORT
  local d="$WORK/s$1"; mkdir -p "$d/tmp"
  mariadb-install-db --no-defaults --auth-root-authentication-method=normal --user="$(id -un)" \
    --datadir="$d/data" >"$d/install.log" 2>&1 || die "install-db $1"
  mariadbd --no-defaults --user="$(id -un)" --datadir="$d/data" --socket="$d/sock" --port="$2" \
    --bind-address=127.0.0.1 --server-id="$1" --log-bin=mysql-bin --binlog-format=ROW \
    --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
    --max-allowed-packet=1G --local-infile=1 --tmpdir="$d/tmp" --log-error="$d/error.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do mariadb --no-defaults -uroot -h127.0.0.1 -P"$2" -e 'SELECT 1' >/dev/null 2>&1 && return; sleep 0.2; done
  die "server $1 did not start"
}
sqls() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$SRC_PORT" -N -B -e "$1"; }
sqlt() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$TGT_PORT" -N -B -e "$1"; }
start 1 "$SRC_PORT"; start 2 "$TGT_PORT"
SB=(sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root
    --mysql-db=sbtest --tables="$TABLES" --table-size="$ROWS")
sqls "CREATE DATABASE sbtest"
log "sysbench prepare $TABLES x $ROWS"
"${SB[@]}" --threads=2 oltp_write_only prepare >"$WORK/prepare.log" 2>&1 || die "prepare"
REPO="file://$WORK/repo"
"$HOLDFAST" init --repo "$REPO" >/dev/null
BACKUP_JSON=$("$HOLDFAST" backup --repo "$REPO" --source "mysql://root@127.0.0.1:$SRC_PORT/" --json --no-progress)
BACKUP_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$BACKUP_JSON")
read -r FILE POS < <(python3 -c 'import json,sys; c=json.loads(sys.argv[1])["consistent_point"]; print(c["binlog_file"], c["binlog_pos"])' "$BACKUP_JSON")
log "backup $BACKUP_ID at $FILE:$POS; sysbench oltp_write_only --events=$EVENTS"
"${SB[@]}" --threads=2 --events="$EVENTS" --time=0 oltp_write_only run >"$WORK/run.log" 2>&1 || die "sysbench run"
sqls "FLUSH BINARY LOGS"
"$HOLDFAST" binlog stream --repo "$REPO" --source "mysql://root@127.0.0.1:$SRC_PORT/" --until-caught-up >/dev/null
FILES=(); for f in $(sqls "SHOW BINARY LOGS" | cut -f1); do [[ $f < $FILE ]] || FILES+=("$WORK/s1/data/$f"); done
MB=$(python3 -c "import os,sys; print(round((sum(os.path.getsize(f) for f in sys.argv[2:]) - int(sys.argv[1])) / 1e6, 1))" "$POS" "${FILES[@]}")
TABLES_SQL="SELECT GROUP_CONCAT(CONCAT('sbtest.', TABLE_NAME)) FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest'"
SUMS=$(sqls "CHECKSUM TABLE $(sqls "$TABLES_SQL")" | cut -f2 | tr '\n' ' ')
reset_target() { sqlt "STOP ALL SLAVES; DROP DATABASE IF EXISTS sbtest; RESET MASTER; SET GLOBAL gtid_slave_pos=''" >/dev/null 2>&1 || true; }
check() { local got; got=$(sqlt "CHECKSUM TABLE $(sqls "$TABLES_SQL")" | cut -f2 | tr '\n' ' '); [[ $got == "$SUMS" ]] || die "$1: target differs from the source"; }
RESULTS="$WORK/results.txt"; : >"$RESULTS"
for run in $(seq 1 "$RUNS"); do
  for tool in fast portable peer; do
    reset_target
    if [[ $tool == peer ]]; then
      "$HOLDFAST" restore --repo "$REPO" --target "mysql://root@127.0.0.1:$TGT_PORT/" "$BACKUP_ID" --drop-existing >/dev/null
      start_t=$(date +%s.%N)
      mariadb-binlog --no-defaults --start-position="$POS" "${FILES[@]}" \
        | mariadb --no-defaults -uroot -h127.0.0.1 -P"$TGT_PORT" || die "mariadb-binlog | mariadb failed"
      secs=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start_t" "$(date +%s.%N)")
    else
      out=$("$HOLDFAST" restore --repo "$REPO" --target "mysql://root@127.0.0.1:$TGT_PORT/" --latest --replay "$tool" --drop-existing --json --no-progress)
      secs=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["replay_seconds"])' "$out")
    fi
    check "$tool run $run"
    log "$tool run $run: $secs s"
    echo "$tool $secs" >>"$RESULTS"
  done
done
python3 - "$RESULTS" "$MB" "$EVENTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {t: statistics.median(float(s) for n, s in rows if n == t) for t in ("fast", "portable", "peer")}
mb, ev = float(sys.argv[2]), int(sys.argv[3])
print(f"\nreplay of {mb} MB of binlog ({ev} sysbench transactions), medians:")
for t in ("fast", "portable", "peer"):
    print(f"  {t:<9} {med[t]:8.2f} s  {mb / med[t]:7.1f} MB/s")
print(f"fast path: {med['peer'] / med['fast']:.2f}x as fast as mariadb-binlog | mariadb (bar >= 2)")
print(f"portable path: {med['peer'] / med['portable']:.2f}x as fast as mariadb-binlog | mariadb")
PY
