//! The web console in a real headless Chromium (Debian's chromium and chromium-driver,
//! crates/testkit `Browser`) against the real `holdfast daemon` process with its API, sessions
//! and audit log, real MariaDB servers and real repositories: nothing stands in for the daemon.
//!
//! - `operator_backs_up_from_the_console_and_the_auditor_sees_it_but_cannot_act`: an operator
//!   signs in, sees the server's real backup on the fleet dashboard, backs up now from the
//!   console and watches the job succeed, runs a drill and sees it on the drill dashboard; an
//!   auditor then finds the operator's trigger in the audit log, has no trigger or cancel
//!   controls, and a POST forged from the auditor's own session (cookie and CSRF token) is
//!   refused with 403. The dashboard and drill screenshots in docs/img/ are taken here.
//! - `every_page_renders_on_a_phone_and_a_laptop`: every page (with a real backup and a real
//!   job) shows its heading without a script error and never scrolls sideways, at 375 × 740 and
//!   1280 × 900; the fleet puts the server with problems (its source a port where nothing
//!   listens) first. `HOLDFAST_CONSOLE_SHOTS=DIR` saves a screenshot of every page there.
//! - `controls_follow_the_role`: with real jobs succeeded, failed, cancelled, running (held up
//!   by the test's own backup lock on the server) and queued behind it, an operator sees the job
//!   form and Cancel on the running and queued ones only, and the production restore target
//!   disabled; an auditor sees no controls at all; each sees the navigation of their role.
//! - `sign_in_with_the_keyboard`: the daemon's real sign-in with the keyboard only (a wrong
//!   password is reported and keeps the focus), the focus ring, Tab through the navigation.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_testkit::{Browser, BrowserOptions, TestServer};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const JOB_WAIT: Duration = Duration::from_secs(240);
/// The states a job ends in.
const ENDED: [&str; 4] = ["succeeded", "failed", "cancelled", "timed-out"];

/// `[[repository]]` of a daemon config.
fn repository_toml(name: &str, url: &str) -> String {
    format!("\n[[repository]]\nname = \"{name}\"\nurl = \"{url}\"\n")
}

/// `[[server]]` of a daemon config (no schedules: the tests start jobs).
fn server_toml(name: &str, source: &str, repository: &str) -> String {
    format!(
        "\n[[server]]\nname = \"{name}\"\nsource = \"{source}\"\nrepository = \"{repository}\"\n"
    )
}

/// `[[restore_target]]` of a daemon config.
fn restore_target_toml(name: &str, url: &str, production: bool) -> String {
    format!("\n[[restore_target]]\nname = \"{name}\"\nurl = \"{url}\"\nproduction = {production}\n")
}

/// A source on a loopback port where nothing listens: a server that cannot be reached.
fn unreachable_source() -> String {
    format!("mysql://root@127.0.0.1:{}/", holdfast_testkit::free_port())
}

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

    /// Writes a config: the `[daemon]` table (a free loopback port, the store in the daemon's
    /// own directory, short lease and grace), then `sections` (repositories, servers, restore
    /// targets).
    fn with_config(sections: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = holdfast_testkit::free_port();
        let config = format!(
            r#"
[daemon]
listen = "127.0.0.1:{port}"
state = "{state}"
lease = "5s"
shutdown_grace = "2s"
{sections}"#,
            state = dir.path().join("state.db").display(),
        );
        let d = Daemon {
            dir,
            child: None,
            port,
        };
        std::fs::write(d.config_path(), config).unwrap();
        d
    }

    /// The config of one server `db1` and its repository `main`.
    fn configure(repo: &Repo, server: &TestServer) -> Daemon {
        Daemon::with_config(
            &[
                repository_toml("main", &repo.url()),
                server_toml("db1", &server.url(), "main"),
            ]
            .concat(),
        )
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

    /// The API as `user`, with a token of theirs made by `holdfast token create`.
    fn api(&self, user: &str) -> Api {
        let config = self.config_path().display().to_string();
        let out = holdfast(&[
            "--json", "token", "create", "--user", user, "--config", &config,
        ]);
        assert_ok(&out, &format!("token create for {user}"));
        Api {
            base: self.base(),
            token: json(&out)["token"].as_str().unwrap().to_string(),
            client: reqwest::Client::new(),
        }
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

/// The daemon's HTTP API as one user (`Authorization: Bearer`), to set the scene the browser
/// then looks at.
struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// `POST /api/v1/jobs`: queues a `kind` job of `server` now; its id.
    async fn start_job(&self, server: &str, kind: &str) -> i64 {
        let (status, v) = self
            .call(
                "POST",
                "/api/v1/jobs",
                Some(json!({"server": server, "kind": kind})),
            )
            .await;
        assert_eq!(status, 201, "start a {kind} of {server}: {v}");
        v["id"].as_i64().unwrap()
    }

    async fn cancel(&self, id: i64) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(json!({})),
        )
        .await
    }

    /// Polls job `id` until its state is one of `states`; its detail. Panics with the job and
    /// its log when it is not within `within`.
    async fn wait_state(&self, id: i64, states: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.get(&format!("/api/v1/jobs/{id}")).await;
            if states.contains(&job["state"].as_str().unwrap()) {
                return job;
            }
            if Instant::now() > deadline {
                let log = self.get(&format!("/api/v1/jobs/{id}/log")).await;
                panic!("job {id} not {states:?} within {within:?}: {job}\nlog: {log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a `kind` job of `server` to its end; its id, after checking it ended `want`.
    async fn run_job(&self, server: &str, kind: &str, want: &str) -> i64 {
        let id = self.start_job(server, kind).await;
        let job = self.wait_state(id, &ENDED, JOB_WAIT).await;
        assert_eq!(job["state"], want, "{kind} of {server}: {job}");
        id
    }

    /// Waits until the daemon's fleet view (what its repository refresh last read) passes
    /// `ok`, so the pages show that from the first look; its servers.
    async fn wait_fleet(&self, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        // The refresh runs at start, after every job, and every 30 s.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let servers = self.get("/api/v1/servers").await;
            let items = servers["items"].as_array().unwrap();
            if ok(items) {
                return items.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the fleet: not {what} within 60 s: {servers}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
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

/// The browser console's errors (`SEVERE` lines) since the last look.
async fn severe(b: &Browser) -> Vec<String> {
    b.console()
        .await
        .into_iter()
        .filter(|l| l.starts_with("SEVERE"))
        .collect()
}

/// The navigation entries the signed-in user's role shows.
async fn visible_nav(b: &Browser) -> Value {
    b.eval(
        "return [...document.querySelectorAll('#nav li')].filter(l => !l.hidden).map(l => l.textContent.trim())",
        vec![],
    )
    .await
}

/// Opens `hash`, waits for its heading and checks the page: no script error, no sideways
/// scrolling of the page itself (wide tables scroll inside their own box).
/// `HOLDFAST_CONSOLE_SHOTS=DIR` keeps a screenshot of the whole page there, to look at the
/// layout (`WIDTH-PAGE.png`).
async fn check_page(b: &Browser, base: &str, hash: &str) {
    b.goto(&format!("{base}/{hash}")).await;
    b.wait_for(
        &format!("{hash}: heading"),
        "document.querySelector('main h1') && !document.querySelector('main .error-box') && !/Loading/.test(document.querySelector('main').innerText)",
        WAIT,
    )
    .await;
    let errors = severe(b).await;
    assert!(errors.is_empty(), "{hash}: console errors: {errors:#?}");
    let overflow = b
        .eval(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    if let Some(dir) = std::env::var_os("HOLDFAST_CONSOLE_SHOTS") {
        let name = hash.trim_start_matches("#/").replace('/', "_");
        let name = if name.is_empty() {
            "fleet".into()
        } else {
            name
        };
        b.screenshot_full(&Path::new(&dir).join(format!("{}-{name}.png", overflow[1])))
            .await;
    }
    assert!(
        overflow[0].as_u64() <= overflow[1].as_u64(),
        "{hash}: the page scrolls sideways: {overflow}"
    );
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

/// The unreachable server of the fleet tests: its name sorts after `db1`, so only "problems
/// first" puts it first.
const DOWN: &str = "db2-billing-replica-with-a-long-name";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_on_a_phone_and_a_laptop() {
    let server = TestServer::start();
    server.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT);
         INSERT INTO shop.orders SELECT seq, CONCAT('item-', seq), seq % 7 FROM shop.seq_1_to_200;",
    );
    let repo = Repo::init();
    let first = backup(&repo, &server, &[]);
    let first_id = first["id"].as_str().unwrap().to_string();
    // The unreachable server has a repository of its own, empty: problems, no backup.
    let spare = Repo::init();
    let mut d = Daemon::with_config(
        &[
            repository_toml("main", &repo.url()),
            repository_toml("spare", &spare.url()),
            server_toml("db1", &server.url(), "main"),
            // db1 archives its binlog (the daemon streams it): without, it would have a
            // problem too ("no binlog archive").
            "binlog = true\n".into(),
            server_toml(DOWN, &unreachable_source(), "spare"),
            restore_target_toml("staging", &server.url(), false),
            restore_target_toml("prod-orders", &server.url(), true),
        ]
        .concat(),
    );
    d.add_user("ada", "admin", "admin-password-1");
    let api = d.api("ada");
    d.start();
    let base = d.base();

    // A real job: a backup of db1 through the API, to its end; and one that fails at once (an
    // expire without a retention policy: a usage error, never retried), whose long error the
    // job list must fit on a phone.
    let job = api.run_job("db1", "backup", "succeeded").await;
    api.run_job("db1", "expire", "failed").await;
    let problems = |items: &[Value], name: &str| {
        items.iter().find(|s| s["name"] == name).unwrap()["problems"]
            .as_array()
            .unwrap()
            .len()
    };
    api.wait_fleet(
        "db1 backed up and without problems, the other with",
        |items| problems(items, "db1") == 0 && problems(items, DOWN) > 0,
    )
    .await;

    let pages = [
        "#/".to_string(),
        "#/drills".into(),
        "#/backups".into(),
        format!("#/backups/main/{first_id}"),
        "#/jobs".into(),
        format!("#/jobs/{job}"),
        "#/restore".into(),
        "#/audit".into(),
        "#/users".into(),
    ];
    let b = Browser::start_with(BrowserOptions {
        width: 375,
        height: 740,
    })
    .await;
    sign_in(&b, &base, "ada", "admin-password-1").await;
    for (w, h) in [(375, 740), (1280, 900)] {
        b.resize(w, h).await;
        for page in &pages {
            check_page(&b, &base, page).await;
        }
        // Problems first: the unreachable server without a backup leads the fleet, the real one
        // with its backup follows.
        b.goto(&format!("{base}/#/")).await;
        let order = b
            .wait_for(
                "fleet cards",
                "[...document.querySelectorAll('#servers > li')].map(e => e.dataset.server)",
                WAIT,
            )
            .await;
        assert_eq!(
            order,
            json!([DOWN, "db1"]),
            "at {w} px; the API's servers: {}",
            api.get("/api/v1/servers").await
        );
        let troubled = b
            .eval(
                "return [...document.querySelectorAll('#servers > li.has-problems')].map(e => e.dataset.server)",
                vec![],
            )
            .await;
        assert_eq!(troubled, json!([DOWN]), "at {w} px");
    }
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_follow_the_role() {
    let server = TestServer::start();
    server.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40));
         INSERT INTO shop.orders SELECT seq, CONCAT('item-', seq) FROM shop.seq_1_to_100;",
    );
    let repo = Repo::init();
    backup(&repo, &server, &[]);
    let mut d = Daemon::with_config(
        &[
            repository_toml("main", &repo.url()),
            server_toml("db1", &server.url(), "main"),
            restore_target_toml("staging", &server.url(), false),
            restore_target_toml("prod-orders", &server.url(), true),
        ]
        .concat(),
    );
    d.add_user("olga", "operator", "operator-password-1");
    d.add_user("ann", "auditor", "auditor-password-1");
    let api = d.api("olga");
    d.start();
    let base = d.base();

    // Real jobs in every kind of state, started through the API as the operator.
    let succeeded = api.run_job("db1", "backup", "succeeded").await;
    let failed = api.run_job("db1", "expire", "failed").await;
    // The test takes the server's backup lock (MariaDB lets one session at a time past BACKUP
    // STAGE START), so the next backup runs and waits for it: its lock timeout is 10 s, after
    // which it retries, so it cannot end within 30 s (three attempts). A second backup of the
    // same server waits queued behind it (never two backups of one server at once), and a third
    // is cancelled while it waits.
    let mut lock = server.conn().await;
    lock.query_drop("BACKUP STAGE START").await.unwrap();
    let running = api.start_job("db1", "backup").await;
    api.wait_state(running, &["running"], WAIT).await;
    let queued = api.start_job("db1", "backup").await;
    let cancelled = api.start_job("db1", "backup").await;
    let (status, v) = api.cancel(cancelled).await;
    assert_eq!(status, 200, "cancel {cancelled}: {v}");
    assert_eq!(v["state"], "cancelled", "{v}");

    let b = Browser::start().await;
    let rows = "[...document.querySelectorAll('#jobs tbody tr[data-job]')].map(r => [Number(r.dataset.job), r.dataset.state, !!r.querySelector('[data-action=cancel]')])";
    let newest = format!("document.querySelector('#jobs tr[data-job=\"{cancelled}\"]')");

    // ---- the operator: the job form, Cancel only on the jobs that can still be cancelled.
    sign_in(&b, &base, "olga", "operator-password-1").await;
    assert_eq!(
        visible_nav(&b).await,
        json!(["Fleet", "Drills", "Backups", "Jobs", "Restore"])
    );
    b.goto(&format!("{base}/#/jobs")).await;
    b.wait_for("the jobs", &newest, WAIT).await;
    assert_eq!(
        b.eval("return !!document.querySelector('form.trigger')", vec![])
            .await,
        true,
        "the operator has no job form"
    );
    let seen = b.eval(&format!("return {rows}"), vec![]).await;
    let seen = seen.as_array().unwrap();
    for row in seen {
        let state = row[1].as_str().unwrap();
        let active = ["queued", "running", "retrying"].contains(&state);
        assert_eq!(row[2], active, "Cancel on a {state} job: {row}");
    }
    let state_of = |id: i64| {
        seen.iter()
            .find(|r| r[0] == id)
            .map(|r| r[1].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("job {id} not listed: {seen:?}"))
    };
    assert_eq!(state_of(succeeded), "succeeded");
    assert_eq!(state_of(failed), "failed");
    assert_eq!(state_of(cancelled), "cancelled");
    let with_cancel: Vec<i64> = seen
        .iter()
        .filter(|r| r[2] == true)
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    assert_eq!(with_cancel, vec![queued, running], "{seen:?}");
    // Cancel from the console: the queued job ends, its control goes.
    b.click(
        &format!("#jobs tr[data-job=\"{queued}\"] button[data-action=cancel]"),
        WAIT,
    )
    .await;
    b.wait_for(
        "the queued job cancelled",
        &format!(
            "(() => {{ const r = document.querySelector('#jobs tr[data-job=\"{queued}\"]');
                      return r && r.dataset.state === 'cancelled' && !r.querySelector('[data-action]'); }})()"
        ),
        WAIT,
    )
    .await;
    assert_eq!(
        api.get(&format!("/api/v1/jobs/{queued}")).await["state"],
        "cancelled"
    );
    // The production target cannot be chosen by an operator; the other one can.
    b.goto(&format!("{base}/#/restore")).await;
    let targets = b
        .wait_for(
            "restore targets",
            "document.querySelector('input[name=target]') && [...document.querySelectorAll('input[name=target]')].map(i => [i.value, i.disabled])",
            WAIT,
        )
        .await;
    assert_eq!(targets, json!([["staging", false], ["prod-orders", true]]));
    sign_out(&b).await;

    // ---- the auditor: no control anywhere, though the held-up backup can still be cancelled.
    sign_in(&b, &base, "ann", "auditor-password-1").await;
    b.wait_for(
        "db1 on the dashboard",
        "document.querySelector('#servers li[data-server=db1] .last-backup a')",
        WAIT,
    )
    .await;
    assert_eq!(
        b.eval(
            "return document.querySelectorAll('[data-action]').length",
            vec![]
        )
        .await,
        0,
        "the auditor sees controls on the dashboard"
    );
    assert_eq!(
        visible_nav(&b).await,
        json!(["Fleet", "Drills", "Backups", "Jobs", "Audit"])
    );
    b.goto(&format!("{base}/#/jobs")).await;
    b.wait_for("the jobs", &newest, WAIT).await;
    assert_eq!(
        b.eval(
            "return document.querySelectorAll('[data-action], form.trigger').length",
            vec![]
        )
        .await,
        0,
        "the auditor sees job controls"
    );
    let errors = severe(&b).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;

    // Let the held-up backup go.
    let (status, v) = api.cancel(running).await;
    assert_eq!(status, 200, "cancel {running}: {v}");
    lock.query_drop("BACKUP STAGE END").await.unwrap();
    lock.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_the_keyboard() {
    // No database needed: the sign-in is the daemon's own; its one server cannot be reached.
    let repo = Repo::init();
    let mut d = Daemon::with_config(
        &[
            repository_toml("main", &repo.url()),
            server_toml("db1", &unreachable_source(), "main"),
        ]
        .concat(),
    );
    d.add_user("ada", "admin", "admin-password-1");
    d.start();
    let base = d.base();
    let b = Browser::start().await;
    b.goto(&format!("{base}/login?next=%23%2Fdrills")).await;
    b.wait_for(
        "focus on the user field",
        "document.activeElement && document.activeElement.id === 'user'",
        WAIT,
    )
    .await;
    // Type, Tab to the password, Enter: a wrong password is reported and keeps the focus there.
    let active = || async {
        b.client()
            .active_element()
            .await
            .expect("the focused element")
    };
    active().await.send_keys("ada").await.unwrap();
    active().await.send_keys("\u{E004}").await.unwrap(); // Tab
    active().await.send_keys("wrong\u{E007}").await.unwrap(); // Enter
    let msg = b
        .wait_for(
            "the error",
            "!document.getElementById('login-error').hidden && document.getElementById('login-error').textContent",
            WAIT,
        )
        .await;
    assert!(msg.as_str().unwrap().contains("wrong"), "{msg}");
    assert_eq!(
        b.eval("return document.activeElement.id", vec![]).await,
        "password"
    );
    // The focused field shows a visible outline.
    let outline = b
        .eval(
            "return getComputedStyle(document.activeElement).outlineStyle",
            vec![],
        )
        .await;
    assert_ne!(outline, "none");
    active()
        .await
        .send_keys("admin-password-1\u{E007}")
        .await
        .unwrap();
    b.wait_for(
        "the drill page after sign-in",
        "location.pathname === '/' && location.hash === '#/drills' && document.querySelector('main h1') && document.querySelector('main h1').textContent === 'Drills' && document.querySelector('#who .user') && document.querySelector('#who .user').textContent === 'ada'",
        WAIT,
    )
    .await;
    // Every control of the nav is reachable with Tab, in order.
    let mut reached = Vec::new();
    b.eval(
        "document.activeElement.blur(); document.body.focus()",
        vec![],
    )
    .await;
    for _ in 0..12 {
        active().await.send_keys("\u{E004}").await.unwrap();
        let label = b
            .eval("return document.activeElement.textContent.trim()", vec![])
            .await;
        reached.push(label.as_str().unwrap_or("").to_string());
    }
    for want in [
        "Skip to content",
        "Fleet",
        "Drills",
        "Backups",
        "Jobs",
        "Restore",
        "Audit",
        "Users & tokens",
        "Sign out",
    ] {
        assert!(
            reached.iter().any(|r| r.ends_with(want)),
            "{want} not reached with Tab: {reached:?}"
        );
    }
    b.close().await;
}
