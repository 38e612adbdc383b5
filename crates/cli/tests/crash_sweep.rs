//! Seeded crash sweeps: every command that writes is SIGKILLed at points drawn from a seed,
//! and after each kill the repository must hold: nothing partial is listed, `verify --all` is
//! clean, `cleanup --any-age` removes the debris, and the rerun succeeds. For the binlog
//! stream (killed again and again under writes) the archive must end up holding every
//! transaction the server wrote exactly once, byte for byte against the server's own binlog.
//!
//! Kill points: each scenario runs its command once to the end to measure it, then kills
//! tries at times spread over that duration (one per equal slice, drawn from the seed; see
//! `holdfast_testkit::KillPoints`). A kill that comes after the command finished counts as a
//! try (the checks still run) but not as "landed". `HOLDFAST_SWEEP_SEED` replays a seed
//! (default 19), `HOLDFAST_LONG_TESTS=1` runs 25 kills per scenario instead of 3, and
//! `HOLDFAST_SWEEP=name,name` runs only those scenarios. The table "scenario, tries, landed,
//! passed" is printed at the end (`--nocapture`), and docs/reliability.md publishes it.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{run_killed, CrashRun, KillAt, KillPoints, TestServer};

fn long() -> bool {
    std::env::var_os("HOLDFAST_LONG_TESTS").is_some_and(|v| v != "0" && !v.is_empty())
}

fn tries() -> usize {
    if long() {
        25
    } else {
        3
    }
}

fn seed() -> u64 {
    std::env::var("HOLDFAST_SWEEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(19)
}

fn selected(name: &str) -> bool {
    match std::env::var("HOLDFAST_SWEEP") {
        Ok(list) if !list.is_empty() => list.split(',').any(|n| n.trim() == name),
        _ => true,
    }
}

/// A holdfast command with the same clean environment as `common::holdfast`.
fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("MYSQL_PWD")
        .env_remove("HOLDFAST_PASSWORD")
        .env_remove("HOLDFAST_PASSPHRASE")
        .env("HOME", "/nonexistent");
    c
}

fn to_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One scenario's tally.
#[derive(Default)]
struct Tally {
    tries: usize,
    landed: usize,
    passed: usize,
    calibrated: Duration,
}

impl Tally {
    /// Runs `args` killed at each point over a span of `span`, `check`ing after each kill
    /// (`check` gets the run and panics on a broken invariant).
    fn sweep(
        &mut self,
        name: &str,
        span: Duration,
        mut args: impl FnMut(usize) -> Vec<String>,
        mut check: impl FnMut(usize, &CrashRun),
    ) {
        // Over the first 80% of a run: later runs are often quicker than the measured one.
        let points = KillPoints::new(seed() ^ hash(name)).spread(tries(), span.mul_f64(0.8));
        for (i, at) in points.into_iter().enumerate() {
            let a = args(i);
            let run = run_killed(cmd(&to_strs(&a)), KillAt::After(at));
            self.tries += 1;
            if run.killed {
                self.landed += 1;
            } else {
                assert!(
                    run.status.success(),
                    "{name} try {i}: not killed, and it failed:\n{}",
                    run.text()
                );
            }
            check(i, &run);
            self.passed += 1;
        }
    }
}

/// A stable hash of a scenario name, so each scenario draws its own points from the seed.
fn hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Runs `args` to the end, checks it succeeded, and returns how long it took.
fn calibrate(args: &[String]) -> Duration {
    let run = run_killed(cmd(&to_strs(args)), KillAt::Never);
    assert!(run.succeeded(), "calibration run failed:\n{}", run.text());
    run.elapsed
}

/// The invariants after a kill, for a repository (`key` = the passphrase flags of an
/// encrypted one): every listed backup is complete (verify --all is clean), cleanup removes
/// every file no committed backup owns and every staged upload. Returns the listed ids.
fn repo_holds(repo: &Repo, key: &[&str], what: &str) -> Vec<String> {
    let url = repo.url();
    let mut a = vec!["list", "--repo", &url, "--json"];
    a.extend_from_slice(key);
    let out = holdfast(&a);
    assert_ok(&out, &format!("{what}: list"));
    let listed: Vec<String> = json(&out)["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    let mut a = vec!["verify", "--repo", &url, "--all", "--json"];
    a.extend_from_slice(key);
    let out = holdfast(&a);
    assert_ok(&out, &format!("{what}: verify --all"));
    let mut a = vec!["cleanup", "--repo", &url, "--any-age", "--json"];
    a.extend_from_slice(key);
    let out = holdfast(&a);
    assert_ok(&out, &format!("{what}: cleanup --any-age"));
    // Staged files cleanup keeps on purpose: while a `binlog stream` runs it cannot tell its
    // writes in progress from debris, and says so (`kept_because`); the scenario checks again
    // once the stream has stopped.
    let kept: Vec<String> = json(&out)["incomplete_uploads"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert!(
                u["kept_because"].is_string(),
                "{what}: kept without a reason: {u}"
            );
            u["path"].as_str().unwrap().to_string()
        })
        .collect();
    let mut a = vec!["binlog", "list", "--repo", &url, "--json"];
    a.extend_from_slice(key);
    let out = holdfast(&a);
    assert_ok(&out, &format!("{what}: binlog list"));
    let segments: Vec<String> = json(&out)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["object"].as_str().unwrap().to_string())
        .collect();
    for f in repo.files() {
        if f.starts_with("binlog/data/") {
            assert!(
                segments.contains(&f),
                "{what}: cleanup left a binlog data object no index entry names: {f}"
            );
        }
        assert!(
            !f.starts_with(".holdfast-tmp/") || kept.contains(&f),
            "{what}: cleanup left a staged file: {f}"
        );
        if let Some(rest) = f.strip_prefix("backups/") {
            let owner = rest.split('/').next().unwrap();
            assert!(
                listed.iter().any(|c| c == owner),
                "{what}: cleanup left debris of an uncommitted backup: {f}"
            );
        }
    }
    listed
}

/// A server holding `load_db.t`: `rows` rows of about 190 bytes of hex hashes (they do not
/// compress away), so commands run long enough to be killed mid-write.
fn server_with_hashes(rows: u32) -> TestServer {
    let source = TestServer::start();
    source.sql(&format!(
        "CREATE DATABASE load_db; CREATE TABLE load_db.t (id INT PRIMARY KEY, pad VARCHAR(200)); \
         INSERT INTO load_db.t SELECT seq, CONCAT(SHA2(seq, 512), SHA2(seq, 256)) \
         FROM load_db.seq_1_to_{rows};"
    ));
    source
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Scenarios

fn logical_backup(t: &mut Tally) {
    let source = server_with_hashes(150_000);
    let repo = Repo::init();
    let args = strings(&[
        "backup",
        "--repo",
        &repo.url(),
        "--source",
        &source.url(),
        "--threads",
        "2",
        "--chunk-size",
        "256k",
    ]);
    t.calibrated = calibrate(&args);
    t.sweep(
        "logical-backup",
        t.calibrated,
        |_| args.clone(),
        |i, run| {
            let what = format!("logical backup try {i}");
            let before = repo_holds(&repo, &[], &what);
            let out = holdfast(&to_strs(&args));
            assert_ok(&out, &format!("{what}: rerun"));
            let after = repo_holds(&repo, &[], &what);
            assert_eq!(after.len(), before.len() + 1, "{what}: {}", run.text());
        },
    );
}

fn physical_backup(t: &mut Tally, incremental: bool) {
    let name = if incremental {
        "incremental"
    } else {
        "physical-backup"
    };
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE load_db; CREATE TABLE load_db.t (id INT PRIMARY KEY, pad VARCHAR(200)); \
         INSERT INTO load_db.t SELECT seq, REPEAT(MD5(seq), 6) FROM load_db.seq_1_to_200000;",
    );
    let repo = Repo::init();
    let mut args = strings(&[
        "backup",
        "--repo",
        &repo.url(),
        "--source",
        &source.url(),
        "--engine",
        "physical",
    ]);
    if incremental {
        let out = holdfast(&to_strs(&args));
        assert_ok(&out, "the full backup");
        args.push("--incremental".into());
    }
    t.calibrated = calibrate(&args);
    let mut next_row = 1_000_000;
    t.sweep(
        name,
        t.calibrated,
        |_| {
            if incremental {
                // Something for the incremental to carry.
                source.sql(&format!(
                    "INSERT INTO load_db.t SELECT seq, REPEAT(MD5(seq), 6) \
                     FROM load_db.seq_{next_row}_to_{}",
                    next_row + 5000
                ));
                next_row += 10_000;
            }
            args.clone()
        },
        |i, _| {
            let what = format!("{name} try {i}");
            // The killed tool did not linger holding backup locks: DDL goes through.
            source.sql(&format!(
                "SET SESSION lock_wait_timeout = 10; CREATE TABLE load_db.after_kill_{i} (id INT)"
            ));
            let before = repo_holds(&repo, &[], &what);
            let out = holdfast(&to_strs(&args));
            assert_ok(&out, &format!("{what}: rerun"));
            let after = repo_holds(&repo, &[], &what);
            assert_eq!(after.len(), before.len() + 1, "{what}");
        },
    );
    if incremental {
        // The whole chain restores: full + every incremental.
        let dir = tempfile::tempdir().unwrap();
        let datadir = dir.path().join("restored");
        let out = holdfast(&[
            "restore",
            "--repo",
            &repo.url(),
            "latest",
            "--datadir",
            datadir.to_str().unwrap(),
        ]);
        assert_ok(&out, "restore of the incremental chain");
    }
}

fn restore_logical(t: &mut Tally) {
    let source = server_with_hashes(100_000);
    let repo = Repo::init();
    backup(&repo, &source, &["--chunk-size", "256k"]);
    let want = checksums(&source);
    let target = TestServer::start();
    let args = strings(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &target.url(),
        "latest",
        "--drop-existing",
    ]);
    t.calibrated = calibrate(&args);
    t.sweep(
        "restore",
        t.calibrated,
        |_| args.clone(),
        |i, _| {
            let what = format!("restore try {i}");
            repo_holds(&repo, &[], &what);
            let out = holdfast(&to_strs(&args));
            assert_ok(&out, &format!("{what}: rerun"));
            assert_eq!(
                checksums(&target),
                want,
                "{what}: the rerun restored other data"
            );
        },
    );
}

/// A repository with a backup and an archive after it (small transactions), and the source.
fn source_with_archive(transactions: usize) -> (TestServer, Repo) {
    let source = server_with_hashes(20_000);
    source.sql("CREATE TABLE load_db.w (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100))");
    let repo = Repo::init();
    backup(&repo, &source, &[]);
    let mut sql = String::new();
    for i in 0..transactions {
        sql.push_str(&format!(
            "INSERT INTO load_db.w (v) VALUES (MD5({i})); UPDATE load_db.t SET pad = MD5(id) WHERE id = {};\n",
            i + 1
        ));
    }
    source.sql(&sql);
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "stream --until-caught-up");
    (source, repo)
}

fn pitr_replay(t: &mut Tally) {
    let (source, repo) = source_with_archive(1500);
    let want = checksums(&source);
    // A fresh target for every run: a replay killed halfway leaves the target's own GTID
    // state behind, and a point-in-time recovery wants a target without history.
    let mut target = TestServer::start();
    let args_for = |target: &TestServer| {
        strings(&[
            "restore",
            "--repo",
            &repo.url(),
            "--target",
            &target.url(),
            "--latest",
        ])
    };
    t.calibrated = calibrate(&args_for(&target));
    assert_eq!(checksums(&target), want, "the calibration recovery");
    t.sweep(
        "pitr-replay",
        t.calibrated,
        |_| {
            target = TestServer::start();
            args_for(&target)
        },
        |i, _| {
            let what = format!("pitr try {i}");
            repo_holds(&repo, &[], &what);
            let rerun = TestServer::start();
            let out = holdfast(&to_strs(&args_for(&rerun)));
            assert_ok(&out, &format!("{what}: rerun"));
            assert_eq!(
                checksums(&rerun),
                want,
                "{what}: the rerun recovered other data"
            );
        },
    );
}

fn copy(t: &mut Tally) {
    let (source, repo) = source_with_archive(500);
    backup(&repo, &source, &["--chunk-size", "64k"]);
    let dest = Repo::init();
    let args = strings(&["copy", "--from", &repo.url(), "--to", &dest.url(), "--all"]);
    // Calibrate into a scratch destination, so the sweep's copies have work to do.
    let scratch = Repo::init();
    t.calibrated = calibrate(&strings(&[
        "copy",
        "--from",
        &repo.url(),
        "--to",
        &scratch.url(),
        "--all",
    ]));
    drop(scratch);
    let want = repo_holds(&repo, &[], "copy source");
    t.sweep(
        "copy",
        t.calibrated,
        |_| args.clone(),
        |i, _| {
            let what = format!("copy try {i}");
            repo_holds(&dest, &[], &what);
            let out = holdfast(&to_strs(&args));
            assert_ok(&out, &format!("{what}: rerun"));
            assert_eq!(
                repo_holds(&dest, &[], &what),
                want,
                "{what}: the copy differs"
            );
            // Start the next try from an emptier destination: remove the newest backup's manifest
            // (the copy sees it missing and copies it again).
            let newest = want.last().unwrap();
            std::fs::remove_dir_all(dest.path().join("backups").join(newest)).unwrap();
        },
    );
}

/// Key slots change by rewriting `holdfast.repo`; a kill at any point must leave a
/// repository the old passphrase opens. Every command here runs the passphrase KDF (seconds
/// each), so the quick run tries 3 points.
fn key_change(t: &mut Tally) {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1)",
    );
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.txt");
    std::fs::write(&old, "the original passphrase\n").unwrap();
    let old = old.to_str().unwrap().to_string();
    let repo = Repo::uninit();
    let out = holdfast(&[
        "init",
        "--repo",
        &repo.url(),
        "--encrypt",
        "--passphrase-file",
        &old,
    ]);
    assert_ok(&out, "init --encrypt");
    backup(&repo, &source, &["--passphrase-file", &old]);
    let new = dir.path().join("new.txt");
    std::fs::write(&new, "a new passphrase\n").unwrap();
    let new = new.to_str().unwrap().to_string();
    let add = strings(&[
        "key",
        "add",
        "--repo",
        &repo.url(),
        "--passphrase-file",
        &old,
        "--new-passphrase-file",
        &new,
    ]);
    // Removes every slot but the first (the old passphrase's).
    let remove_added = || {
        let out = holdfast(&[
            "key",
            "list",
            "--repo",
            &repo.url(),
            "--passphrase-file",
            &old,
            "--json",
        ]);
        assert_ok(&out, "key list with the old passphrase");
        let slots = json(&out)["slots"].as_array().unwrap().len();
        if slots > 1 {
            let mut a = strings(&[
                "key",
                "remove",
                "--repo",
                &repo.url(),
                "--passphrase-file",
                &old,
            ]);
            a.extend((1..slots).map(|n| n.to_string()));
            let out = holdfast(&to_strs(&a));
            assert_ok(&out, "key remove");
        }
    };
    t.calibrated = calibrate(&add);
    remove_added();
    let points = if long() { tries() } else { 3 };
    let span = t.calibrated.mul_f64(0.8);
    let all = KillPoints::new(seed() ^ hash("key-change")).spread(points, span);
    for (i, at) in all.into_iter().enumerate() {
        let what = format!("key change try {i}");
        let run = run_killed(cmd(&to_strs(&add)), KillAt::After(at));
        t.tries += 1;
        if run.killed {
            t.landed += 1;
        } else {
            assert!(run.status.success(), "{what}: {}", run.text());
        }
        // The old passphrase always opens the repository, and what it holds verifies.
        let out = holdfast(&[
            "verify",
            "--repo",
            &repo.url(),
            "--all",
            "--passphrase-file",
            &old,
        ]);
        assert_ok(
            &out,
            &format!("{what}: verify --all with the old passphrase"),
        );
        remove_added();
        let out = holdfast(&to_strs(&add));
        assert_ok(&out, &format!("{what}: rerun"));
        let out = holdfast(&["list", "--repo", &repo.url(), "--passphrase-file", &new]);
        assert_ok(&out, &format!("{what}: the new passphrase after the rerun"));
        remove_added();
        t.passed += 1;
    }
    repo_holds(
        &repo,
        &["--passphrase-file", &old],
        "key change, at the end",
    );
}

fn expire(t: &mut Tally) {
    let source = server_with_hashes(20_000);
    let repo = Repo::init();
    let take = || backup(&repo, &source, &["--chunk-size", "4k"]);
    let args = strings(&["expire", "--repo", &repo.url(), "--keep-last", "1"]);
    take();
    take();
    t.calibrated = calibrate(&args);
    t.sweep(
        "expire",
        t.calibrated,
        |_| {
            take();
            take();
            args.clone()
        },
        |i, _| {
            let what = format!("expire try {i}");
            repo_holds(&repo, &[], &what);
            let out = holdfast(&to_strs(&args));
            assert_ok(&out, &format!("{what}: rerun"));
            assert_eq!(
                repo_holds(&repo, &[], &what).len(),
                1,
                "{what}: keep-last 1"
            );
        },
    );
}

/// Small transactions a little apart, each in its own segment under a 20 ms flush.
fn trickle(server: &TestServer, from: u32, count: u32) {
    for i in from..from + count {
        server.sql(&format!(
            "INSERT INTO load_db.w (v) VALUES (MD5({i})); UPDATE load_db.t SET pad = MD5({i}) WHERE id = {}",
            i % 1000 + 1
        ));
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn binlog_compact(t: &mut Tally) {
    let (source, repo) = source_with_archive(10);
    let stream = Streamer::start(
        &repo,
        &source,
        &["--flush-interval", "20ms", "--no-compact"],
    );
    let mut next = 10_000;
    let mut more = |n: u32| {
        trickle(&source, next, n);
        next += n;
        wait_archived(&repo, &gtid_state(&source));
    };
    more(60);
    let args = strings(&[
        "binlog",
        "compact",
        "--repo",
        &repo.url(),
        "--older-than",
        "0s",
    ]);
    t.calibrated = calibrate(&args);
    t.sweep(
        "binlog-compact",
        t.calibrated,
        |_| {
            more(60);
            args.clone()
        },
        |i, _| {
            let what = format!("compact try {i}");
            repo_holds(&repo, &[], &what);
            let out = holdfast(&to_strs(&args));
            assert_ok(&out, &format!("{what}: rerun"));
            repo_holds(&repo, &[], &what);
        },
    );
    stream.stop_when_archived(&repo, &gtid_state(&source));
    // With the stream stopped, cleanup keeps nothing.
    let out = holdfast(&["cleanup", "--repo", &repo.url(), "--any-age", "--json"]);
    assert_ok(&out, "cleanup after the stream stopped");
    assert_eq!(
        json(&out)["incomplete_uploads"]["kept"],
        serde_json::json!([])
    );
    repo_holds(&repo, &[], "compact, at the end");
    let target = TestServer::start();
    restore(&repo, &target, &["--latest"]);
    assert_eq!(
        checksums(&target),
        checksums(&source),
        "recovery after the sweep"
    );
}

fn binlog_stream(t: &mut Tally) {
    let source = server_with_hashes(2000);
    source.sql("CREATE TABLE load_db.w (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100))");
    let repo = Repo::init();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let socket = source.socket().to_path_buf();
        let client = holdfast_testkit::find_binary("mariadb").expect("the mariadb client");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let sql = format!(
                    "INSERT INTO load_db.w (v) VALUES (MD5({i})); \
                     UPDATE load_db.t SET pad = MD5({i}) WHERE id = {}; FLUSH LOGS",
                    i % 2000 + 1
                );
                // A rotation now and then, so kills land around file boundaries too.
                let sql = if i % 200 == 199 {
                    sql
                } else {
                    sql.replace("; FLUSH LOGS", "")
                };
                let out = Command::new(&client)
                    .args(["-uroot", "-S", socket.to_str().unwrap(), "-e", &sql])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "writer: {}", text(&out));
                i += 1;
            }
            i
        })
    };
    let args = strings(&[
        "binlog",
        "stream",
        "--repo",
        &repo.url(),
        "--source",
        &source.url(),
        "--flush-interval",
        "100ms",
        "--max-segment",
        "64k",
    ]);
    // The stream never ends by itself: kill points over 3 s of streaming.
    t.calibrated = Duration::from_secs(3);
    t.sweep(
        "binlog-stream",
        t.calibrated,
        |_| args.clone(),
        |i, run| {
            let what = format!("stream try {i}");
            assert!(
                run.killed,
                "{what}: the stream ended by itself:\n{}",
                run.text()
            );
            // Nothing partial listed, verify --all clean, cleanup leaves no debris: the
            // stream's debris (a data object without its index entry) is never listed, and
            // the next start removes it.
            repo_holds(&repo, &[], &what);
        },
    );
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
    assert_ok(&out, "the final stream --until-caught-up");
    repo_holds(&repo, &[], "stream, at the end");
    // Every GTID the server wrote, exactly once, in the server's order.
    let archived = assert_archive_holds_server_binlog(&repo, &source);
    assert!(
        archived.len() as u64 >= written,
        "{} GTIDs archived, {written} transactions written",
        archived.len()
    );
    eprintln!(
        "binlog-stream: {written} transactions written under {} kills, {} GTIDs archived once each",
        t.landed,
        archived.len()
    );
}

/// One scenario: runs its sweep, filling the tally; panics on a broken invariant.
type Scenario = fn(&mut Tally);

#[test]
fn crash_sweep() {
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("logical-backup", logical_backup),
        ("physical-backup", |t| physical_backup(t, false)),
        ("incremental", |t| physical_backup(t, true)),
        ("binlog-stream", binlog_stream),
        ("restore", restore_logical),
        ("pitr-replay", pitr_replay),
        ("copy", copy),
        ("key-change", key_change),
        ("expire", expire),
        ("binlog-compact", binlog_compact),
    ];
    let mut rows = Vec::new();
    for (name, run) in scenarios {
        if !selected(name) {
            continue;
        }
        let started = Instant::now();
        let mut tally = Tally::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut tally)));
        let failure = result.err().map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        rows.push((name, tally, started.elapsed(), failure));
    }
    println!(
        "\ncrash sweep, seed {} ({} kills per scenario)\n\n| scenario | tries | landed mid-run | passed | run length | time |\n|---|---|---|---|---|---|",
        seed(),
        tries()
    );
    for (name, t, took, _) in &rows {
        println!(
            "| {name} | {} | {} | {} | {:.2}s | {:.0}s |",
            t.tries,
            t.landed,
            t.passed,
            t.calibrated.as_secs_f64(),
            took.as_secs_f64()
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|(name, _, _, f)| f.as_ref().map(|f| format!("{name}: {f}")))
        .collect();
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n\n")
    );
    for (name, t, _, _) in &rows {
        assert!(
            t.landed > 0,
            "{name}: no kill landed while the command ran; the sweep proved nothing"
        );
    }
}
