//! The data generators: account transfers keep their total; the mixed table round-trips.

use holdfast_testkit::data::{
    create_accounts, create_mixed_table, table_checksums, total_balance, transfer_money,
    TransferLimits,
};
use holdfast_testkit::TestServer;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_preserve_the_total() {
    let server = TestServer::start();
    let mut conn = server.conn().await;
    create_accounts(&mut conn, "bank", 50, 1000).await.unwrap();
    assert_eq!(total_balance(&mut conn, "bank").await.unwrap(), 50_000);

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..3 {
        let url = server.url();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
            transfer_money(&mut conn, "bank", &stop, TransferLimits::default())
                .await
                .unwrap()
        }));
    }
    // Totals read mid-flight in a consistent snapshot are exact too.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(total_balance(&mut conn, "bank").await.unwrap(), 50_000);
    }
    stop.store(true, Ordering::Relaxed);
    let mut transfers = 0;
    for w in writers {
        transfers += w.await.unwrap();
    }
    assert!(transfers > 10, "only {transfers} transfers");
    assert_eq!(total_balance(&mut conn, "bank").await.unwrap(), 50_000);
    let logged: u64 = server
        .sql("SELECT COUNT(*) FROM bank.transfers")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(logged, transfers);
}

#[tokio::test]
async fn transfers_stop_at_their_limits() {
    let server = TestServer::start();
    let mut conn = server.conn().await;
    create_accounts(&mut conn, "bank", 10, 100).await.unwrap();
    let stop = AtomicBool::new(false);
    let limits = TransferLimits {
        max_transfers: 25,
        ..TransferLimits::default()
    };
    assert_eq!(
        transfer_money(&mut conn, "bank", &stop, limits)
            .await
            .unwrap(),
        25
    );
    let limits = TransferLimits {
        max_duration: Duration::from_millis(300),
        ..TransferLimits::default()
    };
    let started = std::time::Instant::now();
    transfer_money(&mut conn, "bank", &stop, limits)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let limits = TransferLimits::default();
    assert_eq!(
        transfer_money(&mut conn, "bank", &stop, limits)
            .await
            .unwrap(),
        0
    );
    assert_eq!(total_balance(&mut conn, "bank").await.unwrap(), 1000);
}

#[tokio::test]
async fn mixed_table_has_edge_cases_and_checksums() {
    let server = TestServer::start();
    let mut conn = server.conn().await;
    create_mixed_table(&mut conn, "m", "t", 2000).await.unwrap();
    assert_eq!(server.sql("SELECT COUNT(*) FROM m.t").trim(), "2000");
    assert_eq!(
        server
            .sql("SELECT HEX(bin), txt, ch FROM m.t WHERE id = 2")
            .trim_end(),
        "00090A0D5C27FF\t\\\\N\tNULL"
    );
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM m.t WHERE id > 1 AND vc IS NULL")
            .trim(),
        "0"
    );
    let sums = table_checksums(&mut conn, "m").await.unwrap();
    assert_eq!(sums.len(), 1);
    assert!(sums[0].1.is_some());

    // Same rows on another server give the same checksum: the generator is deterministic.
    let other = TestServer::start();
    let mut conn2 = other.conn().await;
    create_mixed_table(&mut conn2, "m", "t", 2000)
        .await
        .unwrap();
    assert_eq!(table_checksums(&mut conn2, "m").await.unwrap(), sums);
}

#[tokio::test]
async fn checksums_are_stable_for_tables_with_generated_columns() {
    let server = TestServer::start();
    server.sql(
        "CREATE DATABASE g; \
         CREATE TABLE g.a (id INT PRIMARY KEY, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, \
           total DECIMAL(12,2) AS (qty * price) STORED, v INT AS (qty + 1) VIRTUAL); \
         CREATE TABLE g.b LIKE g.a; \
         INSERT INTO g.a (id, qty, price) SELECT seq, 1 + seq % 5, (seq * 37 % 50000) / 100 \
           FROM g.seq_1_to_3000; \
         INSERT INTO g.b (id, qty, price) SELECT id, qty, price FROM g.a",
    );
    let mut conn = server.conn().await;
    let first = table_checksums(&mut conn, "g").await.unwrap();
    assert_eq!(first[0].1, first[1].1, "equal contents, equal checksums");
    for _ in 0..3 {
        conn.query_drop("FLUSH TABLES").await.unwrap();
        assert_eq!(table_checksums(&mut conn, "g").await.unwrap(), first);
    }
}
