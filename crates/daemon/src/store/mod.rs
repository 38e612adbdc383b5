//! Where the daemon keeps its jobs: [`JobStore`], with an embedded SQLite implementation (the
//! default: nothing else to install) and a PostgreSQL one (several daemons sharing the work of
//! many servers).
//!
//! The contract every implementation meets (one conformance suite runs against both):
//! - every state change is one guarded update (`… WHERE id = ? AND state = ?`) plus one appended
//!   [`Transition`] in the same transaction; a guard that does not hold changes nothing and
//!   returns `false`;
//! - a schedule fires once: `(schedule, planned_at)` is unique, a second enqueue of it is a no-op;
//! - at most one server-loading job per server is `running`, enforced by the database itself (a
//!   partial unique index), whatever the daemons believe;
//! - a running job has a lease; a worker that stops heartbeating loses the job to
//!   [`JobStore::rescue_expired`] after the lease.

pub mod access;
mod common;
pub mod postgres;
mod rows;
pub mod schema;
pub mod sqlite;

pub use access::{
    AccessStore, ApiToken, AuditEvent, AuditQuery, AuditRecord, Session, User, UserUpdate,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;

use crate::jobs::queue::Limits;
use crate::jobs::{Job, JobId, JobSpec, JobState, Transition};
use crate::time::Millis;

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be opened or reached (path, URL, server down, credentials).
    #[error("job store {location}: {message}")]
    Open { location: String, message: String },
    /// A query failed.
    #[error("job store: {0}")]
    Query(String),
    /// The store holds a schema newer than this holdfast reads.
    #[error("job store schema version {found} is newer than this holdfast ({supported}); upgrade holdfast")]
    TooNew { found: i64, supported: i64 },
    /// A record in the store does not parse (a state or kind this version does not know).
    #[error("job store: bad record: {0}")]
    Corrupt(String),
    /// A [`Change`] the state machine does not allow (a bug in the caller, not a race: a race
    /// is a guard that does not hold, `Ok(false)`). Moves into `running` go through
    /// [`JobStore::claim`].
    #[error("job store: {from} -> {to} is not a move of the job state machine")]
    InvalidMove { from: JobState, to: JobState },
}

impl StoreError {
    /// May the same call succeed later (the store's server unreachable or busy)?
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Open { .. } | StoreError::Query(_))
        // TooNew, Corrupt and InvalidMove stay wrong until someone acts.
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Opens the job store at `location` and brings its schema up to date:
/// - `postgres://…` or `postgresql://…`: PostgreSQL ([`PgStore`]); `password`, when given,
///   overrides any in the URL (keep it out of the URL: the URL appears in errors and logs,
///   always with its password removed);
/// - `sqlite://PATH`, `sqlite:PATH` or a plain path: SQLite ([`SqliteStore`]), created when
///   missing (its directory must exist); `password` is not used.
///
/// Fails with [`StoreError::TooNew`] when the store was written by a newer holdfast.
pub async fn open(location: &str, password: Option<String>) -> Result<Box<dyn JobStore>> {
    Ok(match open_backend(location, password).await? {
        Backend::Sqlite(s) => Box::new(s),
        Backend::Postgres(s) => Box::new(s),
    })
}

/// Opens the store at `location` (as [`open`]) for its access tables: users, tokens, sessions
/// and the audit log (the CLI's `user`, `token` and `audit` commands).
pub async fn open_access(
    location: &str,
    password: Option<String>,
) -> Result<std::sync::Arc<dyn AccessStore>> {
    Ok(open_both(location, password).await?.1)
}

/// Opens the store at `location` (as [`open`]) once, as both the job store and the access
/// store (one connection pool).
pub async fn open_both(
    location: &str,
    password: Option<String>,
) -> Result<(
    std::sync::Arc<dyn JobStore>,
    std::sync::Arc<dyn AccessStore>,
)> {
    use std::sync::Arc;
    Ok(match open_backend(location, password).await? {
        Backend::Sqlite(s) => {
            let s = Arc::new(s);
            (s.clone(), s)
        }
        Backend::Postgres(s) => {
            let s = Arc::new(s);
            (s.clone(), s)
        }
    })
}

enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

async fn open_backend(location: &str, password: Option<String>) -> Result<Backend> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Backend::Postgres(PgStore::open(location, password).await?));
    }
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location);
    if path.is_empty() {
        return Err(StoreError::Open {
            location: location.to_string(),
            message: "no path: give a file such as /var/lib/holdfast/state.db, or a \
                      postgres:// URL"
                .to_string(),
        });
    }
    if path.contains("://") {
        return Err(StoreError::Open {
            location: postgres::redact(location),
            message: "unknown store: use a file path (SQLite) or a postgres:// URL".to_string(),
        });
    }
    Ok(Backend::Sqlite(
        SqliteStore::open(std::path::Path::new(path)).await?,
    ))
}

/// One guarded move of a job (see [`crate::jobs::state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub from: JobState,
    pub to: JobState,
    pub at: Millis,
    /// For moves out of `running`: only the worker holding the job may move it (`None`: no
    /// holder check, for an operator's cancel).
    pub worker: Option<String>,
    /// Stored in the transition: why.
    pub message: String,
    /// For `retrying`: when the next attempt may start.
    pub run_at: Option<Millis>,
    pub exit_code: Option<i32>,
    /// Replaces the job's `last_error` when set.
    pub error: Option<String>,
    /// Set on success: the attempt's JSON report.
    pub result: Option<serde_json::Value>,
}

/// Which jobs to list, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFilter {
    pub states: Vec<JobState>,
    pub server: Option<String>,
    pub limit: Option<u32>,
    /// Only jobs with an id below this (for paging).
    pub before_id: Option<JobId>,
}

/// A line of a job's log, as the job's process wrote it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub at: Millis,
    pub attempt: u32,
    pub line: String,
}

/// The daemon's job store. See the module docs for the contract.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Adds a job, `queued`, not to be claimed before `run_at`, with a new trace id and a
    /// creation transition. For a scheduled spec (`schedule` and `planned_at` set), returns
    /// `Ok(None)` and changes nothing when that planned run already exists (fired by this or
    /// another daemon).
    async fn enqueue(&self, spec: &JobSpec, run_at: Millis, now: Millis) -> Result<Option<Job>>;

    /// Claims the job to run next for `worker` (as [`crate::jobs::queue::pick`] decides, over the
    /// due `queued`/`retrying` rows it could lock — PostgreSQL: `FOR UPDATE SKIP LOCKED`), moves it
    /// to `running` with `attempt + 1` and a lease until `now + lease_ms`. `own_running` is how
    /// many jobs this worker runs now. `None` when nothing may start.
    async fn claim(
        &self,
        worker: &str,
        own_running: usize,
        limits: &Limits,
        now: Millis,
        lease_ms: Millis,
    ) -> Result<Option<Job>>;

    /// Extends a running job's lease. `false` when the job is no longer running under `worker`
    /// (rescued, cancelled): the worker must stop it.
    async fn heartbeat(
        &self,
        id: JobId,
        worker: &str,
        now: Millis,
        lease_ms: Millis,
    ) -> Result<bool>;

    /// Applies one guarded move; `false` (and nothing changed) when the job is not in
    /// `change.from` (or, leaving `running`, not held by `change.worker`).
    async fn transition(&self, id: JobId, change: &Change) -> Result<bool>;

    /// Running jobs whose lease ended before `now`: moved to `retrying` (run at `now`) when
    /// attempts are left, else `failed`, with a transition saying whose lease expired. Returns
    /// their ids.
    async fn rescue_expired(&self, now: Millis) -> Result<Vec<JobId>>;

    async fn job(&self, id: JobId) -> Result<Option<Job>>;
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;
    /// A job's transitions, oldest first.
    async fn transitions(&self, id: JobId) -> Result<Vec<Transition>>;
    /// Every transition at or after `since`, in the order they were recorded (for overlap checks
    /// and the audit). Recording order, not `at` order: `at` comes from the callers' clocks,
    /// while a claim that had to wait for another job's end is always recorded after that end.
    async fn transitions_since(&self, since: Millis) -> Result<Vec<Transition>>;

    async fn append_log(&self, id: JobId, line: &LogLine) -> Result<()>;
    async fn log(&self, id: JobId) -> Result<Vec<LogLine>>;

    /// The latest `planned_at` of a schedule's runs in the store (for catch-up after downtime).
    async fn last_planned(&self, schedule: &str) -> Result<Option<Millis>>;

    /// How many jobs are in each state (for metrics).
    async fn count_by_state(&self) -> Result<Vec<(JobState, i64)>>;
}
