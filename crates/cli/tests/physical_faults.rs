//! Physical backups under faults: a broken or corrupt incremental chain is refused with a clear
//! error, misuse of restore is a usage error, and `kill -9` mid-backup leaves nothing listed and
//! no debris a later run trips over.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use holdfast_testkit::TestServer;

fn physical(repo: &Repo, server: &TestServer, extra: &[&str]) -> std::process::Output {
    let source = server.url();
    let url = repo.url();
    let mut args = vec![
        "backup", "--repo", &url, "--source", &source, "--engine", "physical", "--json",
    ];
    args.extend_from_slice(extra);
    holdfast(&args)
}

fn id_of(out: &std::process::Output) -> String {
    assert_ok(out, "physical backup");
    json(out)["id"].as_str().unwrap().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn broken_or_corrupt_chains_are_refused() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100)); USE d; \
         INSERT INTO d.t SELECT seq, MD5(seq) FROM seq_1_to_20000;",
    );
    let repo = Repo::init();

    // No full backup to build on.
    let out = physical(&repo, &source, &["--incremental"]);
    assert_code(&out, 7, "incremental without a full backup");
    assert!(
        stderr(&out).contains("no physical backup"),
        "{}",
        text(&out)
    );

    let full = id_of(&physical(&repo, &source, &[]));
    source.sql("UPDATE d.t SET v = 'x' WHERE id <= 1000");
    let inc1 = id_of(&physical(&repo, &source, &["--incremental"]));
    source.sql("UPDATE d.t SET v = 'y' WHERE id > 19000");
    let inc2 = id_of(&physical(&repo, &source, &["--incremental"]));
    let scratch = tempfile::tempdir().unwrap();

    // Misuse: a physical backup without --datadir, into a non-empty datadir; a logical backup
    // with --datadir.
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        &inc2,
        "--target",
        &source.url(),
    ]);
    assert_code(&out, 2, "physical restore without --datadir");
    assert!(stderr(&out).contains("--datadir"), "{}", text(&out));
    let busy = scratch.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.me"), "precious").unwrap();
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        &inc2,
        "--datadir",
        &busy.display().to_string(),
    ]);
    assert_code(&out, 14, "restore into a non-empty datadir");
    assert_eq!(
        std::fs::read_to_string(busy.join("keep.me")).unwrap(),
        "precious"
    );
    let logical = backup(&repo, &source, &["--databases", "d"]);
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        logical["id"].as_str().unwrap(),
        "--datadir",
        &scratch.path().join("x").display().to_string(),
    ]);
    assert_code(&out, 2, "logical restore with --datadir");
    assert!(stderr(&out).contains("logical"), "{}", text(&out));

    // Corrupt the middle incremental's stream: verify names it, restore refuses and leaves
    // nothing behind.
    let stream = repo
        .path()
        .join(format!("backups/{inc1}/stream.xbstream.zst"));
    let mut bytes = std::fs::read(&stream).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&stream, &bytes).unwrap();
    let out = holdfast(&["verify", "--repo", &repo.url(), &inc2, "--json"]);
    assert_code(&out, 20, "verify of a chain with a corrupt parent");
    let report = json(&out);
    let problems = report["backups"][0]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["path"].as_str().unwrap().contains(&inc1)),
        "{report}"
    );
    let datadir = scratch.path().join("restored");
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        &inc2,
        "--datadir",
        &datadir.display().to_string(),
    ]);
    assert_code(&out, 20, "restore through a corrupt parent");
    assert!(stderr(&out).contains(&inc1), "{}", text(&out));
    assert!(
        !datadir.exists(),
        "a failed restore left {}",
        datadir.display()
    );
    std::fs::write(&stream, {
        bytes[mid] ^= 0xff;
        &bytes
    })
    .unwrap();
    assert_ok(
        &holdfast(&["verify", "--repo", &repo.url(), &inc2]),
        "verify after repair",
    );

    // A missing parent: the child is still listed, but verify, restore and a new incremental on
    // top of it all refuse.
    std::fs::remove_file(repo.path().join(format!("backups/{inc1}/manifest"))).unwrap();
    let out = holdfast(&["verify", "--repo", &repo.url(), &inc2, "--json"]);
    assert_code(&out, 20, "verify with a missing parent");
    let report = json(&out);
    assert!(
        report["backups"][0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "chain"),
        "{report}"
    );
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        &inc2,
        "--datadir",
        &datadir.display().to_string(),
    ]);
    assert_code(&out, 20, "restore with a missing parent");
    assert!(stderr(&out).contains("missing"), "{}", text(&out));
    assert!(!datadir.exists());
    let out = physical(&repo, &source, &["--incremental", "--parent", &inc2]);
    assert_code(&out, 20, "incremental on a broken chain");
    assert!(
        stderr(&out).contains("cannot take an incremental"),
        "{}",
        text(&out)
    );
    // The full backup alone still restores.
    let out = holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        &full,
        "--datadir",
        &datadir.display().to_string(),
        "--json",
    ]);
    assert_ok(&out, "restore of the intact full backup");
    assert!(datadir.join("ibdata1").exists());
}

#[test]
fn killed_physical_backups_leave_nothing_listed_and_no_debris() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE load_db; CREATE TABLE load_db.t (id INT PRIMARY KEY, pad VARCHAR(200)); \
         USE load_db; INSERT INTO load_db.t SELECT seq, REPEAT(MD5(seq), 6) FROM seq_1_to_300000;",
    );
    let repo = Repo::init();
    let mut debris_seen = false;
    for delay_ms in [150u64, 400, 700, 1000, 1400] {
        let mut child = Command::new(bin())
            .args([
                "backup",
                "--repo",
                &repo.url(),
                "--source",
                &source.url(),
                "--engine",
                "physical",
            ])
            .env("HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: sending SIGKILL to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let finished = child.wait().unwrap().success();
        let list = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
        for b in list.as_array().unwrap() {
            let id = b["id"].as_str().unwrap();
            assert_ok(
                &holdfast(&["verify", "--repo", &repo.url(), id]),
                "a listed backup must verify",
            );
        }
        // A kill mid-write leaves the backup's files, or (local disk stages writes and renames
        // them into place) a staged file that is never listed.
        debris_seen |= !finished
            && repo
                .files()
                .iter()
                .any(|f| f.starts_with("backups/") || f.starts_with(".holdfast-tmp/"));
    }
    // The killed tool did not linger holding backup locks: DDL goes through at once.
    source.sql("SET SESSION lock_wait_timeout = 5; CREATE TABLE load_db.after_kill (id INT)");
    let before = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"]
        .clone()
        .as_array()
        .unwrap()
        .len();
    let id = id_of(&physical(&repo, &source, &[]));
    let list = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
    let committed: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(committed.len(), before + 1);
    assert_eq!(committed.last().unwrap(), &id);
    for f in repo.files() {
        if let Some(rest) = f.strip_prefix("backups/") {
            let owner = rest.split('/').next().unwrap();
            assert!(
                committed.iter().any(|c| c == owner),
                "debris left behind: {f}"
            );
        }
    }
    assert!(
        debris_seen,
        "no kill landed mid-backup; the test proved nothing (make the data bigger)"
    );
}

#[test]
fn a_stalled_lock_stage_is_abandoned_within_the_lock_timeout() {
    let source = TestServer::start();
    let repo = Repo::init();
    std::thread::scope(|scope| {
        // Another session holds the server's backup lock for 10 s (as a concurrent backup
        // would), so the tool's BACKUP STAGE START waits.
        let holder = scope.spawn(|| {
            source.sql(
                "BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT; SELECT SLEEP(10); BACKUP STAGE END",
            )
        });
        std::thread::sleep(Duration::from_secs(1));
        let started = std::time::Instant::now();
        let out = physical(&repo, &source, &["--lock-timeout", "2s"]);
        let took = started.elapsed();
        assert_code(&out, 13, "backup behind a held backup lock");
        assert!(stderr(&out).contains("--lock-timeout"), "{}", text(&out));
        assert!(took < Duration::from_secs(8), "gave up only after {took:?}");
        let list = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]))["backups"].clone();
        assert!(list.as_array().unwrap().is_empty(), "{list}");
        holder.join().unwrap();
    });
    // Once the other session has let go, a backup goes through.
    id_of(&physical(&repo, &source, &["--lock-timeout", "20s"]));
}
