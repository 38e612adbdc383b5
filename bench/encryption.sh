#!/usr/bin/env bash
# Cost of client-side encryption: holdfast backup and restore wall time into a plain and an
# encrypted repository on local disk, on the same data, in the same runs (interleaved, order
# alternating per run). Reports medians and encrypted/plain ratios; the bar is <= 1.10.
#
# The encrypted repository is opened with an age identity (a recipient key slot), so the figures
# are the cost of encrypting the data. A passphrase slot adds a fixed scrypt unwrap per command
# (about a second, by design, against brute force); it is measured separately (`holdfast list`).
#
# Usage: bench/encryption.sh [--quick] [--help]
# Environment (defaults in brackets):
#   ROWS [500000]  rows per sysbench table    TABLES [4]   sysbench tables
#   RUNS [5]       measured runs (medians)     THREADS [2]  --threads for backup and restore
#   HOLDFAST [target/release/holdfast]         WORK [/tmp/holdfast-bench-crypt]
#   PORT [33071]   TCP port of the throwaway server on 127.0.0.1
# --quick forces ROWS=100000 TABLES=2 RUNS=3.
#
# One throwaway server is the source and (into a fresh database name, via --rename-db) the
# restore target, so both variants load into the same server under the same conditions.
set -Eeuo pipefail

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "encryption.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $QUICK == 1 ]] && { ROWS=100000 TABLES=2 RUNS=3; }
ROWS=${ROWS:-500000}
TABLES=${TABLES:-4}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
PORT=${PORT:-33071}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOLDFAST=${HOLDFAST:-$ROOT/target/release/holdfast}
WORK=${WORK:-/tmp/holdfast-bench-crypt}
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"

log() { echo "[$(date +%H:%M:%S)] $*"; }
die() { echo "[$(date +%H:%M:%S)] FATAL: $*" >&2; exit 1; }
for cmd in mariadbd mariadb-install-db mariadb sysbench python3 age-keygen; do
  command -v "$cmd" >/dev/null || die "$cmd is missing (apt-get install mariadb-server mariadb-client sysbench python3 age)"
done
[[ -x $HOLDFAST ]] || die "no holdfast binary at $HOLDFAST: cargo build --release -p holdfast-cli, or set HOLDFAST"

mkdir -p "$WORK"
SRV=$WORK/server DATA=$WORK/server/data SOCK=$WORK/server/mysqld.sock
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] || return 0
  mariadb-admin --no-defaults -S "$SOCK" -u root shutdown >/dev/null 2>&1 || kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

mkdir -p "$SRV"
if [[ ! -d $DATA/mysql ]]; then
  mariadb-install-db --no-defaults --auth-root-authentication-method=normal --user="$(id -un)" \
    --datadir="$DATA" --skip-test-db >"$SRV/install.log" 2>&1 || die "mariadb-install-db failed ($SRV/install.log)"
fi
rm -f "$SOCK"
mariadbd --no-defaults --user="$(id -un)" --datadir="$DATA" --socket="$SOCK" --port="$PORT" \
  --bind-address=127.0.0.1 --log-error="$SRV/error.log" --log-bin="$DATA/binlog" --server-id=1 \
  --innodb-buffer-pool-size=1G --innodb-flush-log-at-trx-commit=2 --local-infile=1 \
  --max-allowed-packet=1G --skip-name-resolve >>"$SRV/mariadbd.out" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  mariadb --no-defaults -S "$SOCK" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "mariadbd exited ($SRV/error.log)"
  sleep 0.2
done
sql() { mariadb --no-defaults -S "$SOCK" -u root "$@"; }

if [[ $(cat "$SRV/prepared" 2>/dev/null) != "tables=$TABLES rows=$ROWS" ]]; then
  log "preparing sbtest ($TABLES x $ROWS rows) ..."
  sql -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  sysbench oltp_read_write --tables="$TABLES" --table-size="$ROWS" --mysql-socket="$SOCK" \
    --mysql-user=root --mysql-db=sbtest --threads=2 prepare >"$SRV/prepare.log" 2>&1 || die "sysbench prepare failed"
  sql -e "RESET MASTER"
  echo "tables=$TABLES rows=$ROWS" >"$SRV/prepared"
fi
SOURCE="mysql://root@localhost/?socket=$SOCK"
PASSFILE=$WORK/passphrase
echo "bench passphrase $(date +%s)" >"$PASSFILE"
chmod 600 "$PASSFILE"
IDENTITY=$WORK/identity.txt
rm -f "$IDENTITY"
age-keygen -o "$IDENTITY" 2>/dev/null
RECIPIENT=$(age-keygen -y "$IDENTITY")

MEAS=$WORK/measurements.jsonl
: >"$MEAS"
now() { date +%s.%N; }
# measure VARIANT PHASE RUN -- command...
measure() {
  local variant=$1 phase=$2 run=$3; shift 4
  local t0 t1
  t0=$(now)
  "$@" >"$WORK/last.out" 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; die "$variant $phase failed"; }
  t1=$(now)
  python3 -c "import json,sys; print(json.dumps({'variant':sys.argv[1],'phase':sys.argv[2],'run':int(sys.argv[3]),'seconds':float(sys.argv[5])-float(sys.argv[4])}))" \
    "$variant" "$phase" "$run" "$t0" "$t1" >>"$MEAS"
  log "run $run $variant $phase: $(python3 -c "print(f'{$t1-$t0:.2f}')") s"
}

backup_into() { # VARIANT RUN
  local repo=$WORK/repo-$1
  rm -rf "$repo"
  if [[ $1 == encrypted ]]; then
    "$HOLDFAST" init --repo "file://$repo" --recipient "$RECIPIENT" >/dev/null
  else
    "$HOLDFAST" init --repo "file://$repo" >/dev/null
  fi
  measure "$1" backup "$2" -- "$HOLDFAST" backup --repo "file://$repo" --identity-file "$IDENTITY" \
    --source "$SOURCE" --threads "$THREADS" --json
}
restore_from() { # VARIANT RUN; into a fresh database name each time
  local db=sbtest_r$2_$1
  sql -e "DROP DATABASE IF EXISTS $db"
  measure "$1" restore "$2" -- "$HOLDFAST" restore --repo "file://$WORK/repo-$1" --identity-file "$IDENTITY" \
    --target "$SOURCE" --rename-db "sbtest:$db" --threads "$THREADS" --json latest
  sql -e "DROP DATABASE $db"
}

for run in $(seq 1 "$RUNS"); do
  if (( run % 2 )); then order=(plain encrypted); else order=(encrypted plain); fi
  for v in "${order[@]}"; do backup_into "$v" "$run"; done
  for v in "${order[@]}"; do restore_from "$v" "$run"; done
done
# The fixed cost of a passphrase slot: `holdfast list` on a passphrase-encrypted repository
# against the plain one.
rm -rf "$WORK/repo-passphrase"
"$HOLDFAST" init --repo "file://$WORK/repo-passphrase" --encrypt --passphrase-file "$PASSFILE" >/dev/null
for run in $(seq 1 "$RUNS"); do
  measure plain unlock "$run" -- "$HOLDFAST" list --repo "file://$WORK/repo-plain"
  measure encrypted unlock "$run" -- "$HOLDFAST" list --repo "file://$WORK/repo-passphrase" --passphrase-file "$PASSFILE"
done

python3 - "$MEAS" "$WORK/results.json" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for v in ("plain", "encrypted"):
    for p in ("backup", "restore"):
        xs = [r["seconds"] for r in rows if r["variant"] == v and r["phase"] == p]
        med[(v, p)] = statistics.median(xs)
out = {"runs": max(r["run"] for r in rows), "median_seconds": {}, "ratio_encrypted_over_plain": {}}
print(f"{'phase':<8} {'plain s':>9} {'encrypted s':>12} {'ratio':>7}")
for p in ("backup", "restore"):
    ratio = med[("encrypted", p)] / med[("plain", p)]
    out["median_seconds"][p] = {"plain": med[("plain", p)], "encrypted": med[("encrypted", p)]}
    out["ratio_encrypted_over_plain"][p] = ratio
    print(f"{p:<8} {med[('plain', p)]:>9.2f} {med[('encrypted', p)]:>12.2f} {ratio:>7.3f}")
unlock = {v: statistics.median([r["seconds"] for r in rows if r["variant"] == v and r["phase"] == "unlock"]) for v in ("plain", "encrypted")}
out["passphrase_unlock_seconds"] = unlock["encrypted"] - unlock["plain"]
print(f"passphrase slot: +{out['passphrase_unlock_seconds']:.2f} s per command (scrypt), `list` {unlock['plain']:.2f} s plain vs {unlock['encrypted']:.2f} s")
json.dump(out, open(sys.argv[2], "w"), indent=2)
print("bar (data path): ratio <= 1.10;", "met" if all(r <= 1.10 for r in out["ratio_encrypted_over_plain"].values()) else "NOT met")
EOF
log "results in $WORK/results.json, raw measurements in $MEAS"
