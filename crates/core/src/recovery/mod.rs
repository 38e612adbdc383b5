//! Point-in-time recovery: plan ([`plan`], pure), restore the base backup, replay the archive
//! on one of two paths: portable ([`replay`], SQL over one session) or fast ([`fast`], the
//! server's own replication fed by holdfast acting as its primary).

pub mod fast;
pub mod mysql_gtid;
pub mod plan;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use time::OffsetDateTime;

use crate::binlog::apply::{Applier, ApplyOptions, ApplyReport, Stop};
use crate::binlog::archive::Archive;
use crate::binlog::gtid::GtidPos;
use crate::engine::logical::restore::{run_restore, RestoreOptions, RestoreReport};
use crate::manifest::{BackupHead, BackupManifest, BackupSummary, SegmentIndex};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::source::conn::ConnectionConfig;
use crate::source::server::Flavor;
use crate::{Error, ErrorKind, Result};

pub use plan::{
    archive_holes, plan_recovery, plan_recovery_complete_as_of, recoverable_window, BaseCandidate,
    BaseEngine, BaseRule, Hole, RecoveryPlan, Span, Target, Window,
};

/// How the archive is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPath {
    /// Over a plain SQL session (any account that can write the data).
    #[default]
    Portable,
    /// Through the target's own (parallel) replication, holdfast serving the archive as its
    /// primary (needs REPLICATION SLAVE ADMIN or SUPER on the target).
    Fast,
}

impl std::str::FromStr for ReplayPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<ReplayPath> {
        match s {
            "portable" => Ok(ReplayPath::Portable),
            "fast" => Ok(ReplayPath::Fast),
            other => Err(Error::usage(format!(
                "--replay `{other}`: choose `portable` or `fast`"
            ))),
        }
    }
}

/// Settings of the replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub path: ReplayPath,
    /// Fast path: `slave_parallel_threads` during the replay (0: the server's setting).
    pub parallel_threads: u64,
    /// Portable path: write the replayed transactions to the target's binary log.
    pub keep_binlog: bool,
}

/// What a point-in-time recovery did.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    pub target: String,
    pub base_backup: String,
    /// Newer backups at or before the target that were not used as the base, with why
    /// (partial, other engine, another base named).
    pub bases_passed_over: Vec<String>,
    /// The logical restore of the base (a physical base reports its own restore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<RestoreReport>,
    pub segments_replayed: usize,
    pub replay_path: ReplayPath,
    /// The portable replay's report.
    pub replay: Option<ApplyReport>,
    /// The fast replay's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast: Option<fast::FastReport>,
    /// The restored server's GTID position (MariaDB: also set as its `gtid_slave_pos`; MySQL:
    /// checked equal to its `gtid_executed`).
    pub gtid_position: String,
    pub replay_seconds: f64,
    pub seconds: f64,
}

/// The planner's view of a backup (from its manifest or its summary).
pub fn base_candidate(backup: &impl BackupHead) -> Result<BaseCandidate> {
    let cp = backup.consistent_point();
    let gtid = if cp.binlog_file.is_empty() {
        None
    } else {
        Some(cp.gtid_set.parse::<GtidPos>().map_err(|e| {
            Error::integrity(format!(
                "backup {} records an unreadable GTID position `{}`: {e}",
                backup.backup_id(),
                cp.gtid_set
            ))
        })?)
    };
    Ok(BaseCandidate {
        id: backup.backup_id().to_string(),
        gtid,
        time: cp.time,
        engine: if backup.is_physical() {
            BaseEngine::Physical
        } else {
            BaseEngine::Logical
        },
        partial: backup.is_partial().then(|| backup.scope_description()),
    })
}

/// The recoverable window of the repository (see [`Window`]), from the backups' summaries.
pub async fn window(repo: &Repository) -> Result<Window> {
    let bases = repo
        .list_summaries()
        .await?
        .iter()
        .map(base_candidate)
        .collect::<Result<Vec<_>>>()?;
    let archive = Archive::new(repo.storage().clone());
    let segments = archive.segments().await?;
    let mut window = recoverable_window(&bases, &segments);
    if window.to_time.is_some() {
        window.complete_as_of = complete_as_of(&archive, &segments).await;
    }
    Ok(window)
}

/// A recovery plan, the segments it was made from, and its base's manifest.
#[derive(Debug)]
pub struct Planned {
    pub plan: RecoveryPlan,
    pub segments: Vec<SegmentIndex>,
    /// The manifest of `plan.base`, checked against the summary the plan was made from.
    pub base: BackupManifest,
}

/// Plans a recovery from what the repository holds, with the base chosen by `rule` (nothing is
/// changed).
///
/// The plan is made from the backups' summaries, then the chosen base's manifest is loaded and
/// must summarise to what the plan used; if it does not (a damaged or stale summary), the
/// manifest's facts replace the summary's and the plan is made again. When no base fits, every
/// backup's facts are re-derived from its manifest (a few at a time) before giving up, so a
/// damaged summary can neither choose a base nor rule one out.
pub async fn plan_for(repo: &Repository, target: Target, rule: &BaseRule) -> Result<Planned> {
    let mut summaries = repo.list_summaries().await?;
    let archive = Archive::new(repo.storage().clone());
    let segments = archive.segments().await?;
    let complete_as_of = complete_as_of(&archive, &segments).await;
    let mut rederived = false;
    loop {
        let bases = summaries
            .iter()
            .map(base_candidate)
            .collect::<Result<Vec<_>>>()?;
        match plan_recovery_complete_as_of(&bases, &segments, target, rule, complete_as_of) {
            Ok(plan) => {
                let (base, sha) = repo.load_manifest_hashed(&plan.base).await?;
                let derived = BackupSummary::of(&base, sha);
                let used = summaries
                    .iter_mut()
                    .find(|s| s.id == plan.base)
                    .ok_or_else(|| Error::internal("the planner chose an unknown base"))?;
                if *used == derived {
                    return Ok(Planned {
                        plan,
                        segments,
                        base,
                    });
                }
                tracing::warn!(
                    backup = plan.base,
                    differs = used.differences(&derived).join(", "),
                    "the summary of the chosen base does not match its manifest (`holdfast \
                     verify` names it); planning again from the manifest"
                );
                *used = derived;
            }
            Err(e) if e.kind() == ErrorKind::NotRecoverable && !rederived => {
                rederived = true;
                let checked = repo.check_summaries().await?;
                // Missing summaries were derived from their manifests already.
                if checked.iter().all(|c| c.state.is_sound()) && checked.len() == summaries.len() {
                    return Err(name_the_window(e, &bases, &segments));
                }
                summaries = checked.into_iter().map(|c| c.derived).collect();
            }
            Err(e) => return Err(name_the_window(e, &bases, &segments)),
        }
    }
}

/// When the archive last held every event the server had written, from the stream's heartbeat
/// record, if the record describes this archive's end (its newest segment and GTID state). An
/// unreadable record is no reason to refuse a recovery: it is then as if there were none.
async fn complete_as_of(archive: &Archive, segments: &[SegmentIndex]) -> Option<OffsetDateTime> {
    let status = match archive.stream_status().await {
        Ok(status) => status?,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the stream status record");
            return None;
        }
    };
    let last = segments.last()?;
    (status.last_seq == Some(last.seq) && status.gtid_state == last.gtid_state.to_string())
        .then_some(status.caught_up_as_of)
        .flatten()
}

/// Checks every segment `plan` replays before anything is changed: its data object must be
/// present with the size and SHA-256 of its index entry (streamed, four at a time, nothing kept
/// in memory). The first damaged segment is an `Integrity` error naming it (sequence number,
/// object, binlog file and positions) and saying what to do: recover to a point before it, or
/// copy the archive again from a repository that has it intact.
pub async fn check_planned_segments(
    repo: &Repository,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let planned: Vec<&SegmentIndex> = plan
        .pieces
        .iter()
        .flatten()
        .map(|seq| {
            segments
                .iter()
                .find(|s| s.seq == *seq)
                .ok_or_else(|| Error::internal(format!("planned segment {seq} vanished")))
        })
        .collect::<Result<_>>()?;
    if planned.is_empty() {
        return Ok(());
    }
    let archive = Archive::new(repo.storage().clone());
    let total = planned.iter().map(|s| s.object.size).sum();
    progress.phase("checking the archived binlog segments", total, "bytes");
    let mut checks = futures::stream::iter(planned)
        .map(|s| {
            let archive = archive.clone();
            async move { (s, archive.check_segment(s).await) }
        })
        .buffered(4);
    while let Some((segment, result)) = checks.next().await {
        match result {
            Ok(bytes) => progress.advance(bytes),
            Err(e) if e.kind() == ErrorKind::Integrity => {
                return Err(damaged_segment(segment, segments, &e))
            }
            Err(e) => return Err(e.context(segment.describe())),
        }
    }
    Ok(())
}

/// The error for a damaged segment a recovery needs, with the way out.
fn damaged_segment(segment: &SegmentIndex, segments: &[SegmentIndex], cause: &Error) -> Error {
    let before = segments
        .iter()
        .rev()
        .filter(|s| s.seq < segment.seq)
        .find_map(|s| s.last_gtid);
    let earlier = match before {
        Some(g) => format!(
            "recover to a point before it (--to-gtid {g} is the last transaction before it)"
        ),
        None => {
            "no point in the archive lies before it; restore a backup taken after it".to_string()
        }
    };
    Error::integrity(format!(
        "{} is damaged: {cause}. Nothing was changed on the target. This recovery cannot \
         replay past it: {earlier}, or copy the archive again from a second repository that has \
         it intact (`holdfast copy --from OTHER --to THIS`) and run `holdfast verify --all`",
        segment.describe()
    ))
}

/// Adds the recoverable window to a target-out-of-reach error, so the user sees at once which
/// targets would work (after `expire`, the window's start moves).
fn name_the_window(e: Error, bases: &[BaseCandidate], segments: &[SegmentIndex]) -> Error {
    if e.kind() != ErrorKind::NotRecoverable {
        return e;
    }
    let w = recoverable_window(bases, segments);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    match (w.from_time, w.to_time) {
        (Some(from), Some(to)) => Error::new(
            ErrorKind::NotRecoverable,
            format!(
                "{}; the recoverable window is {} (backup {}) to {} (`holdfast info`)",
                e.message(),
                fmt(from),
                w.from_backup.as_deref().unwrap_or("-"),
                fmt(to)
            ),
        ),
        _ => e,
    }
}

/// Restores the planned base backup (logical) into `server` and replays the archive up to the
/// plan's target (`planned` from [`plan_for`], whose base manifest is the one restored: never a
/// second copy of it). Everything that can be checked (the plan, the base's engine and scope,
/// the target's flavor and GTID state, the fast path's privileges) is checked before the target
/// changes.
pub async fn recover(
    repo: &Repository,
    server: &ConnectionConfig,
    planned: Planned,
    restore: &RestoreOptions,
    replay_opts: &ReplayOptions,
    progress: Arc<dyn Progress>,
) -> Result<RecoveryReport> {
    let started = Instant::now();
    let Planned {
        plan,
        segments,
        base: manifest,
    } = planned;
    if manifest.is_physical() {
        return Err(Error::usage(format!(
            "the base for this recovery is physical backup {}: restore it into a datadir \
             (holdfast restore --datadir …), which replays with replay_planned",
            manifest.id
        )));
    }
    if manifest.is_partial() {
        return Err(Error::internal(format!(
            "the planner chose partial backup {} as a base",
            manifest.id
        )));
    }
    if restore.filter != Default::default() || !restore.renames.is_empty() {
        return Err(Error::usage(
            "point-in-time recovery restores whole backups: the binlog replay touches every \
             database, so --databases/--tables/--rename-db cannot be combined with it",
        ));
    }
    // Every segment the replay reads, and everything the fast path can check, is checked
    // before the target is changed.
    check_planned_segments(repo, &plan, &segments, progress.clone()).await?;
    let flavor = check_flavor(server, replay_opts).await?;
    if flavor == Flavor::MySql {
        mysql_gtid::check_target(server, &plan.start).await?;
    }
    let ready = prepare_fast(repo, server, &plan, &segments, replay_opts).await?;
    let base = run_restore(repo, &manifest, server, restore, progress.clone()).await?;
    // The replay needs the plan, not the base's tables.
    drop(manifest);
    if flavor == Flavor::MySql {
        mysql_gtid::align_to_base(server, &plan.start).await?;
    }
    let mut report =
        finish_replay(repo, server, &plan, &segments, replay_opts, ready, progress).await?;
    report.base = Some(base);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Replays a plan into a server that already holds its base backup (a physical restore with a
/// started server), then records the reached position as its `gtid_slave_pos`.
pub async fn replay_planned(
    repo: &Repository,
    server: &ConnectionConfig,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    replay_opts: &ReplayOptions,
    progress: Arc<dyn Progress>,
) -> Result<RecoveryReport> {
    check_flavor(server, replay_opts).await?;
    let ready = prepare_fast(repo, server, plan, segments, replay_opts).await?;
    finish_replay(repo, server, plan, segments, replay_opts, ready, progress).await
}

/// The target's flavor; the fast path serves MariaDB replicas only.
async fn check_flavor(server: &ConnectionConfig, replay_opts: &ReplayOptions) -> Result<Flavor> {
    let flavor = mysql_gtid::target_flavor(server).await?;
    if flavor == Flavor::MySql && replay_opts.path == ReplayPath::Fast {
        return Err(Error::usage(
            "--replay fast serves the archive to a MariaDB replica; a MySQL target replays \
             with --replay portable (the default)",
        ));
    }
    Ok(flavor)
}

/// The fast path's checks and stop position, computed before anything changes.
struct FastReady {
    pieces: Vec<Vec<SegmentIndex>>,
    until: fast::UntilPosition,
}

async fn prepare_fast(
    repo: &Repository,
    server: &ConnectionConfig,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    replay_opts: &ReplayOptions,
) -> Result<Option<FastReady>> {
    if replay_opts.path != ReplayPath::Fast || plan.pieces.is_empty() {
        return Ok(None);
    }
    let archive = Archive::new(repo.storage().clone());
    let pieces = fast::planned_pieces(plan, segments)?;
    fast::check_can_replicate(server).await?;
    let until = fast::until_position(&archive, &pieces, &plan.start, plan.target).await?;
    Ok(Some(FastReady { pieces, until }))
}

async fn finish_replay(
    repo: &Repository,
    server: &ConnectionConfig,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    replay_opts: &ReplayOptions,
    ready: Option<FastReady>,
    progress: Arc<dyn Progress>,
) -> Result<RecoveryReport> {
    let started = Instant::now();
    let (replay, fast) = match ready {
        Some(ready) if ready.until.transactions > 0 => {
            let archive = Archive::new(repo.storage().clone());
            let opts = fast::FastOptions {
                parallel_threads: replay_opts.parallel_threads,
            };
            let report = fast::replay_fast(
                &archive,
                server,
                plan,
                ready.pieces,
                &ready.until,
                &opts,
                progress,
            )
            .await?;
            (None, Some(report))
        }
        Some(_) => (None, None),
        None => (
            replay(repo, server, plan, segments, replay_opts.keep_binlog).await?,
            None,
        ),
    };
    let position = match (&replay, &fast) {
        (Some(r), _) => r.position.clone(),
        (_, Some(f)) => f.position.clone(),
        _ => plan.start.clone(),
    };
    if mysql_gtid::target_flavor(server).await? == Flavor::MySql {
        mysql_gtid::verify_position(server, &position).await?;
    } else {
        set_gtid_position(server, &position).await?;
    }
    Ok(RecoveryReport {
        target: plan.target.to_string(),
        base_backup: plan.base.clone(),
        bases_passed_over: plan.passed_over.clone(),
        base: None,
        segments_replayed: plan.segment_count(),
        replay_path: replay_opts.path,
        replay,
        fast,
        gtid_position: position.to_string(),
        replay_seconds: started.elapsed().as_secs_f64(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Replays the plan's pieces into `server` over one SQL session.
pub async fn replay(
    repo: &Repository,
    server: &ConnectionConfig,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    keep_binlog: bool,
) -> Result<Option<ApplyReport>> {
    if plan.pieces.is_empty() {
        return Ok(None);
    }
    let stop = match plan.target {
        Target::Latest => Stop::End,
        Target::Time(t) => Stop::AtTime(t.unix_timestamp()),
        Target::Gtid(g) => Stop::AtGtid(g),
        Target::BeforeGtid(g) => Stop::BeforeGtid(g),
    };
    let mut conn = server.connect().await?;
    if !keep_binlog {
        conn.query_drop("SET SESSION sql_log_bin = 0")
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Server,
                    "turning the binary log off for the replay",
                    e,
                )
            })?;
    }
    let mut applier = Applier::new(conn, ApplyOptions::new(plan.start.clone(), stop)).await?;
    let archive = Archive::new(repo.storage().clone());
    for piece in &plan.pieces {
        let members: Vec<SegmentIndex> = piece
            .iter()
            .map(|seq| {
                segments
                    .iter()
                    .find(|s| s.seq == *seq)
                    .cloned()
                    .ok_or_else(|| Error::internal(format!("planned segment {seq} vanished")))
            })
            .collect::<Result<_>>()?;
        let name = members
            .first()
            .map(|s| format!("{} (segment {})", s.source.file, s.seq))
            .unwrap_or_default();
        let archive = archive.clone();
        let bytes = futures::stream::iter(members).then(move |s| {
            let archive = archive.clone();
            async move {
                archive
                    .read_segment(&s)
                    .await
                    .map(Bytes::from)
                    .map_err(std::io::Error::other)
            }
        });
        let reader = tokio_util::io::StreamReader::new(Box::pin(bytes));
        if !applier.apply(&name, reader).await? {
            break;
        }
    }
    let (report, _conn) = applier.finish().await?;
    if let (Target::Gtid(g) | Target::BeforeGtid(g), false) = (
        plan.target,
        report.stop_reason == crate::binlog::apply::StopReason::Target,
    ) {
        return Err(Error::new(
            ErrorKind::NotRecoverable,
            format!(
                "the replay did not reach GTID {g} ({:?}); the server now holds the base backup \
                 plus transactions up to {}",
                report.stop_reason, report.position
            ),
        ));
    }
    Ok(Some(report))
}

/// Records the restored position as the server's replication position, so it can be attached
/// as a replica of the original topology (`CHANGE MASTER TO … MASTER_USE_GTID=slave_pos`).
async fn set_gtid_position(server: &ConnectionConfig, position: &GtidPos) -> Result<()> {
    let mut conn = server.connect().await?;
    conn.query_drop(format!("SET GLOBAL gtid_slave_pos = '{position}'"))
        .await
        .map_err(|e| Error::with_source(ErrorKind::Server, "setting gtid_slave_pos", e))
}
