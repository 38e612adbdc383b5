//! `holdfast drill`: a backup restored into a throwaway server started by holdfast, checked,
//! and the evidence kept in the repository; nothing of the throwaway server is left behind,
//! also after Ctrl-C. Every drill runs with its own TMPDIR, so "nothing left" is checked on
//! exactly what this test's drills created (no sandbox directory, no process naming it).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::TestServer;

const ROWS: u32 = 3000;

/// A database with a table of rows and one schema object of every kind.
fn shop(server: &TestServer) {
    server.sql(&format!(
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT, note TEXT);
         INSERT INTO shop.orders SELECT seq, CONCAT('item-', seq), seq % 7, \
           IF(seq % 5 = 0, NULL, 'tab\\there') FROM seq_1_to_{ROWS};
         CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT);
         CREATE VIEW shop.big_orders AS SELECT id, qty FROM shop.orders WHERE qty > 5;
         CREATE PROCEDURE shop.order_count() SELECT COUNT(*) FROM shop.orders;
         CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.orders FOR EACH ROW \
           INSERT INTO shop.audit (order_id) VALUES (NEW.id);
         CREATE EVENT shop.nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM shop.audit;
         CREATE SEQUENCE shop.invoice_no START WITH 100;"
    ));
}

/// Runs holdfast with `TMPDIR` set to `tmp` (where the drill's sandbox goes).
fn drill_in(tmp: &Path, args: &[&str]) -> std::process::Output {
    holdfast_env(args, &[("TMPDIR", tmp.to_str().unwrap())])
}

/// Nothing of a sandbox is left: no directory under `tmp`, no process naming it.
fn assert_nothing_left(tmp: &Path) {
    let left: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("holdfast-sandbox-"))
        .collect();
    assert!(left.is_empty(), "sandbox directories left behind: {left:?}");
    let pgrep = Command::new("pgrep")
        .arg("-af")
        .arg(tmp.to_str().unwrap())
        .output()
        .expect("pgrep");
    assert!(
        pgrep.stdout.is_empty(),
        "a process of the drill is still running:\n{}",
        String::from_utf8_lossy(&pgrep.stdout)
    );
}

fn check<'a>(record: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

#[test]
fn a_logical_drill_passes_records_its_evidence_and_leaves_nothing_behind() {
    let server = TestServer::start();
    shop(&server);
    let repo = Repo::init();
    let b = backup(&repo, &server, &[]);
    let id = b["id"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let url = repo.url();

    let out = drill_in(tmp.path(), &["drill", "--repo", &url, "latest", "--json"]);
    assert_ok(&out, "drill");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert_eq!(record["backup_id"], id);
    assert_eq!(record["engine"], "logical");
    // The trigger was created after the rows: `audit` is empty.
    assert_eq!(record["rows_restored"], ROWS as u64);
    assert!(record["rto_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(record["server"]["kind"], "sandbox");
    assert!(record["server"]["version"]
        .as_str()
        .unwrap()
        .contains("MariaDB"));
    assert_eq!(record["server"]["memory_bytes"], 256u64 << 20);
    let tables = check(&record, "table");
    assert!(
        tables
            .iter()
            .any(|c| c["subject"] == "`shop`.`orders`" && c["passed"] == true),
        "{record:#}"
    );
    for kind in [
        "tables",
        "views",
        "routines",
        "triggers",
        "events",
        "sequences",
    ] {
        let c = check(&record, kind);
        assert_eq!(c.len(), 1, "one {kind} check: {record:#}");
        assert_eq!(c[0]["passed"], true, "{kind}: {record:#}");
    }
    assert_nothing_left(tmp.path());

    // The evidence is in the repository, the same record as printed.
    let drill_id = record["id"].as_str().unwrap();
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join(format!("drills/{drill_id}.json"))).unwrap(),
    )
    .unwrap();
    let mut printed = record.clone();
    printed.as_object_mut().unwrap().remove("schema");
    assert_eq!(stored, printed);

    // list and info show the status; the report counts it.
    let list = json(&holdfast(&["list", "--repo", &url, "--json"]));
    assert_eq!(
        list["backups"][0]["drill"]["status"], "verified",
        "{list:#}"
    );
    let info = holdfast(&["info", "--repo", &url, id]);
    assert_ok(&info, "info");
    assert!(
        text(&info).contains("drill             verified"),
        "{}",
        text(&info)
    );
    let table = holdfast(&["list", "--repo", &url]);
    assert!(text(&table).contains("DRILL"), "{}", text(&table));
    let report = json(&holdfast(&["drill", "report", "--repo", &url, "--json"]));
    assert_eq!(report["success_rate"], 1.0, "{report:#}");
    assert_eq!(report["coverage"], 1.0, "{report:#}");
    assert!(report["rto_mean_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["rto_p95_seconds"].as_f64().unwrap() > 0.0);

    // Nothing is left to drill.
    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--all-unverified", "--json"],
    );
    assert_ok(&out, "drill --all-unverified");
    assert_eq!(json(&out)["drills"].as_array().unwrap().len(), 0);
}

#[test]
fn a_drill_into_a_given_target_refuses_one_that_is_not_empty() {
    let server = TestServer::start();
    shop(&server);
    let repo = Repo::init();
    backup(&repo, &server, &[]);
    // The source itself has `shop`: exit 14 and nothing recorded.
    let out = holdfast(&["drill", "--repo", &repo.url(), "--target", &server.url()]);
    assert_code(&out, 14, "drill into a target that has the database");
    assert!(!repo.path().join("drills").exists());
    let target = TestServer::start();
    let out = holdfast(&[
        "drill",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "--json",
    ]);
    assert_ok(&out, "drill into an empty target");
    assert_eq!(json(&out)["server"]["kind"], "target");
}

/// Rewrites the first chunk of `shop.orders` without its last row and makes the manifest agree
/// (file size and SHA-256, chunk and table row counts) and drops the summary, so `verify` finds
/// nothing wrong; only the content fingerprint still tells.
fn drop_a_row_consistently(repo: &Repo, id: &str) {
    let manifest_path = repo.path().join(format!("backups/{id}/manifest"));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let table = manifest["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["table"] == "orders")
        .unwrap();
    let chunk = table["chunks"][0]["file"].as_str().unwrap().to_string();
    let path = repo.path().join(format!("backups/{id}/{chunk}"));
    let raw = zstd::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap();
    let mut lines: Vec<&[u8]> = raw.split_inclusive(|b| *b == b'\n').collect();
    lines.pop();
    let shorter: Vec<u8> = lines.concat();
    std::fs::write(&path, zstd::encode_all(&shorter[..], 3).unwrap()).unwrap();
    let rows = table["chunks"][0]["rows"].as_u64().unwrap();
    table["chunks"][0]["rows"] = (rows - 1).into();
    table["chunks"][0]["raw_size"] = (shorter.len() as u64).into();
    let count = table["row_count"].as_u64().unwrap();
    table["row_count"] = (count - 1).into();
    let sum = Command::new("sha256sum").arg(&path).output().unwrap();
    let sha = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let size = std::fs::metadata(&path).unwrap().len();
    let entry = manifest["files"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["path"] == chunk.as_str())
        .unwrap();
    entry["sha256"] = sha.into();
    entry["size"] = size.into();
    // Without its own checksum, as a manifest written before it (the forger drops it), and
    // without the summary that would no longer match it (as a backup written before summaries).
    manifest.as_object_mut().unwrap().remove("self_sha256");
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(repo.path().join(format!("backups/{id}/summary"))).unwrap();
}

#[test]
fn a_consistently_altered_backup_passes_verify_but_fails_the_drill_naming_the_table() {
    let server = TestServer::start();
    shop(&server);
    let repo = Repo::init();
    let b = backup(&repo, &server, &[]);
    let id = b["id"].as_str().unwrap();
    drop_a_row_consistently(&repo, id);
    let url = repo.url();
    assert_ok(
        &holdfast(&["verify", "--repo", &url, id]),
        "verify of the altered backup",
    );

    let tmp = tempfile::tempdir().unwrap();
    let out = drill_in(tmp.path(), &["drill", "--repo", &url, id, "--json"]);
    assert_code(&out, 22, "drill of an altered backup");
    let record = json(&out);
    assert_eq!(record["outcome"], "failed", "{record:#}");
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.contains("`shop`.`orders`"), "{reason}");
    let orders: Vec<_> = check(&record, "table")
        .into_iter()
        .filter(|c| c["subject"] == "`shop`.`orders`")
        .collect();
    assert_eq!(orders[0]["passed"], false, "{record:#}");
    // The untouched table still checks out.
    assert!(check(&record, "table")
        .iter()
        .any(|c| c["subject"] == "`shop`.`audit`" && c["passed"] == true));
    assert_nothing_left(tmp.path());

    let list = json(&holdfast(&["list", "--repo", &url, "--json"]));
    assert_eq!(list["backups"][0]["drill"]["status"], "failed", "{list:#}");
    let info = holdfast(&["info", "--repo", &url, id]);
    assert!(text(&info).contains("`shop`.`orders`"), "{}", text(&info));
    let report = json(&holdfast(&["drill", "report", "--repo", &url, "--json"]));
    assert_eq!(report["success_rate"], 0.0, "{report:#}");
    assert_eq!(report["coverage"], 0.0, "{report:#}");
    assert_eq!(report["failures"][0]["backup_id"], id, "{report:#}");
    // A failed backup stays first in line for --sample.
    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--sample", "1", "--json"],
    );
    assert_code(&out, 22, "drill --sample 1");
    assert_eq!(json(&out)["drills"][0]["backup_id"], id);
}

#[test]
fn a_physical_drill_starts_the_restored_datadir_and_checks_it() {
    let server = TestServer::start();
    shop(&server);
    let repo = Repo::init();
    let url = repo.url();
    let source = server.url();
    let out = holdfast(&[
        "backup", "--repo", &url, "--source", &source, "--engine", "physical", "--json",
    ]);
    assert_ok(&out, "physical backup");
    let tmp = tempfile::tempdir().unwrap();
    let out = drill_in(
        tmp.path(),
        &["drill", "--repo", &url, "--drill-memory", "128M", "--json"],
    );
    assert_ok(&out, "physical drill");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert_eq!(record["engine"], "physical");
    for name in ["restore", "server-start", "check-table", "gtid-position"] {
        let c = check(&record, name);
        assert!(!c.is_empty(), "no {name} check: {record:#}");
        assert!(c.iter().all(|c| c["passed"] == true), "{name}: {record:#}");
    }
    assert_eq!(record["server"]["memory_bytes"], 128u64 << 20);
    assert!(record["server"]["peak_memory_bytes"].as_u64().unwrap() > 0);
    assert_nothing_left(tmp.path());
}

#[test]
fn a_drill_interrupted_with_sigint_removes_its_server() {
    let server = TestServer::start();
    shop(&server);
    // Enough rows that the restore is still running when the signal comes.
    server.sql(
        "USE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, pad VARCHAR(200));
         INSERT INTO shop.big SELECT seq, REPEAT('x', 200) FROM seq_1_to_300000;",
    );
    let repo = Repo::init();
    backup(&repo, &server, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["drill", "--repo", &repo.url(), "--threads", "1"])
        .env("TMPDIR", tmp.path())
        .env("HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the sandbox server's socket: the server is up and the restore starting.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = std::fs::read_dir(tmp.path()).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("holdfast-sandbox-")
                && e.path().join("mysqld.sock").exists()
        });
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "the drill server never came up");
        assert!(child.try_wait().unwrap().is_none(), "the drill ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 130, "interrupted drill");
    assert_nothing_left(tmp.path());
    assert!(
        !repo.path().join("drills").exists(),
        "no record of an interrupted drill"
    );
}

/// A MySQL 5.7 backup is drilled on MySQL 5.7 (`--server-binary`, the base directory); the
/// MariaDB `mysqld` on PATH is refused for it, naming the option.
#[test]
fn a_logical_drill_of_a_mysql_backup_passes_on_mysql() {
    let mysql = holdfast_testkit::require_mysql();
    let server = TestServer::start_with(holdfast_testkit::ServerOptions {
        flavor: holdfast_testkit::Flavor::MySql,
        ..holdfast_testkit::ServerOptions::default()
    });
    server.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), doc JSON, price DECIMAL(8,2));
         INSERT INTO shop.items VALUES (1, 'a', '{\"k\": 1}', 1.50), (2, 'b', NULL, NULL), (3, 'ü', '[1, \"x\"]', 3.00);
         CREATE TABLE shop.log (id INT AUTO_INCREMENT PRIMARY KEY, item INT);
         CREATE VIEW shop.cheap AS SELECT id FROM shop.items WHERE price < 2;
         CREATE PROCEDURE shop.n() SELECT COUNT(*) FROM shop.items;
         CREATE TRIGGER shop.items_ai AFTER INSERT ON shop.items FOR EACH ROW INSERT INTO shop.log (item) VALUES (NEW.id);",
    );
    let repo = Repo::init();
    let b = backup(&repo, &server, &[]);
    let url = repo.url();
    let tmp = tempfile::tempdir().unwrap();

    let refused = drill_in(tmp.path(), &["drill", "--repo", &url]);
    assert!(text(&refused).contains("5.7"), "{}", text(&refused));
    assert_code(&refused, 2, "drill of a MySQL backup on MariaDB's mysqld");
    assert!(
        text(&refused).contains("--server-binary"),
        "{}",
        text(&refused)
    );

    let basedir = mysql.basedir.to_str().unwrap();
    let out = drill_in(
        tmp.path(),
        &[
            "drill",
            "--repo",
            &url,
            "--server-binary",
            basedir,
            "--json",
        ],
    );
    assert_ok(&out, "drill of a MySQL backup");
    let record = json(&out);
    assert_eq!(record["outcome"], "passed", "{record:#}");
    assert_eq!(record["backup_id"], b["id"]);
    assert!(
        record["server"]["version"]
            .as_str()
            .unwrap()
            .starts_with("5.7"),
        "{record:#}"
    );
    assert_eq!(record["rows_restored"], 3, "{record:#}");
    for kind in ["tables", "views", "routines", "triggers"] {
        let c = check(&record, kind);
        assert_eq!(c.len(), 1, "{kind}: {record:#}");
        assert_eq!(c[0]["passed"], true, "{kind}: {record:#}");
    }
    assert!(check(&record, "table")
        .iter()
        .any(|c| c["subject"] == "`shop`.`items`" && c["passed"] == true));
    assert_nothing_left(tmp.path());
}
