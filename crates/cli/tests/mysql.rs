//! MySQL 5.7 sources and targets beyond the round trips shared with MariaDB (roundtrip.rs and
//! consistency.rs run those on both flavors): what the manifest records, list/info/verify,
//! accounts, and the refusals: a restore across flavors, a physical backup without xtrabackup.

mod common;

use common::*;
use holdfast_testkit::{Flavor, ServerOptions, TestServer};

fn mysql() -> TestServer {
    TestServer::start_with(ServerOptions {
        flavor: Flavor::MySql,
        ..ServerOptions::default()
    })
}

const SHOP: &str = "CREATE DATABASE shop; \
    CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), doc JSON); \
    INSERT INTO shop.items VALUES (1, 'a', '{\"k\": 1}'), (2, 'b', NULL), (3, 'ü', '[1, \"x\"]');";

#[test]
fn manifest_records_flavor_version_and_gtid_executed() {
    let source = mysql();
    source.sql(SHOP);
    let repo = Repo::init();
    let summary = backup(&repo, &source, &[]);
    assert_eq!(summary["rows"], 3, "{summary}");
    // Nothing written since: the recorded set is the server's whole gtid_executed.
    let executed = source
        .sql("SELECT @@GLOBAL.gtid_executed")
        .replace(['\n', ' '], "");
    let uuid = source.sql("SELECT @@server_uuid").trim().to_string();
    assert!(executed.starts_with(&format!("{uuid}:1-")), "{executed}");

    let manifest = repo.manifest("latest");
    assert_eq!(manifest["server"]["flavor"], "mysql");
    assert_eq!(
        manifest["server"]["version"],
        source.sql("SELECT @@version").trim()
    );
    assert_eq!(manifest["server"]["server_uuid"], uuid.as_str());
    assert_eq!(manifest["consistent_point"]["gtid_set"], executed.as_str());
    assert_eq!(
        manifest["consistent_point"]["binlog_file"],
        "mysql-bin.000001"
    );

    let list = holdfast(&["list", "--repo", &repo.url(), "--json"]);
    assert_ok(&list, "list");
    let list = json(&list)["backups"].clone();
    assert_eq!(list[0]["server"]["flavor"], "mysql", "{list}");
    assert_eq!(list[0]["consistent_point"]["gtid_set"], executed.as_str());
    let info = holdfast(&["info", "--repo", &repo.url(), "latest"]);
    assert_ok(&info, "info");
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("server            mysql 5.7."), "{text}");
    assert!(text.contains(&format!("GTID {executed}")), "{text}");
    let verify = holdfast(&["verify", "--repo", &repo.url(), "latest", "--deep"]);
    assert_ok(&verify, "verify --deep");
}

#[test]
fn accounts_and_grants_round_trip_on_mysql() {
    let source = mysql();
    let target = mysql();
    source.sql(&format!(
        "{SHOP} CREATE USER 'reader'@'%' IDENTIFIED BY 's3cret'; \
         GRANT SELECT ON shop.* TO 'reader'@'%'; \
         GRANT UPDATE (name) ON shop.items TO 'reader'@'%'; \
         CREATE PROCEDURE shop.p() SELECT 1; \
         GRANT EXECUTE ON PROCEDURE shop.p TO 'reader'@'%';"
    ));
    let repo = Repo::init();
    backup(&repo, &source, &["--users"]);
    assert_eq!(repo.manifest("latest")["includes_users"], true);
    restore(&repo, &target, &["--verify"]);
    for q in [
        "SHOW GRANTS FOR 'reader'@'%'",
        "SHOW CREATE USER 'reader'@'%'",
        "SELECT id, name, doc FROM shop.items ORDER BY id",
    ] {
        assert_eq!(source.sql(q), target.sql(q), "{q}");
    }
    // The system accounts of the target are its own: none was dumped or replaced.
    assert_eq!(
        target.sql("SELECT COUNT(*) FROM mysql.user WHERE User IN ('mysql.sys', 'mysql.session')"),
        "2\n"
    );
}

/// A logical backup restores only into a server of its own flavor: the other one is refused
/// with exit 14 before anything changes, both ways.
#[test]
fn restore_across_flavors_is_refused_before_anything_changes() {
    let my = mysql();
    let maria = TestServer::start();
    for server in [&my, &maria] {
        server.sql(SHOP);
    }
    let from_mysql = Repo::init();
    backup(&from_mysql, &my, &[]);
    let from_maria = Repo::init();
    backup(&from_maria, &maria, &[]);

    for (repo, target, source_name, target_name) in [
        (&from_mysql, &maria, "MySQL 5.7", "MariaDB 10."),
        (&from_maria, &my, "MariaDB 10.", "MySQL 5.7"),
    ] {
        let before = target.sql("SHOW DATABASES");
        let out = holdfast(&[
            "restore",
            "--repo",
            &repo.url(),
            "--target",
            &target.url(),
            "latest",
            "--rename-db",
            "shop:shop_copy",
            "--drop-existing",
        ]);
        assert_code(&out, 14, "restore into the other flavor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("was taken from {source_name}"))
                && stderr.contains(&format!("the target is {target_name}"))
                && stderr.contains("same flavor")
                && stderr.contains("nothing was changed"),
            "{}",
            text(&out)
        );
        assert_eq!(target.sql("SHOW DATABASES"), before, "the target changed");
    }
}

/// Physical backups of MySQL need Percona XtraBackup, which is not installed here: a clear usage
/// error, and no backup in the repository.
#[test]
fn physical_backup_of_mysql_without_xtrabackup_is_a_clear_error() {
    let source = mysql();
    source.sql(SHOP);
    let repo = Repo::init();
    let out = holdfast(&[
        "backup",
        "--repo",
        &repo.url(),
        "--source",
        &source.url(),
        "--engine",
        "physical",
    ]);
    assert_code(&out, 2, "physical backup of MySQL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("xtrabackup"), "{}", text(&out));
    let list = holdfast(&["list", "--repo", &repo.url(), "--json"]);
    assert_ok(&list, "list");
    assert_eq!(
        json(&list)["backups"],
        serde_json::json!([]),
        "a backup was committed"
    );
}
