#!/usr/bin/env bash
# Check the monitoring files in contrib/ against Prometheus itself:
#   - contrib/prometheus/holdfast-rules.yml: `promtool check rules` and the unit tests in
#     holdfast-rules.test.yml (`promtool test rules`: each alert fires when it should, not
#     before, and its messages render);
#   - contrib/grafana/holdfast-dashboard.json: valid JSON, every panel query is valid PromQL
#     (checked by promtool as a recording rule, with the dashboard variables filled in), panels
#     do not overlap;
#   - both use only metrics the daemon exports, and together use every one of them.
#
# promtool comes from PATH, or from Debian's `prometheus` package: the .deb is downloaded with
# `apt-get download` and only promtool is extracted (into ~/.cache/holdfast), so no Prometheus
# service is installed or started.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
die() { echo "check-monitoring.sh: $*" >&2; exit 1; }

RULES=contrib/prometheus/holdfast-rules.yml
RULE_TESTS=contrib/prometheus/holdfast-rules.test.yml
DASHBOARD=contrib/grafana/holdfast-dashboard.json
# The daemon's metrics (docs/daemon.md, "Metrics"): the rules and the dashboard use these only.
METRICS="holdfast_backup_last_success_timestamp_seconds holdfast_backup_duration_seconds
holdfast_backup_size_bytes holdfast_binlog_archive_lag_seconds holdfast_binlog_archiver_up
holdfast_recoverable_window_start_timestamp_seconds holdfast_recoverable_window_end_timestamp_seconds
holdfast_drill_last_success_timestamp_seconds holdfast_drill_success_ratio holdfast_jobs
holdfast_job_retries_total holdfast_schedule_missed_total holdfast_repository_size_bytes holdfast_up"

find_promtool() {
  if command -v promtool >/dev/null 2>&1; then command -v promtool; return; fi
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/holdfast/promtool"
  if [[ ! -x $cache/usr/bin/promtool ]]; then
    command -v apt-get >/dev/null 2>&1 || die "promtool not found and no apt-get to fetch it"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || {
      apt-get update -qq >/dev/null 2>&1 || true
      (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
    } || die "cannot download Debian's prometheus package for promtool (apt-get download prometheus)"
    mkdir -p "$cache"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    install -D -m 0755 "$tmp/x/usr/bin/promtool" "$cache/usr/bin/promtool"
    rm -rf "$tmp"
  fi
  echo "$cache/usr/bin/promtool"
}

PROMTOOL=$(find_promtool)
"$PROMTOOL" --version 2>&1 | head -1
command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install python3)"

"$PROMTOOL" check rules "$RULES"
(cd "$(dirname "$RULE_TESTS")" && "$PROMTOOL" test rules "$(basename "$RULE_TESTS")")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Every dashboard query as a recording rule, so promtool parses it.
python3 - "$DASHBOARD" "$WORK/dashboard-queries.yml" <<'EOF'
import json, sys
dash = json.load(open(sys.argv[1]))
exprs, boxes, problems = [], [], []
for p in dash["panels"]:
    g = p["gridPos"]
    if p["type"] != "row":
        boxes.append((p["title"], g["x"], g["y"], g["w"], g["h"]))
        if not p.get("targets"):
            problems.append(f"panel {p['title']!r} has no query")
    if g["x"] + g["w"] > 24:
        problems.append(f"panel {p['title']!r} is wider than the dashboard")
    for t in p.get("targets", []):
        e = t["expr"]
        for var, val in (("${server:regex}", ".*"), ("$server", ".*"), ("$repository", ".*")):
            e = e.replace(var, val)
        if "$" in e:
            problems.append(f"panel {p['title']!r}: unknown variable in {t['expr']!r}")
        exprs.append(e)
for i, a in enumerate(boxes):
    for b in boxes[i + 1:]:
        if a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]:
            problems.append(f"panels {a[0]!r} and {b[0]!r} overlap")
if problems:
    sys.exit("dashboard: " + "; ".join(problems))
with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}\n")
print(f"dashboard: {len(dash['panels'])} panels, {len(exprs)} queries")
EOF
"$PROMTOOL" check rules "$WORK/dashboard-queries.yml" >/dev/null \
  || die "a dashboard query is not valid PromQL (see above)"

# Metrics: only the daemon's, and each of them somewhere.
used=$(cat "$RULES" "$DASHBOARD" | grep -oE 'holdfast_[a-z0-9_]+' | sort -u)
unknown=$(comm -23 <(echo "$used") <(tr -s ' \n' '\n' <<<"$METRICS" | sort -u))
unused=$(comm -13 <(echo "$used") <(tr -s ' \n' '\n' <<<"$METRICS" | sort -u))
[[ -z $unknown ]] || die "metrics the daemon does not export: $(echo $unknown)"
[[ -z $unused ]] || die "metrics used by neither the rules nor the dashboard: $(echo $unused)"
echo "ok: rules and dashboard valid, $(wc -w <<<"$METRICS") metrics all used"
