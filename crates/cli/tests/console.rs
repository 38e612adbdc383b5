//! The web console end to end in a real headless Chromium (Debian's chromium and
//! chromium-driver, crates/testkit `Browser`): the real `holdfast daemon` process with its
//! API, sessions and audit log, a real MariaDB server and a real repository.
//!
//! An operator signs in, sees the server's real backup on the fleet dashboard, backs up now
//! from the console and watches the job succeed, runs a drill and sees it on the drill
//! dashboard; an auditor then finds the operator's trigger in the audit log, has no trigger or
//! cancel controls, and a POST forged from the auditor's own session (cookie and CSRF token) is
//! refused with 403. The dashboard and drill screenshots in docs/img/ are taken here.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{Browser, BrowserOptions, TestServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const JOB_WAIT: Duration = Duration::from_secs(240);

/// A daemon process with its own config, store and log.
struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl Daemon {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("holdfast.toml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Writes the config of one server and repository (no schedules: the console starts jobs).
    fn configure(repo: &Repo, server: &TestServer) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = holdfast_testkit::free_port();
        let config = format!(
            r#"
[daemon]
listen = "127.0.0.1:{port}"
state = "{state}"
lease = "5s"
shutdown_grace = "2s"

[[repository]]
name = "main"
url = "{repo}"

[[server]]
name = "db1"
source = "{source}"
repository = "main"
"#,
            state = dir.path().join("state.db").display(),
            repo = repo.url(),
            source = server.url(),
        );
        let d = Daemon {
            dir,
            child: None,
            port,
        };
        std::fs::write(d.config_path(), config).unwrap();
        d
    }

    /// `holdfast user add NAME --role ROLE --config FILE`, the password as two lines on stdin.
    fn add_user(&self, name: &str, role: &str, password: &str) {
        let mut child = Command::new(bin())
            .args(["user", "add", name, "--role", role, "--config"])
            .arg(self.config_path())
            .env("HOME", "/nonexistent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run holdfast user add");
        write!(child.stdin.take().unwrap(), "{password}\n{password}\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_ok(&out, &format!("user add {name}"));
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new(bin())
            .args(["--log-format", "json", "daemon", "--config"])
            .arg(self.config_path())
            .env_remove("MYSQL_PWD")
            .env_remove("HOLDFAST_PASSWORD")
            .env("HOME", "/nonexistent")
            // The drill's throwaway server goes here, removed with the test.
            .env("TMPDIR", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start holdfast daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon not listening within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// docs/img/NAME in the source tree: the screenshots the documentation shows.
fn doc_image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/img")
        .join(name)
}

async fn sign_in(b: &Browser, base: &str, user: &str, password: &str) {
    b.goto(&format!("{base}/login")).await;
    b.type_into("#user", user).await;
    b.type_into("#password", password).await;
    b.click("#login-submit", WAIT).await;
    b.wait_for(
        &format!("{user} signed in"),
        &format!(
            "location.pathname === '/' && document.querySelector('#who .user') && document.querySelector('#who .user').textContent === {}",
            json!(user)
        ),
        WAIT,
    )
    .await;
}

async fn sign_out(b: &Browser) {
    b.click("#logout", WAIT).await;
    b.wait_for(
        "the sign-in page",
        "location.pathname === '/login' && document.getElementById('user')",
        WAIT,
    )
    .await;
}

/// An API request from the page, with the page's session cookie: status and JSON body.
async fn page_fetch(b: &Browser, method: &str, path: &str, body: Value, csrf: Value) -> Value {
    b.eval_async(
        "const [method, path, body, csrf, done] = arguments;
         const headers = {'Content-Type': 'application/json'};
         if (csrf) headers['X-CSRF-Token'] = csrf;
         fetch(path, {method, headers, credentials: 'same-origin',
                      body: method === 'GET' ? undefined : JSON.stringify(body)})
           .then(async r => done({status: r.status, body: await r.json().catch(() => null)}))
           .catch(e => done({status: 0, body: String(e)}));",
        vec![json!(method), json!(path), body, csrf],
    )
    .await
}

/// The job page: waits until the job ends, and returns its final state.
async fn wait_job_end(b: &Browser, what: &str) -> String {
    let state = b
        .wait_for(
            what,
            "(() => { const s = document.querySelector('#job-state'); const v = s && s.dataset.state;
                      return ['succeeded', 'failed', 'cancelled', 'timed-out'].includes(v) ? v : null; })()",
            JOB_WAIT,
        )
        .await;
    state.as_str().unwrap().to_string()
}

fn backups(repo: &Repo) -> Vec<String> {
    let out = holdfast(&["--json", "list", "--repo", &repo.url()]);
    assert_ok(&out, "list");
    json(&out)["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_backs_up_from_the_console_and_the_auditor_sees_it_but_cannot_act() {
    let server = TestServer::start();
    server.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT);
         INSERT INTO shop.orders SELECT seq, CONCAT('item-', seq), seq % 7 FROM shop.seq_1_to_2000;",
    );
    let repo = Repo::init();
    let first = backup(&repo, &server, &[]);
    let first_id = first["id"].as_str().unwrap().to_string();
    let mut d = Daemon::configure(&repo, &server);
    d.add_user("olga", "operator", "operator-password-1");
    d.add_user("ann", "auditor", "auditor-password-1");
    d.start();
    let base = d.base();

    // ---- the operator
    let b = Browser::start_with(BrowserOptions {
        width: 1280,
        height: 860,
    })
    .await;
    sign_in(&b, &base, "olga", "operator-password-1").await;
    // The fleet dashboard shows the real server with its real backup.
    let shown = b
        .wait_for(
            "db1 with its backup on the dashboard",
            "(() => { const c = document.querySelector('#servers li[data-server=db1]');
                      const a = c && c.querySelector('.last-backup a');
                      return a ? a.getAttribute('href') : null; })()",
            WAIT,
        )
        .await;
    assert!(
        shown.as_str().unwrap().ends_with(&first_id),
        "the dashboard links {shown}, the repository holds {first_id}"
    );
    b.screenshot(&doc_image("console-dashboard.png")).await;

    // Back up now: the console posts the job and follows it to success.
    b.click(
        "#servers li[data-server=db1] button[data-action=trigger]",
        WAIT,
    )
    .await;
    let job_url = b
        .wait_for(
            "the job page",
            "/^#\\/jobs\\/\\d+$/.test(location.hash) && location.hash",
            WAIT,
        )
        .await;
    let job_id: i64 = job_url.as_str().unwrap()["#/jobs/".len()..]
        .parse()
        .unwrap();
    let state = wait_job_end(&b, "the triggered backup").await;
    assert_eq!(state, "succeeded", "daemon log:\n{}", d.log());
    let transitions = b
        .eval(
            "return [...document.querySelectorAll('main table tbody tr td:nth-child(3)')].map(t => t.textContent)",
            vec![],
        )
        .await;
    assert_eq!(
        transitions,
        json!(["queued", "running", "succeeded"]),
        "transitions shown"
    );
    let now = backups(&repo);
    assert_eq!(now.len(), 2, "a second backup in the repository: {now:?}");
    let second_id = now.iter().find(|i| **i != first_id).unwrap().clone();
    // It is listed in the console too.
    b.goto(&format!("{base}/#/backups")).await;
    b.wait_for(
        "the new backup in the list",
        &format!(
            "document.querySelector('#backups tr[data-backup={}]')",
            json!(second_id)
        ),
        WAIT,
    )
    .await;

    // A drill from the jobs page, then the drill dashboard.
    b.goto(&format!("{base}/#/jobs")).await;
    b.wait_for(
        "the job form",
        "document.querySelector('#trigger-kind')",
        WAIT,
    )
    .await;
    b.eval(
        "const k = document.querySelector('#trigger-kind'); k.value = 'drill'; k.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await;
    b.click("form.trigger button[data-action=trigger]", WAIT)
        .await;
    b.wait_for(
        "the drill job page",
        "/^#\\/jobs\\/\\d+$/.test(location.hash)",
        WAIT,
    )
    .await;
    let state = wait_job_end(&b, "the drill").await;
    assert_eq!(state, "succeeded", "daemon log:\n{}", d.log());
    b.goto(&format!("{base}/#/drills")).await;
    let rate = b
        .wait_for(
            "the drill report",
            "(() => { const t = [...document.querySelectorAll('.tile')].find(e => e.querySelector('.tile-label').textContent === 'Success rate');
                      return t && t.querySelector('.tile-value').textContent; })()",
            WAIT,
        )
        .await;
    assert_eq!(rate, "100.0 %");
    b.wait_for(
        "the RTO trend",
        "document.querySelector('svg.trend rect.bar')",
        WAIT,
    )
    .await;
    b.screenshot_full(&doc_image("console-drills.png")).await;

    // The dashboard on a phone.
    b.resize(390, 844).await;
    b.goto(&format!("{base}/#/")).await;
    b.wait_for(
        "the phone dashboard",
        "document.querySelector('#servers li[data-server=db1]')",
        WAIT,
    )
    .await;
    let wide = b
        .eval(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await;
    assert_eq!(wide, true, "the dashboard scrolls sideways on a phone");
    b.screenshot(&doc_image("console-phone.png")).await;
    b.resize(1280, 860).await;
    sign_out(&b).await;

    // ---- the auditor
    sign_in(&b, &base, "ann", "auditor-password-1").await;
    b.wait_for(
        "db1 on the auditor's dashboard",
        "document.querySelector('#servers li[data-server=db1] .last-backup a')",
        WAIT,
    )
    .await;
    let controls = b
        .eval(
            "return document.querySelectorAll('[data-action]').length",
            vec![],
        )
        .await;
    assert_eq!(controls, 0, "the auditor sees trigger buttons");
    b.goto(&format!("{base}/#/jobs")).await;
    b.wait_for(
        "the jobs list",
        &format!("document.querySelector('#jobs tr[data-job=\"{job_id}\"]')"),
        WAIT,
    )
    .await;
    let controls = b
        .eval(
            "return document.querySelectorAll('[data-action], form.trigger').length",
            vec![],
        )
        .await;
    assert_eq!(controls, 0, "the auditor sees job controls");

    // The audit log names the operator's trigger of the backup.
    b.goto(&format!("{base}/#/audit")).await;
    let entry = b
        .wait_for(
            "the operator's trigger in the audit log",
            "[...document.querySelectorAll('#audit tbody tr')].map(r => r.innerText).find(t => /olga/.test(t) && /db1/.test(t) && /job/i.test(t) && /backup/i.test(t))",
            WAIT,
        )
        .await;
    eprintln!("audit entry: {entry}");

    // A POST forged from the auditor's own session, with its cookie and CSRF token: 403.
    let me = page_fetch(&b, "GET", "/api/v1/me", Value::Null, Value::Null).await;
    assert_eq!(me["status"], 200, "{me}");
    assert_eq!(me["body"]["role"], "auditor", "{me}");
    let csrf = me["body"]["csrf_token"].clone();
    assert!(csrf.is_string(), "the session's CSRF token: {me}");
    let jobs_before = page_fetch(&b, "GET", "/api/v1/jobs", Value::Null, Value::Null).await;
    let forged = page_fetch(
        &b,
        "POST",
        "/api/v1/jobs",
        json!({"server": "db1", "kind": "backup"}),
        csrf.clone(),
    )
    .await;
    assert_eq!(forged["status"], 403, "{forged}");
    assert_eq!(forged["body"]["error"]["code"], "forbidden", "{forged}");
    let cancel = page_fetch(
        &b,
        "POST",
        &format!("/api/v1/jobs/{job_id}/cancel"),
        json!({}),
        csrf,
    )
    .await;
    assert_eq!(cancel["status"], 403, "{cancel}");
    let jobs_after = page_fetch(&b, "GET", "/api/v1/jobs", Value::Null, Value::Null).await;
    assert_eq!(
        jobs_before["body"]["items"].as_array().map(Vec::len),
        jobs_after["body"]["items"].as_array().map(Vec::len),
        "the forged request started a job"
    );
    assert_eq!(backups(&repo).len(), 2);
    let errors: Vec<String> = b
        .console()
        .await
        .into_iter()
        .filter(|l| l.starts_with("SEVERE") && !l.contains("403"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
}
