//! Point-in-time recovery end to end on real servers: a randomized workload (inserts, updates,
//! deletes, DDL, a large transaction, two databases, latin1 and utf8mb4 data) runs while
//! `holdfast binlog stream` archives it and backups are taken; markers record the source's GTID
//! position, time and `CHECKSUM TABLE` of every table. Restores to markers by GTID, by time,
//! just before a `DROP TABLE`, and to the end of the archive each equal the marker's reference.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use holdfast_testkit::{Flavor, ServerOptions, TestServer};
use rand::{rngs::StdRng, Rng, SeedableRng};

struct Marker {
    label: String,
    gtid_pos: String,
    /// Every transaction up to the marker committed at or before this second, every later one
    /// after it.
    time: i64,
    checksums: Vec<String>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Records a marker, then waits for the next second so later transactions have a later
/// timestamp.
fn mark(server: &TestServer, label: &str) -> Marker {
    let gtid_pos = gtid_state(server);
    let checksums = checksums(server);
    let time = now_secs().floor() as i64;
    while now_secs().floor() as i64 <= time {
        std::thread::sleep(Duration::from_millis(20));
    }
    Marker {
        label: label.to_string(),
        gtid_pos,
        time,
        checksums,
    }
}

fn setup(server: &TestServer) {
    server.sql(
        "CREATE DATABASE shop CHARACTER SET utf8mb4; CREATE DATABASE crm CHARACTER SET latin1; \
         CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, \
           amount DECIMAL(12,2), note VARCHAR(100), created TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6), KEY (customer)); \
         CREATE TABLE shop.items (order_id INT, line INT, sku VARBINARY(32), qty INT, PRIMARY KEY (order_id, line)); \
         CREATE TABLE crm.customers (id INT PRIMARY KEY, name VARCHAR(60), city VARCHAR(40)) ; \
         CREATE TABLE crm.notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT, blob_col BLOB);",
    );
}

/// One phase of random work; `k` makes names unique.
fn phase(server: &TestServer, rng: &mut StdRng, k: usize) {
    let mut sql = String::new();
    for _ in 0..rng.gen_range(5..15) {
        match rng.gen_range(0..6) {
            0 | 1 => {
                let c = rng.gen_range(1..50);
                sql.push_str(&format!(
                    "BEGIN; INSERT INTO shop.orders (customer, amount, note) VALUES ({c}, {}.{:02}, 'ümlaut ☃ {k}'); \
                     INSERT INTO shop.items VALUES (LAST_INSERT_ID(), 1, UNHEX('00FF{:04X}'), {}); COMMIT;\n",
                    rng.gen_range(1..10_000),
                    rng.gen_range(0..100),
                    rng.gen_range(0..65_535),
                    rng.gen_range(1..9)
                ));
            }
            2 => sql.push_str(&format!(
                "UPDATE shop.orders SET amount = amount * 1.1, note = CONCAT(IFNULL(note, ''), 'u') WHERE customer = {};\n",
                rng.gen_range(1..50)
            )),
            3 => sql.push_str(&format!(
                "DELETE FROM shop.orders WHERE id % 11 = {} LIMIT 3;\n",
                rng.gen_range(0..11)
            )),
            4 => sql.push_str(&format!(
                "INSERT INTO crm.customers VALUES ({id}, 'Zoë Ñandú {k}', 'Köln') ON DUPLICATE KEY UPDATE city = 'Malmö';\n",
                id = rng.gen_range(1..200)
            )),
            _ => sql.push_str(&format!(
                "INSERT INTO crm.notes (body, blob_col) VALUES (REPEAT('n\\t\\\\', {}), UNHEX('000A0D5C'));\n",
                rng.gen_range(1..300)
            )),
        }
    }
    match k % 4 {
        // DDL between the data changes.
        1 => sql.push_str(&format!(
            "ALTER TABLE shop.orders ADD COLUMN c{k} INT DEFAULT {k}; CREATE TABLE crm.t{k} (a INT PRIMARY KEY, b VARCHAR(10)); INSERT INTO crm.t{k} VALUES (1, 'x');\n"
        )),
        // A large transaction.
        2 => sql.push_str(match server.flavor() {
            Flavor::MariaDb => "BEGIN; INSERT INTO crm.notes (body) SELECT REPEAT('big', 50) FROM crm.seq_1_to_20000; UPDATE crm.notes SET body = 'rewritten' WHERE id % 5 = 0; COMMIT;\n",
            // No sequence engine on MySQL.
            Flavor::MySql => "BEGIN; INSERT INTO crm.notes (body) SELECT REPEAT('big', 50) FROM information_schema.COLLATIONS a, information_schema.COLLATIONS b LIMIT 20000; UPDATE crm.notes SET body = 'rewritten' WHERE id % 5 = 0; COMMIT;\n",
        }),
        _ => {}
    }
    server.sql(&sql);
}

/// Both replay paths on MariaDB; every recovery check runs on each. MySQL replays portably.
const REPLAY_PATHS: [&str; 2] = ["portable", "fast"];

fn replay_paths(flavor: Flavor) -> &'static [&'static str] {
    match flavor {
        Flavor::MariaDb => &REPLAY_PATHS,
        Flavor::MySql => &REPLAY_PATHS[..1],
    }
}

fn server(flavor: Flavor) -> TestServer {
    TestServer::start_with(ServerOptions {
        flavor,
        ..Default::default()
    })
}

fn restore_to_flavor(
    flavor: Flavor,
    repo: &Repo,
    replay: &str,
    flag: &str,
    value: &str,
) -> (TestServer, serde_json::Value) {
    let target = server(flavor);
    let url = repo.url();
    let t = target.url();
    let mut args = vec![
        "restore", "--repo", &url, "--target", &t, "--json", "--replay", replay, flag,
    ];
    if !value.is_empty() {
        args.push(value);
    }
    let out = holdfast(&args);
    assert_ok(&out, &format!("restore --replay {replay} {flag} {value}"));
    let report = json(&out);
    assert_eq!(report["replay_path"], replay, "{report}");
    if replay == "fast" {
        eprintln!("--replay fast {flag} {value}: {}", report["fast"]);
        // The replay's replication connection is gone again.
        assert_eq!(
            target.sql("SHOW ALL SLAVES STATUS").trim(),
            "",
            "--replay fast left a replica connection"
        );
    }
    (target, report)
}

/// The newest GTID of a one-lane position: MariaDB "0-1-N" is itself, MySQL "uuid:1-N" gives
/// "uuid:N".
fn last_gtid(pos: &str) -> String {
    match pos.split_once(':') {
        None => pos.to_string(),
        Some((uuid, ranges)) => format!("{uuid}:{}", gtid_number(ranges)),
    }
}

#[test]
fn recovers_to_gtids_times_and_just_before_a_drop() {
    recovers_to_gtids_times_and_just_before_an_accident(Flavor::MariaDb);
}

#[test]
fn mysql_recovers_to_gtids_times_and_just_before_a_mass_delete() {
    recovers_to_gtids_times_and_just_before_an_accident(Flavor::MySql);
}

/// The accident is a `DROP TABLE` on MariaDB and a mass `DELETE` (a large row event) on MySQL.
fn recovers_to_gtids_times_and_just_before_an_accident(flavor: Flavor) {
    let source = server(flavor);
    let repo = Repo::init();
    let seed: u64 = std::env::var("HOLDFAST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("workload seed {seed} (HOLDFAST_TEST_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);

    setup(&source);
    phase(&source, &mut rng, 0);
    let first_backup = backup(&repo, &source, &[]);
    let streamer = Streamer::start(&repo, &source, &["--flush-interval", "200ms"]);
    let mut markers = Vec::new();
    for k in 1..=7 {
        phase(&source, &mut rng, k);
        if k == 4 {
            backup(&repo, &source, &[]);
        }
        markers.push(mark(&source, &format!("after phase {k}")));
    }
    // The accident: a table dropped by mistake, then more work.
    let before_drop = mark(&source, "before the drop");
    if flavor == Flavor::MySql {
        source.sql("DELETE FROM crm.customers");
    } else {
        source.sql("DROP TABLE crm.customers");
    }
    let drop_gtid = last_gtid(&gtid_state(&source));
    // The application carries on with an empty table.
    if flavor == Flavor::MariaDb {
        source.sql(
            "CREATE TABLE crm.customers (id INT PRIMARY KEY, name VARCHAR(60), city VARCHAR(40))",
        );
    }
    phase(&source, &mut rng, 8);
    let end = mark(&source, "end");
    streamer.stop_when_archived(&repo, &end.gtid_pos);
    // The references differ, so an equal restore proves where the replay stopped.
    assert!(!end.checksums.is_empty());
    assert_ne!(markers[0].checksums, end.checksums);
    assert_ne!(before_drop.checksums, end.checksums);

    // `info` names the window: from the first backup to the end of the archive.
    let info = json(&holdfast(&["info", "--repo", &repo.url(), "--json"]));
    let window = &info["recoverable_window"];
    assert_eq!(window["from_backup"], first_backup["id"], "{window}");
    assert_eq!(
        window["to_gtid"].as_str().unwrap(),
        end.gtid_pos,
        "{window}"
    );
    assert_eq!(window["gaps"].as_array().unwrap().len(), 0, "{window}");

    // By GTID, at several markers (before and after the second backup).
    for (i, replay) in [0, 2, 3, 5]
        .into_iter()
        .flat_map(|i| replay_paths(flavor).iter().map(move |r| (i, *r)))
    {
        let m = &markers[i];
        let (target, report) =
            restore_to_flavor(flavor, &repo, replay, "--to-gtid", &last_gtid(&m.gtid_pos));
        assert_eq!(
            checksums(&target),
            m.checksums,
            "--replay {replay} --to-gtid {} ({})",
            m.gtid_pos,
            m.label
        );
        assert_eq!(report["gtid_position"].as_str().unwrap(), m.gtid_pos);
        assert_eq!(
            restored_gtid_state(&target),
            m.gtid_pos,
            "GTID state after --to-gtid {}",
            m.gtid_pos
        );
    }
    // By time.
    for (i, replay) in [1, 4, 6]
        .into_iter()
        .flat_map(|i| replay_paths(flavor).iter().map(move |r| (i, *r)))
    {
        let m = &markers[i];
        let t = time::OffsetDateTime::from_unix_timestamp(m.time).unwrap();
        let when = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let (target, _) = restore_to_flavor(flavor, &repo, replay, "--to-time", &when);
        assert_eq!(
            checksums(&target),
            m.checksums,
            "--replay {replay} --to-time {when} ({})",
            m.label
        );
    }
    for &replay in replay_paths(flavor) {
        // Just before the accident.
        let (target, _) = restore_to_flavor(flavor, &repo, replay, "--before-gtid", &drop_gtid);
        assert_eq!(
            checksums(&target),
            before_drop.checksums,
            "--replay {replay} --before-gtid {drop_gtid}"
        );
        assert!(target
            .sql("SELECT COUNT(*) FROM crm.customers")
            .trim()
            .parse::<u64>()
            .is_ok());
        // The whole archive.
        let (target, report) = restore_to_flavor(flavor, &repo, replay, "--latest", "");
        assert_eq!(
            checksums(&target),
            end.checksums,
            "--replay {replay} --latest"
        );
        assert_eq!(report["gtid_position"].as_str().unwrap(), end.gtid_pos);
        assert_eq!(restored_gtid_state(&target), end.gtid_pos);
        if flavor == Flavor::MySql {
            assert_eq!(
                restored_gtid_state(&target_before(&repo, &drop_gtid)),
                before_drop.gtid_pos
            );
        }
    }
}

/// The restored server's GTID state: MariaDB's `gtid_slave_pos` (set by the recovery), MySQL's
/// `gtid_executed` (every replayed transaction keeps its GTID).
fn restored_gtid_state(target: &TestServer) -> String {
    match target.flavor() {
        Flavor::MariaDb => target.sql("SELECT @@gtid_slave_pos").trim().to_string(),
        Flavor::MySql => gtid_state(target),
    }
}

/// A MySQL target recovered to just before `gtid`.
fn target_before(repo: &Repo, gtid: &str) -> TestServer {
    restore_to_flavor(Flavor::MySql, repo, "portable", "--before-gtid", gtid).0
}

#[test]
fn mysql_refuses_fast_replay_and_a_target_with_its_own_gtids() {
    let source = server(Flavor::MySql);
    let repo = Repo::init();
    source
        .sql("CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY); INSERT INTO d.t VALUES (1)");
    backup(&repo, &source, &[]);
    source.sql("INSERT INTO d.t VALUES (2)");
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream");
    let target = server(Flavor::MySql);
    let t = target.url();
    let url = repo.url();
    let out = holdfast(&[
        "restore", "--repo", &url, "--target", &t, "--latest", "--replay", "fast",
    ]);
    assert_code(&out, 2, "--replay fast on MySQL");
    assert!(text(&out).contains("--replay portable"), "{}", text(&out));
    // A target with GTID history of its own is refused before anything is restored.
    target.sql("CREATE DATABASE mine");
    let out = holdfast(&["restore", "--repo", &url, "--target", &t, "--latest"]);
    assert_code(&out, 14, "a MySQL target with its own GTIDs");
    assert!(text(&out).contains("RESET MASTER"), "{}", text(&out));
    assert_eq!(target.sql("SHOW DATABASES LIKE 'd'").trim(), "");
}

#[test]
fn targets_outside_the_window_exit_15_and_change_nothing() {
    let source = TestServer::start();
    let repo = Repo::init();
    source
        .sql("CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY); INSERT INTO d.t VALUES (1)");
    let too_early = now_secs() as i64 - 3600;
    backup(&repo, &source, &[]);
    source.sql("INSERT INTO d.t VALUES (2)");
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream");
    let target = TestServer::start();
    let when = time::OffsetDateTime::from_unix_timestamp(too_early)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let late = time::OffsetDateTime::from_unix_timestamp(now_secs() as i64 + 3600)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (flag, value, why) in [
        ("--to-time", when.as_str(), "before the oldest"),
        ("--to-time", late.as_str(), "beyond the archive"),
        ("--to-gtid", "0-1-999", "beyond the archive"),
    ] {
        let out = holdfast(&[
            "restore",
            "--repo",
            &repo.url(),
            "--target",
            &target.url(),
            flag,
            value,
        ]);
        assert_code(&out, 15, &format!("{flag} {value}"));
        assert!(text(&out).contains(why), "{flag} {value}: {}", text(&out));
    }
    assert!(
        !has_database(&target, "d"),
        "a refused recovery must not touch the target"
    );
}

#[test]
fn fast_replay_without_replication_privileges_is_refused_before_anything_changes() {
    let source = TestServer::start();
    let repo = Repo::init();
    source
        .sql("CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY); INSERT INTO d.t VALUES (1)");
    backup(&repo, &source, &[]);
    source.sql("INSERT INTO d.t VALUES (2)");
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream");
    let target = TestServer::start();
    // Everything a restore needs, but not the right to drive replication.
    target.sql(
        "CREATE USER restorer@'%' IDENTIFIED BY 'restore-pw'; \
         GRANT ALL PRIVILEGES ON *.* TO restorer@'%'; \
         REVOKE SUPER, REPLICATION SLAVE ADMIN ON *.* FROM restorer@'%'",
    );
    let url = format!("mysql://restorer@127.0.0.1:{}/", target.port());
    let out = holdfast_env(
        &[
            "restore",
            "--repo",
            &repo.url(),
            "--target",
            &url,
            "--replay",
            "fast",
            "--latest",
        ],
        &[("HOLDFAST_PASSWORD", "restore-pw")],
    );
    assert_code(
        &out,
        11,
        "restore --replay fast by an account without REPLICATION SLAVE ADMIN",
    );
    assert!(
        text(&out).contains("REPLICATION SLAVE ADMIN") && text(&out).contains("--replay portable"),
        "the error must say what to grant or use: {}",
        text(&out)
    );
    assert!(
        !has_database(&target, "d"),
        "a refused fast replay must not touch the target"
    );
}

#[test]
fn fast_replay_reports_a_replica_side_error_with_its_gtid_and_cleans_up() {
    let source = TestServer::start();
    let repo = Repo::init();
    source
        .sql("CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY); INSERT INTO d.t VALUES (1)");
    backup(&repo, &source, &[]);
    // A table the archive never saw created: the replayed insert into it fails on the target.
    source.sql(
        "SET sql_log_bin = 0; CREATE DATABASE e; CREATE TABLE e.t (a INT PRIMARY KEY); \
         SET sql_log_bin = 1; INSERT INTO d.t VALUES (2)",
    );
    let applied = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    source.sql("INSERT INTO e.t VALUES (1); INSERT INTO d.t VALUES (3)");
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream");
    let target = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "--replay",
        "fast",
        "--latest",
    ]);
    assert_code(&out, 12, "restore --replay fast over a conflicting event");
    let message = text(&out);
    assert!(
        message.contains("error 1146") && message.contains("replication stopped at"),
        "the error must name the server's error and where it stopped: {message}"
    );
    let seq: u64 = applied.rsplit('-').next().unwrap().parse().unwrap();
    assert!(
        message.contains(&format!("0-?-{}", seq + 1)),
        "the error must name the failing transaction: {message}"
    );
    assert_eq!(target.sql("SELECT COUNT(*) FROM d.t").trim(), "2");
    assert_eq!(target.sql("SHOW ALL SLAVES STATUS").trim(), "");
    assert_eq!(target.sql("SELECT @@global.server_id").trim(), "1");
}

#[test]
fn recovers_on_top_of_a_physical_backup() {
    let source = TestServer::start();
    let repo = Repo::init();
    let mut rng = StdRng::seed_from_u64(7);
    setup(&source);
    phase(&source, &mut rng, 0);
    backup(&repo, &source, &["--engine", "physical"]);
    phase(&source, &mut rng, 1);
    let target_point = mark(&source, "after phase 1");
    phase(&source, &mut rng, 2);
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream");

    let scratch = tempfile::tempdir().unwrap();
    let datadir = scratch.path().join("restored");
    let dir = datadir.display().to_string();
    // A physical base needs --datadir; --target alone is refused clearly.
    let t = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &t.url(),
        "--to-gtid",
        &target_point.gtid_pos,
    ]);
    assert_code(&out, 2, "physical base without --datadir");
    assert!(text(&out).contains("--datadir"), "{}", text(&out));

    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--datadir",
        &dir,
        "--to-gtid",
        &target_point.gtid_pos,
        "--json",
    ]);
    assert_ok(&out, "restore --datadir --to-gtid");
    let report = json(&out);
    assert_eq!(
        report["gtid_position"].as_str().unwrap(),
        target_point.gtid_pos
    );
    // Stop the server holdfast started, then look at the datadir with a test server.
    let pid = report["physical_restore"]["server"]["pid"]
        .as_u64()
        .unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "restored server did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let restored = TestServer::start_on_datadir(&datadir, Default::default());
    assert_eq!(
        checksums(&restored),
        target_point.checksums,
        "PITR on a physical base"
    );
}

/// A backlog archived in one go (no flush before the rotation): the first piece must still record
/// that it starts at the backup's GTID position, or the planner would see a gap.
#[test]
fn a_backlog_with_a_rotation_archived_at_once_recovers() {
    let source = TestServer::start();
    let repo = Repo::init();
    let mut rng = StdRng::seed_from_u64(11);
    setup(&source);
    phase(&source, &mut rng, 0);
    backup(&repo, &source, &[]);
    phase(&source, &mut rng, 1);
    source.sql("FLUSH BINARY LOGS");
    phase(&source, &mut rng, 2);
    let out = stream_until_caught_up(&repo.url(), &source.url(), &["--flush-interval", "1h"]);
    assert_ok(&out, "stream the backlog");
    let target = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "--latest",
    ]);
    assert_ok(&out, "restore --latest after a backlog with a rotation");
    assert_eq!(checksums(&target), checksums(&source));
}

fn rfc3339_secs(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not a time `{text}`: {e}"))
        .unix_timestamp()
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A recovery to "now" on a quiet server: after the last write the server is idle, the stream
/// keeps reporting the archive complete (`caught_up_as_of`), and a time after the last archived
/// event but not after that instant recovers everything (equal to the source). A time after it
/// is still refused (15), naming it.
#[test]
fn a_time_after_the_last_event_recovers_while_the_archive_is_complete() {
    recovers_to_now_on_a_quiet_server(Flavor::MariaDb);
}

#[test]
fn mysql_a_time_after_the_last_event_recovers_while_the_archive_is_complete() {
    recovers_to_now_on_a_quiet_server(Flavor::MySql);
}

fn recovers_to_now_on_a_quiet_server(flavor: Flavor) {
    let source = server(flavor);
    let repo = Repo::init();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO d.t VALUES (1, 'a')",
    );
    backup(&repo, &source, &[]);
    let mut streamer = Command::new(bin())
        .args([
            "binlog",
            "stream",
            "--repo",
            &repo.url(),
            "--source",
            &source.url(),
        ])
        .args(["--flush-interval", "100ms", "--heartbeat", "1s"])
        .args(["--status-interval", "1s"])
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start holdfast binlog stream");
    source.sql("INSERT INTO d.t VALUES (2, 'b'); UPDATE d.t SET v = 'c' WHERE a = 1");
    let last_write = now_secs().ceil() as i64;
    let end = gtid_state(&source);
    let sums = checksums(&source);

    // Idle until the record says the archive was complete a few seconds after the last write.
    let status_path = repo.path().join("binlog/stream-status.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    let complete_as_of = loop {
        let status: Option<serde_json::Value> = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(st) = status {
            if let Some(c) = st["caught_up_as_of"].as_str() {
                if st["gtid_state"] == end.as_str() && rfc3339_secs(c) >= last_write + 3 {
                    break rfc3339_secs(c);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the stream never reported {end} complete"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    // `info` shows it beside the window (the record is rewritten while the stream runs, so
    // only "at or after" the instant read above).
    let info = json(&holdfast(&["info", "--repo", &repo.url(), "--json"]));
    let shown = info["recoverable_window"]["complete_as_of"]
        .as_str()
        .unwrap_or_else(|| panic!("no complete_as_of in {info}"));
    assert!(rfc3339_secs(shown) >= complete_as_of, "{info}");

    // After the last event, not after "complete as of": everything, equal to the source.
    let target = server(flavor);
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "--to-time",
        &rfc3339(complete_as_of),
        "--json",
    ]);
    assert_ok(&out, "restore --to-time complete_as_of");
    assert_eq!(checksums(&target), sums);
    assert_eq!(restored_gtid_state(&target), end);

    // After "complete as of": refused, nothing changed.
    let fresh = server(flavor);
    let later = rfc3339(now_secs() as i64 + 3600);
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &fresh.url(),
        "--to-time",
        &later,
    ]);
    assert_code(&out, 15, "restore --to-time after complete_as_of");
    assert!(text(&out).contains("complete as of"), "{}", text(&out));
    assert!(!has_database(&fresh, "d"));

    unsafe { libc::kill(streamer.id() as i32, libc::SIGTERM) };
    assert!(streamer.wait().unwrap().success());
}
