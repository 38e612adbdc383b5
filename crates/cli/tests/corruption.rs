//! A flipped byte or a deleted file is caught by `verify` and by `restore`, naming the file.

mod common;

use common::*;
use holdfast_testkit::TestServer;

fn setup() -> (TestServer, Repo, String) {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100)); \
         USE d; INSERT INTO d.t SELECT seq, MD5(seq) FROM seq_1_to_20000;",
    );
    let repo = Repo::init();
    let summary = backup(&repo, &source, &["--chunk-size", "64k"]);
    (source, repo, summary["id"].as_str().unwrap().to_string())
}

fn a_chunk(repo: &Repo) -> String {
    repo.files()
        .into_iter()
        .find(|f| f.ends_with(".tsv.zst"))
        .expect("a chunk")
}

#[test]
fn flipped_byte_is_caught_by_verify_and_restore() {
    let (_source, repo, _id) = setup();
    let target = TestServer::start();
    let chunk = a_chunk(&repo);
    let path = repo.path().join(&chunk);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let out = holdfast(&["verify", "--repo", &repo.url(), "latest"]);
    assert_code(&out, 20, "verify of a corrupt chunk");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&chunk),
        "verify must name {chunk}:\n{}",
        text(&out)
    );

    restore_fails_naming(&repo, &target, &chunk);
}

#[test]
fn deleted_file_is_caught_by_verify_and_restore() {
    let (_source, repo, _id) = setup();
    let target = TestServer::start();
    let chunk = a_chunk(&repo);
    std::fs::remove_file(repo.path().join(&chunk)).unwrap();

    let out = holdfast(&["verify", "--repo", &repo.url(), "latest", "--json"]);
    assert_code(&out, 20, "verify with a missing chunk");
    let report = json(&out);
    let problems = report["backups"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], "missing");
    assert!(problems[0]["path"].as_str().unwrap().ends_with(&chunk));

    restore_fails_naming(&repo, &target, &chunk);
}

/// A restore of the damaged backup exits with the integrity code, names the file, and leaves
/// nothing behind on the target.
fn restore_fails_naming(repo: &Repo, target: &TestServer, chunk: &str) {
    let out = restore_latest(repo, target);
    assert_code(&out, 20, "restore of a damaged backup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(chunk),
        "restore must name {chunk}:\n{}",
        text(&out)
    );
    assert!(
        !has_database(target, "d"),
        "the failed restore must remove what it created"
    );
}

#[test]
fn truncated_manifest_is_an_integrity_error() {
    let (_source, repo, id) = setup();
    let manifest = repo.path().join(format!("backups/{id}/manifest"));
    let body = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &body[..body.len() / 2]).unwrap();
    let out = holdfast(&["verify", "--repo", &repo.url(), &id]);
    assert_code(&out, 20, "verify with a truncated manifest");
}
