//! The job records the store keeps (stored types: a change here is a schema change, see
//! `store/schema`).
//!
//! A [`JobSpec`] says what to run and under which policy; a [`Job`] is one stored record of it with
//! its current [`JobState`]; every change of state is a [`Transition`], kept for good.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// A job's id in the store.
pub type JobId = i64;

/// What a job does. Each maps to one `holdfast` command run against one server's repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// A logical full backup.
    Backup,
    /// A physical full backup (mariabackup / xtrabackup).
    BackupPhysical,
    /// A physical incremental on the newest physical backup.
    Incremental,
    /// `verify` of the repository's backups and archive.
    Verify,
    /// A restore drill of the newest undrilled backup.
    Drill,
    /// Retention: `expire` with the repository's stored policy.
    Expire,
    /// `copy` to a second repository.
    Copy,
    /// `restore` (or a point-in-time recovery) of the server's repository into a registered
    /// `[[restore_target]]`; only ever queued through the API, never by a schedule.
    Restore,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        JobKind::Backup,
        JobKind::BackupPhysical,
        JobKind::Incremental,
        JobKind::Verify,
        JobKind::Drill,
        JobKind::Expire,
        JobKind::Copy,
        JobKind::Restore,
    ];

    /// The name used in the config, the store, metrics labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::BackupPhysical => "backup-physical",
            JobKind::Incremental => "incremental",
            JobKind::Verify => "verify",
            JobKind::Drill => "drill",
            JobKind::Expire => "expire",
            JobKind::Copy => "copy",
            JobKind::Restore => "restore",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Reads from the database server itself: at most one such job per server runs at a time.
    pub fn loads_server(self) -> bool {
        matches!(
            self,
            JobKind::Backup | JobKind::BackupPhysical | JobKind::Incremental
        )
    }

    /// Heavy on this host's CPU and disks: runs at lower CPU and I/O priority.
    pub fn is_heavy(self) -> bool {
        matches!(
            self,
            JobKind::Backup
                | JobKind::BackupPhysical
                | JobKind::Incremental
                | JobKind::Drill
                | JobKind::Copy
                | JobKind::Restore
        )
    }

    /// The priority a schedule gets when its config names none: backups first, drills last.
    pub fn default_priority(self) -> i32 {
        match self {
            JobKind::Backup | JobKind::BackupPhysical | JobKind::Incremental => 100,
            JobKind::Expire => 60,
            JobKind::Verify => 50,
            JobKind::Copy => 40,
            JobKind::Drill => 20,
            // Someone is waiting for it.
            JobKind::Restore => 200,
        }
    }

    /// May a schedule queue it (a restore is always someone's decision)?
    pub fn schedulable(self) -> bool {
        self != JobKind::Restore
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A schedule's planned time came.
    Schedule,
    /// A schedule's planned time passed while no daemon ran: run once to catch up.
    CatchUp,
    /// Someone asked (CLI or API).
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
            Trigger::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        [Trigger::Schedule, Trigger::CatchUp, Trigger::Manual]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// The states of the job state machine (see [`super::state`] for the allowed moves):
///
/// ```text
/// queued ──▶ running ──▶ succeeded | failed | cancelled | timed-out
///              │  ▲
///              ▼  │ (next attempt due)
///            retrying
/// ```
/// `queued` and `retrying` jobs may also be cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed-out",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// No transition leaves this state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::TimedOut
        )
    }

    /// Waiting to be claimed (when its `run_at` has come).
    pub fn is_waiting(self) -> bool {
        matches!(self, JobState::Queued | JobState::Retrying)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to run and under which policy. Everything the runner needs beyond this comes from the
/// config by the server's and repository's names (credentials are never stored in the job).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The configured server's name.
    pub server: String,
    /// The database host the server runs on (for the per-host concurrency limit): the source
    /// URL's host, or the socket path's host `localhost`.
    pub host: String,
    /// The configured repository's name.
    pub repository: String,
    pub kind: JobKind,
    /// Higher runs first; waiting raises it (aging, see [`super::queue`]).
    pub priority: i32,
    /// A running attempt longer than this is cancelled and the job ends `timed-out`.
    pub timeout_ms: Millis,
    /// Attempts in all (1 = no retry). Only transient failures are retried.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, capped at `backoff_cap_ms`, with full jitter.
    pub backoff_base_ms: Millis,
    pub backoff_cap_ms: Millis,
    /// The schedule that queued it (`<server>/<index>:<job>`), if any.
    pub schedule: Option<String>,
    /// The schedule's planned time for this run; with `schedule`, unique in the store, so a
    /// schedule fires once across all daemons sharing it.
    pub planned_at: Option<Millis>,
    pub trigger: Trigger,
    /// Who asked, for manual jobs (user or token name).
    pub requested_by: Option<String>,
    /// For [`JobKind::Restore`]: where to and what (schema version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreParams>,
}

/// What a restore job restores, and where: a registered target by name (never a URL: the
/// target's address and credentials come from the config when the job runs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreParams {
    /// The `[[restore_target]]`'s name.
    pub target: String,
    /// The backup id; `None`: the newest (or, for a point-in-time recovery, the newest that
    /// qualifies).
    pub backup: Option<String>,
    /// Point-in-time recovery to this time (RFC 3339).
    pub to_time: Option<String>,
    /// Point-in-time recovery up to and including this GTID.
    pub to_gtid: Option<String>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    pub state: JobState,
    /// The attempt running or last run, from 1; 0 before the first claim.
    pub attempt: u32,
    /// Not claimed before this (the queue time, or the next retry's time).
    pub run_at: Millis,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The daemon holding it while running (its worker id).
    pub worker: Option<String>,
    /// While running: the worker must heartbeat before this, or a rescuer requeues the job.
    pub lease_until: Option<Millis>,
    /// Carried into every log line of the job and into child processes (`HOLDFAST_TRACE_ID`).
    pub trace_id: String,
    /// The last attempt's error (what went wrong and what to do).
    pub last_error: Option<String>,
    /// The last attempt's `holdfast` exit code.
    pub exit_code: Option<i32>,
    /// The last successful attempt's JSON report (e.g. the backup's id and size).
    pub result: Option<serde_json::Value>,
}

/// One move of the state machine, as stored (never updated or removed while the job exists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub job_id: JobId,
    pub at: Millis,
    /// `None` for the creation (into `queued`).
    pub from: Option<JobState>,
    pub to: JobState,
    pub attempt: u32,
    pub worker: Option<String>,
    /// Why: "claimed", "exit 10: cannot connect …", "lease expired (worker w1)", …
    pub message: String,
}
