//! `drills/<id>.json`: the evidence of one restore drill, written once (never replaced) when
//! the drill ends, passed or failed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The newest drill record format this build reads and writes.
pub const DRILL_FORMAT: u32 = 1;

/// How a drill ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DrillOutcome {
    /// Every check passed.
    Passed,
    /// At least one check failed (`reason` names the first).
    Failed,
}

/// One check of a drill and its result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillCheck {
    /// What was checked: `restore`, `server-start`, `table`, `check-table`, `gtid-position`,
    /// `tables`, `views`, `routines`, `triggers`, `events`, `sequences`, `users`.
    pub name: String,
    /// The object checked (`` `shop`.`orders` ``), when the check is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub passed: bool,
    /// What was found: the figures compared, or why it failed.
    pub detail: String,
}

/// The server a drill restored into.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillServer {
    /// The server binary of the sandbox; empty for a given `--target`.
    pub binary: String,
    /// `@@version` (or `--version` when the server never started).
    pub version: String,
    /// `sandbox` (started and removed by holdfast) or `target` (a server given with `--target`).
    pub kind: String,
    /// The sandbox's buffer pool, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The sandbox server's peak resident memory (VmHWM), bytes, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}

/// `drills/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillRecord {
    pub format: u32,
    /// The drill's own id (`<UTC time>-<random>`, like a backup id).
    pub id: String,
    pub backup_id: String,
    /// `logical` or `physical`: the backup's engine, so the restore path drilled.
    pub engine: String,
    pub outcome: DrillOutcome,
    /// The first failed check, for people (`None` when passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<DrillCheck>,
    pub server: DrillServer,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    /// Recovery time: the restore (logical), or restore plus server start with crash recovery
    /// (physical), measured. Excludes preparing the sandbox and the checks.
    pub rto_seconds: f64,
    /// Time spent on the checks after the restore.
    pub check_seconds: f64,
    /// Bytes read from the repository (logical: rows loaded; physical: streams fetched).
    pub bytes_restored: u64,
    /// Rows restored (logical; 0 for physical backups, which record no rows).
    pub rows_restored: u64,
    pub holdfast_version: String,
    pub host: String,
}

impl DrillRecord {
    pub fn passed(&self) -> bool {
        self.outcome == DrillOutcome::Passed
    }
}
