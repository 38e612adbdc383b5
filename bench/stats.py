#!/usr/bin/env python3
"""Stats helper for bench/logical.sh (Python 3.11, stdlib only).

Subcommands
  record    parse one `/usr/bin/time -v` report and append a measurement to a JSONL file
  checksum  compare two `CHECKSUM TABLE` outputs, print OK/MISMATCH, append to a JSONL file
  machine   describe the machine and tool versions (printed at the top, stored in results.json)
  report    aggregate measurements (medians, ratios, bars), print a table, write results.json

Everything here is about *relative* numbers: the machines are noisy 2-core boxes, so the
verdicts are medians over runs and ratios between tools measured in the same run, never a
single absolute time.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

# --------------------------------------------------------------------------- record


def parse_time_v(text: str) -> dict:
    """Parse GNU time -v output. Missing fields become None."""

    def grab(pattern: str) -> str | None:
        m = re.search(pattern, text, re.MULTILINE)
        return m.group(1).strip() if m else None

    def to_float(s: str | None) -> float | None:
        try:
            return float(s) if s is not None else None
        except ValueError:
            return None

    wall = None
    w = grab(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\):\s*(\S+)")
    if w:
        parts = [float(p) for p in w.split(":")]
        wall = 0.0
        for p in parts:
            wall = wall * 60 + p
    rss_kb = grab(r"Maximum resident set size \(kbytes\):\s*(\d+)")
    exit_status = grab(r"Exit status:\s*(-?\d+)")
    signal = grab(r"Command terminated by signal\s*(\d+)")
    return {
        "time_v_wall_s": wall,
        "user_s": to_float(grab(r"User time \(seconds\):\s*(\S+)")),
        "sys_s": to_float(grab(r"System time \(seconds\):\s*(\S+)")),
        "cpu_percent": to_float((grab(r"Percent of CPU this job got:\s*(\S+)") or "").rstrip("%") or None),
        "max_rss_kb": int(rss_kb) if rss_kb else None,
        "time_v_exit": int(exit_status) if exit_status else None,
        "signal": int(signal) if signal else None,
    }


def cmd_record(a: argparse.Namespace) -> int:
    tv = parse_time_v(Path(a.time_file).read_text(errors="replace")) if Path(a.time_file).exists() else {}
    rec = {
        "run": a.run,
        "phase": a.phase,
        "tool": a.tool,
        "info_only": a.info_only,
        "exit": a.exit,
        "ok": a.exit == 0,
        "wall_s": a.wall,
        "bytes": a.bytes,
        "cmd": a.cmd,
        "log": a.log,
        **tv,
    }
    if a.json_out and Path(a.json_out).exists():
        raw = Path(a.json_out).read_text(errors="replace").strip()
        try:
            rec["tool_json"] = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            # --json output might be JSON lines (progress events + a final summary).
            lines = []
            for line in raw.splitlines():
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
            rec["tool_json"] = lines or {"unparsed": raw[:4000]}
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    rss = rec.get("max_rss_kb")
    status = "ok" if rec["ok"] else f"FAILED (exit {a.exit})"
    rss_s = f"{rss / 1024:8.1f} MB" if rss is not None else "       ? MB"
    size_s = f"{a.bytes / 1e6:9.1f} MB out" if a.bytes is not None else ""
    print(f"    {a.phase:<7} {a.tool:<34} {a.wall:9.2f} s  rss {rss_s}  {size_s}  {status}", flush=True)
    return 0


# --------------------------------------------------------------------------- checksum


def parse_checksums(text: str, full_names: bool = False) -> dict[str, str]:
    """`mariadb -N -B -e 'CHECKSUM TABLE ...'` -> {table: checksum}; the db prefix is dropped
    unless `full_names` (several databases with the same table names)."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            out[parts[0] if full_names else parts[0].split(".", 1)[-1]] = parts[1]
    return out


def cmd_checksum(a: argparse.Namespace) -> int:
    src = parse_checksums(Path(a.source).read_text(), a.full_names)
    tgt = parse_checksums(Path(a.target).read_text(), a.full_names) if Path(a.target).exists() else {}
    tables = sorted(set(src) | set(tgt))
    bad = [t for t in tables if src.get(t) != tgt.get(t) or src.get(t) in (None, "NULL")]
    verdict = "OK" if tables and not bad else "MISMATCH"
    print(f"    checksum {a.label}: {verdict} ({len(tables) - len(bad)}/{len(tables)} tables match)", flush=True)
    for t in bad[:20]:
        print(f"      {t}: source={src.get(t)} target={tgt.get(t)}", flush=True)
    with open(a.out, "a") as f:
        f.write(json.dumps({"label": a.label, "run": a.run, "verdict": verdict,
                            "tables": len(tables), "mismatched": bad,
                            "source": src, "target": tgt}) + "\n")
    return 0 if verdict == "OK" else 1


# --------------------------------------------------------------------------- report


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def load_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def per_run_ratios(recs: list[dict], num: str, den: str, phase: str) -> list[float]:
    """holdfast/peer ratio computed inside each run (same noise), for the spread."""
    by_run: dict[int, dict[str, float]] = {}
    for r in recs:
        if r["phase"] == phase and r["ok"]:
            by_run.setdefault(r["run"], {})[r["tool"]] = r["wall_s"]
    return [v[num] / v[den] for v in by_run.values() if num in v and den in v and v[den]]


def cmd_report(a: argparse.Namespace) -> int:
    work = Path(a.work)
    recs = load_jsonl(work / "measurements.jsonl")
    checks = load_jsonl(work / "checksums.jsonl")
    machine = json.loads((work / "machine.json").read_text()) if (work / "machine.json").exists() else {}
    config = json.loads((work / "config.json").read_text()) if (work / "config.json").exists() else {}

    # Aggregate per (phase, tool), keeping first-seen order.
    order: list[tuple[str, str]] = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        k = (r["phase"], r["tool"])
        if k not in groups:
            order.append(k)
            groups[k] = []
        groups[k].append(r)

    summary = {}
    for k in order:
        rs = groups[k]
        ok = [r for r in rs if r["ok"]]
        summary[k] = {
            "phase": k[0],
            "tool": k[1],
            "info_only": rs[0].get("info_only", False),
            "cmd": rs[0].get("cmd"),
            "runs": len(rs),
            "ok_runs": len(ok),
            "median_wall_s": median([r["wall_s"] for r in ok]),
            "min_wall_s": min((r["wall_s"] for r in ok), default=None),
            "max_wall_s": max((r["wall_s"] for r in ok), default=None),
            "median_rss_mb": median([r["max_rss_kb"] / 1024 for r in ok if r.get("max_rss_kb") is not None]),
            "median_user_s": median([r.get("user_s") for r in ok]),
            "median_sys_s": median([r.get("sys_s") for r in ok]),
            "median_bytes": median([r.get("bytes") for r in ok]),
        }

    hf = {"dump": summary.get(("dump", "holdfast backup")), "restore": summary.get(("restore", "holdfast restore"))}
    for s in summary.values():
        h = hf.get(s["phase"])
        s["holdfast_over_tool_wall"] = ratio(h["median_wall_s"], s["median_wall_s"]) if h else None
        s["holdfast_over_tool_rss"] = ratio(h["median_rss_mb"], s["median_rss_mb"]) if h else None

    # ---- the bars
    def best(phase: str, tools: list[str]) -> dict | None:
        cands = [summary[(phase, t)] for t in tools if (phase, t) in summary and summary[(phase, t)]["median_wall_s"]]
        return min(cands, key=lambda s: s["median_wall_s"]) if cands else None

    bars = []
    # Bar peers: every non-informational mydumper / myloader variant; the verdict is taken
    # against the fastest one ("strictest"), the others are printed for context.
    dump_peers = [t for (p, t) in order if p == "dump" and t.startswith("mydumper") and not summary[(p, t)]["info_only"]]
    load_peers = [t for (p, t) in order if p == "restore" and t.startswith("myloader") and not summary[(p, t)]["info_only"]]
    for phase, peers, limit, label in (
        ("dump", dump_peers, float(config.get("dump_bar", 1.0)), "holdfast dump / mydumper -t {t} (uncompressed)"),
        ("restore", load_peers, float(config.get("restore_bar", 0.5)), "holdfast restore / myloader -t {t}"),
    ):
        h = hf[phase]
        for peer in peers:
            p = summary[(phase, peer)]
            r = ratio(h["median_wall_s"], p["median_wall_s"]) if h else None
            rr = per_run_ratios(recs, "holdfast backup" if phase == "dump" else "holdfast restore", peer, phase)
            bars.append({
                "bar": label.format(t=config.get("threads", "?")), "peer": peer, "limit": limit,
                "ratio": r, "per_run_ratios": rr,
                "pass": None if r is None else r <= limit,
                "strictest": peer == (best(phase, peers) or {}).get("tool"),
            })
    rss_d = hf["dump"]["median_rss_mb"] if hf["dump"] else None
    rss_r = hf["restore"]["median_rss_mb"] if hf["restore"] else None
    rss_bar = {"bar": "peak RSS holdfast dump / restore", "dump_mb": rss_d, "restore_mb": rss_r, "limit_mb": 300,
               "pass": None if rss_d is None or rss_r is None else (rss_d < 300 and rss_r < 300)}

    # ---- print
    print()
    print("=" * 100)
    print(f"RESULTS  tables={config.get('tables')} rows/table={config.get('rows')} runs={config.get('runs')} "
          f"threads={config.get('threads')}   (medians over successful runs)")
    print("=" * 100)
    hdr = f"{'phase':<8}{'tool':<36}{'ok':>5}{'wall s':>9}{'min-max':>15}{'RSS MB':>9}{'cpu s':>8}{'out MB':>9}{'hf/tool':>9}"
    print(hdr)
    print("-" * len(hdr))
    for k in order:
        s = summary[k]
        spread = (f"{s['min_wall_s']:.1f}-{s['max_wall_s']:.1f}" if s["min_wall_s"] is not None else "n/a")
        cpu = (s["median_user_s"] or 0) + (s["median_sys_s"] or 0) if s["median_user_s"] is not None else None
        out_mb = s["median_bytes"] / 1e6 if s["median_bytes"] is not None else None
        name = s["tool"] + (" *" if s["info_only"] else "")
        print(f"{s['phase']:<8}{name:<36}{s['ok_runs']:>2}/{s['runs']:<2}{fmt(s['median_wall_s']):>9}{spread:>15}"
              f"{fmt(s['median_rss_mb'], '.1f'):>9}{fmt(cpu, '.1f'):>8}{fmt(out_mb, '.1f'):>9}"
              f"{fmt(s['holdfast_over_tool_wall']):>9}")
    print("-" * len(hdr))
    print("hf/tool = holdfast median wall / tool median wall in the same phase (< 1: holdfast faster).")
    print("RSS and cpu s are the client process only (for a shell pipeline: its largest process).")
    print("* = informational only, not part of a bar.")
    print()
    print("BARS")
    if hf["dump"] is None or hf["restore"] is None:
        print("  HOLDFAST BINARY MISSING (or its steps failed): holdfast bars cannot be computed.")
    for label in dict.fromkeys(b["bar"] for b in bars):
        group = [b for b in bars if b["bar"] == label]
        main = next((b for b in group if b["strictest"]), group[0])
        verdict = "n/a" if main["pass"] is None else ("PASS" if main["pass"] else "FAIL")
        rr = ", ".join(f"{x:.2f}" for x in main["per_run_ratios"]) or "-"
        print(f"  {label} = {fmt(main['ratio'])} (bar <= {main['limit']})  [{verdict}]")
        print(f"      peer: {main['peer']} (fastest variant); per-run ratios: {rr}")
        for b in group:
            if b is not main:
                print(f"      vs {b['peer']}: {fmt(b['ratio'])}")
    verdict = "n/a" if rss_bar["pass"] is None else ("PASS" if rss_bar["pass"] else "FAIL")
    print(f"  peak RSS holdfast dump / restore = {fmt(rss_d, '.0f')} / {fmt(rss_r, '.0f')} MB (bar < 300)  [{verdict}]")
    if checks:
        print()
        print("CHECKSUMS (CHECKSUM TABLE, target vs source)")
        for c in checks:
            print(f"  {c['label']} (run {c['run']}): {c['verdict']} ({c['tables'] - len(c['mismatched'])}/{c['tables']})")

    result = {
        "machine": machine,
        "config": config,
        "summary": list(summary.values()),
        "bars": bars,
        "rss_bar": rss_bar,
        "checksums": checks,
        "measurements": recs,
    }
    (work / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"JSON: {work / 'results.json'}")
    return 0


# --------------------------------------------------------------------------- machine


def _run(cmd: list[str]) -> str:
    import subprocess
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else ""
    except Exception as e:  # noqa: BLE001 - informational only
        return f"unavailable ({e.__class__.__name__})"


def cmd_machine(a: argparse.Namespace) -> int:
    import os
    import platform

    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import shutil as _sh
    disk = _sh.disk_usage(a.work)
    m = {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "mem_total_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
        "work_dir": a.work,
        "work_free_gb": round(disk.free / 1e9, 1),
        "versions": {
            "mariadbd": _run(["mariadbd", "--version"]),
            "mariadb-dump": _run(["mariadb-dump", "--version"]),
            "mydumper": _run(["mydumper", "--version"]),
            "myloader": _run(["myloader", "--version"]),
            "sysbench": _run(["sysbench", "--version"]),
            "zstd": _run(["zstd", "--version"]),
            "python": platform.python_version(),
            "holdfast": _run([a.holdfast, "--version"]) if a.holdfast else "MISSING",
        },
        "holdfast_binary": a.holdfast or None,
        "holdfast_binary_mtime": (
            __import__("datetime").datetime.fromtimestamp(Path(a.holdfast).stat().st_mtime).isoformat(timespec="seconds")
            if a.holdfast and Path(a.holdfast).exists() else None
        ),
        "git_head": a.git_head or None,
    }
    Path(a.out).write_text(json.dumps(m, indent=2) + "\n")
    print(f"machine : {m['hostname']}  nproc={m['nproc']} (affinity {m['sched_affinity']})  "
          f"mem={m['mem_total_gb']} GB  cpu={m['cpu']}  kernel={m['kernel']}")
    print(f"load    : {' '.join(f'{x:.2f}' for x in m['loadavg'])}   work={a.work} ({m['work_free_gb']} GB free)")
    for k, v in m["versions"].items():
        print(f"  {k:<13}: {v}")
    if m["holdfast_binary_mtime"]:
        print(f"  holdfast bin: {a.holdfast} (built {m['holdfast_binary_mtime']}, git HEAD {m['git_head'] or '?'})")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--run", type=int, required=True)
    r.add_argument("--phase", required=True)
    r.add_argument("--tool", required=True)
    r.add_argument("--info-only", action="store_true")
    r.add_argument("--time-file", required=True)
    r.add_argument("--wall", type=float, required=True)
    r.add_argument("--exit", type=int, required=True)
    r.add_argument("--bytes", type=int)
    r.add_argument("--cmd", default="")
    r.add_argument("--log", default="")
    r.add_argument("--json-out")
    r.set_defaults(fn=cmd_record)

    c = sub.add_parser("checksum")
    c.add_argument("--out", required=True)
    c.add_argument("--label", required=True)
    c.add_argument("--run", type=int, required=True)
    c.add_argument("--source", required=True)
    c.add_argument("--target", required=True)
    c.add_argument("--full-names", action="store_true", help="keep db.table names (several databases)")
    c.set_defaults(fn=cmd_checksum)

    m = sub.add_parser("machine")
    m.add_argument("--out", required=True)
    m.add_argument("--work", required=True)
    m.add_argument("--holdfast", default="")
    m.add_argument("--git-head", default="")
    m.set_defaults(fn=cmd_machine)

    rep = sub.add_parser("report")
    rep.add_argument("--work", required=True)
    rep.set_defaults(fn=cmd_report)

    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
