#!/usr/bin/env bash
# Physical backup/restore benchmark: holdfast (--engine physical) vs mariabackup by hand.
#
# Usage: bench/physical.sh [--quick] [--help]
# Environment (defaults in brackets):
#   ROWS [1000000]  rows per sysbench table        TABLES [8]    sysbench tables
#   RUNS [3]        measured runs (medians)         THREADS [2]   holdfast --threads, zstd -T
#   HOLDFAST [target/release/holdfast]              WORK [/tmp/holdfast-bench-physical]
#   HOLDFAST_BUILD [1]  with the default HOLDFAST path: `cargo build --release -p holdfast-cli` first
#   SRC_PORT [33071] CHK_PORT [33072]  TCP ports on 127.0.0.1 for the throwaway servers
#   REUSE_FROM [/tmp/holdfast-bench]  a bench/logical.sh WORK whose prepared source of the same size
#                   is copied instead of running sysbench prepare again (when no server uses it)
#   INNODB_LOG [256M]  the source's innodb_log_file_size (disk: the datadir holds it)
# --quick forces ROWS=100000 TABLES=4 RUNS=1 (smoke test).
#
# Per run, in rotated order, on the same datadir:
#   backup  holdfast backup --engine physical --json                  (subject; zstd -1 frames on
#                                                                      THREADS cores, SHA-256)
#   backup  mariabackup --backup --stream=xbstream | zstd -T2 > file  (the bar: hf <= 1.1x)
#   backup  mariabackup --backup --stream=xbstream | zstd -1 -T2      (info: same level as holdfast)
#   restore holdfast restore --datadir DIR --json                      (subject)
#   restore zstd -d | mbstream -x; mariabackup --prepare; --move-back (by hand, same steps)
# After run 1 a server is started on holdfast's restored datadir and CHECKSUM TABLE compared.
# Machines are noisy 2-core boxes: read medians and holdfast/peer ratios, never a single time.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

usage() { sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "physical.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then ROWS=100000 TABLES=4 RUNS=1; fi
ROWS=${ROWS:-1000000}
TABLES=${TABLES:-8}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/holdfast-bench-physical}
DEFAULT_HOLDFAST="$REPO_ROOT/target/release/holdfast"
HOLDFAST=${HOLDFAST:-$DEFAULT_HOLDFAST}
HOLDFAST_BUILD=${HOLDFAST_BUILD:-1}
SRC_PORT=${SRC_PORT:-33071}
CHK_PORT=${CHK_PORT:-33072}
REUSE_FROM=${REUSE_FROM:-/tmp/holdfast-bench}
INNODB_LOG=${INNODB_LOG:-256M}
for v in ROWS TABLES RUNS THREADS SRC_PORT CHK_PORT; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "physical.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done

ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*"; }
die() { echo "[$(ts)] FATAL: $*" >&2; exit 1; }

for pair in mariadbd:mariadb-server mariadb-install-db:mariadb-server mariadb:mariadb-client \
            mariadb-admin:mariadb-client mariabackup:mariadb-backup mbstream:mariadb-backup \
            sysbench:sysbench zstd:zstd python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || die "'${pair%%:*}' is missing: apt-get install ${pair#*:}"
done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOGS="$WORK/logs"; rm -rf "$LOGS"; mkdir -p "$LOGS"
MEAS="$WORK/measurements.jsonl"; rm -f "$MEAS" "$WORK/results.json"

if [[ $HOLDFAST == "$DEFAULT_HOLDFAST" && $HOLDFAST_BUILD == 1 ]]; then
  log "cargo build --release -p holdfast-cli (log: $LOGS/cargo-build.log) ..."
  (cd "$REPO_ROOT" && cargo build --release -p holdfast-cli) >"$LOGS/cargo-build.log" 2>&1 \
    || { tail -15 "$LOGS/cargo-build.log"; die "build failed"; }
fi
[[ -x $HOLDFAST ]] || die "holdfast binary $HOLDFAST missing"
"$HOLDFAST" backup --help | grep -q -- '--engine' || die "$HOLDFAST has no physical engine (backup --engine)"

SRC_DIR="$WORK/source-${TABLES}x${ROWS}"
SRC_SOCK="$SRC_DIR/mysqld.sock"
declare -a PIDS=() SOCKS=()
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || continue
    timeout 120 mariadb-admin --no-defaults -S "${SOCKS[$i]}" -u root shutdown >/dev/null 2>&1 || kill -9 "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server DATADIR SOCKET PORT SERVER_ID
start_server() {
  local data=$1 sock=$2 port=$3 sid=$4
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port in use; set SRC_PORT/CHK_PORT"
  rm -f "$sock"
  mariadbd --no-defaults --user="$(id -un)" --datadir="$data" --socket="$sock" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$data/../mysqld-$sid.pid" --log-error="$data/../error-$sid.log" \
    --log-bin="$data/binlog" --binlog-format=ROW --server-id="$sid" \
    --innodb-buffer-pool-size=2G --innodb-log-file-size="$INNODB_LOG" --innodb-flush-log-at-trx-commit=2 \
    --max-allowed-packet=1G --skip-name-resolve >/dev/null 2>&1 &
  PIDS+=($!); SOCKS+=("$sock")
  for _ in $(seq 1 600); do
    mariadb --no-defaults -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$data/../error-$sid.log"; die "mariadbd exited on $data"; }
    sleep 0.2
  done
  die "mariadbd on $data did not start"
}
stop_last_server() {
  mariadb-admin --no-defaults -S "${SOCKS[-1]}" -u root shutdown >/dev/null 2>&1 || true
  wait "${PIDS[-1]}" 2>/dev/null || true
  unset 'PIDS[-1]' 'SOCKS[-1]'
}
sql() { mariadb --no-defaults -S "$1" -u root -N -B -e "$2"; }

# ------------------------------------------------------------------ data
MARK="tables=$TABLES rows=$ROWS"
if [[ ! -f $SRC_DIR/prepared || $(cat "$SRC_DIR/prepared") != "$MARK" ]]; then
  rm -rf "$SRC_DIR"; mkdir -p "$SRC_DIR"
  CACHED="$REUSE_FROM/source-${TABLES}x${ROWS}"
  if [[ -f $CACHED/prepared && $(cat "$CACHED/prepared") == "$MARK" ]] \
     && ! pgrep -f -- "--datadir=$CACHED/data" >/dev/null; then
    log "copying the prepared datadir of $CACHED"
    cp -a "$CACHED/data" "$SRC_DIR/data"
    start_server "$SRC_DIR/data" "$SRC_SOCK" "$SRC_PORT" 1
  else
    mariadb-install-db --no-defaults --auth-root-authentication-method=normal --user="$(id -un)" \
      --datadir="$SRC_DIR/data" --skip-test-db >"$LOGS/install.log" 2>&1 || die "install-db failed"
    start_server "$SRC_DIR/data" "$SRC_SOCK" "$SRC_PORT" 1
    log "sysbench prepare $TABLES x $ROWS ..."
    sql "$SRC_SOCK" "CREATE DATABASE sbtest"
    sysbench oltp_read_write --tables="$TABLES" --table-size="$ROWS" --mysql-socket="$SRC_SOCK" \
      --mysql-user=root --mysql-db=sbtest --threads=2 prepare >"$LOGS/sysbench.log" 2>&1 || die "sysbench failed"
    sql "$SRC_SOCK" "RESET MASTER"
  fi
  echo "$MARK" >"$SRC_DIR/prepared"
else
  start_server "$SRC_DIR/data" "$SRC_SOCK" "$SRC_PORT" 1
fi
TABLE_LIST=$(sql "$SRC_SOCK" "SELECT GROUP_CONCAT(CONCAT('sbtest.', table_name) ORDER BY table_name) FROM information_schema.tables WHERE table_schema='sbtest'")
DATADIR_MB=$(du -sm "$SRC_DIR/data" | cut -f1)
log "source: $TABLES x $ROWS rows, datadir ${DATADIR_MB} MB; checksumming (warms the buffer pool) ..."
sql "$SRC_SOCK" "CHECKSUM TABLE $TABLE_LIST" >"$WORK/checksum-source.txt"

CNF="$WORK/client.cnf"
printf '[client]\nuser=root\nsocket=%s\n' "$SRC_SOCK" >"$CNF"; chmod 600 "$CNF"
SRC_URL="mysql://root@localhost/?socket=$SRC_SOCK"
OUT="$WORK/out"

# record RUN PHASE TOOL WALL BYTES
record() {
  printf '{"run": %s, "phase": "%s", "tool": "%s", "wall_s": %s, "bytes": %s}\n' "$1" "$2" "$3" "$4" "${5:-0}" >>"$MEAS"
  printf '  %-8s %-44s %7.2f s  %6s MB\n' "$2" "$3" "$4" "$(( ${5:-0} / 1048576 ))"
}
timed() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); python3 -c "print(f'{$t1-$t0:.3f}')"; }

step() {  # step RUN NAME
  local run=$1 name=$2 wall
  sync
  case $name in
    hf-backup)
      rm -rf "$OUT/repo"; "$HOLDFAST" init --repo "$OUT/repo" >/dev/null
      wall=$(timed "$HOLDFAST" backup --repo "$OUT/repo" --source "$SRC_URL" --engine physical \
        --threads "$THREADS" --json >"$LOGS/hf-backup-$run.json" 2>"$LOGS/hf-backup-$run.err") \
        || die "holdfast backup failed: $(tail -5 "$LOGS/hf-backup-$run.err")"
      record "$run" backup "holdfast backup --engine physical" "$wall" "$(du -sb "$OUT/repo" | cut -f1)" ;;
    mb-zstd)
      rm -rf "$OUT/mb" && mkdir -p "$OUT/mb"
      wall=$(timed bash -c "set -o pipefail; mariabackup --defaults-extra-file='$CNF' --backup --stream=xbstream \
        --target-dir='$OUT/mb/t' --extra-lsndir='$OUT/mb/lsn' 2>'$LOGS/mb-$run.log' | zstd -q -T$THREADS >'$OUT/mb/full.xb.zst'") \
        || die "mariabackup | zstd failed (log: $LOGS/mb-$run.log)"
      record "$run" backup "mariabackup --stream | zstd -T$THREADS" "$wall" "$(stat -c %s "$OUT/mb/full.xb.zst")" ;;
    mb-zstd1)
      rm -rf "$OUT/mb1" && mkdir -p "$OUT/mb1"
      wall=$(timed bash -c "set -o pipefail; mariabackup --defaults-extra-file='$CNF' --backup --stream=xbstream \
        --target-dir='$OUT/mb1/t' --extra-lsndir='$OUT/mb1/lsn' 2>'$LOGS/mb1-$run.log' | zstd -q -1 -T$THREADS >'$OUT/mb1/full.xb.zst'") \
        || die "mariabackup | zstd -1 failed"
      record "$run" backup "mariabackup --stream | zstd -1 -T$THREADS (info)" "$wall" "$(stat -c %s "$OUT/mb1/full.xb.zst")" ;;
    hf-restore)
      rm -rf "$OUT/hf-data"
      wall=$(timed "$HOLDFAST" restore --repo "$OUT/repo" latest --datadir "$OUT/hf-data" --json \
        >"$LOGS/hf-restore-$run.json" 2>"$LOGS/hf-restore-$run.err") \
        || die "holdfast restore failed: $(tail -5 "$LOGS/hf-restore-$run.err")"
      record "$run" restore "holdfast restore --datadir" "$wall" "$(du -sb "$OUT/hf-data" | cut -f1)" ;;
    hand-restore)
      rm -rf "$OUT/hand" "$OUT/hand-data"; mkdir -p "$OUT/hand"
      wall=$(timed bash -c "set -o pipefail; zstd -q -d -c '$OUT/mb/full.xb.zst' | mbstream -x -C '$OUT/hand' \
        && mariabackup --no-defaults --prepare --target-dir='$OUT/hand' >'$LOGS/hand-prepare-$run.log' 2>&1 \
        && mariabackup --no-defaults --move-back --target-dir='$OUT/hand' --datadir='$OUT/hand-data' >'$LOGS/hand-move-$run.log' 2>&1") \
        || die "restore by hand failed (logs: $LOGS/hand-*-$run.log)"
      record "$run" restore "zstd -d | mbstream -x; prepare; move-back" "$wall" "$(du -sb "$OUT/hand-data" | cut -f1)" ;;
  esac
}

mkdir -p "$OUT"
log "=== holdfast physical benchmark: $TABLES x $ROWS rows, $RUNS run(s), threads $THREADS, $(nproc) cores ==="
BACKUPS=(hf-backup mb-zstd mb-zstd1)
for run in $(seq 1 "$RUNS"); do
  log "run $run"
  n=${#BACKUPS[@]}
  for i in $(seq 0 $((n - 1))); do step "$run" "${BACKUPS[$(( (i + run - 1) % n ))]}"; done
  if (( run % 2 )); then step "$run" hf-restore; step "$run" hand-restore
  else step "$run" hand-restore; step "$run" hf-restore; fi
  if [[ $run == 1 ]]; then
    start_server "$OUT/hf-data" "$OUT/chk.sock" "$CHK_PORT" 9
    sql "$OUT/chk.sock" "CHECKSUM TABLE $TABLE_LIST" >"$WORK/checksum-restored.txt"
    stop_last_server
    if diff -q "$WORK/checksum-source.txt" "$WORK/checksum-restored.txt" >/dev/null; then
      log "restored datadir: CHECKSUM TABLE OK on $TABLES tables"; echo OK >"$WORK/check.txt"
    else
      log "restored datadir: CHECKSUM MISMATCH"; echo MISMATCH >"$WORK/check.txt"
    fi
  fi
done

python3 - "$MEAS" "$WORK/results.json" "$BENCH_DIR" "$(cat "$WORK/check.txt")" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[3])
from stats import median  # bench/stats.py
recs = [json.loads(l) for l in open(sys.argv[1])]
tools = []
for r in recs:
    if (r["phase"], r["tool"]) not in tools:
        tools.append((r["phase"], r["tool"]))
def per_run(num, den):
    out = []
    for run in sorted({r["run"] for r in recs}):
        a = [r["wall_s"] for r in recs if r["run"] == run and r["tool"] == num]
        b = [r["wall_s"] for r in recs if r["run"] == run and r["tool"] == den]
        if a and b and b[0] > 0:
            out.append(a[0] / b[0])
    return out
rows = []
print(f"\n{'phase':8} {'tool':46} {'runs':>4} {'wall s':>8} {'min-max':>13} {'out MB':>8}")
for phase, tool in tools:
    w = [r["wall_s"] for r in recs if r["tool"] == tool]
    b = [r["bytes"] for r in recs if r["tool"] == tool]
    rows.append({"phase": phase, "tool": tool, "median_wall_s": median(w), "walls": w, "median_bytes": median(b)})
    print(f"{phase:8} {tool:46} {len(w):>4} {median(w):8.2f} {min(w):6.2f}-{max(w):<6.2f} {median(b)/1048576:8.0f}")
bars = []
def bar(name, num, den, limit):
    rs = per_run(num, den)
    if not rs:
        return
    m = median(rs)
    verdict = "PASS" if limit is None or m <= limit else "FAIL"
    if limit is None:
        verdict = "info"
    bars.append({"bar": name, "ratio_median": m, "ratios": rs, "limit": limit, "verdict": verdict})
    print(f"  {name:62} {m:5.2f}x  (per run {', '.join(f'{x:.2f}' for x in rs)})  {verdict}")
print("\nratios (holdfast / peer, per run, median):")
bar("backup: holdfast vs mariabackup | zstd -T2 (bar <= 1.10)", "holdfast backup --engine physical",
    [t for p, t in tools if t.startswith("mariabackup --stream | zstd -T")][0], 1.10)
bar("backup: holdfast vs mariabackup | zstd -1 -T2", "holdfast backup --engine physical",
    [t for p, t in tools if "zstd -1" in t][0], None)
bar("restore: holdfast vs by hand (fetch+prepare+move-back)", "holdfast restore --datadir",
    "zstd -d | mbstream -x; prepare; move-back", None)
print(f"\nrestored data: CHECKSUM TABLE {sys.argv[4]}")
json.dump({"tools": rows, "bars": bars, "checksum": sys.argv[4]}, open(sys.argv[2], "w"), indent=2)
PY
log "results: $WORK/results.json"
