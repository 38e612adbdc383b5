#!/usr/bin/env bash
# Many-small-tables benchmark (issue 20): holdfast vs mydumper/myloader on the same data, same runs.
#
# Usage: bench/many_tables.sh [--quick] [--help]
# Environment (defaults in brackets):
#   TABLES [10000]  tables in all     PER_DB [100]  tables per database (mt00000, mt00001, ...)
#   RUNS [3]        measured runs (medians)         THREADS [2]   client threads for every tool
#   HOLDFAST [target/release/holdfast]              WORK [/tmp/holdfast-bench-many]
#   HOLDFAST_BUILD [1]  with the default HOLDFAST path: `cargo build --release -p holdfast-cli` first
#   EXTRAS [0]      1 = also mariadb-dump / mariadb < dump.sql (informational)
#   PEERS [1]       0 = holdfast only (profiling; no ratios)
#   CHECK_RUNS [1]  runs after which restored data is checksummed (CHECKSUM TABLE); "all" = every run
#   DUMP_BAR [0.8] RESTORE_BAR [0.8]  the ratio bars (holdfast / fastest peer)
#   PITR [0]        1 = after the runs, a point-in-time recovery at this size: the binlog streamed
#                   into the last run's repository while PITR_ROUNDS [3] transactions per database
#                   and DDL run (many_tables_gen.py --writes keep), then an "accident" (dropped
#                   databases, emptied tables); restore --to-gtid the last kept write, compared
#                   with the source's checksums at that point. The source is regenerated next time.
#   SRC_PORT [33071] TGT_PORT [33072]  TCP ports on 127.0.0.1 for the throwaway servers
# --quick forces TABLES=500 RUNS=1 (smoke test).
# Data: bench/many_tables_gen.py (most tables 1-40 rows, every tenth empty, every tenth
# partitioned, views and triggers in every database). Read medians and ratios, never one time.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
STATS="$BENCH_DIR/stats.py"
GEN="$BENCH_DIR/many_tables_gen.py"
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "many_tables.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $QUICK == 1 ]] && { TABLES=500 RUNS=1; }
TABLES=${TABLES:-10000}
PER_DB=${PER_DB:-100}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/holdfast-bench-many}
DEFAULT_HOLDFAST="$REPO_ROOT/target/release/holdfast"
HOLDFAST=${HOLDFAST:-$DEFAULT_HOLDFAST}
HOLDFAST_BUILD=${HOLDFAST_BUILD:-1}
EXTRAS=${EXTRAS:-0}
PEERS=${PEERS:-1}
CHECK_RUNS=${CHECK_RUNS:-1}
DUMP_BAR=${DUMP_BAR:-0.8}
RESTORE_BAR=${RESTORE_BAR:-0.8}
PITR=${PITR:-0}
PITR_ROUNDS=${PITR_ROUNDS:-3}
SRC_PORT=${SRC_PORT:-33071}
TGT_PORT=${TGT_PORT:-33072}
for v in TABLES PER_DB RUNS THREADS PITR_ROUNDS SRC_PORT TGT_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] && (( ${!v} > 0 )) || { echo "many_tables.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
HOLDFAST=$(realpath -m "$HOLDFAST")
LOGS="$WORK/logs"
rm -rf "$LOGS"; mkdir -p "$LOGS"
MEAS="$WORK/measurements.jsonl"
CHECKS="$WORK/checksums.jsonl"
rm -f "$MEAS" "$CHECKS" "$WORK/results.json"

ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*"; }
die() { echo "[$(ts)] FATAL: $*" >&2; exit 1; }

for cmd in mariadbd mariadb-install-db mariadb mariadb-admin mariadb-dump mydumper myloader python3; do
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is missing; install mariadb-server mariadb-client mydumper python3 (bench/logical.sh installs them with apt-get)"
done
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is missing; apt-get install time"

# ------------------------------------------------------------------ holdfast binary
HOLDFAST_OK=0
HOLDFAST_WHY=""
holdfast_check() {
  if [[ ! -x $HOLDFAST ]]; then HOLDFAST_WHY="$HOLDFAST does not exist or is not executable"; return 1; fi
  local help; help=$("$HOLDFAST" --help 2>&1) || true
  for c in init backup restore; do
    grep -qw "$c" <<<"$help" || { HOLDFAST_WHY="$HOLDFAST --help does not list '$c'"; return 1; }
  done
}
if [[ $HOLDFAST == "$DEFAULT_HOLDFAST" && $HOLDFAST_BUILD == 1 ]] && command -v cargo >/dev/null 2>&1; then
  log "building holdfast (cargo build --release -p holdfast-cli) ..."
  (cd "$REPO_ROOT" && nice cargo build --release -p holdfast-cli) >"$LOGS/cargo-build.log" 2>&1 \
    || log "WARNING: build failed (log: $LOGS/cargo-build.log); using whatever binary exists"
fi
holdfast_check && HOLDFAST_OK=1
[[ $HOLDFAST_OK == 1 ]] || echo "!!! HOLDFAST BINARY MISSING: $HOLDFAST_WHY — only the peers are measured"

GIT_HEAD=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || true)
echo "=== holdfast many-tables benchmark ($(date -Is)) ==="
python3 "$STATS" machine --out "$WORK/machine.json" --work "$WORK" \
  --holdfast "$([[ $HOLDFAST_OK == 1 ]] && echo "$HOLDFAST")" --git-head "$GIT_HEAD"
echo "config  : tables=$TABLES per_db=$PER_DB runs=$RUNS threads=$THREADS extras=$EXTRAS quick=$QUICK pitr=$PITR"
cat >"$WORK/config.json" <<JSON
{"bench": "many_tables", "tables": $TABLES, "per_db": $PER_DB, "runs": $RUNS, "threads": $THREADS,
 "extras": $EXTRAS, "quick": $QUICK, "pitr": $PITR, "pitr_rounds": $PITR_ROUNDS, "holdfast": "$HOLDFAST", "holdfast_available": $HOLDFAST_OK,
 "dump_bar": $DUMP_BAR, "restore_bar": $RESTORE_BAR, "work": "$WORK",
 "server_flags": "log-bin binlog-format=ROW innodb_buffer_pool_size=1G innodb_flush_log_at_trx_commit=2 table_open_cache=4000",
 "started": "$(date -Is)"}
JSON

# ------------------------------------------------------------------ servers
SRC_DIR="$WORK/source-${TABLES}x${PER_DB}"
TGT_DIR="$WORK/target"
SRC_SOCK="$SRC_DIR/mysqld.sock"
TGT_SOCK="$TGT_DIR/mysqld.sock"
declare -a SERVER_PIDS=() SERVER_SOCKS=()
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for i in "${!SERVER_PIDS[@]}"; do
    local pid=${SERVER_PIDS[$i]} sock=${SERVER_SOCKS[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    timeout 120 mariadb-admin --no-defaults -S "$sock" -u root shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() { # DIR PORT SERVER_ID
  local dir=$1 port=$2 sid=$3 data=$1/data sock=$1/mysqld.sock
  mkdir -p "$dir"
  port_in_use "$port" && die "port 127.0.0.1:$port is already in use; set SRC_PORT/TGT_PORT to free ports"
  if [[ ! -d $data/mysql ]]; then
    rm -rf "$data"
    mariadb-install-db --no-defaults --auth-root-authentication-method=normal --user="$(id -un)" \
      --datadir="$data" --skip-test-db >"$dir/install.log" 2>&1 \
      || { tail -20 "$dir/install.log" >&2; die "mariadb-install-db failed for $data"; }
  fi
  rm -f "$sock"
  mkdir -p "$dir/tmp"   # not the shared /tmp: other jobs' cleanup must not remove its temp tables
  mariadbd --no-defaults --tmpdir="$dir/tmp" --user="$(id -un)" --datadir="$data" --socket="$sock" \
    --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --log-bin="$data/binlog" --binlog-format=ROW --server-id="$sid" \
    --innodb-buffer-pool-size=1G --innodb-flush-log-at-trx-commit=2 --table-open-cache=4000 \
    --local-infile=1 --max-allowed-packet=1G --skip-name-resolve --max-connections=200 \
    >>"$dir/mariadbd.out" 2>&1 &
  local pid=$!
  SERVER_PIDS+=("$pid"); SERVER_SOCKS+=("$sock")
  for _ in $(seq 1 300); do
    mariadb --no-defaults -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && { log "mariadbd up: pid $pid, $sock"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -30 "$dir/error.log" >&2; die "mariadbd exited during startup"; }
    sleep 0.2
  done
  die "mariadbd did not accept connections on $sock within 60 s"
}
sql_src() { mariadb --no-defaults -S "$SRC_SOCK" -u root "$@"; }
sql_tgt() { mariadb --no-defaults -S "$TGT_SOCK" -u root "$@"; }
list_tables() { # SQL_FUNCTION: every base table of the mt% databases, db.table, sorted
  "$1" -N -B -e "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'mt%' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"
}

rm -rf "$TGT_DIR"
start_server "$SRC_DIR" "$SRC_PORT" 1
start_server "$TGT_DIR" "$TGT_PORT" 2

# ------------------------------------------------------------------ data
SHAPE="tables=$TABLES per_db=$PER_DB gen=$(sha256sum "$GEN" | cut -c1-12)"
if [[ -f $SRC_DIR/prepared && $(cat "$SRC_DIR/prepared") == "$SHAPE" ]]; then
  log "data already generated ($SHAPE), reusing $SRC_DIR"
else
  log "generating $TABLES tables ($PER_DB per database) ..."
  t0=$(date +%s)
  python3 "$GEN" --tables "$TABLES" --per-db "$PER_DB" | sql_src >"$LOGS/generate.log" 2>&1 \
    || { tail -20 "$LOGS/generate.log" >&2; die "generating the data failed"; }
  sql_src -e "RESET MASTER"
  echo "$SHAPE" >"$SRC_DIR/prepared"
  log "generated in $(( $(date +%s) - t0 )) s"
fi
DBS=$(sql_src -N -B -e "SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME SEPARATOR ' ') FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'mt%'")
list_tables sql_src >"$WORK/tables.txt"
# One CHECKSUM TABLE per database: a single statement naming 100,000 tables keeps them all open
# at once and stalls the server in "Opening tables" (table_open_cache is far smaller).
checksum_sql() { # [TABLE_LIST]
  awk -F. '$1 != db { if (db != "") print ";"; printf "CHECKSUM TABLE %s", $0; db = $1; next }
           { printf ",%s", $0 } END { if (db != "") print ";" }' "${1:-$WORK/tables.txt}"
}
log "source: $(wc -l <"$WORK/tables.txt") tables in $(wc -w <<<"$DBS") databases, $(sql_src -N -B -e "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA LIKE 'mt%'") views, $(sql_src -N -B -e "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA LIKE 'mt%'") triggers; checksumming ..."
checksum_sql | sql_src -N -B >"$WORK/checksum-source.txt"

# ------------------------------------------------------------------ timing
slug() { tr -c 'A-Za-z0-9' '_' <<<"$1" | sed 's/__*/_/g; s/_$//'; }
out_bytes() { [[ -e $1 ]] && du -sb "$1" | cut -f1 || true; }
timed() { # PHASE TOOL INFO_ONLY OUTPUT_PATH IS_JSON -- CMD...
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
  [[ $rc != 0 ]] && { echo "      FAILED: $(printf '%q ' "$@")"; tail -5 "$base.err" | sed 's/^/      | /'; }
  return "$rc"
}
reset_target() {
  local d drops=""
  for d in $(sql_tgt -N -B -e "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'mt%'"); do
    drops+="DROP DATABASE \`$d\`; "
  done
  sql_tgt -e "$drops RESET MASTER" || die "could not reset the target server"
}
checksum_target() { # LABEL [TABLE_LIST SOURCE_CHECKSUMS]
  [[ $CHECK_RUNS == all || $RUN -le $CHECK_RUNS || -n ${2:-} ]] || return 0
  local f; f="$LOGS/run$RUN-checksum-$(slug "$1").txt"
  checksum_sql "${2:-}" | sql_tgt -N -B >"$f" 2>&1 || true
  python3 "$STATS" checksum --full-names --out "$CHECKS" --label "$1" --run "$RUN" \
    --source "${3:-$WORK/checksum-source.txt}" --target "$f" || true
}

SRC_URL="mysql://root@localhost/?socket=$SRC_SOCK"
TGT_URL="mysql://root@localhost/?socket=$TGT_SOCK"
declare -A DUMP_OK=()
dump_holdfast() {
  [[ $HOLDFAST_OK == 1 ]] || return 0
  local repo="$WORK/repo-$RUN"; rm -rf "$repo"
  "$HOLDFAST" init --repo "file://$repo" >"$LOGS/run$RUN-holdfast-init.log" 2>&1 || { echo "    holdfast init FAILED"; return 0; }
  timed dump "holdfast backup" 0 "$repo" 1 -- \
    "$HOLDFAST" backup --repo "file://$repo" --source "$SRC_URL" --threads "$THREADS" --json \
    && DUMP_OK[holdfast]=1 || true
}
dump_mydumper() {
  local dir="$WORK/mydumper-$RUN"; rm -rf "$dir"
  timed dump "mydumper -t $THREADS" 0 "$dir" 0 -- \
    mydumper -t "$THREADS" -S "$SRC_SOCK" -u root -x '^mt[0-9]+\.' -G -o "$dir" \
    && DUMP_OK[mydumper]=1 || true
}
dump_mariadb_dump() {
  local f="$WORK/dump-$RUN.sql"; rm -f "$f"
  # shellcheck disable=SC2086
  timed dump "mariadb-dump --single-transaction" 1 "$f" 0 -- \
    bash -c 'f=$1 s=$2; shift 2; exec mariadb-dump --no-defaults --single-transaction -S "$s" -u root --databases "$@" >"$f"' _ "$f" "$SRC_SOCK" $DBS \
    && DUMP_OK[mariadb_dump]=1 || true
}
restore_holdfast() {
  [[ -n ${DUMP_OK[holdfast]:-} ]] || return 0
  reset_target
  timed restore "holdfast restore" 0 "" 1 -- \
    "$HOLDFAST" restore --repo "file://$WORK/repo-$RUN" --target "$TGT_URL" latest \
    --threads "$THREADS" --drop-existing --json || true
  checksum_target "holdfast restore"
}
restore_myloader() {
  [[ -n ${DUMP_OK[mydumper]:-} ]] || return 0
  reset_target
  timed restore "myloader -t $THREADS" 0 "" 0 -- \
    myloader -t "$THREADS" -S "$TGT_SOCK" -u root -d "$WORK/mydumper-$RUN" -o || true
  checksum_target "myloader -t $THREADS"
}
restore_mariadb() {
  [[ -n ${DUMP_OK[mariadb_dump]:-} ]] || return 0
  reset_target
  timed restore "mariadb < dump.sql" 1 "" 0 -- \
    bash -c 'exec mariadb --no-defaults -S "$1" -u root <"$2"' _ "$TGT_SOCK" "$WORK/dump-$RUN.sql" || true
  checksum_target "mariadb < dump.sql"
}
DUMP_STEPS=(dump_holdfast)
RESTORE_STEPS=(restore_holdfast)
[[ $PEERS == 1 ]] && { DUMP_STEPS+=(dump_mydumper); RESTORE_STEPS+=(restore_myloader); }
[[ $EXTRAS == 1 ]] && { DUMP_STEPS+=(dump_mariadb_dump); RESTORE_STEPS+=(restore_mariadb); }
rotate() { local -n arr=$1; local n=${#arr[@]} k=$(( $2 % ${#arr[@]} )) i; for ((i = 0; i < n; i++)); do echo "${arr[$(( (i + k) % n ))]}"; done; }

echo "peers: mydumper -t $THREADS -x '^mt[0-9]+\\.' -G -o DIR;  myloader -t $THREADS -d DIR -o (binlog off, like holdfast's default)"
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  log "run $RUN/$RUNS  (load $(cut -d' ' -f1-3 /proc/loadavg))"
  DUMP_OK=()
  mapfile -t order < <(rotate DUMP_STEPS $((RUN - 1)))
  for step in "${order[@]}"; do sync; "$step"; done
  mapfile -t order < <(rotate RESTORE_STEPS $((RUN - 1)))
  for step in "${order[@]}"; do sync; "$step"; done
  [[ $RUN -lt $RUNS ]] && rm -rf "$WORK/repo-$RUN" "$WORK/mydumper-$RUN" "$WORK/dump-$RUN.sql"
done

# ------------------------------------------------------------------ point-in-time recovery
STREAM_PID=""
stop_stream() {
  [[ -n $STREAM_PID ]] || return 0
  kill -INT "$STREAM_PID" 2>/dev/null || true
  wait "$STREAM_PID" 2>/dev/null || true
  STREAM_PID=""
}
archived_through() { # GTID: true once the archive holds it
  "$HOLDFAST" binlog list --repo "file://$1" --json 2>/dev/null | python3 -c '
import json, sys
want = sys.argv[1].split("-")
d = json.load(sys.stdin)
for s in d.get("segments", []):
    g = (s.get("last_gtid") or "").split("-")
    if len(g) == 3 and g[0] == want[0] and int(g[2]) >= int(want[2]):
        sys.exit(0)
sys.exit(1)' "$2"
}
pitr_phase() {
  local repo="$WORK/repo-$RUNS"
  [[ -n ${DUMP_OK[holdfast]:-} && -d $repo ]] || { log "PITR: no holdfast backup from the last run; skipped"; return 0; }
  RUN=$((RUNS + 1))   # its own run number in the records and log names
  # The writes below change the source: generate it again next time.
  rm -f "$SRC_DIR/prepared"
  log "PITR: streaming the binlog into $repo; $PITR_ROUNDS transactions per database and DDL ..."
  "$HOLDFAST" binlog stream --repo "file://$repo" --source "$SRC_URL" >"$LOGS/pitr-stream.out" 2>"$LOGS/pitr-stream.err" &
  STREAM_PID=$!
  trap 'stop_stream; cleanup' EXIT
  python3 "$GEN" --tables "$TABLES" --per-db "$PER_DB" --writes keep --rounds "$PITR_ROUNDS" \
    | sql_src >"$LOGS/pitr-writes.log" 2>&1 || { tail -5 "$LOGS/pitr-writes.log" >&2; die "the PITR writes failed"; }
  local stop; stop=$(sql_src -N -B -e "SELECT @@gtid_binlog_pos")
  [[ $stop =~ ^[0-9]+-[0-9]+-[0-9]+$ ]] || die "PITR: expected one GTID domain on the source, got '$stop'"
  list_tables sql_src >"$WORK/tables-pitr.txt"
  log "PITR: stop point $stop ($(wc -l <"$WORK/tables-pitr.txt") tables); checksumming the source there ..."
  checksum_sql "$WORK/tables-pitr.txt" | sql_src -N -B >"$WORK/checksum-pitr-source.txt"
  python3 "$GEN" --tables "$TABLES" --per-db "$PER_DB" --writes accident | sql_src >>"$LOGS/pitr-writes.log" 2>&1 \
    || die "the PITR accident failed"
  local last; last=$(sql_src -N -B -e "SELECT @@gtid_binlog_pos")
  log "PITR: accident written (through $last); waiting for the archive ..."
  local waited=0
  until archived_through "$repo" "$last"; do
    kill -0 "$STREAM_PID" 2>/dev/null || { tail -5 "$LOGS/pitr-stream.err" >&2; die "PITR: the binlog stream exited"; }
    (( waited++ < 600 )) || die "PITR: the archive did not reach $last within 10 minutes"
    sleep 1
  done
  stop_stream
  reset_target
  timed pitr "holdfast restore --to-gtid" 0 "" 1 -- \
    "$HOLDFAST" restore --repo "file://$repo" --target "$TGT_URL" --to-gtid "$stop" \
    --threads "$THREADS" --drop-existing --json || true
  checksum_target "holdfast restore --to-gtid" "$WORK/tables-pitr.txt" "$WORK/checksum-pitr-source.txt"
  if list_tables sql_tgt | cmp -s - "$WORK/tables-pitr.txt"; then
    log "PITR: the target's tables are the source's at $stop ($(wc -l <"$WORK/tables-pitr.txt"))"
  else
    log "PITR: TABLE LISTS DIFFER (target vs source at $stop):"
    list_tables sql_tgt | diff - "$WORK/tables-pitr.txt" | head -20
  fi
}
[[ $PITR == 1 ]] && pitr_phase
log "done (load $(cut -d' ' -f1-3 /proc/loadavg))"
python3 "$STATS" report --work "$WORK"
echo "logs: $LOGS"
