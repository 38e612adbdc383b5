//! The PostgreSQL harness itself: start, password over TCP, trust over the socket, isolation,
//! cleanup.

use holdfast_testkit::{PgServer, PG_USER};

#[test]
fn starts_isolated_servers_and_cleans_up() {
    let a = PgServer::start();
    let b = PgServer::start();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.psql("SELECT current_user").trim(), PG_USER);
    let version = a.psql("SHOW server_version_num");
    assert!(
        version.trim().parse::<u32>().unwrap() >= 100_000,
        "{version}"
    );
    a.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    assert_eq!(a.psql("SELECT count(*) FROM t").trim(), "1");
    b.psql("SELECT 1");
    assert!(
        b.psql("SELECT to_regclass('t') IS NULL").trim() == "t",
        "servers share nothing"
    );
    // Over TCP a password is required (scram-sha-256).
    let hba = a.psql("SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1");
    assert_eq!(hba.trim(), "scram-sha-256");
    assert!(a.url().starts_with("postgres://holdfast@127.0.0.1:"));
    assert!(!a.url().contains(a.password()));
    let url = a.create_database("jobs");
    assert!(url.ends_with("/jobs"), "{url}");
    // PostgreSQL refuses root: started by root, it runs as `postgres`.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let pid = std::fs::read_to_string(a.dir().join("data/postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(!uid.split_whitespace().skip(1).any(|u| u == "0"), "{uid}");
    }
    let dir = a.dir().to_path_buf();
    drop(a);
    assert!(!dir.exists(), "the server's directory is removed on drop");
}
