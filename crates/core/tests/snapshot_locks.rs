//! A snapshot member gives back a table's metadata lock once it has read the table, and keeps
//! its snapshot: DDL on a table already read does not wait for the backup's end, and the rows
//! read afterwards are still those of the snapshot.

use std::time::{Duration, Instant};

use holdfast::source::snapshot::{open_snapshot, SnapshotOptions, RELEASE_TABLE_LOCKS};
use holdfast::source::{ConnectionConfig, ConnectionSpec, ServerIdentity};
use holdfast_testkit::TestServer;
use mysql_async::prelude::*;

/// How long an `ALTER TABLE` of `table` from another session takes, giving up after 2 s.
async fn alter_takes(server: &TestServer, table: &str, comment: &str) -> Result<Duration, String> {
    let mut other = server.conn().await;
    other
        .query_drop("SET SESSION lock_wait_timeout = 2")
        .await
        .unwrap();
    let started = Instant::now();
    other
        .query_drop(format!("ALTER TABLE {table} COMMENT '{comment}'"))
        .await
        .map(|()| started.elapsed())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_releases_a_read_tables_lock_and_keeps_its_snapshot() {
    let server = TestServer::start();
    let mut admin = server.conn().await;
    for sql in [
        "CREATE DATABASE d",
        "CREATE TABLE d.read_first (id INT PRIMARY KEY)",
        "CREATE TABLE d.read_later (id INT PRIMARY KEY)",
        "INSERT INTO d.read_first VALUES (1), (2)",
        "INSERT INTO d.read_later VALUES (1), (2), (3)",
    ] {
        admin.query_drop(sql).await.unwrap();
    }
    let config = ConnectionConfig::resolve(&ConnectionSpec {
        url: Some(server.socket_url()),
        ..Default::default()
    })
    .unwrap();
    let mut probe = config.connect().await.unwrap();
    let identity = ServerIdentity::read(&mut probe).await.unwrap();
    let snapshot = open_snapshot(
        &config,
        &identity,
        &SnapshotOptions {
            readers: 1,
            lock_timeout: Duration::from_secs(10),
            stall_timeout: None,
        },
    )
    .await
    .unwrap();
    let mut control = snapshot.control;

    // Rows committed after the snapshot must stay invisible to it throughout.
    admin
        .query_drop("INSERT INTO d.read_later VALUES (4)")
        .await
        .unwrap();

    let n: Option<u64> = control
        .query_first("SELECT COUNT(*) FROM d.read_first")
        .await
        .unwrap();
    assert_eq!(n, Some(2));
    // Still inside the transaction: the lock is held, DDL waits (and gives up).
    let held = alter_takes(&server, "d.read_first", "held").await;
    assert!(
        held.as_ref()
            .is_err_and(|e| e.contains("Lock wait timeout")),
        "ALTER of a table the snapshot read and still locks: {held:?}"
    );

    control.query_drop(RELEASE_TABLE_LOCKS).await.unwrap();
    let released = alter_takes(&server, "d.read_first", "released").await;
    assert!(
        released.as_ref().is_ok_and(|t| *t < Duration::from_secs(1)),
        "ALTER after the lock was released: {released:?}"
    );

    // The snapshot survived the rollback to the savepoint.
    let n: Option<u64> = control
        .query_first("SELECT COUNT(*) FROM d.read_later")
        .await
        .unwrap();
    assert_eq!(
        n,
        Some(3),
        "a row committed after the snapshot became visible"
    );
}
