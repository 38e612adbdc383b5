//! Checking the binlog archive, as `holdfast verify` does for backups.
//!
//! [`verify_archive`] checks, for every segment in scope:
//! - its index entry: readable, and no sequence number missing between two committed ones (a
//!   lost index entry; numbers are given out with no reuse; a merged segment stands for the
//!   numbers it covers, and the entries it covers are ignored, see
//!   [`crate::binlog::archive::resolve`]);
//! - its data object: present, with the size and SHA-256 its index entry records (streamed, not
//!   held in memory); with `deep`, also decompressed and every event framed and its checksum
//!   checked, the event count compared with the index;
//! - continuity with the segment before it, by the planner's own rule
//!   ([`crate::recovery::plan::check_continuity`]).
//!
//! Problems are collected, not short-circuited, and each names the segment (sequence number,
//! object path, binlog file and positions). A hole the archive recorded on purpose (a piece
//! that says it started without continuity, e.g. a new run after the server purged binlogs)
//! is reported in `holes`, not as a problem: the archive is as written, recovery just cannot
//! cross it.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{stream, StreamExt};
use serde::Serialize;

use crate::binlog::archive::{index_path, resolve, Archive};
use crate::binlog::event::{EventReader, GroupTracker};
use crate::manifest::{PieceStart, SegmentIndex};
use crate::progress::Progress;
use crate::recovery::plan::{
    check_adjacent, check_continuity, plan_recovery, BaseCandidate, BaseRule,
};
use crate::recovery::Target;
use crate::{ErrorKind, Result};

/// One problem with the archive.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentProblem {
    /// The segment (for a lost run of index entries: the first one lost).
    pub seq: u64,
    /// The object concerned: the data object, or the index entry.
    pub path: String,
    /// `missing` (data object or index entry), `corrupt` (size, SHA-256, compression or
    /// events), `unreadable` (an index entry that does not decode), `gap` (not continuous with
    /// the segment before it).
    pub kind: String,
    pub detail: String,
}

/// Which part of the archive to check.
#[derive(Debug, Clone)]
pub enum ArchiveScope {
    /// Every segment.
    All,
    /// What rolling this backup forward to the end of the archive reads: from the first piece
    /// holding a transaction the backup lacks (the whole archive when no such plan can be made,
    /// so that the reason is named).
    From(BaseCandidate),
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    /// `all`, or `from backup <id>`.
    pub scope: String,
    /// Committed segments in the archive (a merged segment counts once).
    pub segments_total: usize,
    /// Index entries a merged segment covers, left by an interrupted compaction: ignored by
    /// every reader (not damage); the next `holdfast binlog compact` removes them.
    pub compaction_leftovers: usize,
    /// Segments checked.
    pub segments: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Stored (compressed) bytes read.
    pub bytes: u64,
    pub deep: bool,
    /// Events decoded (deep only).
    pub events: u64,
    /// Holes the archive recorded (recovery cannot cross them; not damage).
    pub holes: Vec<String>,
    pub problems: Vec<SegmentProblem>,
}

impl ArchiveReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const PARALLEL_READS: usize = 4;
const PARALLEL_INDEX_READS: usize = crate::binlog::archive::PARALLEL_INDEX_LOADS;

/// Checks the archive; see the module documentation. Errors only when the storage itself fails
/// (listing, a read refused); damage is reported in the report.
pub async fn verify_archive(
    archive: &Archive,
    scope: &ArchiveScope,
    deep: bool,
    progress: Arc<dyn Progress>,
) -> Result<ArchiveReport> {
    let seqs = archive.sequence_numbers().await?;
    let mut problems = Vec::new();
    // Index entries.
    let loaded = stream::iter(seqs.iter().copied())
        .map(|seq| async move { (seq, archive.load_index(seq).await) })
        .buffered(PARALLEL_INDEX_READS)
        .collect::<Vec<_>>()
        .await;
    let mut entries: Vec<SegmentIndex> = Vec::with_capacity(seqs.len());
    let mut unloaded: HashSet<u64> = HashSet::new();
    for (seq, result) in loaded {
        match result {
            Ok(s) => entries.push(s),
            Err(e) if matches!(e.kind(), ErrorKind::Integrity | ErrorKind::RepoInvalid) => {
                unloaded.insert(seq);
                problems.push(SegmentProblem {
                    seq,
                    path: index_path(seq),
                    kind: "unreadable".into(),
                    detail: format!("the index entry of segment {seq} does not decode: {e}"),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                unloaded.insert(seq);
                problems.push(SegmentProblem {
                    seq,
                    path: index_path(seq),
                    kind: "missing".into(),
                    detail: format!("the index entry of segment {seq} vanished while listed: {e}"),
                })
            }
            Err(e) => return Err(e),
        }
    }
    // Merged segments stand for the entries they cover (leftovers of an interrupted
    // compaction are not damage: the next `binlog compact` removes them).
    let resolved = resolve(entries);
    let segments = resolved.live;
    // Sequence numbers lost between committed segments (an unreadable entry is not lost).
    for pair in segments.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        let gap = prev.last_seq() + 1..next.seq;
        if gap.is_empty() || gap.clone().all(|n| unloaded.contains(&n)) {
            continue;
        }
        problems.push(SegmentProblem {
            seq: gap.start,
            path: index_path(gap.start),
            kind: "missing".into(),
            detail: check_adjacent(prev, next)
                .err()
                .map(|e| e.message().to_string())
                .unwrap_or_default(),
        });
    }

    let from = match scope {
        ArchiveScope::All => 0,
        ArchiveScope::From(base) => first_needed(base, &segments),
    };
    if let ArchiveScope::From(_) = scope {
        // Only damage inside the range matters to this backup.
        let first_seq = segments.get(from).map_or(u64::MAX, |s| s.seq);
        problems.retain(|p| p.seq >= first_seq);
    }
    let in_scope = &segments[from.min(segments.len())..];

    // Continuity, by the planner's rule (lost index entries are reported above).
    let mut holes = Vec::new();
    for pair in in_scope.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        if next.seq != prev.last_seq() + 1 {
            continue;
        }
        if let Err(e) = check_continuity(pair) {
            if recorded_hole(next) {
                holes.push(e.message().to_string());
            } else {
                problems.push(SegmentProblem {
                    seq: next.seq,
                    path: next.object.path.clone(),
                    kind: "gap".into(),
                    detail: e.message().to_string(),
                });
            }
        }
    }

    // Data objects: one listing finds the missing ones, the rest are read.
    let present = archive.data_objects().await?;
    let total: u64 = in_scope.iter().map(|s| s.object.size).sum();
    progress.phase("verify binlog archive", total, "bytes");
    let checks = stream::iter(in_scope.iter())
        .map(|s| check_one(archive, s, &present, deep, &*progress))
        .buffered(PARALLEL_READS)
        .collect::<Vec<_>>()
        .await;
    let (mut bytes, mut events) = (0, 0);
    for c in checks {
        let c = c?;
        bytes += c.bytes;
        events += c.events;
        problems.extend(c.problem);
    }
    problems.sort_by(|a, b| (a.seq, &a.path).cmp(&(b.seq, &b.path)));
    Ok(ArchiveReport {
        scope: match scope {
            ArchiveScope::All => "all".into(),
            ArchiveScope::From(base) => format!("from backup {}", base.id),
        },
        segments_total: segments.len(),
        compaction_leftovers: resolved.covered.len(),
        segments: in_scope.len(),
        first_seq: in_scope.first().map(|s| s.seq),
        last_seq: in_scope.last().map(|s| s.seq),
        bytes,
        deep,
        events,
        holes,
        problems,
    })
}

/// Index of the first segment rolling `base` forward to the end reads (the planner decides);
/// 0 when no plan can be made, `segments.len()` when the base needs none.
fn first_needed(base: &BaseCandidate, segments: &[SegmentIndex]) -> usize {
    if base.gtid.is_none() {
        return segments.len();
    }
    match plan_recovery(
        std::slice::from_ref(base),
        segments,
        Target::Latest,
        &BaseRule::default(),
    ) {
        Ok(plan) => match plan.pieces.first().and_then(|p| p.first()) {
            Some(&seq) => segments.iter().position(|s| s.seq == seq).unwrap_or(0),
            None => segments.len(),
        },
        Err(_) => 0,
    }
}

/// A piece whose index says it started without continuity to what came before: a hole the
/// stream recorded, not damage.
fn recorded_hole(next: &SegmentIndex) -> bool {
    next.header
        && !matches!(
            next.piece_start,
            Some(PieceStart::Rotation | PieceStart::Position | PieceStart::Gtid { .. })
        )
}

struct Checked {
    bytes: u64,
    events: u64,
    problem: Option<SegmentProblem>,
}

async fn check_one(
    archive: &Archive,
    s: &SegmentIndex,
    present: &HashSet<String>,
    deep: bool,
    progress: &dyn Progress,
) -> Result<Checked> {
    let problem = |kind: &str, detail: String| SegmentProblem {
        seq: s.seq,
        path: s.object.path.clone(),
        kind: kind.into(),
        detail: format!("{}: {detail}", s.describe()),
    };
    let mut out = Checked {
        bytes: 0,
        events: 0,
        problem: None,
    };
    if !present.contains(&s.object.path) {
        out.problem = Some(problem(
            "missing",
            "the data object is missing from the repository".into(),
        ));
        return Ok(out);
    }
    if !deep {
        match archive.check_segment(s).await {
            Ok(n) => out.bytes = n,
            Err(e) if e.kind() == ErrorKind::Integrity => {
                out.problem = Some(problem("corrupt", e.to_string()))
            }
            Err(e) => return Err(e),
        }
        progress.advance(s.object.size);
        return Ok(out);
    }
    let raw = match archive.read_segment(s).await {
        Ok(raw) => raw,
        Err(e) if e.kind() == ErrorKind::Integrity => {
            // `read_segment` names the segment itself.
            out.problem = Some(SegmentProblem {
                detail: e.to_string(),
                ..problem("corrupt", String::new())
            });
            progress.advance(s.object.size);
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    out.bytes = s.object.size;
    progress.advance(s.object.size);
    match decode_events(s, &raw) {
        Ok(n) => out.events = n,
        Err(detail) => out.problem = Some(problem("corrupt", detail)),
    }
    Ok(out)
}

/// Frames every event of a segment (checksums included) and parses the bodies the replay
/// reads; returns the number of events.
fn decode_events(s: &SegmentIndex, raw: &[u8]) -> std::result::Result<u64, String> {
    let reader = if s.header {
        EventReader::file(raw).map_err(|e| e.to_string())?
    } else {
        EventReader::events(raw, s.checksum)
    };
    let mut tracker = GroupTracker::default();
    let mut count = 0u64;
    for event in reader {
        let event = event.map_err(|e| format!("event {}: {e}", count + 1))?;
        tracker
            .observe(&event)
            .map_err(|e| format!("event {}: {e}", count + 1))?;
        count += 1;
    }
    if count != s.events {
        return Err(format!(
            "holds {count} events, its index entry says {}",
            s.events
        ));
    }
    Ok(count)
}
