//! A backup taken while money moves between accounts restores to exactly the invariant total.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use holdfast_testkit::{Flavor, ServerOptions, TestServer};

const ACCOUNTS: usize = 2000;
const INITIAL: i64 = 1000;

#[test]
fn backup_under_transfer_load_is_consistent() {
    backup_under_transfer_load(Flavor::MariaDb);
}

/// The same on MySQL 5.7, whose snapshot is aligned under `FLUSH TABLES WITH READ LOCK`.
#[test]
fn mysql_backup_under_transfer_load_is_consistent() {
    backup_under_transfer_load(Flavor::MySql);
}

fn backup_under_transfer_load(flavor: Flavor) {
    let opts = || ServerOptions {
        flavor,
        ..ServerOptions::default()
    };
    let source = TestServer::start_with(opts());
    let target = TestServer::start_with(opts());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = source.conn().await;
        holdfast_testkit::data::create_accounts(&mut conn, "bank", ACCOUNTS as u32, INITIAL)
            .await
            .unwrap();
    });
    // Each transfer also logs a row in `transfers`, in the same transaction.
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
    std::thread::sleep(std::time::Duration::from_millis(500));

    let repo = Repo::init();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let summary = backup(&repo, &source, &["--threads", "4", "--chunk-size", "4k"]);
        ids.push(summary["id"].as_str().unwrap().to_string());
    }
    stop.store(true, Ordering::SeqCst);
    let transfers: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        transfers > 50,
        "the writers barely ran ({transfers} transfers)"
    );

    for id in &ids {
        let manifest = repo.manifest(id);
        assert_eq!(
            manifest["server"]["flavor"],
            match flavor {
                Flavor::MariaDb => "mariadb",
                Flavor::MySql => "mysql",
            }
        );
        // The consistent point names a GTID set: MariaDB's domain-server-seq, MySQL's uuid:range.
        let gtid = manifest["consistent_point"]["gtid_set"].as_str().unwrap();
        match flavor {
            Flavor::MariaDb => assert!(gtid.starts_with("0-1-"), "{gtid}"),
            Flavor::MySql => assert!(
                gtid.starts_with(source.sql("SELECT @@server_uuid").trim()),
                "{gtid}"
            ),
        }
        let chunks = manifest["tables"][0]["chunks"].as_array().unwrap().len();
        assert!(
            chunks > 1,
            "the accounts table should be chunked, got {chunks}"
        );
        restore(&repo, &target, &["--drop-existing", "--verify", id]);
        let total = target.sql("SELECT SUM(balance) FROM bank.accounts");
        assert_eq!(
            total.trim(),
            (ACCOUNTS as i64 * INITIAL).to_string(),
            "backup {id} is torn"
        );
        let count = target.sql("SELECT COUNT(*) FROM bank.accounts");
        assert_eq!(count.trim(), ACCOUNTS.to_string());
    }
}
