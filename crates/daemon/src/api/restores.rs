//! Restores into registered targets only: a request names a `[[restore_target]]`, never a URL,
//! and repeats its name in `confirm`. Restoring into a production target needs
//! [`Action::RestoreProduction`]; any other target [`Action::RestoreNonProduction`].

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::error::{ApiError, ErrorBody};
use super::jobs::{enqueue_now, job_item};
use super::page::{self, Page};
use super::types::*;
use super::{audited, caller, ApiState};
use crate::access::{Action, Caller};
use crate::jobs::{JobKind, RestoreParams};

/// The registered restore targets.
#[utoipa::path(get, path = "/api/v1/restore-targets", operation_id = "listRestoreTargets", params(PageQuery),
    responses((status = 200, body = Page<RestoreTargetItem>)))]
pub async fn targets(
    State(state): State<ApiState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<RestoreTargetItem>>, ApiError> {
    let Query(q) = q?;
    let limit = page::limit(q.limit)?;
    let cfg = state.config();
    let items: Vec<RestoreTargetItem> = cfg
        .restore_target
        .iter()
        .map(|t| RestoreTargetItem {
            name: t.name.clone(),
            url: holdfast::source::conn::redact_url(t.url.trim()),
            production: t.production,
        })
        .collect();
    let (items, next_cursor) = page::slice(items, q.cursor.as_deref(), limit)?;
    Ok(Json(Page { items, next_cursor }))
}

/// Queues a restore (or a point-in-time recovery) of a server's repository into a registered
/// target.
#[utoipa::path(post, path = "/api/v1/restores", operation_id = "createRestore", request_body = RestoreRequest,
    responses((status = 201, body = JobItem),
        (status = 400, description = "bad-request, or confirmation-required", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    who: Option<Extension<Caller>>,
    body: Result<Json<RestoreRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(who)?;
    let Json(req) = body?;
    let cfg = state.config();
    let target = cfg.restore_target(&req.target).ok_or_else(|| {
        ApiError::not_found(format!(
            "restore target `{}` is not registered (GET /api/v1/restore-targets lists them)",
            req.target
        ))
    })?;
    let action = if target.production {
        Action::RestoreProduction
    } else {
        Action::RestoreNonProduction
    };
    if !who.may(action) {
        let refused = ApiError::forbidden(format!(
            "the {} role may not restore into `{}`: it is a production target",
            who.role, target.name
        ));
        return Ok(audited(
            refused.into_response(),
            format!("restore target {}", target.name),
            Some(action),
        ));
    }
    if req.confirm.as_deref() != Some(target.name.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "confirmation-required",
            format!(
                "a restore overwrites `{}`: repeat the target's name in `confirm` to go ahead",
                target.name
            ),
        ));
    }
    let server = cfg.server(&req.server).ok_or_else(|| {
        ApiError::not_found(format!(
            "server `{}` is not in the daemon's config (GET /api/v1/servers lists them)",
            req.server
        ))
    })?;
    if req.to_time.is_some() && req.to_gtid.is_some() {
        return Err(ApiError::bad_request("give to_time or to_gtid, not both"));
    }
    if let Some(t) = &req.to_time {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(
            |e| {
                ApiError::bad_request(format!(
                    "to_time `{t}` is not an RFC 3339 time ({e}); e.g. 2026-12-07T09:30:00Z"
                ))
            },
        )?;
    }
    if let Some(g) = &req.to_gtid {
        if g.trim().is_empty() || g.starts_with('-') {
            return Err(ApiError::bad_request(format!(
                "to_gtid `{g}` is not a GTID"
            )));
        }
    }
    if let Some(id) = &req.backup {
        holdfast::repo::layout::validate_id(id)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let mut spec = cfg.manual_job(server, JobKind::Restore, &who.principal());
    // A failed restore leaves the target half-written: someone decides what next.
    spec.max_attempts = 1;
    spec.restore = Some(RestoreParams {
        target: target.name.clone(),
        backup: req.backup.clone(),
        to_time: req.to_time.clone(),
        to_gtid: req.to_gtid.clone(),
    });
    let job = enqueue_now(&state, &spec).await?;
    tracing::info!(job_id = job.id, server = %server.name, target = %target.name, by = %who.principal(), "restore queued");
    Ok(audited(
        (StatusCode::CREATED, Json(job_item(&job))).into_response(),
        format!(
            "job {} (restore of {} into {})",
            job.id, server.name, target.name
        ),
        Some(action),
    ))
}
