//! Physical backups taken from a replica: the backup waits for, then refuses, a lagging replica,
//! and records the primary's coordinates; the replica keeps replicating afterwards.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{ServerOptions, TestServer};

fn seconds_behind(replica: &TestServer) -> Option<u64> {
    use mysql_async::prelude::Queryable;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = replica.conn().await;
        let row: Option<mysql_async::Row> = conn.query_first("SHOW SLAVE STATUS").await.unwrap();
        row.and_then(|r| r.get_opt::<Option<u64>, _>("Seconds_Behind_Master"))
            .and_then(|v| v.ok())
            .flatten()
    })
}

#[test]
fn a_lagging_replica_is_refused_and_a_caught_up_one_records_the_primary_position() {
    let extra = vec!["--log-slave-updates".to_string()];
    let primary = TestServer::start_with(ServerOptions {
        server_id: 1,
        extra_args: extra.clone(),
        ..Default::default()
    });
    let replica = TestServer::start_with(ServerOptions {
        server_id: 2,
        extra_args: extra,
        ..Default::default()
    });
    replica.sql(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
         MASTER_USE_GTID=slave_pos; START SLAVE",
        primary.port()
    ));
    primary.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v INT); INSERT INTO app.t VALUES (1, 1)");
    let pos = primary.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    replica.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"));
    let repo = Repo::init();

    // Make the replica lag: a session holds a read lock the SQL thread must wait for.
    let mut holder = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-uroot",
            &format!("--socket={}", replica.socket().display()),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = holder.stdin.as_mut().unwrap();
        writeln!(stdin, "LOCK TABLES app.t READ; SELECT SLEEP(60);").unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    primary.sql("UPDATE app.t SET v = 2 WHERE id = 1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let behind = seconds_behind(&replica);
        if behind.is_some_and(|s| s >= 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never lagged: {behind:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    let out = holdfast(&[
        "backup",
        "--repo",
        &repo.url(),
        "--source",
        &replica.url(),
        "--engine",
        "physical",
        "--max-replica-lag",
        "1s",
        "--replica-lag-wait",
        "2s",
    ]);
    assert_code(&out, 12, "backup of a lagging replica");
    assert!(text(&out).contains("behind its primary"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    let listed = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
    assert_eq!(
        listed.as_array().unwrap().len(),
        0,
        "a refused backup lists nothing"
    );

    // Release the lock: the replica catches up, and the backup goes through.
    let _ = holder.kill();
    let _ = holder.wait();
    let pos = primary.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    replica.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"));
    let out = holdfast(&[
        "backup",
        "--repo",
        &repo.url(),
        "--source",
        &replica.url(),
        "--engine",
        "physical",
        "--json",
    ]);
    assert_ok(&out, "backup of a caught-up replica");
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let manifest = repo.manifest(&id);
    let primary_pos = &manifest["physical"]["replica_of"];
    assert!(
        primary_pos.is_object(),
        "no primary coordinates recorded: {manifest}"
    );
    assert_eq!(
        primary_pos["gtid_set"].as_str().unwrap_or(""),
        pos,
        "{primary_pos}"
    );
    // The replica replicates on after the backup paused its SQL thread.
    primary.sql("UPDATE app.t SET v = 3 WHERE id = 1");
    let pos = primary.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    assert_eq!(
        replica
            .sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"))
            .trim(),
        "0"
    );
    assert_eq!(replica.sql("SELECT v FROM app.t WHERE id = 1").trim(), "3");
}
