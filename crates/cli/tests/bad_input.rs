//! Bad input gets a clear error and a documented exit code, and changes nothing.

mod common;

use common::*;
use holdfast_testkit::TestServer;

#[test]
fn wrong_password_is_an_auth_error() {
    let source = TestServer::start();
    source.sql(
        "CREATE USER bk@'127.0.0.1' IDENTIFIED BY 'right'; GRANT ALL ON *.* TO bk@'127.0.0.1';",
    );
    let repo = Repo::init();
    let url = format!("mysql://bk@127.0.0.1:{}/", source.port());
    let out = holdfast_env(
        &["backup", "--repo", &repo.url(), "--source", &url],
        &[("MYSQL_PWD", "wrong")],
    );
    assert_code(&out, 11, "wrong password");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MYSQL_PWD"),
        "the message should say where the password came from:\n{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the password must not be printed:\n{err}"
    );
    assert!(
        repo.files().iter().all(|f| !f.starts_with("backups/")),
        "nothing may be written"
    );

    let out = holdfast_env(
        &["backup", "--repo", &repo.url(), "--source", &url],
        &[("MYSQL_PWD", "right")],
    );
    assert_ok(&out, "right password");
}

#[test]
fn unreachable_server_is_a_connect_error() {
    let repo = Repo::init();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("mysql://root@127.0.0.1:{port}/");
    let out = holdfast(&["backup", "--repo", &repo.url(), "--source", &url]);
    assert_code(&out, 10, "unreachable server");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&port.to_string()),
        "{}",
        text(&out)
    );
}

#[test]
fn missing_repository() {
    let repo = Repo::uninit();
    let out = holdfast(&["list", "--repo", &repo.url()]);
    assert_code(&out, 3, "missing repository");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holdfast init"),
        "{}",
        text(&out)
    );
}

#[test]
fn unwritable_repository() {
    // A regular file where the repository directory should be: no permission trick is needed, so
    // this also holds when the tests run as root.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let url = format!("file://{}/repo", blocker.display());
    let out = holdfast(&["init", "--repo", &url]);
    assert_code(&out, 6, "unwritable repository");
}

#[test]
fn newer_repository_format_is_refused() {
    let repo = Repo::init();
    let path = repo.path().join("holdfast.repo");
    let body = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"format\": 3", "\"format\": 99");
    assert!(body.contains("\"format\": 99"), "{body}");
    std::fs::write(&path, body).unwrap();
    let out = holdfast(&["list", "--repo", &repo.url()]);
    assert_code(&out, 4, "newer format");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("upgrade holdfast"),
        "{}",
        text(&out)
    );
}

#[test]
fn init_refuses_existing_repository() {
    let repo = Repo::init();
    let out = holdfast(&["init", "--repo", &repo.url()]);
    assert_code(&out, 4, "init twice");
}

#[test]
fn unknown_backup_id_and_empty_repository() {
    let repo = Repo::init();
    let out = holdfast(&["info", "--repo", &repo.url(), "latest"]);
    assert_code(&out, 7, "no backups yet");
    let out = holdfast(&["info", "--repo", &repo.url(), "20200101T000000Z-0000"]);
    assert_code(&out, 7, "unknown id");
    let out = holdfast(&["info", "--repo", &repo.url(), "../../etc"]);
    assert_code(&out, 2, "malformed id");
}

#[test]
fn locked_repository_is_refused() {
    let source = TestServer::start();
    let repo = Repo::init();
    // A live lock held by another host.
    let lock = serde_json::json!({
        "token": "t", "host": "some-other-host", "pid": 1, "purpose": "backup",
        "acquired": "2026-01-01T00:00:00Z", "expires": "2999-01-01T00:00:00Z"
    });
    std::fs::create_dir_all(repo.path().join("locks")).unwrap();
    std::fs::write(repo.path().join("locks/exclusive.lock"), lock.to_string()).unwrap();
    let out = holdfast(&["backup", "--repo", &repo.url(), "--source", &source.url()]);
    assert_code(&out, 5, "locked repository");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("some-other-host"),
        "{}",
        text(&out)
    );

    // A lock left by a dead process on this host is taken over.
    let stale = serde_json::json!({
        "token": "t", "host": hostname(), "pid": 999_999_999u32, "purpose": "backup",
        "acquired": "2026-01-01T00:00:00Z", "expires": "2999-01-01T00:00:00Z"
    });
    std::fs::write(repo.path().join("locks/exclusive.lock"), stale.to_string()).unwrap();
    assert_ok(
        &holdfast(&["backup", "--repo", &repo.url(), "--source", &source.url()]),
        "stale lock",
    );
}

fn hostname() -> String {
    holdfast::repo::lock::hostname()
}

#[test]
fn lock_timeout_gives_up_and_releases() {
    let source = TestServer::start();
    source.sql("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY);");
    // Another session holds BACKUP STAGE, so ours cannot start: the watchdog must fire.
    let holder = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-uroot", "-S"])
        .arg(source.socket())
        .args([
            "-e",
            "BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT; SELECT SLEEP(8); BACKUP STAGE END;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the holder is inside its SLEEP, i.e. past BACKUP STAGE BLOCK_COMMIT.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let sleeping = source.sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(8)%'",
        );
        if sleeping.trim() != "0" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lock holder never got its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let repo = Repo::init();
    let started = std::time::Instant::now();
    let out = holdfast(&[
        "backup",
        "--repo",
        &repo.url(),
        "--source",
        &source.url(),
        "--lock-timeout",
        "2s",
    ]);
    assert_code(&out, 13, "lock timeout");
    assert!(
        started.elapsed().as_secs() < 7,
        "the watchdog should fire after ~2 s"
    );
    // Writes are not blocked by us afterwards.
    source.sql("INSERT INTO d.t VALUES (1)");
    let mut holder = holder;
    let _ = holder.wait();
    assert!(repo.files().iter().all(|f| !f.starts_with("backups/")));
}

#[test]
fn a_closed_stdout_ends_the_report_quietly() {
    // `holdfast list | head -1` closes the pipe while the report is still being written; that
    // must not panic the command or change its exit code.
    let repo = Repo::init();
    for args in [["list", "--repo"], ["info", "--repo"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = std::process::Command::new(bin())
            .args(args)
            .arg(repo.url())
            .stdout(writer)
            .output()
            .expect("run holdfast");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "{args:?} into a closed pipe: {:?}\n{stderr}",
            out.status
        );
    }
}

#[test]
fn json_outputs_and_errors_share_one_schema() {
    let repo = Repo::init();
    let out = holdfast(&["list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "list --json");
    let v = json(&out);
    assert_eq!(v["schema"], "holdfast/v1", "{v}");
    assert_eq!(v["backups"], serde_json::json!([]), "{v}");

    let missing = Repo::uninit();
    let out = holdfast(&["list", "--repo", &missing.url(), "--json"]);
    assert_code(&out, 3, "list of a missing repository");
    let v = json(&out);
    assert_eq!(v["schema"], "holdfast/v1", "{v}");
    assert_eq!(v["error"]["code"], 3, "{v}");
    assert_eq!(v["error"]["kind"], "repo-missing", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(message),
        "stderr carries the same message:\n{}",
        text(&out)
    );
    let out = holdfast(&[
        "info",
        "--repo",
        &repo.url(),
        "20200101T000000Z-0000",
        "--json",
    ]);
    assert_code(&out, 7, "info of an unknown backup");
    assert_eq!(json(&out)["error"]["kind"], "not-found");
}

#[test]
fn missing_privileges_are_listed_at_once_with_the_grant_to_run() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); \
         CREATE USER bk@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO bk@'127.0.0.1';",
    );
    let repo = Repo::init();
    let url = format!("mysql://bk@127.0.0.1:{}/", source.port());
    let repo_url = repo.url();
    let run = |extra: &[&str]| {
        let mut args = vec!["backup", "--repo", &repo_url, "--source", &url];
        args.extend_from_slice(extra);
        holdfast_env(&args, &[("MYSQL_PWD", "pw")])
    };
    let out = run(&[]);
    assert_code(&out, 11, "logical backup without RELOAD and BINLOG MONITOR");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "SHOW VIEW",
        "RELOAD",
        "BINLOG MONITOR",
        "GRANT SHOW VIEW, TRIGGER, EVENT, RELOAD, BINLOG MONITOR ON *.* TO 'bk'@'127.0.0.1';",
    ] {
        assert!(err.contains(want), "missing `{want}`:\n{err}");
    }
    // The case: a physical backup without PROCESS is an auth error (11), not 12, and
    // names everything missing at once.
    let out = run(&["--engine", "physical"]);
    assert_code(&out, 11, "physical backup without PROCESS");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'bk'@'127.0.0.1';"
        ),
        "{err}"
    );
    assert!(!err.contains("IDENTIFIED"), "{err}");
    assert!(repo.files().iter().all(|f| !f.starts_with("backups/")));
    // Granted as told, the backup runs.
    source
        .sql("GRANT SHOW VIEW, TRIGGER, EVENT, RELOAD, BINLOG MONITOR ON *.* TO 'bk'@'127.0.0.1'");
    assert_ok(&run(&[]), "logical backup with the documented grant");
}

#[test]
fn sigint_during_a_backup_commits_nothing_and_releases_the_lock() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE big; CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO big.t SELECT seq, REPEAT(MD5(seq), 4) FROM big.seq_1_to_200000;",
    );
    let repo = Repo::init();
    let child = std::process::Command::new(bin())
        .args([
            "-v",
            "backup",
            "--repo",
            &repo.url(),
            "--source",
            &source.url(),
            "--max-rate",
            "1MiB/s",
            "--threads",
            "1",
        ])
        .env_remove("MYSQL_PWD")
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = repo.path().join("locks/exclusive.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Well into the dump (the throttle keeps it going for many seconds).
    std::thread::sleep(std::time::Duration::from_secs(2));
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 130, "backup interrupted by SIGINT");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted, nothing committed"),
        "{}",
        text(&out)
    );
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a piped log:\n{err}"
    );
    let files = repo.files();
    assert!(
        !files.iter().any(|f| f.ends_with("/manifest")),
        "a backup was committed: {files:?}"
    );
    assert!(!lock.exists(), "the lock was left behind: {files:?}");
    let out = holdfast(&["backup", "--repo", &repo.url(), "--source", &source.url()]);
    assert_ok(&out, "the next backup");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("stale"),
        "{}",
        text(&out)
    );
}

#[test]
fn malformed_urls_are_usage_errors_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init();
    let cases: &[(&[&str], &str)] = &[
        (&["list", "--repo", "ftp://host/x"], "is not supported"),
        (
            &["list", "--repo", "file://relative/path"],
            "file:///path/to/repo",
        ),
        (&["list", "--repo", "file://"], "names no directory"),
        (&["init", "--repo", "s3://"], "names no bucket"),
        (&["init", "--repo", "s3:///prefix"], "names no bucket"),
    ];
    for (args, message) in cases {
        let out = holdfast(args);
        assert_code(&out, 2, &args.join(" "));
        assert!(text(&out).contains(message), "{}", text(&out));
    }
    let url = repo.url();
    for (source, message) in [
        ("mysql://root@127.0.0.1:notaport/", "invalid port number"),
        ("postgres://x@y/", "unsupported scheme `postgres`"),
        ("root@localhost", "does not start with mysql://"),
        ("mysql://root@[::1/", "invalid IPv6 address"),
    ] {
        let out = holdfast(&["backup", "--repo", &url, "--source", source]);
        assert_code(&out, 2, source);
        assert!(text(&out).contains(message), "{source}: {}", text(&out));
        assert!(text(&out).contains("expected mysql://"), "{}", text(&out));
    }
    assert!(
        repo.files().iter().all(|f| !f.starts_with("backups/")),
        "nothing may be written: {:?}",
        repo.files()
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A small tmpfs mounted for one test (we run as root in CI); unmounted on drop.
struct Mount(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Mount {
    fn tmpfs(size: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("mnt");
        std::fs::create_dir(&at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at, dir)
    }

    fn remount(&self, opts: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("file://{}/repo", self.0.display())
    }

    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.0.join("repo");
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        out
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_repository_disk_fails_the_backup_cleanly_and_cleanup_recovers() {
    let source = TestServer::start();
    // 25 MB of hex that compresses to about 7 MB: more than the 4 MiB disk holds.
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO d.t SELECT seq, CONCAT(SHA2(seq, 512), SHA2(seq + 1, 512)) FROM d.seq_1_to_100000;",
    );
    let disk = Mount::tmpfs("4m");
    let url = disk.url();
    assert_ok(
        &holdfast(&["init", "--repo", &url]),
        "init on the small disk",
    );
    let out = holdfast(&["backup", "--repo", &url, "--source", &source.url()]);
    assert_code(&out, 6, "backup onto a full disk");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("full disk: {stderr}");
    assert!(
        stderr.contains("No space left") || stderr.contains("full"),
        "the message must say the disk is full:\n{stderr}"
    );
    assert!(
        !disk.files().iter().any(|f| f.ends_with("/manifest")),
        "nothing may be committed: {:?}",
        disk.files()
    );
    // The lock was released: list works, and cleanup frees the space the failed run used.
    let out = holdfast(&["list", "--repo", &url, "--json"]);
    assert_ok(&out, "list after the failed backup");
    assert_eq!(json(&out)["backups"].as_array().unwrap().len(), 0);
    assert_ok(
        &holdfast(&["cleanup", "--repo", &url]),
        "cleanup after a full disk",
    );
    assert!(
        disk.files().iter().all(|f| !f.starts_with("backups/")),
        "cleanup left {:?}",
        disk.files()
    );
    // A backup that fits then succeeds.
    source.sql("DROP TABLE d.t; CREATE TABLE d.small (id INT PRIMARY KEY); INSERT INTO d.small VALUES (1), (2);");
    backup_to(&url, &source);
}

fn backup_to(url: &str, source: &TestServer) {
    let out = holdfast(&["backup", "--repo", url, "--source", &source.url()]);
    assert_ok(&out, "backup");
}

#[test]
fn a_read_only_repository_refuses_writes_and_still_reads() {
    let source = TestServer::start();
    source.sql("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1), (2), (3);");
    let target = TestServer::start();
    let disk = Mount::tmpfs("16m");
    let url = disk.url();
    assert_ok(&holdfast(&["init", "--repo", &url]), "init");
    backup_to(&url, &source);
    disk.remount("ro");
    let before = disk.files();
    let out = holdfast(&["backup", "--repo", &url, "--source", &source.url()]);
    assert_code(&out, 6, "backup into a read-only repository");
    println!("read-only: {}", text(&out));
    assert!(
        text(&out).contains("Read-only file system"),
        "the message must say the repository is read-only:\n{}",
        text(&out)
    );
    let out = holdfast(&["list", "--repo", &url]);
    assert_ok(&out, "list of a read-only repository");
    let out = holdfast(&["verify", "--repo", &url, "--all", "--deep"]);
    assert_ok(&out, "verify of a read-only repository");
    let out = holdfast(&["restore", "--repo", &url, "--target", &target.url()]);
    assert_ok(&out, "restore from a read-only repository");
    assert_eq!(checksums(&source), checksums(&target));
    assert_eq!(disk.files(), before);
}

#[test]
fn a_restore_target_that_has_the_database_is_refused_and_unchanged() {
    let source = TestServer::start();
    source.sql("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1), (2), (3);");
    let repo = Repo::init();
    backup(&repo, &source, &[]);
    let target = TestServer::start();
    target.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (42);",
    );
    let out = holdfast(&["restore", "--repo", &repo.url(), "--target", &target.url()]);
    assert_code(&out, 14, "restore into a target that has the database");
    println!("target not empty: {}", text(&out));
    assert!(
        text(&out).contains("--drop-existing"),
        "the message must name the way out:\n{}",
        text(&out)
    );
    assert_eq!(target.sql("SELECT id FROM d.t").trim(), "42");
}
