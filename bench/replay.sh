#!/usr/bin/env bash
# Binlog replay benchmark: holdfast's portable applier vs `mariadb-binlog FILES | mariadb`.
#
# Usage: bench/replay.sh [--quick] [--help]
# Environment (defaults in brackets):
#   ROWS [100000]   rows per sysbench table        TABLES [4]      sysbench tables
#   EVENTS [20000]  sysbench oltp_write_only transactions in the replayed binlog range
#   RUNS [3]        measured runs (medians)         WORK [/tmp/holdfast-bench-replay]
#   REPLAY [target/release/examples/replay]  the applier driver (crates/core/examples/replay.rs)
#   REPLAY_BUILD [1]  with the default REPLAY: `cargo build --release -p holdfast --example replay` first
#   SRC_PORT [33071] TGT_PORT [33072]  TCP ports on 127.0.0.1 for the throwaway servers
# --quick forces ROWS=20000 TABLES=2 EVENTS=3000 RUNS=1 (smoke test).
#
# Both tools replay the same binlog files (the sysbench write run) into the same target, reset
# to the same starting data (a dump taken where the range begins) before every measured step;
# the order of the tools alternates between runs. After each step the target's tables are
# compared with the source's by CHECKSUM TABLE. Read medians and the ratio, never one time.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
STATS="$BENCH_DIR/stats.py"
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "replay.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  ROWS=20000 TABLES=2 EVENTS=3000 RUNS=1
fi
ROWS=${ROWS:-100000}
TABLES=${TABLES:-4}
EVENTS=${EVENTS:-20000}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/holdfast-bench-replay}
DEFAULT_REPLAY="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/replay"
REPLAY=${REPLAY:-$DEFAULT_REPLAY}
REPLAY_BUILD=${REPLAY_BUILD:-1}
SRC_PORT=${SRC_PORT:-33071}
TGT_PORT=${TGT_PORT:-33072}
for v in ROWS TABLES EVENTS RUNS SRC_PORT TGT_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || { echo "replay.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
for cmd in mariadbd mariadb-install-db mariadb mariadb-binlog mariadb-dump sysbench python3; do
  command -v "$cmd" >/dev/null || { echo "replay.sh: $cmd is missing (apt-get install mariadb-server mariadb-client sysbench python3)" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "replay.sh: GNU time (/usr/bin/time) is missing (apt-get install time)" >&2; exit 2; }

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOGS="$WORK/logs"; rm -rf "$LOGS"; mkdir -p "$LOGS"
MEAS="$WORK/measurements.jsonl"; CHECKS="$WORK/checksums.jsonl"
rm -f "$MEAS" "$CHECKS"

ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*"; }
die() { echo "[$(ts)] FATAL: $*" >&2; exit 1; }

if [[ $REPLAY == "$DEFAULT_REPLAY" && $REPLAY_BUILD == 1 ]]; then
  log "cargo build --release -p holdfast --example replay (log: $LOGS/cargo-build.log) ..."
  (cd "$REPO_ROOT" && cargo build --release -p holdfast --example replay) >"$LOGS/cargo-build.log" 2>&1 \
    || { tail -15 "$LOGS/cargo-build.log" >&2; die "build failed"; }
fi
[[ -x $REPLAY ]] || die "$REPLAY is missing (cargo build --release -p holdfast --example replay)"

# ------------------------------------------------------------------ servers
SERVER_PIDS=()
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# start_server DIR PORT SERVER_ID: a fresh datadir every invocation.
start_server() {
  local dir=$1 port=$2 sid=$3 data=$1/data sock=$1/mysqld.sock
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port 127.0.0.1:$port is in use; set SRC_PORT/TGT_PORT"
  rm -rf "$dir"; mkdir -p "$dir"
  mariadb-install-db --no-defaults --auth-root-authentication-method=normal --user="$(id -un)" \
    --datadir="$data" --skip-test-db >"$dir/install.log" 2>&1 \
    || { tail -20 "$dir/install.log" >&2; die "mariadb-install-db failed (log: $dir/install.log)"; }
  mariadbd --no-defaults --user="$(id -un)" --datadir="$data" --socket="$sock" \
    --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --log-bin="$data/binlog" --binlog-format=ROW --server-id="$sid" \
    --innodb-buffer-pool-size=1G --innodb-log-file-size=512M --innodb-flush-log-at-trx-commit=2 \
    --sync-binlog=0 --max-allowed-packet=1G --skip-name-resolve >>"$dir/mariadbd.out" 2>&1 &
  SERVER_PIDS+=("$!")
  for _ in $(seq 1 300); do
    mariadb --no-defaults -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && { log "mariadbd up on port $port"; return 0; }
    sleep 0.2
  done
  die "mariadbd did not start (log: $dir/error.log)"
}
SRC_DIR="$WORK/source"; TGT_DIR="$WORK/target"
SRC_SOCK="$SRC_DIR/mysqld.sock"; TGT_SOCK="$TGT_DIR/mysqld.sock"
start_server "$SRC_DIR" "$SRC_PORT" 1
start_server "$TGT_DIR" "$TGT_PORT" 2
src() { mariadb --no-defaults -S "$SRC_SOCK" -u root -N -B "$@"; }
tgt() { mariadb --no-defaults -S "$TGT_SOCK" -u root -N -B "$@"; }

# ------------------------------------------------------------------ the binlog range
log "sysbench prepare: $TABLES x $ROWS rows ..."
src -e "CREATE DATABASE sbtest"
sysbench oltp_write_only --tables="$TABLES" --table-size="$ROWS" --mysql-socket="$SRC_SOCK" \
  --mysql-user=root --mysql-db=sbtest --threads=2 prepare >"$LOGS/sysbench-prepare.log" 2>&1 \
  || { tail -20 "$LOGS/sysbench-prepare.log" >&2; die "sysbench prepare failed"; }
src -e "FLUSH BINARY LOGS"
mariadb-dump --no-defaults -S "$SRC_SOCK" -u root --single-transaction --skip-log-queries \
  --databases sbtest >"$WORK/base.sql" 2>"$LOGS/dump.log" || mariadb-dump --no-defaults -S "$SRC_SOCK" \
  -u root --single-transaction --databases sbtest >"$WORK/base.sql"
FIRST=$(src -e "SHOW MASTER STATUS" | cut -f1)
log "sysbench oltp_write_only: $EVENTS transactions (binlog from $FIRST) ..."
sysbench oltp_write_only --tables="$TABLES" --table-size="$ROWS" --mysql-socket="$SRC_SOCK" \
  --mysql-user=root --mysql-db=sbtest --threads=2 --events="$EVENTS" --time=0 run \
  >"$LOGS/sysbench-run.log" 2>&1 || { tail -20 "$LOGS/sysbench-run.log" >&2; die "sysbench run failed"; }
src -e "FLUSH BINARY LOGS"
mapfile -t FILES < <(src -e "SHOW BINARY LOGS" | cut -f1 | awk -v first="$FIRST" '$0 >= first' | sed '$d' \
  | sed "s|^|$SRC_DIR/data/|")
BYTES=$(cat "${FILES[@]}" | wc -c)
TRX=$(grep -oP 'transactions:\s+\K[0-9]+' "$LOGS/sysbench-run.log" || echo "$EVENTS")
log "range: ${#FILES[@]} file(s), $BYTES bytes, $TRX sysbench transactions"
src -e "SELECT CONCAT('sbtest.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest'" \
  | paste -sd, >"$WORK/tables"
src -e "CHECKSUM TABLE $(cat "$WORK/tables")" >"$WORK/source.checksum"

reset_target() {
  tgt -e "DROP DATABASE IF EXISTS sbtest; RESET MASTER"
  tgt <"$WORK/base.sql"
  tgt -e "RESET MASTER"
}

# measure RUN TOOL COMMAND...
measure() {
  local run=$1 tool=$2; shift 2
  local tfile="$LOGS/time-$run-${tool// /_}" out="$LOGS/out-$run-${tool// /_}"
  reset_target
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$tfile" bash -c "$*" >"$out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  python3 "$STATS" record --out "$MEAS" --run "$run" --phase replay --tool "$tool" \
    --time-file "$tfile" --wall "$(python3 -c "print($t1 - $t0)")" --exit "$rc" --bytes "$BYTES" \
    --cmd "$*" --log "$out"
  [[ $rc == 0 ]] || { tail -5 "$out" >&2; die "$tool failed (log: $out)"; }
  tgt -e "CHECKSUM TABLE $(cat "$WORK/tables")" >"$WORK/target.checksum"
  python3 "$STATS" checksum --out "$CHECKS" --label "$tool" --run "$run" \
    --source "$WORK/source.checksum" --target "$WORK/target.checksum"
}

HF_CMD="$REPLAY mysql://root@127.0.0.1:$TGT_PORT/ ${FILES[*]}"
PEER_CMD="mariadb-binlog --no-defaults ${FILES[*]} | mariadb --no-defaults -h 127.0.0.1 -P $TGT_PORT -u root"
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS"
  if (( run % 2 )); then
    measure "$run" "holdfast replay" "$HF_CMD"
    measure "$run" "mariadb-binlog | mariadb" "$PEER_CMD"
  else
    measure "$run" "mariadb-binlog | mariadb" "$PEER_CMD"
    measure "$run" "holdfast replay" "$HF_CMD"
  fi
done

python3 - "$MEAS" "$CHECKS" "$BYTES" "$TRX" "$WORK/results.json" <<'EOF'
import json, statistics, sys
meas = [json.loads(l) for l in open(sys.argv[1])]
checks = [json.loads(l) for l in open(sys.argv[2])] if sys.argv[2] else []
size, trx, out = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
res = {"binlog_bytes": size, "transactions": trx, "tools": {}}
for tool in ("holdfast replay", "mariadb-binlog | mariadb"):
    walls = [m["wall_s"] for m in meas if m["tool"] == tool and m["ok"]]
    med = statistics.median(walls)
    res["tools"][tool] = {"runs": walls, "median_s": med, "mb_per_s": size / 1e6 / med,
                          "trx_per_s": trx / med,
                          "median_cpu_s": statistics.median([(m.get("user_s") or 0) + (m.get("sys_s") or 0)
                                                            for m in meas if m["tool"] == tool and m["ok"]])}
hf, peer = res["tools"]["holdfast replay"], res["tools"]["mariadb-binlog | mariadb"]
res["speedup"] = peer["median_s"] / hf["median_s"]
res["checksums_ok"] = bool(checks) and all(c["verdict"] == "OK" for c in checks)
json.dump(res, open(out, "w"), indent=2)
print(f"\nbinlog range: {size/1e6:.1f} MB, {trx} transactions")
for tool, r in res["tools"].items():
    print(f"  {tool:<26} median {r['median_s']:7.2f} s  {r['mb_per_s']:6.2f} MB/s  {r['trx_per_s']:8.0f} trx/s  "
          f"client cpu {r['median_cpu_s']:.2f} s  runs {['%.2f' % w for w in r['runs']]}")
print(f"  speedup (mariadb-binlog|mariadb median / holdfast median): {res['speedup']:.2f}x")
print(f"  checksums: {'all OK' if res['checksums_ok'] else 'SEE ABOVE'}")
EOF
log "results: $WORK/results.json"
