//! Encrypted repositories against real servers and the real `age` and `zstd` tools: round trip,
//! hand decryption, wrong or missing keys, tampering and key rotation.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use holdfast_testkit::TestServer;

const DATA: &str = "CREATE DATABASE shop; USE shop; \
    CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), note BLOB, KEY by_name (name)); \
    INSERT INTO shop.items SELECT seq, CONCAT('item ', seq, '\t', MD5(seq)), seq / 7, IF(seq % 5 = 0, NULL, UNHEX(MD5(seq))) FROM seq_1_to_20000; \
    CREATE TABLE shop.nokey (a INT, b TEXT); INSERT INTO shop.nokey VALUES (1, 'x\\ny'), (NULL, NULL);";

/// A passphrase file (and its passphrase) in the repository's temp dir.
fn pass_file(repo: &Repo, name: &str, pass: &str) -> String {
    let p = repo.dir.path().join(name);
    std::fs::write(&p, format!("{pass}\n")).unwrap();
    p.display().to_string()
}

fn init_encrypted(extra: &[&str]) -> (Repo, String) {
    let repo = Repo::uninit();
    let pf = pass_file(&repo, "pass.txt", "correct horse battery staple");
    let url = repo.url();
    let mut args = vec![
        "init",
        "--repo",
        &url,
        "--encrypt",
        "--passphrase-file",
        &pf,
    ];
    args.extend_from_slice(extra);
    assert_ok(&holdfast(&args), "init --encrypt");
    (repo, pf)
}

/// An age identity generated with `age-keygen`; returns (file, public recipient).
fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("age-keygen (Debian package `age`) must be installed");
    assert!(out.status.success(), "age-keygen failed");
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&file)
        .output()
        .unwrap();
    (
        file,
        String::from_utf8(public.stdout).unwrap().trim().to_string(),
    )
}

/// Path -> content of every file of the repository.
fn snapshot(repo: &Repo) -> BTreeMap<String, Vec<u8>> {
    repo.files()
        .into_iter()
        .map(|f| {
            let body = std::fs::read(repo.path().join(&f)).unwrap();
            (f, body)
        })
        .collect()
}

fn run_tool(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn export_key(repo: &Repo, pf: &str) -> PathBuf {
    let key = repo.dir.path().join("data-key.txt");
    let out = holdfast(&[
        "key",
        "export",
        "--repo",
        &repo.url(),
        "--passphrase-file",
        pf,
        "--output",
        key.to_str().unwrap(),
    ]);
    assert_ok(&out, "key export");
    key
}

#[test]
fn encrypted_backup_restores_equal_and_decrypts_by_hand() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(DATA);
    let (repo, pf) = init_encrypted(&[]);

    let summary = backup(
        &repo,
        &source,
        &["--chunk-size", "256k", "--passphrase-file", &pf],
    );
    assert_eq!(summary["rows"], 20002, "{summary}");
    // Every file but the descriptor is an age file; no plaintext row leaks.
    for (path, body) in snapshot(&repo) {
        if path == "holdfast.repo" {
            continue;
        }
        assert!(
            body.starts_with(b"age-encryption.org/v1\n"),
            "{path} is not an age file"
        );
        assert!(
            !body.windows(8).any(|w| w == b"item 123"),
            "{path} holds plaintext"
        );
    }
    let out = holdfast(&[
        "verify",
        "--repo",
        &repo.url(),
        "--passphrase-file",
        &pf,
        "--deep",
        "--json",
    ]);
    assert_ok(&out, "verify --deep of an encrypted backup");
    assert_eq!(
        json(&out)["backups"][0]["problems"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let report = restore(&repo, &target, &["--verify", "--passphrase-file", &pf]);
    assert_eq!(report["verified"], true);
    assert_eq!(
        checksums(&source),
        checksums(&target),
        "CHECKSUM TABLE differs"
    );

    // By hand: export the data key, `age -d` a chunk, `zstd -d`, plain LOAD DATA.
    let key = export_key(&repo, &pf);
    let mode = std::fs::metadata(&key).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let chunk = repo
        .files()
        .into_iter()
        .find(|f| f.contains("/items/") && f.ends_with(".tsv.zst"))
        .expect("a chunk of shop.items");
    let zst = repo.dir.path().join("chunk.tsv.zst");
    run_tool(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(&zst)
            .arg(repo.path().join(&chunk)),
        "age -d",
    );
    let tsv = repo.dir.path().join("chunk.tsv");
    run_tool(
        Command::new("zstd")
            .args(["-q", "-d", "-o"])
            .arg(&tsv)
            .arg(&zst),
        "zstd -d",
    );
    source.sql(&format!(
        "CREATE TABLE shop.copy LIKE shop.items; \
         LOAD DATA INFILE '{}' INTO TABLE shop.copy CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (id, name, price, note);",
        tsv.display()
    ));
    let loaded: u64 = source
        .sql("SELECT COUNT(*) FROM shop.copy")
        .trim()
        .parse()
        .unwrap();
    assert!(loaded > 0, "the hand-decrypted chunk loaded no rows");
    assert_eq!(
        source
            .sql(
                "SELECT COUNT(*) FROM shop.copy c JOIN shop.items i USING (id) \
             WHERE NOT (c.name <=> i.name AND c.price <=> i.price AND c.note <=> i.note)"
            )
            .trim(),
        "0",
        "hand-decrypted rows differ from the source"
    );
    // The manifest decrypts by hand to the JSON `info` shows.
    let id = summary["id"].as_str().unwrap();
    let manifest = run_tool(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg(repo.path().join(format!("backups/{id}/manifest"))),
        "age -d manifest",
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["id"], id);
}

/// What is tried, its arguments, its environment.
type Attempt<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn wrong_or_missing_key_fails_before_any_work_and_writes_nothing() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(DATA);
    let (repo, pf) = init_encrypted(&[]);
    backup(&repo, &source, &["--passphrase-file", &pf]);
    let before = snapshot(&repo);
    let wrong = pass_file(&repo, "wrong.txt", "incorrect horse");
    let (other_id, _) = age_identity(repo.dir.path(), "other.txt");

    let url = repo.url();
    let src = source.url();
    let tgt = target.url();
    let attempts: Vec<Attempt> = vec![
        (
            "backup with a wrong passphrase file",
            vec![
                "backup",
                "--repo",
                &url,
                "--source",
                &src,
                "--passphrase-file",
                &wrong,
            ],
            vec![],
        ),
        (
            "backup with a wrong HOLDFAST_PASSPHRASE",
            vec!["backup", "--repo", &url, "--source", &src],
            vec![("HOLDFAST_PASSPHRASE", "nope")],
        ),
        (
            "backup without a key",
            vec!["backup", "--repo", &url, "--source", &src],
            vec![],
        ),
        (
            "restore with an identity that matches no slot",
            vec![
                "restore",
                "--repo",
                &url,
                "--target",
                &tgt,
                "--identity-file",
                other_id.to_str().unwrap(),
            ],
            vec![],
        ),
        ("list without a key", vec!["list", "--repo", &url], vec![]),
    ];
    for (what, args, env) in attempts {
        let out = holdfast_env(&args, &env);
        assert_code(&out, 8, what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("key") && stderr.contains(&repo.url()),
            "{what}: the message must say the key is wrong or missing and name the repository:\n{stderr}"
        );
    }
    assert_eq!(
        snapshot(&repo),
        before,
        "a refused command changed the repository"
    );
    assert!(
        !has_database(&target, "shop"),
        "a refused restore touched the target"
    );
}

/// Tampering is caught, naming the file: a flipped byte in a chunk or a manifest, a manifest
/// forged with the public recipient (which age's AEAD alone would accept), a manifest moved
/// from another backup.
#[test]
fn tampering_is_detected_naming_the_file() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(DATA);
    let (repo, pf) = init_encrypted(&[]);
    let first = backup(
        &repo,
        &source,
        &["--chunk-size", "256k", "--passphrase-file", &pf],
    );
    let second = backup(&repo, &source, &["--passphrase-file", &pf]);
    let (a, b) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let key = export_key(&repo, &pf);
    let url = repo.url();

    // 1. A flipped byte in the middle of an encrypted chunk: verify and restore name it.
    let chunk = repo
        .files()
        .into_iter()
        .find(|f| f.starts_with(&format!("backups/{a}/data/")) && f.ends_with(".tsv.zst"))
        .unwrap();
    let original = std::fs::read(repo.path().join(&chunk)).unwrap();
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    std::fs::write(repo.path().join(&chunk), &flipped).unwrap();
    let out = holdfast(&["verify", "--repo", &url, "--passphrase-file", &pf, a]);
    assert_code(&out, 20, "verify of a flipped chunk");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&chunk),
        "verify must name {chunk}:\n{}",
        text(&out)
    );
    let out = holdfast(&[
        "restore",
        "--repo",
        &url,
        "--passphrase-file",
        &pf,
        "--target",
        &target.url(),
        a,
    ]);
    assert_code(&out, 20, "restore of a flipped chunk");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&chunk),
        "restore must name {chunk}:\n{}",
        text(&out)
    );
    std::fs::write(repo.path().join(&chunk), &original).unwrap();

    let manifest_a = repo.path().join(format!("backups/{a}/manifest"));
    let manifest_b = repo.path().join(format!("backups/{b}/manifest"));
    let genuine_a = std::fs::read(&manifest_a).unwrap();
    let genuine_b = std::fs::read(&manifest_b).unwrap();
    let expect_bad_manifest = |what: &str, id: &str| {
        let out = holdfast(&["verify", "--repo", &url, "--passphrase-file", &pf, id]);
        assert_code(&out, 20, what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("backups/{id}/manifest")),
            "{what}: the error must name the manifest:\n{}",
            text(&out)
        );
        stderr.to_string()
    };

    // 2. A flipped byte in a manifest.
    let mut bad = genuine_a.clone();
    let at = bad.len() - 40;
    bad[at] ^= 0x01;
    std::fs::write(&manifest_a, &bad).unwrap();
    expect_bad_manifest("flipped byte in a manifest", a);

    // 3. A forged manifest: decrypted, edited, and re-encrypted by hand with `age -r` to the
    //    data key's public recipient. A valid age file, but not written by holdfast.
    let plain = run_tool(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg(repo.path().join(format!("backups/{b}/manifest"))),
        "age -d",
    );
    let mut forged: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    forged["id"] = serde_json::Value::String(a.to_string());
    let forged_plain = repo.dir.path().join("forged.json");
    std::fs::write(&forged_plain, serde_json::to_vec(&forged).unwrap()).unwrap();
    let recipient = run_tool(
        Command::new("age-keygen").arg("-y").arg(&key),
        "age-keygen -y",
    );
    let recipient = String::from_utf8(recipient).unwrap();
    std::fs::remove_file(&manifest_a).unwrap();
    run_tool(
        Command::new("age")
            .arg("-r")
            .arg(recipient.trim())
            .arg("-o")
            .arg(&manifest_a)
            .arg(&forged_plain),
        "age -e",
    );
    let msg = expect_bad_manifest("forged manifest", a);
    assert!(msg.contains("not authentic"), "{msg}");

    // 4. Backup b's genuine manifest moved into backup a.
    std::fs::write(&manifest_a, &genuine_b).unwrap();
    let msg = expect_bad_manifest("manifest moved from another backup", a);
    assert!(msg.contains("not authentic"), "{msg}");

    // Restored, everything verifies again.
    std::fs::write(&manifest_a, &genuine_a).unwrap();
    let out = holdfast(&["verify", "--repo", &url, "--passphrase-file", &pf, "--all"]);
    assert_ok(&out, "verify after undoing the tampering");
}

#[test]
fn key_rotation_rewraps_without_rewriting_data() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(DATA);
    let (repo, old) = init_encrypted(&[]);
    backup(&repo, &source, &["--passphrase-file", &old]);
    let data_before: BTreeMap<_, _> = snapshot(&repo)
        .into_iter()
        .filter(|(p, _)| p.starts_with("backups/"))
        .collect();
    let new = pass_file(&repo, "new.txt", "a brand new passphrase");
    let (id_file, recipient) = age_identity(repo.dir.path(), "me.txt");
    let url = repo.url();

    let out = holdfast(&[
        "key",
        "add",
        "--repo",
        &url,
        "--passphrase-file",
        &old,
        "--new-passphrase-file",
        &new,
        "--recipient",
        &recipient,
        "--json",
    ]);
    assert_ok(&out, "key add");
    assert_eq!(json(&out)["slots"].as_array().unwrap().len(), 3);
    let out = holdfast(&[
        "key",
        "remove",
        "--repo",
        &url,
        "--passphrase-file",
        &new,
        "0",
        "--json",
    ]);
    assert_ok(&out, "key remove 0");
    let slots = json(&out)["slots"].as_array().unwrap().clone();
    assert_eq!(slots.len(), 2);
    assert_eq!(slots[1]["recipient"], recipient.as_str());

    let out = holdfast(&["list", "--repo", &url, "--passphrase-file", &old]);
    assert_code(&out, 8, "the removed passphrase");
    let out = holdfast(&[
        "verify",
        "--repo",
        &url,
        "--passphrase-file",
        &new,
        "--deep",
    ]);
    assert_ok(&out, "verify with the new passphrase");
    restore(
        &repo,
        &target,
        &["--identity-file", id_file.to_str().unwrap(), "--verify"],
    );
    assert_eq!(checksums(&source), checksums(&target));

    let data_after: BTreeMap<_, _> = snapshot(&repo)
        .into_iter()
        .filter(|(p, _)| p.starts_with("backups/"))
        .collect();
    assert!(data_before == data_after, "key rotation rewrote data files");
    assert!(
        !repo.path().join("holdfast.repo.previous").exists(),
        "the previous descriptor (with the removed slot) must not stay behind"
    );

    let out = holdfast(&[
        "key",
        "remove",
        "--repo",
        &url,
        "--passphrase-file",
        &new,
        "0",
        "1",
    ]);
    assert_code(&out, 2, "removing every slot");
}

#[test]
fn init_encrypt_refuses_bad_input_and_writes_nothing() {
    let repo = Repo::uninit();
    let url = repo.url();
    let out = holdfast(&["init", "--repo", &url, "--encrypt"]);
    assert_code(
        &out,
        2,
        "init --encrypt without a passphrase and no terminal",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--passphrase-file"),
        "the message must say where a passphrase comes from:\n{}",
        text(&out)
    );
    let out = holdfast(&["init", "--repo", &url, "--recipient", "age1notarecipient"]);
    assert_code(&out, 2, "init with a malformed recipient");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("age1notarecipient"),
        "{}",
        text(&out)
    );
    let empty = repo.dir.path().join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let out = holdfast(&[
        "init",
        "--repo",
        &url,
        "--encrypt",
        "--passphrase-file",
        empty.to_str().unwrap(),
    ]);
    assert_code(&out, 2, "init with an empty passphrase file");
    assert!(
        repo.files().is_empty(),
        "refused inits wrote {:?}",
        repo.files()
    );
}
