//! Shared helpers for the CLI's integration tests: run the real binary against real servers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use holdfast_testkit::{Flavor, TestServer};

pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    /// A new, initialised repository in a temp dir.
    pub fn init() -> Repo {
        let repo = Repo::uninit();
        let out = holdfast(&["init", "--repo", &repo.url()]);
        assert_ok(&out, "init");
        repo
    }

    pub fn uninit() -> Repo {
        Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_holdfast")
}

/// Runs holdfast with a clean environment for credentials.
pub fn holdfast(args: &[&str]) -> Output {
    holdfast_env(args, &[])
}

pub fn holdfast_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("MYSQL_PWD")
        .env_remove("HOLDFAST_PASSWORD")
        .env_remove("HOLDFAST_PASSPHRASE")
        .env_remove("HOLDFAST_NEW_PASSPHRASE")
        .env_remove("HOLDFAST_FROM_PASSPHRASE")
        .env_remove("HOLDFAST_TO_PASSPHRASE")
        .env("HOME", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run holdfast")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

pub fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: wrong exit code:\n{}",
        text(out)
    );
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(out)))
}

pub fn backup(repo: &Repo, server: &TestServer, extra: &[&str]) -> serde_json::Value {
    let source = server.url();
    let url = repo.url();
    let mut args = vec!["backup", "--repo", &url, "--source", &source, "--json"];
    args.extend_from_slice(extra);
    let out = holdfast(&args);
    assert_ok(&out, "backup");
    json(&out)
}

/// `holdfast restore latest` into `server`, its output unchecked (for tests of failures).
pub fn restore_latest(repo: &Repo, server: &TestServer) -> Output {
    holdfast(&[
        "restore",
        "--repo",
        &repo.url(),
        "--target",
        &server.url(),
        "latest",
    ])
}

pub fn restore(repo: &Repo, server: &TestServer, extra: &[&str]) -> serde_json::Value {
    let target = server.url();
    let url = repo.url();
    let mut args = vec!["restore", "--repo", &url, "--target", &target, "--json"];
    args.extend_from_slice(extra);
    let out = holdfast(&args);
    assert_ok(&out, "restore");
    json(&out)
}

impl Repo {
    /// `holdfast info <which> --json`: the manifest of a backup.
    pub fn manifest(&self, which: &str) -> serde_json::Value {
        let out = holdfast(&["info", "--repo", &self.url(), which, "--json"]);
        assert_ok(&out, "info");
        json(&out)
    }

    /// Every file under the repository, relative.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.path(), &self.path(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

/// `CHECKSUM TABLE` of every user table, as `db.table checksum` lines, sorted.
///
/// Tables with generated columns are checksummed through a plain temporary copy: MariaDB
/// 10.11's `CHECKSUM TABLE` of such a table depends on which table was opened before it. So are
/// tables with MySQL JSON columns, with the JSON as text: MySQL 5.7's `CHECKSUM TABLE` of a JSON
/// column differs between two runs over the same one-row table.
pub fn checksums(server: &TestServer) -> Vec<String> {
    let tables = server.sql(
        "SELECT CONCAT('`', REPLACE(TABLE_SCHEMA, '`', '``'), '`.`', REPLACE(TABLE_NAME, '`', '``'), '`') \
         FROM information_schema.TABLES WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
         AND TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys') \
         ORDER BY TABLE_SCHEMA, TABLE_NAME",
    );
    let mut out = Vec::new();
    let generated = server.sql(
        "SELECT DISTINCT CONCAT('`', REPLACE(TABLE_SCHEMA, '`', '``'), '`.`', REPLACE(TABLE_NAME, '`', '``'), '`') \
         FROM information_schema.COLUMNS WHERE EXTRA LIKE '%GENERATED%' \
         AND GENERATION_EXPRESSION NOT IN ('ROW START', 'ROW END')",
    );
    // MariaDB's JSON is LONGTEXT: DATA_TYPE 'json' is MySQL's binary JSON only.
    let json = server.sql(
        "SELECT DISTINCT CONCAT('`', REPLACE(TABLE_SCHEMA, '`', '``'), '`.`', REPLACE(TABLE_NAME, '`', '``'), '`') \
         FROM information_schema.COLUMNS WHERE DATA_TYPE = 'json'",
    );
    for t in tables.lines().filter(|l| !l.is_empty()) {
        let has_json = json.lines().any(|g| g == t);
        let row = if has_json || generated.lines().any(|g| g == t) {
            // A temporary table in the same database, invisible to everyone else.
            let (db, table) = t
                .trim_matches('`')
                .split_once("`.`")
                .expect("quoted db.table");
            let select = if has_json {
                server
                    .sql(&format!(
                        "SELECT GROUP_CONCAT(IF(DATA_TYPE = 'json', \
                         CONCAT('CAST(`', REPLACE(COLUMN_NAME, '`', '``'), '` AS CHAR) AS `', \
                         REPLACE(COLUMN_NAME, '`', '``'), '`'), \
                         CONCAT('`', REPLACE(COLUMN_NAME, '`', '``'), '`')) \
                         ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
                         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{}'",
                        db.replace("``", "`").replace('\'', "''"),
                        table.replace("``", "`").replace('\'', "''"),
                    ))
                    .trim()
                    .to_string()
            } else {
                "*".to_string()
            };
            server.sql(&format!(
                "CREATE TEMPORARY TABLE `{db}`.holdfast_plain_copy AS SELECT {select} FROM {t}; \
                 CHECKSUM TABLE `{db}`.holdfast_plain_copy EXTENDED"
            ))
        } else {
            server.sql(&format!("CHECKSUM TABLE {t} EXTENDED"))
        };
        let sum = row.split('\t').nth(1).unwrap_or("").trim().to_string();
        out.push(format!("{t} {sum}"));
    }
    out
}

/// `holdfast binlog stream --until-caught-up`: archives what the server has, then exits.
pub fn stream_until_caught_up(repo_url: &str, source_url: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "binlog",
        "stream",
        "--repo",
        repo_url,
        "--source",
        source_url,
        "--until-caught-up",
    ];
    args.extend_from_slice(extra);
    holdfast(&args)
}

/// The server's GTID state as holdfast writes it: MariaDB's `gtid_binlog_pos`, or MySQL's
/// `gtid_executed` with its sources sorted by uuid and without the newlines MySQL puts in.
pub fn gtid_state(server: &TestServer) -> String {
    match server.flavor() {
        Flavor::MariaDb => server.sql("SELECT @@gtid_binlog_pos").trim().to_string(),
        Flavor::MySql => normalize_gtid_set(&server.sql("SELECT @@global.gtid_executed")),
    }
}

/// A MySQL GTID set in holdfast's spelling (sources sorted, no whitespace).
pub fn normalize_gtid_set(text: &str) -> String {
    let mut parts: Vec<String> = text
        .replace("\\n", "")
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.join(",")
}

/// The number of a GTID of either flavor (`0-1-42` or `uuid:42`).
pub fn gtid_number(gtid: &str) -> u64 {
    gtid.rsplit(['-', ':']).next().unwrap().parse().unwrap()
}

/// True when `server` has a database called `name` (to show a refused command left the target
/// untouched).
pub fn has_database(server: &TestServer, name: &str) -> bool {
    let count = server.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
    ));
    count.trim() != "0"
}

/// The GTID state the archive ends at (its newest segment's), `None` while it is empty.
pub fn archived_state(repo: &Repo) -> Option<String> {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    json(&out)["segments"]
        .as_array()
        .and_then(|a| a.last())
        .map(|s| s["gtid_state"].as_str().unwrap_or("").to_string())
}

/// Waits (up to a minute) until the archive ends at `gtid_pos`.
pub fn wait_archived(repo: &Repo, gtid_pos: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while archived_state(repo).as_deref() != Some(gtid_pos) {
        assert!(
            std::time::Instant::now() < deadline,
            "the archive did not reach {gtid_pos} (it is at {:?})",
            archived_state(repo)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A `holdfast binlog stream` running in the background (stdout and stderr kept for the
/// failure message).
pub struct Streamer(pub std::process::Child);

impl Streamer {
    /// Starts streaming `server` into `repo` with `extra` flags (e.g. `--flush-interval 200ms`).
    pub fn start(repo: &Repo, server: &TestServer, extra: &[&str]) -> Streamer {
        let child = Command::new(bin())
            .args(["binlog", "stream", "--repo", &repo.url()])
            .args(["--source", &server.url()])
            .args(extra)
            .env("HOME", "/nonexistent")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start holdfast binlog stream");
        Streamer(child)
    }

    /// Waits until the archive ends at `gtid_pos`, then stops the stream with SIGTERM, which
    /// must end it cleanly.
    pub fn stop_when_archived(self, repo: &Repo, gtid_pos: &str) {
        wait_archived(repo, gtid_pos);
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let out = self.0.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the streamer did not stop cleanly: {}",
            text(&out)
        );
    }
}

/// The GTIDs in a binlog file, in order, as `mariadb-binlog` prints them.
pub fn gtids_in(file: &Path) -> Vec<String> {
    let tool = holdfast_testkit::find_binary("mariadb-binlog")
        .or_else(|| holdfast_testkit::find_binary("mysqlbinlog"))
        .expect("mariadb-binlog");
    let out = Command::new(tool).arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "mariadb-binlog {}: {}",
        file.display(),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `#231207  4:40:00 server id 1  end_log_pos 123 CRC32 0x…\tGTID 0-1-42 trans`
            if !l.starts_with('#') {
                return None;
            }
            let mut words = l.split_whitespace();
            words.find(|w| *w == "GTID")?;
            words.next().map(str::to_string)
        })
        .collect()
}

/// The archive holds every transaction `server` (MariaDB) wrote exactly once: the archived
/// bytes of each binlog file equal the server's file (the active file's "in use" flag aside),
/// and the GTIDs `mariadb-binlog` finds in them are the server's, in its order, none twice.
/// Returns the archived GTIDs.
pub fn assert_archive_holds_server_binlog(repo: &Repo, server: &TestServer) -> Vec<String> {
    let out = holdfast(&["binlog", "list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "binlog list");
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for s in json(&out)["segments"].as_array().unwrap() {
        let object = repo.path().join(s["object"].as_str().unwrap());
        let raw = zstd::decode_all(&std::fs::read(&object).unwrap()[..]).unwrap();
        files
            .entry(s["file"].as_str().unwrap().to_string())
            .or_default()
            .extend_from_slice(&raw);
    }
    assert!(!files.is_empty(), "nothing archived");
    // No file of the server's after the archive's first is missing from it.
    let first = files.keys().next().unwrap().clone();
    for line in server.sql("SHOW BINARY LOGS").lines() {
        let name = line.split('\t').next().unwrap_or("").to_string();
        if !name.is_empty() && name >= first {
            assert!(files.contains_key(&name), "{name} was never archived");
        }
    }
    let scratch = tempfile::tempdir().unwrap();
    let (mut archived, mut on_server) = (Vec::new(), Vec::new());
    for (file, bytes) in &files {
        let copy = scratch.path().join(file);
        std::fs::write(&copy, bytes).unwrap();
        archived.extend(gtids_in(&copy));
        on_server.extend(gtids_in(&server.datadir().join(file)));
        let mut original = std::fs::read(server.datadir().join(file)).unwrap();
        original[4 + 17] &= !1;
        assert!(
            bytes == &original,
            "{file}: the archived bytes differ from the server's ({} vs {} bytes)",
            bytes.len(),
            original.len()
        );
    }
    let mut seen = std::collections::HashSet::new();
    for g in &archived {
        assert!(seen.insert(g), "GTID {g} archived twice");
    }
    assert_eq!(
        archived, on_server,
        "the archive's GTIDs vs the server's binlog"
    );
    archived
}
