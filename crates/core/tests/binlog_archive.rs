//! The binlog archive's bookkeeping on local disk (no server): debris removal at stream start
//! lists only the file instances an interrupted write can have used, and never touches objects
//! of committed numbers; index entries load concurrently and resolve merged segments.

use std::sync::Arc;

use bytes::Bytes;
use holdfast::binlog::archive::{data_path, merged_data_path, Archive};
use holdfast::binlog::event::ChecksumAlg;
use holdfast::binlog::gtid::{Gtid, GtidPos};
use holdfast::manifest::{FileEntry, SegmentIndex, SegmentSource};
use holdfast::storage::{open_url, Storage};

fn temp_archive() -> (tempfile::TempDir, Arc<dyn Storage>, Archive) {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_url(&format!("file://{}/repo", dir.path().display())).unwrap();
    (dir, storage.clone(), Archive::new(storage))
}

fn source(file: &str) -> SegmentSource {
    SegmentSource {
        server_id: 1,
        server_version: "10.11".into(),
        file: file.into(),
        file_created: 100,
    }
}

fn segment(seq: u64, file: &str, start: u64) -> SegmentIndex {
    let g = Gtid::maria(0, 1, seq);
    SegmentIndex {
        format: 1,
        seq,
        source: source(file),
        start_pos: start,
        end_pos: start + 10,
        header: false,
        piece_start: None,
        checksum: ChecksumAlg::Off,
        events: 1,
        transactions: 1,
        first_event_time: 1,
        last_event_time: 1,
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
        archived: time::OffsetDateTime::now_utc(),
        merged_to: None,
        replaced_object: None,
    }
}

#[tokio::test]
async fn debris_is_removed_only_after_the_archive_end_and_only_where_a_write_can_have_gone() {
    let (_dir, storage, archive) = temp_archive();
    // A finished old file and the file the archive ends in.
    for (seq, file, start) in [(1, "b.1", 4), (2, "b.1", 14), (3, "b.2", 4), (4, "b.2", 14)] {
        archive
            .write_segment(segment(seq, file, start), b"0123456789")
            .await
            .unwrap();
    }
    let junk = || Bytes::from_static(b"junk");
    // Debris of interrupted writes: seq 5 in the tail's file and in a new file.
    let tail_debris = data_path(&source("b.2"), 24, 5);
    let new_file_debris = data_path(&source("b.3"), 4, 5);
    // Objects of committed numbers: not the stream's to remove (a compaction's merged object
    // being written, an old stray in a finished file).
    let merging = merged_data_path(&source("b.2"), 4, 3, 4);
    let old_stray = data_path(&source("b.1"), 99, 2);
    // After the end, but in a finished file no write after the end can use: left alone.
    let unreachable = data_path(&source("b.1"), 24, 7);
    for p in [
        &tail_debris,
        &new_file_debris,
        &merging,
        &old_stray,
        &unreachable,
    ] {
        storage.put(p, junk()).await.unwrap();
    }
    let entries = archive.entries().await.unwrap();
    assert_eq!(entries.len(), 4);
    let mut removed = archive.remove_debris(&entries, 4).await.unwrap();
    removed.sort();
    let mut want = vec![tail_debris.clone(), new_file_debris.clone()];
    want.sort();
    assert_eq!(removed, want);
    for p in [&merging, &old_stray, &unreachable] {
        assert!(storage.stat(p).await.unwrap().is_some(), "{p} was removed");
    }
    for s in &entries {
        assert!(storage.stat(&s.object.path).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn many_index_entries_load_concurrently_in_order() {
    let (_dir, _storage, archive) = temp_archive();
    for seq in 1..=40 {
        archive
            .write_segment(segment(seq, "b.1", 4 + (seq - 1) * 10), b"0123456789")
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let segments = archive.segments().await.unwrap();
    eprintln!("40 index entries loaded in {:?}", started.elapsed());
    let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    holdfast::recovery::plan::check_continuity(&segments).unwrap();
}

#[tokio::test]
async fn a_merge_that_meets_a_damaged_segment_commits_nothing_and_leaves_nothing() {
    use holdfast::binlog::compact::{compact, CompactOptions, CompactPolicy};
    let (dir, storage, archive) = temp_archive();
    for seq in 1..=5 {
        let mut s = segment(seq, "b.1", 4 + (seq - 1) * 10);
        s.archived -= std::time::Duration::from_secs(3600);
        archive.write_segment(s, b"0123456789").await.unwrap();
    }
    let before = archive.segments().await.unwrap();
    let options = CompactOptions {
        policy: CompactPolicy {
            older_than: std::time::Duration::from_secs(60),
            ..CompactPolicy::default()
        },
        ..CompactOptions::default()
    };
    // The third segment's object altered (same size: only its SHA-256 tells, at its end,
    // after its bytes went into the merged object being written).
    let victim = &before[2].object.path;
    let mut bytes = storage.get(victim).await.unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    storage.put(victim, Bytes::from(bytes)).await.unwrap();

    let err = compact(&archive, &options).await.unwrap_err();
    assert_eq!(err.kind(), holdfast::ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains(victim.as_str()), "{err}");
    assert_eq!(archive.segments().await.unwrap(), before);
    // No merged data object, and no staged file of one: the write was aborted.
    let objects = archive.data_objects().await.unwrap();
    assert_eq!(objects.len(), 5, "{objects:?}");
    let staged = std::fs::read_dir(dir.path().join("repo/.holdfast-tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "a staged file was left");
}
