//! Repository, lock, commit protocol and pipeline on local disk (no database server needed).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use holdfast::manifest::{BackupManifest, ConsistentPoint, ServerInfo, MANIFEST_FORMAT};
use holdfast::pipeline::{decompress_stream, read_verified, HashingSink, ZstdSink};
use holdfast::repo::{layout, Repository};
use holdfast::storage::{open_url, Storage};
use holdfast::ErrorKind;

fn temp_repo() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_url(&format!("file://{}/repo", dir.path().display())).unwrap();
    (dir, storage)
}

fn manifest(id: &str) -> BackupManifest {
    let now = time::OffsetDateTime::now_utc();
    BackupManifest {
        format: MANIFEST_FORMAT,
        id: id.into(),
        engine: "logical".into(),
        tool_version: "test".into(),
        server: ServerInfo {
            flavor: "mariadb".into(),
            version: "10.11".into(),
            server_id: 1,
            server_uuid: String::new(),
            hostname: "h".into(),
        },
        started: now,
        finished: now,
        consistent_point: ConsistentPoint {
            time: now,
            ..Default::default()
        },
        lock_held_ms: 1,
        compression: "zstd".into(),
        schema_file: "schema.json.zst".into(),
        tables: vec![],
        files: vec![],
        includes_users: false,
        physical: None,
        scope: None,
    }
}

#[tokio::test]
async fn init_open_and_refusals() {
    let (_dir, storage) = temp_repo();
    let missing = Repository::open(storage.clone()).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::RepoMissing);
    let repo = Repository::init(storage.clone()).await.unwrap();
    let again = Repository::init(storage.clone()).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::RepoInvalid);
    let opened = Repository::open(storage.clone()).await.unwrap();
    assert_eq!(opened.config(), repo.config());
}

#[tokio::test]
async fn lock_is_exclusive_and_released() {
    let (_dir, storage) = temp_repo();
    let repo = Repository::init(storage).await.unwrap();
    let held = repo.lock("backup").await.unwrap();
    let second = repo.lock("backup").await.unwrap_err();
    assert_eq!(second.kind(), ErrorKind::Locked);
    held.release().await.unwrap();
    repo.lock("backup").await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn only_committed_backups_are_listed_and_debris_is_removed() {
    let (_dir, storage) = temp_repo();
    let repo = Repository::init(storage.clone()).await.unwrap();
    // An interrupted backup: data, no manifest.
    storage
        .put(
            &layout::backup_file("20260101T000000Z-dead", "data/a/b/00000.tsv.zst"),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    assert!(repo.list_backups().await.unwrap().is_empty());

    let lock = repo.lock("backup").await.unwrap();
    repo.commit(&lock, &manifest("20260102T000000Z-0001"))
        .await
        .unwrap();
    let removed = repo.clean_debris(&lock).await.unwrap();
    assert_eq!(removed, vec!["20260101T000000Z-dead".to_string()]);
    lock.release().await.unwrap();

    let listed: Vec<String> = repo
        .list_backups()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, vec!["20260102T000000Z-0001".to_string()]);
    assert_eq!(
        repo.resolve("latest").await.unwrap().id,
        "20260102T000000Z-0001"
    );
    assert!(storage
        .list("backups/20260101T000000Z-dead/")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn pipeline_round_trip_and_corruption_detection() {
    let (_dir, storage) = temp_repo();
    let data: Vec<u8> = (0..3_000_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let sink = HashingSink::create(&*storage, "f.zst", "f.zst")
        .await
        .unwrap();
    let mut z = ZstdSink::new(sink, 1).unwrap();
    for part in data.chunks(100_000) {
        z.write(part).await.unwrap();
    }
    let entry = z.finish().await.unwrap();
    assert!(entry.size < data.len() as u64);

    let read = |storage: Arc<dyn Storage>, entry: holdfast::manifest::FileEntry| async move {
        let s = read_verified(&*storage, "f.zst", &entry).await?;
        let mut out = Vec::new();
        let mut d = decompress_stream(s, "f.zst")?;
        while let Some(c) = d.next().await {
            out.extend_from_slice(&c?);
        }
        Ok::<_, holdfast::Error>(out)
    };
    assert_eq!(read(storage.clone(), entry.clone()).await.unwrap(), data);

    // Flip one byte: the checksum names the file.
    let mut stored = storage.get("f.zst").await.unwrap().to_vec();
    let n = stored.len();
    stored[n - 10] ^= 0x40;
    storage.put("f.zst", Bytes::from(stored)).await.unwrap();
    let err = read(storage.clone(), entry.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("f.zst"), "{err}");

    // Missing file.
    storage.delete("f.zst").await.unwrap();
    let err = read(storage.clone(), entry).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("missing"), "{err}");
}
