//! The test server harness itself: start, connect, kill/restart, isolation, cleanup.

use holdfast_testkit::{require_binaries, ServerOptions, TestServer};
use mysql_async::prelude::Queryable;
use std::time::Instant;

#[tokio::test]
async fn starts_and_reports_version_over_tcp_and_socket() {
    require_binaries();
    let t = Instant::now();
    let server = TestServer::start();
    eprintln!("server ready in {:?}", t.elapsed());

    let mut conn = server.conn().await;
    let version: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
    assert!(version.contains("MariaDB"), "unexpected version {version}");
    let (port, log_bin, format, id): (u16, u8, String, u32) = conn
        .query_first("SELECT @@port, @@log_bin, @@binlog_format, @@server_id")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(port, server.port());
    assert_eq!(log_bin, 1);
    assert_eq!(format, "ROW");
    assert_eq!(id, 1);
    conn.disconnect().await.unwrap();

    // Explicit TCP (no switch to the socket) and the socket URL both work for root.
    let opts =
        mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&server.url()).unwrap())
            .prefer_socket(false);
    let mut tcp = mysql_async::Conn::new(opts).await.unwrap();
    let user: String = tcp
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user, "root@127.0.0.1");
    tcp.disconnect().await.unwrap();
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
    assert!(server.socket().as_os_str().len() < 100);
    assert!(server.error_log().contains("ready for connections"));
    // The readiness probe logs in and quits cleanly: no aborted-connection noise.
    assert_eq!(
        server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_connects'"),
        "Aborted_connects\t0\n"
    );
    assert!(!server.error_log().contains("Aborted connection"));
}

#[tokio::test]
async fn kill_and_restart_keep_committed_data() {
    let mut server = TestServer::start();
    let port = server.port();
    server.sql("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO d.t VALUES (1),(2),(3)");

    server.kill();
    assert!(!server.is_running());
    let refused = mysql_async::Conn::from_url(server.url()).await;
    assert!(refused.is_err(), "a killed server must refuse connections");

    server.restart();
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_eq!(server.sql("SELECT COUNT(*) FROM d.t").trim(), "3");
    let mut conn = server.conn().await;
    let n: i64 = conn
        .query_first("SELECT SUM(id) FROM d.t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 6);
    conn.disconnect().await.unwrap();

    // A clean stop/start (restart of a running server) also works, with changed options.
    server
        .options_mut()
        .extra_args
        .push("--read-only=ON".into());
    server.restart();
    assert_eq!(server.sql("SELECT @@read_only").trim(), "1");
    // Both starts are in the error log; the crash recovery shows too.
    assert!(server.error_log().matches("ready for connections").count() >= 3);
}

#[tokio::test]
async fn two_servers_are_isolated() {
    let a = TestServer::start();
    let b = TestServer::start_with(ServerOptions {
        server_id: 2,
        binlog: false,
        ..ServerOptions::default()
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.socket(), b.socket());
    assert_ne!(a.datadir(), b.datadir());
    a.sql("CREATE DATABASE only_on_a");
    assert!(b.sql("SHOW DATABASES LIKE 'only_on_a'").is_empty());
    assert_eq!(b.sql("SELECT @@server_id, @@log_bin"), "2\t0\n");
    assert_eq!(a.sql("SELECT @@server_id, @@log_bin"), "1\t1\n");
}

#[test]
fn drop_kills_the_server_and_removes_its_directory() {
    let server = TestServer::start();
    let dir = server.dir().to_path_buf();
    let datadir = server.datadir().to_path_buf();
    let pid = server.pid().unwrap() as libc::pid_t;
    assert!(datadir.join("mysql").is_dir());
    assert!(datadir.join("mysql-bin.000001").is_file());
    drop(server);
    assert!(!dir.exists(), "{} still exists", dir.display());
    // The process is gone (reaped), not a zombie.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "mariadbd {pid} still alive after drop");
}

#[test]
#[should_panic(expected = "unknown variable 'no-such-option-for-testkit=1'")]
fn a_bad_option_fails_loudly_with_the_error_log() {
    let _ = TestServer::start_with(ServerOptions {
        extra_args: vec!["--no-such-option-for-testkit=1".into()],
        ..ServerOptions::default()
    });
}

/// Run only as a child of `servers_die_with_a_killed_test_process`.
#[test]
#[ignore = "helper process for servers_die_with_a_killed_test_process"]
fn orphan_helper() {
    if std::env::var_os("HOLDFAST_TESTKIT_ORPHAN_HELPER").is_none() {
        return;
    }
    // One server forked from the test thread, one from a thread that exits right away.
    let a = TestServer::start();
    let b = std::thread::spawn(TestServer::start).join().unwrap();
    println!(
        "SERVERS {} {} {} {}",
        a.pid().unwrap(),
        a.dir().display(),
        b.pid().unwrap(),
        b.dir().display()
    );
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn servers_die_with_a_killed_test_process() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["orphan_helper", "--exact", "--ignored", "--nocapture"])
        .env("HOLDFAST_TESTKIT_ORPHAN_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("SERVERS "))
        .expect("helper printed no SERVERS line");
    let fields: Vec<&str> = line[8..].split(' ').collect();
    let pids: Vec<u32> = [fields[0], fields[2]]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    // The server started from the short-lived thread is still up.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(pids.iter().all(|p| process_alive(*p)));

    child.kill().unwrap(); // SIGKILL: no destructors run
    child.wait().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while pids.iter().any(|p| process_alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "servers {pids:?} outlived their killed test process"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Their directories stay behind (no destructor ran) until the next sweep; tidy up now.
    for dir in [fields[1], fields[3]] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(") ").next().unwrap_or("").chars().next();
            state != Some('Z') && state != Some('X')
        })
        .unwrap_or(false)
}

#[test]
#[should_panic(expected = "could not start after 5 attempts; last: port")]
fn a_taken_port_is_detected_and_retried() {
    // `--port` in extra_args overrides the chosen free port, so every attempt collides.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let _ = TestServer::start_with(ServerOptions {
        extra_args: vec![format!("--port={port}")],
        ..ServerOptions::default()
    });
}
