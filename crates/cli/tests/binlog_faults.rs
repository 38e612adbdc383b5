//! The binlog archive under faults: the replication connection killed by the server, the
//! server crashing (kill -9) and restarting, holdfast itself killed with -9 and restarted,
//! a failover to a promoted replica, and a re-initialised server. After each, the archive is
//! continuous (no gap, no duplicate) and a restore to its end equals the source.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{Flavor, ServerOptions, TestServer};

fn spawn_streamer(repo: &Repo, server: &TestServer) -> Child {
    Command::new(bin())
        .args([
            "binlog",
            "stream",
            "--repo",
            &repo.url(),
            "--source",
            &server.url(),
        ])
        .args([
            "--flush-interval",
            "200ms",
            "--max-retry-wait",
            "1s",
            "--heartbeat",
            "1s",
        ])
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start holdfast binlog stream")
}

fn writes(server: &TestServer, n: usize) {
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&format!(
            "BEGIN; INSERT INTO app.t (v) VALUES ('row {i}'); UPDATE app.t SET n = n + 1 WHERE id % 5 = {}; COMMIT;\n",
            i % 5
        ));
    }
    server.sql(&sql);
}

fn stop(child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "streamer exit: {}", text(&out));
}

fn restored_latest_equals(repo: &Repo, source: &TestServer) {
    let target = TestServer::start_with(ServerOptions {
        flavor: source.flavor(),
        ..Default::default()
    });
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "--latest",
        "--json",
    ]);
    assert_ok(&out, "restore --latest");
    assert_eq!(
        checksums(&target),
        checksums(source),
        "restore --latest vs source"
    );
    let restored = match source.flavor() {
        Flavor::MariaDb => target.sql("SELECT @@gtid_slave_pos").trim().to_string(),
        Flavor::MySql => gtid_state(&target),
    };
    assert_eq!(restored, gtid_state(source));
}

/// Every archived segment follows the previous one: within a file positions touch (unless a
/// new piece starts by GTID, where a MySQL server leaves out what the archive has), holdfast
/// sees no gap, and GTID sequence numbers only grow (no duplicate transaction).
fn assert_continuous(repo: &Repo) {
    let info = json(&holdfast(&["info", "--repo", &repo.url(), "--json"]));
    let gaps = &info["recoverable_window"]["gaps"];
    assert!(gaps.as_array().is_none_or(|g| g.is_empty()), "gaps: {gaps}");
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    let segments = json(&out)["segments"].clone();
    let segments = segments.as_array().unwrap();
    let mut last_seq_no = 0u64;
    for pair in segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a["file"] == b["file"]
            && a["server_id"] == b["server_id"]
            && b["start_pos"] != 0
            && b["piece_start"]["kind"] != "gtid"
        {
            assert_eq!(a["end_pos"], b["start_pos"], "hole between {a} and {b}");
        }
    }
    for s in segments {
        if let Some(first) = s["first_gtid"].as_str() {
            let seq = gtid_number(first);
            assert!(
                seq > last_seq_no,
                "GTID {first} archived twice or out of order"
            );
        }
        if let Some(last) = s["last_gtid"].as_str() {
            last_seq_no = gtid_number(last);
        }
    }
}

#[test]
fn survives_connection_kill_server_crash_and_its_own_kill() {
    let mut source = TestServer::start();
    let repo = Repo::init();
    source.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)");
    writes(&source, 20);
    backup(&repo, &source, &[]);
    let mut streamer = spawn_streamer(&repo, &source);
    writes(&source, 30);
    wait_archived(&repo, source.sql("SELECT @@gtid_binlog_pos").trim());

    // 1. The server kills the replication connection.
    let dump = source
        .sql("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
    let dump = dump.trim();
    assert!(!dump.is_empty(), "no Binlog Dump thread on the source");
    source.sql(&format!("KILL {dump}"));
    writes(&source, 30);
    wait_archived(&repo, source.sql("SELECT @@gtid_binlog_pos").trim());

    // 2. The server crashes and comes back (a new binlog file, the old one never rotated).
    source.kill();
    source.restart();
    writes(&source, 30);
    wait_archived(&repo, source.sql("SELECT @@gtid_binlog_pos").trim());

    // 3. holdfast is killed with -9 mid-stream and started again.
    writes(&source, 10);
    streamer.kill().unwrap();
    let _ = streamer.wait();
    writes(&source, 30);
    streamer = spawn_streamer(&repo, &source);
    writes(&source, 10);
    let end = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    wait_archived(&repo, &end);
    stop(streamer);

    assert_continuous(&repo);
    restored_latest_equals(&repo, &source);
}

#[test]
fn follows_a_failover_to_a_promoted_replica_by_gtid() {
    follows_a_failover_by_gtid(Flavor::MariaDb);
}

#[test]
fn mysql_follows_a_failover_to_a_promoted_replica_by_gtid() {
    follows_a_failover_by_gtid(Flavor::MySql);
}

fn follows_a_failover_by_gtid(flavor: Flavor) {
    let extra = vec!["--log-slave-updates".to_string()];
    let mut primary = TestServer::start_with(ServerOptions {
        server_id: 1,
        extra_args: extra.clone(),
        flavor,
        ..Default::default()
    });
    let replica = TestServer::start_with(ServerOptions {
        server_id: 2,
        extra_args: extra,
        flavor,
        ..Default::default()
    });
    let auto_position = match flavor {
        Flavor::MariaDb => "MASTER_USE_GTID=slave_pos",
        Flavor::MySql => "MASTER_AUTO_POSITION=1",
    };
    replica.sql(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
         {auto_position}; START SLAVE",
        primary.port()
    ));
    let repo = Repo::init();
    primary.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)");
    writes(&primary, 20);
    backup(&repo, &primary, &[]);
    writes(&primary, 20);
    let once = |server: &TestServer| {
        let out = stream_until_caught_up(&repo.url(), &server.url(), &[]);
        assert_ok(&out, "binlog stream");
    };
    once(&primary);
    // More work reaches the replica but not the archive; then the primary dies.
    writes(&primary, 15);
    let pos = gtid_state(&primary);
    let waited = match flavor {
        Flavor::MariaDb => replica.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)")),
        Flavor::MySql => replica.sql(&format!("SELECT WAIT_FOR_EXECUTED_GTID_SET('{pos}', 30)")),
    };
    assert_eq!(
        waited.trim(),
        "0",
        "the replica did not catch up with {pos}"
    );
    primary.kill();
    // Promotion: the replica stops replicating and takes writes.
    replica.sql("STOP SLAVE; RESET SLAVE ALL");
    writes(&replica, 25);
    once(&replica);
    assert_eq!(archived_state(&repo).unwrap(), gtid_state(&replica));
    assert_continuous(&repo);
    restored_latest_equals(&repo, &replica);
}

#[test]
fn a_reinitialised_server_never_overwrites_the_archive() {
    reinitialised_server_never_overwrites_the_archive(Flavor::MariaDb);
}

#[test]
fn a_reinitialised_mysql_server_never_overwrites_the_archive() {
    reinitialised_server_never_overwrites_the_archive(Flavor::MySql);
}

fn reinitialised_server_never_overwrites_the_archive(flavor: Flavor) {
    let start = || {
        TestServer::start_with(ServerOptions {
            flavor,
            ..Default::default()
        })
    };
    let first = start();
    let repo = Repo::init();
    first.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)");
    writes(&first, 10);
    let out = stream_until_caught_up(&repo.url(), &first.url(), &[]);
    assert_ok(&out, "stream the first server");
    let before = repo.files();
    drop(first);
    // Same server_id, binlog numbering from 000001 again, another history.
    std::thread::sleep(Duration::from_millis(1100));
    let second = start();
    second.sql("CREATE DATABASE other");
    let out = stream_until_caught_up(&repo.url(), &second.url(), &[]);
    assert_code(&out, 12, "stream a re-initialised server");
    assert!(text(&out).contains("1236"), "{}", text(&out));
    let after: Vec<String> = repo
        .files()
        .into_iter()
        .filter(|f| !f.starts_with("locks/"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|f| !f.starts_with("locks/"))
        .collect();
    assert_eq!(after, before, "the archive must be untouched");
}

/// The archived bytes of each file of `server` equal the server's file (the "in use" flag of
/// the active file's format description aside).
fn assert_archive_equals_server_files(repo: &Repo, server: &TestServer) {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for s in json(&out)["segments"].as_array().unwrap() {
        let object = repo.path().join(s["object"].as_str().unwrap());
        let raw = zstd::decode_all(&std::fs::read(&object).unwrap()[..]).unwrap();
        files
            .entry(s["file"].as_str().unwrap().to_string())
            .or_default()
            .extend_from_slice(&raw);
    }
    assert!(!files.is_empty());
    for (file, bytes) in files {
        let mut original = std::fs::read(server.datadir().join(&file)).unwrap();
        original[4 + 17] &= !1;
        assert!(
            bytes == original,
            "{file}: archived bytes differ from the server's"
        );
    }
}

#[test]
fn mysql_archive_survives_dump_thread_kill_and_its_own_kill() {
    let source = TestServer::start_with(ServerOptions {
        flavor: Flavor::MySql,
        ..Default::default()
    });
    let repo = Repo::init();
    source.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)");
    writes(&source, 20);
    let mut streamer = spawn_streamer(&repo, &source);
    writes(&source, 30);
    wait_archived(&repo, &gtid_state(&source));

    // 1. The server kills the replication connection.
    let dump = source
        .sql("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
    let dump = dump.trim();
    assert!(!dump.is_empty(), "no Binlog Dump thread on the source");
    source.sql(&format!("KILL {dump}"));
    writes(&source, 30);
    source.sql("FLUSH BINARY LOGS");
    writes(&source, 10);
    wait_archived(&repo, &gtid_state(&source));

    // 2. holdfast is killed with -9 mid-stream and started again.
    writes(&source, 10);
    streamer.kill().unwrap();
    let _ = streamer.wait();
    writes(&source, 30);
    streamer = spawn_streamer(&repo, &source);
    writes(&source, 10);
    wait_archived(&repo, &gtid_state(&source));
    stop(streamer);

    assert_continuous(&repo);
    assert_archive_equals_server_files(&repo, &source);
    // binlog list shows MySQL GTIDs and uuid:interval states.
    let out = holdfast(&["binlog", "list", "--repo", &repo.url()]);
    assert_ok(&out, "binlog list");
    let uuid = source.sql("SELECT @@server_uuid").trim().to_string();
    assert!(text(&out).contains(&format!("{uuid}:1-")), "{}", text(&out));
}

/// The heartbeat record as the streamer last wrote it.
fn stream_status(repo: &Repo) -> serde_json::Value {
    let path = repo.path().join("binlog/stream-status.json");
    let text = std::fs::read_to_string(&path).expect("binlog/stream-status.json");
    serde_json::from_str(&text).unwrap()
}

fn rfc3339_secs(v: &serde_json::Value) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A routine restart of the source (a clean shutdown, then the server back on the same port)
/// must not end archiving: the stream logs the disconnect and the reconnect at the default
/// verbosity, archives the writes after the restart (every GTID once), keeps its heartbeat
/// record fresh, and exits 0 only on SIGTERM.
#[test]
fn a_clean_shutdown_of_the_source_never_ends_the_stream() {
    let mut source = TestServer::start();
    let repo = Repo::init();
    source.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)");
    writes(&source, 20);
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
        .args(["--flush-interval", "200ms", "--max-retry-wait", "1s"])
        .args(["--heartbeat", "1s", "--status-interval", "1s"])
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start holdfast binlog stream");
    writes(&source, 20);
    wait_archived(&repo, source.sql("SELECT @@gtid_binlog_pos").trim());

    // The record says streaming, and an idle source is caught up as of a moment ago.
    std::thread::sleep(Duration::from_secs(3));
    let st = stream_status(&repo);
    assert_eq!(st["state"], "streaming", "{st}");
    assert_eq!(st["pid"], streamer.id(), "{st}");
    assert_eq!(
        st["gtid_state"].as_str().unwrap(),
        source.sql("SELECT @@gtid_binlog_pos").trim()
    );
    assert!(now_secs() - rfc3339_secs(&st["written"]) <= 3, "{st}");
    assert!(
        now_secs() - rfc3339_secs(&st["caught_up_as_of"]) <= 4,
        "{st}"
    );
    assert_eq!(st["lag_seconds"], 0, "{st}");
    let written = rfc3339_secs(&st["written"]);
    std::thread::sleep(Duration::from_millis(2100));
    assert!(
        rfc3339_secs(&stream_status(&repo)["written"]) > written,
        "the record is not rewritten"
    );

    // A clean shutdown: the server ends the dump (EOF) and closes the connection.
    source.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        streamer.try_wait().unwrap().is_none(),
        "the stream ended when the source shut down"
    );
    let st = stream_status(&repo);
    assert_eq!(st["state"], "reconnecting", "{st}");
    assert!(st["last_error"].is_string(), "{st}");
    assert!(now_secs() - rfc3339_secs(&st["written"]) <= 3, "{st}");

    source.restart();
    writes(&source, 25);
    let end = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    wait_archived(&repo, &end);
    assert!(streamer.try_wait().unwrap().is_none());
    let st = stream_status(&repo);
    assert_eq!(st["state"], "streaming", "{st}");
    assert!(st["reconnects"].as_u64().unwrap() >= 1, "{st}");

    unsafe { libc::kill(streamer.id() as i32, libc::SIGTERM) };
    let out = streamer.wait_with_output().unwrap();
    assert!(out.status.success(), "streamer exit: {}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("holdfast binlog stream: streaming"), "{log}");
    assert!(log.contains("holdfast binlog stream: lost"), "{log}");
    assert!(log.contains("holdfast binlog stream: reconnected"), "{log}");
    assert!(log.contains("archive at GTID"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in a log that is not a terminal: {log}"
    );
    assert_eq!(stream_status(&repo)["state"], "stopped");

    assert_continuous(&repo);
    restored_latest_equals(&repo, &source);
}

/// The binlogs the archive needs are purged while nothing streams: the stream resumes as a
/// new run from the newest backup's point, the hole shows in `info` and `binlog list` (and
/// their JSON), a point in the hole is refused (15), and a point after it is recovered.
#[test]
fn after_a_purge_the_archive_resumes_as_a_new_run_and_shows_the_hole() {
    let source = TestServer::start();
    let repo = Repo::init();
    source.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)");
    writes(&source, 10);
    backup(&repo, &source, &[]);
    writes(&source, 10);
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "first run");
    let first_end = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();

    // Written while nothing streams, then purged from the server.
    writes(&source, 10);
    let in_hole = format!("0-1-{}", gtid_number(&first_end) + 5);
    source.sql("FLUSH BINARY LOGS");
    let current = source.sql("SHOW MASTER STATUS");
    let current = current.split('\t').next().unwrap().trim().to_string();
    // The server purges a file only once its binlog checkpoint has moved on: try for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        source.sql(&format!("PURGE BINARY LOGS TO '{current}'"));
        let logs = source.sql("SHOW BINARY LOGS");
        if logs.lines().count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the server keeps {logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
    backup(&repo, &source, &[]);
    let new_run_from = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    writes(&source, 10);

    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream after the purge");
    assert!(text(&out).contains("new run"), "{}", text(&out));
    assert_eq!(archived_state(&repo).unwrap(), gtid_state(&source));

    let segments = json(&holdfast(&[
        "binlog",
        "list",
        "--repo",
        &repo.url(),
        "--json",
    ]));
    let new_runs: Vec<&serde_json::Value> = segments["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["piece_start"]["kind"] == "new_run")
        .collect();
    assert_eq!(new_runs.len(), 1, "{segments}");
    assert_eq!(
        new_runs[0]["piece_start"]["after_gap_from"],
        first_end.as_str()
    );
    assert_eq!(new_runs[0]["piece_start"]["from"], new_run_from.as_str());
    assert_eq!(new_runs[0]["hole_before"]["new_run"], true);
    let listing = holdfast(&["binlog", "list", "--repo", &repo.url()]);
    assert!(
        text(&listing).contains("HOLE after GTID"),
        "{}",
        text(&listing)
    );

    let info = json(&holdfast(&["info", "--repo", &repo.url(), "--json"]));
    let window = &info["recoverable_window"];
    let holes = window["holes"].as_array().unwrap();
    assert_eq!(holes.len(), 1, "{window}");
    assert_eq!(holes[0]["from_gtid"], first_end.as_str());
    assert_eq!(holes[0]["to_gtid"], new_run_from.as_str());
    assert_eq!(window["spans"].as_array().unwrap().len(), 2, "{window}");
    assert_eq!(window["to_gtid"], gtid_state(&source).as_str());
    let human = holdfast(&["info", "--repo", &repo.url()]);
    assert!(
        text(&human).contains("HOLE after segment"),
        "{}",
        text(&human)
    );

    // A point inside the hole: refused, naming it, nothing changed.
    let target = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "--to-gtid",
        &in_hole,
    ]);
    assert_code(&out, 15, "restore into the hole");
    assert!(text(&out).contains("hole"), "{}", text(&out));
    assert!(!has_database(&target, "app"));
    // After it: from the backup at the new run's start.
    restored_latest_equals(&repo, &source);

    let st = stream_status(&repo);
    assert_eq!(st["state"], "stopped", "{st}");
    assert!(st["caught_up_as_of"].is_string(), "{st}");
}

/// A streamer with extra flags, its stderr appended to `log` (for the reconnect lines).
fn spawn_streamer_with(repo: &Repo, server: &TestServer, log: &Path, extra: &[&str]) -> Child {
    Command::new(bin())
        .args([
            "binlog",
            "stream",
            "--repo",
            &repo.url(),
            "--source",
            &server.url(),
        ])
        .args(["--max-retry-wait", "1s", "--heartbeat", "1s"])
        .args(extra)
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("streamer log"),
        )
        .spawn()
        .expect("start holdfast binlog stream")
}

/// Like [`wait_archived`], with the streamer's log in the failure.
fn wait_archived_logged(repo: &Repo, gtid_pos: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived_state(repo).as_deref() != Some(gtid_pos) {
        assert!(
            Instant::now() < deadline,
            "the archive did not reach {gtid_pos} (it is at {:?}); streamer log:\n{}",
            archived_state(repo),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the streamer with SIGTERM and returns its log.
fn stop_with_log(mut child: Child, log: &Path) -> String {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "streamer exit {status}: {log}");
    log
}

/// The flush and status timers fire while an event is half received: the event read must
/// survive being interrupted by them (a packet read half and dropped would desynchronise the
/// protocol: a garbage packet, an integrity error, a dead stream). Events of a few hundred KB
/// under a 1 ms flush and status interval: no reconnect, every GTID archived exactly once.
#[test]
fn timers_firing_mid_event_never_break_the_stream() {
    for flavor in [Flavor::MariaDb, Flavor::MySql] {
        let source = TestServer::start_with(ServerOptions {
            flavor,
            ..Default::default()
        });
        let repo = Repo::init();
        source.sql("CREATE DATABASE app; CREATE TABLE app.big (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB)");
        backup(&repo, &source, &[]);
        let log = repo.dir.path().join("stream.log");
        let streamer = spawn_streamer_with(
            &repo,
            &source,
            &log,
            &["--flush-interval", "1ms", "--status-interval", "1ms"],
        );
        for round in 0..8 {
            let mut sql = String::new();
            for i in 0..10 {
                sql.push_str(&format!(
                    "INSERT INTO app.big (b) VALUES (REPEAT(SHA2('{round}-{i}', 256), {}));\n",
                    4000 + 500 * i
                ));
            }
            sql.push_str(&format!(
                "UPDATE app.big SET b = REPEAT(SHA2(CONCAT(id, '{round}'), 256), 3000) WHERE id % 7 = {};\n",
                round % 7
            ));
            source.sql(&sql);
        }
        wait_archived_logged(&repo, &gtid_state(&source), &log);
        let log = stop_with_log(streamer, &log);
        assert!(
            !log.contains("lost"),
            "{flavor:?}: the stream reconnected: {log}"
        );
        assert_continuous(&repo);
        restored_latest_equals(&repo, &source);
    }
}

/// The newest segment index entry, read straight from the repository (fast enough to poll
/// while a large transaction streams).
fn newest_index(repo: &Repo) -> Option<serde_json::Value> {
    let dir = repo.path().join("binlog/index");
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .max()?;
    let text = std::fs::read_to_string(repo.path().join("binlog/index").join(newest)).ok()?;
    serde_json::from_str(&text).ok()
}

/// One transaction of about 25 MB in events of about 100 KB each.
fn large_transaction(server: &TestServer, tag: &str) {
    let mut sql = String::from("BEGIN;\n");
    for i in 0..250 {
        sql.push_str(&format!(
            "INSERT INTO app.big (b) VALUES (REPEAT(SHA2('{tag}-{i}', 256), 1600));\n"
        ));
    }
    sql.push_str("COMMIT;\n");
    server.sql(&sql);
}

/// Waits until the archive's newest segment ends inside a transaction (a large one being cut
/// by `--max-segment`); false if the transaction was archived whole before that was seen.
fn wait_tail_inside_transaction(repo: &Repo, until: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match newest_index(repo) {
            Some(s) if s["open_transaction"] == true => return true,
            Some(s) if s["gtid_state"] == until => return false,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    panic!("the archive never reached {until}");
}

/// A transaction larger than `--max-segment` is archived in pieces; the connection is cut
/// while the archive ends inside it (the server kills the dump thread), then holdfast itself
/// is killed with -9 while the archive ends inside another. After each, the archive's GTID
/// state equals the server's (no hole: the transaction's GTID is in it; no duplicate) and a
/// restore to the latest point equals the source.
#[test]
fn reconnect_and_restart_inside_a_transaction_larger_than_a_segment() {
    inside_a_large_transaction(Flavor::MariaDb);
}

#[test]
fn mysql_reconnect_and_restart_inside_a_transaction_larger_than_a_segment() {
    inside_a_large_transaction(Flavor::MySql);
}

fn inside_a_large_transaction(flavor: Flavor) {
    let source = TestServer::start_with(ServerOptions {
        flavor,
        ..Default::default()
    });
    let repo = Repo::init();
    source.sql(
        "CREATE DATABASE app; CREATE TABLE app.big (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB)",
    );
    backup(&repo, &source, &[]);
    let log = repo.dir.path().join("stream.log");
    let extra = ["--flush-interval", "100ms", "--max-segment", "64KiB"];
    let mut streamer = spawn_streamer_with(&repo, &source, &log, &extra);

    // 1. The server kills the replication connection while the archive ends inside a
    //    transaction. Retried with another transaction if the first was archived too fast.
    let mut cut = false;
    for attempt in 0..5 {
        large_transaction(&source, &format!("cut{attempt}"));
        let end = gtid_state(&source);
        if wait_tail_inside_transaction(&repo, &end) {
            let dump = source.sql(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
            );
            source.sql(&format!("KILL {}", dump.trim()));
            cut = true;
        }
        // The transaction's own GTID ends the state (MariaDB's position would hide a missed
        // GTID once a later one is archived).
        wait_archived_logged(&repo, &end, &log);
        if cut {
            break;
        }
    }
    assert!(cut, "never caught the archive inside a transaction");

    // 2. holdfast is killed with -9 while the archive ends inside a transaction, and started
    //    again.
    let mut killed = false;
    for attempt in 0..5 {
        large_transaction(&source, &format!("kill{attempt}"));
        let end = gtid_state(&source);
        if wait_tail_inside_transaction(&repo, &end) {
            streamer.kill().unwrap();
            let _ = streamer.wait();
            killed = newest_index(&repo).unwrap()["open_transaction"] == true;
            streamer = spawn_streamer_with(&repo, &source, &log, &extra);
        }
        wait_archived_logged(&repo, &end, &log);
        if killed {
            break;
        }
    }
    assert!(killed, "never killed the streamer inside a transaction");
    source.sql("INSERT INTO app.big (b) VALUES ('after')");
    wait_archived_logged(&repo, &gtid_state(&source), &log);
    let log = stop_with_log(streamer, &log);
    assert!(log.contains("reconnected"), "{log}");

    assert_continuous(&repo);
    restored_latest_equals(&repo, &source);
}
