//! The `/api/v1` fleet API end to end: the real daemon (in this process, its jobs run by the real
//! `holdfast` binary) over a real socket with reqwest, real MariaDB servers, a real encrypted
//! repository with real backups.
//!
//! Every route of `api::ROUTES` is called as admin, operator, auditor (each with a real API
//! token of a real user, `Authorization: Bearer`) and as nobody; mutations are checked in the
//! daemon's hash-chained audit log, which must still verify at the end.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use holdfast_daemon::access::Action;
use holdfast_daemon::access::{permits, Role};
use holdfast_daemon::api::{audit_action, Access, ROUTES};
use holdfast_daemon::jobs::{JobKind, Trigger};
use holdfast_testkit::TestServer;
use serde_json::{json, Value};

const PASSPHRASE: &str = "api-test-passphrase-3141";
const TARGET_PASSWORD: &str = "prod-target-password-2718";

/// A user and an API token for each role, created in the daemon's store before it starts.
async fn tokens(state: &Path) -> std::collections::BTreeMap<Role, String> {
    let (_, access) = holdfast_daemon::store::open_both(&state.display().to_string(), None)
        .await
        .unwrap();
    let now = holdfast_daemon::time::now_millis();
    let mut tokens = std::collections::BTreeMap::new();
    for role in [Role::Admin, Role::Operator, Role::Auditor] {
        let user = format!("{role}-user");
        holdfast_daemon::auth::manage::add_user(&access, &user, role, format!("{user}-pw-0"), now)
            .await
            .unwrap();
        let (_, token) =
            holdfast_daemon::auth::manage::create_token(&access, &user, None, None, now)
                .await
                .unwrap();
        tokens.insert(role, token);
    }
    tokens
}

struct Api {
    base: String,
    client: reqwest::Client,
    state: PathBuf,
    tokens: std::collections::BTreeMap<Role, String>,
    /// Every response body seen, for the secret scan.
    bodies: std::sync::Mutex<Vec<String>>,
}

impl Api {
    async fn call(
        &self,
        role: Option<Role>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut rb = self
            .client
            .request(method.parse().unwrap(), &url)
            .timeout(Duration::from_secs(60));
        if let Some(r) = role {
            rb = rb.bearer_auth(&self.tokens[&r]);
        }
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
        self.bodies.lock().unwrap().push(text.clone());
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        (status, value)
    }

    async fn get(&self, role: Role, path: &str) -> Value {
        let (status, v) = self.call(Some(role), "GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// Polls a job until it ends; its detail.
    async fn wait_job(&self, id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.get(Role::Auditor, &format!("/api/v1/jobs/{id}")).await;
            let state = job["state"].as_str().unwrap().to_string();
            if ["succeeded", "failed", "cancelled", "timed-out"].contains(&state.as_str()) {
                return job;
            }
            if Instant::now() > deadline {
                let log = self
                    .get(Role::Auditor, &format!("/api/v1/jobs/{id}/log"))
                    .await;
                panic!("job {id} still {state} after {within:?}: {job}\nlog: {log}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn backups(&self) -> Vec<Value> {
        self.get(Role::Auditor, "/api/v1/backups?repository=main")
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// A job queued straight into the store, not due for an hour (so it stays cancellable).
    async fn queued_job(&self) -> i64 {
        let store = holdfast_daemon::store::open(&self.state.display().to_string(), None)
            .await
            .unwrap();
        let spec = holdfast_daemon::jobs::JobSpec {
            server: "db1".into(),
            host: "localhost".into(),
            repository: "main".into(),
            kind: JobKind::Verify,
            priority: 1,
            timeout_ms: 60_000,
            max_attempts: 1,
            backoff_base_ms: 1000,
            backoff_cap_ms: 1000,
            schedule: None,
            planned_at: None,
            trigger: Trigger::Manual,
            requested_by: Some("test".into()),
            restore: None,
        };
        let now = holdfast_daemon::time::now_millis();
        store
            .enqueue(&spec, now + 3_600_000, now)
            .await
            .unwrap()
            .unwrap()
            .id
    }
}

/// Processes of this machine running for job `id` (their environment has `HOLDFAST_JOB_ID`).
fn job_processes(id: i64) -> usize {
    let want = format!("HOLDFAST_JOB_ID={id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == want.as_bytes()))
                .unwrap_or(false)
        })
        .count()
}

fn write_secret(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_api_end_to_end() {
    let source = TestServer::start();
    let target = TestServer::start();
    source.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40)); \
         INSERT INTO shop.orders VALUES (1, 'anchor'), (2, 'rope'), (3, 'chain');",
    );
    let dir = tempfile::tempdir().unwrap();
    let pass = write_secret(dir.path(), "repo.pass", PASSPHRASE);
    let target_pw = write_secret(dir.path(), "prod.pw", TARGET_PASSWORD);
    let repo = Repo::uninit();
    let url = repo.url();
    assert_ok(
        &holdfast(&[
            "init",
            "--repo",
            &url,
            "--encrypt",
            "--passphrase-file",
            &pass,
        ]),
        "init",
    );
    let first = backup(&repo, &source, &["--passphrase-file", &pass]);
    let first_id = first["id"].as_str().unwrap().to_string();

    let port = holdfast_testkit::free_port();
    let state = dir.path().join("state.db");
    let config = format!(
        r#"
[daemon]
listen = "127.0.0.1:{port}"
state = "{state}"
lease = "3s"
shutdown_grace = "2s"

[[repository]]
name = "main"
url = "{url}"
passphrase_file = "{pass}"

[[server]]
name = "db1"
source = "{source}"
repository = "main"

[[server.schedule]]
job = "verify"
cron = "0 0 3 * * *"

[[restore_target]]
name = "scratch"
url = "{scratch}"

[[restore_target]]
name = "prod"
url = "{scratch}"
password_file = "{target_pw}"
production = true
"#,
        state = state.display(),
        source = source.url(),
        scratch = target.url(),
    );
    let config_path = dir.path().join("holdfast.toml");
    std::fs::write(&config_path, config).unwrap();
    let tokens = tokens(&state).await;
    let options = holdfast_daemon::daemon::Options::new(config_path, PathBuf::from(bin()));
    let stop = options.stop.clone();
    let daemon = tokio::spawn(holdfast_daemon::daemon::run(options));

    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        state,
        tokens,
        bodies: Default::default(),
    };
    // Ready, and the first refresh has read the repository.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            !daemon.is_finished(),
            "the daemon stopped: {:?}",
            daemon.await
        );
        let listed = api
            .client
            .get(format!("{}/api/v1/backups", api.base))
            .bearer_auth(&api.tokens[&Role::Auditor])
            .send()
            .await;
        if let Ok(r) = listed {
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            if v["items"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the API never listed the backup");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // --- Every route × every role, from the one table. -----------------------------------
    let (status, _) = api
        .call(
            Some(Role::Admin),
            "POST",
            &format!("/api/v1/backups/main/{first_id}/pin"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    let any_job = api.queued_job().await;
    let roles = [
        None,
        Some(Role::Admin),
        Some(Role::Operator),
        Some(Role::Auditor),
    ];
    for route in ROUTES {
        for role in roles {
            // Fresh objects for the routes that consume them.
            let job_id = if route.path.ends_with("/cancel") {
                api.queued_job().await
            } else {
                any_job
            };
            if route.method == axum::http::Method::DELETE {
                let (s, v) = api
                    .call(
                        Some(Role::Admin),
                        "POST",
                        &format!("/api/v1/backups/main/{first_id}/pin"),
                        Some(json!({})),
                    )
                    .await;
                assert_eq!(s, 200, "{v}");
            }
            let path = route
                .full_path()
                .replace("{name}", "db1")
                .replace("{server}", "db1")
                .replace("{repository}", "main")
                .replace(
                    "{id}",
                    &if route.path.starts_with("/jobs") {
                        job_id.to_string()
                    } else {
                        first_id.clone()
                    },
                );
            let body = match (route.method.as_str(), route.path) {
                ("POST", "/jobs") => Some(json!({"server": "db1", "kind": "verify"})),
                // A backup that does not exist: the job fails at once, the API answers 201.
                ("POST", "/restores") => Some(json!({
                    "target": "scratch", "server": "db1", "confirm": "scratch",
                    "backup": "20000101T000000Z-dead"
                })),
                ("POST", _) => Some(json!({})),
                _ => None,
            };
            let (status, v) = api.call(role, route.method.as_str(), &path, body).await;
            let want_allowed = match (role, route.access) {
                (_, Access::Public) => true,
                (None, _) => false,
                (Some(r), Access::Needs(a)) => permits(r, a),
                (Some(r), Access::Restore) => {
                    permits(r, holdfast_daemon::access::Action::RestoreNonProduction)
                }
            };
            let what = format!("{} {path} as {role:?}", route.method);
            if want_allowed {
                assert!((200..300).contains(&status), "{what}: {status} {v}");
            } else if role.is_none() {
                assert_eq!(status, 401, "{what}: {v}");
                assert_eq!(v["error"]["code"], "unauthenticated", "{what}");
            } else {
                assert_eq!(status, 403, "{what}: {v}");
                assert_eq!(v["error"]["code"], "forbidden", "{what}");
            }
        }
    }

    // --- Errors and pagination. -------------------------------------------------------------
    let (s, v) = api
        .call(Some(Role::Auditor), "GET", "/api/v1/servers/nope", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not-found")),
        "{v}"
    );
    let (s, v) = api
        .call(Some(Role::Auditor), "GET", "/api/v1/jobs?limit=0", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad-request")),
        "{v}"
    );
    let (s, v) = api
        .call(
            Some(Role::Auditor),
            "GET",
            "/api/v1/jobs?cursor=bogus",
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let page1 = api.get(Role::Auditor, "/api/v1/jobs?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().expect("more jobs than 2");
    let page2 = api
        .get(
            Role::Auditor,
            &format!("/api/v1/jobs?limit=2&cursor={cursor}"),
        )
        .await;
    assert!(
        page2["items"][0]["id"].as_i64().unwrap() < page1["items"][1]["id"].as_i64().unwrap(),
        "{page1} {page2}"
    );

    // --- A manual backup through the API, run by the daemon's normal loop. ---------------------
    let (s, job) = api
        .call(
            Some(Role::Operator),
            "POST",
            "/api/v1/jobs",
            Some(json!({"server": "db1", "kind": "backup"})),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    assert_eq!(job["trigger"], "manual");
    let requested_by = job["requested_by"].as_str().unwrap();
    assert!(
        requested_by.starts_with("token:") && requested_by.ends_with(" (operator-user)"),
        "{job}"
    );
    let id = job["id"].as_i64().unwrap();
    let done = api.wait_job(id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let states: Vec<&str> = done["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["queued", "running", "succeeded"]);
    let new_id = done["result"]["id"]
        .as_str()
        .expect("the backup's id in the result")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .backups()
        .await
        .iter()
        .any(|b| b["id"] == new_id.as_str())
    {
        assert!(
            Instant::now() < deadline,
            "the new backup {new_id} never listed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let servers = api.get(Role::Auditor, "/api/v1/servers").await;
    assert_eq!(
        servers["items"][0]["last_backup"]["id"],
        new_id.as_str(),
        "{servers}"
    );
    assert_eq!(
        servers["items"][0]["next_runs"][0]["job"], "verify",
        "{servers}"
    );
    let detail = api
        .get(Role::Auditor, &format!("/api/v1/backups/main/{new_id}"))
        .await;
    assert!(
        detail["databases"]
            .as_array()
            .unwrap()
            .contains(&json!("shop")),
        "{detail}"
    );
    assert!(!detail["files"].as_array().unwrap().is_empty());

    // --- Cancel. --------------------------------------------------------------------------
    let queued = api.queued_job().await;
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "POST",
            &format!("/api/v1/jobs/{queued}/cancel"),
            None,
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "POST",
            &format!("/api/v1/jobs/{queued}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );

    // A running job: its child stops at once, the job ends cancelled (a drill runs for seconds:
    // it starts a throwaway server).
    let (s, job) = api
        .call(
            Some(Role::Operator),
            "POST",
            "/api/v1/jobs",
            Some(json!({"server": "db1", "kind": "drill"})),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    let drill = job["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = api
            .get(Role::Auditor, &format!("/api/v1/jobs/{drill}"))
            .await;
        if j["state"] == "running" {
            break;
        }
        assert_eq!(j["state"], "queued", "{j}");
        assert!(Instant::now() < deadline, "the drill never started: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "POST",
            &format!("/api/v1/jobs/{drill}/cancel"),
            None,
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    // Its child (and the drill's throwaway server under it) is gone.
    while job_processes(drill) > 0 {
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "the cancelled drill's processes still run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let j = api
        .get(Role::Auditor, &format!("/api/v1/jobs/{drill}"))
        .await;
    let states: Vec<&str> = j["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["queued", "running", "cancelled"], "{j}");
    assert!(j["transitions"][2]["message"]
        .as_str()
        .unwrap()
        .contains("operator-user"));

    // --- Pin and unpin, visible in the list. ------------------------------------------------
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "POST",
            &format!("/api/v1/backups/main/{new_id}/pin"),
            Some(json!({"reason": "before the migration"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let listed = api.backups().await;
    let b = listed.iter().find(|b| b["id"] == new_id.as_str()).unwrap();
    assert_eq!(b["pinned"], true, "{b}");
    assert_eq!(b["pin"]["reason"], "before the migration");
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "DELETE",
            &format!("/api/v1/backups/main/{new_id}/pin"),
            None,
        )
        .await;
    assert_eq!(s, 403, "an operator does not unpin: {v}");
    let (s, v) = api
        .call(
            Some(Role::Admin),
            "DELETE",
            &format!("/api/v1/backups/main/{new_id}/pin"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let listed = api.backups().await;
    let b = listed.iter().find(|b| b["id"] == new_id.as_str()).unwrap();
    assert_eq!(b["pinned"], false, "{b}");

    // --- Restores. ------------------------------------------------------------------------
    let restore = |t: &str, confirm: Option<&str>| {
        let mut body = json!({"target": t, "server": "db1", "backup": new_id});
        if let Some(c) = confirm {
            body["confirm"] = json!(c);
        }
        body
    };
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "POST",
            "/api/v1/restores",
            Some(restore("prod", Some("prod"))),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (s, v) = api
        .call(
            Some(Role::Admin),
            "POST",
            "/api/v1/restores",
            Some(restore("prod", None)),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("confirmation-required")),
        "{v}"
    );
    let (s, v) = api
        .call(
            Some(Role::Operator),
            "POST",
            "/api/v1/restores",
            Some(restore("scratch", Some("prod"))),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("confirmation-required")),
        "{v}"
    );
    let (s, v) = api
        .call(Some(Role::Operator), "POST", "/api/v1/restores", Some(json!({"target": "mysql://root@evil/", "server": "db1", "confirm": "mysql://root@evil/"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not-found")),
        "a URL is not a target: {v}"
    );
    // Earlier restore jobs of the role matrix must be over before the real one.
    for j in api
        .get(
            Role::Auditor,
            "/api/v1/jobs?state=queued,running,retrying&limit=500",
        )
        .await["items"]
        .as_array()
        .unwrap()
    {
        if j["kind"] == "restore" {
            api.wait_job(j["id"].as_i64().unwrap(), Duration::from_secs(60))
                .await;
        }
    }
    let (s, job) = api
        .call(
            Some(Role::Operator),
            "POST",
            "/api/v1/restores",
            Some(restore("scratch", Some("scratch"))),
        )
        .await;
    assert_eq!(s, 201, "{job}");
    assert_eq!(job["kind"], "restore");
    assert_eq!(job["restore"]["target"], "scratch");
    let done = api
        .wait_job(job["id"].as_i64().unwrap(), Duration::from_secs(120))
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        checksums(&target),
        checksums(&source),
        "the restored data is there"
    );

    // --- Nothing served holds a secret. ------------------------------------------------------
    let doc = api.call(None, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(doc.0, 200);
    for body in api.bodies.lock().unwrap().iter() {
        for secret in [PASSPHRASE, TARGET_PASSWORD] {
            assert!(!body.contains(secret), "a response holds a secret: {body}");
        }
    }

    // --- The audit log holds every mutating request, allowed or not, and no read; the jobs'
    // starts and ends; and its chain verifies. -------------------------------------------------
    let (_, access) = holdfast_daemon::store::open_both(&api.state.display().to_string(), None)
        .await
        .unwrap();
    let events = access
        .audit(&holdfast_daemon::store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !events.iter().any(|e| e.action == "api.read"),
        "reads are not audited: {events:#?}"
    );
    let has = |user: &str, action: Action, target: &str, result: &str| {
        events.iter().any(|e| {
            (e.actor == user || e.actor.ends_with(&format!("({user})")))
                && e.action == audit_action(action)
                && e.target.contains(target)
                && e.result.starts_with(result)
                && e.source == "127.0.0.1"
        })
    };
    assert!(
        has(
            "operator-user",
            Action::TriggerJob,
            &format!("job {id} (backup of db1)"),
            "ok"
        ),
        "{events:#?}"
    );
    assert!(
        has(
            "operator-user",
            Action::CancelJob,
            &format!("job {drill}"),
            "ok"
        ),
        "{events:#?}"
    );
    assert!(
        has(
            "operator-user",
            Action::Pin,
            &format!("backup main/{new_id}"),
            "ok"
        ),
        "{events:#?}"
    );
    assert!(
        has(
            "admin-user",
            Action::Unpin,
            &format!("backup main/{new_id}"),
            "ok"
        ),
        "{events:#?}"
    );
    assert!(
        has("operator-user", Action::Unpin, "/pin", "denied"),
        "{events:#?}"
    );
    assert!(
        has("auditor-user", Action::TriggerJob, "/api/v1/jobs", "denied"),
        "{events:#?}"
    );
    assert!(
        has("anonymous", Action::Pin, "/pin", "denied"),
        "{events:#?}"
    );
    assert!(
        has(
            "operator-user",
            Action::RestoreProduction,
            "restore target prod",
            "denied"
        ),
        "{events:#?}"
    );
    assert!(
        has(
            "operator-user",
            Action::RestoreNonProduction,
            "into scratch",
            "ok"
        ),
        "{events:#?}"
    );
    assert!(events
        .iter()
        .any(|e| e.actor == "anonymous" && e.detail == "via none"));
    assert!(events
        .iter()
        .any(|e| e.actor.starts_with("token:") && e.detail == "via token"));
    // The daemon's own entries: the triggered backup's start and its end.
    let job_target = format!("job {id} (backup of db1)");
    for (action, result) in [("job.start", "ok"), ("job.end", "succeeded")] {
        assert!(
            events.iter().any(|e| e.actor == "daemon"
                && e.action == action
                && e.target == job_target
                && e.result == result),
            "no {action} {result} for {job_target}: {events:#?}"
        );
    }
    let report = holdfast_daemon::audit::verify_store(access.as_ref())
        .await
        .unwrap();
    assert!(
        report.broken.is_none() && report.entries == events.len() as u64,
        "{report:?}"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("the daemon stops")
        .unwrap()
        .unwrap();
}
