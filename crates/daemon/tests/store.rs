//! The job store conformance suite: every test runs against SQLite (a file in a temp dir) and
//! against a real PostgreSQL server started by the test kit (one per test). Several
//! `JobStore`s opened on one database stand for several daemons.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_daemon::jobs::queue::Limits;
use holdfast_daemon::jobs::{JobKind, JobSpec, JobState, Trigger};
use holdfast_daemon::store::schema::SCHEMA_VERSION;
use holdfast_daemon::store::{self, Change, JobFilter, JobStore, LogLine, StoreError};
use holdfast_daemon::time::{now_millis, Millis};
use holdfast_testkit::PgServer;

const T0: Millis = 1_800_000_000_000;
const LEASE: Millis = 30_000;

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(PgServer),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    fn postgres() -> Backend {
        Backend::Postgres(PgServer::start())
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    fn location(&self) -> String {
        match self {
            Backend::Sqlite(dir) => dir.path().join("state.db").display().to_string(),
            Backend::Postgres(pg) => pg.url(),
        }
    }

    fn password(&self) -> Option<String> {
        match self {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.password().to_string()),
        }
    }

    /// A store as one daemon opens it.
    async fn try_open(&self) -> store::Result<Box<dyn JobStore>> {
        store::open(&self.location(), self.password()).await
    }

    async fn open(&self) -> Box<dyn JobStore> {
        self.try_open().await.expect("open the store")
    }

    /// Runs `sql` on the database directly, past the store.
    async fn raw(&self, sql: &str) -> Result<u64, sqlx::Error> {
        use sqlx::Executor;
        match self {
            Backend::Sqlite(_) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.location())
                    .foreign_keys(true);
                let pool = sqlx::SqlitePool::connect_with(opts).await?;
                let r = pool.execute(sql).await.map(|r| r.rows_affected());
                pool.close().await;
                r
            }
            Backend::Postgres(pg) => {
                let opts =
                    sqlx::postgres::PgConnectOptions::from_str(&pg.url())?.password(pg.password());
                let pool = sqlx::PgPool::connect_with(opts).await?;
                let r = pool.execute(sql).await.map(|r| r.rows_affected());
                pool.close().await;
                r
            }
        }
    }
}

fn spec(server: &str, kind: JobKind) -> JobSpec {
    JobSpec {
        server: server.to_string(),
        host: format!("host-{server}"),
        repository: "main".to_string(),
        kind,
        priority: kind.default_priority(),
        timeout_ms: 3_600_000,
        max_attempts: 3,
        backoff_base_ms: 1_000,
        backoff_cap_ms: 60_000,
        schedule: None,
        planned_at: None,
        trigger: Trigger::Manual,
        requested_by: Some("alice".to_string()),
        restore: None,
    }
}

fn scheduled(server: &str, kind: JobKind, schedule: &str, planned_at: Millis) -> JobSpec {
    JobSpec {
        schedule: Some(schedule.to_string()),
        planned_at: Some(planned_at),
        trigger: Trigger::Schedule,
        requested_by: None,
        restore: None,
        ..spec(server, kind)
    }
}

fn change(from: JobState, to: JobState, at: Millis, worker: Option<&str>) -> Change {
    Change {
        from,
        to,
        at,
        worker: worker.map(str::to_string),
        message: format!("{from} -> {to}"),
        run_at: None,
        exit_code: None,
        error: None,
        result: None,
    }
}

const LIMITS: Limits = Limits {
    global: 2,
    per_host: 1,
};

async fn enqueue_fires_once(b: Backend) {
    let s = b.open().await;
    let sched = scheduled("db1", JobKind::Backup, "db1/0:backup", T0);
    let job = s
        .enqueue(&sched, T0, T0)
        .await
        .unwrap()
        .expect("first fire");
    assert_eq!(job.spec, sched);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.attempt, job.run_at, job.created_at), (0, T0, T0));
    assert_eq!(job.trace_id.len(), 32, "a W3C-sized trace id");
    assert_eq!(s.job(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(s.job(job.id + 1000).await.unwrap(), None);

    assert_eq!(
        s.enqueue(&sched, T0 + 5, T0 + 5).await.unwrap(),
        None,
        "fired twice"
    );
    let next = scheduled("db1", JobKind::Backup, "db1/0:backup", T0 + 1_000);
    assert!(s
        .enqueue(&next, T0 + 1_000, T0 + 1_000)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.last_planned("db1/0:backup").await.unwrap(),
        Some(T0 + 1_000)
    );
    assert_eq!(s.last_planned("db9/0:drill").await.unwrap(), None);

    // Manual jobs have no planned time: any number of them.
    let a = s
        .enqueue(&spec("db1", JobKind::Verify), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let c = s
        .enqueue(&spec("db1", JobKind::Verify), T0, T0)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.id, c.id);
    assert_ne!(a.trace_id, c.trace_id);

    let ts = s.transitions(job.id).await.unwrap();
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (ts[0].from, ts[0].to, ts[0].attempt),
        (None, JobState::Queued, 0)
    );
    assert!(ts[0].message.contains("db1/0:backup"), "{}", ts[0].message);
    let manual = s.transitions(a.id).await.unwrap();
    assert!(manual[0].message.contains("alice"), "{}", manual[0].message);

    // Four daemons firing the same planned run at once: exactly one job.
    let mut daemons = Vec::new();
    for _ in 0..4 {
        daemons.push(Arc::new(b.open().await));
    }
    let racing = scheduled("db2", JobKind::Backup, "db2/0:backup", T0);
    let mut tasks = Vec::new();
    for d in &daemons {
        for _ in 0..5 {
            let (d, racing) = (d.clone(), racing.clone());
            tasks.push(tokio::spawn(
                async move { d.enqueue(&racing, T0, T0).await },
            ));
        }
    }
    let mut fired = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            fired += 1;
        }
    }
    assert_eq!(fired, 1);
    let filter = JobFilter {
        server: Some("db2".into()),
        ..JobFilter::default()
    };
    assert_eq!(s.jobs(&filter).await.unwrap().len(), 1);
}

async fn claim_order_and_limits(b: Backend) {
    let s = b.open().await;
    let drill = s
        .enqueue(&spec("db1", JobKind::Drill), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let backup = s
        .enqueue(&spec("db2", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let later = T0 + 60_000;
    let verify = s
        .enqueue(&spec("db3", JobKind::Verify), later, T0)
        .await
        .unwrap()
        .unwrap();

    let got = s.claim("w1", 0, &LIMITS, T0, LEASE).await.unwrap().unwrap();
    assert_eq!(got.id, backup.id, "higher priority first");
    assert_eq!(got.state, JobState::Running);
    assert_eq!(got.attempt, 1);
    assert_eq!(got.worker.as_deref(), Some("w1"));
    assert_eq!(got.lease_until, Some(T0 + LEASE));
    let ts = s.transitions(backup.id).await.unwrap();
    assert_eq!(ts.len(), 2);
    assert_eq!(
        (ts[1].from, ts[1].to),
        (Some(JobState::Queued), JobState::Running)
    );
    assert_eq!((ts[1].attempt, ts[1].worker.as_deref()), (1, Some("w1")));

    assert_eq!(
        s.claim("w1", 2, &LIMITS, T0, LEASE).await.unwrap(),
        None,
        "global limit"
    );
    let got = s.claim("w1", 1, &LIMITS, T0, LEASE).await.unwrap().unwrap();
    assert_eq!(got.id, drill.id);
    assert_eq!(
        s.claim("w2", 0, &LIMITS, T0, LEASE).await.unwrap(),
        None,
        "not due"
    );
    let got = s
        .claim("w2", 0, &LIMITS, later, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, verify.id);

    // One server-loading job per server; other kinds are not held back.
    let incr = s
        .enqueue(&spec("db2", JobKind::Incremental), T0, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.claim("w2", 0, &LIMITS, later, LEASE).await.unwrap(), None);
    let v2 = s
        .enqueue(&spec("db2", JobKind::Verify), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let got = s
        .claim("w2", 0, &LIMITS, later, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, v2.id);

    // Per host: db4 shares db2's host.
    let mut on_host = spec("db4", JobKind::BackupPhysical);
    on_host.host = "host-db2".into();
    let physical = s.enqueue(&on_host, T0, T0).await.unwrap().unwrap();
    assert_eq!(s.claim("w2", 0, &LIMITS, later, LEASE).await.unwrap(), None);
    let roomy = Limits {
        global: 4,
        per_host: 2,
    };
    let got = s
        .claim("w2", 0, &roomy, later, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, physical.id);

    // The incremental runs once db2's backup ends.
    assert!(s
        .transition(
            backup.id,
            &change(JobState::Running, JobState::Succeeded, later, Some("w1"))
        )
        .await
        .unwrap());
    let got = s
        .claim("w2", 0, &roomy, later, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, incr.id);

    // Aging: a drill that waited 81 minutes passes a fresh backup.
    let t1 = T0 + 10 * 3_600_000;
    let old = s
        .enqueue(&spec("db5", JobKind::Drill), t1 - 81 * 60_000, T0)
        .await
        .unwrap()
        .unwrap();
    s.enqueue(&spec("db6", JobKind::Backup), t1, t1)
        .await
        .unwrap()
        .unwrap();
    let got = s.claim("w3", 0, &LIMITS, t1, LEASE).await.unwrap().unwrap();
    assert_eq!(got.id, old.id);
}

async fn guarded_transitions(b: Backend) {
    let s = b.open().await;
    let job = s
        .enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    s.claim("w1", 0, &LIMITS, T0, LEASE).await.unwrap().unwrap();
    let before = s.job(job.id).await.unwrap().unwrap();

    // Wrong `from`, wrong worker: nothing changes.
    let wrong = change(JobState::Queued, JobState::Cancelled, T0 + 1, None);
    assert!(!s.transition(job.id, &wrong).await.unwrap());
    let other = change(JobState::Running, JobState::Succeeded, T0 + 1, Some("w2"));
    assert!(!s.transition(job.id, &other).await.unwrap());
    assert!(!s.transition(job.id + 1000, &other).await.unwrap());
    assert_eq!(s.job(job.id).await.unwrap().unwrap(), before);
    assert_eq!(s.transitions(job.id).await.unwrap().len(), 2);

    let mut done = change(JobState::Running, JobState::Succeeded, T0 + 2, Some("w1"));
    done.exit_code = Some(0);
    done.result = Some(serde_json::json!({"backup": "20260101T000000Z", "bytes": 42}));
    assert!(s.transition(job.id, &done).await.unwrap());
    let after = s.job(job.id).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Succeeded);
    assert_eq!(after.exit_code, Some(0));
    assert_eq!(after.result, done.result);
    assert_eq!((after.worker, after.lease_until), (None, None));
    assert_eq!(after.updated_at, T0 + 2);
    let ts = s.transitions(job.id).await.unwrap();
    assert_eq!(ts.len(), 3);
    assert_eq!(ts[2].message, done.message);
    assert_eq!((ts[2].at, ts[2].attempt), (T0 + 2, 1));
    // A second worker's end, arriving late, changes nothing.
    let late = change(JobState::Running, JobState::Failed, T0 + 3, Some("w1"));
    assert!(!s.transition(job.id, &late).await.unwrap());

    // Moves outside the state machine are errors, not races.
    for (from, to) in [
        (JobState::Succeeded, JobState::Running),
        (JobState::Queued, JobState::Succeeded),
        (JobState::Retrying, JobState::Running),
    ] {
        let err = s
            .transition(job.id, &change(from, to, T0, None))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidMove { .. }), "{err}");
        assert!(!err.is_transient());
    }

    // Retrying: not claimed before run_at, then the next attempt.
    let r = s
        .enqueue(&spec("db2", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    s.claim("w1", 0, &LIMITS, T0, LEASE).await.unwrap().unwrap();
    let mut retry = change(JobState::Running, JobState::Retrying, T0 + 10, Some("w1"));
    retry.run_at = Some(T0 + 5_000);
    retry.exit_code = Some(10);
    retry.error = Some("cannot connect to db2".into());
    assert!(s.transition(r.id, &retry).await.unwrap());
    let j = s.job(r.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.run_at, j.attempt),
        (JobState::Retrying, T0 + 5_000, 1)
    );
    assert_eq!(j.last_error.as_deref(), Some("cannot connect to db2"));
    assert_eq!(
        s.claim("w1", 0, &LIMITS, T0 + 4_999, LEASE).await.unwrap(),
        None
    );
    let j = s
        .claim("w2", 0, &LIMITS, T0 + 5_000, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (j.id, j.attempt, j.worker.as_deref()),
        (r.id, 2, Some("w2"))
    );
    assert_eq!(
        j.last_error.as_deref(),
        Some("cannot connect to db2"),
        "kept for the UI"
    );

    // Running -> queued gives the attempt back.
    assert!(s
        .transition(
            r.id,
            &change(JobState::Running, JobState::Queued, T0 + 6_000, Some("w2"))
        )
        .await
        .unwrap());
    let j = s.job(r.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempt, j.run_at),
        (JobState::Queued, 1, T0 + 6_000)
    );

    // Cancel a waiting job (no worker holds it).
    let q = s
        .enqueue(&spec("db3", JobKind::Drill), T0 + 60_000, T0)
        .await
        .unwrap()
        .unwrap();
    assert!(s
        .transition(
            q.id,
            &change(JobState::Queued, JobState::Cancelled, T0, None)
        )
        .await
        .unwrap());
    assert_eq!(
        s.job(q.id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
}

async fn heartbeat_and_lease_loss(b: Backend) {
    let s = b.open().await;
    let job = s
        .enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    s.claim("w1", 0, &LIMITS, T0, 10_000)
        .await
        .unwrap()
        .unwrap();
    assert!(s.heartbeat(job.id, "w1", T0 + 5_000, 10_000).await.unwrap());
    assert_eq!(
        s.job(job.id).await.unwrap().unwrap().lease_until,
        Some(T0 + 15_000)
    );
    assert!(!s.heartbeat(job.id, "w2", T0 + 5_000, 10_000).await.unwrap());
    assert!(!s
        .heartbeat(job.id + 1000, "w1", T0 + 5_000, 10_000)
        .await
        .unwrap());

    assert_eq!(
        s.rescue_expired(T0 + 14_999).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(s.rescue_expired(T0 + 15_001).await.unwrap(), vec![job.id]);
    // The worker learns it lost the job, and cannot finish it.
    assert!(!s
        .heartbeat(job.id, "w1", T0 + 16_000, 10_000)
        .await
        .unwrap());
    let end = change(
        JobState::Running,
        JobState::Succeeded,
        T0 + 16_000,
        Some("w1"),
    );
    assert!(!s.transition(job.id, &end).await.unwrap());
    assert_eq!(
        s.job(job.id).await.unwrap().unwrap().state,
        JobState::Retrying
    );
}

async fn rescue_expired_spends_attempts(b: Backend) {
    let s = b.open().await;
    let mut one_retry = spec("db1", JobKind::Backup);
    one_retry.max_attempts = 2;
    let job = s.enqueue(&one_retry, T0, T0).await.unwrap().unwrap();
    let other = s
        .enqueue(&spec("db2", JobKind::Verify), T0, T0)
        .await
        .unwrap()
        .unwrap();
    s.claim("w1", 0, &LIMITS, T0, 1_000).await.unwrap().unwrap();
    let v = s
        .claim("w1", 1, &LIMITS, T0, 1_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.id, other.id);

    assert_eq!(
        s.rescue_expired(T0 + 2_000).await.unwrap(),
        vec![job.id],
        "only the expired"
    );
    let j = s.job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.run_at, j.attempt),
        (JobState::Retrying, T0 + 2_000, 1)
    );
    assert_eq!((j.worker, j.lease_until), (None, None));
    let ts = s.transitions(job.id).await.unwrap();
    let last = ts.last().unwrap();
    assert_eq!(
        (last.from, last.to),
        (Some(JobState::Running), JobState::Retrying)
    );
    assert_eq!(last.worker.as_deref(), Some("w1"));
    assert!(
        last.message.contains("lease expired") && last.message.contains("w1"),
        "{}",
        last.message
    );

    let j = s
        .claim("w2", 0, &LIMITS, T0 + 2_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j.id, j.attempt), (job.id, 2));
    assert_eq!(s.rescue_expired(T0 + 4_000).await.unwrap(), vec![job.id]);
    let j = s.job(job.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Failed, "no attempts left");
    assert!(j.last_error.unwrap().contains("w2"));
    assert_eq!(
        s.rescue_expired(T0 + 10_000).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        s.job(other.id).await.unwrap().unwrap().state,
        JobState::Running
    );
}

async fn logs(b: Backend) {
    let s = b.open().await;
    let a = s
        .enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let c = s
        .enqueue(&spec("db2", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<LogLine> = (0..3)
        .map(|i| LogLine {
            at: T0 + i,
            attempt: 1 + (i as u32) / 2,
            line: format!("line {i}: ünïcode\ttab"),
        })
        .collect();
    for l in &lines {
        s.append_log(a.id, l).await.unwrap();
    }
    let single = LogLine {
        at: T0,
        attempt: 1,
        line: "other".into(),
    };
    s.append_log(c.id, &single).await.unwrap();
    assert_eq!(s.log(a.id).await.unwrap(), lines);
    assert_eq!(s.log(c.id).await.unwrap(), vec![single.clone()]);
    assert_eq!(s.log(c.id + 1000).await.unwrap(), vec![]);
    assert!(
        s.append_log(c.id + 1000, &single).await.is_err(),
        "no such job"
    );
}

async fn counts_and_listing(b: Backend) {
    let s = b.open().await;
    let counts = s.count_by_state().await.unwrap();
    assert_eq!(counts.len(), JobState::ALL.len());
    assert!(counts.iter().all(|(_, n)| *n == 0));
    let mut ids = Vec::new();
    for (i, server) in ["db1", "db2", "db1", "db3", "db1"].into_iter().enumerate() {
        let j = s
            .enqueue(&spec(server, JobKind::Verify), T0 + i as i64, T0)
            .await
            .unwrap();
        ids.push(j.unwrap().id);
    }
    s.claim("w1", 0, &LIMITS, T0, LEASE).await.unwrap().unwrap();
    assert!(s
        .transition(
            ids[4],
            &change(JobState::Queued, JobState::Cancelled, T0, None)
        )
        .await
        .unwrap());
    let counts: HashMap<JobState, i64> = s.count_by_state().await.unwrap().into_iter().collect();
    assert_eq!(counts[&JobState::Queued], 3);
    assert_eq!(counts[&JobState::Running], 1);
    assert_eq!(counts[&JobState::Cancelled], 1);
    assert_eq!(counts[&JobState::Failed], 0);

    let all = s.jobs(&JobFilter::default()).await.unwrap();
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);
    let db1 = JobFilter {
        server: Some("db1".into()),
        ..JobFilter::default()
    };
    let got: Vec<i64> = s.jobs(&db1).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(got, vec![ids[4], ids[2], ids[0]]);
    let page = JobFilter {
        server: Some("db1".into()),
        limit: Some(1),
        before_id: Some(ids[4]),
        ..JobFilter::default()
    };
    let got: Vec<i64> = s.jobs(&page).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(got, vec![ids[2]]);
    let states = JobFilter {
        states: vec![JobState::Running, JobState::Cancelled],
        ..JobFilter::default()
    };
    let got: Vec<i64> = s
        .jobs(&states)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![ids[4], ids[0]]);
}

async fn schema_versions(b: Backend) {
    let s = b.open().await;
    s.enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    drop(s);
    // Reopening an up-to-date store keeps its jobs.
    let s = b.open().await;
    assert_eq!(s.jobs(&JobFilter::default()).await.unwrap().len(), 1);
    drop(s);
    b.raw("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
        .await
        .unwrap();
    let err = b.try_open().await.err().expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::TooNew { found: 999, supported } if supported == SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade holdfast"), "{err}");
    assert!(!err.is_transient());
}

/// A restore job keeps its target and what it restores; a version 2 store (before restore jobs)
/// is upgraded in place, its jobs kept.
async fn restore_jobs_and_the_v3_upgrade(b: Backend) {
    let s = b.open().await;
    let old = s
        .enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    drop(s);
    for col in [
        "restore_target",
        "restore_backup",
        "restore_to_time",
        "restore_to_gtid",
    ] {
        b.raw(&format!("ALTER TABLE jobs DROP COLUMN {col}"))
            .await
            .unwrap();
    }
    b.raw("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        .await
        .unwrap();
    let s = b.open().await;
    assert_eq!(s.job(old.id).await.unwrap(), Some(old));
    let mut restore = spec("db1", JobKind::Restore);
    restore.restore = Some(holdfast_daemon::jobs::RestoreParams {
        target: "staging".into(),
        backup: Some("20261207T020000Z-1a2b".into()),
        to_time: Some("2026-12-07T08:00:00Z".into()),
        to_gtid: None,
    });
    let job = s.enqueue(&restore, T0, T0).await.unwrap().unwrap();
    assert_eq!(job.spec, restore);
    assert_eq!(s.job(job.id).await.unwrap().unwrap().spec, restore);
}

/// The database itself refuses a second running server-loading job on one server.
async fn server_index_is_enforced(b: Backend) {
    let s = b.open().await;
    let first = s
        .enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let second = s
        .enqueue(&spec("db1", JobKind::Incremental), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let verify = s
        .enqueue(&spec("db1", JobKind::Verify), T0, T0)
        .await
        .unwrap()
        .unwrap();
    s.claim("w1", 0, &LIMITS, T0, LEASE).await.unwrap().unwrap();
    let sql =
        |id: i64| format!("UPDATE jobs SET state = 'running', worker = 'rogue' WHERE id = {id}");
    let err = b.raw(&sql(second.id)).await.expect_err("unique index");
    assert!(
        matches!(&err, sqlx::Error::Database(e) if e.is_unique_violation()),
        "{err}"
    );
    assert_eq!(
        b.raw(&sql(verify.id)).await.unwrap(),
        1,
        "verify does not load the server"
    );
    assert_eq!(
        s.job(first.id).await.unwrap().unwrap().state,
        JobState::Running
    );
}

/// Many workers in several daemons claim and finish jobs as fast as they can; replaying the
/// recorded transitions shows that no two server-loading jobs ever ran at once on one server,
/// nor more than `per_host` on one host, and that every job ran exactly once.
async fn concurrent_claimers_never_overlap(b: Backend) {
    const DAEMONS: usize = 4;
    const WORKERS_PER_DAEMON: usize = 4;
    let limits = Limits {
        global: 1,
        per_host: 1,
    };
    let start = now_millis();
    let setup = b.open().await;
    // db2 and db3 share a host.
    let servers = [
        ("db0", "h0"),
        ("db1", "h1"),
        ("db2", "shared"),
        ("db3", "shared"),
    ];
    let kinds = [
        JobKind::Backup,
        JobKind::Incremental,
        JobKind::BackupPhysical,
        JobKind::Verify,
        JobKind::Drill,
    ];
    let mut total = 0;
    for round in 0..6 {
        for (server, host) in servers {
            for kind in kinds {
                let mut sp = spec(server, kind);
                sp.host = host.to_string();
                sp.priority += round;
                setup.enqueue(&sp, start, start).await.unwrap().unwrap();
                total += 1;
            }
        }
    }
    let began = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..DAEMONS {
        let store: Arc<Box<dyn JobStore>> = Arc::new(b.open().await);
        for w in 0..WORKERS_PER_DAEMON {
            let store = store.clone();
            let worker = format!("d{d}-w{w}");
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut ran = 0;
                loop {
                    assert!(Instant::now() < deadline, "{worker}: jobs never finished");
                    let claimed = store
                        .claim(&worker, 0, &limits, now_millis(), LEASE)
                        .await
                        .unwrap();
                    let Some(job) = claimed else {
                        let counts: HashMap<JobState, i64> =
                            store.count_by_state().await.unwrap().into_iter().collect();
                        if counts[&JobState::Queued] == 0 && counts[&JobState::Running] == 0 {
                            return ran;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    };
                    tokio::time::sleep(Duration::from_millis(job.id as u64 % 3)).await;
                    let end = change(
                        JobState::Running,
                        JobState::Succeeded,
                        now_millis(),
                        Some(&worker),
                    );
                    assert!(
                        store.transition(job.id, &end).await.unwrap(),
                        "{worker} lost {}",
                        job.id
                    );
                    ran += 1;
                }
            }));
        }
    }
    let mut ran = 0;
    for t in tasks {
        ran += t.await.unwrap();
    }
    assert_eq!(ran, total);
    let took = began.elapsed();
    eprintln!(
        "{}: {total} jobs claimed and finished by {} workers in {} daemons in {took:?} ({:.0} jobs/s)",
        b.name(),
        DAEMONS * WORKERS_PER_DAEMON,
        DAEMONS,
        total as f64 / took.as_secs_f64()
    );

    let jobs: HashMap<i64, JobSpec> = setup
        .jobs(&JobFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|j| {
            assert_eq!(j.state, JobState::Succeeded);
            assert_eq!(j.attempt, 1, "job {} ran more than once", j.id);
            (j.id, j.spec)
        })
        .collect();
    let mut running: Vec<i64> = Vec::new();
    let mut overlapped_kinds = 0;
    for t in setup.transitions_since(start).await.unwrap() {
        let sp = &jobs[&t.job_id];
        if t.to == JobState::Running {
            if sp.kind.loads_server() {
                for other in &running {
                    let o = &jobs[other];
                    if !o.kind.loads_server() {
                        continue;
                    }
                    assert_ne!(o.server, sp.server, "jobs {other} and {} overlap", t.job_id);
                    assert_ne!(o.host, sp.host, "per-host limit: {other} and {}", t.job_id);
                }
            }
            if !running.is_empty() {
                overlapped_kinds += 1;
            }
            running.push(t.job_id);
        } else if t.from == Some(JobState::Running) {
            running.retain(|id| *id != t.job_id);
        }
    }
    assert!(running.is_empty());
    assert!(
        overlapped_kinds > 0,
        "the workers never ran concurrently: the test proves nothing"
    );
}

/// One daemon claiming and finishing 200 jobs in a row: every claim is quick (reported with
/// `--nocapture`; the bound is loose for busy CI machines).
async fn claim_latency(b: Backend) {
    let s = b.open().await;
    for i in 0..200 {
        let server = format!("db{}", i % 20);
        s.enqueue(&spec(&server, JobKind::Backup), T0, T0)
            .await
            .unwrap()
            .unwrap();
    }
    let mut took = Vec::new();
    loop {
        let t = Instant::now();
        let Some(job) = s.claim("w1", 0, &LIMITS, T0, LEASE).await.unwrap() else {
            break;
        };
        took.push(t.elapsed());
        let end = change(JobState::Running, JobState::Succeeded, T0, Some("w1"));
        assert!(s.transition(job.id, &end).await.unwrap());
    }
    assert_eq!(took.len(), 200);
    took.sort();
    let (p50, p99) = (took[took.len() / 2], took[took.len() * 99 / 100]);
    eprintln!(
        "{}: claim latency over 200 jobs: p50 {p50:?}, p99 {p99:?}",
        b.name()
    );
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");
}

/// `[daemon] keep_history`: jobs that ended before the cutoff go with their transitions and
/// logs; waiting, running and retrying jobs stay however old, and so does each schedule's newest
/// run (catch-up after downtime reads its planned time).
async fn prune_history_keeps_what_matters(b: Backend) {
    let s = b.open().await;
    let old = T0 + 10;
    let cutoff = T0 + 1_000_000;
    let recent = T0 + 2_000_000;
    // Runs `spec` to `to` at `at` (through running); returns its id.
    let run = |spec: JobSpec, to: JobState, at: Millis| {
        let s = &s;
        async move {
            let job = s.enqueue(&spec, T0, T0).await.unwrap().unwrap();
            let claimed = s
                .claim("w", 0, &LIMITS, T0 + 1, 60_000)
                .await
                .unwrap()
                .expect("claimable");
            assert_eq!(claimed.id, job.id);
            s.append_log(
                job.id,
                &LogLine {
                    at: T0 + 2,
                    attempt: 1,
                    line: "working".into(),
                },
            )
            .await
            .unwrap();
            if to != JobState::Running {
                let mut c = change(JobState::Running, to, at, Some("w"));
                if to == JobState::Retrying {
                    c.run_at = Some(at + 1_000);
                }
                assert!(s.transition(job.id, &c).await.unwrap());
            }
            job.id
        }
    };
    let a = run(spec("db1", JobKind::Backup), JobState::Succeeded, old).await;
    let f = run(spec("db2", JobKind::Backup), JobState::Failed, old).await;
    let t = run(spec("db3", JobKind::Verify), JobState::TimedOut, old).await;
    let kept_recent = run(spec("db4", JobKind::Backup), JobState::Succeeded, recent).await;
    let retrying = run(spec("db5", JobKind::Backup), JobState::Retrying, old).await;
    let sched_old = run(
        scheduled("db6", JobKind::Verify, "db6/0:verify", T0),
        JobState::Succeeded,
        old,
    )
    .await;
    let sched_newest = run(
        scheduled("db6", JobKind::Verify, "db6/0:verify", T0 + 1_000),
        JobState::Succeeded,
        old,
    )
    .await;
    let running = run(spec("db7", JobKind::Backup), JobState::Running, old).await;
    let queued = s
        .enqueue(&spec("db8", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap()
        .id;
    let cancelled = s
        .enqueue(&spec("db9", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(s
        .transition(
            cancelled,
            &change(JobState::Queued, JobState::Cancelled, old, None)
        )
        .await
        .unwrap());

    let gone = [a, f, t, sched_old, cancelled];
    let mut expected_transitions = 0;
    for id in gone {
        expected_transitions += s.transitions(id).await.unwrap().len() as u64;
    }
    let pruned = s.prune_history(cutoff).await.unwrap();
    assert_eq!(
        pruned,
        store::Pruned {
            jobs: 5,
            transitions: expected_transitions,
            log_lines: 4
        },
        "{}",
        b.name()
    );
    for id in gone {
        assert_eq!(
            s.job(id).await.unwrap(),
            None,
            "{} job {id} pruned",
            b.name()
        );
        assert!(s.transitions(id).await.unwrap().is_empty());
        assert!(s.log(id).await.unwrap().is_empty());
    }
    for id in [kept_recent, retrying, sched_newest, running, queued] {
        assert!(
            s.job(id).await.unwrap().is_some(),
            "{} job {id} kept",
            b.name()
        );
        assert!(!s.transitions(id).await.unwrap().is_empty());
    }
    assert_eq!(s.log(running).await.unwrap().len(), 1);
    assert_eq!(
        s.last_planned("db6/0:verify").await.unwrap(),
        Some(T0 + 1_000)
    );
    // The transitions left are only the kept jobs'.
    let left: std::collections::BTreeSet<i64> = s
        .transitions_since(0)
        .await
        .unwrap()
        .iter()
        .map(|t| t.job_id)
        .collect();
    assert_eq!(
        left,
        [kept_recent, retrying, sched_newest, running, queued]
            .into_iter()
            .collect()
    );
    // Nothing more to prune.
    assert_eq!(
        s.prune_history(cutoff).await.unwrap(),
        store::Pruned::default()
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::postgres()).await
                }
            )*
        }
    };
}

conformance!(
    enqueue_fires_once,
    claim_order_and_limits,
    guarded_transitions,
    heartbeat_and_lease_loss,
    rescue_expired_spends_attempts,
    logs,
    counts_and_listing,
    schema_versions,
    server_index_is_enforced,
    concurrent_claimers_never_overlap,
    claim_latency,
    restore_jobs_and_the_v3_upgrade,
    prune_history_keeps_what_matters,
);

#[tokio::test]
async fn open_chooses_by_location_and_explains_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    for location in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
        path.display().to_string(),
    ] {
        let s = store::open(&location, None).await.unwrap();
        s.enqueue(&spec("db1", JobKind::Verify), T0, T0)
            .await
            .unwrap()
            .unwrap();
    }
    let s = store::open(&path.display().to_string(), None)
        .await
        .unwrap();
    assert_eq!(
        s.jobs(&JobFilter::default()).await.unwrap().len(),
        3,
        "one file"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let missing = dir.path().join("no/such/dir/state.db");
    let err = store::open(&missing.display().to_string(), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = store::open("mysql://u:hunter2@h/db", None)
        .await
        .err()
        .unwrap();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("postgres://"), "{err}");
    assert!(store::open("", None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_password_stays_out_of_errors() {
    let pg = PgServer::start();
    let err = store::open(&pg.url(), Some("wrong-secret".into()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("wrong-secret"), "{err}");
    let in_url = pg.url().replace("holdfast@", "holdfast:url-secret@");
    let err = store::open(&in_url, None).await.err().unwrap();
    assert!(!err.to_string().contains("url-secret"), "{err}");
    assert!(err.to_string().contains("holdfast:***@"), "{err}");
    // The right password, given apart from the URL, works.
    let s = store::open(&pg.url(), Some(pg.password().to_string()))
        .await
        .unwrap();
    assert_eq!(s.count_by_state().await.unwrap().len(), JobState::ALL.len());
}

/// PostgreSQL: a claim whose pick hits the per-server index (another daemon's job on the same
/// server, committed while the claim waited) treats it as "not now" and takes its next
/// candidate. The other daemon is played by a raw transaction that marks a job running
/// without the host lock, as a daemon with a different idea of the server's host would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_index_conflict_means_next_candidate() {
    use sqlx::Connection;
    let b = Backend::postgres();
    let s = b.open().await;
    let theirs = s
        .enqueue(&spec("db1", JobKind::Backup), T0, T0)
        .await
        .unwrap()
        .unwrap();
    let mut mine = spec("db1", JobKind::Incremental);
    mine.priority = 500;
    let mine = s.enqueue(&mine, T0, T0).await.unwrap().unwrap();
    let verify = s
        .enqueue(&spec("db2", JobKind::Verify), T0, T0)
        .await
        .unwrap()
        .unwrap();

    let Backend::Postgres(pg) = &b else {
        unreachable!()
    };
    let opts = sqlx::postgres::PgConnectOptions::from_str(&pg.url())
        .unwrap()
        .password(pg.password());
    let mut other = sqlx::PgConnection::connect_with(&opts).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    let n = sqlx::query("UPDATE jobs SET state = 'running', worker = 'other' WHERE id = $1")
        .bind(theirs.id)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);

    // The claim cannot see the uncommitted running job, picks the incremental (highest
    // priority), and its UPDATE waits on the index entry of the other transaction.
    let s = Arc::new(s);
    let claimer = {
        let s = s.clone();
        tokio::spawn(async move { s.claim("w1", 0, &LIMITS, T0, LEASE).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !claimer.is_finished(),
        "the claim should wait for the other transaction"
    );
    tx.commit().await.unwrap();
    let got = claimer.await.unwrap().expect("a conflict is not an error");
    assert_eq!(got.map(|j| j.id), Some(verify.id));
    assert_eq!(
        s.job(mine.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(
        s.transitions(mine.id).await.unwrap().len(),
        1,
        "nothing recorded for it"
    );
}
