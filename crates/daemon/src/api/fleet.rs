//! The fleet: servers, repositories, backups, the archive, pins and the drill report, from the
//! [`Fleet`](crate::fleet::Fleet) view the daemon's refresh keeps. Only a backup's detail
//! reads the repository (its one manifest), and pins write it.

use std::collections::BTreeSet;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use holdfast::drill::status::{statuses, DrillStatus};
use holdfast::manifest::{BackupSummary, PinRecord};
use time::OffsetDateTime;

use super::error::{ApiError, ErrorBody};
use super::page::{self, Page};
use super::types::*;
use super::{audited, caller, ApiState};
use crate::access::Caller;
use crate::config::{Config, ServerConfig};
use crate::fleet::{BackupFacts, RepositoryView};
use crate::time::now_millis;

/// The configured servers writing to `repository`: what a backup the daemon cannot attribute
/// to one of them names as its server.
fn writers(cfg: &Config, repository: &str) -> String {
    cfg.server
        .iter()
        .filter(|s| s.repository == repository)
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn server_item(
    cfg: &Config,
    s: &ServerConfig,
    view: Option<&RepositoryView>,
    now: OffsetDateTime,
) -> ServerItem {
    let mut problems = Vec::new();
    match view {
        None => problems.push(format!(
            "repository `{}` not read yet (the daemon reads it at start and every 30 s)",
            s.repository
        )),
        Some(v) => {
            match (&v.error, v.read) {
                (Some(e), true) => problems.push(format!(
                    "cannot read repository `{}` (data from {}): {e}",
                    v.name,
                    rfc3339(v.refreshed_at)
                )),
                (Some(e), false) => {
                    problems.push(format!("cannot read repository `{}`: {e}", v.name))
                }
                (None, _) => {}
            }
            if v.read && v.last_backup(&s.name).is_none() {
                problems.push("no complete backup yet".into());
            }
            problems.extend(v.problems.iter().cloned());
        }
    }
    let last_backup = view
        .and_then(|v| v.last_backup(&s.name))
        .map(|b| LastBackup {
            id: b.id.clone(),
            kind: b.kind.to_string(),
            finished_at: rfc3339(b.finished),
            size_bytes: b.size_bytes,
            age_seconds: (now - b.finished).whole_seconds().max(0),
        });
    let next_runs = (0..s.schedule.len())
        .filter_map(|j| {
            let schedule = cfg.schedule(s, j);
            let planned = *schedule.upcoming(now_millis(), 1).first()?;
            Some(NextRun {
                schedule: schedule.key.clone(),
                job: s.schedule[j].job.to_string(),
                at: rfc3339_ms(schedule.start_at(planned)),
            })
        })
        .collect();
    ServerItem {
        name: s.name.clone(),
        repository: s.repository.clone(),
        binlog: s.binlog,
        last_backup,
        archive: ArchiveState {
            lag_seconds: view.and_then(|v| v.archive.lag_seconds),
            streaming: view.and_then(|v| v.archive.streaming),
        },
        window: view.and_then(|v| v.window).map(window),
        next_runs,
        problems,
    }
}

fn window((start, end): (OffsetDateTime, OffsetDateTime)) -> TimeWindow {
    TimeWindow {
        start: rfc3339(start),
        end: rfc3339(end),
    }
}

/// Servers, those with problems first, then by name.
#[utoipa::path(get, path = "/api/v1/servers", operation_id = "listServers", params(PageQuery),
    responses((status = 200, body = Page<ServerItem>), (status = 401, body = ErrorBody)))]
pub async fn servers(
    State(state): State<ApiState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<ServerItem>>, ApiError> {
    let Query(q) = q?;
    let limit = page::limit(q.limit)?;
    let cfg = state.config();
    let fleet = state.shared.fleet.all();
    let now = OffsetDateTime::now_utc();
    let mut items: Vec<ServerItem> = cfg
        .server
        .iter()
        .map(|s| server_item(&cfg, s, fleet.get(&s.repository), now))
        .collect();
    items.sort_by(|a, b| (a.problems.is_empty(), &a.name).cmp(&(b.problems.is_empty(), &b.name)));
    let (items, next_cursor) = page::slice(items, q.cursor.as_deref(), limit)?;
    Ok(Json(Page { items, next_cursor }))
}

fn find_server<'a>(cfg: &'a Config, name: &str) -> Result<&'a ServerConfig, ApiError> {
    cfg.server(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "server `{name}` is not in the daemon's config (GET /api/v1/servers lists them)"
        ))
    })
}

/// One server, with its schedules.
#[utoipa::path(get, path = "/api/v1/servers/{name}", operation_id = "getServer", params(("name" = String, Path)),
    responses((status = 200, body = ServerDetail), (status = 404, body = ErrorBody)))]
pub async fn server(
    State(state): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ServerDetail>, ApiError> {
    let Path(name) = name?;
    let cfg = state.config();
    let s = find_server(&cfg, &name)?;
    let view = state.shared.fleet.repository(&s.repository);
    let item = server_item(&cfg, s, view.as_ref(), OffsetDateTime::now_utc());
    let schedules = s
        .schedule
        .iter()
        .enumerate()
        .map(|(j, sc)| ScheduleItem {
            key: crate::config::schedule_key(s, j),
            job: sc.job.to_string(),
            cron: sc.cron.clone(),
            timezone: sc
                .timezone
                .clone()
                .unwrap_or_else(|| cfg.daemon.timezone.clone()),
            window: sc.window.clone(),
            priority: sc.priority.unwrap_or(sc.job.default_priority()),
        })
        .collect();
    Ok(Json(ServerDetail {
        server: item,
        schedules,
    }))
}

/// Repositories.
#[utoipa::path(get, path = "/api/v1/repositories", operation_id = "listRepositories", params(PageQuery),
    responses((status = 200, body = Page<RepositoryItem>)))]
pub async fn repositories(
    State(state): State<ApiState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<RepositoryItem>>, ApiError> {
    let Query(q) = q?;
    let limit = page::limit(q.limit)?;
    let cfg = state.config();
    let fleet = state.shared.fleet.all();
    let items: Vec<RepositoryItem> = cfg
        .repository
        .iter()
        .map(|r| {
            let v = fleet.get(&r.name);
            RepositoryItem {
                name: r.name.clone(),
                url: holdfast::source::conn::redact_url(r.url.trim()),
                backups: v.map_or(0, |v| v.backups.len()),
                size_bytes: v.map_or(0, |v| v.size_bytes),
                size_limit: r.size_limit.clone(),
                refreshed_at: v.filter(|v| v.read).map(|v| rfc3339(v.refreshed_at)),
                error: v.and_then(|v| v.error.clone()),
            }
        })
        .collect();
    let (items, next_cursor) = page::slice(items, q.cursor.as_deref(), limit)?;
    Ok(Json(Page { items, next_cursor }))
}

fn drill_state(s: &DrillStatus) -> DrillState {
    match s {
        DrillStatus::Unverified => DrillState {
            status: "unverified".into(),
            at: None,
            reason: None,
        },
        DrillStatus::Verified { at, .. } => DrillState {
            status: "verified".into(),
            at: Some(rfc3339(*at)),
            reason: None,
        },
        DrillStatus::Failed { at, reason, .. } => DrillState {
            status: "failed".into(),
            at: Some(rfc3339(*at)),
            reason: Some(reason.clone()),
        },
    }
}

fn pin_body(p: &PinRecord) -> PinBody {
    PinBody {
        reason: p.reason.clone(),
        until: p.until.map(rfc3339),
        pinned_at: rfc3339(p.pinned),
        pinned_by: p.pinned_by.clone(),
    }
}

fn backup_items(cfg: &Config, view: &RepositoryView, now: OffsetDateTime) -> Vec<BackupItem> {
    let st = statuses(&view.drills);
    let writers = writers(cfg, &view.name);
    view.backups
        .iter()
        .rev()
        .map(|b| backup_item(view, b, &writers, &st, now))
        .collect()
}

fn backup_item(
    view: &RepositoryView,
    b: &BackupFacts,
    writers: &str,
    st: &std::collections::BTreeMap<String, DrillStatus>,
    now: OffsetDateTime,
) -> BackupItem {
    let pin = view.pin(&b.id, now);
    BackupItem {
        id: b.id.clone(),
        repository: view.name.clone(),
        server: b.server.clone().unwrap_or_else(|| writers.to_string()),
        kind: b.kind.to_string(),
        started_at: rfc3339(b.started),
        finished_at: rfc3339(b.finished),
        size_bytes: b.size_bytes,
        consistent_point: ConsistentPointBody {
            gtid: b.gtid.clone(),
            time: rfc3339(b.consistent_time),
        },
        pinned: pin.is_some(),
        pin: pin.map(pin_body),
        drill: drill_state(&holdfast::drill::status::status_of(st, &b.id)),
        partial: b.partial,
    }
}

/// Backups, newest first, of every repository (or one server's, or one repository's).
#[utoipa::path(get, path = "/api/v1/backups", operation_id = "listBackups", params(BackupQuery),
    responses((status = 200, body = Page<BackupItem>), (status = 404, body = ErrorBody)))]
pub async fn backups(
    State(state): State<ApiState>,
    q: Result<Query<BackupQuery>, QueryRejection>,
) -> Result<Json<Page<BackupItem>>, ApiError> {
    let Query(q) = q?;
    let limit = page::limit(q.limit)?;
    let cfg = state.config();
    let mut repos: BTreeSet<String> = cfg.repository.iter().map(|r| r.name.clone()).collect();
    if let Some(name) = &q.server {
        let s = find_server(&cfg, name)?;
        repos.retain(|r| *r == s.repository);
    }
    if let Some(r) = &q.repository {
        find_repository(&cfg, r)?;
        repos.retain(|x| x == r);
    }
    let fleet = state.shared.fleet.all();
    let now = OffsetDateTime::now_utc();
    let mut items: Vec<BackupItem> = repos
        .iter()
        .filter_map(|r| fleet.get(r))
        .flat_map(|v| backup_items(&cfg, v, now))
        // One server's: those attributed to it, and those attributed to no one in its repository.
        .filter(|b| {
            q.server
                .as_ref()
                .is_none_or(|s| b.server.split(',').any(|n| n == s))
        })
        .collect();
    items.sort_by(|a, b| (&b.started_at, &b.id).cmp(&(&a.started_at, &a.id)));
    let (items, next_cursor) = page::slice(items, q.cursor.as_deref(), limit)?;
    Ok(Json(Page { items, next_cursor }))
}

fn find_repository<'a>(
    cfg: &'a Config,
    name: &str,
) -> Result<&'a crate::config::RepositoryConfig, ApiError> {
    cfg.repository(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "repository `{name}` is not in the daemon's config (GET /api/v1/repositories lists them)"
        ))
    })
}

async fn open(cfg: &Config, name: &str) -> Result<holdfast::repo::Repository, ApiError> {
    let r = find_repository(cfg, name)?;
    crate::repos::open(r)
        .await
        .map_err(|e| ApiError::from_core(&e))
}

/// A repository's view, once it has been read.
fn read_view(state: &ApiState, name: &str) -> Result<RepositoryView, ApiError> {
    match state.shared.fleet.repository(name) {
        Some(v) if v.read => Ok(v),
        Some(v) => Err(ApiError::unavailable(format!(
            "repository `{name}` cannot be read: {}",
            v.error.unwrap_or_default()
        ))),
        None => Err(ApiError::unavailable(format!(
            "repository `{name}` not read yet; try again in a few seconds"
        ))),
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    holdfast::repo::layout::validate_id(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// One backup with its files (the first 1000) and databases: reads its manifest.
#[utoipa::path(get, path = "/api/v1/backups/{repository}/{id}", operation_id = "getBackup",
    params(("repository" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = BackupDetail), (status = 404, body = ErrorBody)))]
pub async fn backup(
    State(state): State<ApiState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<BackupDetail>, ApiError> {
    let Path((repository, id)) = p?;
    let cfg = state.config();
    find_repository(&cfg, &repository)?;
    check_id(&id)?;
    let repo = open(&cfg, &repository).await?;
    let (m, sha) = repo.load_manifest_hashed(&id).await.map_err(|e| {
        if e.kind() == holdfast::ErrorKind::NotFound {
            ApiError::not_found(format!(
                "backup {id} does not exist in repository {repository}"
            ))
        } else {
            ApiError::from_core(&e)
        }
    })?;
    let view = state
        .shared
        .fleet
        .repository(&repository)
        .unwrap_or_else(|| RepositoryView {
            name: repository.clone(),
            ..RepositoryView::empty(OffsetDateTime::now_utc())
        });
    let st = statuses(&view.drills);
    let item = backup_item(
        &view,
        &BackupFacts::of(
            &BackupSummary::of(&m, sha),
            view.backups
                .iter()
                .find(|b| b.id == m.id)
                .and_then(|b| b.server.clone()),
        ),
        &writers(&cfg, &repository),
        &st,
        OffsetDateTime::now_utc(),
    );
    let databases: BTreeSet<String> = m.tables.iter().map(|t| t.database.clone()).collect();
    Ok(Json(BackupDetail {
        backup: item,
        files: m
            .files
            .iter()
            .take(1000)
            .map(|f| FileItem {
                path: f.path.clone(),
                size: f.size,
            })
            .collect(),
        files_total: m.files.len(),
        databases: databases.into_iter().collect(),
    }))
}

/// Pins a backup: retention keeps it until it is unpinned.
#[utoipa::path(post, path = "/api/v1/backups/{repository}/{id}/pin", operation_id = "pinBackup",
    params(("repository" = String, Path), ("id" = String, Path)),
    request_body(content = PinRequest, description = "optional"),
    responses((status = 200, body = PinResult), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn pin(
    State(state): State<ApiState>,
    who: Option<Extension<Caller>>,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<PinRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(who)?;
    let Path((repository, id)) = p?;
    let request = match body {
        Ok(Json(b)) => b,
        // No body at all: no reason.
        Err(JsonRejection::MissingJsonContentType(_)) => PinRequest::default(),
        Err(e) => return Err(e.into()),
    };
    let cfg = state.config();
    find_repository(&cfg, &repository)?;
    check_id(&id)?;
    let repo = open(&cfg, &repository).await?;
    let lock = repo
        .lock("pin")
        .await
        .map_err(|e| ApiError::from_core(&e))?;
    let done = holdfast::retention::pin(&repo, &lock, &id, request.reason, None).await;
    let _ = lock.release().await;
    let record = done.map_err(|e| ApiError::from_core(&e))?;
    tracing::info!(repository, backup = %record.backup, by = %who.principal(), "backup pinned");
    state
        .shared
        .fleet
        .set_pin(&repository, &record.backup, Some(record.clone()));
    let body = PinResult {
        repository: repository.clone(),
        backup: record.backup.clone(),
        pinned: true,
        pin: pin_body(&record),
    };
    Ok(audited(
        Json(body).into_response(),
        format!("backup {repository}/{}", record.backup),
        None,
    ))
}

/// Unpins a backup: retention may remove it again.
#[utoipa::path(delete, path = "/api/v1/backups/{repository}/{id}/pin", operation_id = "unpinBackup",
    params(("repository" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PinResult), (status = 404, body = ErrorBody)))]
pub async fn unpin(
    State(state): State<ApiState>,
    who: Option<Extension<Caller>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let who = caller(who)?;
    let Path((repository, id)) = p?;
    let cfg = state.config();
    find_repository(&cfg, &repository)?;
    check_id(&id)?;
    let repo = open(&cfg, &repository).await?;
    let lock = repo
        .lock("unpin")
        .await
        .map_err(|e| ApiError::from_core(&e))?;
    let done = holdfast::retention::unpin(&repo, &lock, &id).await;
    let _ = lock.release().await;
    let record = done.map_err(|e| ApiError::from_core(&e))?;
    tracing::info!(repository, backup = %id, by = %who.principal(), "backup unpinned");
    state.shared.fleet.set_pin(&repository, &id, None);
    let body = PinResult {
        repository: repository.clone(),
        backup: id.clone(),
        pinned: false,
        pin: pin_body(&record),
    };
    Ok(audited(
        Json(body).into_response(),
        format!("backup {repository}/{id}"),
        None,
    ))
}

/// A server's binlog archive and recoverable window.
#[utoipa::path(get, path = "/api/v1/archive/{server}", operation_id = "getArchive", params(("server" = String, Path)),
    responses((status = 200, body = ArchiveBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn archive(
    State(state): State<ApiState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<ArchiveBody>, ApiError> {
    let Path(name) = p?;
    let cfg = state.config();
    let s = find_server(&cfg, &name)?;
    let v = read_view(&state, &s.repository)?;
    Ok(Json(ArchiveBody {
        server: s.name.clone(),
        repository: s.repository.clone(),
        window: v.window.map(window),
        segments: v.archive.segments,
        bytes: v.archive.bytes,
        gaps: v.gaps.clone(),
        lag_seconds: v.archive.lag_seconds,
        streaming: v.archive.streaming,
        range: v.archive.range.map(window),
    }))
}

/// The drill report (as `holdfast drill report --json`) of one repository.
#[utoipa::path(get, path = "/api/v1/drills/report", operation_id = "getDrillReport", params(DrillQuery),
    responses((status = 200, description = "the `holdfast drill report --json` object",
        body = Object), (status = 400, body = ErrorBody)))]
pub async fn drill_report(
    State(state): State<ApiState>,
    q: Result<Query<DrillQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let cfg = state.config();
    let name = match (&q.repository, cfg.repository.as_slice()) {
        (Some(r), _) => find_repository(&cfg, r)?.name.clone(),
        (None, [only]) => only.name.clone(),
        (None, all) => {
            return Err(ApiError::bad_request(format!(
                "several repositories are configured; name one with ?repository= ({})",
                all.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let since = match &q.since {
        Some(d) => {
            let dur = holdfast::units::parse_duration(d)
                .map_err(|e| ApiError::bad_request(format!("since={d}: {e}")))?;
            Some(OffsetDateTime::now_utc() - dur)
        }
        None => None,
    };
    let v = read_view(&state, &name)?;
    let ids: Vec<String> = v.backups.iter().map(|b| b.id.clone()).collect();
    let report = holdfast::drill::status::report(&v.drills, &ids, v.archive.range, since, 10);
    Ok((StatusCode::OK, Json(report)).into_response())
}
