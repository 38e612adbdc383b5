#!/usr/bin/env python3
"""Sustained load on the binlog stream, with a source restart and a stream kill in the middle.

One throwaway MariaDB under the fastest sysbench write load the machine gives
(`oltp_write_only`, THREADS threads, DURATION seconds), `holdfast binlog stream` archiving it.
At 40% of the run the source is restarted (clean shutdown and start, the load keeps going once
the server is back); at 70% the stream is killed with SIGKILL and started again at once.
Every SAMPLE seconds it records the server's binlog position, the archive's (the newest committed
index entry) and the stream's RSS. At the end, with the load stopped and the archive caught up:

- lag p50/p99/max: for each server position sampled, the seconds until the archive held it
  (outside the restart and kill windows, and separately for all samples);
- RSS of the stream over time (per minute: median and max), to show memory stays flat;
- exactly once: the archived bytes of every binlog file equal the server's file, and the GTIDs
  `mariadb-binlog` reads from the archive are the server's, each once.

Usage: bench/sustained.sh            (builds holdfast release, then runs this)
       bench/sustained.sh --check-only   (only the exactly-once check of WORK as left by a run)
Environment: HOLDFAST, WORK [/tmp/holdfast-bench-sustained], DURATION [600] s, THREADS [4],
ROWS [20000], TABLES [4], PORT [33091], SAMPLE [0.5].
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
WORK = os.path.abspath(os.environ.get("WORK", "/tmp/holdfast-bench-sustained"))
DURATION = int(os.environ.get("DURATION", "600"))
THREADS = int(os.environ.get("THREADS", "4"))
ROWS = int(os.environ.get("ROWS", "20000"))
TABLES = int(os.environ.get("TABLES", "4"))
PORT = int(os.environ.get("PORT", "33091"))
SAMPLE = float(os.environ.get("SAMPLE", "0.5"))
DATA = os.path.join(WORK, "data")
REPO = os.path.join(WORK, "repo")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sql(query, check=True):
    out = subprocess.run(
        ["mariadb", "--no-defaults", "-N", "-B", "-h127.0.0.1", f"-P{PORT}", "-uroot", "-e", query],
        check=check, capture_output=True, text=True)
    return out.stdout.strip()


def start_server():
    server = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={DATA}", f"--port={PORT}", "--bind-address=127.0.0.1",
         f"--socket={WORK}/mysqld.sock", f"--user={getpass.getuser()}", "--log-bin=mysql-bin",
         "--binlog-format=ROW", "--server-id=1", "--innodb-buffer-pool-size=512M",
         "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--max-connections=200",
         f"--log-error={WORK}/error.log"])
    for _ in range(600):
        try:
            sql("SELECT 1")
            return server
        except subprocess.CalledProcessError:
            if server.poll() is not None:
                raise SystemExit(f"the server exited; see {WORK}/error.log")
            time.sleep(0.1)
    raise SystemExit(f"the server did not start; see {WORK}/error.log")


def stop_server(server):
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=120)


def sysbench(*args):
    return ["sysbench", "oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={PORT}", "--mysql-user=root", "--mysql-db=sbtest", f"--tables={TABLES}",
            f"--table-size={ROWS}", *args]


def start_stream():
    return subprocess.Popen([HOLDFAST, "binlog", "stream", "--repo", REPO, "--source",
                             f"mysql://root@127.0.0.1:{PORT}/", "--max-retry-wait", "2s"],
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(WORK, "stream.log"), "a"))


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def server_pos():
    try:
        row = sql("SHOW MASTER STATUS").split("\t")
        return (row[0], int(row[1]))
    except (subprocess.CalledProcessError, IndexError, ValueError):
        return None


def archive_pos():
    """The end of the newest committed segment (its index entry is the commit point)."""
    try:
        names = os.listdir(os.path.join(REPO, "binlog/index"))
    except OSError:
        return None
    best = None
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(REPO, "binlog/index", name)) as f:
                s = json.load(f)
        except (OSError, ValueError):
            continue
        pos = (s["source"]["file"], s["end_pos"])
        if best is None or pos > best:
            best = pos
    return best


def lags(server_samples, archive_samples):
    out = []
    j = 0
    for t, pos in server_samples:
        while j < len(archive_samples) and (archive_samples[j][1] is None or archive_samples[j][1] < pos):
            j += 1
        if j == len(archive_samples):
            break
        out.append((t, max(0.0, archive_samples[j][0] - t)))
    return out


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


GTID_EVENT = 162  # MariaDB's GTID_EVENT


def gtids(path):
    """The GTIDs of a MariaDB binlog file (`domain-server-seq`), read event by event from the
    file itself (memory stays flat however big the file)."""
    import mmap
    import struct
    found = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= 4:
            return found
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos = 4
            while pos + 19 <= size:
                kind = m[pos + 4]
                server_id, length = struct.unpack_from("<II", m, pos + 5)
                if length < 19 or pos + length > size:
                    break
                if kind == GTID_EVENT:
                    seq, domain = struct.unpack_from("<QI", m, pos + 19)
                    found.append(f"{domain}-{server_id}-{seq}")
                pos += length
    return found


def file_digest(path):
    """SHA-256 of a server binlog file with the active file's "in use" flag cleared."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        head = bytearray(f.read(4 + 19))
        if len(head) > 21:
            head[4 + 17] &= 0xFE
        h.update(head)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def exactly_once():
    """The archive against the server's binlog files: each archived file (its segments
    decompressed and concatenated, streamed to disk) has the server file's bytes, and the
    GTIDs in the archive are the server's, each once."""
    import hashlib
    listing = json.loads(subprocess.run([HOLDFAST, "binlog", "list", "--repo", REPO, "--json"],
                                        check=True, capture_output=True, text=True).stdout)
    scratch = os.path.join(WORK, "archived")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    names = []
    for s in listing["segments"]:
        name = s["file"]
        if name not in names:
            names.append(name)
        with open(os.path.join(scratch, name), "ab") as out:
            subprocess.run(["zstd", "-dc", os.path.join(REPO, s["object"])], check=True, stdout=out)
    archived_count, server_count, differing = 0, 0, []
    seen = set()
    dupes = 0
    same_order = True
    for name in names:
        copy = os.path.join(scratch, name)
        if file_digest(copy) != file_digest(os.path.join(DATA, name)):
            differing.append(name)
        a = gtids(copy)
        srv = gtids(os.path.join(DATA, name))
        same_order = same_order and a == srv
        archived_count += len(a)
        server_count += len(srv)
        for g in a:
            if g in seen:
                dupes += 1
            seen.add(g)
        os.remove(copy)
    server_files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(DATA, "mysql-bin.[0-9]*")))
    missing = [f for f in server_files if names and f >= min(names) and f not in names]
    return {
        "segments": len(listing["segments"]),
        "files": len(names),
        "files_differing": differing,
        "files_missing": missing,
        "gtids_server": server_count,
        "gtids_archived": archived_count,
        "gtids_duplicated": dupes,
        "same_gtids_same_order": same_order,
    }


def check_only():
    """`--check-only`: the exactly-once check on WORK as a previous run left it."""
    once = exactly_once()
    print(json.dumps(once, indent=2))
    ok = (not once["files_differing"] and not once["files_missing"] and once["gtids_duplicated"] == 0
          and once["same_gtids_same_order"])
    print("EVERY GTID ARCHIVED EXACTLY ONCE" if ok else "ARCHIVE DIFFERS FROM THE SERVER")
    sys.exit(0 if ok else 1)


def main():
    if "--check-only" in sys.argv:
        return check_only()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    subprocess.run(["mariadb-install-db", "--no-defaults", "--auth-root-authentication-method=normal",
                    f"--user={getpass.getuser()}", f"--datadir={DATA}"], check=True, capture_output=True)
    server = start_server()
    stream = None
    load = None
    try:
        sql("CREATE DATABASE sbtest")
        subprocess.run(sysbench("--threads=2", "prepare"), check=True, capture_output=True)
        subprocess.run([HOLDFAST, "init", "--repo", REPO], check=True, capture_output=True)
        stream = start_stream()
        time.sleep(2)
        t0 = time.time()
        end = t0 + DURATION
        restart_at, kill_at = t0 + 0.4 * DURATION, t0 + 0.7 * DURATION
        restarted = killed = False
        windows = []  # (start, end) of the disturbances, excluded from the "steady" lag
        samples = {"server": [], "archive": [], "rss": []}
        loads = 0
        log(f"load: sysbench oltp_write_only, {THREADS} threads, {DURATION}s; restart at 40%, kill at 70%")
        while time.time() < end:
            if load is None or load.poll() is not None:
                left = int(end - time.time())
                if left >= 2:
                    load = subprocess.Popen(sysbench(f"--threads={THREADS}", f"--time={left}",
                                                     "--report-interval=0", "--mysql-ignore-errors=all", "run"),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    loads += 1
            now = time.time()
            if not restarted and now >= restart_at:
                restarted = True
                log("restarting the source")
                w0 = time.time()
                stop_server(server)
                server = start_server()
                windows.append((w0, time.time() + 10))
                log(f"source back after {time.time() - w0:.1f}s")
            if not killed and now >= kill_at:
                killed = True
                log("killing the stream (SIGKILL) and starting it again")
                w0 = time.time()
                stream.kill()
                stream.wait()
                stream = start_stream()
                windows.append((w0, time.time() + 10))
            sp = server_pos()
            if sp is not None:
                samples["server"].append((time.time(), sp))
            samples["archive"].append((time.time(), archive_pos()))
            samples["rss"].append((time.time() - t0, rss_mb(stream.pid)))
            time.sleep(SAMPLE)
        if load is not None and load.poll() is None:
            load.send_signal(signal.SIGTERM)
            load.wait(timeout=30)
        # Catch up: the archive reaches the server's final position.
        final = server_pos()
        deadline = time.time() + 120
        while archive_pos() is None or archive_pos() < final:
            if time.time() > deadline:
                log(f"the archive did not catch up: {archive_pos()} < {final}")
                break
            samples["archive"].append((time.time(), archive_pos()))
            time.sleep(SAMPLE)
        stream.send_signal(signal.SIGTERM)
        stream.wait(timeout=60)
        stream = None

        all_lags = lags(samples["server"], samples["archive"])
        steady = [l for t, l in all_lags if not any(a <= t <= b for a, b in windows)]
        disturbed = [l for t, l in all_lags if any(a <= t <= b for a, b in windows)]
        values = [l for _, l in all_lags]
        per_minute = {}
        for t, r in samples["rss"]:
            if r is not None:
                per_minute.setdefault(int(t // 60), []).append(r)
        binlog_mb = sum(os.path.getsize(p) for p in glob.glob(os.path.join(DATA, "mysql-bin.[0-9]*"))) / 1e6
        result = {
            "duration_s": DURATION, "threads": THREADS, "sysbench_launches": loads,
            "binlog_mb": round(binlog_mb, 1),
            "lag_steady": {"p50_s": round(pct(steady, 50), 3), "p99_s": round(pct(steady, 99), 3),
                           "max_s": round(max(steady, default=float("nan")), 3), "samples": len(steady)},
            "lag_all": {"p50_s": round(pct(values, 50), 3), "p99_s": round(pct(values, 99), 3),
                        "max_s": round(max(values, default=float("nan")), 3), "samples": len(values)},
            "lag_in_disturbance_windows": {"max_s": round(max(disturbed, default=float("nan")), 3),
                                           "samples": len(disturbed)},
            "rss_mb_per_minute": {m: {"median": round(statistics.median(v), 1), "max": round(max(v), 1)}
                                  for m, v in sorted(per_minute.items())},
        }
        print(json.dumps(result, indent=2), flush=True)
        print(f"lag (steady) p50 {result['lag_steady']['p50_s']}s p99 {result['lag_steady']['p99_s']}s; "
              f"(all samples) p50 {result['lag_all']['p50_s']}s p99 {result['lag_all']['p99_s']}s "
              f"max {result['lag_all']['max_s']}s", flush=True)
        log("checking the archive against the server's binlog")
        once = exactly_once()
        print(json.dumps({"exactly_once": once}, indent=2))
        ok = (not once["files_differing"] and not once["files_missing"] and once["gtids_duplicated"] == 0
              and once["same_gtids_same_order"])
        print()
        print(f"sustained load: {DURATION}s, sysbench oltp_write_only {THREADS} threads, {binlog_mb:.0f} MB of binlog")
        print(f"lag (steady) p50 {result['lag_steady']['p50_s']}s p99 {result['lag_steady']['p99_s']}s; "
              f"(all samples) p50 {result['lag_all']['p50_s']}s p99 {result['lag_all']['p99_s']}s max {result['lag_all']['max_s']}s")
        print("RSS MB per minute (median/max): " + ", ".join(
            f"{m}:{v['median']}/{v['max']}" for m, v in result["rss_mb_per_minute"].items()))
        print(f"GTIDs: server {once['gtids_server']}, archived {once['gtids_archived']}, duplicated "
              f"{once['gtids_duplicated']}, same order {once['same_gtids_same_order']}; files differing "
              f"{once['files_differing']}, missing {once['files_missing']}")
        print("EVERY GTID ARCHIVED EXACTLY ONCE" if ok else "ARCHIVE DIFFERS FROM THE SERVER")
        sys.exit(0 if ok else 1)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        if stream is not None and stream.poll() is None:
            stream.kill()
        stop_server(server)


if __name__ == "__main__":
    main()
