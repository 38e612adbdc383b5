//! Point-in-time recovery planning: a pure function from the repository's backups and archived
//! segments to "restore this base backup, then replay these segments, stopping here".
//!
//! The rules:
//! - The base is the newest *complete* backup that is at or before the target (by its consistent
//!   point's time for a time target, by its GTID position for a GTID target), of the engine the
//!   recovery restores into ([`BaseRule`]), or the one the user named. A partial backup (taken
//!   with filters) is never a base: the replay applies every database's transactions, so on a
//!   base missing a database it would either fail half-way or leave that database as the target
//!   had it, not as the source did. When no backup qualifies the error says which could serve.
//! - The replay starts at the first piece of the archive holding a transaction the base does not
//!   have (fed from the piece's header so the replayer has the file's format description;
//!   transactions already in the base are skipped by GTID).
//! - The archive must be continuous from the base's point to the target: consecutive segments of
//!   a file must touch, a rotation must follow a file's end, and a piece started by GTID must
//!   start from the state the previous segment ended with. Any hole is an error naming it.
//! - The target must be inside the archive: a time not after the archive's last event, a GTID
//!   the archive holds. A time after the last event is inside the archive too when the stream
//!   said the archive was complete at or after it ([`plan_recovery_complete_as_of`]: the
//!   server was idle, nothing is missing), so a recovery to "now" works on a quiet server.
//! - A new run of the archive ([`PieceStart::NewRun`], streaming started again after the server
//!   purged what the archive needed) is a hole that is never crossed: a point after it needs a
//!   base at or after the new run's start.

use time::OffsetDateTime;

use crate::binlog::gtid::{Gtid, GtidPos};
use crate::manifest::{PieceStart, SegmentIndex};
use crate::{Error, ErrorKind, Result};

/// What to recover to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every transaction committed at or before this time.
    Time(OffsetDateTime),
    /// Up to and including this transaction.
    Gtid(Gtid),
    /// Up to, not including, this transaction (undo an accident).
    BeforeGtid(Gtid),
    /// Everything archived.
    Latest,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Time(t) => write!(
                f,
                "time {}",
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            Target::Gtid(g) => write!(f, "GTID {g} (inclusive)"),
            Target::BeforeGtid(g) => write!(f, "just before GTID {g}"),
            Target::Latest => f.write_str("the end of the archive"),
        }
    }
}

/// A backup as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseCandidate {
    pub id: String,
    /// GTID position at the consistent point (`None` when the backup has no binlog position).
    pub gtid: Option<GtidPos>,
    pub time: OffsetDateTime,
    pub engine: BaseEngine,
    /// `None` for a complete backup; for a partial one, its scope for people
    /// (`partial: databases app`).
    pub partial: Option<String>,
}

/// Where a base backup is restored: a logical one into a running server, a physical one into
/// an empty datadir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseEngine {
    Logical,
    Physical,
}

impl BaseEngine {
    pub fn name(self) -> &'static str {
        match self {
            BaseEngine::Logical => "logical",
            BaseEngine::Physical => "physical",
        }
    }

    /// How a base of this engine is restored, for messages.
    fn how(self) -> &'static str {
        match self {
            BaseEngine::Logical => "into a running server with --target URL (without --datadir)",
            BaseEngine::Physical => "into an empty datadir with --datadir DIR",
        }
    }
}

impl std::fmt::Display for BaseEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which backups a recovery may start from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseRule {
    /// The backup the user named (`--base`): it must exist, be complete, be at or before the
    /// target and be of `engine`.
    pub named: Option<String>,
    /// Only backups of this engine (`None`: any).
    pub engine: Option<BaseEngine>,
    /// Why only `engine` is allowed (`--engine logical`, `--datadir takes a physical base`),
    /// quoted in errors.
    pub engine_reason: String,
}

/// The plan: restore `base`, then replay `pieces` in order from `start`, stopping at `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPlan {
    pub base: String,
    /// Newer backups at or before the target that were not used, each with the reason
    /// (`backup X is partial: databases app`), newest first.
    pub passed_over: Vec<String>,
    pub start: GtidPos,
    pub target: Target,
    /// Sequence numbers of segments to replay, grouped by piece (each piece begins with a
    /// header segment). Empty when the base is already the target.
    pub pieces: Vec<Vec<u64>>,
}

impl RecoveryPlan {
    pub fn segment_count(&self) -> usize {
        self.pieces.iter().map(Vec::len).sum()
    }
}

/// Plans a recovery; see the module documentation. `bases` in any order, `segments` in
/// archive order (ascending `seq`).
pub fn plan_recovery(
    bases: &[BaseCandidate],
    segments: &[SegmentIndex],
    target: Target,
    rule: &BaseRule,
) -> Result<RecoveryPlan> {
    plan_recovery_complete_as_of(bases, segments, target, rule, None)
}

/// [`plan_recovery`], knowing that the archive held every event the server had written as of
/// `complete_as_of` (the stream's heartbeat record,
/// [`StreamStatus::caught_up_as_of`](crate::manifest::StreamStatus::caught_up_as_of)): a time
/// target after the archive's last event and not after that instant recovers everything
/// archived, since nothing was committed in between.
pub fn plan_recovery_complete_as_of(
    bases: &[BaseCandidate],
    segments: &[SegmentIndex],
    target: Target,
    rule: &BaseRule,
    complete_as_of: Option<OffsetDateTime>,
) -> Result<RecoveryPlan> {
    let base = choose_base(bases, target, rule)?;
    let passed_over = passed_over(bases, base, target, rule);
    let start = base
        .gtid
        .clone()
        .expect("choose_base keeps backups with a position");
    if let Target::Gtid(g) = target {
        if start.ends_at(&g) {
            return Ok(no_replay(base, passed_over, start, target));
        }
    }
    // First segment holding a transaction the base does not have.
    let Some(first_new) = segments.iter().position(|s| !start.includes(&s.gtid_state)) else {
        return match target {
            Target::Latest => Ok(no_replay(base, passed_over, start, target)),
            Target::Time(t)
                if t <= archive_end_time(segments, base) || complete_at(complete_as_of, t) =>
            {
                Ok(no_replay(base, passed_over, start, target))
            }
            _ => Err(beyond_archive(segments, target, complete_as_of)),
        };
    };
    let first = piece_start_index(segments, first_new).ok_or_else(|| {
        not_recoverable(format!(
            "the archive holds no format description before segment {}: the start of its \
             binlog file is missing",
            segments[first_new].seq
        ))
    })?;
    if first > 0 {
        // What precedes the first piece used is judged by the segment before it: that must
        // really be its predecessor.
        check_adjacent(&segments[first - 1], &segments[first])?;
    }
    check_archive_reaches(segments, first, &start)?;
    let last = last_needed(segments, first_new, target, complete_as_of)?;
    // Segments before the first new transaction are read only for the format description;
    // continuity matters from the boundary before the first new transaction on.
    check_continuity(&segments[first_new.saturating_sub(1).max(first)..=last])?;
    let mut pieces: Vec<Vec<u64>> = Vec::new();
    for s in &segments[first..=last] {
        if s.header || pieces.is_empty() {
            pieces.push(Vec::new());
        }
        pieces.last_mut().expect("pushed").push(s.seq);
    }
    Ok(RecoveryPlan {
        base: base.id.clone(),
        passed_over,
        start,
        target,
        pieces,
    })
}

fn no_replay(
    base: &BaseCandidate,
    passed_over: Vec<String>,
    start: GtidPos,
    target: Target,
) -> RecoveryPlan {
    RecoveryPlan {
        base: base.id.clone(),
        passed_over,
        start,
        target,
        pieces: Vec::new(),
    }
}

/// Whether a backup with a position is at or before the target.
fn fits(b: &BaseCandidate, target: Target) -> bool {
    let Some(pos) = b.gtid.as_ref() else {
        return false;
    };
    match target {
        Target::Time(t) => b.time <= t,
        Target::Gtid(g) => !pos.contains(&g) || pos.ends_at(&g),
        Target::BeforeGtid(g) => !pos.contains(&g),
        Target::Latest => true,
    }
}

fn newest<'a>(bases: impl IntoIterator<Item = &'a BaseCandidate>) -> Option<&'a BaseCandidate> {
    bases.into_iter().max_by_key(|b| (b.time, b.id.clone()))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `backup X (consistent at T, GTID G)`.
fn describe(b: &BaseCandidate) -> String {
    format!(
        "backup {} (consistent at {}, GTID {})",
        b.id,
        rfc3339(b.time),
        b.gtid.as_ref().map(|g| g.to_string()).unwrap_or_default()
    )
}

fn choose_base<'a>(
    bases: &'a [BaseCandidate],
    target: Target,
    rule: &BaseRule,
) -> Result<&'a BaseCandidate> {
    if let Some(id) = &rule.named {
        return named_base(bases, id, target, rule);
    }
    let usable: Vec<&BaseCandidate> = bases.iter().filter(|b| b.gtid.is_some()).collect();
    if usable.is_empty() {
        return Err(not_recoverable(if bases.is_empty() {
            "the repository has no backups: point-in-time recovery starts from a backup".into()
        } else {
            "no backup records a binlog position (they were taken with the binary log off)"
                .to_string()
        }));
    }
    let fitting: Vec<&BaseCandidate> = usable.iter().copied().filter(|b| fits(b, target)).collect();
    if fitting.is_empty() {
        let oldest = usable.iter().min_by_key(|b| b.time).expect("non-empty");
        return Err(not_recoverable(format!(
            "the target ({target}) is before the oldest usable backup {} (consistent at {}, GTID \
             {}): nothing can be restored to that point",
            oldest.id,
            rfc3339(oldest.time),
            oldest
                .gtid
                .as_ref()
                .map(|g| g.to_string())
                .unwrap_or_default()
        )));
    }
    let engine_ok = |b: &&BaseCandidate| rule.engine.is_none_or(|e| b.engine == e);
    let complete = |b: &&BaseCandidate| b.partial.is_none();
    if let Some(base) = newest(fitting.iter().copied().filter(complete).filter(engine_ok)) {
        return Ok(base);
    }
    // Nothing qualifies: say what could serve.
    if let Some(other) = newest(fitting.iter().copied().filter(complete)) {
        let engine = rule.engine.expect("only the engine excluded it");
        return Err(Error::usage(format!(
            "no complete {engine} backup is at or before the target ({target}): {}; the {} \
             {} is: restore it {}",
            rule.engine_reason,
            other.engine,
            describe(other),
            other.engine.how()
        )));
    }
    let mut message = format!(
        "no complete backup is at or before the target ({target}): a point-in-time recovery \
         replays every database's transactions, so its base must hold every database"
    );
    if let Some(p) = newest(fitting.iter().copied().filter(|b| b.partial.is_some())) {
        message.push_str(&format!(
            "; {} is {}, so it cannot be the base: restore it alone with `holdfast restore {}` \
             (no replay), or take a full backup (without --databases/--tables filters) for \
             later recoveries",
            describe(p),
            p.partial.as_deref().unwrap_or("partial"),
            p.id
        ));
    }
    match usable
        .iter()
        .copied()
        .filter(complete)
        .min_by_key(|b| b.time)
    {
        Some(c) => message.push_str(&format!(
            "; the oldest complete backup, {}, is after the target",
            describe(c)
        )),
        None => message.push_str(
            "; the repository has no complete backup with a binlog position: take one with \
             `holdfast backup` (no filters)",
        ),
    }
    Err(not_recoverable(message))
}

/// The base the user named with `--base`.
fn named_base<'a>(
    bases: &'a [BaseCandidate],
    id: &str,
    target: Target,
    rule: &BaseRule,
) -> Result<&'a BaseCandidate> {
    let Some(b) = bases.iter().find(|b| b.id == id) else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("--base {id}: no such backup; `holdfast list` shows the backups"),
        ));
    };
    if b.gtid.is_none() {
        return Err(not_recoverable(format!(
            "--base {id}: the backup records no binlog position (it was taken with the binary \
             log off), so no point-in-time recovery can start from it"
        )));
    }
    if let Some(scope) = &b.partial {
        return Err(not_recoverable(format!(
            "--base {id}: the backup is {scope}; a point-in-time recovery replays every \
             database's transactions, so its base must be a complete backup: restore {id} \
             alone with `holdfast restore {id}` (no replay), or name a complete backup"
        )));
    }
    if let Some(engine) = rule.engine.filter(|e| *e != b.engine) {
        return Err(Error::usage(format!(
            "--base {id}: it is a {} backup, but {} ({engine} only): restore it {}",
            b.engine,
            rule.engine_reason,
            b.engine.how()
        )));
    }
    if !fits(b, target) {
        return Err(not_recoverable(format!(
            "--base {id}: {} is after the target ({target}); a base must be at or before it \
             (`holdfast list` shows older backups)",
            describe(b)
        )));
    }
    Ok(b)
}

/// Newer backups at or before the target than the chosen base, with why each was not used.
fn passed_over(
    bases: &[BaseCandidate],
    base: &BaseCandidate,
    target: Target,
    rule: &BaseRule,
) -> Vec<String> {
    let mut newer: Vec<&BaseCandidate> = bases
        .iter()
        .filter(|b| b.id != base.id && fits(b, target) && (b.time, &b.id) > (base.time, &base.id))
        .collect();
    newer.sort_by_key(|b| std::cmp::Reverse((b.time, b.id.clone())));
    newer
        .into_iter()
        .map(|b| match &b.partial {
            Some(scope) => format!("backup {} is {scope}", b.id),
            None if rule.named.is_some() => format!("backup {} (--base {} named)", b.id, base.id),
            None => format!("backup {} is {} ({})", b.id, b.engine, rule.engine_reason),
        })
        .collect()
}

/// The header segment starting the piece that `i` belongs to.
fn piece_start_index(segments: &[SegmentIndex], i: usize) -> Option<usize> {
    (0..=i).rev().find(|&j| segments[j].header)
}

/// The archive must not begin after the base's point: whatever precedes the first piece used
/// must already be in the base.
fn check_archive_reaches(segments: &[SegmentIndex], first: usize, start: &GtidPos) -> Result<()> {
    if let Some(PieceStart::NewRun {
        after_gap_from,
        from,
        ..
    }) = &segments[first].piece_start
    {
        // After a hole: the base must be at or after the new run's start.
        let s = &segments[first];
        let reaches = match from {
            Some(from) => start.includes(from),
            // Where the run starts is unknown: only a base that already has its first
            // transaction is safe.
            None => s.first_gtid.is_some_and(|g| start.contains(&g)),
        };
        return if reaches {
            Ok(())
        } else {
            Err(not_recoverable(format!(
                "the backup's point (GTID {start}) is before the new run of the archive that \
                 starts at segment {} (from GTID {}): the archive has a hole after GTID \
                 {after_gap_from}, so a point after the hole needs a backup taken at or after \
                 the new run's start",
                s.seq,
                from.as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "unknown".into())
            )))
        };
    }
    let before = if first > 0 {
        Some(segments[first - 1].gtid_state.clone())
    } else {
        match &segments[first].piece_start {
            Some(PieceStart::Gtid { from }) => Some(from.clone()),
            Some(PieceStart::Rotation) | Some(PieceStart::Position) => None,
            Some(PieceStart::Oldest) | Some(PieceStart::NewRun { .. }) | None => None,
        }
    };
    match before {
        Some(before) if start.includes(&before) => Ok(()),
        Some(before) => Err(not_recoverable(format!(
            "the archive is missing transactions between the backup's point (GTID {start}) and \
             the first archived segment used (which starts after GTID {before})"
        ))),
        // The archive begins with this piece and does not say from where: only safe when the
        // piece itself starts with transactions the base has.
        None => {
            let s = &segments[first];
            if first == 0 && s.first_gtid.is_some_and(|g| !start.contains(&g)) {
                Err(not_recoverable(format!(
                    "the archive begins at GTID {} (segment {}), after the backup's point \
                     (GTID {start}): the transactions in between were never archived",
                    s.first_gtid.expect("checked"),
                    s.seq
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// True when the archive was complete at time `t` (see [`plan_recovery_complete_as_of`]).
fn complete_at(complete_as_of: Option<OffsetDateTime>, t: OffsetDateTime) -> bool {
    complete_as_of.is_some_and(|c| t <= c)
}

/// Index of the last segment the target needs.
fn last_needed(
    segments: &[SegmentIndex],
    from: usize,
    target: Target,
    complete_as_of: Option<OffsetDateTime>,
) -> Result<usize> {
    let last = segments.len() - 1;
    match target {
        Target::Latest => Ok(last),
        Target::Gtid(g) | Target::BeforeGtid(g) => segments[from..]
            .iter()
            .position(|s| s.gtid_state.contains(&g))
            .map(|i| from + i)
            .ok_or_else(|| beyond_archive(segments, target, complete_as_of)),
        Target::Time(t) => {
            let secs = t.unix_timestamp();
            match segments[from..]
                .iter()
                .position(|s| (s.last_event_time as i64) > secs)
            {
                Some(i) => Ok(from + i),
                None if (segments[last].last_event_time as i64) >= secs => Ok(last),
                None if complete_at(complete_as_of, t) => Ok(last),
                None => Err(beyond_archive(segments, target, complete_as_of)),
            }
        }
    }
}

fn archive_end_time(segments: &[SegmentIndex], base: &BaseCandidate) -> OffsetDateTime {
    segments
        .last()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s.last_event_time as i64).ok())
        .map_or(base.time, |t| t.max(base.time))
}

/// Why two consecutive segments (`pair`) do not continue each other, or `None` when they do.
pub(crate) fn archive_gap(pair: &[SegmentIndex]) -> Option<String> {
    check_continuity(pair)
        .err()
        .map(|e| e.message().to_string())
}

/// Checks that each segment of `run` (ascending `seq`) continues the one before it: no index
/// entry missing between them ([`check_adjacent`], an `Integrity` error), positions touching
/// within a file, a new piece starting where the archive ended (else a `NotRecoverable` gap).
/// `holdfast verify` checks the whole archive with this same rule.
pub fn check_continuity(run: &[SegmentIndex]) -> Result<()> {
    for pair in run.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        check_adjacent(prev, next)?;
        if let Some(PieceStart::NewRun { from, reason, .. }) = &next.piece_start {
            return Err(not_recoverable(format!(
                "the archive has a hole between segment {} (ending at GTID {}, last event at \
                 {}) and segment {}, which starts a new run of the archive ({reason}). No \
                 recovery crosses it: recover to a point before the hole, or to one after it \
                 from a backup taken at or after the new run's start{}",
                prev.seq,
                prev.gtid_state,
                event_time(prev.last_event_time),
                next.seq,
                from.as_ref()
                    .map(|f| format!(" (GTID {f})"))
                    .unwrap_or_default()
            )));
        }
        let ok = if !next.header {
            next.source == prev.source && next.start_pos == prev.end_pos
        } else {
            match &next.piece_start {
                // The same server went on to its next file in one stream (after a rotate
                // event, or after a crash left the previous file without one).
                Some(PieceStart::Rotation) => {
                    prev.ends_file || prev.source.server_id == next.source.server_id
                }
                Some(PieceStart::Position) => {
                    next.source == prev.source && next.start_pos == prev.end_pos
                }
                Some(PieceStart::Gtid { from }) => {
                    from.includes(&prev.gtid_state) && prev.gtid_state.includes(from)
                }
                Some(PieceStart::Oldest) | Some(PieceStart::NewRun { .. }) | None => false,
            }
        };
        if !ok {
            return Err(not_recoverable(format!(
                "the archive has a gap between segment {} ({} ending at {}, GTID {}) and \
                 segment {} ({} from {}): transactions in between may be missing, so no \
                 recovery can cross it",
                prev.seq,
                prev.source.file,
                prev.end_pos,
                prev.gtid_state,
                next.seq,
                next.source.file,
                next.start_pos
            )));
        }
    }
    Ok(())
}

/// An event timestamp as RFC 3339 (`-` when unknown).
fn event_time(seconds: u32) -> String {
    if seconds == 0 {
        return "-".into();
    }
    OffsetDateTime::from_unix_timestamp(i64::from(seconds))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Sequence numbers are given out 1, 2, 3 … with no reuse, so a number missing between two
/// committed segments is a lost index entry (a damaged repository, or an interrupted `copy`),
/// not a gap the stream recorded. A merged segment stands for its whole range
/// ([`SegmentIndex::last_seq`]): the next one continues after the range.
pub fn check_adjacent(prev: &SegmentIndex, next: &SegmentIndex) -> Result<()> {
    let after = prev.last_seq();
    if next.seq == after + 1 {
        return Ok(());
    }
    let missing = if next.seq == after + 2 {
        format!(
            "the index entry of segment {} (`{}`) is missing",
            after + 1,
            crate::binlog::archive::index_path(after + 1)
        )
    } else {
        format!(
            "the index entries of segments {} to {} (`{}` …) are missing",
            after + 1,
            next.seq - 1,
            crate::binlog::archive::index_path(after + 1)
        )
    };
    Err(Error::integrity(format!(
        "{missing}, between segment {} ({} ending at {}, GTID {}) and segment {} ({} from {}): \
         committed binlog was lost from the archive, so no recovery can cross it; recover to a \
         point before it (--to-gtid {} or an earlier --to-time), or copy the archive again from \
         a second repository (`holdfast copy`)",
        prev.seq_label(),
        prev.source.file,
        prev.end_pos,
        prev.gtid_state,
        next.seq,
        next.source.file,
        next.start_pos,
        prev.last_gtid
            .map(|g| g.to_string())
            .unwrap_or_else(|| prev.gtid_state.to_string()),
    )))
}

fn beyond_archive(
    segments: &[SegmentIndex],
    target: Target,
    complete_as_of: Option<OffsetDateTime>,
) -> Error {
    let complete = match (complete_as_of, target) {
        (Some(c), Target::Time(_)) => format!(
            ", and the stream last reported it complete as of {}",
            rfc3339(c)
        ),
        _ => String::new(),
    };
    match segments.last() {
        Some(last) => not_recoverable(format!(
            "the target ({target}) is beyond the archive, which ends at GTID {} (last event \
             at {}{complete}); restore to --latest, or wait for `holdfast binlog stream` to \
             archive it",
            last.gtid_state,
            OffsetDateTime::from_unix_timestamp(last.last_event_time as i64)
                .ok()
                .and_then(|t| t
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
                .unwrap_or_default()
        )),
        None => not_recoverable(format!(
            "the target ({target}) needs the binlog archive, which is empty: run `holdfast \
             binlog stream` beside the server"
        )),
    }
}

fn not_recoverable(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotRecoverable, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event::ChecksumAlg;
    use crate::manifest::{FileEntry, SegmentSource, SEGMENT_FORMAT};

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn g(seq: u64) -> Gtid {
        Gtid::maria(0, 1, seq)
    }

    fn pos(seq: u64) -> GtidPos {
        GtidPos::from_gtids([g(seq)])
    }

    /// A segment of file `file` from `start` to `end` holding transactions `first..=last`
    /// committed at times `first..=last` (relative seconds).
    fn seg(seq: u64, file: &str, start: u64, end: u64, first: u64, last: u64) -> SegmentIndex {
        SegmentIndex {
            format: SEGMENT_FORMAT,
            seq,
            source: SegmentSource {
                server_id: 1,
                server_version: "10.11".into(),
                file: file.into(),
                file_created: 1,
            },
            start_pos: start,
            end_pos: end,
            header: start == 0,
            piece_start: (start == 0).then(|| PieceStart::Gtid {
                from: pos(first - 1),
            }),
            checksum: ChecksumAlg::Crc32,
            events: 1,
            transactions: last - first + 1,
            first_event_time: (1_700_000_000 + first) as u32,
            last_event_time: (1_700_000_000 + last) as u32,
            first_gtid: Some(g(first)),
            last_gtid: Some(g(last)),
            gtid_state: pos(last),
            open_transaction: false,
            ends_file: false,
            raw_size: 0,
            object: FileEntry {
                path: String::new(),
                size: 0,
                sha256: String::new(),
            },
            archived: t(0),
            merged_to: None,
            replaced_object: None,
        }
    }

    fn any() -> BaseRule {
        BaseRule::default()
    }

    fn base(id: &str, seq: u64) -> BaseCandidate {
        BaseCandidate {
            id: id.into(),
            gtid: Some(pos(seq)),
            time: t(seq as i64),
            engine: BaseEngine::Logical,
            partial: None,
        }
    }

    /// One file: transactions 1..=10 in segment 1, 11..=20 in 2, 21..=30 in 3.
    fn archive() -> Vec<SegmentIndex> {
        vec![
            seg(1, "b.1", 0, 100, 1, 10),
            seg(2, "b.1", 100, 200, 11, 20),
            seg(3, "b.1", 200, 300, 21, 30),
        ]
    }

    #[test]
    fn plans_pick_the_newest_base_and_just_the_segments_needed() {
        let bases = [base("A", 5), base("B", 15)];
        let cases: &[(Target, &str, Vec<Vec<u64>>)] = &[
            (Target::Latest, "B", vec![vec![1, 2, 3]]),
            (Target::Gtid(g(17)), "B", vec![vec![1, 2]]),
            (Target::BeforeGtid(g(15)), "A", vec![vec![1, 2]]),
            (Target::BeforeGtid(g(16)), "B", vec![vec![1, 2]]),
            (Target::Gtid(g(15)), "B", vec![]),
            (Target::Gtid(g(8)), "A", vec![vec![1]]),
            (Target::Time(t(12)), "A", vec![vec![1, 2]]),
            (Target::Time(t(16)), "B", vec![vec![1, 2]]),
            (Target::Time(t(20)), "B", vec![vec![1, 2, 3]]),
            (Target::Time(t(30)), "B", vec![vec![1, 2, 3]]),
        ];
        for (target, want_base, want_pieces) in cases {
            let plan = plan_recovery(&bases, &archive(), *target, &any()).unwrap();
            assert_eq!(&plan.base, want_base, "{target}");
            assert_eq!(&plan.pieces, want_pieces, "{target}");
        }
    }

    #[test]
    fn targets_outside_the_window_are_refused_with_the_reason() {
        let bases = [base("A", 5)];
        let cases: &[(Target, &str)] = &[
            (Target::Time(t(3)), "before the oldest usable backup"),
            (Target::Time(t(31)), "beyond the archive"),
            (Target::Gtid(g(31)), "beyond the archive"),
            (Target::BeforeGtid(g(4)), "before the oldest usable backup"),
        ];
        for (target, why) in cases {
            let err = plan_recovery(&bases, &archive(), *target, &any()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotRecoverable, "{target}");
            assert!(err.message().contains(why), "{target}: {err}");
        }
        let err = plan_recovery(&[], &archive(), Target::Latest, &any()).unwrap_err();
        assert!(err.message().contains("no backups"), "{err}");
        let no_binlog = BaseCandidate {
            gtid: None,
            ..base("X", 1)
        };
        let err = plan_recovery(&[no_binlog], &archive(), Target::Latest, &any()).unwrap_err();
        assert!(err.message().contains("binlog position"), "{err}");
    }

    #[test]
    fn a_time_after_the_last_event_is_recoverable_up_to_when_the_archive_was_complete() {
        let bases = [base("A", 5), base("B", 30)];
        // (target, complete as of, Ok(base, pieces) or Err(reason))
        type Want = std::result::Result<(&'static str, Vec<Vec<u64>>), &'static str>;
        let cases: Vec<(Target, Option<i64>, Want)> = vec![
            // The archive's last event is at 30: a later time needs "complete as of".
            (Target::Time(t(40)), None, Err("beyond the archive")),
            (Target::Time(t(40)), Some(35), Err("complete as of")),
            (Target::Time(t(40)), Some(40), Ok(("B", vec![]))),
            (Target::Time(t(40)), Some(90), Ok(("B", vec![]))),
            // From the older base: the whole archive is replayed.
            (Target::Time(t(31)), Some(31), Ok(("B", vec![]))),
            // Within the events: unchanged by the record.
            (Target::Time(t(12)), Some(90), Ok(("A", vec![vec![1, 2]]))),
            (Target::Time(t(12)), None, Ok(("A", vec![vec![1, 2]]))),
            // GTID targets do not use it.
            (Target::Gtid(g(31)), Some(90), Err("beyond the archive")),
        ];
        for (target, complete, want) in &cases {
            let complete = complete.map(t);
            let got = plan_recovery_complete_as_of(&bases, &archive(), *target, &any(), complete);
            match (got, want) {
                (Ok(plan), Ok((base, pieces))) => {
                    assert_eq!(&plan.base, base, "{target} {complete:?}");
                    assert_eq!(&plan.pieces, pieces, "{target} {complete:?}");
                }
                (Err(e), Err(why)) => {
                    assert_eq!(e.kind(), ErrorKind::NotRecoverable, "{target}");
                    assert!(e.message().contains(why), "{target} {complete:?}: {e}");
                }
                (got, want) => panic!("{target} {complete:?}: got {got:?}, want {want:?}"),
            }
        }
        // Only base A (before the archive): replays everything, to the end.
        let plan = plan_recovery_complete_as_of(
            &bases[..1],
            &archive(),
            Target::Time(t(40)),
            &any(),
            Some(t(41)),
        )
        .unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2, 3]]);
        assert_eq!(plan.target, Target::Time(t(40)));
    }

    #[test]
    fn gaps_in_the_archive_are_named_and_never_crossed() {
        let bases = [base("A", 5)];
        // A hole in one file: segment 2 ends at 200, segment 3 starts at 250.
        let mut holed = archive();
        holed[2].start_pos = 250;
        let err = plan_recovery(&bases, &holed, Target::Latest, &any()).unwrap_err();
        assert!(err.message().contains("gap between segment 2"), "{err}");
        // Before the hole is still recoverable.
        assert!(plan_recovery(&bases, &holed, Target::Gtid(g(12)), &any()).is_ok());

        // A failover piece that does not start where the archive ended.
        let mut failover = archive();
        failover[2] = seg(3, "replica.7", 0, 300, 23, 30);
        let err = plan_recovery(&bases, &failover, Target::Latest, &any()).unwrap_err();
        assert!(err.message().contains("gap"), "{err}");
        // One that does continue is fine, and starts a second piece.
        failover[2] = seg(3, "replica.7", 0, 300, 21, 30);
        let plan = plan_recovery(&bases, &failover, Target::Latest, &any()).unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2], vec![3]]);

        // The archive starting after the backup's point.
        let late = vec![seg(1, "b.1", 0, 100, 9, 10)];
        let err = plan_recovery(&bases, &late, Target::Latest, &any()).unwrap_err();
        assert!(err.message().contains("missing transactions"), "{err}");
    }

    #[test]
    fn a_missing_index_entry_is_an_integrity_error_that_no_recovery_crosses() {
        let bases = [base("A", 5)];
        let five = vec![
            seg(1, "b.1", 0, 100, 1, 10),
            seg(2, "b.1", 100, 200, 11, 20),
            seg(3, "b.1", 200, 300, 21, 30),
            seg(4, "b.1", 300, 400, 31, 40),
            seg(5, "b.1", 400, 500, 41, 50),
        ];
        // (segments removed, target, Ok(pieces) or Err(kind, words in the message))
        type Want = std::result::Result<Vec<Vec<u64>>, (ErrorKind, &'static str)>;
        let cases: Vec<(&[u64], Target, Want)> = vec![
            (
                &[3],
                Target::Latest,
                Err((ErrorKind::Integrity, "segment 3 (")),
            ),
            (
                &[3],
                Target::Gtid(g(35)),
                Err((ErrorKind::Integrity, "binlog/index/000000000003.json")),
            ),
            (
                &[3, 4],
                Target::Latest,
                Err((ErrorKind::Integrity, "segments 3 to 4")),
            ),
            // Before the hole: fine.
            (&[3], Target::Gtid(g(15)), Ok(vec![vec![1, 2]])),
            (&[4], Target::Time(t(25)), Ok(vec![vec![1, 2, 3]])),
            // The last entry lost looks like a shorter archive.
            (
                &[5],
                Target::Gtid(g(45)),
                Err((ErrorKind::NotRecoverable, "beyond the archive")),
            ),
        ];
        for (removed, target, want) in cases {
            let archive: Vec<SegmentIndex> = five
                .iter()
                .filter(|s| !removed.contains(&s.seq))
                .cloned()
                .collect();
            match (plan_recovery(&bases, &archive, target, &any()), want) {
                (Ok(plan), Ok(pieces)) => assert_eq!(plan.pieces, pieces, "{removed:?} {target}"),
                (Err(e), Err((kind, words))) => {
                    assert_eq!(e.kind(), kind, "{removed:?} {target}: {e}");
                    assert!(e.message().contains(words), "{removed:?} {target}: {e}");
                }
                (got, want) => panic!("{removed:?} {target}: got {got:?}, want {want:?}"),
            }
        }
        // A base after the hole, whose piece header lies after it, is unaffected; one whose
        // piece's header is the segment right after the hole is refused (the lost segment may
        // hold transactions the base lacks).
        let mut headed = five.clone();
        headed.retain(|s| s.seq != 3);
        headed[2].header = true;
        headed[2].piece_start = Some(PieceStart::Rotation);
        let err = plan_recovery(&[base("B", 32)], &headed, Target::Latest, &any()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        // The window shows the hole and starts at a backup after it.
        let mut holed = five.clone();
        holed.retain(|s| s.seq != 3);
        let w = recoverable_window(&[base("A", 5), base("C", 45)], &holed);
        assert_eq!(w.from_backup.as_deref(), Some("C"));
        assert_eq!(w.gaps.len(), 1, "{:?}", w.gaps);
        assert!(w.gaps[0].contains("segment 3 ("), "{:?}", w.gaps);
    }

    #[test]
    fn the_window_runs_from_the_oldest_continuous_backup_to_the_archive_end() {
        let w = recoverable_window(&[base("A", 5), base("B", 15)], &archive());
        assert_eq!(w.from_backup.as_deref(), Some("A"));
        assert_eq!(w.to_gtid, Some(pos(30)));
        assert_eq!(w.to_time, Some(t(30)));
        assert!(w.gaps.is_empty());
        // A hole after A's point: only B (after the hole) reaches the end.
        let mut holed = archive();
        holed[1].start_pos = 150;
        let w = recoverable_window(&[base("A", 5), base("B", 25)], &holed);
        assert_eq!(w.from_backup.as_deref(), Some("B"));
        assert_eq!(w.gaps.len(), 1, "{:?}", w.gaps);
        // No archive: the newest backup's point only.
        let w = recoverable_window(&[base("A", 5)], &[]);
        assert_eq!((w.from_time, w.to_time), (Some(t(5)), Some(t(5))));
    }

    const SID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn m(gno: u64) -> Gtid {
        format!("{SID}:{gno}").parse().unwrap()
    }

    /// MySQL: every transaction from 1 to `last` (an empty set for 0).
    fn mset(last: u64) -> GtidPos {
        if last == 0 {
            return GtidPos::new();
        }
        format!("{SID}:1-{last}").parse().unwrap()
    }

    /// The same archive as [`archive`], written by a MySQL server: GTID sets instead of
    /// per-domain positions.
    fn mysql_archive() -> Vec<SegmentIndex> {
        archive()
            .into_iter()
            .map(|mut s| {
                let (first, last) = (
                    s.first_gtid.unwrap().number(),
                    s.last_gtid.unwrap().number(),
                );
                s.first_gtid = Some(m(first));
                s.last_gtid = Some(m(last));
                s.gtid_state = mset(last);
                if s.header {
                    s.piece_start = Some(PieceStart::Gtid {
                        from: mset(first - 1),
                    });
                }
                s
            })
            .collect()
    }

    fn mbase(id: &str, last: u64) -> BaseCandidate {
        BaseCandidate {
            id: id.into(),
            gtid: Some(mset(last)),
            time: t(last as i64),
            engine: BaseEngine::Logical,
            partial: None,
        }
    }

    #[test]
    fn mysql_gtid_sets_plan_like_mariadb_positions() {
        let bases = [mbase("A", 5), mbase("B", 15)];
        let cases: &[(Target, &str, Vec<Vec<u64>>)] = &[
            (Target::Latest, "B", vec![vec![1, 2, 3]]),
            (Target::Gtid(m(17)), "B", vec![vec![1, 2]]),
            (Target::BeforeGtid(m(15)), "A", vec![vec![1, 2]]),
            (Target::BeforeGtid(m(16)), "B", vec![vec![1, 2]]),
            (Target::Gtid(m(15)), "B", vec![]),
            (Target::Gtid(m(8)), "A", vec![vec![1]]),
            (Target::Time(t(12)), "A", vec![vec![1, 2]]),
            (Target::Time(t(30)), "B", vec![vec![1, 2, 3]]),
        ];
        for (target, want_base, want_pieces) in cases {
            let plan = plan_recovery(&bases, &mysql_archive(), *target, &any()).unwrap();
            assert_eq!(&plan.base, want_base, "{target}");
            assert_eq!(&plan.pieces, want_pieces, "{target}");
        }
        let err = plan_recovery(&bases, &mysql_archive(), Target::Gtid(m(31)), &any()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotRecoverable);
        // Another source's transaction is not in this archive.
        let other: Gtid = "f72e8c95-e574-11f1-ab95-02fc00000001:3".parse().unwrap();
        assert!(plan_recovery(&bases, &mysql_archive(), Target::Gtid(other), &any()).is_err());
        // A failover piece must start from exactly the set the archive ended with.
        let mut failover = mysql_archive();
        failover[2].source.file = "replica.7".into();
        failover[2].header = true;
        failover[2].piece_start = Some(PieceStart::Gtid { from: mset(22) });
        let err = plan_recovery(&bases, &failover, Target::Latest, &any()).unwrap_err();
        assert!(err.message().contains("gap"), "{err}");
        failover[2].piece_start = Some(PieceStart::Gtid { from: mset(20) });
        let plan = plan_recovery(&bases, &failover, Target::Latest, &any()).unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2], vec![3]]);
        // The window reads the same.
        let w = recoverable_window(&bases, &mysql_archive());
        assert_eq!(w.from_backup.as_deref(), Some("A"));
        assert_eq!(w.to_gtid, Some(mset(30)));
    }

    /// Transactions 1..=20 in a first run, a hole (21..=29 purged before they were archived),
    /// then a new run from GTID 29 with 30..=50.
    fn archive_with_a_new_run(from: Option<u64>) -> Vec<SegmentIndex> {
        let mut segments = vec![
            seg(1, "b.1", 0, 100, 1, 10),
            seg(2, "b.1", 100, 200, 11, 20),
            seg(3, "b.3", 0, 100, 30, 40),
            seg(4, "b.3", 100, 200, 41, 50),
        ];
        segments[2].piece_start = Some(PieceStart::NewRun {
            after_gap_from: pos(20),
            from: from.map(pos),
            reason: "the server had purged the binlogs".into(),
        });
        segments
    }

    #[test]
    fn a_new_run_is_a_hole_no_recovery_crosses() {
        let bases = [base("A", 5), base("C", 25), base("B", 29)];
        let archive = archive_with_a_new_run(Some(29));
        let ok: &[(Target, &str, Vec<Vec<u64>>)] = &[
            (Target::Gtid(g(15)), "A", vec![vec![1, 2]]),
            (Target::Time(t(19)), "A", vec![vec![1, 2]]),
            (Target::Gtid(g(25)), "C", vec![]),
            (Target::Time(t(35)), "B", vec![vec![3]]),
            (Target::Gtid(g(45)), "B", vec![vec![3, 4]]),
            (Target::Latest, "B", vec![vec![3, 4]]),
        ];
        for (target, want_base, want_pieces) in ok {
            let plan = plan_recovery(&bases, &archive, *target, &any()).unwrap();
            assert_eq!(&plan.base, want_base, "{target}");
            assert_eq!(&plan.pieces, want_pieces, "{target}");
        }
        // Points inside the hole, and after it from a base before it.
        let refused: &[(&[BaseCandidate], Target, &str)] = &[
            (&bases, Target::Gtid(g(23)), "hole between segment 2"),
            (
                &bases,
                Target::BeforeGtid(g(27)),
                "a hole after GTID 0-1-20",
            ),
            (&bases, Target::Time(t(23)), "hole between segment 2"),
            // Unarchived transactions may share the second of the last archived one.
            (&bases, Target::Time(t(20)), "hole between segment 2"),
            (&bases[..1], Target::Latest, "hole between segment 2"),
            (&bases[..2], Target::Latest, "before the new run"),
            (&bases[..2], Target::Gtid(g(35)), "before the new run"),
        ];
        for (bases, target, why) in refused {
            let err = plan_recovery(bases, &archive, *target, &any()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotRecoverable, "{target}");
            assert!(err.message().contains(why), "{target}: {err}");
        }
        // A new run whose start is unknown: only a base that has its first transaction.
        let unknown = archive_with_a_new_run(None);
        assert!(plan_recovery(&[base("B", 29)], &unknown, Target::Latest, &any()).is_err());
        let plan = plan_recovery(&[base("D", 31)], &unknown, Target::Latest, &any()).unwrap();
        assert_eq!(plan.pieces, vec![vec![3, 4]]);
    }

    #[test]
    fn the_window_lists_each_run_and_the_hole_between() {
        let new_run = archive_with_a_new_run(Some(29));
        let w = recoverable_window(&[base("A", 5), base("B", 29)], &new_run);
        // The top level: the stretch reaching the archive's end.
        assert_eq!(w.from_backup.as_deref(), Some("B"));
        assert_eq!(w.to_gtid, Some(pos(50)));
        let spans: Vec<(&str, GtidPos, GtidPos)> = w
            .spans
            .iter()
            .map(|s| {
                (
                    s.from_backup.as_str(),
                    s.from_gtid.clone(),
                    s.to_gtid.clone(),
                )
            })
            .collect();
        assert_eq!(spans, vec![("A", pos(5), pos(20)), ("B", pos(29), pos(50))]);
        assert_eq!(w.holes.len(), 1, "{:?}", w.holes);
        let hole = &w.holes[0];
        assert_eq!((hole.after_seq, hole.before_seq), (2, 3));
        assert_eq!(hole.from_gtid, pos(20));
        assert_eq!(hole.to_gtid, Some(pos(29)));
        assert_eq!(hole.from_time, Some(t(20)));
        assert_eq!(hole.to_time, Some(t(30)));
        assert!(hole.new_run);
        assert_eq!(w.gaps.len(), 1);
        // Without a backup after the hole, only the first run is recoverable; the hole shows.
        let w = recoverable_window(&[base("A", 5)], &new_run);
        assert_eq!(w.spans.len(), 1);
        assert_eq!(w.spans[0].to_gtid, pos(20));
        assert_eq!(w.spans[0].to_time, t(19));
        assert_eq!(w.holes.len(), 1);
        // A continuous archive: one span, no hole.
        let w = recoverable_window(&[base("A", 5), base("B", 15)], &archive());
        assert_eq!(w.spans.len(), 1);
        assert_eq!(w.spans[0].from_backup, "A");
        assert!(w.holes.is_empty());
        // No archive: the newest backup's point.
        let w = recoverable_window(&[base("A", 5)], &[]);
        assert_eq!(w.spans.len(), 1);
        assert_eq!(w.spans[0].from_gtid, w.spans[0].to_gtid);
    }

    fn partial(id: &str, seq: u64) -> BaseCandidate {
        BaseCandidate {
            partial: Some("partial: databases app".into()),
            ..base(id, seq)
        }
    }

    fn physical(id: &str, seq: u64) -> BaseCandidate {
        BaseCandidate {
            engine: BaseEngine::Physical,
            ..base(id, seq)
        }
    }

    fn only(engine: BaseEngine) -> BaseRule {
        BaseRule {
            engine: Some(engine),
            engine_reason: format!("--engine {engine}"),
            ..BaseRule::default()
        }
    }

    fn named(id: &str, engine: Option<BaseEngine>) -> BaseRule {
        BaseRule {
            named: Some(id.into()),
            engine,
            engine_reason: "--target takes a logical base".into(),
        }
    }

    #[test]
    fn the_base_is_the_newest_complete_backup_of_the_engine_asked_for() {
        use BaseEngine::{Logical, Physical};
        // A complete logical at 5, a complete physical at 12, a partial logical at 15, a
        // complete logical at 25.
        let bases = [
            base("A", 5),
            physical("F", 12),
            partial("P", 15),
            base("C", 25),
        ];
        let cases: &[(BaseRule, Target, &str, &[&str])] = &[
            (only(Logical), Target::Latest, "C", &[]),
            (
                only(Logical),
                Target::Time(t(20)),
                "A",
                &[
                    "P is partial: databases app",
                    "F is physical (--engine logical)",
                ],
            ),
            (
                only(Logical),
                Target::Gtid(g(17)),
                "A",
                &["P is partial", "F is physical"],
            ),
            (
                only(Logical),
                Target::BeforeGtid(g(15)),
                "A",
                &["F is physical"],
            ),
            (only(Physical), Target::Time(t(20)), "F", &["P is partial"]),
            (
                only(Physical),
                Target::Latest,
                "F",
                &["C is logical (--engine physical)", "P is partial"],
            ),
            (any(), Target::Time(t(20)), "F", &["P is partial"]),
            (any(), Target::Time(t(13)), "F", &[]),
            (any(), Target::Latest, "C", &[]),
            (
                named("A", Some(Logical)),
                Target::Latest,
                "A",
                &["C (--base A named)", "P is partial", "F (--base A named)"],
            ),
            (
                named("F", None),
                Target::Time(t(20)),
                "F",
                &["P is partial"],
            ),
        ];
        for (rule, target, want, passed) in cases {
            let plan = plan_recovery(&bases, &archive(), *target, rule)
                .unwrap_or_else(|e| panic!("{rule:?} {target}: {e}"));
            assert_eq!(&plan.base, want, "{rule:?} {target}");
            assert_eq!(
                plan.passed_over.len(),
                passed.len(),
                "{rule:?} {target}: {:?}",
                plan.passed_over
            );
            for (got, want) in plan.passed_over.iter().zip(passed.iter()) {
                assert!(got.contains(want), "{rule:?} {target}: {got} lacks {want}");
            }
        }
    }

    #[test]
    fn no_partial_backup_is_ever_a_base_and_refusals_say_what_could_serve() {
        use BaseEngine::{Logical, Physical};
        let bases = [
            base("A", 5),
            physical("F", 12),
            partial("P", 15),
            base("C", 25),
        ];
        /// Bases, rule, target, and the error's kind and words.
        type Refusal<'a> = (
            &'a [BaseCandidate],
            BaseRule,
            Target,
            ErrorKind,
            &'a [&'a str],
        );
        let cases: &[Refusal] = &[
            // Only a partial backup is before the target: refused, naming it and the way out.
            (
                &[partial("P", 5), base("C", 25)],
                any(),
                Target::Time(t(10)),
                ErrorKind::NotRecoverable,
                &[
                    "no complete backup is at or before",
                    "backup P",
                    "partial: databases app",
                    "holdfast restore P",
                    "the oldest complete backup, backup C",
                ],
            ),
            (
                &[partial("P", 5)],
                any(),
                Target::Latest,
                ErrorKind::NotRecoverable,
                &["backup P", "no complete backup with a binlog position"],
            ),
            // A complete backup of the other engine would serve: a usage error naming it.
            (
                &bases,
                only(Physical),
                Target::Time(t(8)),
                ErrorKind::Usage,
                &[
                    "no complete physical backup",
                    "--engine physical",
                    "logical backup A",
                    "--target URL",
                ],
            ),
            (
                &[physical("F", 5)],
                named("F", Some(Logical)),
                Target::Latest,
                ErrorKind::Usage,
                &["--base F", "physical backup", "--datadir DIR"],
            ),
            (
                &[physical("F", 5), partial("P", 8)],
                only(Logical),
                Target::Latest,
                ErrorKind::Usage,
                &["no complete logical backup", "physical backup F"],
            ),
            // A named base must exist, be complete, have a position and be before the target.
            (
                &bases,
                named("P", None),
                Target::Latest,
                ErrorKind::NotRecoverable,
                &["--base P", "partial: databases app", "complete backup"],
            ),
            (
                &bases,
                named("C", None),
                Target::Time(t(20)),
                ErrorKind::NotRecoverable,
                &["--base C", "after the target"],
            ),
            (
                &bases,
                named("C", None),
                Target::BeforeGtid(g(25)),
                ErrorKind::NotRecoverable,
                &["after the target"],
            ),
            (
                &bases,
                named("nope", None),
                Target::Latest,
                ErrorKind::NotFound,
                &["--base nope", "holdfast list"],
            ),
            (
                &[BaseCandidate {
                    gtid: None,
                    ..base("X", 5)
                }],
                named("X", None),
                Target::Latest,
                ErrorKind::NotRecoverable,
                &["binlog position"],
            ),
            // Before every backup stays the window error.
            (
                &bases,
                only(Logical),
                Target::Time(t(3)),
                ErrorKind::NotRecoverable,
                &["before the oldest usable backup"],
            ),
        ];
        for (bases, rule, target, kind, words) in cases {
            let err = plan_recovery(bases, &archive(), *target, rule).unwrap_err();
            assert_eq!(err.kind(), *kind, "{rule:?} {target}: {err}");
            for w in *words {
                assert!(
                    err.message().contains(w),
                    "{rule:?} {target}: `{w}` missing from: {err}"
                );
            }
        }
    }

    #[test]
    fn the_window_starts_at_a_complete_backup() {
        let w = recoverable_window(&[partial("P", 3), base("A", 5)], &archive());
        assert_eq!(w.from_backup.as_deref(), Some("A"));
        let w = recoverable_window(&[partial("P", 3)], &archive());
        assert_eq!(w.from_backup, None);
        assert_eq!(w.to_time, None);
    }

    #[test]
    fn a_piece_is_fed_from_its_header_even_when_the_base_is_further_on() {
        let bases = [base("B", 25)];
        let plan = plan_recovery(&bases, &archive(), Target::Latest, &any()).unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2, 3]]);
        assert_eq!(plan.start, pos(25));
    }
}

/// The recoverable window: every point from `from` (a backup's consistent point) to `to` (the
/// end of the archive) can be recovered; `gaps` names holes in the archive (points on their far
/// side are only reachable from a backup taken after them). `spans` lists every stretch of
/// recoverable points, oldest first, and `holes` the holes between the archive's runs; the
/// top-level `from`/`to` are the stretch that reaches the archive's end.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Window {
    /// The oldest backup the archive continues from without a gap, and its point.
    pub from_backup: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub from_time: Option<OffsetDateTime>,
    pub from_gtid: Option<GtidPos>,
    /// The end of the archive (or of the newest backup, without an archive).
    #[serde(with = "time::serde::rfc3339::option")]
    pub to_time: Option<OffsetDateTime>,
    pub to_gtid: Option<GtidPos>,
    pub gaps: Vec<String>,
    pub spans: Vec<Span>,
    pub holes: Vec<Hole>,
    /// The last instant the stream knew the archive held every event the server had written
    /// (its status record's `caught_up_as_of`, when the record describes the archive's end): a
    /// time target up to it recovers everything archived, also on a quiet server. Not known to
    /// [`recoverable_window`], which sees only segments; filled in by `recovery::window`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub complete_as_of: Option<OffsetDateTime>,
}

/// A stretch of recoverable points: from a backup's consistent point to the end of a run of the
/// archive (or that point alone).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Span {
    pub from_backup: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from_time: OffsetDateTime,
    pub from_gtid: GtidPos,
    #[serde(with = "time::serde::rfc3339")]
    pub to_time: OffsetDateTime,
    pub to_gtid: GtidPos,
}

/// A hole in the archive: between segment `after_seq` and segment `before_seq` transactions may
/// be missing, so no recovery crosses it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hole {
    pub after_seq: u64,
    pub before_seq: u64,
    /// The archive's GTID position and last event time before the hole.
    pub from_gtid: GtidPos,
    #[serde(with = "time::serde::rfc3339::option")]
    pub from_time: Option<OffsetDateTime>,
    /// Where archiving continued, when known (a new run's start), and its first event's time.
    pub to_gtid: Option<GtidPos>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub to_time: Option<OffsetDateTime>,
    /// The archive started a new run here (the server had purged what it needed).
    pub new_run: bool,
    pub reason: String,
}

/// The holes of an archive (in order): every pair of consecutive segments that does not
/// continue.
pub fn archive_holes(segments: &[SegmentIndex]) -> Vec<Hole> {
    let time = |secs: u32| {
        (secs != 0)
            .then(|| OffsetDateTime::from_unix_timestamp(i64::from(secs)).ok())
            .flatten()
    };
    segments
        .windows(2)
        .filter_map(|pair| {
            let err = check_continuity(pair).err()?;
            let (prev, next) = (&pair[0], &pair[1]);
            let to_gtid = match &next.piece_start {
                Some(PieceStart::NewRun { from, .. }) => from.clone(),
                Some(PieceStart::Gtid { from }) => Some(from.clone()),
                _ => None,
            };
            Some(Hole {
                after_seq: prev.seq,
                before_seq: next.seq,
                from_gtid: prev.gtid_state.clone(),
                from_time: time(prev.last_event_time),
                to_gtid,
                to_time: time(next.first_event_time),
                new_run: matches!(next.piece_start, Some(PieceStart::NewRun { .. })),
                reason: err.message().to_string(),
            })
        })
        .collect()
}

/// The recoverable stretches, one per run of the archive that some backup reaches (see
/// [`Span`]).
fn spans(usable: &[&BaseCandidate], segments: &[SegmentIndex], holes: &[Hole]) -> Vec<Span> {
    let mut bounds: Vec<usize> = vec![0];
    bounds.extend(
        holes
            .iter()
            .filter_map(|h| segments.iter().position(|s| s.seq == h.before_seq)),
    );
    bounds.push(segments.len());
    let mut out = Vec::new();
    for run in bounds.windows(2) {
        let (lo, hi) = (run[0], run[1]);
        if lo >= hi {
            continue;
        }
        let prefix = &segments[..hi];
        let end = &segments[hi - 1];
        let found = usable.iter().find(|b| {
            let pos = b.gtid.as_ref().expect("usable");
            !pos.includes(&end.gtid_state)
                && plan_recovery(
                    std::slice::from_ref(**b),
                    prefix,
                    Target::Latest,
                    &BaseRule::default(),
                )
                .is_ok()
        });
        if let Some(b) = found {
            // Before a hole, a time target must be before the second of the last archived
            // event: transactions never archived may have committed in that second too.
            let before_hole = i64::from(hi < segments.len());
            let end_time =
                OffsetDateTime::from_unix_timestamp(i64::from(end.last_event_time) - before_hole)
                    .map_or(b.time, |t| t.max(b.time));
            out.push(Span {
                from_backup: b.id.clone(),
                from_time: b.time,
                from_gtid: b.gtid.clone().expect("usable"),
                to_time: end_time,
                to_gtid: end.gtid_state.clone(),
            });
        }
    }
    out
}

/// Computes the recoverable window (see [`Window`]).
pub fn recoverable_window(bases: &[BaseCandidate], segments: &[SegmentIndex]) -> Window {
    let mut window = window_to_the_end(bases, segments);
    // A partial backup is no base (see the module documentation): windows start at complete
    // ones.
    let mut usable: Vec<&BaseCandidate> = bases
        .iter()
        .filter(|b| b.gtid.is_some() && b.partial.is_none())
        .collect();
    usable.sort_by_key(|b| b.time);
    window.holes = archive_holes(segments);
    window.spans = spans(&usable, segments, &window.holes);
    if window.spans.is_empty() {
        // No run is reached by a backup before it: the backup's point alone.
        if let (Some(id), Some(from_time), Some(from_gtid), Some(to_time), Some(to_gtid)) = (
            &window.from_backup,
            window.from_time,
            &window.from_gtid,
            window.to_time,
            &window.to_gtid,
        ) {
            window.spans.push(Span {
                from_backup: id.clone(),
                from_time,
                from_gtid: from_gtid.clone(),
                to_time,
                to_gtid: to_gtid.clone(),
            });
        }
    }
    window
}

/// The stretch that reaches the end of the archive (the window's top-level fields).
fn window_to_the_end(bases: &[BaseCandidate], segments: &[SegmentIndex]) -> Window {
    // A partial backup is no base (see the module documentation): windows start at complete
    // ones.
    let mut usable: Vec<&BaseCandidate> = bases
        .iter()
        .filter(|b| b.gtid.is_some() && b.partial.is_none())
        .collect();
    usable.sort_by_key(|b| b.time);
    let gaps: Vec<String> = segments
        .windows(2)
        .filter_map(|pair| {
            check_continuity(pair)
                .err()
                .map(|e| e.message().to_string())
        })
        .collect();
    let end_time = segments
        .last()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s.last_event_time as i64).ok());
    for base in &usable {
        if plan_recovery(
            std::slice::from_ref(*base),
            segments,
            Target::Latest,
            &BaseRule::default(),
        )
        .is_ok()
        {
            let start = base.gtid.clone();
            let covered_by_archive = segments
                .last()
                .is_some_and(|s| !start.as_ref().expect("usable").includes(&s.gtid_state));
            return Window {
                from_backup: Some(base.id.clone()),
                from_time: Some(base.time),
                from_gtid: start.clone(),
                to_time: if covered_by_archive {
                    end_time.map(|t| t.max(base.time))
                } else {
                    Some(base.time)
                },
                to_gtid: if covered_by_archive {
                    segments.last().map(|s| s.gtid_state.clone())
                } else {
                    start
                },
                gaps,
                spans: Vec::new(),
                holes: Vec::new(),
                complete_as_of: None,
            };
        }
    }
    let newest = usable.last();
    Window {
        from_backup: newest.map(|b| b.id.clone()),
        from_time: newest.map(|b| b.time),
        from_gtid: newest.and_then(|b| b.gtid.clone()),
        to_time: newest.map(|b| b.time),
        to_gtid: newest.and_then(|b| b.gtid.clone()),
        gaps,
        spans: Vec::new(),
        holes: Vec::new(),
        complete_as_of: None,
    }
}

/// Parses a recovery time: RFC 3339 (`2026-11-21T04:05:06Z`, `…+08:00`), or
/// `YYYY-MM-DD HH:MM:SS[.frac]` in UTC, optionally followed by ` +HH:MM` / `Z`.
pub fn parse_time(text: &str) -> Result<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let s = text.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let normalized = s.replacen(' ', "T", 1);
    let (stamp, zone) = match normalized.rfind(['+', '-', 'Z']) {
        Some(i) if i > 10 => (
            normalized[..i].trim().to_string(),
            normalized[i..].trim().to_string(),
        ),
        _ => (normalized.clone(), "Z".to_string()),
    };
    let zone = if zone.is_empty() {
        "Z".to_string()
    } else {
        zone
    };
    OffsetDateTime::parse(&format!("{stamp}{zone}"), &Rfc3339).map_err(|_| {
        Error::usage(format!(
            "`{text}` is not a time: use `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339 with a zone, \
             e.g. 2026-11-21T04:05:06+08:00"
        ))
    })
}

#[cfg(test)]
mod time_tests {
    use super::parse_time;

    #[test]
    fn times_parse_in_utc_or_with_their_zone() {
        let utc = parse_time("2026-11-21 04:05:06").unwrap();
        assert_eq!(utc.unix_timestamp(), 1_795_233_906);
        for same in [
            "2026-11-21T04:05:06Z",
            "2026-11-21 04:05:06Z",
            "2026-11-21T12:05:06+08:00",
            "2026-11-21 12:05:06 +08:00",
            "2026-11-20 23:05:06-05:00",
        ] {
            assert_eq!(parse_time(same).unwrap(), utc, "{same}");
        }
        assert_eq!(
            parse_time("2026-11-21 04:05:06.25")
                .unwrap()
                .unix_timestamp(),
            1_795_233_906
        );
        for bad in ["", "yesterday", "2026-13-01 00:00:00", "04:05:06"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
