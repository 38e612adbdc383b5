//! `holdfast copy` between real repositories: plain to encrypted and back, restored equal to
//! the source; a second copy copies nothing; the binlog archive follows, data before index.

mod common;

use common::*;
use holdfast_testkit::TestServer;

fn pass_file(repo: &Repo, pass: &str) -> String {
    let p = repo.dir.path().join("pass.txt");
    std::fs::write(&p, format!("{pass}\n")).unwrap();
    p.display().to_string()
}

fn copy(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["copy", "--json"];
    all.extend_from_slice(args);
    let out = holdfast(&all);
    assert_ok(&out, "copy");
    json(&out)
}

#[test]
fn copies_between_plain_and_encrypted_incrementally() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; USE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100), KEY (v)); \
         INSERT INTO d.t SELECT seq, MD5(seq) FROM seq_1_to_30000; \
         CREATE TABLE d.u (a INT, b BLOB); INSERT INTO d.u VALUES (1, X'00FF'), (NULL, NULL);",
    );
    let plain = Repo::init();
    let first = backup(&plain, &source, &["--chunk-size", "256k"]);
    source.sql("INSERT INTO d.t VALUES (30001, 'later')");
    let second = backup(&plain, &source, &[]);
    // A binlog archive as the streamer lays it out: segments and their index sidecars.
    let seg_dir = plain
        .path()
        .join("binlog/data/1/mysql-bin.000001@1700000000");
    let index_dir = plain.path().join("binlog/index");
    std::fs::create_dir_all(&seg_dir).unwrap();
    std::fs::create_dir_all(&index_dir).unwrap();
    std::fs::write(seg_dir.join("4.1.zst"), vec![7u8; 300_000]).unwrap();
    std::fs::write(index_dir.join("00000000000000000001.json"), b"{\"seq\":1}").unwrap();

    // plain -> encrypted: everything, then nothing new the second time.
    let enc = Repo::uninit();
    let pf = pass_file(&enc, "copy pass");
    let out = holdfast(&[
        "init",
        "--repo",
        &enc.url(),
        "--encrypt",
        "--passphrase-file",
        &pf,
    ]);
    assert_ok(&out, "init --encrypt");
    let report = copy(&[
        "--from",
        &plain.url(),
        "--to",
        &enc.url(),
        "--to-passphrase-file",
        &pf,
        "--all",
    ]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["binlog_objects_copied"], 2, "{report}");
    assert!(report["files_copied"].as_u64().unwrap() >= 3, "{report}");
    for f in enc.files() {
        if f != "holdfast.repo" {
            let body = std::fs::read(enc.path().join(&f)).unwrap();
            assert!(
                body.starts_with(b"age-encryption.org/v1\n"),
                "{f} not encrypted"
            );
        }
    }
    let again = copy(&[
        "--from",
        &plain.url(),
        "--to",
        &enc.url(),
        "--to-passphrase-file",
        &pf,
        "--all",
    ]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["skipped"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(again["files_copied"], 0, "{again}");
    assert_eq!(again["binlog_objects_copied"], 0, "{again}");
    assert_eq!(again["binlog_objects_skipped"], 2, "{again}");
    // Each backup by id: the archive above is a stand-in of bytes, not segments `verify` of
    // the archive would accept.
    for id in [&first, &second].map(|b| b["id"].as_str().unwrap()) {
        let out = holdfast(&[
            "verify",
            "--repo",
            &enc.url(),
            "--passphrase-file",
            &pf,
            id,
            "--deep",
        ]);
        assert_ok(&out, "verify the encrypted copy");
    }

    // encrypted -> encrypted under another key.
    let enc2 = Repo::uninit();
    let pf2 = pass_file(&enc2, "another pass");
    let out = holdfast(&[
        "init",
        "--repo",
        &enc2.url(),
        "--encrypt",
        "--passphrase-file",
        &pf2,
    ]);
    assert_ok(&out, "init --encrypt");
    let report = copy(&[
        "--from",
        &enc.url(),
        "--from-passphrase-file",
        &pf,
        "--to",
        &enc2.url(),
        "--to-passphrase-file",
        &pf2,
        "latest",
        "--no-binlog",
    ]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
    let out = holdfast(&[
        "verify",
        "--repo",
        &enc2.url(),
        "--passphrase-file",
        &pf2,
        "latest",
        "--deep",
    ]);
    assert_ok(&out, "verify the copy under another key");
    let chunk = enc2
        .files()
        .into_iter()
        .find(|f| f.ends_with(".tsv.zst"))
        .unwrap();
    assert_ne!(
        std::fs::read(enc.path().join(&chunk)).unwrap(),
        std::fs::read(enc2.path().join(&chunk)).unwrap(),
        "the copy must be re-encrypted under the destination's key"
    );

    // encrypted -> plain, one backup by id: restores equal to the source.
    let back = Repo::init();
    let id2 = second["id"].as_str().unwrap();
    let report = copy(&[
        "--from",
        &enc.url(),
        "--from-passphrase-file",
        &pf,
        "--to",
        &back.url(),
        id2,
    ]);
    assert_eq!(report["copied"], serde_json::json!([id2]), "{report}");
    assert_eq!(
        std::fs::read(
            back.path()
                .join("binlog/data/1/mysql-bin.000001@1700000000/4.1.zst")
        )
        .unwrap(),
        vec![7u8; 300_000],
        "binlog segment round trip"
    );
    let target = TestServer::start();
    restore(&back, &target, &["--verify"]);
    assert_eq!(checksums(&source), checksums(&target));
    // The manifest is the same document in every repository.
    assert_eq!(plain.manifest(id2), back.manifest(id2));
    let _ = first;
}

#[test]
fn copy_resumes_an_interrupted_run_and_refuses_bad_input() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE d; USE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO d.t SELECT seq, MD5(seq) FROM seq_1_to_20000;",
    );
    let from = Repo::init();
    let summary = backup(&from, &source, &["--chunk-size", "64k"]);
    let id = summary["id"].as_str().unwrap();
    let to = Repo::init();
    // An interrupted copy: some files there, one of them damaged, no manifest (the files the
    // manifest lists: not the manifest, not its summary).
    let files: Vec<String> = from
        .files()
        .into_iter()
        .filter(|f| {
            f.starts_with("backups/") && !f.ends_with("/manifest") && !f.ends_with("/summary")
        })
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for f in &files[..2] {
        let dst = to.path().join(f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.path().join(f), &dst).unwrap();
    }
    let damaged = to.path().join(&files[1]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();

    let report = copy(&["--from", &from.url(), "--to", &to.url(), "--all"]);
    assert_eq!(report["files_kept"], 1, "{report}");
    assert_eq!(
        report["files_copied"].as_u64().unwrap() as usize,
        files.len() - 1,
        "{report}"
    );
    let out = holdfast(&["verify", "--repo", &to.url(), id, "--deep"]);
    assert_ok(&out, "verify the resumed copy");

    // Nothing selected, an unknown id, the same repository: refused, nothing written.
    let out = holdfast(&[
        "copy",
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "--no-binlog",
    ]);
    assert_code(&out, 2, "copy with nothing selected");
    let out = holdfast(&[
        "copy",
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "20200101T000000Z-0000",
    ]);
    assert_code(&out, 7, "copy of an unknown backup");
    let out = holdfast(&["copy", "--from", &from.url(), "--to", &from.url(), "--all"]);
    assert_code(&out, 2, "copy onto itself");
    // A wrong key on either side stops the copy before anything is written.
    let enc = Repo::uninit();
    let pf = pass_file(&enc, "right");
    assert_ok(
        &holdfast(&[
            "init",
            "--repo",
            &enc.url(),
            "--encrypt",
            "--passphrase-file",
            &pf,
        ]),
        "init",
    );
    let before = enc.files();
    let out = holdfast_env(
        &["copy", "--from", &from.url(), "--to", &enc.url(), "--all"],
        &[("HOLDFAST_TO_PASSPHRASE", "wrong")],
    );
    assert_code(&out, 8, "copy with a wrong destination key");
    assert_eq!(enc.files(), before);
}

/// A repository holding only a binlog archive as the streamer lays it out (no server needed).
fn repo_with_archive() -> Repo {
    let repo = Repo::init();
    let seg_dir = repo
        .path()
        .join("binlog/data/1/mysql-bin.000001@1700000000");
    let index_dir = repo.path().join("binlog/index");
    std::fs::create_dir_all(&seg_dir).unwrap();
    std::fs::create_dir_all(&index_dir).unwrap();
    std::fs::write(seg_dir.join("4.1.zst"), vec![7u8; 3000]).unwrap();
    std::fs::write(index_dir.join("00000000000000000001.json"), b"{\"seq\":1}").unwrap();
    repo
}

#[test]
fn copy_selection_and_flags_mean_what_they_say() {
    let from = repo_with_archive();
    let to = Repo::init();
    let archive = |r: &Repo| {
        r.files()
            .into_iter()
            .filter(|f| f.starts_with("binlog/"))
            .count()
    };
    // --all --no-binlog: every backup, not the archive.
    let report = copy(&[
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "--all",
        "--no-binlog",
    ]);
    assert_eq!(report["binlog_objects_copied"], 0, "{report}");
    assert_eq!(archive(&to), 0, "--no-binlog copied the archive");
    // No ids, no --all: a usage error, nothing written.
    let out = holdfast(&["copy", "--from", &from.url(), "--to", &to.url()]);
    assert_code(&out, 2, "copy with nothing selected");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--binlog-only"),
        "{}",
        text(&out)
    );
    assert_eq!(archive(&to), 0);
    // --binlog-only, with the storage flags every repository command takes.
    let report = copy(&[
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "--binlog-only",
        "--max-rate",
        "10MiB/s",
        "--storage-timeout",
        "30s",
        "--storage-retries",
        "2",
        "--storage-concurrency",
        "4",
    ]);
    assert_eq!(report["binlog_objects_copied"], 2, "{report}");
    assert_eq!(archive(&to), 2);
    // An encrypted source without its key: the hint names copy's own flags.
    let enc = Repo::uninit();
    let pf = pass_file(&enc, "secret");
    assert_ok(
        &holdfast(&[
            "init",
            "--repo",
            &enc.url(),
            "--encrypt",
            "--passphrase-file",
            &pf,
        ]),
        "init",
    );
    let out = holdfast(&["copy", "--from", &enc.url(), "--to", &to.url(), "--all"]);
    assert_code(&out, 8, "copy from an encrypted repository without a key");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--from-passphrase-file") && err.contains("HOLDFAST_FROM_PASSPHRASE"),
        "{}",
        text(&out)
    );
    let out = holdfast_env(
        &["copy", "--from", &to.url(), "--to", &enc.url(), "--all"],
        &[("HOLDFAST_TO_PASSPHRASE", "wrong")],
    );
    assert_code(&out, 8, "copy to an encrypted repository with a wrong key");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--to-passphrase-file"),
        "{}",
        text(&out)
    );
}
