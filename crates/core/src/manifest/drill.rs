//! `drills/<id>.json`: the evidence of one restore drill, written once (never replaced) when
//! the drill ends, passed or failed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The newest drill record format this build reads. Format 1: drills of one backup; format 2
/// (written only by point-in-time and chain drills, so backup drills keep writing format 1):
/// [`DrillRecord::kind`] and [`DrillRecord::range`]. A holdfast that predates format 2 refuses
/// such a record instead of counting a chain proof of backup N as a drill of N.
pub const DRILL_FORMAT: u32 = 2;

/// The format a record of this kind is written in (see [`DRILL_FORMAT`]).
pub fn drill_format_for(kind: DrillKind) -> u32 {
    match kind {
        DrillKind::Backup => 1,
        DrillKind::Pitr | DrillKind::Chain => 2,
    }
}

/// What a drill proved.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DrillKind {
    /// One backup restored and checked (`holdfast drill [ID]`).
    #[default]
    Backup,
    /// A base restored and the archive replayed to a point; the server's GTID position checked
    /// against the archive's (`holdfast drill --pitr`).
    Pitr,
    /// Base N−1 restored and the archive replayed to base N's consistent point; every table
    /// compared with base N's manifest (`holdfast drill --chain`).
    Chain,
}

impl DrillKind {
    pub fn is_backup(&self) -> bool {
        *self == DrillKind::Backup
    }
}

/// The stretch of the archive a point-in-time or chain drill replayed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillRange {
    /// The backup restored first (chain: base N−1).
    pub base_backup: String,
    /// The base's consistent point.
    #[serde(with = "time::serde::rfc3339")]
    pub from_time: OffsetDateTime,
    pub from_gtid: String,
    /// The point replayed to (PITR: the target time; chain: base N's consistent point).
    #[serde(with = "time::serde::rfc3339")]
    pub to_time: OffsetDateTime,
    /// The target as given to the recovery (`time 2026-…`, `GTID 0-1-42 (inclusive)`).
    pub target: String,
    /// The GTID position the archive predicts for the point (chain: base N's).
    pub expected_gtid: String,
    /// The position the server reached (empty when the replay did not run).
    pub reached_gtid: String,
    /// Archived segments replayed.
    pub segments: usize,
    /// Transactions replayed.
    pub transactions: u64,
}

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
    /// `binlog-position`, `tables`, `views`, `routines`, `triggers`, `events`, `sequences`,
    /// `users`; PITR and chain drills: `archive`, `replay`, `extra-tables` (chain).
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
    /// A backup drill, a point-in-time drill or a chain proof (absent in format 1: a backup).
    #[serde(default, skip_serializing_if = "DrillKind::is_backup")]
    pub kind: DrillKind,
    /// The backup drilled (PITR: the base restored; chain: base N, whose manifest the result is
    /// compared with).
    pub backup_id: String,
    /// `logical` or `physical`: the backup's engine, so the restore path drilled.
    pub engine: String,
    pub outcome: DrillOutcome,
    /// The first failed check, for people (`None` when passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<DrillCheck>,
    /// PITR and chain drills: the base and the stretch of the archive replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<DrillRange>,
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
    /// Rows restored (logical, or the base of a PITR/chain drill; 0 for physical backups,
    /// which record no rows).
    pub rows_restored: u64,
    pub holdfast_version: String,
    pub host: String,
}

impl DrillRecord {
    pub fn passed(&self) -> bool {
        self.outcome == DrillOutcome::Passed
    }
}
