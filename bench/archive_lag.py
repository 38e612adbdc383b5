#!/usr/bin/env python3
"""Binlog archiving benchmark: how far behind the server the archive is, and CPU per MB.

Runs `holdfast binlog stream` and its peer `mariadb-binlog --read-from-remote-server --raw
--stop-never` side by side against one throwaway MariaDB under a sysbench write load. Every
SAMPLE seconds it records the server's binlog position (SHOW MASTER STATUS) and each tool's
position: holdfast's newest committed segment (binlog/index/*.json, i.e. what a restore can use)
and the size of mariadb-binlog's local copy. A server position's lag is the time until the tool
had reached it. Prints p50/p99 lag per tool and CPU seconds per MB of binlog, and the ratios.

Usage: bench/archive.sh [--quick]   (the wrapper builds holdfast and sets the variables below)
Environment: HOLDFAST (binary), WORK [/tmp/holdfast-bench-archive], DURATION [60] seconds of load,
THREADS [2] sysbench threads, ROWS [50000] TABLES [2], PORT [33081], SAMPLE [0.1], RUNS [3].
"""

import getpass
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HOLDFAST = os.environ.get("HOLDFAST", "target/release/holdfast")
WORK = os.path.abspath(os.environ.get("WORK", "/tmp/holdfast-bench-archive"))
DURATION = int(os.environ.get("DURATION", "60"))
THREADS = int(os.environ.get("THREADS", "2"))
ROWS = int(os.environ.get("ROWS", "50000"))
TABLES = int(os.environ.get("TABLES", "2"))
PORT = int(os.environ.get("PORT", "33081"))
SAMPLE = float(os.environ.get("SAMPLE", "0.1"))
RUNS = int(os.environ.get("RUNS", "3"))
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sql(query):
    out = subprocess.run(
        ["mariadb", "--no-defaults", "-N", "-B", "-h127.0.0.1", f"-P{PORT}", "-uroot", "-e", query],
        check=True, capture_output=True, text=True)
    return out.stdout.strip()


def start_server():
    data = os.path.join(WORK, "data")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    subprocess.run(["mariadb-install-db", "--no-defaults", "--auth-root-authentication-method=normal",
                    f"--user={getpass.getuser()}",
                    f"--datadir={data}"], check=True, capture_output=True)
    server = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={data}", f"--port={PORT}", "--bind-address=127.0.0.1",
         f"--socket={WORK}/mysqld.sock", f"--user={getpass.getuser()}", "--log-bin=mysql-bin", "--binlog-format=ROW",
         "--server-id=1", "--innodb-buffer-pool-size=512M", "--innodb-flush-log-at-trx-commit=2",
         "--sync-binlog=0", f"--log-error={WORK}/error.log"])
    for _ in range(300):
        try:
            sql("SELECT 1")
            return server
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not start; see {WORK}/error.log")


def sysbench(*args):
    return ["sysbench", "oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={PORT}", "--mysql-user=root", "--mysql-db=sbtest", f"--tables={TABLES}",
            f"--table-size={ROWS}", *args]


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return None


def server_pos():
    row = sql("SHOW MASTER STATUS").split("\t")
    return (row[0], int(row[1]))


def holdfast_pos(repo):
    indexes = sorted(glob.glob(os.path.join(repo, "binlog/index/*.json")))
    if not indexes:
        return None
    with open(indexes[-1]) as f:
        s = json.load(f)
    return (s["source"]["file"], s["end_pos"])


def peer_pos(peer_dir):
    files = sorted(glob.glob(os.path.join(peer_dir, "mysql-bin.*")))
    if not files:
        return None
    return (os.path.basename(files[-1]), os.path.getsize(files[-1]))


def lags(server_samples, tool_samples):
    """For each server sample (t, pos): seconds until the tool had reached pos."""
    out = []
    j = 0
    for t, pos in server_samples:
        while j < len(tool_samples) and (tool_samples[j][1] is None or tool_samples[j][1] < pos):
            j += 1
        if j == len(tool_samples):
            break
        out.append(max(0.0, tool_samples[j][0] - t))
    return out


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def one_run(run):
    server = start_server()
    try:
        sql("CREATE DATABASE sbtest")
        subprocess.run(sysbench("--threads=2", "prepare"), check=True, capture_output=True)
        sql("FLUSH BINARY LOGS")
        first_file, first_pos = server_pos()
        repo = os.path.join(WORK, "repo")
        subprocess.run([HOLDFAST, "init", "--repo", repo], check=True, capture_output=True)
        peer_dir = os.path.join(WORK, "peer")
        os.makedirs(peer_dir)
        # Both tools start at the same file: holdfast would otherwise archive from the first.
        hf = subprocess.Popen([HOLDFAST, "binlog", "stream", "--repo", repo, "--source",
                               f"mysql://root@127.0.0.1:{PORT}/"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "holdfast.log"), "w"))
        peer = subprocess.Popen(["mariadb-binlog", "--no-defaults", "--read-from-remote-server", "--raw",
                                 "--stop-never", "-h127.0.0.1", f"-P{PORT}", "-uroot",
                                 f"--result-file={peer_dir}/", "mysql-bin.000001"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "peer.log"), "w"))
        time.sleep(2)
        cpu0 = {"holdfast": cpu_seconds(hf.pid), "mariadb-binlog": cpu_seconds(peer.pid)}
        start_server_pos = server_pos()
        load = subprocess.Popen(sysbench(f"--threads={THREADS}", f"--time={DURATION}", "--report-interval=0",
                                         "run"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = {"server": [], "holdfast": [], "mariadb-binlog": []}
        key = lambda p: None if p is None else (p[0], p[1])
        deadline = None
        while True:
            now = time.time()
            samples["server"].append((now, key(server_pos())))
            samples["holdfast"].append((time.time(), key(holdfast_pos(repo))))
            samples["mariadb-binlog"].append((time.time(), key(peer_pos(peer_dir))))
            if load.poll() is not None and deadline is None:
                deadline = time.time() + 5
            if deadline is not None and time.time() > deadline:
                break
            time.sleep(SAMPLE)
        end_file, end_pos = server_pos()
        cpu1 = {"holdfast": cpu_seconds(hf.pid), "mariadb-binlog": cpu_seconds(peer.pid)}
        for p in (hf, peer):
            p.send_signal(signal.SIGTERM)
        for p in (hf, peer):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        binlog_bytes = sum(os.path.getsize(f) for f in glob.glob(os.path.join(peer_dir, "mysql-bin.*")))
        # Bytes written during the load only (the files before it were archived at start-up).
        load_bytes = max(1, end_pos - start_server_pos[1]) if end_file == start_server_pos[0] else binlog_bytes
        server_samples = [(t, p) for t, p in samples["server"] if p is not None]
        result = {"run": run, "binlog_mb": round(load_bytes / 1e6, 1)}
        for tool in ("holdfast", "mariadb-binlog"):
            lag = lags(server_samples, samples[tool])
            cpu = (cpu1[tool] or 0) - (cpu0[tool] or 0)
            result[tool] = {"lag_p50_s": round(pct(lag, 50), 3), "lag_p99_s": round(pct(lag, 99), 3),
                            "cpu_s_per_mb": round(cpu / (load_bytes / 1e6), 4), "samples": len(lag)}
        log(json.dumps(result))
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def main():
    if "--quick" in sys.argv:
        global DURATION, RUNS
        DURATION, RUNS = 15, 1
    results = [one_run(r) for r in range(1, RUNS + 1)]
    print()
    print(f"archive lag under sysbench oltp_write_only ({THREADS} threads, {DURATION}s, {RUNS} runs; medians of runs)")
    print(f"{'tool':<16} {'lag p50 s':>10} {'lag p99 s':>10} {'CPU s/MB':>10}")
    med = {}
    for tool in ("holdfast", "mariadb-binlog"):
        med[tool] = {k: statistics.median(r[tool][k] for r in results) for k in ("lag_p50_s", "lag_p99_s", "cpu_s_per_mb")}
        print(f"{tool:<16} {med[tool]['lag_p50_s']:>10.3f} {med[tool]['lag_p99_s']:>10.3f} {med[tool]['cpu_s_per_mb']:>10.4f}")
    peer = med["mariadb-binlog"]["cpu_s_per_mb"]
    if peer > 0:
        print(f"CPU ratio holdfast / mariadb-binlog: {med['holdfast']['cpu_s_per_mb'] / peer:.2f}")
    print("binlog MB per run: " + ", ".join(str(r["binlog_mb"]) for r in results))


if __name__ == "__main__":
    main()
