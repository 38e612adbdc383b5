//! Backup and restore of a deliberately nasty schema between two real servers, proven equal with
//! `CHECKSUM TABLE`, the restore's own fingerprints and the object definitions.

mod common;

use common::*;
use holdfast_testkit::{Flavor, ServerOptions, TestServer};

/// Every column type at its limits, awkward names, character sets and binary bytes: what MariaDB
/// 10.11 and MySQL 5.7 both have. [`MARIADB_EXTRAS`] and [`MYSQL_EXTRAS`] add each one's own.
const NASTY: &str = r#"
SET SESSION sql_mode = '';
CREATE DATABASE nasty CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE nasty;
CREATE TABLE ints (
  id BIGINT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT,
  miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  b BIT(64), b1 BIT(1), bo BOOLEAN
);
INSERT INTO ints VALUES
 (-9223372036854775808, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, b'0', b'0', 0),
 (9223372036854775807, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, b'1111111111111111111111111111111111111111111111111111111111111111', b'1', 1),
 (0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, b'1001', b'1', 1),
 (10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, b'1010', b'0', 0);
CREATE TABLE nums (
  id INT AUTO_INCREMENT PRIMARY KEY,
  f FLOAT, d DOUBLE, dec1 DECIMAL(65,30), dec2 DECIMAL(10,0) UNSIGNED, fz FLOAT(7,3)
);
INSERT INTO nums (f, d, dec1, dec2, fz) VALUES
 (3.4028234e38, 1.7976931348623157e308, 99999999999999999999999999999999999.999999999999999999999999999999, 9999999999, 9999.999),
 (-3.4028234e38, -1.7976931348623157e308, -99999999999999999999999999999999999.999999999999999999999999999999, 0, -9999.999),
 (1.17549435e-38, 2.2250738585072014e-308, 0.000000000000000000000000000001, 1, 0.001),
 (0.1, 0.1, 0.1, 1, 0.1), (1/3, 1/3, 1/3, 3, 1/3), (-0.0, -0.0, 0, 0, 0), (NULL, NULL, NULL, NULL, NULL);
INSERT INTO nums (id, f) VALUES (0, 0);
CREATE TABLE times (
  id INT PRIMARY KEY, d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, t TIME(6), y YEAR
);
INSERT INTO times VALUES
 (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '-838:59:59', 0),
 (2, '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '838:59:59.000000', 1901),
 (3, '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '00:00:00.000001', 2155),
 (4, '2024-02-29', '2024-03-31 02:30:00', '2024-03-31 01:30:00', '-00:00:01', 2000),
 (5, '2019-00-00', '2019-01-00 00:00:00', NULL, NULL, NULL);
CREATE TABLE strs (
  id INT PRIMARY KEY,
  c CHAR(10), vc VARCHAR(300), tx TEXT, lt LONGTEXT, bn BINARY(8), vb VARBINARY(300), bl BLOB, lb LONGBLOB,
  e ENUM('', 'a', 'b c', 'ü'), s SET('x', 'y', 'z'), j JSON,
  tt TINYTEXT, mt MEDIUMTEXT, tb TINYBLOB, mb MEDIUMBLOB
) CHARACTER SET utf8mb4;
INSERT INTO strs VALUES
 (1, '', '', '', '', '', '', '', '', '', '', '{}', '', '', '', ''),
 (2, 'tab	tab', 'new
line', 'back\\slash \\N \\t', CONCAT('cr', CHAR(13), 'lf', CHAR(10), 'nul', CHAR(0), 'end'),
  X'00090A0D5C4E0000', X'00FF09FE0A5C4E0D00', X'5C4E', CONCAT(X'00', REPEAT(X'09', 3), X'5C'),
  'b c', 'x,z', '{"k": "v\\"q", "n": [1, 2.5, null]}', REPEAT('t', 255), CONCAT('m', CHAR(0), 'm'), X'00FF', X'5C0A'),
 (3, 'NULL', 'NULL', '\\N', 'N', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, '✓', '中文 emoji 😀 ñ', REPEAT('ü', 1000), REPEAT('😀', 20000), X'FFFFFFFFFFFFFFFF', REPEAT(X'00', 300), REPEAT(X'FF', 65535), REPEAT(X'5C', 100000), 'ü', 'x,y,z', '[]',
  REPEAT('ü', 127), REPEAT('😀', 100000), REPEAT(X'09', 255), REPEAT(X'00', 70000));
CREATE TABLE big (id INT PRIMARY KEY, payload LONGBLOB);
INSERT INTO big VALUES (1, REPEAT(X'5C0A09003132', 3000000)), (2, REPEAT('a', 17000000));
CREATE TABLE latin (id INT PRIMARY KEY, s VARCHAR(50) CHARACTER SET latin1, t TEXT CHARACTER SET latin1) CHARACTER SET latin1;
INSERT INTO latin VALUES (1, CONVERT('café ñ ÿ' USING latin1), CONVERT('Ærø' USING latin1)), (2, X'E9FF80A0', X'00');
CREATE TABLE gbk_t (id INT PRIMARY KEY, s VARCHAR(50) CHARACTER SET gbk) CHARACTER SET gbk;
INSERT INTO gbk_t VALUES (1, CONVERT('中文字符' USING gbk)), (2, X'D6D05C'), (3, X'B0A1');
CREATE TABLE nokey (a INT, b VARCHAR(20), c BLOB);
INSERT INTO nokey VALUES (1, 'dup', 'x'), (1, 'dup', 'x'), (NULL, NULL, NULL), (2, 'tab	', X'00');
CREATE TABLE composite (a VARCHAR(20), b INT, c DATE, v INT, PRIMARY KEY (a, b, c));
INSERT INTO composite VALUES ('x', 1, '2020-01-01', 1), ('x', 2, '2020-01-01', 2), ('y', 1, '0000-00-00', 3), ('', -5, '2021-02-03', 4);
CREATE TABLE `we``ird name ☃` (`col with space` INT PRIMARY KEY, `tab	col` VARCHAR(10), `ünï` INT);
INSERT INTO `we``ird name ☃` VALUES (1, 'a', 2), (2, NULL, NULL);
CREATE TABLE gen (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s VARCHAR(20) AS (CONCAT('s', a)) STORED, KEY by_v (v));
INSERT INTO gen (id, a) VALUES (1, 1), (2, NULL), (3, 3);
CREATE TABLE geo (id INT PRIMARY KEY, g GEOMETRY NOT NULL, p POINT, l LINESTRING, pg POLYGON, mp MULTIPOINT,
  ml MULTILINESTRING, mpg MULTIPOLYGON, gc GEOMETRYCOLLECTION, SPATIAL INDEX (g));
INSERT INTO geo VALUES (1, ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), ST_GeomFromText('POINT(1.5 -2.25)'),
  ST_GeomFromText('LINESTRING(0 0,1 1,2 0)'), ST_GeomFromText('POLYGON((0 0,4 0,4 4,0 0),(1 1,2 1,2 2,1 1))'),
  ST_GeomFromText('MULTIPOINT(0 0,1e300 -1e-300)'), ST_GeomFromText('MULTILINESTRING((0 0,1 1),(2 2,3 3))'),
  ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))'),
  ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1))')),
 (2, ST_GeomFromText('POINT(0 0)'), NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE ft (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY ftx (body));
INSERT INTO ft VALUES (1, 'the quick brown fox'), (2, 'jumps over');
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20), KEY by_name (name));
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, qty INT,
  KEY by_parent (parent_id), CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE);
INSERT INTO parent VALUES (1, 'a'), (2, 'b');
INSERT INTO child VALUES (1, 1, 5), (2, 2, 0), (3, NULL, 1);
CREATE TABLE parted (id INT NOT NULL, created DATE NOT NULL, v INT, PRIMARY KEY (id, created))
  PARTITION BY RANGE (YEAR(created)) (PARTITION p2020 VALUES LESS THAN (2021), PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO parted VALUES (1, '2020-05-05', 1), (2, '2024-01-01', 2);
CREATE VIEW v_total AS SELECT parent_id, SUM(qty) AS total FROM child GROUP BY parent_id;
CREATE VIEW a_view_on_view AS SELECT * FROM v_total WHERE total > 0;
CREATE PROCEDURE p_add(IN x INT) INSERT INTO parent VALUES (x, CONCAT('p', x));
CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE TRIGGER trg_child BEFORE INSERT ON child FOR EACH ROW SET NEW.qty = IFNULL(NEW.qty, 0);
CREATE EVENT ev_noop ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1;
CREATE DATABASE `second db` CHARACTER SET latin1;
CREATE TABLE `second db`.t (id INT PRIMARY KEY, v VARCHAR(10));
INSERT INTO `second db`.t VALUES (1, 'x');
"#;

/// MariaDB-only objects: UUID and INET6 columns, invisible columns, CHECK constraints, system
/// versioning and sequences.
const MARIADB_EXTRAS: &str = r#"
SET SESSION sql_mode = '';
USE nasty;
CREATE TABLE mdb_types (id INT PRIMARY KEY, u UUID, ip6 INET6, hid INT INVISIBLE DEFAULT 7, qty INT CHECK (qty >= 0));
INSERT INTO mdb_types (id, u, ip6, hid, qty) VALUES (1, '00000000-0000-0000-0000-000000000000', '::', 1, 0),
 (2, 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', NULL, 5), (3, NULL, '127.0.0.1', 99, NULL);
CREATE TABLE versioned (id INT PRIMARY KEY, x INT) WITH SYSTEM VERSIONING;
INSERT INTO versioned VALUES (1, 1), (2, 2);
UPDATE versioned SET x = 10 WHERE id = 1;
DELETE FROM versioned WHERE id = 2;
CREATE SEQUENCE seq START WITH 100 INCREMENT BY 5;
SELECT NEXTVAL(seq), NEXTVAL(seq), NEXTVAL(seq);
"#;

/// MySQL-only: binary JSON with indexed generated columns over `->>` and `->`. (Not a JSON
/// double -0.0: MySQL prints it as `-0`, which reads back as the integer 0; docs/mysql.md.)
const MYSQL_EXTRAS: &str = r#"
SET SESSION sql_mode = '';
USE nasty;
CREATE TABLE jdoc (id INT PRIMARY KEY, doc JSON NOT NULL,
  name VARCHAR(40) AS (doc->>'$.name') STORED, n INT AS (doc->'$.n') VIRTUAL, KEY by_name (name), KEY by_n (n));
INSERT INTO jdoc (id, doc) VALUES (1, '{"name": "ü \\"q\\"\\ttab", "n": 1, "deep": {"a": [1, 2.5, true, null, "x"]}}'),
 (2, '{"n": -2147483648}'), (3, '[]'), (4, '"plain"'), (5, '18446744073709551615'), (6, '[1.0, -1.5e300, 1e-300]');
"#;

/// Probes for data `CHECKSUM TABLE` does not see, per flavor.
fn probes(flavor: Flavor) -> Vec<&'static str> {
    let mut probes = vec![
        "SELECT id, a, v, s FROM nasty.gen ORDER BY id",
        "SELECT HEX(f), HEX(d) FROM nasty.nums ORDER BY id",
        "SELECT id, ST_AsText(g), ST_AsText(p), ST_AsText(mp), ST_AsText(gc) FROM nasty.geo ORDER BY id",
        "SELECT COUNT(*) FROM nasty.nokey",
        "SELECT id, j FROM nasty.strs ORDER BY id",
    ];
    match flavor {
        Flavor::MariaDb => probes.extend([
            "SELECT id, x, row_start, row_end FROM nasty.versioned FOR SYSTEM_TIME ALL ORDER BY id, row_start",
            "SELECT id, u, ip6, hid, qty FROM nasty.mdb_types ORDER BY id",
            "SELECT NEXTVAL(nasty.seq)",
        ]),
        Flavor::MySql => probes.extend([
            "SELECT id, doc, name, n FROM nasty.jdoc ORDER BY id",
            "SELECT id FROM nasty.jdoc FORCE INDEX (by_name) WHERE name LIKE 'ü%'",
        ]),
    }
    probes
}

#[test]
fn nasty_schema_round_trips_exactly() {
    nasty_schema_round_trip(Flavor::MariaDb);
}

#[test]
fn mysql_nasty_schema_round_trips_exactly() {
    nasty_schema_round_trip(Flavor::MySql);
}

/// Backs up the nasty schema from one server of `flavor`, verifies the backup deeply, restores
/// it into another with `--verify`, and compares checksums, probes and object definitions.
fn nasty_schema_round_trip(flavor: Flavor) {
    let opts = || ServerOptions {
        flavor,
        ..ServerOptions::default()
    };
    let source = TestServer::start_with(opts());
    let target = TestServer::start_with(opts());
    source.sql(NASTY);
    source.sql(match flavor {
        Flavor::MariaDb => MARIADB_EXTRAS,
        Flavor::MySql => MYSQL_EXTRAS,
    });
    let repo = Repo::init();

    let summary = backup(&repo, &source, &["--threads", "3", "--chunk-size", "1k"]);
    assert!(summary["rows"].as_u64().unwrap() > 30, "{summary}");
    let manifest = repo.manifest("latest");
    let expected_flavor = match flavor {
        Flavor::MariaDb => "mariadb",
        Flavor::MySql => "mysql",
    };
    assert_eq!(manifest["server"]["flavor"], expected_flavor, "{manifest}");
    assert_eq!(
        manifest["server"]["version"],
        source.sql("SELECT @@version").trim(),
        "{manifest}"
    );
    let verify = holdfast(&[
        "verify",
        "--repo",
        &repo.url(),
        "latest",
        "--deep",
        "--json",
    ]);
    assert_ok(&verify, "verify --deep");

    let report = restore(&repo, &target, &["--verify", "--threads", "3"]);
    assert_eq!(report["verified"], true);
    // MariaDB targets load rows through bulk execute (a prepared statement executed per batch),
    // MySQL targets through LOAD DATA.
    let (loads, executes) = (
        global_status(&target, "Com_load"),
        global_status(&target, "Com_stmt_execute"),
    );
    match flavor {
        Flavor::MariaDb => assert!(loads == 0 && executes > 0, "{loads} {executes}"),
        Flavor::MySql => assert!(loads > 0, "{loads} {executes}"),
    }

    let sums = checksums(&source);
    assert!(sums.len() >= 15, "{sums:?}");
    assert_eq!(sums, checksums(&target), "CHECKSUM TABLE differs");
    for q in probes(flavor) {
        assert_eq!(source.sql(q), target.sql(q), "{q}");
    }
    for q in [
        "SHOW CREATE TABLE nasty.child",
        "SHOW CREATE TABLE nasty.parted",
        "SHOW CREATE TABLE nasty.geo",
        "SHOW CREATE TABLE nasty.gen",
        "SHOW CREATE TABLE nasty.strs",
        "SHOW CREATE TABLE nasty.ft",
        "SHOW CREATE TABLE `nasty`.`we``ird name ☃`",
        "SHOW CREATE VIEW nasty.a_view_on_view",
        "SHOW CREATE FUNCTION nasty.f_double",
        "SHOW CREATE PROCEDURE nasty.p_add",
        "SHOW CREATE EVENT nasty.ev_noop",
        "SHOW CREATE DATABASE `second db`",
    ] {
        assert_eq!(
            strip_volatile(&source.sql(q)),
            strip_volatile(&target.sql(q)),
            "{q}"
        );
    }
    for q in [
        "SELECT ROUTINE_TYPE, ROUTINE_NAME, ROUTINE_DEFINITION, SQL_MODE, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'nasty' ORDER BY 2",
        "SELECT TRIGGER_NAME, ACTION_STATEMENT, SQL_MODE, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'nasty'",
        "SELECT EVENT_NAME, EVENT_DEFINITION, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'nasty'",
        "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'nasty' ORDER BY 1",
        "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'nasty' ORDER BY 1, 2, 3",
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'nasty' ORDER BY 1, ORDINAL_POSITION",
    ] {
        assert_eq!(source.sql(q), target.sql(q), "{q}");
    }
}

/// A server-wide status counter.
fn global_status(server: &TestServer, name: &str) -> u64 {
    let row = server.sql(&format!("SHOW GLOBAL STATUS LIKE '{name}'"));
    let value = row.split('\t').nth(1).unwrap_or_default().trim();
    value.parse().unwrap_or_else(|_| panic!("{name}: {row:?}"))
}

/// `SHOW CREATE` output without what legitimately differs between two servers: the
/// AUTO_INCREMENT counter and an event's creation-time `STARTS` timestamp.
fn strip_volatile(s: &str) -> String {
    let s = strip_auto_increment(s);
    match s.find(" STARTS '") {
        Some(at) => {
            let rest = &s[at + 9..];
            let end = rest.find('\'').map(|e| at + 9 + e + 1).unwrap_or(s.len());
            format!("{}{}", &s[..at], &s[end..])
        }
        None => s,
    }
}

fn strip_auto_increment(s: &str) -> String {
    s.split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn restore_refuses_existing_database_then_drops_or_renames() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v INT); INSERT INTO shop.t VALUES (1,1),(2,2);");
    target.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.keep (id INT); INSERT INTO shop.keep VALUES (42);",
    );
    let repo = Repo::init();
    backup(&repo, &source, &[]);

    let out = restore_latest(&repo, &target);
    assert_code(&out, 14, "restore into a non-empty target");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--drop-existing"),
        "{}",
        text(&out)
    );
    assert_eq!(
        target.sql("SELECT id FROM shop.keep").trim(),
        "42",
        "the target was touched"
    );

    restore(&repo, &target, &["--rename-db", "shop:shop_copy"]);
    assert_eq!(target.sql("SELECT SUM(v) FROM shop_copy.t").trim(), "3");

    restore(&repo, &target, &["--drop-existing"]);
    assert_eq!(
        target
            .sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop'")
            .trim(),
        "1"
    );
    assert_eq!(checksums(&source)[0], checksums(&target)[0]);
}

/// A fresh server's empty `test` database is not data to protect: the first restore replaces
/// it and says so. A database holding only a routine is still refused.
#[test]
fn empty_database_on_the_target_is_replaced_not_refused() {
    let source = TestServer::start();
    let target = TestServer::start();
    let fresh_test = "CREATE DATABASE IF NOT EXISTS test";
    source.sql(&format!(
        "{fresh_test}; CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); \
         INSERT INTO app.t VALUES (1),(2);"
    ));
    target.sql(fresh_test);
    let repo = Repo::init();
    backup(&repo, &source, &[]);

    let out = restore_latest(&repo, &target);
    assert_ok(&out, "restore over an empty `test` database");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("replaced the target's empty database(s) `test`"),
        "{}",
        text(&out)
    );
    assert_eq!(target.sql("SELECT COUNT(*) FROM app.t").trim(), "2");
    assert!(has_database(&target, "test"));

    // --json reports it too.
    let other = TestServer::start();
    other.sql(fresh_test);
    let report = restore(&repo, &other, &[]);
    assert_eq!(
        report["replaced_empty_databases"],
        serde_json::json!(["test"]),
        "{report}"
    );

    // A routine is something to protect.
    let guarded = TestServer::start();
    guarded.sql(&format!(
        "{fresh_test}; CREATE PROCEDURE test.keep_me() SELECT 1"
    ));
    let out = restore_latest(&repo, &guarded);
    assert_code(&out, 14, "restore over a database holding a routine");
    assert!(!has_database(&guarded, "app"), "the target was touched");
}

#[test]
fn filters_select_databases_and_tables() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(
        "CREATE DATABASE a; CREATE DATABASE b; CREATE TABLE a.t1 (id INT PRIMARY KEY); CREATE TABLE a.t2 (id INT PRIMARY KEY); \
         CREATE TABLE b.t (id INT PRIMARY KEY); INSERT INTO a.t1 VALUES (1); INSERT INTO a.t2 VALUES (2); INSERT INTO b.t VALUES (3);",
    );
    let repo = Repo::init();
    let summary = backup(&repo, &source, &["--exclude-tables", "a.t2"]);
    assert_eq!(summary["tables"], 2, "{summary}");
    restore(&repo, &target, &["--tables", "a.t1"]);
    assert_eq!(target.sql("SELECT id FROM a.t1").trim(), "1");
    assert_eq!(
        target
            .sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('a','b')")
            .trim(),
        "1"
    );
}

/// A chunk is readable without holdfast: `zstd -d` and a plain `LOAD DATA` restore its rows.
#[test]
fn chunks_load_with_standard_tools() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE plain; CREATE TABLE plain.t (id INT PRIMARY KEY, v VARBINARY(20), n INT); \
         INSERT INTO plain.t VALUES (1, 'tab\tnew\nline', NULL), (2, X'005C0D', 7), (3, '\\\\N', 0);",
    );
    let repo = Repo::init();
    backup(&repo, &source, &[]);
    let chunk = repo
        .files()
        .into_iter()
        .find(|f| f.ends_with(".tsv.zst"))
        .unwrap();
    let tsv = repo.dir.path().join("chunk.tsv");
    let out = std::process::Command::new("zstd")
        .args(["-q", "-d", "-o"])
        .arg(&tsv)
        .arg(repo.path().join(&chunk))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zstd -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    source.sql(&format!(
        "CREATE TABLE plain.copy LIKE plain.t; \
         LOAD DATA INFILE '{}' INTO TABLE plain.copy CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (id, v, n);",
        tsv.display()
    ));
    assert_eq!(
        source.sql("SELECT id, HEX(v), n FROM plain.t ORDER BY id"),
        source.sql("SELECT id, HEX(v), n FROM plain.copy ORDER BY id")
    );
}

/// `--users` carries accounts and grants; without it they stay behind.
#[test]
fn users_and_grants_round_trip_on_request() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); \
         CREATE USER 'reader'@'%' IDENTIFIED BY 's3cret'; GRANT SELECT ON app.* TO 'reader'@'%'; \
         CREATE ROLE auditor; GRANT SELECT ON app.t TO auditor; GRANT auditor TO 'reader'@'%';",
    );
    let repo = Repo::init();
    backup(&repo, &source, &["--users"]);
    let manifest = repo.manifest("latest");
    assert_eq!(manifest["includes_users"], true);
    restore(&repo, &target, &[]);
    for q in [
        "SHOW GRANTS FOR 'reader'@'%'",
        "SHOW GRANTS FOR auditor",
        "SHOW CREATE USER 'reader'@'%'",
    ] {
        assert_eq!(source.sql(q), target.sql(q), "{q}");
    }

    let other = TestServer::start();
    restore(&repo, &other, &["--no-users"]);
    let users = other.sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'reader'");
    assert_eq!(users.trim(), "0", "--no-users must not create accounts");
}

/// Tables keyed by text, dates or decimals are split on sampled key values, and the ranges still
/// cover every row exactly once (case- and accent-insensitive collations included).
#[test]
fn non_integer_keys_are_chunked_completely() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(
        "CREATE DATABASE k; USE k; \
         CREATE TABLE txt (code VARCHAR(40) COLLATE utf8mb4_unicode_ci PRIMARY KEY, v INT); \
         INSERT INTO txt SELECT CONCAT(ELT(1 + seq % 4, 'a', 'B', 'é', 'Z'), LPAD(seq, 6, '0')), seq FROM seq_1_to_6000; \
         CREATE TABLE dt (at DATETIME(6) NOT NULL, n INT NOT NULL, PRIMARY KEY (at, n)); \
         INSERT INTO dt SELECT '2024-01-01' + INTERVAL (seq DIV 3) MINUTE, seq FROM seq_1_to_6000; \
         CREATE TABLE dec_t (d DECIMAL(20,4) PRIMARY KEY, pad CHAR(100)); \
         INSERT INTO dec_t SELECT seq / 7 - 300, REPEAT('x', 100) FROM seq_1_to_6000; \
         ANALYZE TABLE txt, dt, dec_t;",
    );
    let repo = Repo::init();
    backup(&repo, &source, &["--chunk-size", "16k", "--threads", "3"]);
    let manifest = repo.manifest("latest");
    for t in manifest["tables"].as_array().unwrap() {
        let chunks = t["chunks"].as_array().unwrap().len();
        assert!(
            chunks > 2,
            "{} was not chunked ({chunks} chunk)",
            t["table"]
        );
        assert_eq!(t["row_count"], 6000);
    }
    restore(&repo, &target, &["--verify"]);
    assert_eq!(checksums(&source), checksums(&target));
}
