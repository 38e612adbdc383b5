//! holdfast on an S3 repository: a real Garage server from the test kit, the real binary, real
//! MariaDB servers. Credentials travel in the environment only.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{GarageServer, TestServer};

fn hf(garage: &GarageServer, args: &[&str]) -> Output {
    let env = garage.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    holdfast_env(args, &env)
}

fn load(server: &TestServer, rows: u32) {
    server.sql(&format!(
        "CREATE DATABASE shop; USE shop; \
         CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(64), note TEXT, \
           amount DECIMAL(10,2), KEY (customer)); \
         INSERT INTO shop.orders SELECT seq, CONCAT('c', seq % 977), \
           CONCAT(SHA2(seq, 512), '\\t', IF(seq % 7 = 0, NULL, SHA2(seq + 1, 256))), \
           (seq * 37 % 100000) / 100 FROM seq_1_to_{rows}; \
         CREATE TABLE shop.empty_one (id INT PRIMARY KEY); \
         CREATE TABLE shop.nokey (v VARCHAR(20)); \
         INSERT INTO shop.nokey SELECT CONCAT('v', seq) FROM seq_1_to_500;"
    ));
}

#[test]
fn init_backup_list_verify_restore_on_garage() {
    let garage = GarageServer::start();
    let source = TestServer::start();
    let target = TestServer::start();
    load(&source, 20_000);
    let url = garage.repo_url("e2e/repo");

    assert_ok(&hf(&garage, &["init", "--repo", &url]), "init");
    let again = hf(&garage, &["init", "--repo", &url]);
    assert_code(&again, 4, "init twice");

    let out = hf(
        &garage,
        &[
            "backup",
            "--repo",
            &url,
            "--source",
            &source.url(),
            "--json",
            "--chunk-size",
            "256k",
        ],
    );
    assert_ok(&out, "backup to s3");
    let summary = json(&out);
    assert_eq!(summary["rows"].as_u64().unwrap(), 20_500);

    let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], summary["id"]);

    let verify = hf(
        &garage,
        &["verify", "--repo", &url, "latest", "--deep", "--json"],
    );
    assert_ok(&verify, "verify --deep on s3");
    assert_eq!(json(&verify)[0]["problems"].as_array().unwrap().len(), 0);

    let out = hf(
        &garage,
        &[
            "restore",
            "--repo",
            &url,
            "--target",
            &target.url(),
            "--verify",
            "--json",
        ],
    );
    assert_ok(&out, "restore from s3");
    assert_eq!(checksums(&source), checksums(&target));

    // A bandwidth limit holds: reading every file at 1 MiB/s takes the stored size in MiB, in
    // seconds, less the one second of burst the limiter allows.
    let started = Instant::now();
    let out = hf(
        &garage,
        &["verify", "--repo", &url, "latest", "--max-rate", "1MiB/s"],
    );
    assert_ok(&out, "verify with --max-rate");
    let stored = summary["stored_bytes"].as_u64().unwrap();
    let min_secs = (stored as f64 / (1024.0 * 1024.0)) - 1.2;
    assert!(
        min_secs > 0.5,
        "too little data ({stored} bytes) to show a rate limit"
    );
    assert!(
        started.elapsed().as_secs_f64() >= min_secs,
        "--max-rate 1MiB/s read {stored} bytes in {:?}",
        started.elapsed()
    );
}

#[test]
fn credentials_never_in_the_url_and_bad_ones_are_named() {
    let garage = GarageServer::start();
    let with_secret = format!(
        "s3://AKIDEXAMPLE:{}@{}/p?endpoint={}",
        "s3cr3t-value",
        garage.bucket(),
        garage.endpoint()
    );
    let out = hf(&garage, &["init", "--repo", &with_secret]);
    assert_code(&out, 2, "password in the URL");
    let shown = text(&out);
    assert!(shown.contains("password"), "{shown}");
    assert!(
        !shown.contains("s3cr3t-value"),
        "the secret was echoed: {shown}"
    );

    let url = garage.repo_url("bad-creds");
    let out = holdfast_env(
        &["init", "--repo", &url, "--storage-retries", "0"],
        &[
            ("AWS_ACCESS_KEY_ID", "GK000000000000000000000000"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ],
    );
    assert_code(&out, 6, "wrong credentials");
    let shown = text(&out);
    assert!(
        shown.contains("AWS_ACCESS_KEY_ID"),
        "the message should say what to check: {shown}"
    );
    assert!(
        !shown.contains("0000000000000000000000000000000000000000"),
        "secret echoed: {shown}"
    );

    let out = hf(&garage, &["init", "--repo", &format!("{url}&endpont=x")]);
    assert_code(&out, 2, "unknown URL option");
    assert!(text(&out).contains("endpont"));
}

/// Bytes Garage has stored in its data directory so far.
fn stored_bytes(garage: &GarageServer) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                }
            })
            .sum()
    }
    walk(&garage.dir().join("data"))
}

/// Starts a backup in the background and kills Garage once the upload is under way.
fn backup_and_kill_garage_midway(
    garage: &mut GarageServer,
    source: &TestServer,
    url: &str,
    extra: &[&str],
) -> std::process::Child {
    let before = stored_bytes(garage);
    let mut cmd = Command::new(bin());
    cmd.args(["backup", "--repo", url, "--source", &source.url(), "--json"])
        .args(["--threads", "2", "--chunk-size", "1MiB"])
        .args(extra)
        .env("HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in garage.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored_bytes(garage) < before + 2 * 1024 * 1024 {
        assert!(
            Instant::now() < deadline,
            "the backup never uploaded anything"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before the fault could be injected; make the data bigger"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    garage.kill();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the fault landed after the backup ended; the test proved nothing"
    );
    child
}

/// Garage dies mid-upload and comes back within the retry budget. Either the retries carry the
/// backup through (parts refused while the server was down are sent again), or, when a part was
/// cut off mid-body, the backup fails cleanly with the storage exit code: nothing half-written is
/// listed, cleanup removes the debris, and the next backup succeeds. Either way what is listed
/// verifies and restores to the source's exact data.
#[test]
fn garage_restarted_mid_upload_recovers_or_fails_cleanly() {
    let mut garage = GarageServer::start();
    let source = TestServer::start();
    let target = TestServer::start();
    load(&source, 300_000);
    let url = garage.repo_url("fault/recover");
    assert_ok(&hf(&garage, &["init", "--repo", &url]), "init");

    let child = backup_and_kill_garage_midway(&mut garage, &source, &url, &[]);
    std::thread::sleep(Duration::from_secs(2));
    garage.restart();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("retry"), "no retry was logged:\n{stderr}");
    if !out.status.success() {
        assert_code(&out, 6, "a backup that could not recover");
        let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]));
        assert!(
            list.as_array().unwrap().is_empty(),
            "a failed backup is listed: {list}"
        );
        assert_ok(&hf(&garage, &["cleanup", "--repo", &url]), "cleanup");
        assert_ok(
            &hf(
                &garage,
                &["backup", "--repo", &url, "--source", &source.url()],
            ),
            "backup after the outage",
        );
    }
    let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let verify = hf(&garage, &["verify", "--repo", &url, "latest", "--deep"]);
    assert_ok(&verify, "verify after the outage");
    assert_ok(
        &hf(
            &garage,
            &[
                "restore",
                "--repo",
                &url,
                "--target",
                &target.url(),
                "--json",
            ],
        ),
        "restore",
    );
    assert_eq!(checksums(&source), checksums(&target));
}

/// Garage stays down past the retry budget: the backup fails with the storage exit code,
/// nothing half-written is listed, verify names the debris and cleanup removes it.
#[test]
fn garage_down_for_good_fails_cleanly_and_cleanup_removes_debris() {
    let mut garage = GarageServer::start();
    let source = TestServer::start();
    load(&source, 300_000);
    let url = garage.repo_url("fault/fail");
    assert_ok(&hf(&garage, &["init", "--repo", &url]), "init");

    let started = Instant::now();
    let child = backup_and_kill_garage_midway(
        &mut garage,
        &source,
        &url,
        &["--storage-retries", "2", "--storage-timeout", "5s"],
    );
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 6, "backup with the store gone");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "giving up took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error"), "{stderr}");

    garage.restart();
    let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]));
    assert!(
        list.as_array().unwrap().is_empty(),
        "a failed backup is listed: {list}"
    );

    let dry = hf(&garage, &["cleanup", "--repo", &url, "--dry-run", "--json"]);
    assert_ok(&dry, "cleanup --dry-run");
    let orphans = json(&dry)["orphans"].as_array().unwrap().len();
    if orphans > 0 {
        let verify = hf(&garage, &["verify", "--repo", &url, "--all"]);
        assert!(
            String::from_utf8_lossy(&verify.stderr).contains("holdfast cleanup"),
            "{}",
            text(&verify)
        );
    }
    let clean = hf(&garage, &["cleanup", "--repo", &url, "--json"]);
    assert_ok(&clean, "cleanup");
    assert_eq!(json(&clean)["orphans"].as_array().unwrap().len(), orphans);
    let again = json(&hf(
        &garage,
        &["cleanup", "--repo", &url, "--dry-run", "--json"],
    ));
    assert!(again["orphans"].as_array().unwrap().is_empty(), "{again}");

    // The repository works again.
    let out = hf(
        &garage,
        &[
            "backup",
            "--repo",
            &url,
            "--source",
            &source.url(),
            "--json",
        ],
    );
    assert_ok(&out, "backup after the outage");
    assert_ok(
        &hf(&garage, &["verify", "--repo", &url, "latest"]),
        "verify",
    );
}
