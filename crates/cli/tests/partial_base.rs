//! Point-in-time recovery never builds on a partial backup (issue 14, item 1), on real servers:
//! a full backup, writes, a `--databases app` backup, more writes, all archived; a recovery to the
//! end of the archive must equal the source (through the full backup) or be refused before the
//! target changes. Also: `--base`, `--engine`, a filter that matches nothing, and `list`/`info`
//! marking partial backups.

mod common;

use common::*;
use holdfast_testkit::TestServer;

/// Two databases, both written to between the backups.
fn write(source: &TestServer, round: u32) {
    source.sql(&format!(
        "INSERT INTO app.t (v) VALUES ('app {round}'), ('app {round}b'); \
         UPDATE other.t SET v = CONCAT(v, '+{round}') WHERE id % 2 = {m}; \
         INSERT INTO other.t (v) VALUES ('other {round}');",
        m = round % 2
    ));
}

fn setup(source: &TestServer) {
    source.sql(
        "CREATE DATABASE app; CREATE DATABASE other; \
         CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100)); \
         CREATE TABLE other.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO app.t (v) VALUES ('a1'), ('a2'); \
         INSERT INTO other.t (v) VALUES ('o1'), ('o2'), ('o3');",
    );
}

fn stream(repo: &Repo, source: &TestServer) {
    assert_ok(
        &stream_until_caught_up(&repo.url(), &source.url(), &[]),
        "binlog stream",
    );
}

fn pitr(repo: &Repo, target: &TestServer, extra: &[&str]) -> std::process::Output {
    let url = repo.url();
    let t = target.url();
    let mut args = vec!["restore", "--repo", &url, "--target", &t];
    args.extend_from_slice(extra);
    holdfast(&args)
}

/// The scenario: full backup, stream, writes, `--databases app` backup, writes.
/// Returns the repository and the ids of the full and the partial backup.
fn scenario(source: &TestServer) -> (Repo, String, String) {
    let repo = Repo::init();
    setup(source);
    let full = backup(&repo, source, &[]);
    stream(&repo, source);
    write(source, 1);
    let partial = backup(&repo, source, &["--databases", "app"]);
    write(source, 2);
    stream(&repo, source);
    (
        repo,
        full["id"].as_str().unwrap().to_string(),
        partial["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn pitr_starts_from_the_newest_complete_backup_not_a_newer_partial_one() {
    let source = TestServer::start();
    let (repo, full, partial) = scenario(&source);
    let want = checksums(&source);

    // A target holding an old copy of the other database: it used to stay as it was, under a
    // report of success.
    let stale = TestServer::start();
    stale.sql(
        "CREATE DATABASE other; CREATE TABLE other.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO other.t (v) VALUES ('stale');",
    );
    let out = pitr(&repo, &stale, &["--latest", "--drop-existing", "--json"]);
    assert_ok(&out, "restore --latest --drop-existing over a stale copy");
    let report = json(&out);
    assert_eq!(report["base_backup"], full.as_str(), "{report}");
    let passed = report["bases_passed_over"].to_string();
    assert!(
        passed.contains(&partial) && passed.contains("partial: databases app"),
        "the partial backup must be reported as passed over: {report}"
    );
    assert_eq!(checksums(&stale), want, "recovered over a stale copy");

    // A target without the other database: it used to fail (exit 12) after `app` was replaced.
    let fresh = TestServer::start();
    let out = pitr(&repo, &fresh, &["--latest"]);
    assert_ok(&out, "restore --latest into a fresh server");
    assert!(
        text(&out).contains("not used as the base") && text(&out).contains(&partial),
        "{}",
        text(&out)
    );
    assert_eq!(checksums(&fresh), want, "recovered into a fresh server");

    // Naming the partial backup as the base is refused before anything changes.
    let untouched = TestServer::start();
    let out = pitr(&repo, &untouched, &["--latest", "--base", &partial]);
    assert_code(&out, 15, "--base <partial backup>");
    assert!(
        text(&out).contains("partial: databases app") && text(&out).contains("complete backup"),
        "{}",
        text(&out)
    );
    assert!(!has_database(&untouched, "app"));
    // The full one may be named; and a positional id points at --base.
    let out = pitr(&repo, &untouched, &["--latest", "--base", &full]);
    assert_ok(&out, "--base <full backup>");
    assert_eq!(checksums(&untouched), want);
    let out = pitr(&repo, &untouched, &[&full, "--latest"]);
    assert_code(&out, 2, "a positional id with --latest");
    assert!(text(&out).contains("--base"), "{}", text(&out));

    // `list` and `info` mark the partial backup, in text and JSON.
    let list = holdfast(&["list", "--repo", &repo.url()]);
    assert_ok(&list, "list");
    let table = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(table.lines().next().unwrap().contains("SCOPE"), "{table}");
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(row(&partial).contains("partial: databases app"), "{table}");
    assert!(row(&full).contains(" full "), "{table}");
    let rows = json(&holdfast(&["list", "--repo", &repo.url(), "--json"]));
    let by_id = |id: &str| {
        rows["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(&partial)["partial"], true);
    assert_eq!(by_id(&partial)["scope"]["databases"][0], "app");
    assert_eq!(by_id(&full)["partial"], false);
    assert_eq!(by_id(&full)["scope_description"], "full");
    let info = repo.manifest(&partial);
    assert_eq!(info["partial"], true, "{info}");
    assert_eq!(info["scope"]["complete"], false, "{info}");
    assert_eq!(info["scope_description"], "partial: databases app");
    let out = holdfast(&["info", "--repo", &repo.url(), &partial]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("scope             partial: databases app"),
        "{}",
        text(&out)
    );
    // The recoverable window starts at the full backup.
    let info = json(&holdfast(&["info", "--repo", &repo.url(), "--json"]));
    assert_eq!(info["recoverable_window"]["from_backup"], full.as_str());
}

#[test]
fn with_only_a_partial_backup_before_the_target_pitr_is_refused_before_any_change() {
    let source = TestServer::start();
    let repo = Repo::init();
    setup(&source);
    let partial = backup(&repo, &source, &["--databases", "app"]);
    let partial = partial["id"].as_str().unwrap().to_string();
    stream(&repo, &source);
    write(&source, 1);
    stream(&repo, &source);

    for target in [TestServer::start(), {
        let t = TestServer::start();
        t.sql("CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY)");
        t
    }] {
        let before = checksums(&target);
        let out = pitr(&repo, &target, &["--latest", "--drop-existing"]);
        assert_code(&out, 15, "PITR with only a partial base");
        let message = text(&out);
        assert!(
            message.contains(&partial)
                && message.contains("partial: databases app")
                && message.contains(&format!("holdfast restore {partial}")),
            "the refusal must name the partial backup and the way out: {message}"
        );
        assert!(!has_database(&target, "app"), "the target was changed");
        assert_eq!(checksums(&target), before, "the target was changed");
    }
    // The backup itself still restores what it holds.
    let target = TestServer::start();
    restore(&repo, &target, &[&partial]);
    assert!(has_database(&target, "app") && !has_database(&target, "other"));
}

#[test]
fn the_engine_of_the_base_follows_target_or_datadir_or_engine() {
    let source = TestServer::start();
    let repo = Repo::init();
    setup(&source);
    let logical = backup(&repo, &source, &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    stream(&repo, &source);
    write(&source, 1);
    let physical = backup(&repo, &source, &["--engine", "physical"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    write(&source, 2);
    stream(&repo, &source);
    let want = checksums(&source);

    // A newer physical backup no longer forces --datadir: --target starts from the logical one.
    let target = TestServer::start();
    let out = pitr(&repo, &target, &["--latest", "--json"]);
    assert_ok(&out, "--target --latest with a newer physical backup");
    let report = json(&out);
    assert_eq!(report["base_backup"], logical.as_str(), "{report}");
    assert!(
        report["bases_passed_over"].to_string().contains(&physical),
        "{report}"
    );
    assert_eq!(checksums(&target), want);

    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("d").display().to_string();
    let untouched = TestServer::start();
    let cases: &[(&[&str], i32, &[&str])] = &[
        // --engine physical needs a datadir.
        (&["--latest", "--engine", "physical"], 2, &["--datadir"]),
        (
            &["--latest", "--engine", "logical", "--datadir", &dir],
            2,
            &["--engine logical", "--datadir"],
        ),
        // A named physical base into --target: a usage error that says how to restore it.
        (
            &["--latest", "--base", &physical],
            2,
            &["physical backup", "--datadir DIR"],
        ),
        (
            &["--latest", "--base", "20200101T000000Z-0000"],
            7,
            &["--base", "holdfast list"],
        ),
        // --engine/--base belong to a point-in-time recovery.
        (&["--engine", "logical"], 2, &["--to-time"]),
    ];
    for (args, code, words) in cases {
        let out = pitr(&repo, &untouched, args);
        assert_code(&out, *code, &format!("{args:?}"));
        for w in *words {
            assert!(
                text(&out).contains(w),
                "{args:?}: `{w}` missing: {}",
                text(&out)
            );
        }
    }
    assert!(
        !has_database(&untouched, "app"),
        "a refused recovery changed the target"
    );
    // A named base before a GTID target.
    let when = json(&holdfast(&[
        "info",
        "--repo",
        &repo.url(),
        &physical,
        "--json",
    ]))["consistent_point"]["gtid_set"]
        .as_str()
        .unwrap()
        .to_string();
    let out = pitr(
        &repo,
        &untouched,
        &["--to-gtid", &when, "--base", &logical, "--json"],
    );
    assert_ok(&out, "--base logical --to-gtid");
    assert_eq!(json(&out)["base_backup"], logical.as_str());
}

#[test]
fn a_backup_filter_that_matches_nothing_is_an_error_and_commits_nothing() {
    let source = TestServer::start();
    let repo = Repo::init();
    setup(&source);
    let url = repo.url();
    let src = source.url();
    for (filter, value, words) in [
        ("--databases", "nosuchdb", &["`nosuchdb`", "app, other"][..]),
        ("--databases", "app,typo", &["`typo`"][..]),
        ("--tables", "app.nosuch*", &["`app.nosuch*`", "app.t"][..]),
        ("--exclude-databases", "*", &["select no database"][..]),
    ] {
        let out = holdfast(&["backup", "--repo", &url, "--source", &src, filter, value]);
        assert_code(&out, 2, &format!("backup {filter} {value}"));
        for w in words {
            assert!(
                text(&out).contains(w),
                "{filter} {value}: `{w}` missing: {}",
                text(&out)
            );
        }
    }
    let list = json(&holdfast(&["list", "--repo", &url, "--json"]));
    assert_eq!(list["backups"].as_array().unwrap().len(), 0, "{list}");
    assert!(
        !repo.files().iter().any(|f| f.starts_with("backups/")),
        "{:?}",
        repo.files()
    );
}
