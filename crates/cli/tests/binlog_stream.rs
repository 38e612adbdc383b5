//! `holdfast binlog stream` against real servers: the archive reproduces the server's binlog
//! files byte for byte, resumes without gaps or duplicates, and refuses bad sources clearly.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use holdfast_testkit::{Flavor, ServerOptions, TestServer};

fn stream_once(repo: &Repo, server: &TestServer) -> serde_json::Value {
    let out = stream_until_caught_up(&repo.url(), &server.url(), &["--json"]);
    assert_ok(&out, "binlog stream --until-caught-up");
    json(&out)
}

fn segments(repo: &Repo) -> Vec<serde_json::Value> {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "binlog list");
    json(&out)["segments"].as_array().unwrap().clone()
}

/// The archived files: `file -> decompressed concatenation of its segments`.
fn archived_files(repo: &Repo) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for s in segments(repo) {
        let object = repo.path().join(s["object"].as_str().unwrap());
        let compressed = std::fs::read(&object).unwrap();
        let raw = zstd::decode_all(&compressed[..]).unwrap();
        files
            .entry(s["file"].as_str().unwrap().to_string())
            .or_default()
            .extend_from_slice(&raw);
    }
    files
}

/// A binlog file as the server will leave it when closed: the file being written has the
/// "in use" flag (0x1) set on its format description, which the stream (and so the archive)
/// carries cleared.
fn server_binlog(server: &TestServer, file: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(server.datadir().join(file)).unwrap();
    bytes[4 + 17] &= !1;
    bytes
}

fn write_some(server: &TestServer, rounds: usize) {
    server.sql("CREATE DATABASE IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200), b BLOB)");
    for i in 0..rounds {
        server.sql(&format!(
            "INSERT INTO shop.t (v, b) VALUES (REPEAT('x', {i}), UNHEX('00FF0A09')); \
             BEGIN; UPDATE shop.t SET v = CONCAT(v, 'y') WHERE id % 3 = {m}; DELETE FROM shop.t WHERE id % 7 = {m}; COMMIT",
            m = i % 3
        ));
    }
}

#[test]
fn the_archive_reproduces_every_binlog_file_byte_for_byte() {
    archive_reproduces_every_binlog_file(Flavor::MariaDb);
}

#[test]
fn the_archive_reproduces_every_mysql_binlog_file_byte_for_byte() {
    archive_reproduces_every_binlog_file(Flavor::MySql);
}

fn archive_reproduces_every_binlog_file(flavor: Flavor) {
    let server = TestServer::start_with(ServerOptions {
        flavor,
        ..Default::default()
    });
    let repo = Repo::init();
    write_some(&server, 20);
    server.sql("FLUSH BINARY LOGS");
    write_some(&server, 10);
    server.sql("CREATE TABLE shop.big (id INT PRIMARY KEY, pad LONGTEXT); INSERT INTO shop.big VALUES (1, REPEAT('p', 3000000))");
    let report = stream_once(&repo, &server);
    assert!(
        report["segments_written"].as_u64().unwrap() >= 2,
        "{report}"
    );
    assert_eq!(report["gtid_state"].as_str().unwrap(), gtid_state(&server));

    let files = archived_files(&repo);
    let on_server: Vec<String> = server
        .sql("SHOW BINARY LOGS")
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), on_server);
    for (file, bytes) in &files {
        let original = server_binlog(&server, file);
        // The active file may have grown since (nothing writes here, so it must be equal).
        assert_eq!(bytes.len(), original.len(), "{file}: length");
        let first_diff = bytes.iter().zip(&original).position(|(a, b)| a != b);
        assert!(
            first_diff.is_none(),
            "{file}: archived bytes differ from the server's file at offset {first_diff:?}"
        );
    }

    // mariadb-binlog reads the concatenated archive of each file without complaint.
    let dir = tempfile::tempdir().unwrap();
    for (file, bytes) in &files {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new("mariadb-binlog").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "mariadb-binlog {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A second run with nothing new writes nothing; new events continue the same file.
    let again = stream_once(&repo, &server);
    assert_eq!(again["segments_written"], 0, "{again}");
    write_some(&server, 3);
    let more = stream_once(&repo, &server);
    assert!(more["segments_written"].as_u64().unwrap() >= 1, "{more}");
    for (file, bytes) in archived_files(&repo) {
        assert!(
            bytes == server_binlog(&server, &file),
            "{file} after resume"
        );
    }
}

#[test]
fn a_server_with_the_binlog_off_is_refused_clearly() {
    for flavor in Flavor::ALL {
        binlog_off_is_refused_clearly(flavor);
    }
}

fn binlog_off_is_refused_clearly(flavor: Flavor) {
    let server = TestServer::start_with(ServerOptions {
        binlog: false,
        flavor,
        ..Default::default()
    });
    let repo = Repo::init();
    let out = stream_until_caught_up(&repo.url(), &server.url(), &[]);
    assert_code(&out, 2, "binlog off");
    assert!(text(&out).contains("binary log off"), "{}", text(&out));
    assert!(segments(&repo).is_empty());
}

#[test]
fn a_user_without_replication_grants_is_told_what_to_grant() {
    for flavor in Flavor::ALL {
        user_without_replication_grants_is_told_what_to_grant(flavor);
    }
}

fn user_without_replication_grants_is_told_what_to_grant(flavor: Flavor) {
    let server = TestServer::start_with(ServerOptions {
        flavor,
        ..Default::default()
    });
    server.sql("CREATE USER 'peek'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO 'peek'@'%'");
    let repo = Repo::init();
    let url = format!("mysql://peek@127.0.0.1:{}/", server.port());
    let out = holdfast_env(
        &[
            "binlog",
            "stream",
            "--repo",
            &repo.url(),
            "--source",
            &url,
            "--until-caught-up",
        ],
        &[("MYSQL_PWD", "pw")],
    );
    assert_code(&out, 11, "no REPLICATION SLAVE");
    assert!(text(&out).contains("REPLICATION SLAVE"), "{}", text(&out));
}

#[test]
fn a_statement_based_binlog_is_archived_with_a_clear_warning() {
    let server = TestServer::start_with(ServerOptions {
        binlog_format: "STATEMENT".to_string(),
        ..Default::default()
    });
    let repo = Repo::init();
    write_some(&server, 3);
    let out = stream_until_caught_up(&repo.url(), &server.url(), &[]);
    assert_ok(&out, "stream a STATEMENT binlog");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("binlog_format is not ROW") && stderr.contains("STATEMENT"),
        "{stderr}"
    );
    for (file, bytes) in archived_files(&repo) {
        assert!(bytes == server_binlog(&server, &file), "{file}");
    }
}

#[test]
fn a_mysql_server_without_gtids_is_told_what_to_set() {
    let server = TestServer::start_with(ServerOptions {
        flavor: Flavor::MySql,
        extra_args: vec![
            "--gtid-mode=OFF".to_string(),
            "--enforce-gtid-consistency=OFF".to_string(),
        ],
        ..Default::default()
    });
    let repo = Repo::init();
    let out = stream_until_caught_up(&repo.url(), &server.url(), &[]);
    assert_code(&out, 2, "gtid_mode=OFF");
    assert!(
        text(&out).contains("gtid_mode=ON") && text(&out).contains("enforce_gtid_consistency=ON"),
        "{}",
        text(&out)
    );
    assert!(segments(&repo).is_empty());
}

/// The archive ends in a file the server then purges: the stream cannot continue it, so it
/// starts a new run at the server's oldest binlog (after its `gtid_purged`), records the hole
/// and says so, instead of refusing forever.
#[test]
fn a_mysql_server_that_purged_the_needed_binlogs_starts_a_new_run_after_a_hole() {
    let server = TestServer::start_with(ServerOptions {
        flavor: Flavor::MySql,
        ..Default::default()
    });
    let repo = Repo::init();
    write_some(&server, 3);
    let out = stream_until_caught_up(&repo.url(), &server.url(), &[]);
    assert_ok(&out, "first stream");
    let before = segments(&repo);
    let first_end = before.last().unwrap()["gtid_state"].clone();
    write_some(&server, 3);
    server.sql("FLUSH BINARY LOGS");
    write_some(&server, 3);
    let newest = server
        .sql("SHOW MASTER STATUS")
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    server.sql(&format!("PURGE BINARY LOGS TO '{newest}'"));
    let purged = normalize_gtid_set(&server.sql("SELECT @@global.gtid_purged"));
    let out = stream_until_caught_up(&repo.url(), &server.url(), &[]);
    assert_ok(&out, "stream after the purge");
    assert!(text(&out).contains("new run"), "{}", text(&out));
    let after = segments(&repo);
    assert!(after.len() > before.len());
    let first_new = &after[before.len()];
    assert_eq!(first_new["piece_start"]["kind"], "new_run", "{first_new}");
    assert_eq!(first_new["piece_start"]["after_gap_from"], first_end);
    assert_eq!(first_new["piece_start"]["from"], purged.as_str());
    assert_eq!(
        after.last().unwrap()["gtid_state"].as_str().unwrap(),
        gtid_state(&server)
    );
    let info = json(&holdfast(&["info", "--repo", &repo.url(), "--json"]));
    let holes = info["recoverable_window"]["holes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(holes.len(), 1, "{info}");
    assert_eq!(holes[0]["new_run"], true);
}
