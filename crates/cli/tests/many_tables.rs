//! Many small tables (issue 20): a backup of a few thousand tables across several databases
//! (most with 1-40 rows, every tenth empty, every tenth partitioned, views and triggers in every
//! database) restores equal to the source: the same tables with the same rows, partitions,
//! views and triggers. The metadata of such a backup is read and checked in batches (a few
//! queries per database), so this also covers the batched planning, counting, creation and
//! checking paths.
//!
//! `HOLDFAST_LONG_TESTS=1` runs it with 10,000 tables instead of 2,000.

mod common;

use common::*;
use holdfast_testkit::TestServer;

/// The same shape as `bench/many_tables_gen.py`, deterministic without a random generator.
fn generate(tables: usize, per_db: usize) -> String {
    let mut sql = String::from("SET SESSION sql_log_bin = 0;\n");
    let mut i = 0;
    for d in 0..tables.div_ceil(per_db) {
        let db = format!("mt{d:03}");
        sql.push_str(&format!("CREATE DATABASE `{db}`; USE `{db}`;\n"));
        let n = per_db.min(tables - d * per_db);
        for t in 0..n {
            let part = if i % 10 == 5 {
                " PARTITION BY HASH (id) PARTITIONS 4"
            } else {
                ""
            };
            sql.push_str(&format!(
                "CREATE TABLE t{t:04} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL DEFAULT 0, \
                 created DATETIME NOT NULL, note TEXT NULL, KEY k_name (name)){part};\n"
            ));
            let rows = if i % 10 == 0 { 0 } else { 1 + (i * 7919) % 40 };
            if rows > 0 {
                let values: Vec<String> = (0..rows)
                    .map(|r| {
                        let note = if (i + r) % 3 == 0 {
                            "NULL".to_string()
                        } else {
                            format!("'n {i} {r}\\ttab ''q'''")
                        };
                        format!(
                            "({}, 'name-{}', {}.{:02}, '2026-{:02}-{:02} 10:00:00', {note})",
                            r + 1,
                            (i * 31 + r * 17) % 100_000,
                            (i * 13 + r) % 10_000,
                            r % 100,
                            1 + r % 12,
                            1 + i % 28
                        )
                    })
                    .collect();
                sql.push_str(&format!(
                    "INSERT INTO t{t:04} VALUES {};\n",
                    values.join(",")
                ));
            }
            i += 1;
        }
        for v in 0..n / 25 {
            sql.push_str(&format!(
                "CREATE VIEW v{v:03} AS SELECT x.id, x.name, y.amount FROM t{:04} x \
                 JOIN t{:04} y ON x.id = y.id;\n",
                v * 25 + 1,
                v * 25 + 2
            ));
        }
        for g in 0..n / 50 {
            sql.push_str(&format!(
                "CREATE TRIGGER trg{g:03} BEFORE INSERT ON t{:04} FOR EACH ROW \
                 SET NEW.note = COALESCE(NEW.note, 'trigger');\n",
                g * 50 + 3
            ));
        }
    }
    sql
}

/// What must be equal between source and restore: tables with their partition counts and
/// checksums, views, triggers.
fn shape(server: &TestServer) -> Vec<String> {
    let tables = server.sql(
        "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA LIKE 'mt%' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
    );
    let list: Vec<&str> = tables.lines().filter(|l| !l.is_empty()).collect();
    let mut out: Vec<String> = server
        .sql(&format!("CHECKSUM TABLE {} EXTENDED", list.join(", ")))
        .lines()
        .map(|l| format!("checksum {l}"))
        .collect();
    out.extend(
        server
            .sql(
                "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, ' ', COUNT(*)) \
                 FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA LIKE 'mt%' \
                 AND PARTITION_NAME IS NOT NULL \
                 GROUP BY TABLE_SCHEMA, TABLE_NAME ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .lines()
            .map(|l| format!("partitions {l}")),
    );
    out.extend(
        server
            .sql(
                "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, ' ', VIEW_DEFINITION) \
                 FROM information_schema.VIEWS WHERE TABLE_SCHEMA LIKE 'mt%' ORDER BY 1",
            )
            .lines()
            .map(|l| format!("view {l}")),
    );
    out.extend(
        server
            .sql(
                "SELECT CONCAT(TRIGGER_SCHEMA, '.', TRIGGER_NAME, ' ', EVENT_OBJECT_TABLE, ' ', \
                 ACTION_TIMING, ' ', EVENT_MANIPULATION, ' ', ACTION_STATEMENT) \
                 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA LIKE 'mt%' ORDER BY 1",
            )
            .lines()
            .map(|l| format!("trigger {l}")),
    );
    out
}

#[test]
fn thousands_of_small_tables_restore_equal_to_the_source() {
    let long = std::env::var("HOLDFAST_LONG_TESTS").is_ok_and(|v| v == "1");
    let (tables, per_db) = if long { (10_000, 100) } else { (2_000, 250) };
    let source = TestServer::start();
    source.sql(&generate(tables, per_db));
    let before = shape(&source);
    let base = before.iter().filter(|l| l.starts_with("checksum ")).count();
    assert_eq!(base, tables, "generated tables");
    assert_eq!(
        before
            .iter()
            .filter(|l| l.starts_with("partitions "))
            .count(),
        tables / 10,
        "partitioned tables"
    );
    assert!(before.iter().any(|l| l.starts_with("view ")));
    assert!(before.iter().any(|l| l.starts_with("trigger ")));

    let repo = Repo::init();
    let summary = backup(&repo, &source, &["--threads", "2"]);
    assert_eq!(summary["tables"], tables, "tables backed up: {summary}");

    let target = TestServer::start();
    let report = restore(&repo, &target, &["latest", "--threads", "2", "--verify"]);
    assert_eq!(report["verified"], true, "{report}");
    let restored = report["tables"].as_array().map_or(0, Vec::len);
    assert_eq!(restored, tables, "tables in the restore report");
    let after = shape(&target);
    assert_eq!(after.len(), before.len(), "objects restored");
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b);
    }
}
