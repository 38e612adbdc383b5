//! Backup summaries (`backups/<id>/summary`) with real servers: `list` and `info` read them (a
//! backup whose manifest no longer reads still lists, and a summary's values are what `list`
//! shows); a backup without one is listed, restored and verified as before and `cleanup` writes
//! it; `verify` names a tampered one; a tampered summary of the newest base does not change what
//! a point-in-time recovery restores; `expire` removes summaries (planning from the manifests)
//! and `copy` writes them at the destination.

mod common;

use std::path::PathBuf;

use common::*;
use holdfast_testkit::TestServer;
use serde_json::Value;

fn shop(server: &TestServer) {
    server.sql(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40)); \
         INSERT INTO shop.items SELECT seq, MD5(seq) FROM shop.seq_1_to_500; \
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item INT, qty INT); \
         INSERT INTO shop.orders SELECT seq, seq % 500 + 1, seq % 7 FROM shop.seq_1_to_2000; \
         CREATE TABLE shop.notes (t TEXT)",
    );
}

fn summary_path(repo: &Repo, id: &str) -> PathBuf {
    repo.path().join(format!("backups/{id}/summary"))
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Edits a summary and drops its own checksum (as a document written before checksums, which
/// is read as such): only a comparison with the manifest tells.
fn tamper(repo: &Repo, id: &str, edit: impl FnOnce(&mut Value)) {
    let path = summary_path(repo, id);
    let mut summary = read_json(&path);
    edit(&mut summary);
    summary.as_object_mut().unwrap().remove("self_sha256");
    std::fs::write(&path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
}

fn list(repo: &Repo) -> Vec<Value> {
    let out = holdfast(&["list", "--repo", &repo.url(), "--json"]);
    assert_ok(&out, "list");
    json(&out)["backups"].as_array().unwrap().clone()
}

/// `restore --latest` from `repo_url` into a new server starts at backup `base` and ends equal
/// to `source`.
fn recovers_to_the_end_from(repo_url: &str, source: &TestServer, base: &str) {
    let target = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        repo_url,
        "--target",
        &target.url(),
        "--latest",
        "--json",
    ]);
    assert_ok(&out, "restore --latest");
    assert_eq!(json(&out)["base_backup"], base, "{}", text(&out));
    assert_eq!(checksums(&target), checksums(source));
}

/// Takes a backup of `source` and returns its id.
fn backup_id(repo: &Repo, source: &TestServer) -> String {
    backup(repo, source, &[])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn verify(repo: &Repo, id: &str) -> std::process::Output {
    holdfast(&["verify", "--repo", &repo.url(), id, "--json"])
}

#[test]
fn list_info_verify_restore_expire_and_copy_with_and_without_summaries() {
    let source = TestServer::start();
    shop(&source);
    let repo = Repo::init();
    let url = repo.url();
    let a = backup_id(&repo, &source);
    let at_a = checksums(&source);
    source.sql("INSERT INTO shop.notes VALUES ('after a')");
    let b = backup_id(&repo, &source);

    // Every committed backup has its summary, matching its manifest.
    for id in [&a, &b] {
        let s = read_json(&summary_path(&repo, id));
        assert_eq!(s["id"], id.as_str());
        assert_eq!(s["table_count"], 3, "{s:#}");
        assert_eq!(s["rows"], if *id == a { 2500 } else { 2501 }, "{s:#}");
        assert!(
            s.get("tables").is_none() && s.get("files").is_none(),
            "{s:#}"
        );
        let out = verify(&repo, id);
        assert_ok(&out, "verify");
        assert_eq!(json(&out)["backups"][0]["summary"]["state"], "matches");
    }
    // Ids sort in the order the backups were taken, within one second too (what `latest`
    // goes by; the random suffixes alone ordered two backups of one second either way).
    assert!(a < b, "{a} {b}");
    let out = holdfast(&["info", "--repo", &url, "latest", "--json"]);
    assert_eq!(json(&out)["id"], b.as_str());
    let listed = list(&repo);
    assert_eq!(listed.len(), 2);
    // By id: two backups in the same second list in the order of their random suffixes.
    let listed_b = listed.iter().find(|l| l["id"] == b.as_str()).unwrap();
    assert_eq!(listed_b["tables"], 3);
    assert_eq!(listed_b["rows"], 2501);
    // No binlog is archived: the window is one backup's point, said as such (it used to read
    // "from <its second rounded up> to <that second rounded down>", an end before the start).
    let out = holdfast(&["info", "--repo", &url]);
    assert_ok(&out, "info (text)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("recoverable only at backup") && !shown.contains("recoverable from"),
        "{shown}"
    );

    // `list` and `info` read no manifest: with b's manifest unreadable they still answer from
    // its summary, while what needs the manifest (info b, verify b) says it is damaged.
    let manifest_b = repo.path().join(format!("backups/{b}/manifest"));
    let genuine = std::fs::read(&manifest_b).unwrap();
    std::fs::write(&manifest_b, b"{ not a manifest").unwrap();
    assert_eq!(list(&repo), listed);
    let out = holdfast(&["info", "--repo", &url, "--json"]);
    assert_ok(&out, "info with a damaged manifest");
    assert_eq!(json(&out)["backups"], 2);
    assert_eq!(json(&out)["newest"], b.as_str());
    let out = holdfast(&["list", "--repo", &url]);
    assert_ok(&out, "list (text)");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&b),
        "{}",
        text(&out)
    );
    assert_code(
        &holdfast(&["info", "--repo", &url, &b]),
        20,
        "info of the damaged backup",
    );
    assert_code(&verify(&repo, &b), 20, "verify of the damaged backup");
    std::fs::write(&manifest_b, &genuine).unwrap();

    // What list shows of a backup is its summary's.
    tamper(&repo, &b, |s| s["rows"] = 7.into());
    assert_eq!(list(&repo)[1]["rows"], 7);
    // verify names the summary and the field.
    let out = verify(&repo, &b);
    assert_code(&out, 20, "verify of a tampered summary");
    let report = json(&out);
    let problems = report["backups"][0]["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["kind"] == "summary"
            && p["path"] == format!("backups/{b}/summary")
            && p["detail"].as_str().unwrap().contains("rows")),
        "{report:#}"
    );
    assert_eq!(
        report["backups"][0]["summary"],
        serde_json::json!({"state": "differs", "fields": ["rows"]})
    );
    let out = holdfast(&["verify", "--repo", &url, &b]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("backups/{b}/summary")),
        "{}",
        text(&out)
    );

    // A backup without a summary (an older repository, a crash right after the manifest) is
    // listed, verified and restored as before.
    std::fs::remove_file(summary_path(&repo, &a)).unwrap();
    let now = list(&repo);
    assert_eq!(now[0], listed[0], "summarised from its manifest");
    let out = verify(&repo, &a);
    assert_ok(&out, "verify without a summary");
    assert_eq!(json(&out)["backups"][0]["summary"]["state"], "missing");
    let target = TestServer::start();
    let out = holdfast(&["restore", "--repo", &url, "--target", &target.url(), &a]);
    assert_ok(&out, "restore without a summary");
    assert_eq!(checksums(&target), at_a);
    // cleanup writes it (and leaves the readable, if wrong, one of b to verify).
    let out = holdfast(&["cleanup", "--repo", &url, "--json"]);
    assert_ok(&out, "cleanup");
    assert_eq!(json(&out)["summaries_written"], serde_json::json!([a]));
    assert_eq!(
        json(&verify(&repo, &a))["backups"][0]["summary"]["state"],
        "matches"
    );

    // copy writes summaries made from the manifests at the destination (b's is right there).
    let other = Repo::init();
    let out = holdfast(&[
        "copy",
        "--from",
        &url,
        "--to",
        &other.url(),
        "--all",
        "--json",
    ]);
    assert_ok(&out, "copy --all");
    for id in [&a, &b] {
        assert!(summary_path(&other, id).exists(), "{id}");
        let out = verify(&other, id);
        assert_ok(&out, "verify the copy");
        assert_eq!(json(&out)["backups"][0]["summary"]["state"], "matches");
    }
    assert_eq!(list(&other)[1]["rows"], 2501);

    // expire plans from the manifests and says which summary differed; the removed backup's
    // directory goes, summary included.
    let out = holdfast(&["expire", "--repo", &url, "--keep-last", "1", "--json"]);
    assert_ok(&out, "expire");
    let report = json(&out);
    assert_eq!(report["backups_removed"], 1, "{report:#}");
    assert_eq!(report["summary_mismatches"][0]["backup"], b.as_str());
    assert!(!repo.path().join(format!("backups/{a}")).exists());
    assert!(summary_path(&repo, &b).exists());
    let out = holdfast(&["expire", "--repo", &url, "--keep-last", "1"]);
    assert_ok(&out, "expire (text)");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("the summary of backup {b}")),
        "{}",
        text(&out)
    );
}

/// The newest base's summary claims a consistent point at the archive's end: restoring that
/// base and replaying from the claimed point would leave out every transaction after it. The
/// recovery checks the chosen base's manifest, plans again from it, and recovers exactly.
#[test]
fn a_tampered_summary_does_not_change_what_a_recovery_restores() {
    let source = TestServer::start();
    shop(&source);
    let repo = Repo::init();
    let url = repo.url();
    backup(&repo, &source, &[]);
    source.sql("INSERT INTO shop.notes VALUES ('between'); UPDATE shop.orders SET qty = qty + 1");
    let b = backup_id(&repo, &source);
    source.sql("INSERT INTO shop.notes VALUES ('after'); DELETE FROM shop.items WHERE id < 50");
    let out = stream_until_caught_up(&url, &source.url(), &[]);
    assert_ok(&out, "stream");

    let end = gtid_state(&source);
    tamper(&repo, &b, |s| {
        s["consistent_point"]["gtid_set"] = end.into()
    });
    recovers_to_the_end_from(&url, &source, &b);
    assert_code(&verify(&repo, &b), 20, "verify names the tampered summary");
}

/// The binlog stream starts an empty archive at the newest complete backup's point. A summary
/// claiming a later point would make it start there, and the transactions between the real
/// point and the claimed one would never be archived: a recovery from that backup would fail
/// for good once the server purges them. The stream takes the point from the manifest.
#[test]
fn a_tampered_summary_does_not_move_the_binlog_streams_start() {
    let source = TestServer::start();
    shop(&source);
    let repo = Repo::init();
    let url = repo.url();
    let b = backup_id(&repo, &source);
    source.sql("INSERT INTO shop.notes VALUES ('after b'); UPDATE shop.orders SET qty = qty + 1");
    let end = gtid_state(&source);
    tamper(&repo, &b, |s| {
        s["consistent_point"]["gtid_set"] = end.into()
    });
    source.sql("INSERT INTO shop.notes VALUES ('later')");
    let out = stream_until_caught_up(&url, &source.url(), &[]);
    assert_ok(&out, "stream with a tampered summary");

    recovers_to_the_end_from(&url, &source, &b);
}
