#!/usr/bin/env python3
"""Extends a real binlog archive with generated history, for bench/archive_scale.sh.

Usage: archive_gen.py SRC DST N [INTERVAL]
       archive_gen.py --clone-backups SRC DST N
Copies repository SRC (a local-disk repository that `binlog stream` wrote, uncompacted) to DST
and appends N segments of INTERVAL [0.5] seconds each after its last segment, in the same binlog
file instance: numbers, positions (start = previous end, end = start + raw size), event times,
GTIDs (each segment's transactions numbered on from the previous segment's) and the GTID state
all consistent, so `binlog list`, `info`, restore planning and `binlog compact` accept them. The
events themselves are a copy of one real closed segment of SRC (the median by size) (its data object is hard-linked,
so the index entry's size and SHA-256 hold); their bytes are not re-sequenced, so the generated
history can be listed, planned and compacted but not replayed. Times continue from SRC's last
segment (they lie in the future of the run).

--clone-backups: writes DST/backups/ with N copies of SRC's newest backup, ids (and start and
finish times) an hour apart going back from it; each copy's manifest is the original with the
id and times rewritten (a manifest holds no hash over itself); its files are hard links.
"""
import copy
import json
import os
import re
import shutil
import sys



def clone_backups(src, dst, n):
    import datetime
    ids = sorted(os.listdir(os.path.join(src, "backups")))
    orig = ids[-1]
    with open(os.path.join(src, "backups", orig, "manifest")) as f:
        text = f.read()
    m = json.loads(text)
    fmt = "%Y-%m-%dT%H:%M:%S"

    def parse(v):
        return datetime.datetime.strptime(v[:19], fmt).replace(tzinfo=datetime.timezone.utc)
    started, finished = parse(m["started"]), parse(m["finished"])
    shutil.rmtree(dst, ignore_errors=True)
    for i in range(n):
        shift = datetime.timedelta(hours=i)
        st = started - shift
        new_id = st.strftime("%Y%m%dT%H%M%SZ-") + orig.rsplit("-", 1)[1]
        c = json.loads(text.replace(orig, new_id))
        c["started"] = st.strftime(fmt) + "Z"
        c["finished"] = (finished - shift).strftime(fmt) + "Z"
        for root, _dirs, files in os.walk(os.path.join(src, "backups", orig)):
            rel = os.path.relpath(root, os.path.join(src, "backups", orig))
            out = os.path.normpath(os.path.join(dst, "backups", new_id, rel))
            os.makedirs(out, exist_ok=True)
            for name in files:
                if name != "manifest":
                    os.link(os.path.join(root, name), os.path.join(out, name))
        with open(os.path.join(dst, "backups", new_id, "manifest"), "w") as f:
            json.dump(c, f, indent=2)
    print(f"{n} backups cloned from {orig}")


if sys.argv[1] == "--clone-backups":
    clone_backups(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    sys.exit(0)
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst)
index_dir = os.path.join(dst, "binlog", "index")
entries = []
for name in sorted(os.listdir(index_dir)):
    with open(os.path.join(index_dir, name)) as f:
        entries.append(json.load(f))
if any(e.get("merged_to") for e in entries):
    sys.exit("archive_gen.py: SRC is compacted; give it an uncompacted archive")
last = entries[-1]
if last.get("ends_file") or last.get("open_transaction"):
    sys.exit("archive_gen.py: SRC's last segment ends its file or a transaction is open")
templates = [e for e in entries if not e["header"] and "piece_start" not in e and not e["ends_file"]
             and not e["open_transaction"] and e.get("first_gtid") and e.get("last_gtid")
             and e["transactions"] > 0]
if not templates:
    sys.exit("archive_gen.py: SRC has no closed segment with GTIDs to copy")
tpl = sorted(templates, key=lambda e: e["raw_size"])[len(templates) // 2]  # the median
tpl_data = os.path.join(dst, tpl["object"]["path"])
GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
d, s, _ = GTID.match(last["last_gtid"]).groups()
seq_no = int(GTID.match(last["last_gtid"]).group(3))
txns = tpl["transactions"]
state_parts = [p for p in last["gtid_state"].split(",") if p and not p.startswith(f"{d}-")]
pos, seq, t = last["end_pos"], last["seq"], float(last["last_event_time"])
instance = os.path.dirname(last["object"]["path"])
os.makedirs(os.path.join(dst, instance), exist_ok=True)
for i in range(n):
    seq += 1
    e = copy.deepcopy(tpl)
    e["seq"] = seq
    e["source"] = last["source"]
    e["start_pos"] = pos
    e["end_pos"] = pos = pos + tpl["raw_size"]
    t += interval
    e["first_event_time"] = int(t - interval / 2)
    e["last_event_time"] = int(t)
    e["first_gtid"] = f"{d}-{s}-{seq_no + 1}"
    seq_no += txns
    e["last_gtid"] = f"{d}-{s}-{seq_no}"
    e["gtid_state"] = ",".join(sorted(state_parts + [f"{d}-{s}-{seq_no}"]))
    e["object"] = dict(tpl["object"], path=f"{instance}/{e['start_pos']:012}.{seq:08}.zst")
    e["archived"] = last["archived"]
    try:
        os.link(tpl_data, os.path.join(dst, e["object"]["path"]))
    except OSError as err:  # EMLINK: the file system's link limit; start from a fresh copy
        if err.errno != 31:
            raise
        shutil.copyfile(tpl_data, os.path.join(dst, e["object"]["path"]))
        tpl_data = os.path.join(dst, e["object"]["path"])
    with open(os.path.join(index_dir, f"{seq:012}.json"), "w") as f:
        json.dump(e, f, indent=2)
print(f"{n} segments {last['seq'] + 1}..{seq}, times to {int(t)}")
