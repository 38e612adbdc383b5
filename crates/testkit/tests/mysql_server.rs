//! The MySQL 5.7 flavor of the test server: GTIDs on, binlog like MariaDB's, each server its
//! own UUID, and a clear failure (never a skip) when MySQL is not installed.

use holdfast_testkit::{Flavor, ServerOptions, TestServer, MYSQL_BASEDIR_ENV};
use mysql_async::prelude::Queryable;
use std::time::Instant;

fn mysql() -> ServerOptions {
    ServerOptions {
        flavor: Flavor::MySql,
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn starts_mysql_57_with_gtids_on() {
    let t = Instant::now();
    let server = TestServer::start_with(mysql());
    eprintln!("mysql ready in {:?}", t.elapsed());
    assert_eq!(server.flavor(), Flavor::MySql);

    let mut conn = server.conn().await;
    let (version, gtid_mode, enforce): (String, String, String) = conn
        .query_first("SELECT @@version, @@gtid_mode, @@enforce_gtid_consistency")
        .await
        .unwrap()
        .unwrap();
    assert!(version.starts_with("5.7"), "unexpected version {version}");
    assert!(!version.contains("MariaDB"), "{version}");
    assert_eq!(gtid_mode, "ON");
    assert_eq!(enforce, "ON");
    let (port, log_bin, format, id, basename): (u16, u8, String, u32, String) = conn
        .query_first("SELECT @@port, @@log_bin, @@binlog_format, @@server_id, @@log_bin_basename")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(port, server.port());
    assert_eq!(log_bin, 1);
    assert_eq!(format, "ROW");
    assert_eq!(id, 1);
    assert!(basename.ends_with("/mysql-bin"), "{basename}");
    let (slave_updates, checksum, charset, local_infile): (u8, String, String, u8) = conn
        .query_first(
            "SELECT @@log_slave_updates, @@binlog_checksum, @@character_set_server, \
             @@local_infile",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slave_updates, 1);
    assert_eq!(checksum, "CRC32");
    assert_eq!(charset, "utf8mb4");
    assert_eq!(local_infile, 1);

    // A transaction gets a MySQL GTID (uuid:n) under this server's own UUID. (On 5.7 a bare
    // @@gtid_executed is the deprecated session value, empty outside a transaction.)
    conn.query_drop("CREATE DATABASE d").await.unwrap();
    let (uuid, executed): (String, String) = conn
        .query_first("SELECT @@server_uuid, @@GLOBAL.gtid_executed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(executed, format!("{uuid}:1"));
    conn.disconnect().await.unwrap();

    // The socket URL and the MariaDB client (TestServer::sql) work too.
    let mut sock = mysql_async::Conn::from_url(server.socket_url())
        .await
        .unwrap();
    let user: String = sock
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user, "root@localhost");
    sock.disconnect().await.unwrap();
    assert_eq!(server.sql("SELECT 1+1; SELECT 'a\tb'"), "2\na\\tb\n");
    assert!(server.error_log().contains("ready for connections"));
    assert!(server.datadir().join("mysql-bin.000001").is_file());
    // root over TCP has root@localhost's grants, as with MariaDB.
    assert_eq!(
        server.sql("SHOW GRANTS FOR 'root'@'127.0.0.1'"),
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION\n\
         GRANT PROXY ON ''@'' TO 'root'@'127.0.0.1' WITH GRANT OPTION\n"
    );
}

#[test]
fn mysql_servers_have_their_own_uuids_and_survive_kill_and_restart() {
    let mut a = TestServer::start_with(mysql());
    let b = TestServer::start_with(ServerOptions {
        server_id: 2,
        binlog: false,
        ..mysql()
    });
    let uuid_a = a.sql("SELECT @@server_uuid");
    assert_ne!(uuid_a, b.sql("SELECT @@server_uuid"));
    assert_eq!(
        b.sql("SELECT @@server_id, @@log_bin, @@gtid_mode"),
        "2\t0\tON\n"
    );

    a.sql(
        "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1),(2)",
    );
    a.kill();
    assert!(!a.is_running());
    a.restart();
    assert_eq!(a.sql("SELECT COUNT(*) FROM d.t"), "2\n");
    assert_eq!(a.sql("SELECT @@server_uuid"), uuid_a);
    a.options_mut().extra_args.push("--read-only=ON".into());
    a.restart();
    assert_eq!(a.sql("SELECT @@read_only"), "1\n");
    assert!(a.error_log().matches("ready for connections").count() >= 3);

    // start_on_datadir runs MySQL on a datadir it does not own.
    let datadir = a.dir().join("copy");
    a.stop();
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(a.datadir())
        .arg(&datadir)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_file(datadir.join("auto.cnf")).unwrap();
    let c = TestServer::start_on_datadir(&datadir, mysql());
    assert_eq!(c.sql("SELECT SUM(id) FROM d.t"), "3\n");
    drop(c);
    assert!(datadir.join("d").is_dir(), "the caller's datadir is kept");
}

#[test]
#[should_panic(expected = "unknown variable 'no-such-option-for-testkit=1'")]
fn a_bad_mysql_option_fails_loudly_with_the_error_log() {
    let _ = TestServer::start_with(ServerOptions {
        extra_args: vec!["--no-such-option-for-testkit=1".into()],
        ..mysql()
    });
}

/// Run only as a child of `missing_mysql_fails_naming_the_install_script`.
#[test]
#[ignore = "helper process for missing_mysql_fails_naming_the_install_script"]
fn missing_mysql_helper() {
    if std::env::var_os("HOLDFAST_TESTKIT_MISSING_MYSQL_HELPER").is_none() {
        return;
    }
    let _ = TestServer::start_with(mysql());
}

#[test]
fn missing_mysql_fails_naming_the_install_script() {
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "missing_mysql_helper",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("HOLDFAST_TESTKIT_MISSING_MYSQL_HELPER", "1")
        .env(MYSQL_BASEDIR_ENV, empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the helper must fail, not pass");
    assert!(
        stderr.contains("bash scripts/install-mysql.sh"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains(&empty.path().display().to_string()),
        "{stderr}"
    );
}
