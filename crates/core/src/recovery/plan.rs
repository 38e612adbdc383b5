//! Point-in-time recovery planning: a pure function from the repository's backups and archived
//! segments to "restore this base backup, then replay these segments, stopping here".
//!
//! The rules:
//! - The base is the newest backup that is at or before the target (by its consistent point's
//!   time for a time target, by its GTID position for a GTID target).
//! - The replay starts at the first piece of the archive holding a transaction the base does not
//!   have (fed from the piece's header so the replayer has the file's format description;
//!   transactions already in the base are skipped by GTID).
//! - The archive must be continuous from the base's point to the target: consecutive segments of
//!   a file must touch, a rotation must follow a file's end, and a piece started by GTID must
//!   start from the state the previous segment ended with. Any hole is an error naming it.
//! - The target must be inside the archive: a time not after the archive's end, a GTID the
//!   archive holds.

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
}

/// The plan: restore `base`, then replay `pieces` in order from `start`, stopping at `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPlan {
    pub base: String,
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
) -> Result<RecoveryPlan> {
    let base = choose_base(bases, segments, target)?;
    let start = base
        .gtid
        .clone()
        .expect("choose_base keeps backups with a position");
    if let Target::Gtid(g) = target {
        if start.ends_at(&g) {
            return Ok(no_replay(base, start, target));
        }
    }
    // First segment holding a transaction the base does not have.
    let Some(first_new) = segments.iter().position(|s| !start.includes(&s.gtid_state)) else {
        return match target {
            Target::Latest => Ok(no_replay(base, start, target)),
            Target::Time(t) if t <= archive_end_time(segments, base) => {
                Ok(no_replay(base, start, target))
            }
            _ => Err(beyond_archive(segments, target)),
        };
    };
    let first = piece_start_index(segments, first_new).ok_or_else(|| {
        not_recoverable(format!(
            "the archive holds no format description before segment {}: the start of its \
             binlog file is missing",
            segments[first_new].seq
        ))
    })?;
    check_archive_reaches(segments, first, &start)?;
    let last = last_needed(segments, first_new, target)?;
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
        start,
        target,
        pieces,
    })
}

fn no_replay(base: &BaseCandidate, start: GtidPos, target: Target) -> RecoveryPlan {
    RecoveryPlan {
        base: base.id.clone(),
        start,
        target,
        pieces: Vec::new(),
    }
}

fn choose_base<'a>(
    bases: &'a [BaseCandidate],
    segments: &[SegmentIndex],
    target: Target,
) -> Result<&'a BaseCandidate> {
    let usable: Vec<&BaseCandidate> = bases.iter().filter(|b| b.gtid.is_some()).collect();
    if usable.is_empty() {
        return Err(not_recoverable(if bases.is_empty() {
            "the repository has no backups: point-in-time recovery starts from a backup".into()
        } else {
            "no backup records a binlog position (they were taken with the binary log off)"
                .to_string()
        }));
    }
    let fits = |b: &&&BaseCandidate| {
        let pos = b.gtid.as_ref().expect("filtered");
        match target {
            Target::Time(t) => b.time <= t,
            Target::Gtid(g) => !pos.contains(&g) || pos.ends_at(&g),
            Target::BeforeGtid(g) => !pos.contains(&g),
            Target::Latest => true,
        }
    };
    let newest = usable
        .iter()
        .filter(fits)
        .max_by_key(|b| (b.time, b.id.clone()))
        .copied();
    newest.ok_or_else(|| {
        let oldest = usable.iter().min_by_key(|b| b.time).expect("non-empty");
        let _ = segments;
        not_recoverable(format!(
            "the target ({target}) is before the oldest usable backup {} (consistent at {}, GTID \
             {}): nothing can be restored to that point",
            oldest.id,
            oldest
                .time
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            oldest
                .gtid
                .as_ref()
                .map(|g| g.to_string())
                .unwrap_or_default()
        ))
    })
}

/// The header segment starting the piece that `i` belongs to.
fn piece_start_index(segments: &[SegmentIndex], i: usize) -> Option<usize> {
    (0..=i).rev().find(|&j| segments[j].header)
}

/// The archive must not begin after the base's point: whatever precedes the first piece used
/// must already be in the base.
fn check_archive_reaches(segments: &[SegmentIndex], first: usize, start: &GtidPos) -> Result<()> {
    let before = if first > 0 {
        Some(segments[first - 1].gtid_state.clone())
    } else {
        match &segments[first].piece_start {
            Some(PieceStart::Gtid { from }) => Some(from.clone()),
            Some(PieceStart::Rotation) | Some(PieceStart::Position) => None,
            Some(PieceStart::Oldest) | None => None,
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

/// Index of the last segment the target needs.
fn last_needed(segments: &[SegmentIndex], from: usize, target: Target) -> Result<usize> {
    let last = segments.len() - 1;
    match target {
        Target::Latest => Ok(last),
        Target::Gtid(g) | Target::BeforeGtid(g) => segments[from..]
            .iter()
            .position(|s| s.gtid_state.contains(&g))
            .map(|i| from + i)
            .ok_or_else(|| beyond_archive(segments, target)),
        Target::Time(t) => {
            let secs = t.unix_timestamp();
            match segments[from..]
                .iter()
                .position(|s| (s.last_event_time as i64) > secs)
            {
                Some(i) => Ok(from + i),
                None if (segments[last].last_event_time as i64) >= secs => Ok(last),
                None => Err(beyond_archive(segments, target)),
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

fn check_continuity(run: &[SegmentIndex]) -> Result<()> {
    for pair in run.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
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
                Some(PieceStart::Oldest) | None => false,
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

fn beyond_archive(segments: &[SegmentIndex], target: Target) -> Error {
    match segments.last() {
        Some(last) => not_recoverable(format!(
            "the target ({target}) is beyond the archive, which ends at GTID {} (last event \
             at {}); restore to --latest, or wait for `holdfast binlog stream` to archive it",
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
        }
    }

    fn base(id: &str, seq: u64) -> BaseCandidate {
        BaseCandidate {
            id: id.into(),
            gtid: Some(pos(seq)),
            time: t(seq as i64),
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
            let plan = plan_recovery(&bases, &archive(), *target).unwrap();
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
            let err = plan_recovery(&bases, &archive(), *target).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotRecoverable, "{target}");
            assert!(err.message().contains(why), "{target}: {err}");
        }
        let err = plan_recovery(&[], &archive(), Target::Latest).unwrap_err();
        assert!(err.message().contains("no backups"), "{err}");
        let no_binlog = BaseCandidate {
            gtid: None,
            ..base("X", 1)
        };
        let err = plan_recovery(&[no_binlog], &archive(), Target::Latest).unwrap_err();
        assert!(err.message().contains("binlog position"), "{err}");
    }

    #[test]
    fn gaps_in_the_archive_are_named_and_never_crossed() {
        let bases = [base("A", 5)];
        // A hole in one file: segment 2 ends at 200, segment 3 starts at 250.
        let mut holed = archive();
        holed[2].start_pos = 250;
        let err = plan_recovery(&bases, &holed, Target::Latest).unwrap_err();
        assert!(err.message().contains("gap between segment 2"), "{err}");
        // Before the hole is still recoverable.
        assert!(plan_recovery(&bases, &holed, Target::Gtid(g(12))).is_ok());

        // A failover piece that does not start where the archive ended.
        let mut failover = archive();
        failover[2] = seg(3, "replica.7", 0, 300, 23, 30);
        let err = plan_recovery(&bases, &failover, Target::Latest).unwrap_err();
        assert!(err.message().contains("gap"), "{err}");
        // One that does continue is fine, and starts a second piece.
        failover[2] = seg(3, "replica.7", 0, 300, 21, 30);
        let plan = plan_recovery(&bases, &failover, Target::Latest).unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2], vec![3]]);

        // The archive starting after the backup's point.
        let late = vec![seg(1, "b.1", 0, 100, 9, 10)];
        let err = plan_recovery(&bases, &late, Target::Latest).unwrap_err();
        assert!(err.message().contains("missing transactions"), "{err}");
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
            let plan = plan_recovery(&bases, &mysql_archive(), *target).unwrap();
            assert_eq!(&plan.base, want_base, "{target}");
            assert_eq!(&plan.pieces, want_pieces, "{target}");
        }
        let err = plan_recovery(&bases, &mysql_archive(), Target::Gtid(m(31))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotRecoverable);
        // Another source's transaction is not in this archive.
        let other: Gtid = "f72e8c95-e574-11f1-ab95-02fc00000001:3".parse().unwrap();
        assert!(plan_recovery(&bases, &mysql_archive(), Target::Gtid(other)).is_err());
        // A failover piece must start from exactly the set the archive ended with.
        let mut failover = mysql_archive();
        failover[2].source.file = "replica.7".into();
        failover[2].header = true;
        failover[2].piece_start = Some(PieceStart::Gtid { from: mset(22) });
        let err = plan_recovery(&bases, &failover, Target::Latest).unwrap_err();
        assert!(err.message().contains("gap"), "{err}");
        failover[2].piece_start = Some(PieceStart::Gtid { from: mset(20) });
        let plan = plan_recovery(&bases, &failover, Target::Latest).unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2], vec![3]]);
        // The window reads the same.
        let w = recoverable_window(&bases, &mysql_archive());
        assert_eq!(w.from_backup.as_deref(), Some("A"));
        assert_eq!(w.to_gtid, Some(mset(30)));
    }

    #[test]
    fn a_piece_is_fed_from_its_header_even_when_the_base_is_further_on() {
        let bases = [base("B", 25)];
        let plan = plan_recovery(&bases, &archive(), Target::Latest).unwrap();
        assert_eq!(plan.pieces, vec![vec![1, 2, 3]]);
        assert_eq!(plan.start, pos(25));
    }
}

/// The recoverable window: every point from `from` (a backup's consistent point) to `to` (the
/// end of the archive) can be recovered; `gaps` names holes in the archive (points on their far
/// side are only reachable from a backup taken after them).
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
}

/// Computes the recoverable window (see [`Window`]).
pub fn recoverable_window(bases: &[BaseCandidate], segments: &[SegmentIndex]) -> Window {
    let mut usable: Vec<&BaseCandidate> = bases.iter().filter(|b| b.gtid.is_some()).collect();
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
        if plan_recovery(std::slice::from_ref(*base), segments, Target::Latest).is_ok() {
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
