//! `kill -9` of holdfast during a backup never leaves a listed partial backup, and the next
//! backup succeeds and removes the debris.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use holdfast_testkit::TestServer;

#[test]
fn killed_backups_leave_nothing_listed_and_next_backup_cleans_up() {
    let source = server_with_400k_hashes();
    let repo = Repo::init();
    let mut debris_seen = false;
    for delay_ms in [50u64, 120, 200, 300, 400, 550, 700, 1000] {
        let mut child = Command::new(bin())
            .args([
                "backup",
                "--repo",
                &repo.url(),
                "--source",
                &source.url(),
                "--threads",
                "2",
                "--chunk-size",
                "256k",
            ])
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: sending SIGKILL to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        let finished = status.success();
        let list = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
        for b in list.as_array().unwrap() {
            let id = b["id"].as_str().unwrap();
            assert_ok(
                &holdfast(&["verify", "--repo", &repo.url(), id]),
                "a listed backup must verify",
            );
        }
        // Debris: committed-looking chunk files, or (local disk stages writes and renames them
        // into place) staged files that are never listed.
        let partial = !finished
            && repo
                .files()
                .iter()
                .any(|f| f.starts_with("backups/") || f.starts_with(".holdfast-tmp/"));
        debris_seen |= partial;
    }
    let before = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"]
        .clone()
        .as_array()
        .unwrap()
        .len();
    let summary = backup(&repo, &source, &[]);
    let list = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
    assert_eq!(list.as_array().unwrap().len(), before + 1);
    assert_eq!(
        list.as_array().unwrap().last().unwrap()["id"],
        summary["id"]
    );
    // Only committed backups remain on disk.
    let committed: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    for f in repo.files() {
        if let Some(rest) = f.strip_prefix("backups/") {
            let id = rest.split('/').next().unwrap();
            assert!(committed.iter().any(|c| c == id), "debris left behind: {f}");
        }
    }
    assert!(
        debris_seen,
        "no kill landed mid-backup; the test proved nothing (make the data bigger)"
    );
}

/// On local disk a write is staged in `.holdfast-tmp/` and renamed into place when it
/// completes: `kill -9` mid-write leaves the staged file behind. `verify` reports it, `cleanup`
/// keeps it while it is young and removes it with `--any-age`, and the next backup succeeds.
#[test]
fn killed_local_backup_leaves_staged_files_that_cleanup_removes() {
    let source = server_with_400k_hashes();
    let repo = Repo::init();
    let staged = || -> Vec<String> {
        repo.files()
            .into_iter()
            .filter(|f| f.starts_with(".holdfast-tmp/"))
            .collect()
    };
    // One chunk of about 35 MB compressed (hashes do not compress away), written slowly: the
    // store writes in 8 MiB parts, so the staged file has bytes after the first part and lives
    // for many seconds after that.
    let mut child = Command::new(bin())
        .args([
            "backup",
            "--repo",
            &repo.url(),
            "--source",
            &source.url(),
            "--chunk-size",
            "1G",
            "--max-rate",
            "2MiB/s",
        ])
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !repo.files().iter().any(|f| {
        f.starts_with(".holdfast-tmp/")
            && std::fs::metadata(repo.path().join(f)).is_ok_and(|m| m.len() > 0)
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was ever staged"
        );
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("the backup ended ({status}) before anything was seen staged: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = staged();
    assert!(!left.is_empty(), "the kill left no staged file");
    let list = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
    assert!(list.as_array().unwrap().is_empty(), "listed: {list}");

    let out = holdfast(&["verify", "--repo", &repo.url(), "--all", "--json"]);
    assert_ok(&out, "verify --all");
    let report = json(&out);
    let reported = report["incomplete_uploads"].as_array().unwrap();
    let mut paths: Vec<String> = reported
        .iter()
        .map(|u| {
            assert_eq!(u["kind"], "staged", "{u}");
            u["path"].as_str().unwrap().to_string()
        })
        .collect();
    paths.sort();
    assert_eq!(paths, left, "{report}");

    let out = holdfast(&["cleanup", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "cleanup");
    assert_eq!(
        json(&out)["incomplete_uploads"]["kept"]
            .as_array()
            .unwrap()
            .len(),
        left.len()
    );
    assert_eq!(staged(), left, "young staged files must be kept");
    let out = holdfast(&["cleanup", "--repo", &repo.url(), "--any-age", "--json"]);
    assert_ok(&out, "cleanup --any-age");
    assert_eq!(
        json(&out)["incomplete_uploads"]["aborted"]
            .as_array()
            .unwrap()
            .len(),
        left.len()
    );
    assert!(staged().is_empty(), "{:?}", staged());

    backup(&repo, &source, &[]);
    assert!(repo
        .files()
        .iter()
        .all(|f| !f.starts_with(".holdfast-tmp/")));
}

/// A server holding `load_db.t`: 400k rows of about 190 bytes of hex hashes (about 35 MB after
/// zstd), so a backup runs long enough to be killed mid-write.
fn server_with_400k_hashes() -> TestServer {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE load_db; CREATE TABLE load_db.t (id INT PRIMARY KEY, pad VARCHAR(200)); \
         USE load_db; INSERT INTO load_db.t \
         SELECT seq, CONCAT(SHA2(seq, 512), SHA2(seq, 256)) FROM seq_1_to_400000;",
    );
    source
}

/// A `binlog stream` killed between a segment's data object and its index entry leaves the
/// object behind. `cleanup` removes it when no stream runs, and leaves the archive's tail
/// alone (reporting why) while one does. (Found by the crash sweep: cleanup used to leave it
/// for the stream's next start.)
#[test]
fn cleanup_removes_a_killed_streams_debris_unless_a_stream_runs() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1), (2)",
    );
    let repo = Repo::init();
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream --until-caught-up");
    // The debris a kill leaves: a data object numbered after the archive's last entry (a copy
    // of the last one under a higher number). Returns its path.
    let plant = || -> String {
        let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
        let last = json(&out)["segments"].as_array().unwrap().last().unwrap()["object"]
            .as_str()
            .unwrap()
            .to_string();
        let (dir, name) = last.rsplit_once('/').unwrap();
        let mut parts = name.split('.');
        let pos = parts.next().unwrap();
        let seq: u64 = parts.next().unwrap().parse().unwrap();
        let debris = format!("{dir}/{pos}.{:08}.zst", seq + 3);
        std::fs::copy(repo.path().join(&last), repo.path().join(&debris)).unwrap();
        debris
    };

    // A stream running: the tail is its own; cleanup keeps it and says so.
    let stream = Streamer::start(&repo, &source, &["--flush-interval", "100ms"]);
    source.sql("INSERT INTO d.t VALUES (3)");
    wait_archived(&repo, &gtid_state(&source));
    let debris_running = plant();
    let out = holdfast(&["cleanup", "--repo", &repo.url(), "--any-age", "--json"]);
    assert_ok(&out, "cleanup beside a running stream");
    let report = json(&out);
    assert_eq!(
        report["stream_debris"]["skipped_stream_running"], true,
        "{report}"
    );
    assert!(repo.path().join(&debris_running).exists());
    stream.stop_when_archived(&repo, &gtid_state(&source));
    std::fs::remove_file(repo.path().join(&debris_running)).ok();

    // No stream: removed (the dead stream's lock is taken over), dry run first.
    let debris = plant();
    let out = holdfast(&["cleanup", "--repo", &repo.url(), "--dry-run", "--json"]);
    assert_ok(&out, "cleanup --dry-run");
    let report = json(&out);
    let listed: Vec<&str> = report["stream_debris"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(listed.contains(&debris.as_str()), "{report}");
    assert!(
        repo.path().join(&debris).exists(),
        "a dry run removes nothing"
    );
    let out = holdfast(&["cleanup", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "cleanup");
    assert!(!repo.path().join(&debris).exists(), "{}", text(&out));
    assert!(
        !repo.path().join(&debris_running).exists(),
        "{}",
        text(&out)
    );
    assert_ok(
        &holdfast(&["verify", "--repo", &repo.url(), "--all"]),
        "verify --all after cleanup",
    );
}
