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

/// Recomputes `auth.sha256` of an edited `holdfast.repo`, as someone altering it on purpose
/// would (the canonical form: keys sorted, no whitespace, without `auth`).
fn resum(doc: &mut serde_json::Value) {
    fn canonical(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<_> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    canonical(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&serde_json::to_string(other).unwrap()),
        }
    }
    let mut bare = doc.clone();
    bare.as_object_mut().unwrap().remove("auth");
    let mut text = String::new();
    canonical(&bare, &mut text);
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let sum = String::from_utf8(out.stdout).unwrap();
    doc["auth"]["sha256"] = serde_json::Value::String(sum[..64].to_string());
}

/// `holdfast.repo` is authenticated: each of its fields altered (by hand, or on purpose with a
/// recomputed checksum) is refused before the key is used, with exit 20 naming the file (8 when
/// the altered slot no longer opens at all), and nothing is written. Undone, it opens again.
#[test]
fn descriptor_tampering_is_refused_before_the_key_is_used() {
    let source = TestServer::start();
    source.sql(
        "CREATE DATABASE t; CREATE TABLE t.a (id INT PRIMARY KEY); INSERT INTO t.a VALUES (1);",
    );
    let repo = Repo::uninit();
    let (id_file, recipient) = age_identity(repo.dir.path(), "me.txt");
    let url = repo.url();
    let pf = pass_file(&repo, "pass.txt", "correct horse battery staple");
    let out = holdfast(&[
        "init",
        "--repo",
        &url,
        "--encrypt",
        "--passphrase-file",
        &pf,
        "--recipient",
        &recipient,
    ]);
    assert_ok(&out, "init --encrypt --recipient");
    let id = id_file.to_str().unwrap();
    backup(&repo, &source, &["--identity-file", id]);
    let descriptor = repo.path().join("holdfast.repo");
    let genuine = std::fs::read(&descriptor).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
    assert_eq!(doc["format"], 3, "{doc}");
    assert!(doc["auth"]["hmac"].is_string(), "{doc}");
    let before = snapshot(&repo);

    // A key of the attacker's own wrapped to the user's public recipient: a slot the user's
    // identity opens, with a matching key_id.
    let other = Repo::uninit();
    let out = holdfast(&["init", "--repo", &other.url(), "--recipient", &recipient]);
    assert_ok(&out, "init of another repository");
    let other_doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other.path().join("holdfast.repo")).unwrap())
            .unwrap();
    let other_slot = other_doc["encryption"]["slots"][0].clone();
    let other_key_id = other_doc["encryption"]["key_id"].clone();

    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    // (field changed, exit code when edited by hand, when edited with a recomputed checksum)
    let cases: Vec<(&str, Edit, i32, i32)> = vec![
        ("id", Box::new(|d| d["id"] = "x".into()), 20, 20),
        (
            "format lowered to 2",
            Box::new(|d| d["format"] = 2.into()),
            20,
            20,
        ),
        (
            "created",
            Box::new(|d| d["created"] = "2001-01-01T00:00:00Z".into()),
            20,
            20,
        ),
        (
            "key_id",
            Box::new(|d| d["encryption"]["key_id"] = "0000000000000000".into()),
            20,
            20,
        ),
        (
            "recipient of a slot",
            Box::new(|d| d["encryption"]["slots"][1]["recipient"] = "age1qqqq".into()),
            20,
            20,
        ),
        (
            "the user's slot replaced by one of another key",
            {
                let s = other_slot.clone();
                Box::new(move |d| d["encryption"]["slots"][1] = s.clone())
            },
            20,
            20,
        ),
        (
            "slot and key_id of another key",
            {
                let (s, k) = (other_slot.clone(), other_key_id.clone());
                Box::new(move |d| {
                    d["encryption"]["slots"][1] = s.clone();
                    d["encryption"]["key_id"] = k.clone();
                })
            },
            20,
            20,
        ),
        (
            "encryption removed",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("encryption");
            }),
            20,
            20,
        ),
        (
            "relabelled as unencrypted format 1 (encryption and auth removed)",
            Box::new(|d| {
                d["format"] = 1.into();
                d.as_object_mut().unwrap().remove("encryption");
                d.as_object_mut().unwrap().remove("auth");
            }),
            2,
            2,
        ),
        (
            "MAC removed, format 2 (downgrade)",
            Box::new(|d| {
                d["format"] = 2.into();
                d.as_object_mut().unwrap().remove("auth");
            }),
            20,
            20,
        ),
        (
            "the user's slot made a passphrase slot",
            Box::new(|d| d["encryption"]["slots"][1]["kind"] = "passphrase".into()),
            20,
            8,
        ),
    ];
    for (what, f, by_hand, deliberate_code) in &cases {
        for deliberate in [false, true] {
            let mut d = doc.clone();
            f(&mut d);
            if deliberate && d.get("auth").is_some() {
                resum(&mut d);
            }
            let code = if deliberate {
                *deliberate_code
            } else {
                *by_hand
            };
            std::fs::write(&descriptor, serde_json::to_vec_pretty(&d).unwrap()).unwrap();
            let out = holdfast(&["list", "--repo", &url, "--identity-file", id]);
            let what = format!("{what} (checksum recomputed: {deliberate})");
            assert_code(&out, code, &what);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("holdfast.repo"),
                "{what}: the message must name holdfast.repo:\n{stderr}"
            );
            let out = holdfast(&[
                "backup",
                "--repo",
                &url,
                "--source",
                &source.url(),
                "--identity-file",
                id,
            ]);
            assert_code(&out, code, &what);
            let mut after = snapshot(&repo);
            after.remove("holdfast.repo");
            let mut expected = before.clone();
            expected.remove("holdfast.repo");
            assert!(
                after == expected,
                "{what}: a refused command wrote to the repository"
            );
        }
    }
    std::fs::write(&descriptor, &genuine).unwrap();
    let out = holdfast(&["verify", "--repo", &url, "--identity-file", id, "--all"]);
    assert_ok(&out, "verify with the genuine holdfast.repo put back");
}

/// Repositories written before holdfast.repo was authenticated (formats 1 and 2, made by the
/// previous holdfast and kept under tests/fixtures) still open, back up and restore; the first
/// key change of an encrypted one rewrites it as format 3.
#[test]
fn repositories_of_formats_1_and_2_still_open() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql("CREATE DATABASE t; CREATE TABLE t.a (id INT PRIMARY KEY, v TEXT); INSERT INTO t.a VALUES (1, 'x'), (2, NULL);");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

    let plain = Repo::uninit();
    std::fs::create_dir_all(plain.path()).unwrap();
    std::fs::copy(
        fixtures.join("repo-format1/holdfast.repo"),
        plain.path().join("holdfast.repo"),
    )
    .unwrap();
    backup(&plain, &source, &[]);
    assert_ok(
        &holdfast(&["verify", "--repo", &plain.url(), "--deep", "--all"]),
        "verify format 1",
    );
    let on_disk = std::fs::read(plain.path().join("holdfast.repo")).unwrap();
    assert_eq!(
        on_disk,
        std::fs::read(fixtures.join("repo-format1/holdfast.repo")).unwrap(),
        "a backup must not rewrite holdfast.repo"
    );

    let enc = Repo::uninit();
    std::fs::create_dir_all(enc.path()).unwrap();
    std::fs::copy(
        fixtures.join("repo-format2-encrypted/holdfast.repo"),
        enc.path().join("holdfast.repo"),
    )
    .unwrap();
    let pf = pass_file(&enc, "pass.txt", "format two fixture");
    backup(&enc, &source, &["--passphrase-file", &pf]);
    let (id_file, recipient) = age_identity(enc.dir.path(), "me.txt");
    let out = holdfast(&[
        "key",
        "add",
        "--repo",
        &enc.url(),
        "--passphrase-file",
        &pf,
        "--recipient",
        &recipient,
    ]);
    assert_ok(&out, "key add on a format 2 repository");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(enc.path().join("holdfast.repo")).unwrap()).unwrap();
    assert_eq!(
        doc["format"], 3,
        "a key change upgrades the descriptor: {doc}"
    );
    assert!(doc["auth"]["hmac"].is_string(), "{doc}");
    restore(
        &enc,
        &target,
        &["--identity-file", id_file.to_str().unwrap(), "--verify"],
    );
    assert_eq!(checksums(&source), checksums(&target));
    // The old passphrase slot (no marker) still opens the upgraded descriptor.
    let out = holdfast(&[
        "verify",
        "--repo",
        &enc.url(),
        "--passphrase-file",
        &pf,
        "--all",
    ]);
    assert_ok(&out, "verify with the format 2 passphrase slot");
}
