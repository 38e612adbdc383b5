//! The auth layer and routes over a real socket (reqwest against the daemon's own `http::serve`,
//! plain and TLS), on a real SQLite store and a real PostgreSQL store shared by two daemons:
//! logins, the rate limit, sessions and CSRF, tokens (expiry, revocation, roles), every route of
//! the auth module × every role, and no response body ever holding a password, a secret or a
//! hash. The audit chain verifies at the end of each.

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use holdfast_daemon::access::{permits, Role};
use holdfast_daemon::audit;
use holdfast_daemon::auth::{self, manage, routes::Need, secret, Auth, Settings};
use holdfast_daemon::http::{serve, Listening};
use holdfast_daemon::store::{self, AccessStore, ApiToken, AuditQuery};
use holdfast_daemon::time::now_millis;
use holdfast_testkit::PgServer;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const PASSWORDS: &[(&str, Role, &str)] = &[
    ("root", Role::Admin, "root password one"),
    ("olga", Role::Operator, "olga password two"),
    ("audrey", Role::Auditor, "audrey password three"),
    ("dave", Role::Operator, "dave password four"),
];

fn password(user: &str) -> &'static str {
    PASSWORDS.iter().find(|p| p.0 == user).unwrap().2
}

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Creds {
    None,
    Bearer(String),
    Session {
        cookie: String,
        csrf: Option<String>,
    },
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

impl Resp {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// One daemon's HTTP side on a store.
struct Daemon {
    base: String,
    client: reqwest::Client,
    store: Arc<dyn AccessStore>,
    stop: CancellationToken,
    /// Every response body seen, and whether it may show a token once (its creation).
    bodies: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_on(
    store: Arc<dyn AccessStore>,
    tls: Option<Arc<rustls::ServerConfig>>,
    client: reqwest::Client,
    bodies: Arc<Mutex<Vec<(String, bool)>>>,
) -> Daemon {
    let auth = Auth::new(
        store.clone(),
        Settings {
            secure_cookies: tls.is_some(),
            ..Settings::default()
        },
    );
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(auth::routes(auth.clone()))
        .layer(auth::layer(auth.clone()));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let (listening, scheme) = match tls {
        Some(cfg) => (
            Listening::Tls(holdfast_daemon::tls::TlsListener::new(tcp, cfg).unwrap()),
            "https",
        ),
        None => (Listening::Plain(tcp), "http"),
    };
    let stop = CancellationToken::new();
    tokio::spawn(serve(listening, router, stop.clone()));
    Daemon {
        base: format!("{scheme}://localhost:{port}"),
        client,
        store,
        stop,
        bodies,
    }
}

async fn seed(store: &Arc<dyn AccessStore>) {
    for (name, role, pw) in PASSWORDS {
        manage::add_user(store, name, *role, pw.to_string(), now_millis())
            .await
            .unwrap();
    }
    manage::update_user(store, "dave", None, Some(true), None, now_millis())
        .await
        .unwrap();
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

impl Daemon {
    async fn sqlite(dir: &tempfile::TempDir) -> Daemon {
        let store = store::open_access(&dir.path().join("state.db").display().to_string(), None)
            .await
            .unwrap();
        seed(&store).await;
        start_on(store, None, plain_client(), Default::default()).await
    }

    async fn req(&self, method: Method, path: &str, creds: &Creds, body: Option<Value>) -> Resp {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        match creds {
            Creds::None => {}
            Creds::Bearer(t) => r = r.header("authorization", format!("Bearer {t}")),
            Creds::Session { cookie, csrf } => {
                r = r.header("cookie", format!("holdfast_session={cookie}"));
                if let Some(c) = csrf {
                    r = r.header("x-csrf-token", c);
                }
            }
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let may_show_token = status == 201 && path == "/api/v1/tokens";
        self.bodies
            .lock()
            .unwrap()
            .push((text.clone(), may_show_token));
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!(text))
        };
        Resp {
            status,
            headers,
            json,
        }
    }

    /// Logs in; returns the session's cookie and CSRF token.
    async fn login(&self, user: &str, pw: &str) -> (Resp, Option<Creds>) {
        let r = self
            .req(
                Method::POST,
                "/api/v1/session",
                &Creds::None,
                Some(json!({"user": user, "password": pw})),
            )
            .await;
        let creds = (r.status == 200).then(|| {
            let set = r.headers["set-cookie"].to_str().unwrap().to_string();
            let cookie = set
                .strip_prefix("holdfast_session=")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string();
            Creds::Session {
                cookie,
                csrf: Some(r.json["csrf_token"].as_str().unwrap().to_string()),
            }
        });
        (r, creds)
    }

    async fn token_for(&self, admin: &Creds, user: &str, role: Option<&str>) -> String {
        let r = self
            .req(
                Method::POST,
                "/api/v1/tokens",
                admin,
                Some(json!({"user": user, "role": role, "expires_in": "1d"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
        r.json["token"].as_str().unwrap().to_string()
    }

    async fn actions(&self) -> Vec<(String, String, String)> {
        self.store
            .audit(&AuditQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.action, r.target, r.result))
            .collect()
    }

    /// No response body holds a password, a password hash, a token secret or hash, a session
    /// id or its hash; a token's text only in the one response that created it.
    async fn assert_no_secrets_leaked(&self, extra: &[String]) {
        let mut secrets: Vec<String> = PASSWORDS.iter().map(|p| p.2.to_string()).collect();
        for u in self.store.users().await.unwrap() {
            secrets.push(u.password_hash.clone());
            // The hash's own parts (salt and digest) too.
            secrets.extend(u.password_hash.rsplit('$').take(2).map(str::to_string));
        }
        for t in self.store.tokens(None).await.unwrap() {
            secrets.push(t.secret_hash);
        }
        secrets.extend(extra.iter().cloned());
        let bodies = self.bodies.lock().unwrap().clone();
        assert!(bodies.len() >= 2, "responses were recorded");
        for (body, may_show_token) in bodies.iter() {
            for s in &secrets {
                assert!(!body.contains(s.as_str()), "a response leaks {s:?}: {body}");
            }
            if !may_show_token {
                assert!(
                    !body.contains(secret::TOKEN_PREFIX) || !body.contains("\"token\""),
                    "a token outside its creation: {body}"
                );
            }
        }
        // Session ids are random base64 (43 chars): none appears in a body either.
        let report = audit::verify_store(self.store.as_ref()).await.unwrap();
        assert_eq!(report.broken, None, "the audit chain verifies");
        assert!(report.entries > 0);
    }
}

fn session_parts(c: &Creds) -> (String, String) {
    match c {
        Creds::Session { cookie, csrf } => (cookie.clone(), csrf.clone().unwrap()),
        _ => panic!("not a session"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_sessions_and_csrf() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::sqlite(&dir).await;

    // Good login: a session cookie with the right attributes, a CSRF token.
    let (r, olga) = d.login("olga", password("olga")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["user"], "olga");
    assert_eq!(r.json["role"], "operator");
    let set = r.headers["set-cookie"].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let olga = olga.unwrap();
    let (cookie, csrf) = session_parts(&olga);
    let me = d.req(Method::GET, "/api/v1/me", &olga, None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["via"], "session");
    assert_eq!(me.json["csrf_token"], csrf.as_str());

    // Wrong password, unknown user, disabled user (with its right password): the same 401.
    for (user, pw, why) in [
        ("olga", "olga password 2", "wrong password"),
        ("nobody", "whatever password", "unknown user"),
        ("dave", password("dave"), "user disabled"),
    ] {
        let (r, creds) = d.login(user, pw).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "bad-credentials"),
            "{user}: {}",
            r.json
        );
        assert_eq!(r.json["error"]["message"], "wrong user name or password");
        assert!(creds.is_none() && !r.headers.contains_key("set-cookie"));
        let entries = d.actions().await;
        assert!(
            entries.contains(&("session.login".into(), user.into(), "failed".into())),
            "{why}: {entries:?}"
        );
    }
    let detail: Vec<String> = d
        .store
        .audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.detail)
        .collect();
    assert!(detail.contains(&"user disabled".to_string()), "{detail:?}");
    // A malformed body is a 400 with the JSON error shape.
    let r = d
        .req(
            Method::POST,
            "/api/v1/session",
            &Creds::None,
            Some(json!({"user": 1})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "bad-request"));

    // CSRF: a session's change without the header, with a wrong one: 403 csrf; right: passes.
    let (_, root) = d.login("root", password("root")).await;
    let (root_cookie, root_csrf) = session_parts(root.as_ref().unwrap());
    let add = || Some(json!({"name": "erin", "role": "auditor", "password": "erin password five"}));
    for csrf in [None, Some("wrong".to_string()), Some(csrf.clone())] {
        let creds = Creds::Session {
            cookie: root_cookie.clone(),
            csrf,
        };
        let r = d.req(Method::POST, "/api/v1/users", &creds, add()).await;
        assert_eq!((r.status, r.code()), (403, "csrf"), "{}", r.json);
    }
    assert!(
        d.store.user("erin").await.unwrap().is_none(),
        "nothing changed"
    );
    let root = Creds::Session {
        cookie: root_cookie.clone(),
        csrf: Some(root_csrf.clone()),
    };
    let r = d.req(Method::POST, "/api/v1/users", &root, add()).await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["name"], "erin");
    // Reads need no CSRF token.
    let no_csrf = Creds::Session {
        cookie: root_cookie.clone(),
        csrf: None,
    };
    assert_eq!(
        d.req(Method::GET, "/api/v1/users", &no_csrf, None)
            .await
            .status,
        200
    );

    // A weak password, an unknown role, a taken name.
    for (body, status) in [
        (
            json!({"name": "f", "role": "auditor", "password": "short"}),
            400,
        ),
        (
            json!({"name": "f", "role": "root", "password": "long enough password"}),
            400,
        ),
        (
            json!({"name": "erin", "role": "auditor", "password": "long enough password"}),
            409,
        ),
    ] {
        let r = d
            .req(Method::POST, "/api/v1/users", &root, Some(body))
            .await;
        assert_eq!(r.status, status, "{}", r.json);
    }
    // The last enabled admin cannot disable themselves.
    let r = d
        .req(
            Method::PATCH,
            "/api/v1/users/root",
            &root,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.json);

    // Logout needs the CSRF token too, and ends the session.
    let olga_no_csrf = Creds::Session {
        cookie: cookie.clone(),
        csrf: None,
    };
    let r = d
        .req(Method::DELETE, "/api/v1/session", &olga_no_csrf, None)
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf"));
    let r = d.req(Method::DELETE, "/api/v1/session", &olga, None).await;
    assert_eq!(r.status, 204);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = d.req(Method::GET, "/api/v1/me", &olga, None).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));

    // Disabling a user ends their sessions at once.
    let (_, olga2) = d.login("olga", password("olga")).await;
    let olga2 = olga2.unwrap();
    assert_eq!(
        d.req(Method::GET, "/api/v1/me", &olga2, None).await.status,
        200
    );
    let r = d
        .req(
            Method::PATCH,
            "/api/v1/users/olga",
            &root,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["disabled"], true);
    assert_eq!(
        d.req(Method::GET, "/api/v1/me", &olga2, None).await.status,
        401
    );

    // The audit log over the API, newest first, paged.
    let (_, audrey) = d.login("audrey", password("audrey")).await;
    let audrey = audrey.unwrap();
    let r = d
        .req(Method::GET, "/api/v1/audit?limit=3", &audrey, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["action"], "session.login");
    assert_eq!(items[0]["target"], "audrey");
    let cursor = r.json["next_cursor"].as_str().unwrap();
    let r2 = d
        .req(
            Method::GET,
            &format!("/api/v1/audit?limit=3&cursor={cursor}"),
            &audrey,
            None,
        )
        .await;
    let first_seq = items[0]["seq"].as_i64().unwrap();
    assert_eq!(r2.json["items"][0]["seq"].as_i64().unwrap(), first_seq - 3);
    let all = d.actions().await;
    for want in [
        ("session.login", "olga", "ok"),
        ("session.logout", "olga", "ok"),
        ("user.add", "erin", "ok"),
        ("user.update", "root", "refused"),
        ("user.update", "olga", "ok"),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        assert!(all.contains(&want), "{want:?} in {all:?}");
    }
    d.assert_no_secrets_leaked(&[
        cookie,
        secret::sha256_hex(&session_parts(&olga2).0),
        root_cookie,
        "erin password five".into(),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_are_revoked_and_stay_within_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::sqlite(&dir).await;
    let (_, root) = d.login("root", password("root")).await;
    let root = root.unwrap();

    let olga = d.token_for(&root, "olga", None).await;
    let me = d
        .req(
            Method::GET,
            "/api/v1/me",
            &Creds::Bearer(olga.clone()),
            None,
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.json);
    assert_eq!(
        (me.json["via"].as_str(), me.json["role"].as_str()),
        (Some("token"), Some("operator"))
    );
    assert!(me.json.get("csrf_token").is_none());
    let id = me.json["token_id"].as_str().unwrap().to_string();
    assert!(d
        .store
        .token(&id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_some());

    // A token may not do more than its user: an auditor's token for an operator is refused.
    let r = d
        .req(
            Method::POST,
            "/api/v1/tokens",
            &root,
            Some(json!({"user": "olga", "role": "auditor"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.json);
    let r = d
        .req(
            Method::POST,
            "/api/v1/tokens",
            &root,
            Some(json!({"user": "olga", "expires_in": "soon"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.json);
    let r = d
        .req(
            Method::POST,
            "/api/v1/tokens",
            &root,
            Some(json!({"user": "ghost"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.json);

    // Bearer tokens need no CSRF token; their role decides.
    let olga_creds = Creds::Bearer(olga.clone());
    let r = d.req(Method::GET, "/api/v1/users", &olga_creds, None).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = d
        .req(
            Method::POST,
            "/api/v1/tokens",
            &olga_creds,
            Some(json!({"user": "olga"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    assert!(d
        .actions()
        .await
        .contains(&("token.create".into(), "olga".into(), "denied".into())));

    // The list never holds a secret.
    let list = d.req(Method::GET, "/api/v1/tokens", &root, None).await;
    assert_eq!(list.status, 200);
    let item = &list.json["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["state"], "active");
    assert!(item.get("token").is_none() && item.get("secret_hash").is_none());

    // Revoked: 401 at once.
    let r = d
        .req(Method::DELETE, &format!("/api/v1/tokens/{id}"), &root, None)
        .await;
    assert_eq!(r.status, 204);
    let r = d.req(Method::GET, "/api/v1/me", &olga_creds, None).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    let r = d
        .req(Method::DELETE, "/api/v1/tokens/ffffffffffff", &root, None)
        .await;
    assert_eq!(r.status, 404);

    // Expired: 401.
    let new = secret::new_token();
    d.store
        .add_token(&ApiToken {
            id: new.id.clone(),
            user: "root".into(),
            role: Role::Admin,
            secret_hash: new.secret_hash.clone(),
            created_at: now_millis() - 120_000,
            expires_at: Some(now_millis() - 1_000),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let r = d
        .req(
            Method::GET,
            "/api/v1/me",
            &Creds::Bearer(new.token.clone()),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    // The right id with a wrong secret, and garbage: 401.
    let forged = format!("hf_{}_{}", new.id, "A".repeat(43));
    for t in [forged, "hf_nonsense".to_string(), "".to_string()] {
        let r = d
            .req(Method::GET, "/api/v1/me", &Creds::Bearer(t.clone()), None)
            .await;
        assert_eq!(r.status, 401, "{t}");
    }

    // A token of a user who is disabled later stops working; and of one demoted below it.
    let audrey = d.token_for(&root, "audrey", None).await;
    let audrey_creds = Creds::Bearer(audrey.clone());
    assert_eq!(
        d.req(Method::GET, "/api/v1/audit", &audrey_creds, None)
            .await
            .status,
        200
    );
    let r = d
        .req(
            Method::PATCH,
            "/api/v1/users/audrey",
            &root,
            Some(json!({"role": "operator"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        d.req(Method::GET, "/api/v1/me", &audrey_creds, None)
            .await
            .status,
        401
    );
    let erin_token = {
        manage::add_user(
            &d.store,
            "erin",
            Role::Operator,
            "erin password five".into(),
            now_millis(),
        )
        .await
        .unwrap();
        d.token_for(&root, "erin", None).await
    };
    let erin = Creds::Bearer(erin_token.clone());
    assert_eq!(
        d.req(Method::GET, "/api/v1/me", &erin, None).await.status,
        200
    );
    let r = d
        .req(
            Method::PATCH,
            "/api/v1/users/erin",
            &root,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        d.req(Method::GET, "/api/v1/me", &erin, None).await.status,
        401
    );

    d.assert_no_secrets_leaked(&[secret::sha256_hex(&new.token)])
        .await;
    // Token texts appeared only in their creation responses.
    let bodies = d.bodies.lock().unwrap();
    for t in [&olga, &audrey, &erin_token] {
        let n = bodies
            .iter()
            .filter(|(b, _)| b.contains(t.as_str()))
            .count();
        assert_eq!(n, 1, "token shown once");
    }
}

/// Every route of the auth module × every role (and no credentials), from its one table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::sqlite(&dir).await;
    let (_, root) = d.login("root", password("root")).await;
    let root = root.unwrap();
    let mut callers = vec![("none", None, Creds::None)];
    for (user, role) in [
        ("root", Role::Admin),
        ("olga", Role::Operator),
        ("audrey", Role::Auditor),
    ] {
        let t = d.token_for(&root, user, None).await;
        callers.push((user, Some(role), Creds::Bearer(t)));
    }
    for (method, path, need) in auth::routes::TABLE {
        let path = path
            .replace("{name}", "nobody")
            .replace("{id}", "ffffffffffff");
        let body = match (*method, path.as_str()) {
            ("POST", "/api/v1/session") => {
                Some(json!({"user": "audrey", "password": password("audrey")}))
            }
            ("POST", "/api/v1/users") => {
                Some(json!({"name": "x", "role": "auditor", "password": "p"}))
            }
            ("PATCH", _) => Some(json!({"role": "auditor"})),
            ("POST", "/api/v1/tokens") => Some(json!({"user": "nobody"})),
            _ => None,
        };
        for (who, role, creds) in &callers {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let r = d.req(m, &path, creds, body.clone()).await;
            let allowed = match (need, role) {
                (Need::Public, _) => true,
                (_, None) => false,
                (Need::Authenticated, Some(_)) => true,
                (Need::Action(a), Some(role)) => permits(*role, *a),
            };
            let what = format!("{method} {path} as {who}: {} {}", r.status, r.json);
            if allowed {
                assert!(r.status != 401 && r.status != 403, "{what}");
                assert!(r.status < 500, "{what}");
            } else if role.is_none() {
                assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{what}");
            } else {
                assert_eq!((r.status, r.code()), (403, "forbidden"), "{what}");
            }
        }
    }
    d.assert_no_secrets_leaked(&[]).await;
}

/// Five failures lock a user for the window (429 with Retry-After, even with the right
/// password); the address limit is wider. On PostgreSQL, two daemons share the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_across_daemons() {
    let pg = PgServer::start();
    let url = pg.url();
    let open = || store::open_access(&url, Some(pg.password().to_string()));
    let s1 = open().await.unwrap();
    seed(&s1).await;
    let bodies: Arc<Mutex<Vec<(String, bool)>>> = Default::default();
    let d1 = start_on(s1, None, plain_client(), bodies.clone()).await;
    let d2 = start_on(open().await.unwrap(), None, plain_client(), bodies.clone()).await;
    for i in 0..5 {
        let d = if i % 2 == 0 { &d1 } else { &d2 };
        let (r, _) = d.login("olga", "not her password").await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    for d in [&d1, &d2] {
        let (r, creds) = d.login("olga", password("olga")).await;
        assert_eq!((r.status, r.code()), (429, "rate-limited"), "{}", r.json);
        assert!(creds.is_none());
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
    }
    // Another user from the same address is not locked out (the address allows 20).
    let (r, _) = d2.login("audrey", password("audrey")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    // The address limit: 20 failures over any names lock the address.
    for i in 0..15 {
        let (r, _) = d1.login(&format!("guess{i}"), "whatever it is").await;
        assert_eq!(r.status, 401, "{i}: {}", r.json);
    }
    let (r, _) = d2.login("audrey", password("audrey")).await;
    assert_eq!((r.status, r.code()), (429, "rate-limited"), "{}", r.json);
    let entries = d1.actions().await;
    assert!(entries.contains(&("session.login".into(), "olga".into(), "rate-limited".into())));
    d1.assert_no_secrets_leaked(&[]).await;
}

fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    // Bad files are refused with a reason naming the file.
    let err = holdfast_daemon::tls::server_config(&key_file, &key_file).unwrap_err();
    assert!(err.contains("key.pem"), "{err}");
    let err = holdfast_daemon::tls::server_config(&cert_file, &cert_file).unwrap_err();
    assert!(err.contains("cert.pem"), "{err}");
    let config = holdfast_daemon::tls::server_config(&cert_file, &key_file).unwrap();

    let store = store::open_access(&dir.path().join("state.db").display().to_string(), None)
        .await
        .unwrap();
    seed(&store).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let d = start_on(store, Some(config), client, Default::default()).await;
    let (r, creds) = d.login("olga", password("olga")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
    let me = d
        .req(Method::GET, "/api/v1/me", &creds.unwrap(), None)
        .await;
    assert_eq!(me.status, 200);
    // The client address reached the audit log through the TLS listener.
    let last = d
        .store
        .audit(&AuditQuery {
            newest_first: true,
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(last[0].source, "127.0.0.1");
    // Plain HTTP to the TLS port gets no answer; a client that does not trust the certificate
    // cannot connect.
    let plain = d.base.replace("https://", "http://");
    assert!(plain_client()
        .get(format!("{plain}/healthz"))
        .send()
        .await
        .is_err());
    assert!(plain_client()
        .get(format!("{}/healthz", d.base))
        .send()
        .await
        .is_err());
    d.assert_no_secrets_leaked(&[]).await;
}
