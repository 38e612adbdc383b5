//! "Are we covered?": the judgement behind `holdfast status` (and, later, the daemon's metrics).
//!
//! [`assess`] is a pure function: from what the repository holds ([`Inputs`]: the backups'
//! facts, the binlog archive's newest segment, the streamer's heartbeat record
//! ([`StreamStatus`]) and the recoverable [`Window`]), the [`Thresholds`] and the time now, it
//! returns a [`Coverage`]: `covered`, the problems that make it false (most urgent first),
//! warnings that do not, what could not be checked, and the details per server and of the
//! archive. [`gather`] and [`gather_without_key`] read the inputs from a repository.
//!
//! The rules (docs/status.md explains them to users):
//! - every server with backups needs a complete backup younger than `max_backup_age`
//!   (a partial one, taken with filters, is never enough: it is no base for a recovery);
//! - the streamer is alive when its record was written within [`STALE_INTERVALS`] of its own
//!   interval plus [`STALE_SLACK`]; a record in state `stopped`, or older, is a dead streamer.
//!   An idle source is not a problem: a live streamer keeps `caught_up_as_of` fresh;
//! - the archive is complete as of the later of `caught_up_as_of` and the newest archived
//!   event; more than `max_archive_lag` behind now is a problem;
//! - a hole in the archive that is damage (an index entry lost, segments that do not continue)
//!   is a problem; a hole the stream recorded on purpose (a new run after purged binlogs) is a
//!   problem while it is younger than `max_backup_age`, and a warning after that;
//! - a record written by the streamer of another repository (carried over by `holdfast copy`)
//!   is not judged: no streamer runs on a copy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::binlog::archive::{Archive, INDEX_DIR, STREAM_STATUS_PATH};
use crate::manifest::{StreamState, StreamStatus};
use crate::recovery::{window, Hole, Window};
use crate::repo::{layout, Repository};
use crate::storage::Storage;
use crate::Result;

/// A record is stale after this many of its intervals (plus [`STALE_SLACK`]).
pub const STALE_INTERVALS: u32 = 3;
/// Allowance for a slow store and clock skew on top of [`STALE_INTERVALS`].
pub const STALE_SLACK: Duration = Duration::from_secs(10);

/// The limits beyond which the repository is not covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub max_backup_age: Duration,
    pub max_archive_lag: Duration,
    /// Whether a missing binlog archive is a problem (`false`: backups only).
    pub require_archive: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_backup_age: Duration::from_secs(26 * 3600),
            max_archive_lag: Duration::from_secs(5 * 60),
            require_archive: true,
        }
    }
}

/// The server a backup was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerIdentity {
    pub flavor: String,
    pub server_id: u32,
    /// Empty when the server has none (MariaDB before 10.x reports none).
    pub server_uuid: String,
    pub hostname: String,
}

impl ServerIdentity {
    /// The name servers are grouped by: the UUID when known, else hostname and server_id.
    fn key(&self) -> String {
        if self.server_uuid.is_empty() {
            format!("{} (server_id {})", self.hostname, self.server_id)
        } else {
            format!(
                "{} (server_id {}, {})",
                self.hostname, self.server_id, self.server_uuid
            )
        }
    }
}

/// What is known of one committed backup. Without the key only the id (and the time it
/// encodes) is known.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupFacts {
    pub id: String,
    pub server: Option<ServerIdentity>,
    pub engine: Option<String>,
    /// When the backup finished (without the key: when it started, from its id).
    pub time: OffsetDateTime,
    /// `None` when unknown (no key).
    pub partial: Option<bool>,
    /// When a `verify` last found it sound, if recorded (not recorded yet).
    pub verified: Option<OffsetDateTime>,
    /// When the newest restore drill of it passed (`holdfast drill`).
    pub drilled: Option<OffsetDateTime>,
}

/// The newest committed segment of the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentFacts {
    pub seq: u64,
    pub server_id: u32,
    pub last_event_time: Option<OffsetDateTime>,
    pub gtid_state: String,
}

/// What the archive holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArchiveFacts {
    pub segments: u64,
    /// `None` without segments, or without the key.
    pub last_segment: Option<SegmentFacts>,
    /// Whether `binlog/stream-status.json` exists (readable or not).
    pub record_exists: bool,
    /// The streamer's record, when it exists and could be read.
    pub stream: Option<StreamStatus>,
}

/// Everything [`assess`] judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The repository's id (`holdfast.repo`), to recognise a record from another repository.
    pub repository_id: String,
    /// Whether manifests, index entries and the stream record could be read (the key was
    /// given, or the repository is not encrypted).
    pub readable: bool,
    pub backups: Vec<BackupFacts>,
    pub archive: ArchiveFacts,
    /// The recoverable window; `None` without the key.
    pub window: Option<Window>,
}

/// What a problem (or warning) is about; stable names for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// No complete backup at all of a server.
    NoBackup,
    /// The newest complete backup is older than `max_backup_age`.
    BackupAge,
    /// The newest backup is partial (only a warning while a complete one is fresh).
    PartialBackup,
    /// No binlog archive (segments or streamer) in the repository.
    NoArchive,
    /// The streamer's record is older than its interval allows.
    StreamerNotSeen,
    /// The streamer recorded that it stopped.
    StreamerStopped,
    /// The archive is complete only as of longer ago than `max_archive_lag`.
    ArchiveLag,
    /// A hole in the archive.
    ArchiveHole,
}

/// One finding, with a message that says what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub check: Check,
    /// The server it concerns, when it concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub message: String,
}

/// A backup as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupSummary {
    pub id: String,
    pub engine: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub age_seconds: u64,
    pub partial: Option<bool>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub drilled: Option<OffsetDateTime>,
}

/// One server found in the repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerCoverage {
    pub name: String,
    pub identity: Option<ServerIdentity>,
    pub backups: usize,
    pub newest_complete: Option<BackupSummary>,
    /// The newest backup, when it is not the newest complete one (a partial one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<BackupSummary>,
    /// Whether the binlog archive's newest segment comes from this server.
    pub archived: bool,
}

/// The streamer, as judged from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Streamer {
    /// Its record is fresh.
    Alive,
    /// Its record is stale: the process died, hangs, or cannot write to the repository.
    NotSeen,
    /// It recorded that it stopped.
    Stopped,
    /// No record: no streamer has run on this repository (or an older holdfast ran one).
    None,
    /// The record was written for another repository (carried over by `holdfast copy`).
    Copied,
    /// The record exists but cannot be read without the key.
    Unknown,
}

/// The binlog archive as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveCoverage {
    pub segments: u64,
    pub last_seq: Option<u64>,
    pub server_id: Option<u32>,
    pub streamer: Streamer,
    pub state: Option<StreamState>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub record_written: Option<OffsetDateTime>,
    pub record_age_seconds: Option<u64>,
    pub interval_seconds: Option<u64>,
    /// Where the streamer runs (`host` and `pid` of its record) and what it reads.
    pub streamer_host: Option<String>,
    pub streamer_pid: Option<u32>,
    pub source: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_event_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub caught_up_as_of: Option<OffsetDateTime>,
    /// The archive holds every event up to this time: the later of `caught_up_as_of` and the
    /// newest archived event.
    #[serde(with = "time::serde::rfc3339::option")]
    pub complete_as_of: Option<OffsetDateTime>,
    /// Seconds from `complete_as_of` to now.
    pub lag_seconds: Option<u64>,
    pub gtid_state: Option<String>,
    pub last_error: Option<String>,
}

/// The verdict (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    pub covered: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    pub max_backup_age_seconds: u64,
    pub max_archive_lag_seconds: u64,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// Checks that could not be made (without the key), each saying what it needs.
    pub unchecked: Vec<String>,
    pub servers: Vec<ServerCoverage>,
    pub archive: ArchiveCoverage,
    pub window: Option<Window>,
}

/// Seconds from `then` to `now` (0 when `then` is in the future).
fn age(now: OffsetDateTime, then: OffsetDateTime) -> Duration {
    let d = now - then;
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// A duration for people: `45s`, `12m`, `3h 20m`, `2d 4h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=3599 => format!("{}m", s / 60),
        3600..=172_799 if (s % 3600) / 60 == 0 => format!("{}h", s / 3600),
        3600..=172_799 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ if (s % 86_400) / 3600 == 0 => format!("{}d", s / 86_400),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The record's state as its JSON spells it.
pub fn state_name(state: StreamState) -> &'static str {
    match state {
        StreamState::Streaming => "streaming",
        StreamState::Reconnecting => "reconnecting",
        StreamState::Stopped => "stopped",
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn summary(b: &BackupFacts, now: OffsetDateTime) -> BackupSummary {
    BackupSummary {
        id: b.id.clone(),
        engine: b.engine.clone(),
        time: b.time,
        age_seconds: age(now, b.time).as_secs(),
        partial: b.partial,
        verified: b.verified,
        drilled: b.drilled,
    }
}

/// Judges the inputs (see the module documentation). Problems come most urgent first: the
/// archive's (the newest data), then the backups'.
pub fn assess(inputs: &Inputs, thresholds: &Thresholds, now: OffsetDateTime) -> Coverage {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut unchecked = Vec::new();
    let archive = assess_archive(inputs, thresholds, now, &mut problems, &mut unchecked);
    if let Some(window) = &inputs.window {
        assess_holes(window, thresholds, now, &mut problems, &mut warnings);
    } else {
        unchecked.push(
            "the recoverable window and holes in the archive (the segment index is encrypted: \
             give the key)"
                .to_string(),
        );
    }
    let servers = assess_servers(
        inputs,
        thresholds,
        now,
        archive.server_id,
        &mut problems,
        &mut warnings,
    );
    if !inputs.readable {
        unchecked.push(
            "which server each backup is from, its engine, whether it is complete (partial \
             backups are no base) and its finish time (ages are from the start time in the id); \
             manifests are encrypted: give the key"
                .to_string(),
        );
    }
    Coverage {
        covered: problems.is_empty(),
        checked_at: now,
        max_backup_age_seconds: thresholds.max_backup_age.as_secs(),
        max_archive_lag_seconds: thresholds.max_archive_lag.as_secs(),
        problems,
        warnings,
        unchecked,
        servers,
        archive,
        window: inputs.window.clone(),
    }
}

fn assess_archive(
    inputs: &Inputs,
    thresholds: &Thresholds,
    now: OffsetDateTime,
    problems: &mut Vec<Problem>,
    unchecked: &mut Vec<String>,
) -> ArchiveCoverage {
    let facts = &inputs.archive;
    let last = facts.last_segment.as_ref();
    let record = facts.stream.as_ref();
    let copied = record.is_some_and(|r| {
        r.repository_id
            .as_deref()
            .is_some_and(|id| id != inputs.repository_id)
    });
    let streamer = match record {
        _ if copied => Streamer::Copied,
        Some(r) if r.state == StreamState::Stopped => Streamer::Stopped,
        Some(r) => {
            let allowed =
                Duration::from_secs(r.interval_seconds.max(1)) * STALE_INTERVALS + STALE_SLACK;
            if age(now, r.written) > allowed {
                Streamer::NotSeen
            } else {
                Streamer::Alive
            }
        }
        None if facts.record_exists => Streamer::Unknown,
        None => Streamer::None,
    };
    let last_event_time = record
        .and_then(|r| r.last_event_time)
        .max(last.and_then(|s| s.last_event_time));
    let caught_up_as_of = record.and_then(|r| r.caught_up_as_of);
    let complete_as_of = caught_up_as_of.max(last_event_time);
    let lag = complete_as_of.map(|t| age(now, t));
    let server_id = record
        .and_then(|r| r.source_server_id)
        .filter(|_| !copied)
        .or(last.map(|s| s.server_id));
    let where_ = |r: &StreamStatus| format!("pid {} on {}", r.pid, r.host);
    match (streamer, record) {
        (Streamer::NotSeen, Some(r)) => problems.push(Problem {
            check: Check::StreamerNotSeen,
            server: None,
            message: format!(
                "streamer not seen for {} (its record is rewritten every {}s; last written {} by \
                 {}, reading {}): restart `holdfast binlog stream`",
                human_duration(age(now, r.written)),
                r.interval_seconds,
                rfc3339(r.written),
                where_(r),
                r.source
            ),
        }),
        (Streamer::Stopped, Some(r)) => problems.push(Problem {
            check: Check::StreamerStopped,
            server: None,
            message: format!(
                "streamer stopped at {} ({}{}): restart `holdfast binlog stream`",
                rfc3339(r.written),
                where_(r),
                r.last_error
                    .as_deref()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            ),
        }),
        (Streamer::None, _) if thresholds.require_archive => problems.push(Problem {
            check: Check::NoArchive,
            server: None,
            message: if facts.segments == 0 {
                "no binlog archive: point-in-time recovery is not possible; run `holdfast \
                 binlog stream` (or `--no-archive` for backups only)"
                    .to_string()
            } else {
                "no streamer has recorded its state here (archived by an older holdfast?): \
                 cannot tell whether archiving runs; restart `holdfast binlog stream`"
                    .to_string()
            },
        }),
        (Streamer::Unknown, _) => unchecked.push(
            "whether the streamer is alive, and the archive's lag (its record is encrypted: \
             give the key)"
                .to_string(),
        ),
        _ => {}
    }
    // The lag matters while a streamer is supposed to run here; a dead or stopped one is
    // already the problem named.
    if streamer == Streamer::Alive {
        let too_old = match lag {
            Some(l) => l > thresholds.max_archive_lag,
            None => record.is_some_and(|r| age(now, r.started) > thresholds.max_archive_lag),
        };
        if too_old {
            let r = record.expect("alive has a record");
            problems.push(Problem {
                check: Check::ArchiveLag,
                server: None,
                message: match complete_as_of {
                    Some(t) => format!(
                        "archive lags: complete only as of {} ({} ago, more than {}); \
                         streamer {}{}",
                        rfc3339(t),
                        human_duration(age(now, t)),
                        human_duration(thresholds.max_archive_lag),
                        state_name(r.state),
                        r.last_error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                    None => format!(
                        "archive holds nothing yet, {} after the streamer started{}",
                        human_duration(age(now, r.started)),
                        r.last_error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                },
            });
        }
    }
    ArchiveCoverage {
        segments: facts.segments,
        last_seq: last.map(|s| s.seq),
        server_id,
        streamer,
        state: record.map(|r| r.state),
        record_written: record.map(|r| r.written),
        record_age_seconds: record.map(|r| age(now, r.written).as_secs()),
        interval_seconds: record.map(|r| r.interval_seconds),
        streamer_host: record.map(|r| r.host.clone()),
        streamer_pid: record.map(|r| r.pid),
        source: record.map(|r| r.source.clone()),
        last_event_time,
        caught_up_as_of,
        complete_as_of,
        lag_seconds: lag.map(|l| l.as_secs()),
        gtid_state: last
            .map(|s| s.gtid_state.clone())
            .or(record.map(|r| r.gtid_state.clone())),
        last_error: record.and_then(|r| r.last_error.clone()),
    }
}

fn assess_holes(
    window: &Window,
    thresholds: &Thresholds,
    now: OffsetDateTime,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    for hole in &window.holes {
        let recent = hole
            .to_time
            .or(hole.from_time)
            .is_none_or(|t| age(now, t) <= thresholds.max_backup_age);
        let problem = Problem {
            check: Check::ArchiveHole,
            server: None,
            message: describe_hole(hole),
        };
        if !hole.new_run || recent {
            problems.push(problem);
        } else {
            warnings.push(problem);
        }
    }
}

fn describe_hole(hole: &Hole) -> String {
    let at = |t: Option<OffsetDateTime>| t.map(|t| format!(" ({})", rfc3339(t)));
    let mut text = format!(
        "archive hole after GTID {}{} (segment {}) before segment {}{}: {}",
        hole.from_gtid,
        at(hole.from_time).unwrap_or_default(),
        hole.after_seq,
        hole.before_seq,
        at(hole.to_time).unwrap_or_default(),
        hole.reason
    );
    if hole.new_run {
        text.push_str(
            "; the stream started a new run (the server had purged the binlogs it needed): no \
             recovery reaches a point inside the hole",
        );
    } else {
        text.push_str(
            "; this is damage: `holdfast verify --all` names it; copy the archive again from a \
             second repository to repair it",
        );
    }
    text
}

fn assess_servers(
    inputs: &Inputs,
    thresholds: &Thresholds,
    now: OffsetDateTime,
    archive_server_id: Option<u32>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Vec<ServerCoverage> {
    // Group by server, keeping the order of first appearance by name.
    let mut groups: BTreeMap<String, (Option<ServerIdentity>, Vec<&BackupFacts>)> = BTreeMap::new();
    for b in &inputs.backups {
        let name = match &b.server {
            Some(s) => s.key(),
            None => "unknown server (manifests are encrypted)".to_string(),
        };
        groups
            .entry(name)
            .or_insert_with(|| (b.server.clone(), Vec::new()))
            .1
            .push(b);
    }
    let archived_by_a_backed_up_server = archive_server_id.is_some_and(|id| {
        groups
            .values()
            .any(|(s, _)| s.as_ref().is_some_and(|s| s.server_id == id))
    });
    if let Some(id) = archive_server_id.filter(|_| inputs.readable) {
        if !archived_by_a_backed_up_server {
            groups.insert(
                format!("server_id {id} (archived only)"),
                (None, Vec::new()),
            );
        }
    }
    const NO_BACKUPS: &str = "no backups yet";
    if groups.is_empty() {
        groups.insert(NO_BACKUPS.to_string(), (None, Vec::new()));
    }
    let mut out = Vec::new();
    let mut backup_problems = Vec::new();
    for (name, (identity, mut backups)) in groups {
        backups.sort_by_key(|b| b.time);
        let newest = backups.last().copied();
        let newest_complete = backups
            .iter()
            .rev()
            .find(|b| b.partial != Some(true))
            .copied();
        let archived = match (&identity, archive_server_id) {
            (Some(s), Some(id)) => s.server_id == id,
            (None, Some(_)) => !archived_by_a_backed_up_server,
            _ => false,
        };
        let server = (name != NO_BACKUPS).then(|| name.clone());
        let partial_note = newest.filter(|n| n.partial == Some(true)).map(|n| {
            format!(
                "the newest backup, {}, is partial (taken with filters): it restores what it \
                 holds but is never the base of a point-in-time recovery",
                n.id
            )
        });
        match newest_complete {
            None => backup_problems.push(Problem {
                check: Check::NoBackup,
                server: server.clone(),
                message: format!(
                    "no complete backup{}: run `holdfast backup` without filters",
                    partial_note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
            }),
            Some(b) if age(now, b.time) > thresholds.max_backup_age => {
                backup_problems.push(Problem {
                    check: Check::BackupAge,
                    server: server.clone(),
                    message: format!(
                        "no complete backup newer than {}: the newest, {}, is {} old{}; run \
                         `holdfast backup`",
                        human_duration(thresholds.max_backup_age),
                        b.id,
                        human_duration(age(now, b.time)),
                        partial_note
                            .as_deref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    ),
                })
            }
            Some(_) => {
                if let Some(note) = partial_note {
                    warnings.push(Problem {
                        check: Check::PartialBackup,
                        server: server.clone(),
                        message: note,
                    });
                }
            }
        }
        out.push(ServerCoverage {
            name,
            identity,
            backups: backups.len(),
            newest_complete: newest_complete.map(|b| summary(b, now)),
            newest: newest
                .filter(|n| newest_complete.is_none_or(|c| c.id != n.id))
                .map(|b| summary(b, now)),
            archived,
        });
    }
    problems.extend(backup_problems);
    out
}

/// Reads the inputs of [`assess`] from an opened repository (with its key, if encrypted).
pub async fn gather(repo: &Repository) -> Result<Inputs> {
    let summaries = repo.list_summaries().await?;
    let drills = crate::drill::status::statuses(&crate::drill::list_records(repo).await?);
    let backups = summaries
        .iter()
        .map(|m| BackupFacts {
            id: m.id.clone(),
            server: Some(ServerIdentity {
                flavor: m.server.flavor.clone(),
                server_id: m.server.server_id,
                server_uuid: m.server.server_uuid.clone(),
                hostname: m.server.hostname.clone(),
            }),
            engine: Some(m.engine.clone()),
            time: m.finished,
            partial: Some(m.is_partial()),
            verified: None,
            drilled: match crate::drill::status::status_of(&drills, &m.id) {
                crate::drill::status::DrillStatus::Verified { at, .. } => Some(at),
                _ => None,
            },
        })
        .collect();
    let archive = Archive::new(repo.storage().clone());
    let seqs = archive.sequence_numbers().await?;
    let last_segment = match seqs.last() {
        Some(&seq) => {
            let s = archive.load_index(seq).await?;
            Some(SegmentFacts {
                seq,
                server_id: s.source.server_id,
                last_event_time: (s.last_event_time != 0)
                    .then(|| OffsetDateTime::from_unix_timestamp(i64::from(s.last_event_time)).ok())
                    .flatten(),
                gtid_state: s.gtid_state.to_string(),
            })
        }
        None => None,
    };
    let stream = archive.stream_status().await?;
    Ok(Inputs {
        repository_id: repo.config().id.clone(),
        readable: true,
        backups,
        archive: ArchiveFacts {
            segments: seqs.len() as u64,
            last_segment,
            record_exists: stream.is_some(),
            stream,
        },
        window: Some(window(repo).await?),
    })
}

/// Reads what an encrypted repository shows without its key: object names (backup ids, which
/// encode their start time, and whether each has its manifest), the number of archived
/// segments and whether a stream record exists. `storage` is the repository's plain storage.
pub async fn gather_without_key(storage: &dyn Storage, repository_id: &str) -> Result<Inputs> {
    let mut backups = Vec::new();
    for id in storage.list_dirs(layout::BACKUPS_DIR).await? {
        if storage.stat(&layout::manifest_path(&id)).await?.is_none() {
            continue;
        }
        if let Some(time) = layout::backup_id_time(&id) {
            backups.push(BackupFacts {
                id,
                server: None,
                engine: None,
                time,
                partial: None,
                verified: None,
                drilled: None,
            });
        }
    }
    let segments = storage
        .list(INDEX_DIR)
        .await?
        .iter()
        .filter(|o| o.path.ends_with(".json"))
        .count() as u64;
    let record_exists = storage.stat(STREAM_STATUS_PATH).await?.is_some();
    Ok(Inputs {
        repository_id: repository_id.to_string(),
        readable: false,
        backups,
        archive: ArchiveFacts {
            segments,
            last_segment: None,
            record_exists,
            stream: None,
        },
        window: None,
    })
}

#[cfg(test)]
mod tests;
