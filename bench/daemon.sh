#!/usr/bin/env bash
# bench/daemon.sh — the daemon's own cost and timing, with SERVERS configured servers (20):
#   1. idle: daily schedules only, for IDLE seconds (120): CPU seconds used and RSS (VmRSS, VmHWM);
#   2. jitter: every server runs a cheap `verify` job every 5 seconds for BUSY seconds (60):
#      actual start (the `running` transition) minus planned time, p50/p99/max, from the store.
# Repositories are empty local ones (the servers are never contacted by these jobs), so the
# figures are the daemon's: scheduling, claiming, child processes, metrics refresh.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOLDFAST=${HOLDFAST:-$ROOT/target/release/holdfast}
SERVERS=${SERVERS:-20}
IDLE=${IDLE:-120}
BUSY=${BUSY:-60}
PORT=${PORT:-19187}
WORK=$(mktemp -d /tmp/hf-daemon-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
[[ -x $HOLDFAST ]] || { echo "no $HOLDFAST (cargo build --release, or set HOLDFAST)" >&2; exit 2; }

config() { # $1 = cron of each server's job, $2 = job
  printf '[daemon]\nlisten = "127.0.0.1:%s"\nstate = "%s/state-%s.db"\nmax_jobs = 2\n\n' "$PORT" "$WORK" "$2"
  for i in $(seq 1 "$SERVERS"); do
    printf '[[repository]]\nname = "r%s"\nurl = "file://%s/repo%s"\n\n' "$i" "$WORK" "$i"
    printf '[[server]]\nname = "db%s"\nsource = "mysql://backup@db%s.invalid:3306/"\nrepository = "r%s"\n' "$i" "$i" "$i"
    printf '[[server.schedule]]\njob = "%s"\ncron = "%s"\n\n' "$2" "$1"
  done
}
for i in $(seq 1 "$SERVERS"); do "$HOLDFAST" init --repo "file://$WORK/repo$i" >/dev/null; done

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }

echo "== idle: $SERVERS servers, daily backups, ${IDLE}s"
config "0 0 2 * * *" backup > "$WORK/idle.toml"
"$HOLDFAST" daemon --config "$WORK/idle.toml" 2>"$WORK/idle.log" &
pid=$!
sleep 5
c0=$(cpu_seconds $pid)
sleep "$IDLE"
c1=$(cpu_seconds $pid)
rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status); hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true
awk -v a="$c0" -v b="$c1" -v t="$IDLE" -v r="$rss" -v h="$hwm" 'BEGIN{printf "idle CPU: %.3f s in %d s (%.2f%% of one core); RSS %.1f MB, peak %.1f MB\n", b-a, t, (b-a)*100/t, r/1024, h/1024}'

echo "== jitter: $SERVERS servers, verify every 5 s, ${BUSY}s"
config "*/5 * * * * *" verify > "$WORK/busy.toml"
"$HOLDFAST" daemon --config "$WORK/busy.toml" 2>"$WORK/busy.log" &
pid=$!
sleep "$BUSY"
kill -TERM $pid; wait $pid || true
python3 - "$WORK/state-verify.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("""SELECT j.planned_at, MIN(t.at) FROM jobs j JOIN transitions t ON t.job_id = j.id
                     WHERE t.to_state = 'running' AND j.planned_at IS NOT NULL GROUP BY j.id""").fetchall()
lat = sorted((s - p) / 1000 for p, s in rows)
states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
if not lat:
    sys.exit("no job started")
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(f"jobs started: {len(lat)} (states: {states}); start minus planned: p50 {q(0.5):.3f} s, "
      f"p99 {q(0.99):.3f} s, max {lat[-1]:.3f} s")
print("(with max_jobs = 2 and 20 jobs due at the same second, later ones wait for a slot: the "
      "jitter of the first job of each tick is the scheduler's, the rest is queueing)")
first = {}
for p, s in rows:
    first[p] = min(first.get(p, s), s)
fl = sorted((s - p) / 1000 for p, s in first.items())
print(f"first job of each tick: p50 {fl[len(fl)//2]:.3f} s, p99 {fl[min(len(fl)-1, int(0.99*len(fl)))]:.3f} s")
PY
