//! The access store conformance suite (users, tokens, sessions, login failures, the audit
//! chain): every test runs against SQLite (a file in a temp dir) and a real PostgreSQL server
//! started by the test kit. Several stores opened on one database stand for several daemons.

use std::str::FromStr;
use std::sync::Arc;

use holdfast_daemon::access::Role;
use holdfast_daemon::audit;
use holdfast_daemon::store::{
    self, AccessStore, ApiToken, AuditEvent, AuditQuery, Session, User, UserUpdate,
};
use holdfast_testkit::PgServer;

const T0: i64 = 1_800_000_000_000;

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(PgServer),
}

impl Backend {
    fn all() -> Vec<Backend> {
        vec![
            Backend::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres(PgServer::start()),
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    fn location(&self) -> String {
        match self {
            Backend::Sqlite(d) => d.path().join("state.db").display().to_string(),
            Backend::Postgres(pg) => pg.url(),
        }
    }

    async fn open(&self) -> Arc<dyn AccessStore> {
        let password = match self {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.password().to_string()),
        };
        store::open_access(&self.location(), password)
            .await
            .expect("open the store")
    }

    /// Runs `sql` on the database directly, past the store.
    async fn raw(&self, sql: &str) -> u64 {
        use sqlx::Executor;
        match self {
            Backend::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new().filename(self.location()),
                )
                .await
                .unwrap();
                let n = pool.execute(sql).await.unwrap().rows_affected();
                pool.close().await;
                n
            }
            Backend::Postgres(pg) => {
                let opts = sqlx::postgres::PgConnectOptions::from_str(&pg.url())
                    .unwrap()
                    .password(pg.password());
                let pool = sqlx::PgPool::connect_with(opts).await.unwrap();
                let n = pool.execute(sql).await.unwrap().rows_affected();
                pool.close().await;
                n
            }
        }
    }
}

fn user(name: &str, role: Role) -> User {
    User {
        name: name.into(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fake${name}"),
        disabled: false,
        created_at: T0,
        updated_at: T0,
    }
}

fn event(i: usize, actor: &str) -> AuditEvent {
    AuditEvent {
        at: T0 + i as i64,
        actor: actor.into(),
        source: "127.0.0.1".into(),
        action: "test.append".into(),
        target: format!("thing-{i}"),
        result: "ok".into(),
        detail: format!("event {i} of {actor}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_tokens_and_sessions() {
    for b in Backend::all() {
        let name = b.name();
        let s = b.open().await;
        assert!(
            s.add_user(&user("alice", Role::Admin)).await.unwrap(),
            "{name}"
        );
        assert!(
            !s.add_user(&user("alice", Role::Auditor)).await.unwrap(),
            "{name}: taken"
        );
        assert!(s.add_user(&user("bob", Role::Operator)).await.unwrap());
        let got = s.user("alice").await.unwrap().unwrap();
        assert_eq!(got, user("alice", Role::Admin), "{name}");
        assert!(
            !format!("{got:?}").contains("argon2"),
            "{name}: Debug leaks the hash"
        );
        assert_eq!(s.user("carol").await.unwrap(), None);
        let names: Vec<String> = s
            .users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob"], "{name}");

        // Tokens.
        let token = ApiToken {
            id: "0123456789ab".into(),
            user: "bob".into(),
            role: Role::Operator,
            secret_hash: "ab".repeat(32),
            created_at: T0,
            expires_at: Some(T0 + 1000),
            last_used_at: None,
            revoked_at: None,
        };
        s.add_token(&token).await.unwrap();
        assert!(s.add_token(&token).await.is_err(), "{name}: duplicate id");
        assert_eq!(
            s.token("0123456789ab").await.unwrap().as_ref(),
            Some(&token)
        );
        s.token_used("0123456789ab", T0 + 5).await.unwrap();
        assert_eq!(
            s.token("0123456789ab").await.unwrap().unwrap().last_used_at,
            Some(T0 + 5)
        );
        assert_eq!(s.tokens(Some("bob")).await.unwrap().len(), 1);
        assert_eq!(s.tokens(Some("alice")).await.unwrap().len(), 0);
        assert_eq!(s.tokens(None).await.unwrap().len(), 1);
        assert!(s.revoke_token("0123456789ab", T0 + 9).await.unwrap());
        assert!(
            !s.revoke_token("0123456789ab", T0 + 10).await.unwrap(),
            "{name}: twice"
        );
        assert!(!s.revoke_token("ffffffffffff", T0 + 10).await.unwrap());
        assert_eq!(
            s.token("0123456789ab").await.unwrap().unwrap().revoked_at,
            Some(T0 + 9)
        );

        // Sessions; disabling or a new password ends them, a role change does not.
        let session = |id: &str, u: &str| Session {
            id_hash: id.into(),
            user: u.into(),
            csrf_token: format!("csrf-{id}"),
            created_at: T0,
            expires_at: T0 + 10_000,
            last_seen_at: T0,
        };
        s.add_session(&session("s1", "bob")).await.unwrap();
        s.add_session(&session("s2", "bob")).await.unwrap();
        s.add_session(&session("s3", "alice")).await.unwrap();
        assert_eq!(s.session("s1").await.unwrap(), Some(session("s1", "bob")));
        s.session_seen("s1", T0 + 100).await.unwrap();
        assert_eq!(
            s.session("s1").await.unwrap().unwrap().last_seen_at,
            T0 + 100
        );
        let role_only = UserUpdate {
            role: Some(Role::Auditor),
            ..UserUpdate::default()
        };
        assert!(s.update_user("bob", &role_only, T0 + 1).await.unwrap());
        assert!(s.session("s1").await.unwrap().is_some(), "{name}");
        assert_eq!(s.user("bob").await.unwrap().unwrap().role, Role::Auditor);
        let disable = UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        };
        assert!(s.update_user("bob", &disable, T0 + 2).await.unwrap());
        assert!(s.session("s1").await.unwrap().is_none(), "{name}: ended");
        assert!(s.session("s2").await.unwrap().is_none(), "{name}: ended");
        assert!(
            s.session("s3").await.unwrap().is_some(),
            "{name}: others' kept"
        );
        let bob = s.user("bob").await.unwrap().unwrap();
        assert!(bob.disabled && bob.updated_at == T0 + 2, "{name}");
        assert!(!s.update_user("carol", &disable, T0).await.unwrap());
        let new_password = UserUpdate {
            password_hash: Some("$argon2id$new".into()),
            ..UserUpdate::default()
        };
        assert!(s.update_user("alice", &new_password, T0 + 3).await.unwrap());
        assert!(s.session("s3").await.unwrap().is_none(), "{name}");
        assert_eq!(
            s.user("alice").await.unwrap().unwrap().password_hash,
            "$argon2id$new"
        );

        // Expired sessions: absolute end and idle.
        s.add_session(&session("old", "alice")).await.unwrap();
        s.add_session(&Session {
            last_seen_at: T0 + 9_000,
            ..session("fresh", "alice")
        })
        .await
        .unwrap();
        assert_eq!(s.end_expired_sessions(T0 + 9_500, 1_000).await.unwrap(), 1);
        assert!(s.session("fresh").await.unwrap().is_some());
        assert_eq!(
            s.end_expired_sessions(T0 + 10_000, 60_000).await.unwrap(),
            1
        );
        assert!(s.end_session("nope").await.is_ok_and(|x| !x));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_shared_between_daemons() {
    for b in Backend::all() {
        let name = b.name();
        let (d1, d2) = (b.open().await, b.open().await);
        let keys = vec!["user:alice".to_string(), "addr:10.0.0.1".to_string()];
        d1.login_failed(&keys, T0, T0 - 1000).await.unwrap();
        d2.login_failed(&keys, T0 + 10, T0 - 1000).await.unwrap();
        d2.login_failed(&keys[1..], T0 + 20, T0 - 1000)
            .await
            .unwrap();
        assert_eq!(
            d1.login_failures("user:alice", T0).await.unwrap(),
            [T0, T0 + 10],
            "{name}"
        );
        assert_eq!(
            d1.login_failures("addr:10.0.0.1", T0 + 5).await.unwrap(),
            [T0 + 10, T0 + 20]
        );
        d1.clear_login_failures("user:alice").await.unwrap();
        assert!(
            d2.login_failures("user:alice", 0).await.unwrap().is_empty(),
            "{name}"
        );
        // Old failures are forgotten on the next write.
        d1.login_failed(&keys[..1], T0 + 5_000, T0 + 15)
            .await
            .unwrap();
        assert_eq!(
            d2.login_failures("addr:10.0.0.1", 0).await.unwrap(),
            [T0 + 20],
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_appends_pages_and_verifies() {
    for b in Backend::all() {
        let name = b.name();
        let s = b.open().await;
        assert_eq!(s.audit_head().await.unwrap(), None);
        assert_eq!(audit::verify_store(s.as_ref()).await.unwrap().broken, None);
        let mut last = None;
        for i in 0..7 {
            let r = s.append_audit(&event(i, "alice")).await.unwrap();
            assert_eq!(r.seq, i as i64 + 1, "{name}");
            assert_eq!(r.hash, audit::chain_hash(&r));
            match &last {
                None => assert_eq!(r.prev_hash, audit::GENESIS),
                Some(prev) => assert_eq!(&r.prev_hash, prev),
            }
            last = Some(r.hash.clone());
        }
        assert_eq!(
            s.audit_head().await.unwrap(),
            Some((7, last.clone().unwrap()))
        );
        let page = s
            .audit(&AuditQuery {
                newest_first: true,
                limit: 3,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [7, 6, 5],
            "{name}"
        );
        let page = s
            .audit(&AuditQuery {
                newest_first: true,
                before_seq: Some(5),
                limit: 3,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 3, 2]);
        let page = s
            .audit(&AuditQuery {
                since: Some(T0 + 5),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [6, 7],
            "{name}"
        );
        let report = audit::verify_store(s.as_ref()).await.unwrap();
        assert_eq!((report.entries, report.broken), (7, None), "{name}");

        // Edited in the database: found at that entry.
        b.raw("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3")
            .await;
        let broken = audit::verify_store(s.as_ref())
            .await
            .unwrap()
            .broken
            .expect(name);
        assert_eq!(broken.seq, 3, "{name}: {broken}");
        assert!(
            matches!(broken.problem, audit::Problem::Edited),
            "{name}: {broken}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_entries_are_found_also_the_last() {
    for b in Backend::all() {
        let name = b.name();
        let s = b.open().await;
        for i in 0..5 {
            s.append_audit(&event(i, "bob")).await.unwrap();
        }
        assert_eq!(b.raw("DELETE FROM audit_log WHERE seq = 5").await, 1);
        let broken = audit::verify_store(s.as_ref())
            .await
            .unwrap()
            .broken
            .expect(name);
        assert_eq!(broken.seq, 5, "{name}: {broken}");
        assert!(
            matches!(broken.problem, audit::Problem::Removed { .. }),
            "{broken}"
        );
        // An append after the removal continues from the recorded head: the gap stays.
        let r = s.append_audit(&event(9, "bob")).await.unwrap();
        assert_eq!(r.seq, 6, "{name}");
        let broken = audit::verify_store(s.as_ref())
            .await
            .unwrap()
            .broken
            .expect(name);
        assert_eq!(broken.seq, 5, "{name}: {broken}");
        assert_eq!(b.raw("DELETE FROM audit_log WHERE seq = 2").await, 1);
        let broken = audit::verify_store(s.as_ref())
            .await
            .unwrap()
            .broken
            .expect(name);
        assert_eq!(broken.seq, 2, "{name}: {broken}");
    }
}

/// Two daemons (two stores, two pools) appending at once keep one chain: no seq twice, no fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_keep_one_chain() {
    const EACH: usize = 60;
    for b in Backend::all() {
        let name = b.name();
        let stores = [b.open().await, b.open().await, b.open().await];
        let mut tasks = tokio::task::JoinSet::new();
        for (n, s) in stores.iter().enumerate() {
            for w in 0..2 {
                let s = s.clone();
                tasks.spawn(async move {
                    for i in 0..EACH {
                        s.append_audit(&event(i, &format!("daemon-{n}-{w}")))
                            .await
                            .expect("append");
                    }
                });
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let report = audit::verify_store(stores[0].as_ref()).await.unwrap();
        assert_eq!(report.broken, None, "{name}");
        assert_eq!(report.entries, 6 * EACH as u64, "{name}");
        assert_eq!(report.head, Some(6 * EACH as i64), "{name}");
    }
}
