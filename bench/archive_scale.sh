#!/usr/bin/env bash
# Archive and retention at scale (issue 15's figures), one run on local disk:
#  1. objects per hour of archive, before/after `binlog compact`, from a real `binlog stream
#     --flush-interval 500ms --no-compact` under sysbench oltp_write_only for DURATION seconds at
#     a steady RATE transactions per second;
#  2. wall time of `binlog list --json`, `info --json` and a PITR plan (`restore --to-time T` to an
#     unreachable target: planning, then the connection fails) over SEGMENTS generated 0.5 s
#     segments (bench/archive_gen.py extends the real archive of step 1), before/after compaction;
#  3. wall time of `expire --keep-last 10` over BACKUPS backups in a Garage (S3) repository.
#
# Usage: bench/archive_scale.sh [--help]
# Environment: HOLDFAST [target/release/holdfast, built unless set], WORK [/tmp/holdfast-bench-scale],
#   DURATION [180] seconds of load, SEGMENTS [172800] generated segments (24 h of 0.5 s),
#   BACKUPS [1000] backups for expire (0 skips step 3), THREADS [2] sysbench threads,
#   RATE [20] sysbench transactions per second (0: as fast as it goes; the generated segments of
#   step 2 copy a median segment of step 1, so RATE also sets their size),
#   REUSE [0] 1: skip step 1 and reuse the archive and backup a previous run left in WORK.
# Needs: mariadbd, sysbench, garage (scripts/ensure-garage.sh), python3, and the AWS CLI for
#   step 3 (`pip install awscli`; it uploads the generated backups).
set -Eeuo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/sbin:/usr/local/sbin:/sbin"
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0; }
[[ $# -eq 0 ]] || { echo "archive_scale.sh: unknown argument '$1' (try --help)" >&2; exit 2; }
DURATION=${DURATION:-180} SEGMENTS=${SEGMENTS:-172800} BACKUPS=${BACKUPS:-1000} THREADS=${THREADS:-2} RATE=${RATE:-20}
WORK=${WORK:-/tmp/holdfast-bench-scale}
ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*" >&2; }
die() { echo "[$(ts)] FATAL: $*" >&2; exit 1; }
for cmd in mariadbd mariadb-install-db mariadb mariadb-admin sysbench python3; do
  command -v "$cmd" >/dev/null || die "$cmd missing (scripts/test.sh installs the packages)"
done
if [[ -z ${HOLDFAST:-} ]]; then
  (cd "$ROOT" && cargo build --release -q -p holdfast-cli) || die "build failed"
  HOLDFAST="${CARGO_TARGET_DIR:-$ROOT/target}/release/holdfast"
fi
[[ -x $HOLDFAST ]] || die "holdfast binary $HOLDFAST not found"

REUSE=${REUSE:-0}
[[ $REUSE == 1 ]] || { rm -rf "$WORK"; mkdir -p "$WORK"; }
declare -a PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
USER_ARG=(); [[ $EUID -eq 0 ]] && USER_ARG=(--user=root)
# timed CMD...: wall seconds of CMD into $t (its output in $WORK/last.out/.err), status into LAST_RC.
timed() {
  local t0 t1; t0=$(date +%s.%N); set +e; "$@" >"$WORK/last.out" 2>"$WORK/last.err"; LAST_RC=$?; set -e
  t1=$(date +%s.%N); t=$(python3 -c "print(f'{$t1-$t0:.2f}')")
}
objects() { find "$1/binlog" -type f | wc -l; }
declare -a ROWS_OUT=()
row() { ROWS_OUT+=("$(printf '%-62s %s' "$1" "$2")"); log "$1: $2"; }

# --- 1. a real stream under writes ---------------------------------------------------------
REPO=$WORK/repo
if [[ $REUSE == 1 ]]; then
  [[ -d $WORK/repo-stream && -d $REPO ]] || die "REUSE=1: no step-1 archive in $WORK"
else
PORT=$(free_port) DIR=$WORK/db
mkdir -p "$DIR/tmp"
mariadb-install-db --no-defaults --datadir="$DIR/data" --auth-root-authentication-method=normal \
  --skip-test-db "${USER_ARG[@]}" >"$DIR/install.log" 2>&1 || die "mariadb-install-db failed"
mariadbd --no-defaults "${USER_ARG[@]}" --datadir="$DIR/data" --socket="$DIR/sock" --port="$PORT" \
  --bind-address=127.0.0.1 --server-id=1 --log-bin=mysql-bin --binlog-format=ROW \
  --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
  --tmpdir="$DIR/tmp" --log-error="$DIR/error.log" >>"$DIR/error.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do mariadb-admin --no-defaults -uroot --socket="$DIR/sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
mariadb-admin --no-defaults -uroot --socket="$DIR/sock" ping >/dev/null 2>&1 || die "mariadbd did not start ($DIR/error.log)"
SRC="mysql://root@127.0.0.1:$PORT/"
SB=(sysbench oltp_write_only --db-driver=mysql --mysql-socket="$DIR/sock" --mysql-user=root
    --mysql-db=sbtest --tables=2 --table-size=10000)
mariadb --no-defaults -uroot --socket="$DIR/sock" -e "CREATE DATABASE sbtest"
"${SB[@]}" --threads=2 prepare >"$WORK/sysbench.log" 2>&1 || die "sysbench prepare failed"
"$HOLDFAST" init --repo "$REPO" >/dev/null
"$HOLDFAST" backup --repo "$REPO" --source "$SRC" >"$WORK/backup.log" 2>&1 || die "backup failed ($WORK/backup.log)"
"$HOLDFAST" binlog stream --repo "$REPO" --source "$SRC" --flush-interval 500ms --no-compact \
  >"$WORK/stream.out" 2>"$WORK/stream.log" &
STREAM=$!; PIDS+=($STREAM)
sleep 2
log "sysbench oltp_write_only, $THREADS threads, ${RATE} tx/s, ${DURATION}s, stream --flush-interval 500ms --no-compact"
before0=$(objects "$REPO")
"${SB[@]}" --threads="$THREADS" --rate="$RATE" --time="$DURATION" --report-interval=0 run >>"$WORK/sysbench.log" 2>&1 \
  || die "sysbench run failed"
sleep 2
kill -TERM "$STREAM"; wait "$STREAM" || true
before=$(objects "$REPO")
segs=$(find "$REPO/binlog/index" -type f | wc -l)
cp -a "$REPO" "$WORK/repo-stream"   # the uncompacted archive, which step 2 extends
row "1. segments committed in ${DURATION}s of writes" "$segs"
row "1. objects under binlog/ per hour, before compaction" \
  "$(( (before - before0) * 3600 / DURATION )) ($((before - before0)) in ${DURATION}s)"
timed "$HOLDFAST" binlog compact --repo "$REPO" --older-than 0s --json
[[ $LAST_RC == 0 ]] || die "binlog compact failed: $(cat "$WORK/last.err")"
after=$(objects "$REPO")
row "1. objects under binlog/ per hour, after compaction" \
  "$(( (after - before0) * 3600 / DURATION )) ($((after - before0)) in ${DURATION}s; compact took ${t}s)"
fi

# --- 2. 24 h of 0.5 s segments --------------------------------------------------------------
BIG=$WORK/repo-big
log "generating $SEGMENTS segments of 0.5 s after the real archive"
timed python3 "$BENCH_DIR/archive_gen.py" "$WORK/repo-stream" "$BIG" "$SEGMENTS"
[[ $LAST_RC == 0 ]] || die "archive_gen.py failed: $(cat "$WORK/last.err")"
log "$(cat "$WORK/last.out") in ${t}s"
# A point in the middle of the generated history, and a target nobody listens on: the restore
# plans (reads the backups and every index entry, picks the base and the segments), then fails
# connecting to the target.
mid=$(python3 -c "import json,glob; f=sorted(glob.glob('$BIG/binlog/index/*.json')); \
import time; e=json.load(open(f[len(f)//2])); print(time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e['last_event_time'])))")
DEAD="mysql://root@127.0.0.1:$(free_port)/"
measure() { # LABEL
  local n; n=$(find "$BIG/binlog" -type f | wc -l)
  row "2. [$1] objects under binlog/" "$n"
  timed "$HOLDFAST" binlog list --repo "$BIG" --json
  [[ $LAST_RC == 0 ]] || die "binlog list failed: $(cat "$WORK/last.err")"
  row "2. [$1] binlog list --json (s)" "$t"
  timed "$HOLDFAST" info --repo "$BIG" --json
  [[ $LAST_RC == 0 ]] || die "info failed: $(cat "$WORK/last.err")"
  row "2. [$1] info --json (s)" "$t"
  timed "$HOLDFAST" restore --repo "$BIG" --to-time "$mid" --target "$DEAD"
  grep -qi "connect\|refused" "$WORK/last.err" \
    || die "restore --to-time did not get past planning: $(cat "$WORK/last.err")"
  row "2. [$1] restore --to-time (plan, then refused target) (s)" "$t"
}
measure "before compaction"
timed "$HOLDFAST" binlog compact --repo "$BIG" --older-than 0s --json
[[ $LAST_RC == 0 ]] || die "binlog compact failed: $(cat "$WORK/last.err")"
row "2. binlog compact --older-than 0s over the generated archive (s)" "$t"
measure "after compaction"

# --- 3. expire over 1,000 backups on Garage -------------------------------------------------
if [[ $BACKUPS -gt 0 ]]; then
  command -v aws >/dev/null || die "aws (the AWS CLI) missing: it uploads the generated backups"
  start_garage holdfast-bench
  S3="s3://holdfast-bench/expire?endpoint=http://127.0.0.1:$S3_PORT&region=garage"
  "$HOLDFAST" init --repo "$S3" >/dev/null
  # The real logical backup of step 1, cloned under BACKUPS ids an hour apart (each clone's
  # manifest names its own id and times; the data files are the same bytes under its directory).
  log "cloning the step-1 backup into $BACKUPS backups and uploading them"
  python3 "$BENCH_DIR/archive_gen.py" --clone-backups "$REPO" "$WORK/backups" "$BACKUPS"
  timed aws --endpoint-url "http://127.0.0.1:$S3_PORT" s3 sync --only-show-errors \
    "$WORK/backups/backups" "s3://holdfast-bench/expire/backups"
  [[ $LAST_RC == 0 ]] || die "upload failed: $(cat "$WORK/last.err")"
  log "uploaded in ${t}s"
  n=$("$HOLDFAST" list --repo "$S3" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d if isinstance(d,list) else d.get("backups",[])))')
  row "3. backups in the Garage repository" "$n"
  timed "$HOLDFAST" expire --repo "$S3" --keep-last 10 --dry-run --json
  [[ $LAST_RC == 0 ]] || die "expire --dry-run failed: $(cat "$WORK/last.err")"
  row "3. expire --keep-last 10 --dry-run (plan only) (s)" "$t"
  timed "$HOLDFAST" expire --repo "$S3" --keep-last 10 --json
  [[ $LAST_RC == 0 ]] || die "expire failed: $(cat "$WORK/last.err")"
  n=$("$HOLDFAST" list --repo "$S3" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d if isinstance(d,list) else d.get("backups",[])))')
  row "3. expire --keep-last 10 over $BACKUPS backups on Garage (s)" "$t ($n left)"
fi

echo
printf '%-62s %s\n' "measure" "value"
printf '%s\n' "${ROWS_OUT[@]}"
