//! The portable binlog replay against real servers: a randomized workload on a source with its
//! binlog on, replayed from the binlog files into a fresh target, which must then equal the
//! source (CHECKSUM TABLE of every table, same GTID position); stops by GTID and by time land
//! exactly on a reference state taken during the workload; bad input is a clear error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use holdfast::binlog::apply::{Applier, ApplyOptions, ApplyReport, Stop, StopReason};
use holdfast::binlog::gtid::{Gtid, GtidPos};
use holdfast::ErrorKind;
use holdfast_testkit::data::{create_mixed_table, table_checksums};
use holdfast_testkit::{ServerOptions, TestServer};
use mysql_async::prelude::*;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Checksums = BTreeMap<String, Vec<(String, Option<u64>)>>;

async fn exec(conn: &mut Conn, sql: impl AsRef<str>) {
    let sql = sql.as_ref();
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n-> {e}"));
}

async fn one(conn: &mut Conn, sql: &str) -> String {
    let v: Option<Option<String>> = conn.query_first(sql).await.unwrap();
    v.flatten().unwrap_or_default()
}

/// CHECKSUM TABLE of every table of every user database.
async fn all_checksums(conn: &mut Conn) -> Checksums {
    let dbs: Vec<String> = conn
        .query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN \
             ('mysql','information_schema','performance_schema','sys') ORDER BY 1",
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for db in dbs {
        out.insert(db.clone(), table_checksums(conn, &db).await.unwrap());
    }
    out
}

/// Closes the active binlog and returns every binlog file of `server`, oldest first.
async fn binlog_files(server: &TestServer) -> Vec<PathBuf> {
    let mut conn = server.conn().await;
    exec(&mut conn, "FLUSH BINARY LOGS").await;
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
    rows.into_iter()
        .map(|r| {
            let name: String = r.get(0).unwrap();
            server.datadir().join(name)
        })
        .collect()
}

fn target() -> TestServer {
    TestServer::start_with(ServerOptions {
        server_id: 2,
        ..ServerOptions::default()
    })
}

async fn replay_into(
    conn: Conn,
    files: &[PathBuf],
    opts: ApplyOptions,
) -> holdfast::Result<(ApplyReport, Conn)> {
    let mut applier = Applier::new(conn, opts).await?;
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let reader = tokio::fs::File::open(file).await.unwrap();
        if !applier.apply(&name, reader).await? {
            break;
        }
    }
    applier.finish().await
}

async fn replay(server: &TestServer, files: &[PathBuf], opts: ApplyOptions) -> ApplyReport {
    let conn = server.conn().await;
    replay_into(conn, files, opts)
        .await
        .unwrap_or_else(|e| panic!("replay failed: {e} ({:?})", e.kind()))
        .0
}

async fn last_gtid(conn: &mut Conn) -> Gtid {
    one(conn, "SELECT @@last_gtid").await.parse().unwrap()
}

/// A randomized mix of everything the replay must carry: several databases and character
/// sets, NULLs and BLOBs, TIMESTAMPs written under a non-UTC session time zone, DDL, a MyISAM
/// table (committed by a QUERY `COMMIT`), statement-logged statements with user variables,
/// INSERT_ID, RAND() and LAST_INSERT_ID, multi-statement transactions and a large one.
async fn workload(conn: &mut Conn, seed: u64, rounds: u32) {
    let mut rng = StdRng::seed_from_u64(seed);
    exec(
        conn,
        "CREATE DATABASE IF NOT EXISTS app CHARACTER SET utf8mb4; \
         CREATE DATABASE IF NOT EXISTS legacy CHARACTER SET latin1; \
         CREATE TABLE IF NOT EXISTS app.items (id INT AUTO_INCREMENT PRIMARY KEY, \
           name VARCHAR(100), qty INT, price DECIMAL(12,2), note TEXT NULL, img BLOB NULL, \
           at TIMESTAMP(3) NULL) ENGINE=InnoDB; \
         CREATE TABLE IF NOT EXISTS legacy.people (id INT PRIMARY KEY, name VARCHAR(60), \
           city VARCHAR(60)) ENGINE=InnoDB DEFAULT CHARSET=latin1; \
         CREATE TABLE IF NOT EXISTS legacy.hits (id INT AUTO_INCREMENT PRIMARY KEY, \
           n INT) ENGINE=MyISAM",
    )
    .await;
    exec(conn, "SET time_zone = '+05:30'").await;
    for round in 0..rounds {
        match rng.gen_range(0..10) {
            0..=2 => {
                let n = rng.gen_range(1..20);
                let values: Vec<String> = (0..n)
                    .map(|i| {
                        let note = if rng.gen_bool(0.3) {
                            "NULL".to_string()
                        } else {
                            format!("'note ✓ {round}-{i} ''q'' \\\\ 日本'")
                        };
                        let img = if rng.gen_bool(0.5) {
                            "NULL".to_string()
                        } else {
                            format!("UNHEX(REPEAT('00FF5C27', {}))", rng.gen_range(1..500))
                        };
                        format!(
                            "('item {round}-{i}', {}, {}.{:02}, {note}, {img}, \
                             FROM_UNIXTIME({}.123))",
                            rng.gen_range(-5..1000),
                            rng.gen_range(0..10000),
                            rng.gen_range(0..100),
                            1_600_000_000 + rng.gen_range(0..100_000_000)
                        )
                    })
                    .collect();
                exec(
                    conn,
                    format!(
                        "INSERT INTO app.items (name, qty, price, note, img, at) VALUES {}",
                        values.join(",")
                    ),
                )
                .await;
            }
            3 => {
                exec(
                    conn,
                    format!(
                        "UPDATE app.items SET qty = qty + 1, at = NOW(3) WHERE id % {} = 0",
                        rng.gen_range(2..7)
                    ),
                )
                .await
            }
            4 => {
                exec(
                    conn,
                    format!(
                        "DELETE FROM app.items WHERE id % {} = 1",
                        rng.gen_range(5..13)
                    ),
                )
                .await
            }
            5 => {
                // A multi-statement transaction across databases, in latin1.
                let id = rng.gen_range(0..10_000);
                exec(
                    conn,
                    format!(
                        "SET NAMES latin1; START TRANSACTION; \
                         REPLACE INTO legacy.people VALUES ({id}, 'Jos\u{e9} {round}', 'K\u{f6}ln'); \
                         UPDATE app.items SET note = CONCAT(IFNULL(note, ''), '+') \
                           WHERE id = (SELECT MAX(id) FROM app.items); \
                         COMMIT; SET NAMES utf8mb4"
                    ),
                )
                .await
            }
            6 => {
                exec(
                    conn,
                    format!("INSERT INTO legacy.hits (n) VALUES ({round}), ({round} + 1)"),
                )
                .await
            }
            7 => {
                // Statement-based logging: user variables, INSERT_ID, RAND seeds, NOW().
                exec(
                    conn,
                    format!(
                        "SET SESSION binlog_format = 'STATEMENT'; \
                         SET @who = 'stmt {round} é', @n = {}, @r = 1.5e3, @d = 12.345; \
                         INSERT INTO app.items (name, qty, price, note, at) \
                           VALUES (@who, @n, @d, CONCAT('rand ', FLOOR(RAND() * 1000)), NOW()); \
                         UPDATE app.items SET qty = LAST_INSERT_ID() % 97 + @r \
                           WHERE id = LAST_INSERT_ID(); \
                         SET SESSION binlog_format = 'ROW'",
                        rng.gen_range(0..100)
                    ),
                )
                .await
            }
            8 => {
                let t = format!("app.t{}", rng.gen_range(0..3));
                exec(
                    conn,
                    format!(
                        "CREATE TABLE IF NOT EXISTS {t} (a INT PRIMARY KEY, b VARCHAR(20)); \
                         INSERT IGNORE INTO {t} (a, b) VALUES ({round}, 'x'); \
                         ALTER TABLE {t} ADD COLUMN IF NOT EXISTS c{} INT DEFAULT 7",
                        rng.gen_range(0..4)
                    ),
                )
                .await
            }
            _ => {
                if rng.gen_bool(0.2) {
                    // DDL and rows in one transaction (CREATE … SELECT under ROW logging).
                    exec(
                        conn,
                        format!(
                            "DROP TABLE IF EXISTS app.snap; CREATE TABLE app.snap ENGINE=InnoDB \
                             AS SELECT id, name, at FROM app.items WHERE id % {} = 0",
                            rng.gen_range(2..9)
                        ),
                    )
                    .await;
                } else if rng.gen_bool(0.3) {
                    exec(
                        conn,
                        format!("DROP TABLE IF EXISTS app.t{}", rng.gen_range(0..3)),
                    )
                    .await;
                } else {
                    exec(conn, "INSERT INTO app.items (name) VALUES (NULL)").await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_a_randomized_workload_into_an_equal_server() {
    let source = TestServer::start();
    let mut conn = source.conn().await;
    create_mixed_table(&mut conn, "mixed", "everything", 3000)
        .await
        .unwrap();
    workload(&mut conn, 7, 300).await;
    // A large transaction: one statement with many row events, then an update of every row.
    exec(
        &mut conn,
        "CREATE TABLE app.big (id INT PRIMARY KEY, pad VARCHAR(200)); START TRANSACTION; \
         INSERT INTO app.big SELECT seq, REPEAT(MD5(seq), 6) FROM app.seq_1_to_60000; \
         UPDATE app.big SET pad = REVERSE(pad) WHERE id % 3 = 0; COMMIT",
    )
    .await;
    workload(&mut conn, 8, 100).await;
    let want = all_checksums(&mut conn).await;
    let want_pos = one(&mut conn, "SELECT @@gtid_binlog_pos").await;
    let files = binlog_files(&source).await;
    assert!(files.len() >= 2, "{files:?}");
    // The workload really produced statement events with their inputs, and MyISAM commits.
    for (code, what) in [(5, "INTVAR"), (13, "RAND"), (14, "USER_VAR"), (2, "QUERY")] {
        assert!(has_event(&files, code), "no {what} event in the binlog");
    }

    let target = target();
    let report = replay(
        &target,
        &files,
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await;
    let mut tconn = target.conn().await;
    assert_eq!(all_checksums(&mut tconn).await, want);
    assert_eq!(one(&mut tconn, "SELECT @@gtid_binlog_pos").await, want_pos);
    assert_eq!(report.stop_reason, StopReason::EndOfInput);
    assert_eq!(report.position.to_string(), want_pos);
    assert!(report.transactions_applied > 400, "{report:?}");
    assert_eq!(report.incomplete, None);
    assert!(
        want["app"].len() >= 2 && want["mixed"].len() == 1,
        "{want:?}"
    );

    // Small batches split the large transaction's statement across BINLOG statements.
    let split = target_with_small_batches(&files).await;
    assert_eq!(split, want);
}

async fn target_with_small_batches(files: &[PathBuf]) -> Checksums {
    let target = target();
    let mut opts = ApplyOptions::new(GtidPos::new(), Stop::End);
    opts.max_batch_bytes = 64 * 1024;
    replay(&target, files, opts).await;
    let mut conn = target.conn().await;
    all_checksums(&mut conn).await
}

/// Waits until the wall clock is in a new second, so the transactions after it commit later
/// than every transaction before it, to the second.
async fn next_second() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    let wait = 1_000_000_000 - now.nanosecond() as u64 + 20_000_000;
    tokio::time::sleep(Duration::from_nanos(wait)).await;
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Marker {
    gtid: Gtid,
    second: i64,
    state: Checksums,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_land_exactly_on_gtid_and_time_targets() {
    let source = TestServer::start();
    let mut conn = source.conn().await;
    let mut markers = Vec::new();
    for i in 0..3u64 {
        workload(&mut conn, 100 + i, 40).await;
        let gtid = last_gtid(&mut conn).await;
        let state = all_checksums(&mut conn).await;
        // Everything so far committed in or before `second`; everything after, later.
        let second = time::OffsetDateTime::now_utc().unix_timestamp();
        let after = next_second().await;
        assert!(after > second);
        markers.push(Marker {
            gtid,
            second,
            state,
        });
    }
    workload(&mut conn, 999, 20).await;
    let files = binlog_files(&source).await;

    let target = target();
    let mut start = GtidPos::new();
    for (i, m) in markers.iter().enumerate() {
        // Continue from where the last replay stopped: earlier transactions are skipped.
        let stop = match i {
            0 => Stop::AtGtid(m.gtid),
            1 => Stop::BeforeGtid(m.gtid.with_number(m.gtid.number() + 1)),
            _ => Stop::AtTime(m.second),
        };
        let report = replay(&target, &files, ApplyOptions::new(start.clone(), stop)).await;
        assert_eq!(report.stop_reason, StopReason::Target, "{report:?}");
        assert_eq!(report.last_applied, Some(m.gtid), "{report:?}");
        // An inclusive GTID stop ends right after its commit, without reading further.
        let next = (i > 0).then_some(m.gtid.number() + 1);
        assert_eq!(
            report.stopped_before.map(|g| g.number()),
            next,
            "{report:?}"
        );
        if i > 0 {
            assert!(report.transactions_skipped > 0, "{report:?}");
        }
        let mut tconn = target.conn().await;
        assert_eq!(all_checksums(&mut tconn).await, m.state, "marker {i}");
        start = report.position.clone();
        assert_eq!(start.get(0).map(|g| Gtid::MariaDb(*g)), Some(m.gtid));
    }

    // A time before everything applies nothing; a GTID that never comes stops at the gap.
    let empty = self::target();
    let report = replay(
        &empty,
        &files,
        ApplyOptions::new(GtidPos::new(), Stop::AtTime(1)),
    )
    .await;
    assert_eq!(report.transactions_applied, 0);
    assert_eq!(report.stop_reason, StopReason::Target);
    let missing = Gtid::maria(0, 1, 1_000_000);
    let report = replay(
        &empty,
        &files,
        ApplyOptions::new(GtidPos::new(), Stop::AtGtid(missing)),
    )
    .await;
    assert_eq!(report.stop_reason, StopReason::EndOfInput);
}

/// The first `n` bytes of a binlog file, in a scratch file.
fn cut(file: &PathBuf, n: usize, dir: &std::path::Path, name: &str) -> PathBuf {
    let bytes = std::fs::read(file).unwrap();
    let out = dir.join(name);
    std::fs::write(&out, &bytes[..n.min(bytes.len())]).unwrap();
    out
}

/// Offsets where events begin, from the `log_pos` (end) of each event header.
fn event_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 4;
    while at + 19 <= bytes.len() {
        out.push(at);
        let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
        at += size;
    }
    out
}

/// True when some event of `files` has type `code`.
fn has_event(files: &[PathBuf], code: u8) -> bool {
    files.iter().any(|f| {
        let b = std::fs::read(f).unwrap();
        event_offsets(&b).iter().any(|&o| b[o + 4] == code)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_and_corrupt_input_is_reported_and_applies_nothing_partial() {
    let source = TestServer::start();
    let mut conn = source.conn().await;
    exec(
        &mut conn,
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(50)); \
         INSERT INTO d.t VALUES (1, 'one'); \
         START TRANSACTION; INSERT INTO d.t VALUES (2, 'two'); INSERT INTO d.t VALUES (3, 'three'); COMMIT",
    )
    .await;
    let files = binlog_files(&source).await;
    let file = &files[0];
    let bytes = std::fs::read(file).unwrap();
    let offsets = event_offsets(&bytes);
    let scratch = source.dir();

    // Cut at the event boundary just before the last transaction's XID: incomplete, not applied.
    let xid_at = *offsets
        .iter()
        .rev()
        .find(|&&o| bytes[o + 4] == 16)
        .expect("an XID event");
    let cut_file = cut(file, xid_at, scratch, "cut.000001");
    let target = target();
    let report = replay(
        &target,
        &[cut_file],
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await;
    let incomplete = report
        .incomplete
        .clone()
        .expect("an incomplete transaction");
    assert_eq!(incomplete.input, "cut.000001");
    let mut tconn = target.conn().await;
    assert_eq!(
        one(&mut tconn, "SELECT GROUP_CONCAT(id ORDER BY id) FROM d.t").await,
        "1"
    );
    assert_eq!(
        report.last_applied.map(|g| g.number() + 1),
        Some(incomplete.gtid.number())
    );

    // The same cut as two pieces, the second starting with the magic bytes and the format
    // description (as archive segments do): the transaction continues across them.
    let fde_end = offsets[1];
    let mut second = bytes[..fde_end].to_vec();
    second.extend_from_slice(&bytes[xid_at..]);
    let second_file = scratch.join("piece2.000001");
    std::fs::write(&second_file, &second).unwrap();
    let cut_file = scratch.join("cut.000001");
    let whole = self::target();
    let report = replay(
        &whole,
        &[cut_file, second_file],
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await;
    assert_eq!(report.incomplete, None, "{report:?}");
    let mut wconn = whole.conn().await;
    assert_eq!(
        one(&mut wconn, "SELECT GROUP_CONCAT(id ORDER BY id) FROM d.t").await,
        "1,2,3"
    );

    // Cut inside an event: a clear integrity error naming the input and offset; the open
    // transaction is rolled back.
    let mid = cut(file, xid_at + 7, scratch, "mid.000001");
    let target = self::target();
    let err = replay_into(
        target.conn().await,
        &[mid],
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await
    .map(|(report, _)| report)
    .expect_err("a truncated event is an error");
    assert_eq!(err.kind(), ErrorKind::Integrity);
    let msg = err.to_string();
    assert!(
        msg.contains("mid.000001") && msg.contains(&format!("offset {xid_at}")),
        "{msg}"
    );
    let mut tconn = target.conn().await;
    assert_eq!(
        one(&mut tconn, "SELECT GROUP_CONCAT(id ORDER BY id) FROM d.t").await,
        "1"
    );

    // A flipped byte: a checksum error naming the offset.
    let mut bad = bytes.clone();
    let victim = offsets[offsets.len() / 2];
    bad[victim + 20] ^= 0x55;
    let bad_file = scratch.join("bad.000001");
    std::fs::write(&bad_file, &bad).unwrap();
    let target = self::target();
    let err = replay_into(
        target.conn().await,
        &[bad_file],
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await
    .map(|(report, _)| report)
    .expect_err("a corrupt event is an error");
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string().contains(&format!("offset {victim}")),
        "{err}"
    );

    // Not a binlog at all.
    let junk = scratch.join("junk");
    std::fs::write(&junk, b"hello").unwrap();
    let err = replay_into(
        target.conn().await,
        &[junk],
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await
    .map(|(report, _)| report)
    .expect_err("not a binlog");
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("magic"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_name_the_gtid_and_position() {
    let source = TestServer::start();
    let mut conn = source.conn().await;
    exec(
        &mut conn,
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1)",
    )
    .await;
    let failing = last_gtid(&mut conn).await;
    let files = binlog_files(&source).await;
    let target = target();
    let mut tconn = target.conn().await;
    // The target already has the row: the replayed insert is a duplicate key.
    exec(
        &mut tconn,
        "SET sql_log_bin = 0; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); \
         INSERT INTO d.t VALUES (1)",
    )
    .await;
    let start: GtidPos = format!("0-1-{}", failing.number() - 1).parse().unwrap();
    let err = replay_into(
        target.conn().await,
        &files,
        ApplyOptions::new(start, Stop::End),
    )
    .await
    .map(|(report, _)| report)
    .expect_err("a duplicate key is an error");
    assert_eq!(err.kind(), ErrorKind::Server);
    let msg = err.to_string();
    assert!(
        msg.contains(&failing.to_string()) && msg.contains("offset"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_binlogs_and_statement_format_replay() {
    let source = TestServer::start_with(ServerOptions {
        binlog_format: "MIXED".into(),
        extra_args: vec![
            "--log-bin-compress=ON".into(),
            "--log-bin-compress-min-len=10".into(),
        ],
        ..ServerOptions::default()
    });
    let mut conn = source.conn().await;
    create_mixed_table(&mut conn, "mixed", "everything", 500)
        .await
        .unwrap();
    workload(&mut conn, 42, 150).await;
    let want = all_checksums(&mut conn).await;
    let want_pos = one(&mut conn, "SELECT @@gtid_binlog_pos").await;
    let files = binlog_files(&source).await;
    let has = |code: u8| has_event(&files, code);
    assert!(
        has(165) && (166..=171).any(has),
        "expected compressed query and rows events"
    );

    let target = target();
    replay(
        &target,
        &files,
        ApplyOptions::new(GtidPos::new(), Stop::End),
    )
    .await;
    let mut tconn = target.conn().await;
    assert_eq!(all_checksums(&mut tconn).await, want);
    assert_eq!(one(&mut tconn, "SELECT @@gtid_binlog_pos").await, want_pos);
}
