//! The encrypting storage decorator over real local-disk storage: streaming round trips, and
//! every way a stored file can be wrong (flipped, truncated, forged with the public recipient,
//! moved to another path, plaintext) is an integrity error naming the file.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use holdfast::repo::keys::DataKey;
use holdfast::storage::{EncryptedStorage, OpendalStorage, Storage};
use holdfast::ErrorKind;

fn setup() -> (
    tempfile::TempDir,
    Arc<dyn Storage>,
    EncryptedStorage,
    Arc<DataKey>,
) {
    let dir = tempfile::tempdir().unwrap();
    let raw: Arc<dyn Storage> =
        Arc::new(OpendalStorage::local(&dir.path().to_string_lossy()).unwrap());
    let key = Arc::new(DataKey::generate());
    let enc = EncryptedStorage::new(raw.clone(), key.clone(), &["holdfast.repo"]);
    (dir, raw, enc, key)
}

async fn read_stream(s: &dyn Storage, path: &str) -> holdfast::Result<Vec<u8>> {
    let mut stream = s.reader(path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Pseudo-random bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn streams_round_trip_and_are_age_files() {
    let (_dir, raw, enc, _key) = setup();
    let data = noise(9 * 1024 * 1024 + 12345);
    let mut w = enc
        .writer("backups/x/data/a/b/00000.tsv.zst")
        .await
        .unwrap();
    for piece in data.chunks(700_001) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    w.close().await.unwrap();
    let stored = raw.get("backups/x/data/a/b/00000.tsv.zst").await.unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert!(stored.len() > data.len(), "age adds a header and tags");
    assert_eq!(
        read_stream(&enc, "backups/x/data/a/b/00000.tsv.zst")
            .await
            .unwrap(),
        data
    );
    enc.put("backups/x/manifest", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(&enc.get("backups/x/manifest").await.unwrap()[..], b"{}");
    // Empty objects and clear paths.
    enc.put("empty", Bytes::new()).await.unwrap();
    assert!(enc.get("empty").await.unwrap().is_empty());
    enc.put("holdfast.repo", Bytes::from_static(b"clear"))
        .await
        .unwrap();
    assert_eq!(&raw.get("holdfast.repo").await.unwrap()[..], b"clear");
    // A missing object stays NotFound through the decorator.
    assert_eq!(
        enc.get("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        read_stream(&enc, "nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn damaged_forged_moved_or_plain_files_are_refused_by_name() {
    let (_dir, raw, enc, key) = setup();
    let data = noise(300_000);
    enc.put("backups/a/manifest", Bytes::from(data.clone()))
        .await
        .unwrap();
    let genuine = raw.get("backups/a/manifest").await.unwrap();

    let expect_refused = |what: &'static str, path: &'static str| {
        let enc = enc.clone();
        async move {
            for result in [
                enc.get(path).await.map(|b| b.to_vec()),
                read_stream(&enc, path).await,
            ] {
                let err = result.expect_err(what);
                assert_eq!(err.kind(), ErrorKind::Integrity, "{what}: {err}");
                assert!(err.to_string().contains(path), "{what}: {err}");
            }
        }
    };

    // A flipped byte in the payload, and a truncation.
    let mut flipped = genuine.to_vec();
    let at = flipped.len() - 1000;
    flipped[at] ^= 1;
    raw.put("backups/a/manifest", Bytes::from(flipped))
        .await
        .unwrap();
    expect_refused("flipped byte", "backups/a/manifest").await;
    raw.put(
        "backups/a/manifest",
        genuine.slice(..genuine.len() - 70_000),
    )
    .await
    .unwrap();
    expect_refused("truncated", "backups/a/manifest").await;

    // Forged: a valid age file to the data key's public recipient, but without holdfast's
    // authentication stanza.
    let forged = age::encrypt(key.recipient(), b"{\"forged\":true}").unwrap();
    raw.put("backups/a/manifest", Bytes::from(forged))
        .await
        .unwrap();
    expect_refused("forged with the recipient", "backups/a/manifest").await;
    let err = enc.get("backups/a/manifest").await.unwrap_err();
    assert!(err.to_string().contains("not authentic"), "{err}");

    // Moved: a genuine file of another path.
    raw.put("backups/b/manifest", genuine.clone())
        .await
        .unwrap();
    expect_refused("moved", "backups/b/manifest").await;

    // Encrypted to another key, or not encrypted at all.
    let other = DataKey::generate();
    let foreign = age::encrypt(other.recipient(), b"x").unwrap();
    raw.put("backups/c/manifest", Bytes::from(foreign))
        .await
        .unwrap();
    expect_refused("another key", "backups/c/manifest").await;
    raw.put("backups/d/manifest", Bytes::from_static(b"{\"plain\":1}"))
        .await
        .unwrap();
    expect_refused("plaintext", "backups/d/manifest").await;

    // The genuine file still reads.
    raw.put("backups/a/manifest", genuine).await.unwrap();
    assert_eq!(enc.get("backups/a/manifest").await.unwrap().to_vec(), data);
}
