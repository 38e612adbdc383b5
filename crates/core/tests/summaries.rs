//! Backup summaries (`backups/<id>/summary`) on local disk, no database server: listing reads
//! them and no manifest (reads are counted), a backup without one or with a damaged one is
//! summarised from its manifest, a tampered one is named by the check and never decides a plan,
//! expire removes them, copy and cleanup write them, and an encrypted repository encrypts and
//! path-binds them.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use holdfast::manifest::{
    encode_self_checked, BackupManifest, BackupScope, BackupSummary, ChunkEntry, ConsistentPoint,
    FileEntry, Fingerprint, PolicySpec, ServerInfo, TableData, MANIFEST_FORMAT_UNPACKED,
};
use holdfast::repo::keys::{DataKey, NewSlot};
use holdfast::repo::{layout, Repository, SummaryState};
use holdfast::retention::{self, Policy};
use holdfast::storage::{self, open_url, Storage};
use holdfast::ErrorKind;
use time::{Duration, OffsetDateTime};

/// Local-disk storage that records the path of every whole or streamed read.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Storage>,
    reads: Mutex<Vec<String>>,
}

impl Counting {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl Storage for Counting {
    fn capabilities(&self) -> storage::Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, p: &str, d: Bytes) -> holdfast::Result<()> {
        self.inner.put(p, d).await
    }
    async fn put_if_absent(&self, p: &str, d: Bytes) -> holdfast::Result<bool> {
        self.inner.put_if_absent(p, d).await
    }
    async fn writer(&self, p: &str) -> holdfast::Result<Box<dyn storage::ObjectWriter>> {
        self.inner.writer(p).await
    }
    async fn get(&self, p: &str) -> holdfast::Result<Bytes> {
        self.reads.lock().unwrap().push(p.to_string());
        self.inner.get(p).await
    }
    async fn reader(&self, p: &str) -> holdfast::Result<storage::ByteStream> {
        self.reads.lock().unwrap().push(p.to_string());
        self.inner.reader(p).await
    }
    async fn stat(&self, p: &str) -> holdfast::Result<Option<storage::ObjectMeta>> {
        self.inner.stat(p).await
    }
    async fn list(&self, p: &str) -> holdfast::Result<Vec<storage::ObjectMeta>> {
        self.inner.list(p).await
    }
    async fn list_dirs(&self, p: &str) -> holdfast::Result<Vec<String>> {
        self.inner.list_dirs(p).await
    }
    async fn delete(&self, p: &str) -> holdfast::Result<()> {
        self.inner.delete(p).await
    }
    async fn delete_prefix(&self, p: &str) -> holdfast::Result<()> {
        self.inner.delete_prefix(p).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    raw: Arc<dyn Storage>,
    counting: Arc<Counting>,
    repo: Repository,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let raw = open_url(&format!("file://{}/repo", dir.path().display())).unwrap();
    Repository::init(raw.clone()).await.unwrap();
    let counting = Arc::new(Counting {
        inner: raw.clone(),
        reads: Mutex::new(Vec::new()),
    });
    let repo = Repository::open(counting.clone()).await.unwrap();
    counting.take();
    Fixture {
        _dir: dir,
        raw,
        counting,
        repo,
    }
}

/// A logical manifest of `tables` tables, finished `age` before now, with a binlog position.
fn manifest(id: &str, tables: usize, age: Duration, gtid: &str) -> BackupManifest {
    let t = OffsetDateTime::now_utc() - age;
    let tables: Vec<TableData> = (0..tables)
        .map(|i| TableData {
            database: "db".into(),
            table: format!("t{i:06}"),
            columns: vec!["id".into(), "v".into()],
            with_history: false,
            row_count: 3,
            fingerprint: Fingerprint::default(),
            chunks: vec![ChunkEntry {
                file: layout::chunk_file("db", &format!("t{i:06}"), 0),
                range: "TRUE".into(),
                rows: 3,
                raw_size: 30,
                segment: None,
            }],
        })
        .collect();
    let files = tables
        .iter()
        .map(|t| FileEntry {
            path: t.chunks[0].file.clone(),
            size: 20,
            sha256: "00".repeat(32),
        })
        .collect();
    BackupManifest {
        format: MANIFEST_FORMAT_UNPACKED,
        id: id.into(),
        engine: "logical".into(),
        tool_version: "test".into(),
        server: ServerInfo {
            flavor: "mariadb".into(),
            version: "11.4".into(),
            server_id: 1,
            server_uuid: String::new(),
            hostname: "db1".into(),
        },
        started: t,
        finished: t,
        consistent_point: ConsistentPoint {
            binlog_file: "b.000001".into(),
            binlog_pos: 4,
            gtid_set: gtid.into(),
            time: t,
        },
        lock_held_ms: 1,
        compression: "zstd".into(),
        schema_file: "schema.json.zst".into(),
        tables,
        files,
        includes_users: false,
        physical: None,
        scope: Some(BackupScope::complete()),
    }
}

const IDS: [&str; 3] = [
    "20260101T000000Z-0001",
    "20260102T000000Z-0002",
    "20260103T000000Z-0003",
];

async fn commit_three(f: &Fixture, tables: usize) -> Vec<BackupManifest> {
    let lock = f.repo.lock("backup").await.unwrap();
    let mut out = Vec::new();
    for (i, id) in IDS.iter().enumerate() {
        let m = manifest(
            id,
            tables,
            Duration::days(3 - i as i64),
            &format!("0-1-{}", 10 * (i + 1)),
        );
        f.repo.commit(&lock, &m).await.unwrap();
        out.push(m);
    }
    lock.release().await.unwrap();
    f.counting.take();
    out
}

fn manifest_reads(reads: &[String]) -> Vec<&String> {
    reads.iter().filter(|p| p.ends_with("/manifest")).collect()
}

/// A summary edited and given a valid self-checksum again (what a bug or someone with write
/// access could leave): only a comparison with the manifest tells.
async fn tamper(f: &Fixture, id: &str, edit: impl FnOnce(&mut BackupSummary)) {
    let mut s = f.repo.load_summary(id).await.unwrap().unwrap();
    edit(&mut s);
    f.raw
        .put(
            &layout::summary_path(id),
            Bytes::from(encode_self_checked(&s).unwrap()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn listing_reads_the_summaries_and_no_manifest() {
    let f = fixture().await;
    let manifests = commit_three(&f, 2000).await;
    let listed = f.repo.list_summaries().await.unwrap();
    let reads = f.counting.take();
    assert!(manifest_reads(&reads).is_empty(), "{reads:?}");
    assert_eq!(
        reads.iter().filter(|p| p.ends_with("/summary")).count(),
        3,
        "{reads:?}"
    );
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        IDS
    );
    for (s, m) in listed.iter().zip(&manifests) {
        assert_eq!(s.table_count, 2000);
        assert_eq!(s.file_count, 2000);
        assert_eq!(s.rows, m.total_rows());
        assert_eq!(s.raw_bytes, m.raw_bytes());
        assert_eq!(s.stored_bytes, m.stored_bytes());
        assert_eq!(s.consistent_point, m.consistent_point);
    }
    // The summary is small whatever the number of tables; the manifest is not.
    let summary = f.raw.get(&layout::summary_path(IDS[0])).await.unwrap();
    let manifest = f.raw.get(&layout::manifest_path(IDS[0])).await.unwrap();
    assert!(summary.len() < 4096, "{} bytes", summary.len());
    assert!(
        manifest.len() > 100 * summary.len(),
        "{} bytes",
        manifest.len()
    );

    // A backup whose manifest no longer reads still lists, from its summary...
    f.raw
        .put(
            &layout::manifest_path(IDS[1]),
            Bytes::from_static(b"not a manifest"),
        )
        .await
        .unwrap();
    let listed = f.repo.list_summaries().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(manifest_reads(&f.counting.take()).is_empty());
    // ... while what needs the manifest says it is damaged.
    let err = f.repo.load_manifest(IDS[1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
}

#[tokio::test]
async fn a_backup_without_a_readable_summary_is_summarised_from_its_manifest() {
    let f = fixture().await;
    commit_three(&f, 50).await;
    let before = f.repo.list_summaries().await.unwrap();
    f.counting.take();

    // Missing (a repository written before summaries, or a crash between the two writes).
    f.raw.delete(&layout::summary_path(IDS[0])).await.unwrap();
    // Damaged (its own checksum no longer matches).
    let path = layout::summary_path(IDS[2]);
    let mut bytes = f.raw.get(&path).await.unwrap().to_vec();
    let at = String::from_utf8_lossy(&bytes).find("\"rows\": ").unwrap() + 8;
    bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
    f.raw.put(&path, Bytes::from(bytes)).await.unwrap();

    let listed = f.repo.list_summaries().await.unwrap();
    assert_eq!(listed, before, "derived summaries equal the written ones");
    let reads = f.counting.take();
    let mut read = manifest_reads(&reads);
    read.sort();
    assert_eq!(
        read,
        vec![
            &layout::manifest_path(IDS[0]),
            &layout::manifest_path(IDS[2])
        ],
        "exactly the manifests without a readable summary"
    );
    assert_eq!(
        f.repo.check_summary(IDS[0]).await.unwrap().state,
        SummaryState::Missing
    );
    assert!(matches!(
        f.repo.check_summary(IDS[2]).await.unwrap().state,
        SummaryState::Damaged { .. }
    ));

    // A summary whose backup is gone is never listed.
    f.raw.delete(&layout::manifest_path(IDS[1])).await.unwrap();
    let ids: Vec<String> = f
        .repo
        .list_summaries()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![IDS[0], IDS[2]]);

    // cleanup: the leftover directory is debris, and the missing summaries are written.
    let lock = f.repo.lock("cleanup").await.unwrap();
    let removed = f.repo.clean_debris(&lock).await.unwrap();
    assert_eq!(removed, vec![IDS[1].to_string()]);
    assert!(f
        .raw
        .stat(&layout::summary_path(IDS[1]))
        .await
        .unwrap()
        .is_none());
    let planned = f.repo.write_missing_summaries(&lock, true).await.unwrap();
    assert_eq!(planned, vec![IDS[0], IDS[2]]);
    let written = f.repo.write_missing_summaries(&lock, false).await.unwrap();
    assert_eq!(written, planned);
    assert!(f
        .repo
        .write_missing_summaries(&lock, false)
        .await
        .unwrap()
        .is_empty());
    lock.release().await.unwrap();
    for id in [IDS[0], IDS[2]] {
        assert_eq!(
            f.repo.check_summary(id).await.unwrap().state,
            SummaryState::Matches
        );
    }
}

#[tokio::test]
async fn a_tampered_summary_is_named_and_decides_no_deletion() {
    let f = fixture().await;
    commit_three(&f, 10).await;
    // The oldest backup claims to be partial and tiny: a policy reading it would plan
    // differently.
    tamper(&f, IDS[0], |s| {
        s.rows = 1;
        s.scope = Some(BackupScope::filtered(&["x".into()], &[], &[], &[]));
    })
    .await;
    let check = f.repo.check_summary(IDS[0]).await.unwrap();
    assert_eq!(
        check.state,
        SummaryState::Differs {
            fields: vec!["rows".into(), "scope".into()]
        }
    );
    // The listing shows what the summary says (that is what verify is for)...
    let listed = f.repo.list_summaries().await.unwrap();
    assert!(listed[0].is_partial());
    // ... but the plan that expire carries out comes from the manifests.
    let spec = PolicySpec {
        keep_last: Some(1),
        recovery_window: Some("30d".into()),
        ..Default::default()
    };
    let policy = Policy::from_spec(&spec).unwrap();
    let now = OffsetDateTime::now_utc();
    let (preview, _) = retention::plan(&f.repo, &policy, now).await.unwrap();
    let (plan, segments, mismatches) = retention::plan_checked(&f.repo, &policy, now)
        .await
        .unwrap();
    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0].backup, IDS[0]);
    let keeps = |p: &retention::Plan| {
        p.backups
            .iter()
            .filter(|b| b.keep)
            .map(|b| b.id.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(
        keeps(&preview),
        keeps(&plan),
        "the tampered summary changes the preview"
    );
    let from_manifests: Vec<BackupSummary> = f
        .repo
        .check_summaries()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.derived)
        .collect();
    assert!(!from_manifests[0].is_partial());

    // Expire removes each removed backup's summary with it, and keeps the others'.
    let lock = f.repo.lock("expire").await.unwrap();
    let report = retention::execute(
        &f.repo,
        &lock,
        &plan,
        &segments,
        &holdfast::progress::NoProgress,
    )
    .await
    .unwrap();
    lock.release().await.unwrap();
    assert!(!report.backups_removed.is_empty());
    for id in IDS {
        let removed = report.backups_removed.iter().any(|r| r == id);
        for path in [layout::manifest_path(id), layout::summary_path(id)] {
            assert_eq!(
                f.raw.stat(&path).await.unwrap().is_none(),
                removed,
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn copy_writes_the_summaries_at_the_destination() {
    let f = fixture().await;
    commit_three(&f, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let dst_storage = open_url(&format!("file://{}/repo", dir.path().display())).unwrap();
    let dst = Repository::init(dst_storage.clone()).await.unwrap();
    // The chunk files the manifests list are not there: copy only what lists none.
    let lock = f.repo.lock("backup").await.unwrap();
    let empty = |id: &str| BackupManifest {
        tables: vec![],
        files: vec![],
        ..manifest(id, 0, Duration::hours(1), "0-1-99")
    };
    let ids = ["20260104T000000Z-0004", "20260105T000000Z-0005"];
    for id in ids {
        f.repo.commit(&lock, &empty(id)).await.unwrap();
    }
    lock.release().await.unwrap();
    let selection = holdfast::copy::CopySelection {
        backups: ids.iter().map(|s| s.to_string()).collect(),
        all: false,
        binlog: false,
    };
    let progress: Arc<dyn holdfast::progress::Progress> = Arc::new(holdfast::progress::NoProgress);
    let report = holdfast::copy::copy(&f.repo, &dst, &selection, progress.clone())
        .await
        .unwrap();
    assert_eq!(report.copied, ids);
    for id in ids {
        assert_eq!(
            dst.check_summary(id).await.unwrap().state,
            SummaryState::Matches
        );
    }
    // A backup the destination has without a summary (copied by an older holdfast) gets one.
    dst_storage
        .delete(&layout::summary_path(ids[0]))
        .await
        .unwrap();
    let report = holdfast::copy::copy(&f.repo, &dst, &selection, progress)
        .await
        .unwrap();
    assert_eq!(report.skipped, ids);
    assert_eq!(
        dst.check_summary(ids[0]).await.unwrap().state,
        SummaryState::Matches
    );
}

#[tokio::test]
async fn an_encrypted_summary_is_encrypted_and_bound_to_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let raw = open_url(&format!("file://{}/repo", dir.path().display())).unwrap();
    let user = DataKey::generate();
    let repo = Repository::init_with(
        raw.clone(),
        &[NewSlot::Recipient(user.recipient().to_string())],
    )
    .await
    .unwrap();
    let lock = repo.lock("backup").await.unwrap();
    for id in &IDS[..2] {
        repo.commit(&lock, &manifest(id, 5, Duration::hours(2), "0-1-3"))
            .await
            .unwrap();
    }
    lock.release().await.unwrap();
    let stored = raw.get(&layout::summary_path(IDS[0])).await.unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&stored).contains("table_count"));
    assert_eq!(
        repo.check_summary(IDS[0]).await.unwrap().state,
        SummaryState::Matches
    );
    // Another backup's genuine summary moved here is not authentic: damaged, and the listing
    // falls back to the manifest.
    raw.put(&layout::summary_path(IDS[1]), stored)
        .await
        .unwrap();
    let err = repo.load_summary(IDS[1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(matches!(
        repo.check_summary(IDS[1]).await.unwrap().state,
        SummaryState::Damaged { .. }
    ));
    let listed = repo.list_summaries().await.unwrap();
    assert_eq!(listed[1].id, IDS[1]);
}
