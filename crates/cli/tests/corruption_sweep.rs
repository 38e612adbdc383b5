//! Seeded corruption sweep: bits flipped in, truncation, deletion and swaps of every kind of
//! object a repository holds (manifests, summaries, data chunks and schema files, physical
//! streams and logs, binlog segments, binlog index entries). `verify --all --deep` must exit 20
//! naming the object for every injection, and a restore (the backup itself for backup objects, a
//! point-in-time recovery to the archive's end for archive objects) must never apply damaged
//! data silently: it stops with exit 20 naming the object and leaves nothing on the target, or
//! it succeeds with data equal to the source's.
//!
//! By default a quick seeded subset runs (30 injections, a restore for each of them up to one
//! per kind and damage); `HOLDFAST_LONG_TESTS=1` runs 240 (a restore for every fourth).
//! `HOLDFAST_TEST_SEED=N` replays a run; the seed and every injection are printed, and a table
//! "kind, injections, caught" goes to stdout (`--nocapture` shows it).

mod common;

use std::collections::BTreeMap;

use common::*;
use holdfast_testkit::{Corrupter, Damage, DamageKind, Injection, TestServer};

/// The kinds of objects, in the order of the table.
const KINDS: [&str; 6] = [
    "manifest", "summary", "chunk", "physical", "segment", "index",
];

fn kind_of(path: &str) -> Option<&'static str> {
    if path.starts_with("backups/") {
        if path.ends_with("/manifest") {
            Some("manifest")
        } else if path.ends_with("/summary") {
            Some("summary")
        } else if path.contains("/data/") || path.ends_with("schema.json.zst") {
            Some("chunk")
        } else if path.ends_with(".xbstream.zst") || path.ends_with(".log.zst") {
            Some("physical")
        } else {
            None
        }
    } else if path.starts_with("binlog/data/") {
        Some("segment")
    } else if path.starts_with("binlog/index/") {
        Some("index")
    } else {
        None
    }
}

struct Fixture {
    source: TestServer,
    repo: Repo,
    logical: String,
    /// CHECKSUM TABLE of the source at the logical backup and at the archive's end.
    at_backup: Vec<String>,
    at_end: Vec<String>,
}

fn fixture() -> Fixture {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO d.t SELECT seq, MD5(seq) FROM d.seq_1_to_6000; \
         CREATE TABLE d.u (id INT PRIMARY KEY, n INT) ; INSERT INTO d.u SELECT seq, seq * 3 FROM d.seq_1_to_2000;",
    );
    let repo = Repo::init();
    let logical = backup(&repo, &source, &["--chunk-size", "64k"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let at_backup = checksums(&source);
    backup(&repo, &source, &["--engine", "physical"]);
    for k in 1..=3 {
        source.sql(&format!(
            "INSERT INTO d.t SELECT seq + {k} * 10000, MD5(seq) FROM d.seq_1_to_400; \
             UPDATE d.u SET n = n + {k} WHERE id % 5 = {k}"
        ));
        let out = stream_until_caught_up(&repo.url(), &source.url(), &[]);
        assert_ok(&out, &format!("stream after batch {k}"));
    }
    let at_end = checksums(&source);
    let out = holdfast(&["verify", "--repo", &repo.url(), "--all", "--deep"]);
    assert_ok(&out, "verify --all --deep before any damage");
    Fixture {
        source,
        repo,
        logical,
        at_backup,
        at_end,
    }
}

/// Objects by kind.
fn objects(repo: &Repo) -> BTreeMap<&'static str, Vec<String>> {
    let mut by_kind: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for f in repo.files() {
        if let Some(k) = kind_of(&f) {
            by_kind.entry(k).or_default().push(f);
        }
    }
    for list in by_kind.values_mut() {
        list.sort();
    }
    assert_eq!(
        by_kind.len(),
        KINDS.len(),
        "every kind of object: {by_kind:?}"
    );
    by_kind
}

/// Damage that can be told from the work of holdfast itself: anything but deleting a manifest
/// (the backup then never committed, or was expired), a summary (a backup written before
/// summaries, or a crash right after its manifest: readers use the manifest), the newest index
/// entry (the segment never committed) or the oldest (an expire interrupted between index
/// entries and data objects); see docs/reliability.md.
const NOT_DELETE: [DamageKind; 3] = [DamageKind::Flip, DamageKind::Truncate, DamageKind::Swap];

fn damage_name(i: &Injection) -> &'static str {
    match i.damage {
        Damage::FlipBits { .. } => "flip",
        Damage::Truncate { .. } => "truncate",
        Damage::Delete => "delete",
        Damage::Swap { .. } => "swap",
    }
}

/// The paths an injection damaged (a swap damages both).
fn damaged(i: &Injection) -> Vec<String> {
    match &i.damage {
        Damage::Swap { with } => vec![i.path.clone(), with.clone()],
        _ => vec![i.path.clone()],
    }
}

fn names_any(out: &std::process::Output, paths: &[String]) -> bool {
    let all = text(out);
    paths.iter().any(|p| all.contains(p.as_str()))
}

#[test]
fn every_injection_is_caught_by_verify_and_never_restored_silently() {
    let long = std::env::var("HOLDFAST_LONG_TESTS").is_ok_and(|v| v == "1");
    let (count, restore_every) = if long { (240, 4) } else { (30, 1) };
    let seed = Corrupter::seed_from_env();
    println!(
        "corruption sweep: seed {seed} (HOLDFAST_TEST_SEED={seed} replays), {count} injections"
    );
    let fx = fixture();
    let target = TestServer::start();
    let url = fx.repo.url();
    let by_kind = objects(&fx.repo);
    let ends = [
        by_kind["index"].first().unwrap().clone(),
        by_kind["index"].last().unwrap().clone(),
    ];
    let mut corrupter = Corrupter::new(&fx.repo.path(), seed);

    // kind -> (injections, caught by verify, restores tried, restores safe)
    let mut table: BTreeMap<&str, [usize; 4]> = KINDS.iter().map(|k| (*k, [0; 4])).collect();
    let mut misses = Vec::new();
    let mut restored_kinds = std::collections::BTreeSet::new();
    for n in 0..count {
        let kind = KINDS[n % KINDS.len()];
        let candidates = &by_kind[kind];
        let allowed: &[DamageKind] = if kind == "manifest" || kind == "summary" {
            &NOT_DELETE
        } else {
            &DamageKind::ALL
        };
        let mut injection = corrupter.plan(candidates, allowed);
        while ends.contains(&injection.path) && injection.damage == Damage::Delete {
            injection = corrupter.plan(candidates, &NOT_DELETE);
        }
        let row = table.get_mut(kind).unwrap();
        row[0] += 1;
        let applied = corrupter.apply(&injection).unwrap();
        let paths = damaged(&injection);

        let out = holdfast(&["verify", "--repo", &url, "--all", "--deep"]);
        let caught = out.status.code() == Some(20) && names_any(&out, &paths);
        if caught {
            row[1] += 1;
        } else {
            misses.push(format!(
                "#{n} {kind}: {injection}: verify exited {:?}{}\n{}",
                out.status.code(),
                if out.status.code() == Some(20) {
                    " without naming it"
                } else {
                    ""
                },
                text(&out)
            ));
        }

        let first_of_its_sort = restored_kinds.insert((kind, damage_name(&injection)));
        // Every `restore_every`-th round of the kinds, so that each kind gets its share.
        if (n / KINDS.len()).is_multiple_of(restore_every) || first_of_its_sort {
            row[2] += 1;
            let (out, expected) = if kind == "segment" || kind == "index" {
                (
                    holdfast(&[
                        "restore",
                        "--repo",
                        &url,
                        "--target",
                        &target.url(),
                        "--latest",
                    ]),
                    &fx.at_end,
                )
            } else {
                (
                    holdfast(&[
                        "restore",
                        "--repo",
                        &url,
                        "--target",
                        &target.url(),
                        &fx.logical,
                    ]),
                    &fx.at_backup,
                )
            };
            let safe = match out.status.code() {
                Some(0) => {
                    let same = &checksums(&target) == expected;
                    if !same {
                        misses.push(format!(
                            "#{n} {kind}: {injection}: restore APPLIED DAMAGED DATA\n{}",
                            text(&out)
                        ));
                    }
                    same
                }
                Some(20) if names_any(&out, &paths) && !has_database(&target, "d") => true,
                code => {
                    misses.push(format!(
                        "#{n} {kind}: {injection}: restore exited {code:?} (database left: {})\n{}",
                        has_database(&target, "d"),
                        text(&out)
                    ));
                    false
                }
            };
            if safe {
                row[3] += 1;
            }
            target.sql("DROP DATABASE IF EXISTS d");
        }
        applied.undo().unwrap();
    }

    println!(
        "\n{:<10} {:>10} {:>7} {:>9} {:>6}",
        "kind", "injections", "caught", "restores", "safe"
    );
    for (kind, [n, caught, restores, safe]) in &table {
        println!("{kind:<10} {n:>10} {caught:>7} {restores:>9} {safe:>6}");
    }
    let total: usize = table.values().map(|r| r[0]).sum();
    let caught: usize = table.values().map(|r| r[1]).sum();
    println!("{:<10} {total:>10} {caught:>7}", "total");
    let _ = &fx.source;
    assert!(
        misses.is_empty(),
        "seed {seed}: {} injection(s) not handled:\n{}",
        misses.len(),
        misses.join("\n")
    );
    let out = holdfast(&["verify", "--repo", &url, "--all", "--deep"]);
    assert_ok(&out, "verify after every injection was undone");
}
