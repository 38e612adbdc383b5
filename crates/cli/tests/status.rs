//! `holdfast status` against a real server and a real streamer: covered when a fresh backup
//! and a live stream are there (also while the source is idle), not covered (exit 21, the
//! problem named) for a stale backup, a streamer killed with -9, and a hole in the archive; a
//! copy of the repository does not report the source repository's streamer as dead.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::TestServer;

const NOT_COVERED: i32 = 21;

fn spawn_streamer(repo: &Repo, server: &TestServer) -> Child {
    Command::new(bin())
        .args([
            "binlog",
            "stream",
            "--repo",
            &repo.url(),
            "--source",
            &server.url(),
        ])
        .args([
            "--flush-interval",
            "200ms",
            "--heartbeat",
            "1s",
            "--status-interval",
            "1s",
            "--max-retry-wait",
            "1s",
        ])
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start holdfast binlog stream")
}

fn status(repo: &Repo, extra: &[&str]) -> std::process::Output {
    let url = repo.url();
    let mut args = vec!["status", "--repo", &url];
    args.extend_from_slice(extra);
    holdfast(&args)
}

/// `status --json` (any exit code).
fn status_json(repo: &Repo, extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.push("--json");
    json(&status(repo, &args))
}

fn checks(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["check"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the streamer's record says it is alive and the archive complete as of
/// recently.
fn wait_alive(repo: &Repo) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = status_json(repo, &[]);
        // Alive, caught up, and with a segment archived (a lag not yet known is no lag).
        let archive = &r["archive"];
        if archive["streamer"] == "alive"
            && archive["lag_seconds"].as_u64().is_some_and(|l| l < 3)
            && archive["segments"].as_u64().is_some_and(|n| n > 0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "the streamer never came up: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Healthy, idle-but-alive, stale backup, dead streamer, and a copy of the repository, in
/// order on one server and one repository.
#[test]
fn covered_while_backups_are_fresh_and_the_streamer_lives_even_on_an_idle_source() {
    let source = TestServer::start();
    let repo = Repo::init();
    source.sql(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); \
         INSERT INTO app.t VALUES (1), (2)",
    );
    backup(&repo, &source, &[]);
    let mut streamer = spawn_streamer(&repo, &source);
    wait_alive(&repo);

    // 1. Healthy: a fresh backup and a live streamer.
    let out = status(&repo, &[]);
    assert_ok(&out, "status of a healthy repository");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("covered"), "{}", text(&out));
    assert!(stdout.contains("streamer       alive"), "{}", text(&out));
    let out = status(&repo, &["--json"]);
    assert_ok(&out, "status --json");
    let report = json(&out);
    assert_eq!(report["schema"], "holdfast/v1");
    assert_eq!(report["covered"], true, "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    let server = &report["servers"][0];
    assert_eq!(server["archived"], true, "{report}");
    assert_eq!(server["newest_complete"]["engine"], "logical", "{report}");
    assert!(report["window"]["to_time"].is_string(), "{report}");

    // 2. Idle but alive: no writes for longer than --max-archive-lag; the streamer keeps
    // `caught_up_as_of` fresh, so the archive is complete as of now.
    source.sql("INSERT INTO app.t VALUES (3)");
    std::thread::sleep(Duration::from_secs(7));
    let out = status(&repo, &["--max-archive-lag", "4s", "--json"]);
    assert_ok(&out, "status of an idle source");
    let report = json(&out);
    let last_event = report["archive"]["last_event_time"].as_str().unwrap();
    let complete = report["archive"]["complete_as_of"].as_str().unwrap();
    assert!(
        last_event < complete,
        "the last event must be older than complete_as_of: {report}"
    );
    assert!(
        report["archive"]["lag_seconds"].as_u64().unwrap() < 4,
        "{report}"
    );

    // 3. A stale backup: older than --max-backup-age.
    let out = status(&repo, &["--max-backup-age", "1s"]);
    assert_code(&out, NOT_COVERED, "status with a stale backup");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("NOT COVERED: 1 problem(s)"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("no complete backup newer than 1s"),
        "{}",
        text(&out)
    );
    let report = status_json(&repo, &["--max-backup-age", "1s"]);
    assert_eq!(report["covered"], false);
    assert_eq!(checks(&report), vec!["backup_age"], "{report}");

    // 4. The streamer killed with -9: its record goes stale after 3 intervals + 10 s.
    streamer.kill().unwrap();
    streamer.wait().unwrap();
    let killed = Instant::now();
    let out = status(&repo, &[]);
    assert_ok(
        &out,
        "status right after the kill (the record is still fresh)",
    );
    std::thread::sleep(Duration::from_secs(15).saturating_sub(killed.elapsed()));
    let out = status(&repo, &[]);
    assert_code(&out, NOT_COVERED, "status after the streamer died");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("problem  streamer not seen for"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("restart `holdfast binlog stream`"));
    let report = status_json(&repo, &[]);
    assert_eq!(checks(&report), vec!["streamer_not_seen"], "{report}");
    assert_eq!(report["archive"]["streamer"], "not_seen");

    // 5. A copy carries the stale record; no streamer ever ran there: not a dead streamer.
    let copy = Repo::init();
    let out = holdfast(&["copy", "--from", &repo.url(), "--to", &copy.url(), "--all"]);
    assert_ok(&out, "copy");
    let out = status(&copy, &["--json"]);
    assert_ok(&out, "status of a copy");
    assert_eq!(json(&out)["archive"]["streamer"], "copied");
}

/// A lost index entry between two committed segments is a hole: not covered, named.
#[test]
fn a_hole_in_the_archive_is_a_problem_naming_it() {
    let source = TestServer::start();
    let repo = Repo::init();
    source.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)");
    backup(&repo, &source, &[]);
    for i in 0..3 {
        source.sql(&format!("INSERT INTO app.t VALUES ({i})"));
        assert_ok(
            &stream_until_caught_up(&repo.url(), &source.url(), &[]),
            "stream",
        );
    }
    let list = json(&holdfast(&[
        "binlog",
        "list",
        "--repo",
        &repo.url(),
        "--json",
    ]));
    let segments = list["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{list}");
    let victim = segments[segments.len() / 2]["seq"].as_u64().unwrap();
    let before = &segments[segments.len() / 2 - 1];
    // Healthy apart from the stopped streamer (an `--until-caught-up` run records `stopped`).
    let report = status_json(&repo, &[]);
    assert_eq!(checks(&report), vec!["streamer_stopped"], "{report}");

    std::fs::remove_file(repo.path().join(format!("binlog/index/{victim:012}.json"))).unwrap();
    let out = status(&repo, &[]);
    assert_code(&out, NOT_COVERED, "status with a hole");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "problem  archive hole after GTID {}",
        before["gtid_state"].as_str().unwrap()
    );
    assert!(stdout.contains(&expected), "{expected}\n{}", text(&out));
    assert!(stdout.contains("holdfast verify --all"), "{}", text(&out));
    let report = status_json(&repo, &[]);
    assert_eq!(
        checks(&report),
        vec!["streamer_stopped", "archive_hole"],
        "{report}"
    );
}

/// An encrypted repository without the key: exit 8 naming `--no-key`; with `--no-key`, what
/// the listing shows is judged and the rest is named as not checked.
#[test]
fn an_encrypted_repository_without_the_key() {
    let repo = Repo::uninit();
    let out = holdfast_env(
        &["init", "--repo", &repo.url(), "--encrypt"],
        &[("HOLDFAST_PASSPHRASE", "correct horse")],
    );
    assert_ok(&out, "init --encrypt");
    let out = status(&repo, &[]);
    assert_code(&out, 8, "status without the key");
    assert!(
        text(&out).contains("holdfast status --no-key"),
        "{}",
        text(&out)
    );

    let out = status(&repo, &["--no-key", "--json"]);
    assert_code(&out, NOT_COVERED, "status --no-key of an empty repository");
    let report = json(&out);
    assert_eq!(checks(&report), vec!["no_archive", "no_backup"], "{report}");
    assert_eq!(report["unchecked"].as_array().unwrap().len(), 2, "{report}");
    assert!(report["window"].is_null(), "{report}");

    // With the key: the same problems, everything checked.
    let out = holdfast_env(
        &["status", "--repo", &repo.url(), "--json"],
        &[("HOLDFAST_PASSPHRASE", "correct horse")],
    );
    assert_code(&out, NOT_COVERED, "status with the key");
    assert_eq!(json(&out)["unchecked"], serde_json::json!([]));
}
