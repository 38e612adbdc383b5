//! Layout and accessibility checks of the console in a real headless Chromium, against the
//! daemon's real console routes and a FIXTURE API: canned answers in the shapes of the API
//! contract (docs/api.md). These check only what the pages do with data (every page renders
//! without a script error, fits a 375 px phone and a laptop, hides controls by role, keyboard
//! use, the sign-in page); the console's behaviour against the real daemon, MariaDB and
//! repository is tested in crates/cli/tests/console.rs.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use holdfast_testkit::{Browser, BrowserOptions};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Fixture {
    role: &'static str,
}

fn iso(ago_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    chrono_like(now - ago_s)
}

/// RFC 3339 UTC from Unix seconds (civil-from-days, no extra dependency).
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn servers() -> Value {
    json!({"items": [
        {"name": "db-orders", "repository": "main", "binlog": true,
         "last_backup": {"id": "20261207T020000Z-a1b2", "kind": "logical", "finished_at": iso(5 * 3600), "size_bytes": 7_340_032_000u64, "age_seconds": 5 * 3600},
         "archive": {"lag_seconds": 2.4, "streaming": true},
         "window": {"start": iso(6 * 86400), "end": iso(3)},
         "next_runs": [{"schedule": "db-orders/0:backup", "job": "backup", "at": iso(-3600)}],
         "problems": []},
        {"name": "db-billing-replica-with-a-long-name", "repository": "offsite", "binlog": true,
         "last_backup": {"id": "20261205T020000Z-c3d4", "kind": "physical", "finished_at": iso(2 * 86400), "size_bytes": 1_200_000u64, "age_seconds": 2 * 86400},
         "archive": {"lag_seconds": 900.0, "streaming": false},
         "window": {"start": iso(4 * 86400), "end": iso(900)},
         "next_runs": [],
         "problems": ["last backup is 2 d old (limit 1 d)", "binlog archiving stopped: connection refused"]},
        {"name": "db-new", "repository": "main", "binlog": false, "last_backup": null,
         "archive": {"lag_seconds": null, "streaming": null}, "window": null, "next_runs": [], "problems": []}
    ], "next_cursor": null})
}

fn backup(id: &str, drill: Value) -> Value {
    json!({"id": id, "repository": "main", "server": "db-orders", "kind": "logical",
        "started_at": iso(5 * 3600 + 300), "finished_at": iso(5 * 3600), "size_bytes": 7_340_032_000u64,
        "consistent_point": {"gtid": "0-1-123456,1-2-99", "time": iso(5 * 3600 + 290)},
        "pinned": false, "drill": drill})
}

fn job(id: i64, state: &str) -> Value {
    json!({"id": id, "server": "db-orders", "kind": "backup", "state": state, "attempt": 1,
        "max_attempts": 3, "priority": 100, "trigger": "manual", "requested_by": "olga",
        "created_at": iso(120), "updated_at": iso(60), "last_error": if state == "failed" { json!("mariadbd: Access denied for user 'backup'@'localhost'") } else { Value::Null },
        "exit_code": if state == "failed" { json!(12) } else { Value::Null }})
}

async fn api(State(f): State<Fixture>, Path(path): Path<String>) -> axum::response::Response {
    let v = match path.as_str() {
        "me" => json!({"user": "olga", "role": f.role, "via": "session", "csrf_token": "fixture-csrf"}),
        "servers" => servers(),
        "backups" => json!({"items": [
            backup("20261207T020000Z-a1b2", json!({"status": "verified", "at": iso(3600)})),
            backup("20261206T020000Z-e5f6", json!({"status": "failed", "at": iso(86400), "reason": "table orders: row count 1000 != 999"})),
            backup("20261205T020000Z-0a0b", json!({"status": "unverified"})),
        ], "next_cursor": null}),
        "backups/main/20261207T020000Z-a1b2" => {
            let mut b = backup("20261207T020000Z-a1b2", json!({"status": "verified", "at": iso(3600)}));
            b["files"] = json!([{"path": "data/shop/orders/00000001.tsv.zst", "size": 1234567}, {"path": "schema/shop.sql.zst", "size": 2345}]);
            b["databases"] = json!(["shop", "billing"]);
            b
        }
        "jobs" => json!({"items": [job(42, "running"), job(41, "succeeded"), job(40, "failed"), job(39, "queued")], "next_cursor": null}),
        "jobs/42" => {
            let mut j = job(42, "running");
            j["transitions"] = json!([{"at": iso(120), "from": null, "to": "queued", "message": "requested by olga"}, {"at": iso(100), "from": "queued", "to": "running", "message": "worker a"}]);
            j
        }
        "jobs/42/log" => json!({"items": [{"at": iso(99), "attempt": 1, "line": "backup: 12 tables, 3 workers"}], "next_cursor": null}),
        "drills/report" => json!({"since": iso(30 * 86400), "drills": 14, "passed": 13, "failed": 1, "success_rate": 13.0 / 14.0,
            "rto_mean_seconds": 48.2, "rto_p95_seconds": 95.0,
            "rto_trend_seconds": [40.0, 42.5, 39.0, 55.0, 61.0, 47.0, 44.0, 95.0, 41.0, 43.0, 40.5, 46.0, 49.0],
            "backups": 9, "backups_verified": 8, "coverage": 8.0 / 9.0, "archive_coverage": 0.82,
            "archive": {"from": iso(7 * 86400), "to": iso(60), "covered_seconds": 495_000.0, "seconds": 604_740.0, "pitr_drills": 4, "chain_drills": 3},
            "failures": [{"drill_id": "d-77", "kind": "backup", "backup_id": "20261206T020000Z-e5f6", "at": iso(86400), "reason": "table orders: row count 1000 != 999"}]}),
        "restore-targets" => json!({"items": [{"name": "staging", "url": "mysql://restore@staging-db:3306/", "production": false}, {"name": "prod-orders", "url": "mysql://restore@orders-db:3306/", "production": true}]}),
        "audit" => json!({"items": [
            {"seq": 3, "at": iso(60), "actor": "olga", "source": "10.0.0.7", "action": "trigger-job", "target": "db-orders backup", "result": "ok", "detail": "job 42", "hash": "ab", "prev_hash": "cd"},
            {"seq": 2, "at": iso(120), "actor": "mallory", "source": "10.0.0.9", "action": "login", "target": "", "result": "bad-credentials", "detail": null, "hash": "cd", "prev_hash": "ef"}
        ], "next_cursor": null}),
        "users" => json!({"items": [{"name": "olga", "role": "admin", "disabled": false}, {"name": "ann", "role": "auditor", "disabled": true}]}),
        "tokens" => json!({"items": [{"id": "t-1", "user": "olga", "role": "operator", "created_at": iso(86400), "expires_at": iso(-29 * 86400), "last_used_at": null}]}),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": {"code": "not-found", "message": format!("no fixture for {path}")}})),
            )
                .into_response()
        }
    };
    Json(v).into_response()
}

async fn session(Json(body): Json<Value>) -> axum::response::Response {
    if body["password"] == "right" {
        Json(json!({"user": body["user"], "role": "admin", "csrf_token": "fixture-csrf"}))
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"code": "bad-credentials", "message": "wrong user or password"}}),
            ),
        )
            .into_response()
    }
}

async fn serve(role: &'static str) -> String {
    let app: Router = Router::new()
        .route("/api/v1/session", post(session))
        .route("/api/v1/{*path}", get(api))
        .with_state(Fixture { role })
        .merge(holdfast_daemon::console::router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

const PAGES: [&str; 9] = [
    "#/",
    "#/drills",
    "#/backups",
    "#/backups/main/20261207T020000Z-a1b2",
    "#/jobs",
    "#/jobs/42",
    "#/restore",
    "#/audit",
    "#/users",
];

/// Opens `hash`, waits for its heading and checks the page: no script error, no sideways
/// scrolling of the page itself (wide tables scroll inside their own box).
async fn check_page(b: &Browser, base: &str, hash: &str) {
    b.goto(&format!("{base}/{hash}")).await;
    b.wait_for(
        &format!("{hash}: heading"),
        "document.querySelector('main h1') && !document.querySelector('main .error-box') && !/Loading/.test(document.querySelector('main').innerText)",
        WAIT,
    )
    .await;
    let errors: Vec<String> = b
        .console()
        .await
        .into_iter()
        .filter(|l| l.starts_with("SEVERE"))
        .collect();
    assert!(errors.is_empty(), "{hash}: console errors: {errors:#?}");
    let overflow = b
        .eval(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    // HOLDFAST_CONSOLE_SHOTS=DIR keeps a screenshot of every page, to look at the layout.
    if let Some(dir) = std::env::var_os("HOLDFAST_CONSOLE_SHOTS") {
        let name = hash.trim_start_matches("#/").replace('/', "_");
        let name = if name.is_empty() {
            "fleet".into()
        } else {
            name
        };
        b.screenshot_full(&std::path::Path::new(&dir).join(format!("{}-{name}.png", overflow[1])))
            .await;
    }
    assert!(
        overflow[0].as_u64() <= overflow[1].as_u64(),
        "{hash}: the page scrolls sideways: {overflow}"
    );
}

#[tokio::test]
async fn every_page_renders_on_a_phone_and_a_laptop() {
    let base = serve("admin").await;
    for (w, h) in [(375, 740), (1280, 900)] {
        let b = Browser::start_with(BrowserOptions {
            width: w,
            height: h,
        })
        .await;
        for page in PAGES {
            check_page(&b, &base, page).await;
        }
        // Problems first: the troubled server leads the fleet, the new one without a backup
        // still shows "none".
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
            json!(["db-billing-replica-with-a-long-name", "db-new", "db-orders"])
        );
        b.close().await;
    }
}

#[tokio::test]
async fn controls_follow_the_role() {
    let base = serve("auditor").await;
    let b = Browser::start().await;
    b.goto(&format!("{base}/#/")).await;
    b.wait_for("fleet", "document.querySelector('#servers li')", WAIT)
        .await;
    let seen = b
        .eval(
            "return {trigger: document.querySelectorAll('[data-action]').length,
                     nav: [...document.querySelectorAll('#nav li')].filter(l => !l.hidden).map(l => l.textContent.trim())}",
            vec![],
        )
        .await;
    assert_eq!(seen["trigger"], 0, "{seen}");
    assert_eq!(
        seen["nav"],
        json!(["Fleet", "Drills", "Backups", "Jobs", "Audit"])
    );
    b.goto(&format!("{base}/#/jobs")).await;
    b.wait_for(
        "jobs",
        "document.querySelector('#jobs tbody tr[data-job]')",
        WAIT,
    )
    .await;
    let n = b
        .eval(
            "return document.querySelectorAll('[data-action], form.trigger').length",
            vec![],
        )
        .await;
    assert_eq!(n, 0, "an auditor sees job controls");
    b.close().await;

    let base = serve("operator").await;
    let b = Browser::start().await;
    b.goto(&format!("{base}/#/jobs")).await;
    b.wait_for(
        "jobs",
        "document.querySelector('#jobs tbody tr[data-job]')",
        WAIT,
    )
    .await;
    let seen = b
        .eval(
            "return {start: !!document.querySelector('form.trigger'),
                     cancel: [...document.querySelectorAll('[data-action=cancel]')].map(e => e.dataset.job),
                     nav: [...document.querySelectorAll('#nav li')].filter(l => !l.hidden).map(l => l.textContent.trim())}",
            vec![],
        )
        .await;
    assert_eq!(seen["start"], true, "{seen}");
    // Only the running and the queued job can be cancelled.
    assert_eq!(seen["cancel"], json!(["42", "39"]), "{seen}");
    assert_eq!(
        seen["nav"],
        json!(["Fleet", "Drills", "Backups", "Jobs", "Restore"])
    );
    // The production target is not selectable for an operator.
    b.goto(&format!("{base}/#/restore")).await;
    let disabled = b
        .wait_for(
            "restore targets",
            "document.querySelector('input[name=target]') && [...document.querySelectorAll('input[name=target]')].map(i => [i.value, i.disabled])",
            WAIT,
        )
        .await;
    assert_eq!(disabled, json!([["staging", false], ["prod-orders", true]]));
    b.close().await;
}

#[tokio::test]
async fn sign_in_with_the_keyboard() {
    let base = serve("admin").await;
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
    active().await.send_keys("olga").await.unwrap();
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
    active().await.send_keys("right\u{E007}").await.unwrap();
    b.wait_for(
        "the drill page after sign-in",
        "location.pathname === '/' && location.hash === '#/drills' && document.querySelector('main h1') && document.querySelector('main h1').textContent === 'Drills'",
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
