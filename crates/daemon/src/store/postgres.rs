//! The shared job store: PostgreSQL, for several daemons sharing the work of many servers.
//!
//! A claim runs at READ COMMITTED:
//! 1. the due candidates, best first, `FOR UPDATE SKIP LOCKED`: rows another daemon is
//!    claiming right now are skipped, never waited for;
//! 2. the running jobs, and [`queue::pick`] decides among the candidates;
//! 3. for a server-loading pick, a transaction-scoped advisory lock on its database host, taken
//!    with `pg_try_advisory_xact_lock` (busy: another daemon is starting a job there, try the
//!    next candidate), then the running jobs read again, now current for that host: the
//!    per-host limit holds across daemons;
//! 4. the guarded `UPDATE … WHERE id = $1 AND state = $from`, under a savepoint: a violation of
//!    the partial unique index (another daemon's job reads the same server) means "not now",
//!    the savepoint is rolled back and the next candidate tried.
//!
//! Transitions lock the job's row (`FOR UPDATE`, waiting) before checking their guard; the
//! rescuer skips rows being moved (`SKIP LOCKED`) and picks them up on its next round.
//! Migrations take an advisory lock so daemons starting together migrate once; audit appends
//! take another, so the audit chain has one head whatever the number of daemons.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

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

/// How long opening the store or taking a connection may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The advisory lock key serialising migrations (any constant of our own).
const MIGRATION_LOCK: i64 = 0x686f_6c64_6661_7374; // "holdfast"
/// The advisory lock key serialising audit appends.
const AUDIT_LOCK: i64 = 0x686f_6c64_6175_6474; // "holdaudt"

/// The PostgreSQL [`JobStore`](super::JobStore).
pub struct PgStore {
    pool: PgPool,
    location: String,
}

impl PgStore {
    const DIALECT: Dialect = Dialect::Postgres;
    const LOCK_ROW: &'static str = "FOR UPDATE";
    const LOCK_SKIP: &'static str = "FOR UPDATE SKIP LOCKED";

    /// Connects to `url` (`postgres://user@host:port/db?sslmode=…`; `password` overrides one in
    /// the URL) and brings the schema up to date.
    pub async fn open(url: &str, password: Option<String>) -> super::Result<PgStore> {
        let location = redact(url);
        let open_err = |message: String| StoreError::Open {
            location: location.clone(),
            message,
        };
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                open_err(format!(
                    "not a valid PostgreSQL URL: {}",
                    redact(&e.to_string())
                ))
            })?
            .application_name("holdfast-daemon");
        if let Some(password) = password {
            options = options.password(&password);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_err(redact(&e.to_string())))?;
        let store = PgStore {
            pool,
            location: location.clone(),
        };
        store.migrate(&location).await?;
        Ok(store)
    }

    /// The URL the store was opened with, password removed.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn begin_write(&self) -> super::Result<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(query_err)
    }

    /// A transaction holding the audit append lock (transaction-scoped advisory lock): one
    /// appender at a time across every daemon, so the chain never forks.
    async fn begin_audit(&self) -> super::Result<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(query_err)?;
        Ok(tx)
    }

    async fn begin_migration(&self) -> super::Result<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(query_err)?;
        Ok(tx)
    }

    /// See the module docs.
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
        if candidates.is_empty() {
            tx.commit().await.map_err(query_err)?;
            return Ok(None);
        }
        let mut running = Self::running(&mut tx).await?;
        while let Some(pick) = queue::pick(&candidates, &running, own_running, limits, now) {
            let pick = pick.clone();
            candidates.retain(|j| j.id != pick.id);
            if pick.spec.kind.loads_server() {
                let locked: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(format!("holdfast-claim-host:{}", pick.spec.host))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(query_err)?;
                if !locked {
                    continue;
                }
                running = Self::running(&mut tx).await?;
                if queue::blocked_by(&pick, &running, own_running, limits).is_some() {
                    continue;
                }
            }
            sqlx::query("SAVEPOINT claim")
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
            match Self::mark_claimed(&mut tx, &pick, worker, now, lease_ms).await {
                Ok(Mark::Claimed(job)) => {
                    tx.commit().await.map_err(query_err)?;
                    return Ok(Some(*job));
                }
                Ok(Mark::Gone) | Ok(Mark::Conflict) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT claim")
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err)?;
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await.map_err(query_err)?;
        Ok(None)
    }
}

job_store_impl!(PgStore, Postgres);
access_store_impl!(PgStore, Postgres);

/// `url` with any password replaced by `***` (for errors and logs).
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgresql://u:p%40ss@h/db?sslmode=require",
                "postgresql://u:***@h/db?sslmode=require",
            ),
            ("postgres://h/db", "postgres://h/db"),
            ("/var/lib/holdfast/state.db", "/var/lib/holdfast/state.db"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
        }
    }
}
