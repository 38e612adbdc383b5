//! The binlog archive and point-in-time recovery on an encrypted repository, and copied (with
//! its archive) to a plain one: both restore `--latest` equal to the source.

mod common;

use common::*;
use holdfast_testkit::TestServer;

#[test]
fn encrypted_archive_recovers_and_copies_with_its_binlog() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_5000;",
    );
    let repo = Repo::uninit();
    let pf = repo.dir.path().join("pass.txt");
    std::fs::write(&pf, "archive pass\n").unwrap();
    let pf = pf.display().to_string();
    let url = repo.url();
    assert_ok(
        &holdfast(&[
            "init",
            "--repo",
            &url,
            "--encrypt",
            "--passphrase-file",
            &pf,
        ]),
        "init --encrypt",
    );
    backup(&repo, &source, &["--passphrase-file", &pf]);
    source.sql(
        "USE shop; UPDATE t SET v = 'changed' WHERE id % 10 = 0; DELETE FROM t WHERE id > 4900; \
         CREATE TABLE later (a INT PRIMARY KEY); INSERT INTO later VALUES (1), (2);",
    );
    let out = stream_until_caught_up(&url, &source.url(), &["--passphrase-file", &pf, "--json"]);
    assert_ok(&out, "binlog stream into an encrypted repository");
    let binlog_files: Vec<String> = repo
        .files()
        .into_iter()
        .filter(|f| f.starts_with("binlog/"))
        .collect();
    assert!(
        binlog_files.iter().any(|f| f.starts_with("binlog/index/")),
        "{binlog_files:?}"
    );
    for f in &binlog_files {
        let body = std::fs::read(repo.path().join(f)).unwrap();
        assert!(
            body.starts_with(b"age-encryption.org/v1\n"),
            "{f} is not encrypted"
        );
    }

    let target = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &url,
        "--passphrase-file",
        &pf,
        "--target",
        &target.url(),
        "--latest",
        "--json",
    ]);
    assert_ok(&out, "restore --latest from the encrypted archive");
    assert_eq!(
        checksums(&source),
        checksums(&target),
        "encrypted PITR differs"
    );

    let plain = Repo::init();
    let out = holdfast(&[
        "copy",
        "--from",
        &url,
        "--from-passphrase-file",
        &pf,
        "--to",
        &plain.url(),
        "--all",
        "--json",
    ]);
    assert_ok(&out, "copy with the archive");
    let report = json(&out);
    assert_eq!(
        report["binlog_objects_copied"].as_u64().unwrap() as usize,
        binlog_files.len(),
        "{report}"
    );
    let target2 = TestServer::start();
    let out = holdfast(&[
        "restore",
        "--repo",
        &plain.url(),
        "--target",
        &target2.url(),
        "--latest",
        "--json",
    ]);
    assert_ok(&out, "restore --latest from the plain copy");
    assert_eq!(
        checksums(&source),
        checksums(&target2),
        "PITR from the copy differs"
    );
}
