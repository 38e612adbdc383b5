//! Physical backups (mariabackup): a full and two incrementals taken while money moves between
//! accounts, each restored into a fresh datadir and compared table by table with the source as
//! it was at the backup's consistent point.
//!
//! The reference state: a replica of the source, stopped before the backups, is advanced with
//! `START SLAVE UNTIL master_gtid_pos = <the backup's GTID>`; it then holds exactly the source's
//! data at that GTID, which is what the restored backup must hold.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{ServerOptions, TestServer};

const ACCOUNTS: u32 = 5000;
const INITIAL: i64 = 1000;

fn physical_backup(repo: &Repo, server: &TestServer, extra: &[&str]) -> serde_json::Value {
    let source = server.url();
    let url = repo.url();
    let mut args = vec![
        "backup", "--repo", &url, "--source", &source, "--engine", "physical", "--json",
    ];
    args.extend_from_slice(extra);
    let out = holdfast(&args);
    assert_ok(&out, "physical backup");
    json(&out)
}

fn restore_datadir(repo: &Repo, id: &str, datadir: &Path) -> serde_json::Value {
    let dir = datadir.display().to_string();
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        id,
        "--datadir",
        &dir,
        "--json",
    ]);
    assert_ok(&out, "physical restore");
    json(&out)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replicates `source` into `replica` until the replica has everything, then stops it.
fn attach_replica(source: &TestServer, replica: &TestServer) {
    replica.sql(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
         MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos; START SLAVE;",
        source.port()
    ));
    let target = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    wait_for("the replica to catch up", || {
        replica.sql("SELECT @@gtid_slave_pos").trim() == target
    });
    replica.sql("STOP SLAVE");
}

/// Advances the stopped replica to exactly `gtid` and returns its table checksums.
fn replica_at(replica: &TestServer, gtid: &str) -> Vec<String> {
    replica.sql(&format!("START SLAVE UNTIL master_gtid_pos = '{gtid}'"));
    wait_for(&format!("the replica to reach {gtid}"), || {
        replica.sql("SELECT @@gtid_slave_pos").trim() == gtid
    });
    replica.sql("STOP SLAVE");
    assert_eq!(replica.sql("SELECT @@gtid_slave_pos").trim(), gtid);
    checksums(replica)
}

#[test]
fn full_and_two_incrementals_under_load_restore_to_their_consistent_points() {
    let source = TestServer::start();
    let replica = TestServer::start_with(ServerOptions {
        server_id: 2,
        ..Default::default()
    });
    attach_replica(&source, &replica);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = source.conn().await;
        holdfast_testkit::data::create_accounts(&mut conn, "bank", ACCOUNTS, INITIAL)
            .await
            .unwrap();
    });
    // Some bulk so the copy takes a moment while the writers run.
    source.sql(
        "CREATE TABLE bank.ledger (id INT PRIMARY KEY, note VARCHAR(200)) ENGINE=InnoDB; \
         USE bank; INSERT INTO bank.ledger SELECT seq, REPEAT(MD5(seq), 5) FROM seq_1_to_100000;",
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let mut conn = rt.block_on(source.conn());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let limits = holdfast_testkit::data::TransferLimits::default();
                rt.block_on(holdfast_testkit::data::transfer_money(
                    &mut conn, "bank", &stop, limits,
                ))
                .expect("transfer writer")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let repo = Repo::init();
    let full = physical_backup(&repo, &source, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let inc1 = physical_backup(&repo, &source, &["--incremental"]);
    std::thread::sleep(Duration::from_millis(500));
    let inc2 = physical_backup(&repo, &source, &["--incremental"]);
    stop.store(true, Ordering::SeqCst);
    let transfers: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(transfers > 100, "the writers barely ran ({transfers})");

    // The chain links up: each incremental starts where its parent ended.
    let id = |b: &serde_json::Value| b["id"].as_str().unwrap().to_string();
    assert_eq!(full["physical"]["kind"], "full");
    assert_eq!(inc1["physical"]["parent"], full["id"]);
    assert_eq!(inc2["physical"]["parent"], inc1["id"]);
    assert_eq!(inc1["physical"]["from_lsn"], full["physical"]["to_lsn"]);
    assert_eq!(inc2["physical"]["from_lsn"], inc1["physical"]["to_lsn"]);
    // (How much an incremental copies depends on how far the server's checkpoint moved since
    // its parent, which mariabackup uses as `to_lsn`; on a small, young test server it may not
    // have moved, so the size is not asserted.)
    let gtids: Vec<String> = [&full, &inc1, &inc2]
        .iter()
        .map(|b| {
            b["consistent_point"]["gtid_set"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        gtids[0] != gtids[1] && gtids[1] != gtids[2],
        "writes must land between the backups: {gtids:?}"
    );

    // `verify` walks the whole chain.
    let out = holdfast(&["verify", "--repo", &repo.url(), &id(&inc2), "--json"]);
    assert_ok(&out, "verify chain");
    let report = json(&out);
    assert_eq!(report["backups"][0]["chain"].as_array().unwrap().len(), 3);
    assert_eq!(report["backups"][0]["files"], 6);

    let scratch = tempfile::tempdir().unwrap();
    for (i, (backup, gtid)) in [&full, &inc1, &inc2].iter().zip(&gtids).enumerate() {
        let expected = replica_at(&replica, gtid);
        assert!(
            expected.iter().any(|l| l.starts_with("`bank`.`accounts`")),
            "{expected:?}"
        );
        let datadir = scratch.path().join(format!("restore-{i}"));
        let report = restore_datadir(&repo, &id(backup), &datadir);
        assert_eq!(report["chain"].as_array().unwrap().len(), i + 1);
        assert_eq!(report["consistent_point"]["gtid_set"], gtid.as_str());
        let restored = TestServer::start_on_datadir(
            &datadir,
            ServerOptions {
                server_id: 10 + i as u32,
                ..Default::default()
            },
        );
        assert_eq!(
            checksums(&restored),
            expected,
            "backup {i} ({}) differs from the source at GTID {gtid}",
            id(backup)
        );
        let total = restored.sql("SELECT SUM(balance) FROM bank.accounts");
        assert_eq!(total.trim(), (ACCOUNTS as i64 * INITIAL).to_string());
    }
}
