#!/usr/bin/env bash
# Logical backup/restore benchmark: holdfast vs mydumper/myloader vs mariadb-dump/mariadb.
#
# Usage: bench/logical.sh [--quick] [--help]
# Environment (defaults in brackets):
#   ROWS [1000000]  rows per sysbench table        TABLES [8]    sysbench tables
#   RUNS [3]        measured runs (medians)         THREADS [2]   client threads for every tool
#   HOLDFAST [target/release/holdfast]              WORK [/tmp/holdfast-bench]
#   HOLDFAST_BUILD [1]  with the default HOLDFAST path: `cargo build --release -p holdfast-cli` first
#   CHUNK_ROWS [ROWS/10]  mydumper -r chunk size for the chunked variant (0 = skip that variant)
#   EXTRAS [1]      informational variants (mydumper -c, mariadb-dump | zstd); 0 = skip
#   CHECK_RUNS [1]  runs after which restored data is checksummed (CHECKSUM TABLE); "all" = every run
#   KEEP_OUTPUT [0] 1 = keep every run's dumps/repos (default: only the last run's are kept)
#   SRC_PORT [33061] TGT_PORT [33062]  TCP ports on 127.0.0.1 for the throwaway servers
# --quick forces ROWS=100000 TABLES=4 RUNS=1 (smoke test).
#
# Machines are noisy 2-core boxes: read medians and holdfast/peer ratios, never a single time.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
STATS="$BENCH_DIR/stats.py"
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "logical.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if [[ $QUICK == 1 ]]; then
  ROWS=100000 TABLES=4 RUNS=1
fi
ROWS=${ROWS:-1000000}
TABLES=${TABLES:-8}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/holdfast-bench}
DEFAULT_HOLDFAST="$REPO_ROOT/target/release/holdfast"
HOLDFAST=${HOLDFAST:-$DEFAULT_HOLDFAST}
HOLDFAST_BUILD=${HOLDFAST_BUILD:-1}
CHUNK_ROWS=${CHUNK_ROWS:-$(( ROWS / 10 > 1000 ? ROWS / 10 : 1000 ))}
EXTRAS=${EXTRAS:-1}
CHECK_RUNS=${CHECK_RUNS:-1}
KEEP_OUTPUT=${KEEP_OUTPUT:-0}
SRC_PORT=${SRC_PORT:-33061}
TGT_PORT=${TGT_PORT:-33062}

for v in ROWS TABLES RUNS THREADS CHUNK_ROWS SRC_PORT TGT_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "logical.sh: $v must be a non-negative integer (got '${!v}')" >&2; exit 2; }
done
(( ROWS > 0 && TABLES > 0 && RUNS > 0 && THREADS > 0 )) || { echo "logical.sh: ROWS, TABLES, RUNS, THREADS must be > 0" >&2; exit 2; }

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
HOLDFAST=$(realpath -m "$HOLDFAST")
LOGS="$WORK/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
MEAS="$WORK/measurements.jsonl"
CHECKS="$WORK/checksums.jsonl"
rm -f "$MEAS" "$CHECKS" "$WORK/results.json"

ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*"; }
die() { echo "[$(ts)] FATAL: $*" >&2; exit 1; }

# ------------------------------------------------------------------ dependencies
ensure_deps() {
  local -a pkgs=()
  local -A seen=()
  local pair cmd pkg
  for pair in mariadbd:mariadb-server mariadb-install-db:mariadb-server mariadb-admin:mariadb-client \
              mariadb:mariadb-client mariadb-dump:mariadb-client mydumper:mydumper myloader:mydumper \
              sysbench:sysbench zstd:zstd python3:python3 realpath:coreutils; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [[ -z ${seen[$pkg]:-} ]]; then pkgs+=("$pkg"); seen[$pkg]=1; fi
  done
  [[ -x /usr/bin/time ]] || pkgs+=(time)
  ((${#pkgs[@]} == 0)) && return 0

  log "missing tools, installing with apt-get: ${pkgs[*]}"
  local -a sudo=()
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n)
    else die "missing packages: ${pkgs[*]}. Not root and no passwordless sudo; install them with: sudo apt-get install ${pkgs[*]}"
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing packages: ${pkgs[*]} and no apt-get on this machine; install them by hand"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOGS/apt.log" 2>&1 \
    && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$LOGS/apt.log" 2>&1 \
    || { tail -20 "$LOGS/apt.log" >&2; die "apt-get install ${pkgs[*]} failed (log: $LOGS/apt.log)"; }
  for cmd in mariadbd mariadb-install-db mariadb mariadb-dump mydumper myloader sysbench zstd; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after apt-get install ${pkgs[*]}"
  done
}
ensure_deps
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' || die "python3 >= 3.8 needed for bench/stats.py"

# ------------------------------------------------------------------ holdfast binary
HOLDFAST_OK=0
HOLDFAST_WHY=""
holdfast_check() {
  if [[ ! -x $HOLDFAST ]]; then HOLDFAST_WHY="$HOLDFAST does not exist or is not executable"; return 1; fi
  local help
  help=$("$HOLDFAST" --help 2>&1 || true)
  if ! grep -qw backup <<<"$help" || ! grep -qw restore <<<"$help" || ! grep -qw init <<<"$help"; then
    HOLDFAST_WHY="$HOLDFAST --help lists no init/backup/restore subcommands (CLI not implemented yet?)"
    return 1
  fi
}
if [[ $HOLDFAST == "$DEFAULT_HOLDFAST" && $HOLDFAST_BUILD == 1 ]]; then
  if command -v cargo >/dev/null 2>&1; then
    log "cargo build --release -p holdfast-cli (log: $LOGS/cargo-build.log) ..."
    if ! (cd "$REPO_ROOT" && cargo build --release -p holdfast-cli) >"$LOGS/cargo-build.log" 2>&1; then
      tail -15 "$LOGS/cargo-build.log" | sed 's/^/    /'
      if [[ -x $HOLDFAST ]]; then log "WARNING: build failed; using the existing, possibly stale $HOLDFAST"
      else log "WARNING: build failed"; fi
    fi
  else
    log "WARNING: cargo not found; cannot build $HOLDFAST"
  fi
fi
holdfast_check && HOLDFAST_OK=1
holdfast_banner() {
  [[ $HOLDFAST_OK == 1 ]] && return 0
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  echo "!!! HOLDFAST BINARY MISSING: $HOLDFAST_WHY"
  echo "!!! holdfast steps are SKIPPED; only the peer tools are measured."
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}

# ------------------------------------------------------------------ machine + config
GIT_HEAD=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || true)
echo "=== holdfast logical benchmark ($(date -Is)) ==="
python3 "$STATS" machine --out "$WORK/machine.json" --work "$WORK" \
  --holdfast "$([[ $HOLDFAST_OK == 1 ]] && echo "$HOLDFAST")" --git-head "$GIT_HEAD"
echo "config  : tables=$TABLES rows/table=$ROWS runs=$RUNS threads=$THREADS chunk_rows=$CHUNK_ROWS extras=$EXTRAS quick=$QUICK"
holdfast_banner
cat >"$WORK/config.json" <<EOF
{"tables": $TABLES, "rows": $ROWS, "runs": $RUNS, "threads": $THREADS, "chunk_rows": $CHUNK_ROWS,
 "extras": $EXTRAS, "quick": $QUICK, "holdfast": "$HOLDFAST", "holdfast_available": $HOLDFAST_OK,
 "holdfast_missing_reason": "$(sed 's/"/\\"/g' <<<"$HOLDFAST_WHY")", "work": "$WORK",
 "server_flags": "log-bin binlog-format=ROW innodb_buffer_pool_size=2G innodb_log_file_size=1G innodb_flush_log_at_trx_commit=2 local_infile=1 max_allowed_packet=1G",
 "started": "$(date -Is)"}
EOF

# ------------------------------------------------------------------ servers
SRC_DIR="$WORK/source-${TABLES}x${ROWS}"   # cached per data size
TGT_DIR="$WORK/target"                      # recreated every invocation
SRC_SOCK="$SRC_DIR/mysqld.sock"
TGT_SOCK="$TGT_DIR/mysqld.sock"
declare -a SERVER_PIDS=() SERVER_SOCKS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local i
  for i in "${!SERVER_PIDS[@]}"; do
    local pid=${SERVER_PIDS[$i]} sock=${SERVER_SOCKS[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    # Graceful first (keeps the cached source datadir clean), then kill.
    timeout 120 mariadb-admin --no-defaults -S "$sock" -u root shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  ((${#SERVER_PIDS[@]})) && echo "[$(ts)] servers stopped"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server DIR PORT SERVER_ID
start_server() {
  local dir=$1 port=$2 sid=$3 data=$1/data sock=$1/mysqld.sock
  mkdir -p "$dir"
  # A server left behind by an aborted run of this harness on this very datadir: stop it.
  if [[ -f $dir/mysqld.pid ]]; then
    local old; old=$(cat "$dir/mysqld.pid" 2>/dev/null || true)
    if [[ -n $old ]] && kill -0 "$old" 2>/dev/null && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF -- "--datadir=$data"; then
      log "stopping stale mariadbd $old on $data"
      kill "$old" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
    fi
  fi
  port_in_use "$port" && die "port 127.0.0.1:$port is already in use; set SRC_PORT/TGT_PORT to free ports"
  if [[ ! -d $data/mysql ]]; then
    rm -rf "$data"
    mariadb-install-db --no-defaults --auth-root-authentication-method=normal --user="$(id -un)" \
      --datadir="$data" --skip-test-db >"$dir/install.log" 2>&1 \
      || { tail -20 "$dir/install.log" >&2; die "mariadb-install-db failed for $data (log: $dir/install.log)"; }
  fi
  rm -f "$sock"
  mariadbd --no-defaults --user="$(id -un)" --datadir="$data" --socket="$sock" \
    --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --log-bin="$data/binlog" --binlog-format=ROW --server-id="$sid" \
    --innodb-buffer-pool-size=2G --innodb-log-file-size=1G --innodb-flush-log-at-trx-commit=2 \
    --local-infile=1 --max-allowed-packet=1G --skip-name-resolve --max-connections=200 \
    >>"$dir/mariadbd.out" 2>&1 &
  local pid=$!
  SERVER_PIDS+=("$pid"); SERVER_SOCKS+=("$sock")
  local i
  for i in $(seq 1 300); do
    if mariadb --no-defaults -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1; then
      log "mariadbd up: pid $pid, socket $sock, port $port, datadir $data"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -30 "$dir/error.log" >&2; die "mariadbd exited during startup (log: $dir/error.log)"; }
    sleep 0.2
  done
  tail -30 "$dir/error.log" >&2
  die "mariadbd did not accept connections on $sock within 60 s"
}

sql_src() { mariadb --no-defaults -S "$SRC_SOCK" -u root "$@"; }
sql_tgt() { mariadb --no-defaults -S "$TGT_SOCK" -u root "$@"; }

rm -rf "$TGT_DIR"
start_server "$SRC_DIR" "$SRC_PORT" 1
start_server "$TGT_DIR" "$TGT_PORT" 2

# ------------------------------------------------------------------ data
prepared() {
  [[ -f $SRC_DIR/prepared ]] && [[ $(cat "$SRC_DIR/prepared") == "tables=$TABLES rows=$ROWS" ]] || return 1
  local n rows
  n=$(sql_src -N -B -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='sbtest' AND table_name LIKE 'sbtest%'") || return 1
  [[ $n == "$TABLES" ]] || return 1
  rows=$(sql_src -N -B -e "SELECT COUNT(*) FROM sbtest.sbtest$TABLES") || return 1
  [[ $rows == "$ROWS" ]]
}
if prepared; then
  log "sbtest already prepared ($TABLES x $ROWS rows), reusing $SRC_DIR"
else
  log "preparing sbtest: sysbench oltp_read_write --tables=$TABLES --table-size=$ROWS --threads=2 prepare ..."
  rm -f "$SRC_DIR/prepared"
  sql_src -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  t0=$(date +%s)
  sysbench oltp_read_write --tables="$TABLES" --table-size="$ROWS" --mysql-socket="$SRC_SOCK" \
    --mysql-user=root --mysql-db=sbtest --threads=2 prepare >"$LOGS/sysbench-prepare.log" 2>&1 \
    || { tail -20 "$LOGS/sysbench-prepare.log" >&2; die "sysbench prepare failed (log: $LOGS/sysbench-prepare.log)"; }
  sql_src -e "RESET MASTER"   # the prepare's binlog is not needed; keep the disk small
  echo "tables=$TABLES rows=$ROWS" >"$SRC_DIR/prepared"
  log "prepared in $(( $(date +%s) - t0 )) s"
fi
TABLE_LIST=$(sql_src -N -B -e "SELECT GROUP_CONCAT(CONCAT('sbtest.', table_name) ORDER BY table_name) FROM information_schema.tables WHERE table_schema='sbtest'")
DATA_MB=$(sql_src -N -B -e "SELECT ROUND(SUM(data_length+index_length)/1048576) FROM information_schema.tables WHERE table_schema='sbtest'")
log "source sbtest: ${DATA_MB} MB (InnoDB data+index); checksumming source (also warms the buffer pool) ..."
sql_src -N -B -e "CHECKSUM TABLE $TABLE_LIST" >"$WORK/checksum-source.txt"
python3 - "$WORK/config.json" "$DATA_MB" <<'EOF'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["source_data_mb"] = int(sys.argv[2] or 0)
json.dump(c, open(p, "w"), indent=1)
EOF

# ------------------------------------------------------------------ timing
slug() { tr -c 'A-Za-z0-9' '_' <<<"$1" | sed 's/__*/_/g; s/_$//'; }
out_bytes() { [[ -e $1 ]] && du -sb "$1" | cut -f1 || true; }

# timed PHASE TOOL INFO_ONLY(0|1) OUTPUT_PATH(bytes measured after; "" = none) IS_JSON(0|1) -- CMD...
# Wall time from date +%s.%N around the process; RSS/CPU from /usr/bin/time -v.
# Returns the command's exit status; failures are recorded, printed, and do not abort the benchmark.
timed() {
  local phase=$1 tool=$2 info=$3 outpath=$4 isjson=$5; shift 6
  local base; base="$LOGS/run$RUN-$phase-$(slug "$tool")"
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$base.time" "$@" >"$base.out" 2>"$base.err" || rc=$?
  t1=$(date +%s.%N)
  local -a extra=()
  [[ $info == 1 ]] && extra+=(--info-only)
  [[ $isjson == 1 ]] && extra+=(--json-out "$base.out")
  local b=""; [[ -n $outpath && $rc == 0 ]] && b=$(out_bytes "$outpath")
  [[ -n $b ]] && extra+=(--bytes "$b")
  python3 "$STATS" record --out "$MEAS" --run "$RUN" --phase "$phase" --tool "$tool" \
    --time-file "$base.time" --wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
    --exit "$rc" --cmd "$(printf '%q ' "$@")" --log "$base.err" "${extra[@]}"
  if [[ $rc != 0 ]]; then
    echo "      FAILED: $(printf '%q ' "$@")"
    tail -5 "$base.err" | sed 's/^/      | /'
  fi
  return "$rc"
}

reset_target() {
  sql_tgt -e "DROP DATABASE IF EXISTS sbtest; RESET MASTER" \
    || die "could not reset the target server"
}

checksum_target() { # LABEL
  [[ $CHECK_RUNS == all || $RUN -le $CHECK_RUNS ]] || return 0
  sql_tgt -N -B -e "CHECKSUM TABLE $TABLE_LIST" >"$LOGS/run$RUN-checksum-$(slug "$1").txt" 2>&1 || true
  python3 "$STATS" checksum --out "$CHECKS" --label "$1" --run "$RUN" \
    --source "$WORK/checksum-source.txt" --target "$LOGS/run$RUN-checksum-$(slug "$1").txt" || true
}

# ------------------------------------------------------------------ steps
SRC_URL="mysql://root@localhost/?socket=$SRC_SOCK"
TGT_URL="mysql://root@localhost/?socket=$TGT_SOCK"
declare -A DUMP_OK=()

dump_holdfast() {
  [[ $HOLDFAST_OK == 1 ]] || { echo "    dump    holdfast backup: SKIPPED (HOLDFAST BINARY MISSING)"; return 0; }
  local repo="$WORK/repo-$RUN"
  rm -rf "$repo"
  if ! "$HOLDFAST" init --repo "file://$repo" >"$LOGS/run$RUN-holdfast-init.log" 2>&1; then
    echo "    dump    holdfast init FAILED:"; tail -5 "$LOGS/run$RUN-holdfast-init.log" | sed 's/^/      | /'
    python3 "$STATS" record --out "$MEAS" --run "$RUN" --phase dump --tool "holdfast backup" \
      --time-file /dev/null --wall 0 --exit 1 --cmd "holdfast init --repo file://$repo" --log "$LOGS/run$RUN-holdfast-init.log"
    return 0
  fi
  timed dump "holdfast backup" 0 "$repo" 1 -- \
    "$HOLDFAST" backup --repo "file://$repo" --source "$SRC_URL" --threads "$THREADS" --json \
    && DUMP_OK[holdfast]=1 || true
}
dump_mydumper() {
  local dir="$WORK/mydumper-$RUN"; rm -rf "$dir"
  timed dump "mydumper -t $THREADS" 0 "$dir" 0 -- \
    mydumper -t "$THREADS" -S "$SRC_SOCK" -u root -B sbtest -o "$dir" \
    && DUMP_OK[mydumper]=1 || true
}
dump_mydumper_chunked() {
  local dir="$WORK/mydumper-r-$RUN"; rm -rf "$dir"
  timed dump "mydumper -t $THREADS -r $CHUNK_ROWS" 0 "$dir" 0 -- \
    mydumper -t "$THREADS" -r "$CHUNK_ROWS" -S "$SRC_SOCK" -u root -B sbtest -o "$dir" \
    && DUMP_OK[mydumper_r]=1 || true
}
dump_mydumper_c() {
  local dir="$WORK/mydumper-c-$RUN"; rm -rf "$dir"
  timed dump "mydumper -t $THREADS -c" 1 "$dir" 0 -- \
    mydumper -t "$THREADS" -c -S "$SRC_SOCK" -u root -B sbtest -o "$dir" || true
}
dump_mariadb_dump() {
  local f="$WORK/dump-$RUN.sql"; rm -f "$f"
  timed dump "mariadb-dump --single-transaction" 1 "$f" 0 -- \
    bash -c 'exec mariadb-dump --no-defaults --single-transaction -S "$1" -u root sbtest >"$2"' _ "$SRC_SOCK" "$f" \
    && DUMP_OK[mariadb_dump]=1 || true
}
dump_mariadb_dump_zstd() {
  local f="$WORK/dump-$RUN.sql.zst"; rm -f "$f"
  timed dump "mariadb-dump | zstd -T$THREADS" 1 "$f" 0 -- \
    bash -c 'set -o pipefail; mariadb-dump --no-defaults --single-transaction -S "$1" -u root sbtest | zstd -q -T"$3" >"$2"' \
    _ "$SRC_SOCK" "$f" "$THREADS" || true
}

restore_holdfast() {
  [[ $HOLDFAST_OK == 1 ]] || { echo "    restore holdfast restore: SKIPPED (HOLDFAST BINARY MISSING)"; return 0; }
  [[ -n ${DUMP_OK[holdfast]:-} ]] || { echo "    restore holdfast restore: SKIPPED (no backup this run)"; return 0; }
  reset_target
  timed restore "holdfast restore" 0 "" 1 -- \
    "$HOLDFAST" restore --repo "file://$WORK/repo-$RUN" --target "$TGT_URL" latest \
    --threads "$THREADS" --drop-existing --json || true
  checksum_target "holdfast restore"
}
restore_myloader() {
  [[ -n ${DUMP_OK[mydumper]:-} ]] || { echo "    restore myloader: SKIPPED (no mydumper dump this run)"; return 0; }
  reset_target
  timed restore "myloader -t $THREADS" 0 "" 0 -- \
    myloader -t "$THREADS" -S "$TGT_SOCK" -u root -d "$WORK/mydumper-$RUN" -o -B sbtest || true
  checksum_target "myloader -t $THREADS"
}
restore_myloader_chunked() {
  [[ -n ${DUMP_OK[mydumper_r]:-} ]] || { echo "    restore myloader (chunked): SKIPPED (no chunked dump this run)"; return 0; }
  reset_target
  timed restore "myloader -t $THREADS (-r $CHUNK_ROWS dump)" 0 "" 0 -- \
    myloader -t "$THREADS" -S "$TGT_SOCK" -u root -d "$WORK/mydumper-r-$RUN" -o -B sbtest || true
  checksum_target "myloader -t $THREADS (-r $CHUNK_ROWS dump)"
}
restore_mariadb() {
  [[ -n ${DUMP_OK[mariadb_dump]:-} ]] || { echo "    restore mariadb < dump.sql: SKIPPED (no dump this run)"; return 0; }
  reset_target
  sql_tgt -e "CREATE DATABASE sbtest"
  timed restore "mariadb < dump.sql" 1 "" 0 -- \
    bash -c 'exec mariadb --no-defaults -S "$1" -u root sbtest <"$2"' _ "$TGT_SOCK" "$WORK/dump-$RUN.sql" || true
  checksum_target "mariadb < dump.sql"
}

DUMP_STEPS=(dump_holdfast dump_mydumper)
((CHUNK_ROWS > 0)) && DUMP_STEPS+=(dump_mydumper_chunked)
DUMP_STEPS+=(dump_mariadb_dump)
[[ $EXTRAS == 1 ]] && DUMP_STEPS+=(dump_mydumper_c dump_mariadb_dump_zstd)
RESTORE_STEPS=(restore_holdfast restore_myloader)
((CHUNK_ROWS > 0)) && RESTORE_STEPS+=(restore_myloader_chunked)
RESTORE_STEPS+=(restore_mariadb)

# rotate ARRAY_NAME BY -> prints the rotated list (interleaving: each tool takes every position)
rotate() {
  local -n arr=$1; local n=${#arr[@]} k=$(( $2 % ${#arr[@]} )) i
  for ((i = 0; i < n; i++)); do echo "${arr[$(( (i + k) % n ))]}"; done
}

echo
echo "exact peer commands (THREADS=$THREADS):"
echo "  mydumper -t $THREADS -S \$SRC_SOCK -u root -B sbtest -o DIR                  (bar baseline)"
((CHUNK_ROWS > 0)) && echo "  mydumper -t $THREADS -r $CHUNK_ROWS -S \$SRC_SOCK -u root -B sbtest -o DIR      (bar baseline, chunked)"
echo "  myloader -t $THREADS -S \$TGT_SOCK -u root -d DIR -o -B sbtest               (bar baseline; myloader skips the binlog unless -e)"
echo "  mariadb-dump --single-transaction -S \$SRC_SOCK -u root sbtest > dump.sql;  mariadb sbtest < dump.sql"
[[ $EXTRAS == 1 ]] && echo "  info: mydumper -t $THREADS -c ... ;  mariadb-dump ... | zstd -T$THREADS"
echo

for ((RUN = 1; RUN <= RUNS; RUN++)); do
  log "run $RUN/$RUNS  (load $(cut -d' ' -f1-3 /proc/loadavg))"
  DUMP_OK=()
  mapfile -t order < <(rotate DUMP_STEPS $((RUN - 1)))
  for step in "${order[@]}"; do sync; "$step"; done
  mapfile -t order < <(rotate RESTORE_STEPS $((RUN - 1)))
  for step in "${order[@]}"; do sync; "$step"; done
  if [[ $KEEP_OUTPUT != 1 && $RUN -lt $RUNS ]]; then
    rm -rf "$WORK/repo-$RUN" "$WORK/mydumper-$RUN" "$WORK/mydumper-r-$RUN" "$WORK/mydumper-c-$RUN" \
      "$WORK/dump-$RUN.sql" "$WORK/dump-$RUN.sql.zst"
  fi
done

python3 "$STATS" report --work "$WORK"
holdfast_banner
echo "logs: $LOGS"
