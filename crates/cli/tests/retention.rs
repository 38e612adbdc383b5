//! Retention end to end on a real MariaDB: logical backups, a physical full and two
//! incrementals (mariabackup) and a binlog archive taken while writes go on. `expire
//! --keep-last 1` keeps the newest incremental's whole chain and a pinned backup, and a dry run
//! changes nothing; after `expire --recovery-window`, a recovery to a random second inside the
//! window equals the source as it was then (CHECKSUM TABLE), and one before it is refused
//! (exit 15) naming the window.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use holdfast_testkit::TestServer;
use rand::Rng;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The source at the end of one second: its checksums, and the second (every transaction up to
/// here committed at or before it, every later one after it).
struct Mark {
    time: i64,
    gtid: String,
    checksums: Vec<String>,
}

fn mark(server: &TestServer) -> Mark {
    let gtid = gtid_state(server);
    let checksums = checksums(server);
    let time = now_secs();
    while now_secs() <= time {
        std::thread::sleep(Duration::from_millis(20));
    }
    Mark {
        time,
        gtid,
        checksums,
    }
}

/// A few transactions, then a mark.
fn work(server: &TestServer, k: usize) -> Mark {
    server.sql(&format!(
        "INSERT INTO app.orders (amount, note) VALUES ({k}, 'order {k}'), ({k} * 2, 'twice {k}'); \
         UPDATE app.orders SET amount = amount + 1 WHERE id % 3 = {}; \
         DELETE FROM app.orders WHERE id % 17 = {} LIMIT 1;",
        k % 3,
        k % 17
    ));
    mark(server)
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = holdfast(args);
    assert_ok(&out, &args.join(" "));
    json(&out)
}

fn backup_json(repo: &Repo, server: &TestServer, extra: &[&str]) -> serde_json::Value {
    let source = server.url();
    let url = repo.url();
    let mut args = vec!["backup", "--repo", &url, "--source", &source, "--json"];
    args.extend_from_slice(extra);
    run(&args)
}

fn ids(repo: &Repo) -> Vec<String> {
    run(&["list", "--repo", &repo.url(), "--json"])["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

fn segment_seqs(repo: &Repo) -> Vec<u64> {
    run(&["binlog", "list", "--repo", &repo.url(), "--json"])["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seq"].as_u64().unwrap())
        .collect()
}

fn point_time(backup: &serde_json::Value) -> i64 {
    OffsetDateTime::parse(
        backup["consistent_point"]["time"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
}

#[test]
fn expire_keeps_chains_pins_and_the_recovery_window() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE app; CREATE TABLE app.orders (id INT AUTO_INCREMENT PRIMARY KEY, \
         amount INT, note VARCHAR(40))",
    );
    let repo = Repo::init();
    let url = repo.url();
    let streamer = Streamer::start(&repo, &source, &["--flush-interval", "200ms"]);
    let mut k = 0;
    let mut step = |n: usize| -> Vec<Mark> {
        (0..n)
            .map(|_| {
                k += 1;
                work(&source, k)
            })
            .collect()
    };

    // Phase A: two logical backups, then a physical full and two incrementals.
    step(1);
    let l1 = backup_json(&repo, &source, &[]);
    step(1);
    let l2 = backup_json(&repo, &source, &[]);
    step(1);
    let p = backup_json(&repo, &source, &["--engine", "physical"]);
    step(1);
    let i1 = backup_json(&repo, &source, &["--engine", "physical", "--incremental"]);
    step(1);
    let i2 = backup_json(&repo, &source, &["--engine", "physical", "--incremental"]);
    let id = |b: &serde_json::Value| b["id"].as_str().unwrap().to_string();
    assert_eq!(i2["physical"]["parent"], id(&i1));
    assert_eq!(i1["physical"]["parent"], id(&p));

    // A dry run reports the plan and changes nothing.
    let before = repo.files();
    let plan = run(&[
        "expire",
        "--repo",
        &url,
        "--keep-last",
        "1",
        "--timezone",
        "UTC",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["timezone"], "UTC");
    let decision = |plan: &serde_json::Value, b: &serde_json::Value| {
        plan["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == b["id"])
            .cloned()
            .unwrap_or_else(|| panic!("{} not in the plan: {plan}", b["id"]))
    };
    for (b, keep) in [
        (&l1, false),
        (&l2, false),
        (&p, true),
        (&i1, true),
        (&i2, true),
    ] {
        assert_eq!(decision(&plan, b)["keep"], keep, "{}", decision(&plan, b));
    }
    let reasons = decision(&plan, &p)["reasons"].to_string();
    assert!(
        reasons.contains(&format!("parent of {}", id(&i1))),
        "{reasons}"
    );
    assert_eq!(repo.files(), before, "a dry run changed the repository");
    let text_plan = holdfast(&["expire", "--repo", &url, "--keep-last", "1", "--dry-run"]);
    assert_ok(&text_plan, "expire --dry-run");
    assert!(String::from_utf8_lossy(&text_plan.stdout).contains("would remove 2 backup(s)"));

    // An empty policy is a usage error.
    let out = holdfast(&["expire", "--repo", &url, "--min-keep", "2"]);
    assert_code(&out, 2, "expire without a rule");
    assert!(text(&out).contains("no retention rule"), "{}", text(&out));

    // A pinned backup survives; keep-last 1 keeps the newest incremental's whole chain.
    run(&[
        "pin",
        "--repo",
        &url,
        &id(&l1),
        "--reason",
        "before schema migration",
        "--json",
    ]);
    let listed = run(&["list", "--repo", &url, "--json"]);
    assert_eq!(
        listed["backups"][0]["pin"]["reason"], "before schema migration",
        "{listed}"
    );
    let done = run(&["expire", "--repo", &url, "--keep-last", "1", "--json"]);
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["backups_removed"], 1, "{done}");
    assert!(decision(&done, &l1)["reasons"]
        .to_string()
        .contains("pinned: before schema migration"));
    assert_eq!(ids(&repo), vec![id(&l1), id(&p), id(&i1), id(&i2)]);
    assert!(
        !repo.files().iter().any(|f| f.contains(&id(&l2))),
        "files of the expired backup remain"
    );
    // The stored policy: `backup --expire` applies it.
    run(&[
        "policy",
        "set",
        "--repo",
        &url,
        "--keep-last",
        "2",
        "--timezone",
        "UTC",
        "--json",
    ]);
    let shown = run(&["policy", "show", "--repo", &url, "--json"]);
    assert_eq!(shown["policy"]["keep_last"], 2, "{shown}");
    run(&["unpin", "--repo", &url, &id(&l1), "--json"]);

    // Phase B: logical backups a few seconds apart under writes; the recovery window will
    // start between l3 and l4. The server moves to a new binlog file first: segments go a
    // whole piece of a file at a time (a replay reads a file's format description from its
    // first segment).
    source.sql("FLUSH BINARY LOGS");
    step(1);
    let l3 = backup_json(&repo, &source, &[]);
    let mut marks = step(5);
    let segments_before = segment_seqs(&repo);
    let l4 = backup_json(&repo, &source, &["--expire"]);
    // The stored keep-last 2 ran after it: l3 and l4 are left.
    assert_eq!(l4["expire"]["backups_removed"], 4, "{}", l4["expire"]);
    assert_eq!(ids(&repo), vec![id(&l3), id(&l4)]);
    marks.extend(step(3));
    let end = marks.last().unwrap().gtid.clone();
    streamer.stop_when_archived(&repo, &end);

    // The window starts halfway between l3's and l4's consistent points.
    let start = (point_time(&l3) + point_time(&l4)) / 2;
    assert!(point_time(&l4) - point_time(&l3) >= 4, "backups too close");
    let window = format!("{}s", now_secs() - start);
    let done = run(&[
        "expire",
        "--repo",
        &url,
        "--recovery-window",
        &window,
        "--timezone",
        "UTC",
        "--json",
    ]);
    assert!(decision(&done, &l3)["reasons"]
        .to_string()
        .contains("recovery window"));
    assert_eq!(ids(&repo), vec![id(&l3), id(&l4)]);
    let segments_after = segment_seqs(&repo);
    assert!(
        segments_after[0] > segments_before[0],
        "segments before l3's point were not removed: {segments_before:?} -> {segments_after:?}"
    );
    assert!(
        !repo
            .files()
            .iter()
            .any(|f| f.ends_with(&format!(".{:08}.zst", segments_before[0]))),
        "the data object of an expired segment remains"
    );

    // A random second inside the window restores equal to the source at that second.
    let inside: Vec<&Mark> = marks.iter().filter(|m| m.time >= start).collect();
    let m = inside[rand::thread_rng().gen_range(0..inside.len())];
    let target = TestServer::start();
    let when = OffsetDateTime::from_unix_timestamp(m.time)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let report = run(&[
        "restore",
        "--repo",
        &url,
        "--target",
        &target.url(),
        "--to-time",
        &when,
        "--json",
    ]);
    assert_eq!(checksums(&target), m.checksums, "restore --to-time {when}");
    assert_eq!(
        report["gtid_position"], m.gtid,
        "GTID position after --to-time {when}"
    );

    // A second before l3 (the window's base) is refused, naming the window.
    let before_window = OffsetDateTime::from_unix_timestamp(point_time(&l3) - 2)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let fresh = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &url,
        "--target",
        &fresh.url(),
        "--to-time",
        &before_window,
    ]);
    assert_code(&out, 15, "restore before the window");
    assert!(
        text(&out).contains("the recoverable window is"),
        "{}",
        text(&out)
    );
    assert!(
        !has_database(&fresh, "app"),
        "a refused restore changed the target"
    );

    // `info` shows the stored policy.
    let info = run(&["info", "--repo", &url, "--json"]);
    assert_eq!(info["retention_policy"]["keep_last"], 2, "{info}");
}
