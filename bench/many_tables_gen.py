#!/usr/bin/env python3
"""SQL for the many-small-tables benchmark (issue 20), on stdout.

    bench/many_tables_gen.py --tables 10000 --per-db 100 | mariadb -u root

Shape (deterministic, seeded): TABLES tables spread over ceil(TABLES / PER_DB) databases
`mt00000..`, tables `t0000..` in each. Table i (0-based, counted across all databases):
- i % 10 == 0: empty;
- i % 10 == 5: partitioned (`PARTITION BY HASH (id) PARTITIONS 4`);
- otherwise 1-40 rows (uniform), with an integer primary key, a secondary index, a VARCHAR,
  a DECIMAL, a DATETIME, a nullable TEXT.
Every database also gets one view per 25 tables (joining two of its tables) and one trigger per
50 tables (BEFORE INSERT), so views and triggers are spread across the data.
"""
import argparse
import random
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", type=int, default=10000)
    p.add_argument("--per-db", type=int, default=100)
    p.add_argument("--prefix", default="mt")
    p.add_argument("--seed", type=int, default=20)
    a = p.parse_args()
    if a.tables <= 0 or a.per_db <= 0:
        print("many_tables_gen.py: --tables and --per-db must be > 0", file=sys.stderr)
        return 2
    rnd = random.Random(a.seed)
    out = sys.stdout
    w = out.write
    w("SET SESSION sql_log_bin = 0;\nSET NAMES utf8mb4;\n")
    dbs = (a.tables + a.per_db - 1) // a.per_db
    i = 0
    for d in range(dbs):
        db = f"{a.prefix}{d:05d}"
        w(f"DROP DATABASE IF EXISTS `{db}`;\nCREATE DATABASE `{db}`;\nUSE `{db}`;\n")
        n = min(a.per_db, a.tables - d * a.per_db)
        for t in range(n):
            name = f"t{t:04d}"
            part = " PARTITION BY HASH (id) PARTITIONS 4" if i % 10 == 5 else ""
            w(
                f"CREATE TABLE `{name}` (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                f"name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL DEFAULT 0, "
                f"created DATETIME NOT NULL, note TEXT NULL, KEY k_name (name)) "
                f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4{part};\n"
            )
            rows = 0 if i % 10 == 0 else rnd.randint(1, 40)
            if rows:
                vals = []
                for r in range(rows):
                    note = "NULL" if rnd.random() < 0.3 else f"'note {i} {r} \\t tab ''q'''"
                    vals.append(
                        f"({r + 1},'name-{rnd.randrange(10**6):06d}',{rnd.randrange(10**7) / 100:.2f},"
                        f"'2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} {rnd.randint(0, 23):02d}:00:00',{note})"
                    )
                w(f"INSERT INTO `{name}` VALUES {','.join(vals)};\n")
            i += 1
        for v in range(n // 25):
            a1, a2 = f"t{v * 25 + 1:04d}", f"t{v * 25 + 2:04d}"
            w(
                f"CREATE VIEW `v{v:03d}` AS SELECT x.id, x.name, y.amount FROM `{a1}` x "
                f"JOIN `{a2}` y ON x.id = y.id;\n"
            )
        for g in range(n // 50):
            tn = f"t{g * 50 + 3:04d}"
            w(
                f"CREATE TRIGGER `trg{g:03d}` BEFORE INSERT ON `{tn}` FOR EACH ROW "
                f"SET NEW.note = COALESCE(NEW.note, 'trigger');\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
