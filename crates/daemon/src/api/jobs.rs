//! Jobs: the store's records, manual jobs queued for the daemon's normal loop, and cancels
//! (one guarded transition; a running job's worker sees it at its next heartbeat and stops the
//! child cleanly).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::error::{ApiError, ErrorBody};
use super::page::{self, Page};
use super::types::*;
use super::{audited, caller, ApiState};
use crate::access::Caller;
use crate::jobs::{Job, JobId, JobKind, JobSpec, JobState};
use crate::store::{Change, JobFilter};
use crate::time::now_millis;

pub fn job_item(j: &Job) -> JobItem {
    JobItem {
        id: j.id,
        server: j.spec.server.clone(),
        repository: j.spec.repository.clone(),
        kind: j.spec.kind.to_string(),
        state: j.state.to_string(),
        attempt: j.attempt,
        max_attempts: j.spec.max_attempts,
        priority: j.spec.priority,
        trigger: j.spec.trigger.as_str().to_string(),
        requested_by: j.spec.requested_by.clone(),
        schedule: j.spec.schedule.clone(),
        created_at: rfc3339_ms(j.created_at),
        updated_at: rfc3339_ms(j.updated_at),
        last_error: j.last_error.clone(),
        exit_code: j.exit_code,
        restore: j.spec.restore.as_ref().map(|r| RestoreBody {
            target: r.target.clone(),
            backup: r.backup.clone(),
            to_time: r.to_time.clone(),
            to_gtid: r.to_gtid.clone(),
        }),
    }
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "listJobs", params(JobQuery),
    responses((status = 200, body = Page<JobItem>), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    q: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<Page<JobItem>>, ApiError> {
    let Query(q) = q?;
    let limit = page::limit(q.limit)?;
    let mut states = Vec::new();
    for s in q
        .state
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        states.push(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state={s}: not a job state; use {}",
                JobState::ALL.map(|s| s.as_str()).join(", ")
            ))
        })?);
    }
    let before_id = q
        .cursor
        .as_deref()
        .map(|c| page::decode('j', c))
        .transpose()?;
    let filter = JobFilter {
        states,
        server: q.server.clone(),
        // One more than asked: is there a next page?
        limit: Some(limit as u32 + 1),
        before_id,
    };
    let mut jobs = state
        .shared
        .store
        .jobs(&filter)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    let more = jobs.len() > limit;
    jobs.truncate(limit);
    let next_cursor = match jobs.last() {
        Some(last) if more => Some(page::encode('j', last.id)),
        _ => None,
    };
    Ok(Json(Page {
        items: jobs.iter().map(job_item).collect(),
        next_cursor,
    }))
}

async fn load(state: &ApiState, id: JobId) -> Result<Job, ApiError> {
    state
        .shared
        .store
        .job(id)
        .await
        .map_err(|e| ApiError::from_store(&e))?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))
}

/// One job with its transitions and result.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "getJob", params(("id" = i64, Path)),
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
pub async fn detail(
    State(state): State<ApiState>,
    p: Result<Path<JobId>, PathRejection>,
) -> Result<Json<JobDetail>, ApiError> {
    let Path(id) = p?;
    let job = load(&state, id).await?;
    let transitions = state
        .shared
        .store
        .transitions(id)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    Ok(Json(JobDetail {
        job: job_item(&job),
        transitions: transitions
            .iter()
            .map(|t| TransitionItem {
                at: rfc3339_ms(t.at),
                from: t.from.map(|s| s.to_string()),
                to: t.to.to_string(),
                attempt: t.attempt,
                message: t.message.clone(),
            })
            .collect(),
        result: job.result.clone(),
    }))
}

/// A job's log: the lines its attempts wrote, oldest first.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/log", operation_id = "getJobLog", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Page<LogItem>), (status = 404, body = ErrorBody)))]
pub async fn log(
    State(state): State<ApiState>,
    p: Result<Path<JobId>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<LogItem>>, ApiError> {
    let Path(id) = p?;
    let Query(q) = q?;
    let limit = page::limit(q.limit)?;
    load(&state, id).await?;
    let lines = state
        .shared
        .store
        .log(id)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    let items: Vec<LogItem> = lines
        .into_iter()
        .map(|l| LogItem {
            at: rfc3339_ms(l.at),
            attempt: l.attempt,
            line: l.line,
        })
        .collect();
    let (items, next_cursor) = page::slice(items, q.cursor.as_deref(), limit)?;
    Ok(Json(Page { items, next_cursor }))
}

/// Queues `spec` to run now and wakes the daemon's loop.
pub async fn enqueue_now(state: &ApiState, spec: &JobSpec) -> Result<Job, ApiError> {
    let now = now_millis();
    let job = state
        .shared
        .store
        .enqueue(spec, now, now)
        .await
        .map_err(|e| ApiError::from_store(&e))?
        .ok_or_else(|| ApiError::internal("the store did not queue the job"))?;
    state.shared.wake.notify_one();
    Ok(job)
}

/// Queues a job now (trigger `manual`, requested by the caller); the daemon runs it like a
/// scheduled one.
#[utoipa::path(post, path = "/api/v1/jobs", operation_id = "createJob", request_body = JobRequest,
    responses((status = 201, body = JobItem), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    who: Option<Extension<Caller>>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(who)?;
    let Json(req) = body?;
    let cfg = state.config();
    let kind = JobKind::parse(&req.kind)
        .filter(|k| k.schedulable())
        .ok_or_else(|| {
            let kinds: Vec<&str> = JobKind::ALL
                .into_iter()
                .filter(|k| k.schedulable())
                .map(|k| k.as_str())
                .collect();
            ApiError::bad_request(format!(
                "kind `{}`: use one of {} (restores: POST /api/v1/restores)",
                req.kind,
                kinds.join(", ")
            ))
        })?;
    let server = cfg.server(&req.server).ok_or_else(|| {
        ApiError::not_found(format!(
            "server `{}` is not in the daemon's config (GET /api/v1/servers lists them)",
            req.server
        ))
    })?;
    if kind == JobKind::Copy
        && !server
            .schedule
            .iter()
            .any(|s| s.job == JobKind::Copy && s.to.is_some())
    {
        return Err(ApiError::bad_request(format!(
            "server `{}` has no copy schedule naming a target repository (`to`); add one to \
             the config",
            server.name
        )));
    }
    let mut spec = cfg.manual_job(server, kind, &who.principal());
    if let Some(p) = req.priority {
        spec.priority = p;
    }
    let job = enqueue_now(&state, &spec).await?;
    tracing::info!(job_id = job.id, server = %server.name, kind = %kind, by = %who.principal(), "manual job queued");
    Ok(audited(
        (StatusCode::CREATED, Json(job_item(&job))).into_response(),
        format!("job {} ({kind} of {})", job.id, server.name),
        None,
    ))
}

/// Cancels a queued, retrying or running job. A running job's child is stopped cleanly, at once
/// when this daemon runs it, else at its worker's next heartbeat (a third of the lease):
/// nothing partial is listed.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", operation_id = "cancelJob", params(("id" = i64, Path)),
    responses((status = 200, body = JobItem), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    who: Option<Extension<Caller>>,
    p: Result<Path<JobId>, PathRejection>,
) -> Result<Response, ApiError> {
    let who = caller(who)?;
    let Path(id) = p?;
    // A job may move between reading and cancelling (claimed, finished): read again, a few
    // times.
    for _ in 0..5 {
        let job = load(&state, id).await?;
        if job.state.is_terminal() {
            return Err(ApiError::conflict(format!(
                "job {id} already ended ({}); nothing to cancel",
                job.state
            )));
        }
        let change = Change {
            from: job.state,
            to: JobState::Cancelled,
            at: now_millis(),
            worker: None,
            message: format!("cancelled by {}", who.principal()),
            run_at: None,
            exit_code: None,
            error: None,
            result: None,
        };
        let moved = state
            .shared
            .store
            .transition(id, &change)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        if moved {
            let stopped = job.state == JobState::Running && state.shared.stop_job(id);
            tracing::info!(job_id = id, by = %who.principal(), was = %job.state, stopped, "job cancelled");
            let job = load(&state, id).await?;
            return Ok(audited(
                Json(job_item(&job)).into_response(),
                format!("job {id} ({} of {})", job.spec.kind, job.spec.server),
                None,
            ));
        }
    }
    Err(ApiError::conflict(format!(
        "job {id} keeps changing state; try again"
    )))
}
