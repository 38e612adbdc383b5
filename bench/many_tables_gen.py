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

    bench/many_tables_gen.py --tables 10000 --per-db 100 --writes keep | mariadb -u root

`--writes keep` is a point-in-time workload over the generated data, written to the binlog:
ROUNDS rounds of one transaction per database (inserts, one through a trigger; updates; deletes),
and DDL spread across the databases (a new table in every 10th, a dropped table in every 20th, an
added column in every 25th, a renamed table in every 50th, a new database per 100). `--writes
accident` is what a recovery undoes: every 7th database dropped and one table emptied in each of
the others. Both assume per-db >= 10.
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
    p.add_argument("--writes", choices=["keep", "accident"], help="binlogged writes instead of the data")
    p.add_argument("--rounds", type=int, default=3, help="--writes keep: transactions per database")
    a = p.parse_args()
    if a.tables <= 0 or a.per_db <= 0:
        print("many_tables_gen.py: --tables and --per-db must be > 0", file=sys.stderr)
        return 2
    if a.writes and a.per_db < 10:
        print("many_tables_gen.py: --writes needs --per-db >= 10", file=sys.stderr)
        return 2
    w = sys.stdout.write
    dbs = (a.tables + a.per_db - 1) // a.per_db
    if a.writes == "keep":
        keep_writes(w, a, dbs)
    elif a.writes == "accident":
        accident(w, a, dbs)
    else:
        data(w, a, dbs)
    return 0


def data(w, a, dbs: int) -> None:
    rnd = random.Random(a.seed)
    w("SET SESSION sql_log_bin = 0;\nSET NAMES utf8mb4;\n")
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


def keep_writes(w, a, dbs: int) -> None:
    """The writes a point-in-time recovery must replay, all binlogged."""
    rnd = random.Random(a.seed + 1)
    w("SET NAMES utf8mb4;\n")
    for r in range(a.rounds):
        for d in range(dbs):
            db = f"`{a.prefix}{d:05d}`"
            n = min(a.per_db, a.tables - d * a.per_db)
            if n < 10:
                continue
            w("BEGIN;\n")
            for t in (pick(rnd, n), pick(rnd, n)):
                w(
                    f"INSERT INTO {db}.`{t}` (name, amount, created, note) VALUES "
                    f"('pitr-{r}-{rnd.randrange(10**6):06d}', {rnd.randrange(10**5) / 100:.2f}, "
                    f"'2026-12-{rnd.randint(1, 28):02d} 12:00:00', NULL);\n"
                )
            # t0003 carries a BEFORE INSERT trigger: the binlog holds the row as the trigger left it.
            w(f"INSERT INTO {db}.`t0003` (name, created) VALUES ('pitr-trigger-{r}', '2026-12-07 00:00:00');\n")
            w(f"UPDATE {db}.`{pick(rnd, n)}` SET amount = amount + 1, note = 'updated' WHERE id <= 5;\n")
            w(f"DELETE FROM {db}.`{pick(rnd, n)}` WHERE id % 4 = {r % 4};\n")
            w("COMMIT;\n")
        if r == 0:
            ddl(w, a, dbs)


def pick(rnd: random.Random, n: int) -> str:
    """A table of a database of n that the DDL below leaves in place (not the last, not t0007)."""
    while True:
        t = rnd.randrange(1, n - 1)
        if t != 7:
            return f"t{t:04d}"


def ddl(w, a, dbs: int) -> None:
    for d in range(dbs):
        db = f"`{a.prefix}{d:05d}`"
        n = min(a.per_db, a.tables - d * a.per_db)
        if n < 10:
            continue
        if d % 10 == 0:
            w(
                f"CREATE TABLE {db}.`pitr_new` (id INT NOT NULL PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB;\n"
                f"INSERT INTO {db}.`pitr_new` VALUES (1, 'created after the backup'), (2, 'x');\n"
            )
        if d % 20 == 0:
            w(f"DROP TABLE {db}.`t{n - 1:04d}`;\n")
        if d % 25 == 0:
            w(f"ALTER TABLE {db}.`t0006` ADD COLUMN pitr_extra INT NOT NULL DEFAULT 7;\n")
        if d % 50 == 0:
            w(f"RENAME TABLE {db}.`t0007` TO {db}.`t0007_renamed`;\n")
        if d % 100 == 0:
            nd = f"`{a.prefix}new{d:05d}`"
            w(
                f"CREATE DATABASE {nd};\n"
                f"CREATE TABLE {nd}.`t` (id INT NOT NULL PRIMARY KEY, v TEXT) ENGINE=InnoDB;\n"
                f"INSERT INTO {nd}.`t` VALUES (1, 'a database created after the backup');\n"
            )


def accident(w, a, dbs: int) -> None:
    """What the recovery stops before."""
    for d in range(dbs):
        db = f"`{a.prefix}{d:05d}`"
        if d % 7 == 3:
            w(f"DROP DATABASE {db};\n")
        elif min(a.per_db, a.tables - d * a.per_db) >= 10:
            w(f"DELETE FROM {db}.`t0001`;\n")


if __name__ == "__main__":
    sys.exit(main())
