//! Drills of the archive on real servers: `holdfast drill --pitr` restores a base into a
//! throwaway server, replays the archive to a point (random or given) and checks the server's
//! own GTID position against the archive's prediction; `holdfast drill --chain` restores base
//! N−1, replays to base N's consistent point and compares every table with N's manifest. The
//! archive is busy: inserts, updates, deletes, DDL, and writes running while base N is taken.
//! Damage: a segment removed from between the two backups fails the chain proof naming it.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use holdfast_testkit::TestServer;

fn drill_in(tmp: &Path, args: &[&str]) -> std::process::Output {
    holdfast_env(args, &[("TMPDIR", tmp.to_str().unwrap())])
}

fn check<'a>(record: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

fn segments(repo: &Repo) -> Vec<serde_json::Value> {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "binlog list");
    json(&out)["segments"].as_array().unwrap().clone()
}

fn stream(repo: &Repo, server: &TestServer, what: &str) {
    assert_ok(
        &stream_until_caught_up(&repo.url(), &server.url(), &[]),
        &format!("stream {what}"),
    );
}

/// One batch of mixed work; `k` makes it differ from the others.
fn batch(server: &TestServer, k: u32) {
    server.sql(&format!(
        "INSERT INTO shop.orders (id, item, qty) SELECT seq + {k} * 10000, CONCAT('b{k}-', seq), seq % 9 \
           FROM shop.seq_1_to_400;
         UPDATE shop.orders SET qty = qty + {k}, item = CONCAT(item, '·{k}') WHERE id % 11 = {k};
         DELETE FROM shop.orders WHERE id % 13 = {k};
         CREATE TABLE shop.t{k} (id INT PRIMARY KEY, v TEXT);
         INSERT INTO shop.t{k} SELECT seq, REPEAT('v', seq % 50) FROM shop.seq_1_to_{n};
         BEGIN; INSERT INTO shop.ledger (amount) VALUES ({k}.25), ({k}.50); COMMIT;",
        n = 50 * k
    ));
}

/// Waits for the start of the next whole second (binlog event times are whole seconds).
fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = now();
    while now() == start {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `shop` with a first backup, a busy archive, a second backup taken while writes run, more
/// work after it; everything archived. Returns (first backup id, second backup id).
fn busy_archive(server: &TestServer, repo: &Repo) -> (String, String) {
    server.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(60), qty INT);
         INSERT INTO shop.orders SELECT seq, CONCAT('item-', seq), seq % 7 FROM shop.seq_1_to_3000;
         CREATE TABLE shop.ledger (id INT AUTO_INCREMENT PRIMARY KEY, amount DECIMAL(10,2));
         CREATE TABLE shop.doomed (id INT PRIMARY KEY);
         INSERT INTO shop.doomed VALUES (1), (2);",
    );
    let first = backup(repo, server, &[]);
    stream(repo, server, "after the first backup");
    for k in 1..=3 {
        // Each batch in seconds of its own, all after the first backup's.
        next_second();
        batch(server, k);
        stream(repo, server, &format!("batch {k}"));
    }
    server.sql(
        "DROP TABLE shop.doomed; ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20) DEFAULT 'n';",
    );
    // The second backup is taken while a writer keeps committing.
    let stop = AtomicBool::new(false);
    let second = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                server.sql(&format!(
                    "INSERT INTO shop.ledger (amount) VALUES ({i}); \
                     UPDATE shop.orders SET qty = qty + 1 WHERE id = {}",
                    i % 3000 + 1
                ));
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let b = backup(repo, server, &[]);
        stop.store(true, Ordering::Relaxed);
        b
    });
    for k in 4..=5 {
        batch(server, k);
        stream(repo, server, &format!("batch {k}"));
    }
    let first = first["id"].as_str().unwrap().to_string();
    let second = second["id"].as_str().unwrap().to_string();
    (first, second)
}

#[test]
fn pitr_drills_at_a_random_and_a_given_point_reach_the_predicted_gtid_position() {
    let server = TestServer::start();
    let repo = Repo::init();
    let (first, _) = busy_archive(&server, &repo);
    let url = repo.url();
    let tmp = tempfile::tempdir().unwrap();

    // A random point of the window.
    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--pitr", "random", "--json"],
    );
    assert_ok(&out, "drill --pitr random");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert_eq!(record["kind"], "pitr");
    assert_eq!(record["format"], 2);
    let range = &record["range"];
    assert!(
        !range["expected_gtid"].as_str().unwrap().is_empty(),
        "{record:#}"
    );
    assert_eq!(range["reached_gtid"], range["expected_gtid"], "{record:#}");
    // The point is drawn from the seconds the archive has events in, after the base's.
    assert!(range["transactions"].as_u64().unwrap() > 0, "{record:#}");
    for name in ["archive", "replay", "gtid-position"] {
        let c = check(&record, name);
        assert!(
            !c.is_empty() && c.iter().all(|c| c["passed"] == true),
            "{name}: {record:#}"
        );
    }

    // A given point inside the archive, the second of the second batch (after the first
    // backup's): transactions are replayed, the position is the archive's at that second.
    let segs = segments(&repo);
    let times: std::collections::BTreeSet<String> = segs
        .iter()
        .map(|s| s["last_event_time"].as_str().unwrap().to_string())
        .collect();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join(format!("backups/{first}/manifest"))).unwrap(),
    )
    .unwrap();
    let base_time = manifest["consistent_point"]["time"].as_str().unwrap()[..19].to_string();
    let t = times
        .iter()
        .filter(|t| t.len() >= 19 && t[..19] > *base_time)
        .nth(1)
        .unwrap_or_else(|| panic!("no second batch in {times:?}"))
        .clone();
    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--pitr", &t, "--json"],
    );
    assert_ok(&out, "drill --pitr TIME");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    let range = &record["range"];
    assert_eq!(range["reached_gtid"], range["expected_gtid"], "{record:#}");
    assert!(range["transactions"].as_u64().unwrap() > 0, "{record:#}");
    assert!(range["segments"].as_u64().unwrap() > 0, "{record:#}");
    assert_eq!(range["base_backup"], first.as_str(), "{record:#}");
    assert!(record["rto_seconds"].as_f64().unwrap() > 0.0);

    // PITR drills cover part of the archive; they do not verify a backup.
    let report = json(&holdfast(&["drill", "report", "--repo", &url, "--json"]));
    let covered = report["archive_coverage"].as_f64().unwrap();
    assert!(covered > 0.0 && covered <= 1.0, "{report:#}");
    assert_eq!(report["archive"]["pitr_drills"], 2, "{report:#}");
    assert_eq!(report["backups_verified"], 0, "{report:#}");
    let text_report = holdfast(&["drill", "report", "--repo", &url]);
    assert!(
        text(&text_report).contains("archive coverage:"),
        "{}",
        text(&text_report)
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_chain_proof_passes_over_a_busy_archive_and_names_a_removed_segment() {
    let server = TestServer::start();
    let repo = Repo::init();
    let (first, second) = busy_archive(&server, &repo);
    let url = repo.url();
    let tmp = tempfile::tempdir().unwrap();

    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--chain", &second, "--json"],
    );
    assert_ok(&out, "drill --chain");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert_eq!(record["kind"], "chain");
    assert_eq!(record["backup_id"], second.as_str());
    assert_eq!(record["range"]["base_backup"], first.as_str());
    assert_eq!(
        record["range"]["reached_gtid"], record["range"]["expected_gtid"],
        "{record:#}"
    );
    assert!(
        record["range"]["transactions"].as_u64().unwrap() > 10,
        "{record:#}"
    );
    // Every table of the second backup compared, the ones created in between included.
    let tables = check(&record, "table");
    for t in ["orders", "ledger", "t1", "t2", "t3"] {
        assert!(
            tables
                .iter()
                .any(|c| c["subject"] == format!("`shop`.`{t}`") && c["passed"] == true),
            "{t}: {record:#}"
        );
    }
    assert_eq!(
        check(&record, "extra-tables")[0]["passed"],
        true,
        "{record:#}"
    );
    // The default is the newest logical backup.
    let out = drill_in(tmp.path(), &["drill", "--repo", &url, "--chain"]);
    assert_ok(&out, "drill --chain (latest)");
    assert!(text(&out).contains("PASSED"), "{}", text(&out));
    let report = json(&holdfast(&["drill", "report", "--repo", &url, "--json"]));
    assert_eq!(report["archive"]["chain_drills"], 2, "{report:#}");
    assert!(
        report["archive_coverage"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );

    // Base N's manifest consistently claims a row that N-1 plus the archive does not give:
    // the proof names the table (the others still check out).
    let altered = Repo::uninit();
    assert!(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", repo.path().display()))
        .arg(altered.path())
        .status()
        .unwrap()
        .success());
    let manifest_path = altered.path().join(format!("backups/{second}/manifest"));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let t2 = manifest["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["table"] == "t2")
        .unwrap();
    t2["row_count"] = (t2["row_count"].as_u64().unwrap() + 1).into();
    // Without its own checksum, as a manifest written before it (the forger drops it).
    manifest.as_object_mut().unwrap().remove("self_sha256");
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let out = drill_in(
        tmp.path(),
        &[
            "drill",
            "--repo",
            &altered.url(),
            "--chain",
            &second,
            "--json",
        ],
    );
    assert_code(&out, 22, "chain proof against an altered manifest");
    let record = json(&out);
    assert!(
        record["reason"].as_str().unwrap().contains("`shop`.`t2`"),
        "{record:#}"
    );
    assert!(check(&record, "table")
        .iter()
        .any(|c| c["subject"] == "`shop`.`t1`" && c["passed"] == true));

    // A segment between the two backups removed (index entry and data): the proof fails,
    // naming the segment, and says so in the record.
    let segs = segments(&repo);
    let victim = &segs[segs.len() / 3];
    let seq = victim["seq"].as_u64().unwrap();
    std::fs::remove_file(repo.path().join(format!("binlog/index/{seq:012}.json"))).unwrap();
    std::fs::remove_file(repo.path().join(victim["object"].as_str().unwrap())).unwrap();
    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--chain", &second, "--json"],
    );
    assert_code(&out, 22, "chain proof over a removed segment");
    let record = json(&out);
    assert_eq!(record["outcome"], "failed", "{record:#}");
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.starts_with("archive"), "{reason}");
    assert!(reason.contains(&format!("segment {seq}")), "{reason}");
    let text_out = drill_in(tmp.path(), &["drill", "--repo", &url, "--chain", &second]);
    assert_code(&text_out, 22, "chain proof, text");
    assert!(
        text(&text_out).contains("FAILED archive"),
        "{}",
        text(&text_out)
    );
    let report = json(&holdfast(&["drill", "report", "--repo", &url, "--json"]));
    assert_eq!(report["failures"][0]["kind"], "chain", "{report:#}");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let pgrep = Command::new("pgrep")
        .arg("-af")
        .arg(tmp.path().to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        pgrep.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&pgrep.stdout)
    );
}

/// `n` rows `(id, text)` as a VALUES list, starting at `from`.
fn values(from: u32, n: u32) -> String {
    (from..from + n)
        .map(|i| format!("({i}, 'row {i}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// MySQL 5.7: the chain proof and a PITR drill run on a MySQL throwaway server with GTIDs on,
/// the position checked against the server's own `gtid_executed`.
#[test]
fn mysql_chain_proof_and_pitr_drill_pass() {
    let mysql = holdfast_testkit::require_mysql();
    let server = TestServer::start_with(holdfast_testkit::ServerOptions {
        flavor: holdfast_testkit::Flavor::MySql,
        ..holdfast_testkit::ServerOptions::default()
    });
    let repo = Repo::init();
    server.sql(&format!(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40));
         INSERT INTO app.t VALUES {};",
        values(1, 500)
    ));
    let first = backup(&repo, &server, &[]);
    stream(&repo, &server, "after the first backup");
    for k in 1..=3u32 {
        server.sql(&format!(
            "INSERT INTO app.t VALUES {}; UPDATE app.t SET v = CONCAT(v, '+{k}') WHERE id % 7 = {k};
             DELETE FROM app.t WHERE id % 11 = {k}; CREATE TABLE app.k{k} (id INT PRIMARY KEY, v VARCHAR(40));
             INSERT INTO app.k{k} VALUES {};",
            values(k * 1000, 100),
            values(1, k * 10)
        ));
        stream(&repo, &server, &format!("batch {k}"));
    }
    let second = backup(&repo, &server, &[]);
    server.sql(&format!("INSERT INTO app.t VALUES {};", values(9000, 50)));
    stream(&repo, &server, "after the second backup");
    let url = repo.url();
    let basedir = mysql.basedir.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let second_id = second["id"].as_str().unwrap();
    let out = drill_in(
        tmp.path(),
        &[
            "drill",
            "--repo",
            &url,
            "--chain",
            second_id,
            "--server-binary",
            basedir,
            "--json",
        ],
    );
    assert_ok(&out, "MySQL chain proof");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert_eq!(record["range"]["base_backup"], first["id"], "{record:#}");
    assert_eq!(
        record["range"]["reached_gtid"],
        record["range"]["expected_gtid"]
    );
    assert!(
        record["range"]["transactions"].as_u64().unwrap() >= 15,
        "{record:#}"
    );
    assert!(check(&record, "table")
        .iter()
        .any(|c| c["subject"] == "`app`.`k3`" && c["passed"] == true));

    let out = drill_in(
        tmp.path(),
        &[
            "drill",
            "--repo",
            &url,
            "--pitr",
            "random",
            "--server-binary",
            basedir,
            "--json",
        ],
    );
    assert_ok(&out, "MySQL PITR drill");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert!(record["server"]["version"]
        .as_str()
        .unwrap()
        .starts_with("5.7"));
    assert_eq!(
        record["range"]["reached_gtid"],
        record["range"]["expected_gtid"]
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
