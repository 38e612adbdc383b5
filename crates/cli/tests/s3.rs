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

/// A passphrase file in a fresh temp dir (kept alive by the returned dir), and a runner that
/// adds `--passphrase-file` to every holdfast command it runs against `garage`.
fn passphrase(
    garage: &GarageServer,
) -> (tempfile::TempDir, String, impl Fn(&[&str]) -> Output + '_) {
    let keys = tempfile::tempdir().unwrap();
    let pass = keys.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let pass = pass.display().to_string();
    let flag = pass.clone();
    let with_key = move |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--passphrase-file", &flag]);
        hf(garage, &all)
    };
    (keys, pass, with_key)
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

    let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]))["backups"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], summary["id"]);

    let verify = hf(
        &garage,
        &["verify", "--repo", &url, "latest", "--deep", "--json"],
    );
    assert_ok(&verify, "verify --deep on s3");
    assert_eq!(
        json(&verify)["backups"][0]["problems"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

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
        let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]))["backups"].clone();
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
    let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]))["backups"].clone();
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
    let list = json(&hf(&garage, &["list", "--repo", &url, "--json"]))["backups"].clone();
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

/// Issue 5's end to end: on Garage with encryption on, a logical backup, the binlog stream and
/// point-in-time recoveries equal the source, and a chunk fetched from the bucket decrypts by
/// hand (`age -d` with the exported data key, `zstd -d`) into rows that plain LOAD DATA loads.
#[test]
fn encrypted_repository_on_garage_backs_up_streams_and_recovers() {
    let garage = GarageServer::start();
    let source = TestServer::start();
    load(&source, 5_000);
    let url = garage.repo_url("secure/repo");
    let (keys, _, with_key) = passphrase(&garage);
    assert_ok(
        &with_key(&["init", "--repo", &url, "--encrypt"]),
        "init --encrypt on s3",
    );
    let out = with_key(&[
        "backup",
        "--repo",
        &url,
        "--source",
        &source.url(),
        "--json",
    ]);
    assert_ok(&out, "encrypted backup to s3");
    let backup_id = json(&out)["id"].as_str().unwrap().to_string();

    source.sql("UPDATE shop.orders SET note = 'after the backup' WHERE id <= 100");
    let mid = source.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    let mid_sums = checksums(&source);
    source.sql("DELETE FROM shop.orders WHERE id > 4000");
    let out = with_key(&[
        "binlog",
        "stream",
        "--repo",
        &url,
        "--source",
        &source.url(),
        "--until-caught-up",
    ]);
    assert_ok(&out, "binlog stream into an encrypted s3 repository");

    let target = TestServer::start();
    let out = with_key(&[
        "restore",
        "--repo",
        &url,
        "--target",
        &target.url(),
        "--to-gtid",
        &mid,
        "--json",
    ]);
    assert_ok(&out, "PITR from encrypted s3");
    assert_eq!(checksums(&target), mid_sums, "--to-gtid {mid}");
    let target = TestServer::start();
    let out = with_key(&[
        "restore",
        "--repo",
        &url,
        "--target",
        &target.url(),
        "--latest",
    ]);
    assert_ok(&out, "restore --latest from encrypted s3");
    assert_eq!(checksums(&target), checksums(&source), "--latest");

    // By hand: the data key, one chunk from the bucket's files, age -d, zstd -d, LOAD DATA.
    let key_file = keys.path().join("data.key");
    assert_ok(
        &with_key(&[
            "key",
            "export",
            "--repo",
            &url,
            "--output",
            &key_file.display().to_string(),
        ]),
        "key export",
    );
    let manifest = json(&with_key(&["info", "--repo", &url, &backup_id, "--json"]));
    let chunk = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.contains("orders") && p.ends_with(".tsv.zst"))
        .expect("a chunk of shop.orders");
    // Fetch the object straight from the bucket (curl signs S3 requests itself).
    let encrypted = keys.path().join("chunk.age");
    let status = signed_curl(
        &garage,
        "GET",
        &format!("/secure/repo/backups/{backup_id}/{chunk}"),
    )
    .arg("-o")
    .arg(&encrypted)
    .status()
    .unwrap();
    assert!(
        status.success(),
        "curl could not fetch the chunk from the bucket"
    );
    assert!(std::fs::read(&encrypted)
        .unwrap()
        .starts_with(b"age-encryption.org/v1\n"));
    let plain = keys.path().join("chunk.tsv");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i '{}' '{}' | zstd -d -q -o '{}'",
            key_file.display(),
            encrypted.display(),
            plain.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "age -d | zstd -d failed");
    let hand = TestServer::start();
    hand.sql(&format!(
        "CREATE DATABASE h; CREATE TABLE h.o (id INT PRIMARY KEY, customer VARCHAR(64), note TEXT, amount DECIMAL(10,2)); \
         LOAD DATA INFILE '{}' INTO TABLE h.o CHARACTER SET binary;",
        plain.display()
    ));
    assert!(
        hand.sql("SELECT COUNT(*) FROM h.o")
            .trim()
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

/// A signed S3 request to Garage with curl (it signs SigV4 itself), so what the bucket holds is
/// observed without holdfast's own S3 code.
fn curl_s3(garage: &GarageServer, method: &str, path_and_query: &str) -> String {
    let out = signed_curl(garage, method, path_and_query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {method} {path_and_query}: {}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// curl set up to send one SigV4-signed request to Garage's bucket (`path_and_query` starts
/// with `/` or `?`).
fn signed_curl(garage: &GarageServer, method: &str, path_and_query: &str) -> Command {
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--fail-with-body",
        "-X",
        method,
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        "--aws-sigv4",
    ])
    .arg(format!("aws:amz:{}:s3", garage.region()))
    .arg("--user")
    .arg(format!(
        "{}:{}",
        garage.access_key_id(),
        garage.secret_access_key()
    ))
    .arg(format!(
        "{}/{}{path_and_query}",
        garage.endpoint(),
        garage.bucket()
    ));
    curl
}

/// The text of every `<tag>` element, in order.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// (key, upload id, parts stored) of every incomplete multipart upload under `prefix/`, from
/// Garage's ListMultipartUploads and ListParts.
fn bucket_uploads(garage: &GarageServer, prefix: &str) -> Vec<(String, String, usize)> {
    // curl signs the query as sent: `/` encoded and the parameters sorted, as SigV4 wants.
    let encoded = format!("{prefix}/").replace('/', "%2F");
    let listing = curl_s3(garage, "GET", &format!("?prefix={encoded}&uploads="));
    let uploads: Vec<(String, String)> = xml_values(&listing, "Key")
        .into_iter()
        .zip(xml_values(&listing, "UploadId"))
        .collect();
    uploads
        .into_iter()
        .map(|(key, id)| {
            let parts = curl_s3(garage, "GET", &format!("/{key}?uploadId={id}"));
            let n = xml_values(&parts, "PartNumber").len();
            (key, id, n)
        })
        .collect()
}

/// Issue 5: an upload cut off by `kill -9` leaves nothing that looks like a backup, but its
/// multipart upload stays in the bucket (invisible to a listing, billed). `verify` reports it
/// with its size and age, `cleanup` leaves it alone while the backup runs and while it is young,
/// aborts it with `--any-age` after the crash, and the bucket's own ListMultipartUploads is
/// empty afterwards. Encrypted, so the uploads go through the encryption decorator too.
#[test]
fn killed_backup_leaves_incomplete_uploads_that_cleanup_aborts() {
    let garage = GarageServer::start();
    let source = TestServer::start();
    load(&source, 300_000);
    let prefix = "killed/repo";
    let url = garage.repo_url(prefix);
    let (_keys, pass, with_key) = passphrase(&garage);
    assert_ok(
        &with_key(&["init", "--repo", &url, "--encrypt"]),
        "init --encrypt",
    );

    // One chunk of tens of MiB (several 8 MiB parts), uploaded slowly enough to be caught.
    let mut cmd = Command::new(bin());
    cmd.args([
        "backup",
        "--repo",
        &url,
        "--source",
        &source.url(),
        "--chunk-size",
        "1G",
        "--max-rate",
        "1MiB/s",
        "--passphrase-file",
        &pass,
    ])
    .env("HOME", "/nonexistent")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in garage.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let uploads = bucket_uploads(&garage, prefix);
        if uploads.iter().any(|(_, _, parts)| *parts >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "no part was ever uploaded");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before a part was seen; make the data bigger"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // While the backup runs, its uploads are safe whatever cleanup is asked.
    let out = with_key(&["cleanup", "--repo", &url, "--any-age"]);
    assert_code(&out, 5, "cleanup --any-age during a backup");
    assert!(text(&out).contains("backup"), "{}", text(&out));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before it was killed; the test proved nothing"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let left = bucket_uploads(&garage, prefix);
    assert!(!left.is_empty(), "the kill left no multipart upload");
    let list = json(&with_key(&["list", "--repo", &url, "--json"]))["backups"].clone();
    assert!(list.as_array().unwrap().is_empty(), "listed: {list}");

    // verify reports them: path, size and age, and points at cleanup.
    let out = with_key(&["verify", "--repo", &url, "--all", "--json"]);
    assert_ok(&out, "verify --all after the kill");
    let report = json(&out);
    let reported = report["incomplete_uploads"].as_array().unwrap().clone();
    assert_eq!(reported.len(), left.len(), "{report}");
    for u in &reported {
        let key = format!("{prefix}/{}", u["path"].as_str().unwrap());
        let id = u["upload_id"].as_str().unwrap();
        let (_, _, parts) = left
            .iter()
            .find(|(k, i, _)| *k == key && i == id)
            .unwrap_or_else(|| panic!("{u} is not in the bucket's listing {left:?}"));
        assert!(key.starts_with(&format!("{prefix}/backups/")), "{u}");
        assert_eq!(u["kind"], "multipart");
        assert_eq!(u["parts"].as_u64().unwrap(), *parts as u64, "{u}");
        assert!(u["age_seconds"].as_u64().unwrap() < 300, "{u}");
        assert!(u["kept_because"].is_string(), "young uploads are kept: {u}");
    }
    assert!(
        reported
            .iter()
            .any(|u| u["stored_bytes"].as_u64().unwrap() >= 8 << 20),
        "no upload holds a whole part: {reported:?}"
    );
    let out = with_key(&["verify", "--repo", &url, "--all"]);
    assert_ok(&out, "verify --all (text)");
    let shown = text(&out);
    assert!(
        shown.contains("incomplete upload") && shown.contains("holdfast cleanup"),
        "{shown}"
    );

    // Without --any-age, uploads younger than the lock's lifetime are kept (and said so).
    let out = with_key(&["cleanup", "--repo", &url, "--json"]);
    assert_ok(&out, "cleanup");
    let report = json(&out);
    assert!(
        report["incomplete_uploads"]["aborted"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{report}"
    );
    assert_eq!(
        report["incomplete_uploads"]["kept"]
            .as_array()
            .unwrap()
            .len(),
        left.len()
    );
    assert_eq!(bucket_uploads(&garage, prefix).len(), left.len());

    // After the crash nothing runs: --any-age aborts them all.
    let out = with_key(&["cleanup", "--repo", &url, "--any-age", "--json"]);
    assert_ok(&out, "cleanup --any-age");
    let report = json(&out);
    let aborted = report["incomplete_uploads"]["aborted"].as_array().unwrap();
    assert_eq!(aborted.len(), left.len(), "{report}");
    assert!(
        bucket_uploads(&garage, prefix).is_empty(),
        "ListMultipartUploads still lists uploads after cleanup"
    );
    let out = with_key(&["cleanup", "--repo", &url, "--any-age"]);
    assert_ok(&out, "cleanup again");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to clean up"),
        "{}",
        text(&out)
    );

    // The repository works again.
    let out = with_key(&[
        "backup",
        "--repo",
        &url,
        "--source",
        &source.url(),
        "--json",
    ]);
    assert_ok(&out, "backup after the kill");
    assert_ok(
        &with_key(&["verify", "--repo", &url, "latest"]),
        "verify the new backup",
    );
    assert!(bucket_uploads(&garage, prefix).is_empty());
}
