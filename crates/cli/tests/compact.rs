//! Binlog archive compaction on real servers: a running stream with a 50 ms flush interval
//! under writes leaves many small segments; `binlog compact --older-than 0s` merges them while
//! the stream keeps running (object count before and after printed); `verify --all --deep` is
//! clean and point-in-time recoveries to `--latest` and to a GTID inside a merged segment equal
//! the source (`CHECKSUM TABLE`). A compaction killed (SIGKILL) after each of its steps leaves a
//! readable, verified archive, and the next one finishes the job. The stream compacts by itself
//! too.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::TestServer;

fn segments(repo: &Repo) -> Vec<serde_json::Value> {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "binlog list");
    json(&out)["segments"].as_array().unwrap().clone()
}

/// Objects under `binlog/data/` and `binlog/index/`.
fn archive_objects(repo: &Repo) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    walk(&repo.path().join("binlog/data")) + walk(&repo.path().join("binlog/index"))
}

fn verify_clean(repo: &Repo, what: &str) -> serde_json::Value {
    let out = holdfast(&["verify", "--repo", &repo.url(), "--all", "--deep", "--json"]);
    assert_ok(&out, &format!("verify --all --deep {what}"));
    let report = json(&out);
    assert_eq!(
        report["binlog_archive"]["problems"],
        serde_json::json!([]),
        "{what}: {report}"
    );
    report
}

fn compact(repo: &Repo, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let url = repo.url();
    let mut args = vec!["binlog", "compact", "--repo", &url, "--json"];
    args.extend_from_slice(extra);
    holdfast_env(&args, env)
}

/// Small transactions, each followed by a pause longer than the flush interval, so each
/// tends to land in its own segment.
fn trickle(server: &TestServer, from: u32, count: u32) {
    for i in from..from + count {
        server.sql(&format!(
            "INSERT INTO d.t VALUES ({i}, REPEAT(MD5({i}), 3)); UPDATE d.t SET v = 'u{i}' WHERE id = {}",
            i / 2
        ));
        std::thread::sleep(Duration::from_millis(70));
    }
}

fn source() -> TestServer {
    let server = TestServer::start();
    server.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO d.t SELECT seq, MD5(seq) FROM d.seq_1_to_200",
    );
    server
}

fn pitr_equals(repo: &Repo, flag: &str, value: &str, want: &[String]) {
    let target = TestServer::start();
    let mut args = vec![flag];
    if !value.is_empty() {
        args.push(value);
    }
    restore(repo, &target, &args);
    assert_eq!(checksums(&target), want, "PITR {flag} {value}");
}

#[test]
fn compaction_under_a_running_stream_keeps_every_point_recoverable() {
    let server = source();
    let repo = Repo::init();
    backup(&repo, &server, &[]);
    let stream = Streamer::start(
        &repo,
        &server,
        &["--flush-interval", "50ms", "--no-compact"],
    );
    trickle(&server, 1000, 40);
    let mid_gtid = gtid_state(&server);
    let mid_sums = checksums(&server);
    trickle(&server, 2000, 40);
    wait_archived(&repo, &gtid_state(&server));

    let before = segments(&repo);
    let objects_before = archive_objects(&repo);
    assert!(before.len() >= 30, "only {} segments", before.len());
    // Dry run: nothing changes.
    let out = compact(&repo, &["--older-than", "0s", "--dry-run"], &[]);
    assert_ok(&out, "compact --dry-run");
    let dry = json(&out);
    assert!(!dry["merged"].as_array().unwrap().is_empty(), "{dry}");
    assert_eq!(archive_objects(&repo), objects_before);
    // A threshold older than everything merges nothing.
    let out = compact(&repo, &["--older-than", "1h"], &[]);
    assert_ok(&out, "compact --older-than 1h");
    assert_eq!(json(&out)["merged"], serde_json::json!([]));

    // Compact while the stream runs and the server keeps writing.
    let out = std::thread::scope(|scope| {
        let writer = scope.spawn(|| trickle(&server, 3000, 20));
        let out = compact(&repo, &["--older-than", "0s"], &[]);
        writer.join().unwrap();
        out
    });
    assert_ok(&out, "compact --older-than 0s");
    let report = json(&out);
    let objects_after = archive_objects(&repo);
    eprintln!(
        "compaction: {} segments ({objects_before} objects) -> {} segments ({objects_after} \
         objects on disk, the stream kept writing); report: segments {} -> {}, objects {} -> {}",
        before.len(),
        segments(&repo).len(),
        report["segments_before"],
        report["segments_after"],
        report["objects_before"],
        report["objects_after"]
    );
    assert!(
        report["segments_after"].as_u64() < report["segments_before"].as_u64(),
        "{report}"
    );
    assert!(objects_after < objects_before, "{report}");
    let merged: Vec<_> = segments(&repo)
        .into_iter()
        .filter(|s| s["merged"] == true)
        .collect();
    assert!(!merged.is_empty());
    // The mid-point GTID lies inside a merged segment.
    let mid_n = gtid_number(&mid_gtid);
    assert!(
        merged.iter().any(|s| {
            let first = s["first_gtid"]
                .as_str()
                .map(gtid_number)
                .unwrap_or(u64::MAX);
            let last = s["last_gtid"].as_str().map(gtid_number).unwrap_or(0);
            first < mid_n && mid_n < last
        }),
        "no merged segment holds {mid_gtid}: {merged:?}"
    );

    stream.stop_when_archived(&repo, &gtid_state(&server));
    // The stream resumes after a compaction too.
    trickle(&server, 4000, 5);
    let out = stream_until_caught_up(&repo.url(), &server.url(), &["--no-compact"]);
    assert_ok(&out, "stream after compaction");
    wait_archived(&repo, &gtid_state(&server));
    verify_clean(&repo, "after compaction");
    pitr_equals(&repo, "--to-gtid", &mid_gtid, &mid_sums);
    pitr_equals(&repo, "--latest", "", &checksums(&server));
}

#[test]
fn a_compaction_killed_at_any_step_leaves_a_readable_archive_and_the_next_one_finishes() {
    let server = source();
    let repo = Repo::init();
    backup(&repo, &server, &[]);
    let mut next = 1000;
    // Each stream run archives a little: many small segments continuing each other.
    let mut add_segments = |n: u32| {
        for _ in 0..n {
            trickle(&server, next, 1);
            next += 1;
            let out = stream_until_caught_up(&repo.url(), &server.url(), &["--no-compact"]);
            assert_ok(&out, "stream");
        }
    };
    add_segments(6);
    let inside = gtid_state(&server);
    let inside_sums = checksums(&server);
    for step in ["merged-data", "merged-index", "small-data", "small-index"] {
        add_segments(4);
        let before = segments(&repo).len();
        let out = compact(
            &repo,
            &["--older-than", "0s"],
            &[("HOLDFAST_TEST_COMPACT_CRASH_AFTER", step)],
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "compaction was not killed after {step}: {}",
            text(&out)
        );
        // Readable, clean, nothing counted twice.
        let after = segments(&repo).len();
        let report = verify_clean(&repo, &format!("killed after {step}"));
        let leftovers = report["binlog_archive"]["compaction_leftovers"]
            .as_u64()
            .unwrap();
        eprintln!(
            "killed after {step}: {before} -> {after} segments, {leftovers} leftover entries"
        );
        if step == "merged-data" {
            assert_eq!(after, before, "nothing committed yet");
            assert_eq!(leftovers, 0);
            // The merged object without its entry is debris that cleanup removes (it used to
            // wait for the next compaction of the same directory).
            assert!(
                !stray_objects(&repo).is_empty(),
                "the kill left no merged object"
            );
            let out = holdfast(&["cleanup", "--repo", &repo.url(), "--json"]);
            assert_ok(&out, "cleanup after the kill after merged-data");
            let report = json(&out);
            assert!(
                !report["compaction_debris"]["removed"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "{report}"
            );
            assert_eq!(stray_objects(&repo), Vec::<String>::new(), "{report}");
            verify_clean(&repo, "cleanup after the kill after merged-data");
        } else {
            assert!(after < before, "{step}: the merged segment is in use");
        }
        if step == "merged-index" || step == "small-data" {
            // Killed before the covered entries were removed.
            assert!(leftovers > 0, "{step}: {report}");
        }
        // The stream still resumes, then a plain run finishes the job.
        add_segments(1);
        let out = compact(&repo, &["--older-than", "0s"], &[]);
        assert_ok(&out, &format!("compact after the kill after {step}"));
        eprintln!("the next compaction: {}", json(&out));
        let report = verify_clean(&repo, &format!("compacted again after {step}"));
        assert_eq!(report["binlog_archive"]["compaction_leftovers"], 0);
        assert_eq!(stray_objects(&repo), Vec::<String>::new(), "after {step}");
    }
    pitr_equals(&repo, "--to-gtid", &inside, &inside_sums);
    pitr_equals(&repo, "--latest", "", &checksums(&server));
}

/// Data objects that no committed segment references.
fn stray_objects(repo: &Repo) -> Vec<String> {
    let referenced: std::collections::HashSet<String> = segments(repo)
        .iter()
        .map(|s| s["object"].as_str().unwrap().to_string())
        .collect();
    walkdir(&repo.path().join("binlog/data"))
        .into_iter()
        .map(|e| {
            e.strip_prefix(repo.path())
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .filter(|rel| !referenced.contains(rel))
        .collect()
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn the_stream_compacts_by_itself() {
    let server = source();
    let repo = Repo::init();
    backup(&repo, &server, &[]);
    let stream = Streamer::start(
        &repo,
        &server,
        &["--flush-interval", "50ms", "--compact-older-than", "1s"],
    );
    trickle(&server, 1000, 40);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !segments(&repo).iter().any(|s| s["merged"] == true) {
        assert!(Instant::now() < deadline, "the stream never compacted");
        std::thread::sleep(Duration::from_millis(200));
    }
    trickle(&server, 2000, 5);
    stream.stop_when_archived(&repo, &gtid_state(&server));
    verify_clean(&repo, "after the stream's compaction");
    pitr_equals(&repo, "--latest", "", &checksums(&server));
}
