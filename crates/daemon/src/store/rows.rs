//! Reading rows into the job model, the same for both databases (generic over sqlx's `Row`),
//! and the error mapping both share.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{LogLine, StoreError};
use crate::jobs::{Job, JobKind, JobSpec, JobState, RestoreParams, Transition, Trigger};

/// A query error: a unique violation is reported by callers that expect one, everything else
/// is [`StoreError::Query`].
pub(crate) fn query_err(e: sqlx::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

/// Is this error a unique-constraint violation (SQLite and PostgreSQL)?
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn get<'r, R, T>(row: &'r R, col: &'static str) -> Result<T, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

fn count<'r, R>(row: &'r R, col: &'static str) -> Result<u32, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let v: i64 = get(row, col)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {col}: {v} out of range")))
}

pub(crate) fn state(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job state {s:?}")))
}

/// A row selected with [`super::schema::JOB_COLUMNS`].
pub(crate) fn job<'r, R>(row: &'r R) -> Result<Job, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = get(row, "kind")?;
    let trigger: String = get(row, "trigger_kind")?;
    let st: String = get(row, "state")?;
    let result: Option<String> = get(row, "result")?;
    let exit_code: Option<i64> = get(row, "exit_code")?;
    let priority: i64 = get(row, "priority")?;
    let restore_target: Option<String> = get(row, "restore_target")?;
    let restore = match restore_target {
        Some(target) => Some(RestoreParams {
            target,
            backup: get(row, "restore_backup")?,
            to_time: get(row, "restore_to_time")?,
            to_gtid: get(row, "restore_to_gtid")?,
        }),
        None => None,
    };
    Ok(Job {
        id: get(row, "id")?,
        spec: JobSpec {
            server: get(row, "server")?,
            host: get(row, "host")?,
            repository: get(row, "repository")?,
            kind: JobKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown job kind {kind:?}")))?,
            priority: i32::try_from(priority)
                .map_err(|_| StoreError::Corrupt(format!("priority {priority} out of range")))?,
            timeout_ms: get(row, "timeout_ms")?,
            max_attempts: count(row, "max_attempts")?,
            backoff_base_ms: get(row, "backoff_base_ms")?,
            backoff_cap_ms: get(row, "backoff_cap_ms")?,
            schedule: get(row, "schedule")?,
            planned_at: get(row, "planned_at")?,
            trigger: Trigger::parse(&trigger)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown trigger {trigger:?}")))?,
            requested_by: get(row, "requested_by")?,
            restore,
        },
        state: state(&st)?,
        attempt: count(row, "attempt")?,
        run_at: get(row, "run_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        worker: get(row, "worker")?,
        lease_until: get(row, "lease_until")?,
        trace_id: get(row, "trace_id")?,
        last_error: get(row, "last_error")?,
        exit_code: exit_code.map(|c| c as i32),
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("job result: {e}")))?,
    })
}

/// A row selected with [`super::schema::TRANSITION_COLUMNS`].
pub(crate) fn transition<'r, R>(row: &'r R) -> Result<Transition, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let from: Option<String> = get(row, "from_state")?;
    let to: String = get(row, "to_state")?;
    Ok(Transition {
        job_id: get(row, "job_id")?,
        at: get(row, "at")?,
        from: from.as_deref().map(state).transpose()?,
        to: state(&to)?,
        attempt: count(row, "attempt")?,
        worker: get(row, "worker")?,
        message: get(row, "message")?,
    })
}

pub(crate) fn log_line<'r, R>(row: &'r R) -> Result<LogLine, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LogLine {
        at: get(row, "at")?,
        attempt: count(row, "attempt")?,
        line: get(row, "line")?,
    })
}

/// `(state, count)` for every state, zero for those with no job (metrics want every series).
pub(crate) fn counts(found: Vec<(String, i64)>) -> Result<Vec<(JobState, i64)>, StoreError> {
    let mut out: Vec<(JobState, i64)> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    for (s, n) in found {
        let s = state(&s)?;
        if let Some(slot) = out.iter_mut().find(|(k, _)| *k == s) {
            slot.1 = n;
        }
    }
    Ok(out)
}
