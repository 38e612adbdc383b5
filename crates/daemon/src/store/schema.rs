//! The job store's schema, versioned, the same tables and indexes in SQLite and PostgreSQL
//! (only the id column's DDL differs). A stored type changing (see `jobs::model`) is a new
//! version here: append a step to [`STEPS`]; never edit a step that has shipped.
//!
//! - `meta(key, value)`: `schema_version`. A store with a newer version than [`SCHEMA_VERSION`]
//!   is refused ([`StoreError::TooNew`](super::StoreError::TooNew)) rather than misread.
//! - `jobs`: one row per job. Every field of [`JobSpec`](crate::jobs::JobSpec) and
//!   [`Job`](crate::jobs::Job) is a column (no JSON blob to parse in queries), `result` is
//!   JSON text. Times are Unix milliseconds (`BIGINT`), states and kinds their `as_str` names.
//! - `transitions`: every state change, appended in the same transaction as the change.
//! - `job_logs`: the lines a job's attempts wrote.
//!
//! Version 2, access to the API and the console (see [`super::access`]):
//! - `users`: local users, their role and Argon2id password hash (a PHC string);
//! - `api_tokens`: API tokens by id, with the SHA-256 of their secret (never the secret);
//! - `sessions`: browser sessions by the SHA-256 of their id (never the id), with their CSRF token;
//! - `login_failures`: failed logins by key (`user:NAME`, `addr:IP`), for rate limiting that holds
//!   across daemons sharing a PostgreSQL store;
//! - `audit_log`: the hash-chained audit trail; `seq` is assigned by the appender (1, 2, …) under
//!   a lock, so gaps are detectable, and `meta.audit_head` holds the last `seq:hash`.
//!
//! The database enforces the two rules the daemons must never break, whatever they believe:
//! `UNIQUE (schedule, planned_at)` (a schedule fires once across daemons; NULLs, i.e. manual
//! jobs, are distinct) and a partial unique index on `server` over running server-loading jobs
//! (at most one backup/backup-physical/incremental runs per server).

use crate::jobs::JobKind;

/// The schema version this holdfast writes and reads.
pub const SCHEMA_VERSION: i64 = 2;

/// The SQL dialects, for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The meta table, created before the version is read.
pub(crate) const CREATE_META: &str =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

pub(crate) const READ_VERSION: &str = "SELECT value FROM meta WHERE key = 'schema_version'";

pub(crate) const WRITE_VERSION: &str =
    "INSERT INTO meta (key, value) VALUES ('schema_version', $1) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The statements taking a store from version `i` to `i + 1` (`{ID}` is the dialect's
/// auto-increment primary key).
const STEPS: &[&[&str]] = &[
    &[
        "CREATE TABLE jobs (
        id {ID},
        server TEXT NOT NULL,
        host TEXT NOT NULL,
        repository TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority BIGINT NOT NULL,
        timeout_ms BIGINT NOT NULL,
        max_attempts BIGINT NOT NULL,
        backoff_base_ms BIGINT NOT NULL,
        backoff_cap_ms BIGINT NOT NULL,
        schedule TEXT,
        planned_at BIGINT,
        trigger_kind TEXT NOT NULL,
        requested_by TEXT,
        state TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        run_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        worker TEXT,
        lease_until BIGINT,
        trace_id TEXT NOT NULL,
        last_error TEXT,
        exit_code BIGINT,
        result TEXT,
        UNIQUE (schedule, planned_at)
    )",
        // The claim's candidates and the rescuer's expired leases.
        "CREATE INDEX jobs_state_run_at ON jobs (state, run_at)",
        "CREATE INDEX jobs_server_id ON jobs (server, id)",
        "CREATE UNIQUE INDEX jobs_one_loading_job_per_server ON jobs (server) \
     WHERE state = 'running' AND kind IN ({LOADING})",
        "CREATE TABLE transitions (
        id {ID},
        job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        at BIGINT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        worker TEXT,
        message TEXT NOT NULL
    )",
        "CREATE INDEX transitions_job ON transitions (job_id, id)",
        "CREATE INDEX transitions_at ON transitions (at, id)",
        "CREATE TABLE job_logs (
        id {ID},
        job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        at BIGINT NOT NULL,
        attempt BIGINT NOT NULL,
        line TEXT NOT NULL
    )",
        "CREATE INDEX job_logs_job ON job_logs (job_id, id)",
    ],
    &[
        "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
        "CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users (name),
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        last_used_at BIGINT,
        revoked_at BIGINT
    )",
        "CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users (name),
        csrf_token TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL
    )",
        "CREATE INDEX sessions_user ON sessions (user_name)",
        "CREATE TABLE login_failures (
        id {ID},
        key TEXT NOT NULL,
        at BIGINT NOT NULL
    )",
        "CREATE INDEX login_failures_key_at ON login_failures (key, at)",
        "CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        result TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )",
        "CREATE INDEX audit_log_at ON audit_log (at, seq)",
    ],
];

/// The statements of the step from version `from` to `from + 1`, in `dialect`.
pub(crate) fn step(dialect: Dialect, from: i64) -> Vec<String> {
    let id = match dialect {
        Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };
    let loading = JobKind::ALL
        .into_iter()
        .filter(|k| k.loads_server())
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    STEPS[from as usize]
        .iter()
        .map(|s| s.replace("{ID}", id).replace("{LOADING}", &loading))
        .collect()
}

/// The columns of a job row, in the order [`super::rows::job`] reads them by name.
pub(crate) const JOB_COLUMNS: &str = "id, server, host, repository, kind, priority, timeout_ms, \
     max_attempts, backoff_base_ms, backoff_cap_ms, schedule, planned_at, trigger_kind, \
     requested_by, state, attempt, run_at, created_at, updated_at, worker, lease_until, trace_id, \
     last_error, exit_code, result";

pub(crate) const TRANSITION_COLUMNS: &str =
    "job_id, at, from_state, to_state, attempt, worker, message";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_cover_the_version_and_fill_placeholders() {
        assert_eq!(STEPS.len() as i64, SCHEMA_VERSION);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            for v in 0..SCHEMA_VERSION {
                for s in step(dialect, v) {
                    assert!(!s.contains('{'), "{s}");
                }
            }
        }
        let all = step(Dialect::Postgres, 0).join("\n");
        assert!(all.contains("kind IN ('backup', 'backup-physical', 'incremental')"));
    }
}
