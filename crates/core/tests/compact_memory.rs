//! Compaction's memory on local disk (no server): a merge streams its run, segment by segment
//! and piece by piece, into the merged object, so its peak heap is a few buffers whatever the
//! size of the run or of its segments (a merged segment grown again is read back too), and the
//! merged segment reads back as the run's bytes. This binary counts every allocation with its
//! own global allocator (a test file is a crate of its own), so it holds one test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use holdfast::binlog::archive::Archive;
use holdfast::binlog::compact::{compact, CompactOptions, CompactPolicy};
use holdfast::binlog::event::ChecksumAlg;
use holdfast::binlog::gtid::{Gtid, GtidPos};
use holdfast::manifest::{FileEntry, PieceStart, SegmentIndex, SegmentSource};
use holdfast::repo::keys::DataKey;
use holdfast::storage::{open_url, EncryptedStorage, Storage};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The counts are process-wide: the tests of this file measure one at a time.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1 << 20;
/// Raw bytes per small segment, and segments in the run (the archive holds one more, the
/// newest, which never merges): merged in two halves.
const SEGMENT: usize = 4 * MIB;
const RUN: u64 = 12;

/// A local repository in `dir/name`. Its whole-object reads take what the object needs (they
/// took 2 MiB each through OpenDAL: the 32 index entries `Archive::entries` loads at once cost
/// up to 64 MiB at the start of every compaction, which this test would have caught too).
fn local(dir: &tempfile::TempDir, name: &str) -> Arc<dyn Storage> {
    open_url(&format!("file://{}", dir.path().join(name).display())).unwrap()
}

fn source() -> SegmentSource {
    SegmentSource {
        server_id: 1,
        server_version: "10.11".into(),
        file: "b.000001".into(),
        file_created: 100,
    }
}

/// Segment `seq` holding `len` bytes from position `start`.
fn segment(seq: u64, start: u64, len: usize) -> SegmentIndex {
    let g = Gtid::maria(0, 1, seq);
    SegmentIndex {
        format: 1,
        seq,
        source: source(),
        start_pos: start,
        end_pos: start + len as u64,
        header: start == 0,
        piece_start: (start == 0).then_some(PieceStart::Rotation),
        checksum: ChecksumAlg::Off,
        events: 1,
        transactions: 1,
        first_event_time: 1_700_000_000 + seq as u32,
        last_event_time: 1_700_000_000 + seq as u32,
        first_gtid: Some(g),
        last_gtid: Some(g),
        gtid_state: GtidPos::from_gtids([g]),
        open_transaction: false,
        ends_file: false,
        raw_size: 0,
        object: FileEntry {
            path: String::new(),
            size: 0,
            sha256: String::new(),
        },
        archived: time::OffsetDateTime::now_utc() - Duration::from_secs(3600),
        merged_to: None,
        replaced_object: None,
    }
}

/// Row-like bytes that compress about as well as a binlog (3 to 1), different in every
/// segment.
fn events(seq: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seq.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::with_capacity(len);
    let mut row = 0u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        row += 1;
        let line = format!("INSERT INTO d.t VALUES ({row}, '{x:016x}', 'unchanged padding');\n");
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// Peak of the process's resident set since `reset_rss_peak`, when /proc allows (zstd's own
/// buffers come from `malloc`, not from the counting allocator).
fn reset_rss_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Compacts `archive` (segments older than a minute, no size limit) and returns the peak heap
/// growth while it ran, printed with the figures of `what`.
async fn compact_measured(archive: &Archive, what: &str) -> usize {
    let options = CompactOptions {
        policy: CompactPolicy {
            older_than: Duration::from_secs(60),
            max_bytes: 1 << 30,
            ..CompactPolicy::default()
        },
        ..CompactOptions::default()
    };
    let rss_before = rss_kib("VmRSS:");
    let rss_reset = reset_rss_peak();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let report = compact(archive, &options).await.unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let rss_peak = rss_kib("VmHWM:").filter(|_| rss_reset);
    assert_eq!(report.merged.len(), 1, "{what}: {report:?}");
    let run = &report.merged[0];
    eprintln!(
        "{what}: merged {} MiB ({} segments) into {:.1} MiB; peak heap growth {:.1} MiB, \
         RSS {} -> peak {} MiB",
        run.raw_size >> 20,
        run.segments,
        run.stored_bytes_after as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        rss_before.map_or("?".into(), |k| (k / 1024).to_string()),
        rss_peak.map_or("?".into(), |k| (k / 1024).to_string()),
    );
    peak
}

/// Writes segments `seqs` of [`SEGMENT`] bytes each, continuing the archive; returns their
/// bytes.
async fn write_segments(archive: &Archive, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let mut all = Vec::new();
    for seq in seqs {
        let raw = events(seq, SEGMENT);
        let start = (seq - 1) * SEGMENT as u64;
        archive
            .write_segment(segment(seq, start, raw.len()), &raw)
            .await
            .unwrap();
        all.extend_from_slice(&raw);
    }
    all
}

/// The archive's first segment is merged from 1 to `last` and reads back as `expected`
/// through the archive's own reader (size, SHA-256 and raw size checked).
async fn check_merged(archive: &Archive, last: u64, expected: &[u8], what: &str) {
    let segments = archive.segments().await.unwrap();
    let merged = &segments[0];
    assert_eq!(
        (merged.seq, merged.merged_to),
        (1, Some(last)),
        "{what}: {merged:?}"
    );
    assert_eq!(merged.raw_size, expected.len() as u64, "{what}");
    let read = archive.read_segment(merged).await.unwrap();
    assert!(
        read == expected,
        "{what}: the merged segment is not the run's bytes"
    );
}

/// Merges [`RUN`] / 2 segments, then grows the merged segment by as many again (reading the
/// merged one back), as the stream's compactor does; returns the larger peak heap growth.
async fn merge_and_measure(storage: Arc<dyn Storage>, what: &str) -> usize {
    let archive = Archive::new(storage);
    let half = RUN / 2;
    let mut expected = write_segments(&archive, 1..=half + 1).await;
    let first = compact_measured(&archive, &format!("{what}, first merge")).await;
    let newest = expected.split_off(half as usize * SEGMENT);
    check_merged(&archive, half, &expected, what).await;
    expected.extend(newest);
    expected.extend(write_segments(&archive, half + 2..=RUN + 1).await);
    let second = compact_measured(&archive, &format!("{what}, merged segment grown")).await;
    expected.truncate(RUN as usize * SEGMENT);
    check_merged(&archive, RUN, &expected, what).await;
    assert_eq!(archive.segments().await.unwrap().len(), 2, "{what}");
    first.max(second)
}

#[tokio::test]
async fn a_merge_holds_one_segment_at_a_time_and_reads_back_as_the_run() {
    let _alone = MEASURING.lock().await;
    // A few pieces of a segment plus the encoder's and the writer's buffers (about 12 MiB
    // measured). Reading the merged segment grown in the second merge whole (24 MiB), let
    // alone the run (48 MiB), goes over.
    let limit = 20 * MIB;

    let dir = tempfile::tempdir().unwrap();
    let peak = merge_and_measure(local(&dir, "plain"), "plain").await;
    assert!(
        peak < limit,
        "a merge grew the heap by {peak} bytes (limit {limit})"
    );

    // The same through the encrypting decorator: the merged object is encrypted like any
    // other, and streaming still bounds the memory.
    let inner = local(&dir, "enc");
    let encrypted: Arc<dyn Storage> = Arc::new(EncryptedStorage::new(
        inner.clone(),
        Arc::new(DataKey::generate()),
        &["holdfast.repo"],
    ));
    let peak = merge_and_measure(encrypted.clone(), "encrypted").await;
    assert!(
        peak < limit,
        "an encrypted merge grew the heap by {peak} bytes (limit {limit})"
    );
    let merged = Archive::new(encrypted).segments().await.unwrap()[0].clone();
    let stored = inner.get(&merged.object.path).await.unwrap();
    assert!(
        stored.starts_with(b"age-encryption.org/v1\n"),
        "the merged object is not an age file"
    );
}

#[tokio::test]
async fn listing_the_archive_reads_each_index_entry_into_its_own_size() {
    let _alone = MEASURING.lock().await;
    // 64 small segments: their index entries are about 1 KiB each. Read through OpenDAL, each
    // whole-object read reserved 2 MiB and 32 are read at once (+100 MiB measured for 64).
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::new(local(&dir, "many"));
    for seq in 1..=64u64 {
        let raw = events(seq, 1024);
        archive
            .write_segment(segment(seq, (seq - 1) * 1024, raw.len()), &raw)
            .await
            .unwrap();
    }
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let listed = archive.segments().await.unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    eprintln!(
        "listing 64 entries: peak heap growth {:.2} MiB",
        peak as f64 / MIB as f64
    );
    assert_eq!(listed.len(), 64);
    assert!(
        peak < 4 * MIB,
        "listing 64 index entries grew the heap by {peak} bytes"
    );
}
