//! A damaged binlog archive: a segment's data object with flipped bytes, a data object deleted,
//! an index entry deleted. `verify` (plain and `--all`) exits 20 naming the segment, `info`
//! shows a lost index entry as a gap, and a point-in-time recovery across the damage exits 20
//! before it changes the target (a logical base on both replay paths, a physical base before
//! the datadir is written), while one to a point before the damage still succeeds. A recovery
//! whose replay fails after holdfast started a server leaves no server running.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use holdfast_testkit::TestServer;

/// The archive after a backup and four batches, each archived by its own stream run.
struct Archived {
    source: TestServer,
    repo: Repo,
    /// The source's GTID position after each batch.
    after: Vec<String>,
    /// `CHECKSUM TABLE`s after each batch.
    sums: Vec<Vec<String>>,
    /// The segments each run wrote (binlog list rows).
    runs: Vec<Vec<serde_json::Value>>,
}

fn segments(repo: &Repo) -> Vec<serde_json::Value> {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "binlog list");
    json(&out)["segments"].as_array().unwrap().clone()
}

fn archive(engine: &str) -> Archived {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO d.t SELECT seq, MD5(seq) FROM d.seq_1_to_500",
    );
    let repo = Repo::init();
    backup(&repo, &source, &["--engine", engine]);
    let (mut after, mut sums, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    for k in 1..=4 {
        source.sql(&format!(
            "INSERT INTO d.t SELECT seq + {k} * 1000, MD5(seq) FROM d.seq_1_to_300; \
             UPDATE d.t SET v = 'batch {k}' WHERE id % 7 = {k}"
        ));
        let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
        assert_ok(&out, &format!("stream after batch {k}"));
        let seen: usize = runs.iter().map(Vec::len).sum();
        runs.push(segments(&repo)[seen..].to_vec());
        assert!(!runs[k - 1].is_empty(), "run {k} archived nothing");
        after.push(gtid_state(&source));
        sums.push(checksums(&source));
    }
    Archived {
        source,
        repo,
        after,
        sums,
        runs,
    }
}

impl Archived {
    /// The first segment the third run wrote: the damage goes there.
    fn victim(&self) -> (u64, String) {
        let s = self.runs[2].first().unwrap();
        (
            s["seq"].as_u64().unwrap(),
            s["object"].as_str().unwrap().to_string(),
        )
    }
}

/// A copy of the repository to damage (one archive serves each kind of damage).
fn copy_repo(repo: &Repo) -> Repo {
    let copy = Repo::uninit();
    let status = Command::new("cp")
        .arg("-a")
        .arg(repo.path())
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

fn flip_bytes(repo: &Repo, object: &str) {
    let path = repo.path().join(object);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    bytes[mid + 1] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

fn index_file(seq: u64) -> String {
    format!("binlog/index/{seq:012}.json")
}

/// `verify` and `verify --all` exit 20 naming the segment; `verify ID` checks the backup only.
fn verify_names(repo: &Repo, seq: u64, path: &str, kind: &str) {
    let out = holdfast(&["verify", "--repo", &repo.url()]);
    assert_code(&out, 20, "verify of a damaged archive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(path) && stdout.contains(&format!("segment {seq}")),
        "verify must name segment {seq} ({path}):\n{}",
        text(&out)
    );
    let url = repo.url();
    for deep in [false, true] {
        let mut args = vec!["verify", "--repo", &url, "--all", "--json"];
        if deep {
            args.push("--deep");
        }
        let out = holdfast(&args);
        assert_code(&out, 20, "verify --all of a damaged archive");
        let report = json(&out);
        let problems = report["binlog_archive"]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{report}");
        assert_eq!(problems[0]["seq"], seq, "{report}");
        assert_eq!(problems[0]["kind"], kind, "{report}");
        assert_eq!(problems[0]["path"], path, "{report}");
        assert!(
            report["backups"][0]["problems"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{report}"
        );
    }
    let out = holdfast(&["verify", "--repo", &repo.url(), "latest"]);
    assert_ok(&out, "verify latest checks the backup only");
}

/// A recovery across the damage exits 20 naming the segment, and leaves the target as it was.
fn pitr_refused(repo: &Repo, target: &TestServer, seq: u64, path: &str, before: &str) {
    let before_sums = checksums(target);
    for replay in ["portable", "fast"] {
        let out = holdfast(&[
            "restore",
            "--repo",
            &repo.url(),
            "--target",
            &target.url(),
            "--drop-existing",
            "--replay",
            replay,
            "--latest",
        ]);
        assert_code(
            &out,
            20,
            &format!("--replay {replay} across a damaged segment"),
        );
        let message = text(&out);
        assert!(
            message.contains(&format!("segment {seq} ")) && message.contains(path),
            "--replay {replay}: the error must name segment {seq} ({path}): {message}"
        );
        assert!(
            message.contains(&format!("--to-gtid {before}")) && message.contains("holdfast copy"),
            "--replay {replay}: the error must say what to do: {message}"
        );
        assert_eq!(
            checksums(target),
            before_sums,
            "--replay {replay}: a refused recovery changed the target"
        );
    }
}

/// A recovery to the point before the damage succeeds.
fn pitr_before_works(repo: &Repo, gtid: &str, sums: &[String]) {
    let target = TestServer::start();
    restore(
        repo,
        &target,
        &["--to-gtid", gtid.rsplit(',').next().unwrap()],
    );
    assert_eq!(checksums(&target), sums, "recovery to {gtid}");
}

/// A target holding its own older copy of `d`, which `--drop-existing` would replace.
fn target_with_old_copy() -> TestServer {
    let target = TestServer::start();
    target.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO d.t VALUES (1, 'the old copy')",
    );
    target
}

#[test]
fn a_damaged_segment_is_found_by_verify_and_refused_by_pitr_before_the_target_changes() {
    let a = archive("logical");
    let (seq, object) = a.victim();
    let before = a.after[1].clone();
    let target = target_with_old_copy();
    // Intact: everything passes.
    assert_ok(
        &holdfast(&["verify", "--repo", &a.repo.url(), "--all", "--deep"]),
        "verify",
    );

    // Flipped bytes.
    let corrupt = copy_repo(&a.repo);
    flip_bytes(&corrupt, &object);
    verify_names(&corrupt, seq, &object, "corrupt");
    pitr_refused(&corrupt, &target, seq, &object, &before);

    // The data object deleted.
    let deleted = copy_repo(&a.repo);
    std::fs::remove_file(deleted.path().join(&object)).unwrap();
    verify_names(&deleted, seq, &object, "missing");
    pitr_refused(&deleted, &target, seq, &object, &before);

    // The index entry deleted: `info` and `binlog list` show the hole, naming it.
    let unindexed = copy_repo(&a.repo);
    let index = index_file(seq);
    std::fs::remove_file(unindexed.path().join(&index)).unwrap();
    verify_names(&unindexed, seq, &index, "missing");
    let info = json(&holdfast(&["info", "--repo", &unindexed.url(), "--json"]));
    let gaps = info["recoverable_window"]["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|g| g
            .as_str()
            .unwrap()
            .contains(&format!("segment {seq} (`{index}`)"))),
        "info must name the lost index entry: {info}"
    );
    let out = holdfast(&["info", "--repo", &unindexed.url()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&index),
        "{}",
        text(&out)
    );
    let out = holdfast(&["binlog", "list", "--repo", &unindexed.url()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("MISSING"),
        "{}",
        text(&out)
    );
    pitr_refused(&unindexed, &target, seq, &index, &before);

    // Before the damage, each still recovers.
    for repo in [&corrupt, &deleted, &unindexed] {
        pitr_before_works(repo, &before, &a.sums[1]);
    }
    drop(a.source);
}

/// `pgrep -f PATTERN`: the pids of processes whose command line holds it.
fn pids_with(pattern: &str) -> String {
    let out = Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pitr_datadir(repo: &Repo, datadir: &Path, extra: &[&str]) -> std::process::Output {
    let dir = datadir.display().to_string();
    let url = repo.url();
    let mut args = vec!["restore", "--repo", &url, "--datadir", &dir];
    args.extend_from_slice(extra);
    holdfast(&args)
}

#[test]
fn pitr_on_a_physical_base_checks_the_archive_first_and_never_leaves_a_server_running() {
    let a = archive("physical");
    let (seq, object) = a.victim();
    let scratch = tempfile::tempdir().unwrap();

    // Damage: refused before the datadir is written, no server started.
    let corrupt = copy_repo(&a.repo);
    flip_bytes(&corrupt, &object);
    let datadir = scratch.path().join("across-damage");
    let out = pitr_datadir(&corrupt, &datadir, &["--latest"]);
    assert_code(&out, 20, "physical PITR across a damaged segment");
    assert!(
        text(&out).contains(&format!("segment {seq} ")) && text(&out).contains(&object),
        "{}",
        text(&out)
    );
    assert!(
        !datadir.exists() || std::fs::read_dir(&datadir).unwrap().next().is_none(),
        "the datadir was written before the archive was checked"
    );
    assert_eq!(
        pids_with(&datadir.display().to_string()),
        "",
        "a server was left running"
    );

    // A replay that fails after the server was started: a table the backup and the archive
    // never saw created, then written to.
    a.source.sql(
        "SET sql_log_bin = 0; CREATE DATABASE e; CREATE TABLE e.t (a INT PRIMARY KEY); \
         SET sql_log_bin = 1; INSERT INTO e.t VALUES (1)",
    );
    assert_ok(
        &stream_until_caught_up(&a.repo.url(), &a.source.url(), &[]),
        "stream the conflicting insert",
    );
    let datadir = scratch.path().join("failing-replay");
    let out = pitr_datadir(&a.repo, &datadir, &["--latest"]);
    assert_code(&out, 12, "physical PITR whose replay fails");
    assert!(text(&out).contains("was stopped"), "{}", text(&out));
    assert_eq!(
        pids_with(&datadir.display().to_string()),
        "",
        "a server was left running on the half-recovered datadir"
    );

    // Before the damage: recovered, and the server holdfast started is the one running.
    let datadir = scratch.path().join("before-damage");
    let before = a.after[1].rsplit(',').next().unwrap().to_string();
    let out = pitr_datadir(&corrupt, &datadir, &["--to-gtid", &before, "--json"]);
    assert_ok(&out, "physical PITR before the damage");
    let pid = json(&out)["physical_restore"]["server"]["pid"]
        .as_u64()
        .unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pids_with(&datadir.display().to_string()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let restored = TestServer::start_on_datadir(&datadir, Default::default());
    assert_eq!(checksums(&restored), a.sums[1], "physical PITR to {before}");
}
