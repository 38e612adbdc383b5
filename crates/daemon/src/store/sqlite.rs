//! The embedded job store: one SQLite file, nothing else to install.
//!
//! WAL mode (readers never block the writer), `synchronous = FULL` (a committed transition
//! survives a power cut; the daemon commits a few rows a minute, so the fsync costs nothing that
//! matters), foreign keys on, and a 10 s busy timeout so a second process (a CLI reading job
//! history) waits instead of failing. Every write runs in `BEGIN IMMEDIATE`: the writer lock is
//! taken before the first read, so a claim's reads (candidates, running jobs) are current and no
//! other writer can interleave; the partial unique index still guards server exclusion.
//! The file is created mode 0600: it holds the daemon's history (and later its users).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::access::{
    access_store_impl, AccessStore, ApiToken, AuditEvent, AuditQuery, AuditRecord, Session, User,
    UserUpdate,
};
use super::common::{job_store_impl, Mark};
use super::rows::{self, query_err};
use super::schema::{Dialect, JOB_COLUMNS, TRANSITION_COLUMNS};
use super::{Change, JobFilter, JobStore, LogLine, StoreError};
use crate::jobs::queue::{self, Limits};
use crate::jobs::{state, Job, JobId, JobSpec, JobState, Transition};
use crate::time::Millis;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite [`JobStore`](super::JobStore).
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    const DIALECT: Dialect = Dialect::Sqlite;
    /// `BEGIN IMMEDIATE` already excludes every other writer.
    const LOCK_ROW: &'static str = "";
    const LOCK_SKIP: &'static str = "";

    /// Opens (creating it, mode 0600, when missing) the store at `path` and brings its schema up
    /// to date. The directory must exist.
    pub async fn open(path: &Path) -> super::Result<SqliteStore> {
        let location = path.display().to_string();
        let open_err = |message: String| StoreError::Open {
            location: location.clone(),
            message,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(open_err(format!(
                "the directory {} does not exist; create it (the daemon's state directory) or \
                 point [daemon] state elsewhere",
                dir.display()
            )));
        }
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(std::fs::File::open(path)?),
                    _ => Err(e),
                })
                .map_err(|e| open_err(format!("cannot create the file: {e}")))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| open_err(e.to_string()))?
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = SqliteStore {
            pool,
            path: path.to_path_buf(),
        };
        store.migrate(&location).await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn begin_write(&self) -> super::Result<sqlx::Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query_err)
    }

    /// The audit append lock: `BEGIN IMMEDIATE` already excludes every other writer.
    async fn begin_audit(&self) -> super::Result<sqlx::Transaction<'static, Sqlite>> {
        self.begin_write().await
    }

    async fn begin_migration(&self) -> super::Result<sqlx::Transaction<'static, Sqlite>> {
        self.begin_write().await
    }

    /// Under `BEGIN IMMEDIATE` no other claim interleaves: read, pick, mark.
    async fn claim_impl(
        &self,
        worker: &str,
        own_running: usize,
        limits: &Limits,
        now: Millis,
        lease_ms: Millis,
    ) -> super::Result<Option<Job>> {
        let mut tx = self.begin_write().await?;
        let mut candidates = Self::candidates(&mut tx, now, Self::LOCK_SKIP).await?;
        let running = Self::running(&mut tx).await?;
        while let Some(pick) = queue::pick(&candidates, &running, own_running, limits, now) {
            let pick = pick.clone();
            match Self::mark_claimed(&mut tx, &pick, worker, now, lease_ms).await? {
                Mark::Claimed(job) => {
                    tx.commit().await.map_err(query_err)?;
                    return Ok(Some(*job));
                }
                // Neither can happen under the write lock unless another process bypassed it;
                // the next candidate is still right.
                Mark::Gone | Mark::Conflict => candidates.retain(|j| j.id != pick.id),
            }
        }
        tx.commit().await.map_err(query_err)?;
        Ok(None)
    }
}

job_store_impl!(SqliteStore, Sqlite);
access_store_impl!(SqliteStore, Sqlite);
