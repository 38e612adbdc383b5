//! The API's request and response bodies (docs/api.md shows them; the OpenAPI document is
//! derived from them). Times are RFC 3339 UTC strings; sizes are bytes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::time::Millis;

/// RFC 3339 in UTC, to the second (or milliseconds when there are any).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn rfc3339_ms(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(rfc3339)
        .unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct LastBackup {
    pub id: String,
    /// logical, physical or incremental.
    pub kind: String,
    pub finished_at: String,
    pub size_bytes: u64,
    pub age_seconds: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ArchiveState {
    /// Seconds the archive is behind its server; null when no streamer reports.
    pub lag_seconds: Option<f64>,
    /// The streamer's record says it is alive; null when no streamer ever wrote one.
    pub streaming: Option<bool>,
}

#[derive(Serialize, ToSchema, Clone)]
pub struct TimeWindow {
    pub start: String,
    pub end: String,
}

#[derive(Serialize, ToSchema)]
pub struct NextRun {
    /// The schedule's key, `<server>/<index>:<job>`.
    pub schedule: String,
    pub job: String,
    /// When it is planned to start (its window's opening when it has one).
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServerItem {
    pub name: String,
    pub repository: String,
    /// Continuous binlog archiving is configured.
    pub binlog: bool,
    pub last_backup: Option<LastBackup>,
    pub archive: ArchiveState,
    /// The recoverable window.
    pub window: Option<TimeWindow>,
    pub next_runs: Vec<NextRun>,
    /// What needs attention; servers with problems are listed first.
    pub problems: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleItem {
    pub key: String,
    pub job: String,
    pub cron: String,
    pub timezone: String,
    pub window: Option<String>,
    pub priority: i32,
}

#[derive(Serialize, ToSchema)]
pub struct ServerDetail {
    #[serde(flatten)]
    pub server: ServerItem,
    pub schedules: Vec<ScheduleItem>,
}

#[derive(Serialize, ToSchema)]
pub struct RepositoryItem {
    pub name: String,
    /// Without credentials.
    pub url: String,
    pub backups: usize,
    pub size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<String>,
    /// When the daemon last read it (null: not yet).
    pub refreshed_at: Option<String>,
    /// Why the last read failed (the data is from `refreshed_at`).
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConsistentPointBody {
    pub gtid: String,
    pub time: String,
}

#[derive(Serialize, ToSchema)]
pub struct DrillState {
    /// unverified, verified or failed.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PinBody {
    pub reason: Option<String>,
    pub until: Option<String>,
    pub pinned_at: String,
    pub pinned_by: String,
}

#[derive(Serialize, ToSchema)]
pub struct BackupItem {
    pub id: String,
    pub repository: String,
    /// The configured servers writing to the repository.
    pub server: String,
    /// logical, physical or incremental.
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
    pub size_bytes: u64,
    pub consistent_point: ConsistentPointBody,
    pub pinned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinBody>,
    pub drill: DrillState,
    /// Taken with filters: not a base for the recovery window.
    pub partial: bool,
}

#[derive(Serialize, ToSchema)]
pub struct FileItem {
    pub path: String,
    pub size: u64,
}

#[derive(Serialize, ToSchema)]
pub struct BackupDetail {
    #[serde(flatten)]
    pub backup: BackupItem,
    /// The first 1000 files.
    pub files: Vec<FileItem>,
    pub files_total: usize,
    pub databases: Vec<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// Why it is kept (shown by `list`, `info` and every `expire` plan).
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PinResult {
    pub repository: String,
    pub backup: String,
    pub pinned: bool,
    pub pin: PinBody,
}

#[derive(Serialize, ToSchema)]
pub struct ArchiveBody {
    pub server: String,
    pub repository: String,
    pub window: Option<TimeWindow>,
    pub segments: u64,
    pub bytes: u64,
    /// What breaks the window (missing segments, GTID gaps).
    pub gaps: Vec<String>,
    pub lag_seconds: Option<f64>,
    pub streaming: Option<bool>,
    /// First and last archived event.
    pub range: Option<TimeWindow>,
}

#[derive(Serialize, ToSchema)]
pub struct JobItem {
    pub id: i64,
    pub server: String,
    pub repository: String,
    /// backup, backup-physical, incremental, verify, drill, expire, copy or restore.
    pub kind: String,
    /// queued, running, retrying, succeeded, failed, cancelled or timed-out.
    pub state: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: i32,
    /// schedule, catch-up or manual.
    pub trigger: String,
    pub requested_by: Option<String>,
    pub schedule: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_error: Option<String>,
    pub exit_code: Option<i32>,
    /// A restore job's target and what it restores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreBody>,
}

#[derive(Serialize, ToSchema)]
pub struct RestoreBody {
    pub target: String,
    pub backup: Option<String>,
    pub to_time: Option<String>,
    pub to_gtid: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TransitionItem {
    pub at: String,
    pub from: Option<String>,
    pub to: String,
    pub attempt: u32,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobItem,
    pub transitions: Vec<TransitionItem>,
    /// The last successful attempt's JSON report (as the command's `--json`).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct LogItem {
    pub at: String,
    pub attempt: u32,
    pub line: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub server: String,
    /// backup, backup-physical, incremental, verify, drill, expire or copy.
    pub kind: String,
    /// Higher runs first (default by kind: backups 100 … drills 20).
    pub priority: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct RestoreTargetItem {
    pub name: String,
    /// Without credentials.
    pub url: String,
    pub production: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A registered `[[restore_target]]`'s name.
    pub target: String,
    /// The configured server whose repository holds the backup.
    pub server: String,
    /// The backup id (default: the newest; with to_time/to_gtid, the newest that qualifies).
    pub backup: Option<String>,
    /// Point-in-time recovery to this time (RFC 3339).
    pub to_time: Option<String>,
    /// Point-in-time recovery up to and including this GTID.
    pub to_gtid: Option<String>,
    /// Must equal `target`: the caller names the server to overwrite twice.
    pub confirm: Option<String>,
}

/// `?limit=&cursor=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 500, default 50.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackupQuery {
    pub server: Option<String>,
    pub repository: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    pub server: Option<String>,
    /// One state, or several separated by commas.
    pub state: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrillQuery {
    /// Only drills finished within this long before now (e.g. 30d, 12h).
    pub since: Option<String>,
    /// The repository (needed when several are configured).
    pub repository: Option<String>,
}
