//! Restores into MariaDB load rows by bulk execute: commands respect the target's
//! `max_allowed_packet`, and a chunk whose damage shows only at its end rolls back the batches
//! already sent.

mod common;

use common::*;
use holdfast_testkit::TestServer;

/// A server-wide status counter.
fn global_status(server: &TestServer, name: &str) -> u64 {
    let row = server.sql(&format!("SHOW GLOBAL STATUS LIKE '{name}'"));
    let value = row.split('\t').nth(1).unwrap_or_default().trim();
    value.parse().unwrap_or_else(|_| panic!("{name}: {row:?}"))
}

#[test]
fn damaged_end_of_a_large_chunk_rolls_back_the_batches_sent() {
    let source = TestServer::start();
    // About 15 MB of hex digits in one chunk (7 MB compressed, read in several pieces): several
    // bulk commands go out before the damage at its end is read.
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(600)); \
         USE d; INSERT INTO d.t SELECT seq, CONCAT(SHA2(seq, 512), SHA2(-seq, 512), \
         SHA2(seq + 0.5, 512), SHA2(seq - 0.5, 512)) FROM seq_1_to_30000;",
    );
    let repo = Repo::init();
    backup(&repo, &source, &["--chunk-size", "256MiB"]);
    let chunks: Vec<String> = repo
        .files()
        .into_iter()
        .filter(|f| f.ends_with(".tsv.zst"))
        .collect();
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let path = repo.path().join(&chunks[0]);
    let mut body = std::fs::read(&path).unwrap();
    let at = body.len() - 5;
    body[at] ^= 0x55;
    std::fs::write(&path, &body).unwrap();

    let target = TestServer::start();
    let (commits, writes) = (
        global_status(&target, "Com_commit"),
        global_status(&target, "Handler_write"),
    );
    let out = restore_latest(&repo, &target);
    assert_code(&out, 20, "restore of a chunk damaged at its end");
    assert!(text(&out).contains(&chunks[0]), "{}", text(&out));
    assert!(
        global_status(&target, "Handler_write") >= writes + 5000,
        "batches before the damage were sent"
    );
    assert_eq!(
        global_status(&target, "Com_commit"),
        commits,
        "nothing committed"
    );
    assert!(global_status(&target, "Com_rollback") >= 1);
    assert!(!has_database(&target, "d"));
}

#[test]
fn commands_stay_under_the_targets_max_allowed_packet() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v MEDIUMBLOB); \
         USE d; INSERT INTO d.t SELECT seq, REPEAT(CHAR(seq % 256), 300000) FROM seq_1_to_12;",
    );
    let repo = Repo::init();
    backup(&repo, &source, &[]);
    let target = TestServer::start();
    target.sql("SET GLOBAL max_allowed_packet = 1048576");
    restore(&repo, &target, &["--verify"]);
    assert_eq!(checksums(&source), checksums(&target));
    assert!(
        global_status(&target, "Com_stmt_execute") >= 4,
        "several commands"
    );
}

#[test]
fn a_row_over_the_targets_max_allowed_packet_is_refused_clearly() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v MEDIUMBLOB); \
         INSERT INTO d.t VALUES (1, 'small'), (2, REPEAT('x', 1500000));",
    );
    let repo = Repo::init();
    backup(&repo, &source, &[]);
    let target = TestServer::start();
    target.sql("SET GLOBAL max_allowed_packet = 1048576");
    let out = restore_latest(&repo, &target);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("max_allowed_packet"), "{}", text(&out));
    assert!(!has_database(&target, "d"));
}
