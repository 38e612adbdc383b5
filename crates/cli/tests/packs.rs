//! Packs (manifest format 2): a backup of many small tables writes them into shared pack files,
//! one segment per table, and keeps every guarantee of a file per table: `verify --deep` checks
//! each table's segment and names the table whose segment is damaged, `restore` refuses it,
//! `restore --verify` and partial restores of one table or one database read their segments
//! alone, encrypted repositories pack too. And a repository written before packs (format 1, a
//! stored fixture written by holdfast at main @ 6b58f59) still verifies and restores.

mod common;

use std::path::Path;

use common::*;
use holdfast_testkit::TestServer;

/// Two databases: 110 small tables in `pk1` (every tenth empty, one partitioned) and 10 in
/// `pk2` beside one table big enough to get a chunk file of its own.
fn generate() -> String {
    let mut sql = String::from(
        "SET SESSION sql_log_bin = 0; CREATE DATABASE pk1 CHARACTER SET utf8mb4; \
         CREATE DATABASE pk2 CHARACTER SET utf8mb4; USE pk1;\n",
    );
    for i in 0..120 {
        let (db, t) = if i < 110 {
            ("pk1", i)
        } else {
            ("pk2", i - 110)
        };
        let part = if i == 15 {
            " PARTITION BY HASH (id) PARTITIONS 4"
        } else {
            ""
        };
        sql.push_str(&format!(
            "CREATE TABLE {db}.t{t:04} (id INT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, \
             note TEXT NULL, KEY k_name (name)){part};\n"
        ));
        if i % 10 != 0 {
            let rows = 1 + (i * 7) % 40;
            sql.push_str(&format!(
                "INSERT INTO {db}.t{t:04} SELECT seq, CONCAT('n', seq * {i}), \
                 IF(seq % 3 = 0, NULL, CONCAT('tab\\there ', seq)) FROM seq_1_to_{rows};\n"
            ));
        }
    }
    sql.push_str(
        "CREATE TABLE pk2.big (id INT NOT NULL PRIMARY KEY, pad VARCHAR(200) NOT NULL); \
         INSERT INTO pk2.big SELECT seq, REPEAT(MD5(seq), 5) FROM seq_1_to_20000; \
         ANALYZE TABLE pk2.big;\n",
    );
    sql
}

fn source() -> TestServer {
    let server = TestServer::start();
    server.sql(&generate());
    server
}

/// The chunks of the backup's manifest that are pack segments, as (db, table, chunk).
fn segments(manifest: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for t in manifest["tables"].as_array().expect("tables") {
        for c in t["chunks"].as_array().expect("chunks") {
            if c.get("segment").is_some_and(|s| !s.is_null()) {
                out.push((
                    t["database"].as_str().unwrap().to_string(),
                    t["table"].as_str().unwrap().to_string(),
                    c.clone(),
                ));
            }
        }
    }
    out
}

fn row_count(server: &TestServer, table: &str) -> u64 {
    server
        .sql(&format!("SELECT COUNT(*) FROM {table}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn small_tables_share_packs_and_keep_every_check() {
    let source = source();
    let before = checksums(&source);
    let repo = Repo::init();
    let summary = backup(&repo, &source, &["--threads", "2"]);
    assert_eq!(summary["tables"], 121, "{summary}");

    let manifest = repo.manifest("latest");
    assert_eq!(manifest["format"], 2, "a backup with packs is format 2");
    let packed = segments(&manifest);
    assert_eq!(packed.len(), 120, "every small table is packed");
    let big = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "big")
        .unwrap();
    assert!(big["chunks"][0].get("segment").is_none(), "{big}");
    let files = repo.files();
    let packs: Vec<&String> = files.iter().filter(|f| f.contains("/packs/")).collect();
    assert!(
        !packs.is_empty() && packs.len() <= 4,
        "120 small tables in a few packs: {packs:?}"
    );
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".tsv.zst")).count(),
        packs.len() + 1,
        "the packs and the big table's chunk: {files:?}"
    );

    let url = repo.url();
    let out = holdfast(&["verify", "--repo", &url, "--deep", "latest"]);
    assert_ok(&out, "verify --deep");

    // Whole, with the fingerprints recomputed.
    let target = TestServer::start();
    let report = restore(&repo, &target, &["latest", "--threads", "2", "--verify"]);
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(checksums(&target), before);

    // One table, then one database, from their segments.
    let one = TestServer::start();
    restore(&repo, &one, &["latest", "--tables", "pk1.t0047"]);
    assert_eq!(
        checksums(&one),
        before
            .iter()
            .filter(|l| l.starts_with("`pk1`.`t0047`"))
            .cloned()
            .collect::<Vec<_>>()
    );
    restore(&repo, &one, &["latest", "--databases", "pk2", "--verify"]);
    let want: Vec<String> = before
        .iter()
        .filter(|l| l.starts_with("`pk1`.`t0047`") || l.starts_with("`pk2`."))
        .cloned()
        .collect();
    assert_eq!(checksums(&one), want);

    // A flipped byte inside one table's segment: verify names the table, restore refuses.
    let (db, table, chunk) = packed
        .iter()
        .find(|(_, _, c)| c["rows"].as_u64().unwrap() > 10)
        .cloned()
        .expect("a packed table with rows");
    let segment = &chunk["segment"];
    let offset = segment["offset"].as_u64().unwrap() + segment["length"].as_u64().unwrap() / 2;
    let id = manifest["id"].as_str().unwrap();
    let pack = repo
        .path()
        .join(format!("backups/{id}/{}", chunk["file"].as_str().unwrap()));
    flip_byte(&pack, offset);
    let name = format!("`{db}`.`{table}`");

    let out = holdfast(&["verify", "--repo", &url, "--deep", "latest", "--json"]);
    assert_code(&out, 20, "verify --deep of a damaged segment");
    let report = json(&out);
    let problems = report["backups"][0]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("problems: {report}"));
    assert!(
        problems
            .iter()
            .any(|p| p["detail"].as_str().unwrap().contains(&name)),
        "verify --deep names {name}: {report}"
    );
    // Only that table's segment (and the pack file as a whole) is reported.
    for p in problems {
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains(&name) || !detail.contains("segment"),
            "{report}"
        );
    }
    // Without --deep the pack's checksum still catches it.
    let out = holdfast(&["verify", "--repo", &url, "latest"]);
    assert_code(&out, 20, "verify of a damaged pack");

    let damaged = TestServer::start();
    let out = restore_latest(&repo, &damaged);
    assert_code(&out, 20, "restore of a damaged segment");
    assert!(
        text(&out).contains(&name),
        "restore names {name}:\n{}",
        text(&out)
    );
    // A restore of another table of the same pack reads only its own segment and succeeds.
    let other = packed
        .iter()
        .find(|(d, t, c)| {
            (d, t) != (&db, &table) && c["file"] == chunk["file"] && c["rows"].as_u64() > Some(0)
        })
        .expect("another table in the same pack");
    let other_name = format!("{}.{}", other.0, other.1);
    let fresh = TestServer::start();
    common::restore(&repo, &fresh, &["latest", "--tables", &other_name]);
    assert_eq!(
        row_count(&fresh, &format!("`{}`.`{}`", other.0, other.1)),
        other.2["rows"].as_u64().unwrap()
    );
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn encrypted_repositories_pack_too() {
    let source = source();
    let before = checksums(&source);
    let repo = Repo::uninit();
    let pf = repo.dir.path().join("pass.txt");
    std::fs::write(&pf, "correct horse battery staple\n").unwrap();
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
    backup(
        &repo,
        &source,
        &["--threads", "2", "--passphrase-file", &pf],
    );
    let out = holdfast(&[
        "info",
        "--repo",
        &url,
        "latest",
        "--json",
        "--passphrase-file",
        &pf,
    ]);
    assert_ok(&out, "info");
    assert_eq!(segments(&json(&out)).len(), 120);
    let out = holdfast(&[
        "verify",
        "--repo",
        &url,
        "--deep",
        "latest",
        "--passphrase-file",
        &pf,
    ]);
    assert_ok(&out, "verify --deep");
    let target = TestServer::start();
    common::restore(
        &repo,
        &target,
        &["latest", "--verify", "--passphrase-file", &pf],
    );
    assert_eq!(checksums(&target), before);
    let one = TestServer::start();
    common::restore(
        &repo,
        &one,
        &["latest", "--tables", "pk2.t0003", "--passphrase-file", &pf],
    );
    assert_eq!(
        checksums(&one),
        before
            .iter()
            .filter(|l| l.starts_with("`pk2`.`t0003`"))
            .cloned()
            .collect::<Vec<_>>()
    );
}

/// A repository written by holdfast before packs (manifest format 1, chunk files per table)
/// still verifies and restores: `tests/fixtures/manifest-format1`, written by main @ 6b58f59
/// from the data in `tests/fixtures/manifest-format1.sql`.
#[test]
fn a_format_1_repository_still_restores() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifest-format1");
    let repo = Repo::uninit();
    copy_dir(&fixture, &repo.path());
    let url = repo.url();
    let manifest = repo.manifest("latest");
    assert_eq!(manifest["format"], 1);
    assert!(segments(&manifest).is_empty());
    assert_ok(
        &holdfast(&["verify", "--repo", &url, "--deep", "latest"]),
        "verify --deep of a format-1 backup",
    );
    let target = TestServer::start();
    let report = common::restore(&repo, &target, &["latest", "--verify"]);
    assert_eq!(report["verified"], true, "{report}");
    // CHECKSUM TABLE ... EXTENDED of the source when the fixture was written.
    assert_eq!(
        checksums(&target),
        [
            "`fx1`.`empty_one` 0",
            "`fx1`.`nokey` 2450878473",
            "`fx1`.`parted` 1403183823",
            "`fx1`.`plain` 3164426257",
            "`fx2`.`a` 2742102162",
            "`fx2`.`b` 922443000",
        ]
    );
    let view = target.sql("SELECT COUNT(*) FROM fx1.v_plain");
    assert_eq!(view.trim(), "9");
    let trigger =
        target.sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'fx1'");
    assert_eq!(trigger.trim(), "1");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
