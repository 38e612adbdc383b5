#!/usr/bin/env bash
# Backup and restore throughput to an S3 repository (Garage on loopback) against the same work on
# local disk, measured in the same run, alternating order. Prints medians and s3/local ratios.
#
# Usage: bench/s3.sh [--quick] [--help]
# Environment (defaults in brackets):
#   ROWS [300000]  rows per sysbench table      TABLES [4]  sysbench tables
#   RUNS [3]       measured runs (medians)      THREADS [2] holdfast --threads
#   HOLDFAST [$CARGO_TARGET_DIR or target]/release/holdfast (built first unless HOLDFAST is set)
#   WORK [/tmp/holdfast-bench-s3]   MAX_RATE []  e.g. 50MiB/s to also exercise --max-rate
# --quick: ROWS=100000 TABLES=2 RUNS=1.
#
# Machines are noisy 2-core boxes: read medians and the s3/local ratio, never a single time.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/sbin:/usr/local/sbin:/sbin"
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "s3.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $QUICK == 1 ]] && { ROWS=100000; TABLES=2; RUNS=1; }
ROWS=${ROWS:-300000} TABLES=${TABLES:-4} RUNS=${RUNS:-3} THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/holdfast-bench-s3}
MAX_RATE=${MAX_RATE:-}
for v in ROWS TABLES RUNS THREADS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "s3.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*"; }
die() { echo "[$(ts)] FATAL: $*" >&2; exit 1; }
for cmd in mariadbd mariadb-install-db mariadb mariadb-admin sysbench python3; do
  command -v "$cmd" >/dev/null || die "$cmd missing (scripts/test.sh installs the packages)"
done
bash "$ROOT/scripts/ensure-garage.sh" >/dev/null || die "garage missing and could not be installed"

if [[ -z ${HOLDFAST:-} ]]; then
  log "cargo build --release -p holdfast-cli"
  (cd "$ROOT" && cargo build --release -q -p holdfast-cli) || die "build failed"
  HOLDFAST="${CARGO_TARGET_DIR:-$ROOT/target}/release/holdfast"
fi
[[ -x $HOLDFAST ]] || die "holdfast binary $HOLDFAST not found"

rm -rf "$WORK"; mkdir -p "$WORK"
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

start_mariadb() { # DIR PORT ID
  local dir=$1 port=$2
  mkdir -p "$dir/tmp"
  mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db "${USER_ARG[@]}" >"$dir/install.log" 2>&1 || die "mariadb-install-db failed ($dir/install.log)"
  mariadbd --no-defaults "${USER_ARG[@]}" --datadir="$dir/data" --socket="$dir/sock" --port="$port" \
    --bind-address=127.0.0.1 --server-id="$3" --log-bin=mysql-bin --binlog-format=ROW \
    --innodb-buffer-pool-size=512M --innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=2 \
    --local-infile=1 --max-allowed-packet=1G --skip-name-resolve --tmpdir="$dir/tmp" \
    --log-error="$dir/error.log" >>"$dir/error.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do
    mariadb-admin --no-defaults -uroot --socket="$dir/sock" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "mariadbd in $dir did not start ($dir/error.log)"
}

SRC_PORT=$(free_port) TGT_PORT=$(free_port)
log "servers: source :$SRC_PORT, target :$TGT_PORT"
start_mariadb "$WORK/src" "$SRC_PORT" 1
start_mariadb "$WORK/tgt" "$TGT_PORT" 2
mariadb --no-defaults -uroot --socket="$WORK/src/sock" -e "CREATE DATABASE sbtest"
log "loading $TABLES x $ROWS sysbench rows"
sysbench oltp_read_write --db-driver=mysql --mysql-socket="$WORK/src/sock" --mysql-user=root \
  --mysql-db=sbtest --tables="$TABLES" --table-size="$ROWS" --threads=2 prepare >"$WORK/sysbench.log" 2>&1 \
  || die "sysbench prepare failed ($WORK/sysbench.log)"

# Garage, single node, one bucket, random keys (exported for holdfast, never on argv).
start_garage holdfast-bench
log "garage on :$S3_PORT ($(garage --version | head -1))"

RATE_ARGS=(); [[ -n $MAX_RATE ]] && RATE_ARGS=(--max-rate "$MAX_RATE")
RESULTS="$WORK/measurements.jsonl"
# The encrypted destination is opened with an age identity (a recipient key slot), so what is
# measured is the data path (age on every byte), not a passphrase's scrypt.
IDENTITY="$WORK/identity.txt"
rm -f "$IDENTITY"; age-keygen -o "$IDENTITY" 2>/dev/null
RECIPIENT=$(age-keygen -y "$IDENTITY")
measure() { # KIND DEST RUN URL
  local kind=$1 dest=$2 run=$3 url=$4 start end out
  local key=(); [[ $dest == s3enc ]] && key=(--identity-file "$IDENTITY")
  start=$(date +%s.%N)
  if [[ $kind == backup ]]; then
    out=$("$HOLDFAST" backup --repo "$url" --source "mysql://root@127.0.0.1:$SRC_PORT/" \
      --threads "$THREADS" --json --no-progress "${RATE_ARGS[@]}" "${key[@]}") || die "backup to $dest failed"
  else
    out=$("$HOLDFAST" restore --repo "$url" --target "mysql://root@127.0.0.1:$TGT_PORT/" \
      --threads "$THREADS" --drop-existing --json --no-progress "${RATE_ARGS[@]}" "${key[@]}") || die "restore from $dest failed"
  fi
  end=$(date +%s.%N)
  python3 - "$kind" "$dest" "$run" "$start" "$end" "$out" >>"$RESULTS" <<'PY'
import json, sys
kind, dest, run, start, end, out = sys.argv[1:]
j = json.loads(out)
print(json.dumps({"kind": kind, "dest": dest, "run": int(run), "seconds": float(end) - float(start),
                  "raw_bytes": j.get("raw_bytes"), "stored_bytes": j.get("stored_bytes")}))
PY
  log "$kind $dest run $run: $(python3 -c "print(round($end - $start, 2))") s"
}

for run in $(seq 1 "$RUNS"); do
  file_url="file://$WORK/repo-file-$run"
  s3_url="s3://holdfast-bench/run-$run?endpoint=http://127.0.0.1:$S3_PORT&region=garage"
  "$HOLDFAST" init --repo "$file_url" >/dev/null
  s3enc_url="s3://holdfast-bench/enc-$run?endpoint=http://127.0.0.1:$S3_PORT&region=garage"
  "$HOLDFAST" init --repo "$s3_url" >/dev/null
  "$HOLDFAST" init --repo "$s3enc_url" --recipient "$RECIPIENT" >/dev/null
  # Rotate the order so drift on a noisy machine does not favour one destination.
  case $(( run % 3 )) in
    1) order=(file s3 s3enc) ;; 2) order=(s3 s3enc file) ;; *) order=(s3enc file s3) ;;
  esac
  for dest in "${order[@]}"; do
    case $dest in file) url=$file_url ;; s3) url=$s3_url ;; *) url=$s3enc_url ;; esac
    measure backup "$dest" "$run" "$url"
    measure restore "$dest" "$run" "$url"
  done
  rm -rf "$WORK/repo-file-$run"   # keep the disk footprint to one run's repositories
done

python3 - "$RESULTS" "$WORK/results.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
raw = next(r["raw_bytes"] for r in rows if r["kind"] == "backup" and r["raw_bytes"])
out = {}
print(f"\n{'step':<8} {'dest':<6} {'median s':>9} {'MiB/s raw':>10} {'runs':>5}")
for kind in ("backup", "restore"):
    for dest in ("file", "s3", "s3enc"):
        xs = [r["seconds"] for r in rows if r["kind"] == kind and r["dest"] == dest]
        m = statistics.median(xs)
        out[f"{kind}_{dest}_s"] = m
        print(f"{kind:<8} {dest:<6} {m:>9.2f} {raw / m / 2**20:>10.1f} {len(xs):>5}")
for kind in ("backup", "restore"):
    ratio = out[f"{kind}_s3_s"] / out[f"{kind}_file_s"]
    out[f"{kind}_s3_over_file"] = ratio
    print(f"{kind}: s3/local wall-time ratio {ratio:.2f}")
    enc = out[f"{kind}_s3enc_s"] / out[f"{kind}_s3_s"]
    out[f"{kind}_s3enc_over_s3"] = enc
    print(f"{kind}: encrypted s3 / plain s3 wall-time ratio {enc:.2f} (bar <= 1.10)")
out["raw_bytes"] = raw
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
log "results: $WORK/results.json"
