//! Compaction of the binlog archive: runs of small closed segments merged into one.
//!
//! The stream commits a segment (a data object and an index entry) every flush interval, so a
//! busy server leaves hundreds of thousands of objects a day. Compaction merges consecutive
//! segments of one piece of one binlog file into one *merged* segment of up to
//! [`CompactPolicy::max_bytes`] or [`CompactPolicy::max_span`] of events, keeping everything
//! recovery reads (positions, first and last times and GTIDs, the GTID state, the piece start,
//! whether a transaction stays open).
//!
//! - [`plan_compaction`] decides which runs merge (a pure function): consecutive numbers, the same
//!   file instance, touching positions, no piece start inside the run (a rotation, a hole, a
//!   new run or a GTID restart begins a new run), every segment archived at least
//!   [`CompactPolicy::older_than`] ago, and never the archive's newest segment (the stream
//!   resumes from it).
//! - [`compact`] applies it, crash-safe at every step, under the [`COMPACT_LOCK`]: the merged
//!   data object is written (streamed from the run's segments, so memory does not grow with
//!   the run); then its index entry *replaces the entry of the run's first
//!   segment* (an atomic replace on every store) and covers the run's numbers
//!   ([`SegmentIndex::merged_to`]); then the small data objects are removed; then the small
//!   index entries. Readers ignore an entry a merged one covers
//!   ([`resolve`](super::archive::resolve)), so at every instant they see the small segments or
//!   the merged one. A compaction killed half-way is finished by the next one (entries still
//!   covered are what is left to remove; a merged data object without its entry is overwritten
//!   or left as debris of a higher number than nothing reads).
//!
//! The stream never conflicts: it only writes numbers after the archive's end, and removes as
//! debris only objects numbered after it. A reader that planned from the small segments just
//! before a compaction may find one of their objects gone (it fails with the segment named,
//! before changing anything, and succeeds when run again).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::binlog::archive::{index_path, parse_data_name, resolve, Archive};
use crate::manifest::{FileEntry, SegmentIndex, MERGED_SEGMENT_FORMAT};
use crate::repo::RepoLock;
use crate::{Error, ErrorKind, Result};

/// The lock every compaction holds (the `binlog compact` command and the stream's own), so two
/// never merge the same segments. `expire` takes it too before it removes segments.
pub const COMPACT_LOCK: &str = "binlog-compact.lock";

/// Which segments merge.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactPolicy {
    /// Only segments archived at least this long ago.
    pub older_than: Duration,
    /// A merged segment holds at most this many (uncompressed) bytes of events.
    pub max_bytes: u64,
    /// … and events of at most this long (first to last event time).
    pub max_span: Duration,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        CompactPolicy {
            older_than: Duration::from_secs(600),
            max_bytes: 64 << 20,
            max_span: Duration::from_secs(3600),
        }
    }
}

/// The steps of merging one run, in order (for the crash tests' hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactStep {
    /// The merged data object is written (nothing reads it yet).
    MergedData,
    /// The merged index entry replaced the first segment's: readers use the merged segment.
    MergedIndex,
    /// A small segment's data object (or the replaced one) was removed.
    SmallData,
    /// A covered index entry was removed.
    SmallIndex,
}

impl CompactStep {
    pub fn name(self) -> &'static str {
        match self {
            CompactStep::MergedData => "merged-data",
            CompactStep::MergedIndex => "merged-index",
            CompactStep::SmallData => "small-data",
            CompactStep::SmallIndex => "small-index",
        }
    }
}

/// Called after each step (tests kill the process there to prove crash safety).
pub type StepHook = Arc<dyn Fn(CompactStep) + Send + Sync>;

#[derive(Clone, Default)]
pub struct CompactOptions {
    pub policy: CompactPolicy,
    /// Plan only: nothing is written or removed (leftovers are counted, not removed).
    pub dry_run: bool,
    /// Stops between runs (the stream's compactor when the stream ends).
    pub cancel: Option<CancellationToken>,
    pub after_step: Option<StepHook>,
}

/// One run merged (or, with `dry_run`, to merge).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MergedRun {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Segments merged (a merged segment counts once).
    pub segments: usize,
    pub file: String,
    pub start_pos: u64,
    pub end_pos: u64,
    #[serde(rename = "raw_bytes")]
    pub raw_size: u64,
    /// Stored bytes of the segments merged, and of the merged segment (0 with `dry_run`).
    pub stored_bytes_before: u64,
    pub stored_bytes_after: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CompactReport {
    pub dry_run: bool,
    pub older_than_seconds: u64,
    /// Committed segments before and after (a merged segment counts once).
    pub segments_before: usize,
    pub segments_after: usize,
    /// Objects (data objects and index entries) of the archive's segments before and after,
    /// leftovers of an interrupted compaction included before.
    pub objects_before: usize,
    pub objects_after: usize,
    pub merged: Vec<MergedRun>,
    /// Covered index entries left by an interrupted compaction, removed (with their data) first.
    pub leftovers_removed: usize,
    /// Data objects of no entry removed from the file instances compacted (a merged object
    /// whose entry was never written, debris of an interrupted segment write).
    pub debris_removed: usize,
    /// Stopped before every planned run was merged (the stream ended).
    pub interrupted: bool,
}

/// Takes the [`COMPACT_LOCK`] and compacts the archive (see the module documentation). A
/// compaction already running elsewhere is a `Locked` error.
pub async fn compact(archive: &Archive, options: &CompactOptions) -> Result<CompactReport> {
    let lock =
        RepoLock::acquire_named(archive.storage().clone(), COMPACT_LOCK, "binlog compact").await?;
    let result = compact_locked(archive, options, &lock).await;
    let released = lock.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// Compacts with the [`COMPACT_LOCK`] held: finishes what an interrupted compaction left, then
/// merges the runs [`plan_compaction`] picks.
pub async fn compact_locked(
    archive: &Archive,
    options: &CompactOptions,
    lock: &RepoLock,
) -> Result<CompactReport> {
    let hook = |step: CompactStep| {
        if let Some(h) = &options.after_step {
            h(step)
        }
    };
    let resolved = resolve(archive.entries().await?);
    let mut report = CompactReport {
        dry_run: options.dry_run,
        older_than_seconds: options.policy.older_than.as_secs(),
        segments_before: resolved.live.len(),
        objects_before: 2 * (resolved.live.len() + resolved.covered.len()),
        ..CompactReport::default()
    };
    let mut live = resolved.live;
    // Every object an entry names (covered ones included), and the newest number: a data
    // object of no entry with a number up to it is debris (the stream only writes after it).
    let mut referenced: HashSet<String> = live
        .iter()
        .chain(&resolved.covered)
        .map(|s| s.object.path.clone())
        .collect();
    let newest = live.iter().map(SegmentIndex::last_seq).max().unwrap_or(0);
    let mut swept: HashSet<String> = HashSet::new();
    if !options.dry_run && !resolved.covered.is_empty() {
        let keep: HashSet<String> = live.iter().map(|s| s.object.path.clone()).collect();
        for merged in live.iter().filter(|s| s.merged_to.is_some()) {
            let covered: Vec<&SegmentIndex> = resolved
                .covered
                .iter()
                .filter(|c| c.seq > merged.seq && c.seq <= merged.last_seq())
                .collect();
            if covered.is_empty() {
                continue;
            }
            lock.ensure_held().await?;
            remove_covered(archive, merged, &covered, &keep, &hook).await?;
            report.leftovers_removed += covered.len();
            report.debris_removed +=
                sweep(archive, merged, &referenced, newest, &mut swept).await?;
        }
    }
    let runs = plan_compaction(&live, OffsetDateTime::now_utc(), &options.policy);
    let mut merged_runs: Vec<(Range<usize>, SegmentIndex)> = Vec::new();
    for run in runs {
        if options.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            report.interrupted = true;
            break;
        }
        let segments = &live[run.clone()];
        let mut merged_run = MergedRun {
            first_seq: segments[0].seq,
            last_seq: segments[segments.len() - 1].last_seq(),
            segments: segments.len(),
            file: segments[0].source.file.clone(),
            start_pos: segments[0].start_pos,
            end_pos: segments[segments.len() - 1].end_pos,
            raw_size: segments.iter().map(|s| s.raw_size).sum(),
            stored_bytes_before: segments.iter().map(|s| s.object.size).sum(),
            stored_bytes_after: 0,
        };
        if !options.dry_run {
            report.debris_removed +=
                sweep(archive, &segments[0], &referenced, newest, &mut swept).await?;
            let merged = merge_run(archive, segments, lock, &hook).await?;
            referenced.insert(merged.object.path.clone());
            merged_run.stored_bytes_after = merged.object.size;
            merged_runs.push((run, merged));
        }
        report.merged.push(merged_run);
    }
    // The archive as it now stands.
    for (run, merged) in merged_runs.into_iter().rev() {
        live.splice(run, [merged]);
    }
    report.segments_after = if options.dry_run {
        report.segments_before - report.merged.iter().map(|r| r.segments - 1).sum::<usize>()
    } else {
        live.len()
    };
    report.objects_after = if options.dry_run {
        2 * report.segments_after
    } else {
        2 * live.len()
    };
    Ok(report)
}

/// Merges one run: streams every segment, checked, into the merged data object (one segment
/// piece at a time, never the run in memory), writes its entry over the first segment's, then
/// removes the small objects and entries. The lock is checked before the data object is
/// written and again before the entry commits it (streaming a large run takes a while).
async fn merge_run(
    archive: &Archive,
    run: &[SegmentIndex],
    lock: &RepoLock,
    hook: &(dyn Fn(CompactStep) + Sync),
) -> Result<SegmentIndex> {
    let index = merged_index(run, OffsetDateTime::now_utc());
    lock.ensure_held().await?;
    let merged = archive.write_merged_data(index, run).await?;
    hook(CompactStep::MergedData);
    lock.ensure_held().await?;
    archive.commit_merged(&merged).await?;
    hook(CompactStep::MergedIndex);
    let covered: Vec<&SegmentIndex> = run[1..].iter().collect();
    let keep = HashSet::from([merged.object.path.clone()]);
    remove_covered(archive, &merged, &covered, &keep, hook).await?;
    Ok(merged)
}

/// Removes the data objects of `segment`'s file instance that no entry names and whose numbers
/// are at most `newest`: a merged object whose entry an interrupted compaction never wrote,
/// a small object of an interrupted stream write that was written again elsewhere. One listing
/// of that file instance, once per compaction (`swept`); returns how many were removed.
async fn sweep(
    archive: &Archive,
    segment: &SegmentIndex,
    referenced: &HashSet<String>,
    newest: u64,
    swept: &mut HashSet<String>,
) -> Result<usize> {
    let path = &segment.object.path;
    let Some(dir) = path.rfind('/').map(|i| &path[..=i]) else {
        return Ok(0);
    };
    if !swept.insert(dir.to_string()) {
        return Ok(0);
    }
    let mut removed = 0;
    for object in archive.storage().list(dir).await? {
        let debris = parse_data_name(&object.path)
            .is_some_and(|(_, last)| last <= newest && !referenced.contains(&object.path));
        if debris && !object.path[dir.len()..].contains('/') {
            archive.storage().delete(&object.path).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes what a committed merged entry replaced: the data objects first (the replaced
/// entry's and the covered entries'), then the covered entries, whose presence is what tells
/// an interrupted compaction from a finished one. Never removes a path in `keep` (live ones).
async fn remove_covered(
    archive: &Archive,
    merged: &SegmentIndex,
    covered: &[&SegmentIndex],
    keep: &HashSet<String>,
    hook: &(dyn Fn(CompactStep) + Sync),
) -> Result<()> {
    let storage = archive.storage();
    let mut objects: Vec<&str> = merged.replaced_object.iter().map(String::as_str).collect();
    for c in covered {
        objects.push(&c.object.path);
        objects.extend(c.replaced_object.as_deref());
    }
    for path in objects {
        if path.is_empty() || keep.contains(path) || path == merged.object.path {
            continue;
        }
        storage.delete(path).await?;
        hook(CompactStep::SmallData);
    }
    for c in covered {
        if c.seq == merged.seq {
            return Err(Error::internal("a merged entry covers its own number"));
        }
        storage.delete(&index_path(c.seq)).await?;
        hook(CompactStep::SmallIndex);
    }
    Ok(())
}

/// Decides which runs of `segments` (committed, in archive order) merge: index ranges of two
/// or more segments each. See the module documentation for the rules.
pub fn plan_compaction(
    segments: &[SegmentIndex],
    now: OffsetDateTime,
    policy: &CompactPolicy,
) -> Vec<Range<usize>> {
    let old_enough = |s: &SegmentIndex| s.archived + policy.older_than <= now && s.archived <= now;
    // Never the newest segment: the stream continues from it.
    let candidates = segments.len().saturating_sub(1);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < candidates {
        if !old_enough(&segments[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut bytes = segments[i].raw_size;
        let mut first_time = nonzero(segments[i].first_event_time);
        let mut j = i + 1;
        while j < candidates {
            let (prev, next) = (&segments[j - 1], &segments[j]);
            if !old_enough(next) || !joins(prev, next) || bytes + next.raw_size > policy.max_bytes {
                break;
            }
            let span_ok = match (first_time, nonzero(next.last_event_time)) {
                (Some(a), Some(b)) => u64::from(b.saturating_sub(a)) <= policy.max_span.as_secs(),
                _ => true,
            };
            if !span_ok {
                break;
            }
            bytes += next.raw_size;
            first_time = first_time.or(nonzero(next.first_event_time));
            j += 1;
        }
        if j - start >= 2 {
            runs.push(start..j);
        }
        i = j;
    }
    runs
}

fn nonzero(t: u32) -> Option<u32> {
    (t != 0).then_some(t)
}

/// `next` continues `prev` inside one piece of one file: its bytes follow on directly.
fn joins(prev: &SegmentIndex, next: &SegmentIndex) -> bool {
    next.seq == prev.last_seq() + 1
        && !next.header
        && next.piece_start.is_none()
        && !prev.ends_file
        && next.source == prev.source
        && next.start_pos == prev.end_pos
        && next.checksum == prev.checksum
}

/// The index entry of the merged segment of `run` (its data object is filled in when written).
pub fn merged_index(run: &[SegmentIndex], now: OffsetDateTime) -> SegmentIndex {
    let first = &run[0];
    let last = &run[run.len() - 1];
    SegmentIndex {
        format: MERGED_SEGMENT_FORMAT,
        seq: first.seq,
        source: first.source.clone(),
        start_pos: first.start_pos,
        end_pos: last.end_pos,
        header: first.header,
        piece_start: first.piece_start.clone(),
        checksum: first.checksum,
        events: run.iter().map(|s| s.events).sum(),
        transactions: run.iter().map(|s| s.transactions).sum(),
        first_event_time: run
            .iter()
            .find_map(|s| nonzero(s.first_event_time))
            .unwrap_or(0),
        last_event_time: run
            .iter()
            .rev()
            .find_map(|s| nonzero(s.last_event_time))
            .unwrap_or(0),
        first_gtid: run.iter().find_map(|s| s.first_gtid),
        last_gtid: run.iter().rev().find_map(|s| s.last_gtid),
        gtid_state: last.gtid_state.clone(),
        open_transaction: last.open_transaction,
        ends_file: last.ends_file,
        raw_size: run.iter().map(|s| s.raw_size).sum(),
        object: FileEntry {
            path: String::new(),
            size: 0,
            sha256: String::new(),
        },
        archived: run.iter().map(|s| s.archived).max().unwrap_or(now),
        merged_to: Some(last.last_seq()),
        replaced_object: Some(first.object.path.clone()),
    }
}

/// Runs inside `binlog stream`: every `every`, a compaction of the segments older than
/// `policy.older_than`, skipped while another compaction holds the lock. Stops (between runs)
/// when `cancel` fires.
pub async fn run_periodically(
    archive: Archive,
    policy: CompactPolicy,
    every: Duration,
    cancel: CancellationToken,
) {
    let options = CompactOptions {
        policy,
        dry_run: false,
        cancel: Some(cancel.clone()),
        after_step: None,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
        let lock = match RepoLock::acquire_named(
            archive.storage().clone(),
            COMPACT_LOCK,
            "binlog stream (compaction)",
        )
        .await
        {
            Ok(lock) => lock,
            Err(e) if e.kind() == ErrorKind::Locked => {
                tracing::debug!(error = %e, "compaction skipped: another one is running");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "compaction skipped");
                continue;
            }
        };
        match compact_locked(&archive, &options, &lock).await {
            Ok(r) if !r.merged.is_empty() || r.leftovers_removed > 0 => tracing::info!(
                merged = r.merged.len(),
                segments_before = r.segments_before,
                segments_after = r.segments_after,
                leftovers_removed = r.leftovers_removed,
                "compacted the binlog archive"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "compaction failed; the next one retries"),
        }
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the compaction lock");
        }
    }
}

/// The debris of a compaction that was killed: data objects no index entry names (covered
/// entries included) with numbers up to the archive's newest, e.g. a merged object written
/// before its entry. The next compaction sweeps those of the directories it merges in; this
/// finds them everywhere, for `holdfast cleanup`. Removed (unless `dry_run`) under the
/// [`COMPACT_LOCK`]; `None`, touching nothing, while a live compaction holds it. Objects
/// numbered after the newest entry are the stream's (see `stream::stream_debris`).
pub async fn compaction_debris(archive: &Archive, dry_run: bool) -> Result<Option<Vec<String>>> {
    let lock =
        match RepoLock::acquire_named(archive.storage().clone(), COMPACT_LOCK, "cleanup").await {
            Ok(lock) => lock,
            Err(e) if e.kind() == crate::ErrorKind::Locked => return Ok(None),
            Err(e) => return Err(e),
        };
    let found = async {
        let resolved = resolve(archive.entries().await?);
        let referenced: HashSet<String> = resolved
            .live
            .iter()
            .chain(&resolved.covered)
            .map(|s| s.object.path.clone())
            .collect();
        let newest = resolved
            .live
            .iter()
            .chain(&resolved.covered)
            .map(SegmentIndex::last_seq)
            .max()
            .unwrap_or(0);
        let mut found = Vec::new();
        for object in archive
            .storage()
            .list(crate::binlog::archive::DATA_DIR)
            .await?
        {
            let debris = parse_data_name(&object.path)
                .is_some_and(|(_, last)| last <= newest && !referenced.contains(&object.path));
            if debris {
                if !dry_run {
                    archive.storage().delete(&object.path).await?;
                }
                found.push(object.path);
            }
        }
        Ok::<_, crate::Error>(found)
    }
    .await;
    lock.release().await?;
    found.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event::ChecksumAlg;
    use crate::binlog::gtid::{Gtid, GtidPos};
    use crate::manifest::{PieceStart, SegmentSource};

    const NOW: i64 = 1_700_100_000;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn source(file: &str) -> SegmentSource {
        SegmentSource {
            server_id: 1,
            server_version: "10.11".into(),
            file: file.into(),
            file_created: 1,
        }
    }

    /// Segment `seq` of `file` from `start` to `end`, 1 KiB, one transaction (GTID 0-1-seq) at
    /// event time `seq * 10`, archived `age` seconds before NOW.
    fn seg(seq: u64, file: &str, start: u64, end: u64, age: i64) -> SegmentIndex {
        let g = Gtid::maria(0, 1, seq);
        SegmentIndex {
            format: 1,
            seq,
            source: source(file),
            start_pos: start,
            end_pos: end,
            header: start == 0,
            piece_start: (start == 0).then_some(PieceStart::Rotation),
            checksum: ChecksumAlg::Crc32,
            events: 3,
            transactions: 1,
            first_event_time: 1_700_000_000 + seq as u32 * 10,
            last_event_time: 1_700_000_000 + seq as u32 * 10,
            first_gtid: Some(g),
            last_gtid: Some(g),
            gtid_state: GtidPos::from_gtids([g]),
            open_transaction: false,
            ends_file: false,
            raw_size: 1024,
            object: FileEntry {
                path: format!("binlog/data/{seq}"),
                size: 500,
                sha256: String::new(),
            },
            archived: t(NOW - age),
            merged_to: None,
            replaced_object: None,
        }
    }

    /// One file, segments 1..=n, each continuing the previous one, all archived an hour ago.
    fn file(n: u64) -> Vec<SegmentIndex> {
        (1..=n)
            .map(|i| {
                seg(
                    i,
                    "b.1",
                    if i == 1 { 0 } else { i * 100 },
                    (i + 1) * 100,
                    3600,
                )
            })
            .collect()
    }

    fn policy(older_than: u64) -> CompactPolicy {
        CompactPolicy {
            older_than: Duration::from_secs(older_than),
            ..CompactPolicy::default()
        }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn runs_merge_per_piece_of_a_file_and_never_take_the_newest_segment() {
        type Edit = fn(&mut Vec<SegmentIndex>);
        let cases: &[(&str, Edit, CompactPolicy, &[Range<usize>])] = &[
            ("one file: all but the newest", |_| {}, policy(600), &[0..5]),
            ("nothing old enough", |_| {}, policy(7200), &[]),
            (
                "the newest two too young",
                |a| {
                    a[4].archived = t(NOW - 10);
                    a[3].archived = t(NOW - 10);
                },
                policy(600),
                &[0..3],
            ),
            (
                "a young segment in the middle splits the run",
                |a| a[2].archived = t(NOW - 10),
                policy(600),
                &[0..2, 3..5],
            ),
            (
                "a rotation starts a new run",
                |a| {
                    for s in a.iter_mut().skip(3) {
                        s.source = source("b.2");
                    }
                    a[2].ends_file = true;
                    a[3].header = true;
                    a[3].start_pos = 0;
                    a[3].piece_start = Some(PieceStart::Rotation);
                },
                policy(600),
                &[0..3, 3..5],
            ),
            (
                "a new run after a hole is never merged into what precedes it",
                |a| {
                    a[3].header = true;
                    a[3].piece_start = Some(PieceStart::NewRun {
                        after_gap_from: GtidPos::new(),
                        from: None,
                        reason: "purged".into(),
                    });
                },
                policy(600),
                &[0..3, 3..5],
            ),
            (
                "a GTID restart mid-file starts a new run",
                |a| {
                    a[2].header = true;
                    a[2].piece_start = Some(PieceStart::Gtid {
                        from: GtidPos::new(),
                    });
                },
                policy(600),
                &[0..2, 2..5],
            ),
            (
                "positions that do not touch",
                |a| a[2].start_pos += 1,
                policy(600),
                &[0..2, 2..5],
            ),
            (
                "a lost index entry (number missing) splits",
                |a| {
                    a.remove(2);
                },
                policy(600),
                &[0..2, 2..4],
            ),
            (
                "another file instance (re-initialised server) splits",
                |a| {
                    for s in a.iter_mut().skip(2) {
                        s.source.file_created = 99;
                    }
                },
                policy(600),
                &[0..2, 2..5],
            ),
            (
                "size limit",
                |_| {},
                CompactPolicy {
                    max_bytes: 2048,
                    ..policy(600)
                },
                &[0..2, 2..4],
            ),
            (
                "span limit: 10 s between segments, 25 s per merged segment",
                |_| {},
                CompactPolicy {
                    max_span: Duration::from_secs(25),
                    ..policy(600)
                },
                &[0..3, 3..5],
            ),
            (
                "a merged segment keeps growing with the segments after it",
                |a| {
                    let merged = merged_index(&a[0..3], t(NOW - 3600));
                    a.splice(0..3, [merged]);
                },
                policy(600),
                &[0..3],
            ),
            (
                "a run of one is left alone",
                |a| a.truncate(2),
                policy(600),
                &[],
            ),
        ];
        for (name, edit, policy, want) in cases {
            let mut a = file(6);
            edit(&mut a);
            assert_eq!(plan_compaction(&a, t(NOW), policy), *want, "{name}");
        }
    }

    #[test]
    fn a_merged_entry_keeps_what_recovery_reads() {
        let mut run = file(4);
        run[3].open_transaction = true;
        run[3].last_gtid = None;
        run[3].last_event_time = 0;
        let m = merged_index(&run, t(NOW));
        assert_eq!((m.seq, m.merged_to, m.last_seq()), (1, Some(4), 4));
        assert_eq!(m.format, MERGED_SEGMENT_FORMAT);
        assert_eq!((m.start_pos, m.end_pos), (0, 500));
        assert!(m.header);
        assert_eq!(m.piece_start, Some(PieceStart::Rotation));
        assert_eq!((m.events, m.transactions, m.raw_size), (12, 4, 4096));
        assert_eq!(m.first_event_time, 1_700_000_010);
        // The last segment has no event time or GTID of its own: the one before it counts.
        assert_eq!(m.last_event_time, 1_700_000_030);
        assert_eq!(m.first_gtid, Some(Gtid::maria(0, 1, 1)));
        assert_eq!(m.last_gtid, Some(Gtid::maria(0, 1, 3)));
        assert_eq!(m.gtid_state, run[3].gtid_state);
        assert!(m.open_transaction);
        assert_eq!(m.replaced_object.as_deref(), Some("binlog/data/1"));
        assert_eq!(m.seq_label(), "1-4");
    }

    #[test]
    fn readers_see_the_small_segments_or_the_merged_one_never_both() {
        let a = file(6);
        let merged = merged_index(&a[1..4], t(NOW));
        // Every state a compaction of 2..=4 passes through, as a reader lists it.
        let states: Vec<(&str, Vec<SegmentIndex>)> = vec![
            ("before", a.clone()),
            ("merged entry written", {
                let mut v = a.clone();
                v[1] = merged.clone();
                v
            }),
            ("one covered entry removed", {
                let mut v = a.clone();
                v[1] = merged.clone();
                v.remove(2);
                v
            }),
            (
                "done",
                vec![a[0].clone(), merged.clone(), a[4].clone(), a[5].clone()],
            ),
        ];
        for (name, entries) in states {
            let r = resolve(entries);
            let seqs: Vec<u64> = r.live.iter().map(|s| s.seq).collect();
            let want: &[u64] = if name == "before" {
                &[1, 2, 3, 4, 5, 6]
            } else {
                &[1, 2, 5, 6]
            };
            assert_eq!(seqs, want, "{name}");
            // Continuity holds in every state: no entry lost, none counted twice.
            crate::recovery::plan::check_continuity(&r.live)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let events: u64 = r.live.iter().map(|s| s.events).sum();
            assert_eq!(events, 18, "{name}");
        }
        // A lost entry after a merged one is still found.
        let holed = vec![a[0].clone(), merged, a[5].clone()];
        let r = resolve(holed);
        let e = crate::recovery::plan::check_continuity(&r.live).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
        assert!(e.message().contains("segment 5"), "{e}");
    }
}
