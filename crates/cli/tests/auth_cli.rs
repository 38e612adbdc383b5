//! `holdfast user`, `holdfast token` and `holdfast audit`, end to end: the real binary on a
//! daemon config whose store is a real SQLite file, which the test also edits directly to
//! tamper with the audit log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

struct Env {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\nstate = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    Env {
        _dir: dir,
        config,
        db,
    }
}

/// Runs holdfast with `args` and `--config`, `stdin` piped in.
fn holdfast(env: &Env, args: &[&str], stdin: &str) -> Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .arg("--config")
        .arg(&env.config)
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run holdfast");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn sql(db: &Path, statement: &str) -> u64 {
    use sqlx::Executor;
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(db))
            .await
            .unwrap();
    let n = pool.execute(statement).await.unwrap().rows_affected();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_tokens_and_the_audit_chain() {
    let e = env();
    let pw = "a long enough password\na long enough password\n";

    // Users: the password from two stdin lines, never argv.
    let o = holdfast(&e, &["user", "add", "root", "--role", "admin"], pw);
    assert_eq!(code(&o), 0, "{}", show(&o));
    for (args, stdin, want, says) in [
        (
            vec!["user", "add", "root", "--role", "admin"],
            pw,
            2,
            "exists already",
        ),
        (
            vec!["user", "add", "olga", "--role", "boss"],
            pw,
            2,
            "not one of admin",
        ),
        (
            vec!["user", "add", "olga", "--role", "operator"],
            "one password here\nanother password\n",
            2,
            "differ",
        ),
        (
            vec!["user", "add", "olga", "--role", "operator"],
            "short\nshort\n",
            2,
            "at least 12",
        ),
        (
            vec!["user", "add", "olga", "--role", "operator"],
            "only one line here\n",
            2,
            "two lines",
        ),
        (
            vec!["user", "add", "bad name", "--role", "operator"],
            pw,
            2,
            "not valid",
        ),
        (vec!["user", "passwd", "nobody"], pw, 7, "does not exist"),
        (vec!["user", "disable", "root"], "", 2, "last enabled admin"),
        (
            vec!["token", "create", "--user", "nobody"],
            "",
            7,
            "does not exist",
        ),
        (
            vec!["token", "create", "--user", "root", "--expires", "soon"],
            "",
            2,
            "duration",
        ),
        (
            vec!["token", "revoke", "ffffffffffff"],
            "",
            7,
            "does not exist",
        ),
    ] {
        let o = holdfast(&e, &args, stdin);
        assert_eq!(code(&o), want, "{args:?}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            show(&o)
        );
    }
    let o = holdfast(&e, &["user", "add", "olga", "--role", "operator"], pw);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = holdfast(
        &e,
        &["user", "passwd", "olga"],
        "another long password\nanother long password\n",
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = holdfast(&e, &["user", "disable", "olga"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = holdfast(&e, &["--json", "user", "list"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["name"], "olga");
    assert_eq!(users[0]["disabled"], true);
    assert_eq!(users[1]["role"], "admin");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !text.contains("argon2") && !text.contains("long enough"),
        "{text}"
    );

    // Tokens: shown once on the last line, listed without secrets, revoked.
    let o = holdfast(
        &e,
        &[
            "token",
            "create",
            "--user",
            "root",
            "--role",
            "auditor",
            "--expires",
            "30d",
        ],
        "",
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let token = out.lines().last().unwrap().to_string();
    assert!(token.starts_with("hf_") && token.len() == 59, "{out}");
    let id = token[3..15].to_string();
    let o = holdfast(&e, &["token", "list", "--json"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        listed.contains(&id) && listed.contains("\"active\""),
        "{listed}"
    );
    assert!(!listed.contains(&token[16..]), "a secret listed: {listed}");
    let o = holdfast(&e, &["token", "revoke", &id], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = holdfast(&e, &["--json", "token", "list"], "");
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"revoked\""));

    // The audit log: every change above, verifying; exported as JSON lines.
    let o = holdfast(&e, &["audit", "verify"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = holdfast(&e, &["audit", "export"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let actions: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["action"].as_str().unwrap(), l["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("user.add", "root"),
            ("user.add", "olga"),
            ("user.update", "olga"),
            ("user.update", "olga"),
            ("token.create", id.as_str()),
            ("token.revoke", id.as_str()),
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["actor"] == "cli:tester" && l["source"] == "local"));
    let exported = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!exported.contains(&token[16..]) && !exported.contains("long enough"));
    let o = holdfast(
        &e,
        &["audit", "export", "--since", "2999-01-01T00:00:00Z"],
        "",
    );
    assert_eq!((code(&o), o.stdout.len()), (0, 0), "{}", show(&o));
    let o = holdfast(&e, &["audit", "export", "--since", "yesterday"], "");
    assert_eq!(code(&o), 2, "{}", show(&o));

    // Edited in the file: exit 24 naming the entry; put back, it verifies again.
    assert_eq!(
        sql(
            &e.db,
            "UPDATE audit_log SET detail = 'role auditor' WHERE seq = 2"
        )
        .await,
        1
    );
    let o = holdfast(&e, &["audit", "verify"], "");
    assert_eq!(code(&o), 24, "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("at entry 2"),
        "{}",
        show(&o)
    );
    let o = holdfast(&e, &["--json", "audit", "verify"], "");
    assert_eq!(code(&o), 24);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (report["valid"].as_bool(), report["first_bad_seq"].as_i64()),
        (Some(false), Some(2))
    );
    assert_eq!(
        sql(
            &e.db,
            "UPDATE audit_log SET detail = 'role operator' WHERE seq = 2"
        )
        .await,
        1
    );
    let o = holdfast(&e, &["audit", "verify"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));

    // Deleted: exit 24 naming the missing entry.
    assert_eq!(sql(&e.db, "DELETE FROM audit_log WHERE seq = 4").await, 1);
    let o = holdfast(&e, &["audit", "verify"], "");
    assert_eq!(code(&o), 24, "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("at entry 4") && err.contains("removed"),
        "{}",
        show(&o)
    );
}

/// The real daemon with `tls_cert`/`tls_key`: HTTPS, the auth routes mounted, the session
/// cookie `Secure`, the client's address in the audit log; SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_the_auth_routes_over_https() {
    let e = env();
    let dir = e.config.parent().unwrap().to_path_buf();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.key_pair.serialize_pem()).unwrap();
    let port = holdfast_testkit::free_port();
    std::fs::write(
        &e.config,
        format!(
            "[daemon]\nlisten = \"127.0.0.1:{port}\"\nstate = \"{}\"\ntls_cert = \"{}\"\n\
             tls_key = \"{}\"\n",
            e.db.display(),
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    )
    .unwrap();
    let o = holdfast(
        &e,
        &["user", "add", "olga", "--role", "operator"],
        "olga's long password\nolga's long password\n",
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = holdfast(&e, &["daemon", "--check-config"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("127.0.0.1:{port} https")));

    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["daemon", "--config"])
        .arg(&e.config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(c.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not answer: {}",
            std::fs::read_to_string(dir.join("daemon.log")).unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = client
        .post(format!("{base}/api/v1/session"))
        .header("content-type", "application/json")
        .body(r#"{"user": "olga", "password": "olga's long password"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let me = client
        .get(format!("{base}/api/v1/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    assert!(me.text().await.unwrap().contains("\"operator\""));
    let no_creds = client
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_creds.status().as_u16(), 401);

    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().unwrap();
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(dir.join("daemon.log")).unwrap()
    );
    let o = holdfast(&e, &["audit", "export"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    let login = out
        .lines()
        .find(|l| l.contains("session.login"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        login.contains("\"source\":\"127.0.0.1\"") && login.contains("\"result\":\"ok\""),
        "{login}"
    );
    let o = holdfast(&e, &["audit", "verify"], "");
    assert_eq!(code(&o), 0, "{}", show(&o));
}
