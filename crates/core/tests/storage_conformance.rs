//! One storage conformance suite, instantiated per backend: local disk and a real S3-compatible
//! server (Garage, started by the test kit). Every backend runs every case through the full
//! decorator stack `storage::open` builds. A backend that cannot start fails its cases; nothing
//! is skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use holdfast::repo::RepoLock;
use holdfast::storage::{self, Credentials, Storage, StorageOptions, UploadKind};
use holdfast::ErrorKind;
use holdfast_testkit::GarageServer;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A backend under test and whatever keeps it alive.
struct Fixture {
    storage: Arc<dyn Storage>,
    local: bool,
    _dir: Option<tempfile::TempDir>,
    _garage: Option<GarageServer>,
}

fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/repo", dir.path().display());
    Fixture {
        storage: storage::open(&url, &StorageOptions::default()).unwrap(),
        local: true,
        _dir: Some(dir),
        _garage: None,
    }
}

fn garage() -> Fixture {
    let garage = GarageServer::start();
    let storage = storage::open(&garage.repo_url("conformance"), &garage_options(&garage)).unwrap();
    Fixture {
        storage,
        local: false,
        _dir: None,
        _garage: Some(garage),
    }
}

fn garage_options(garage: &GarageServer) -> StorageOptions {
    StorageOptions {
        credentials: Some(Credentials {
            access_key_id: garage.access_key_id().to_string(),
            secret_access_key: garage.secret_access_key().to_string(),
            session_token: None,
        }),
        ..StorageOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

async fn read_all(s: &dyn Storage, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = s.reader(path).await.unwrap();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn read_range(s: &dyn Storage, path: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = s.reader_range(path, range).await.unwrap();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn listed(s: &dyn Storage, prefix: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = s
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.path, o.size))
        .collect();
    v.sort();
    v
}

mod cases {
    use super::*;

    pub async fn put_get(f: &Fixture) {
        let s = &*f.storage;
        s.put("a/b/one", Bytes::from_static(b"first"))
            .await
            .unwrap();
        assert_eq!(&s.get("a/b/one").await.unwrap()[..], b"first");
        s.put("a/b/one", Bytes::from_static(b"second, longer"))
            .await
            .unwrap();
        assert_eq!(&s.get("a/b/one").await.unwrap()[..], b"second, longer");
        s.put("empty", Bytes::new()).await.unwrap();
        assert_eq!(s.get("empty").await.unwrap().len(), 0);
        assert_eq!(s.stat("a/b/one").await.unwrap().unwrap().size, 14);
        assert_eq!(read_all(s, "a/b/one").await, b"second, longer");
        // Names holdfast uses: percent-encoded table names, dots, dashes.
        let odd = "backups/20261121T000000Z-0001/data/my%20db/t%60x/00000.tsv.zst";
        s.put(odd, Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(&s.get(odd).await.unwrap()[..], b"x");
    }

    pub async fn missing_object(f: &Fixture) {
        let s = &*f.storage;
        let err = s.get("nope/missing").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(
            !err.is_transient(),
            "a missing object is not worth retrying"
        );
        assert!(s.stat("nope/missing").await.unwrap().is_none());
        let err = match s.reader("nope/missing").await {
            Err(e) => e,
            Ok(mut stream) => stream.next().await.unwrap().unwrap_err(),
        };
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        s.delete("nope/missing").await.unwrap();
        assert!(s.list("nope/").await.unwrap().is_empty());
    }

    pub async fn list_and_delete(f: &Fixture) {
        let s = &*f.storage;
        for (p, n) in [("d/x/1", 1), ("d/x/2", 22), ("d/y/3", 333), ("dz/4", 4)] {
            s.put(p, Bytes::from(vec![7u8; n])).await.unwrap();
        }
        assert_eq!(
            listed(s, "d/").await,
            vec![
                ("d/x/1".to_string(), 1),
                ("d/x/2".to_string(), 22),
                ("d/y/3".to_string(), 333)
            ]
        );
        assert_eq!(listed(s, "d/x/").await.len(), 2);
        assert!(listed(s, "d/nothing/").await.is_empty());
        assert_eq!(s.list_dirs("d/").await.unwrap(), ["x", "y"]);
        assert!(
            s.list_dirs("d/x/").await.unwrap().is_empty(),
            "files are not directories"
        );
        assert!(s.list_dirs("d/nothing/").await.unwrap().is_empty());
        let top = s.list_dirs("").await.unwrap();
        assert!(
            top.contains(&"d".to_string()) && top.contains(&"dz".to_string()),
            "{top:?}"
        );
        assert!(!top.iter().any(|d| d.starts_with(".holdfast")), "{top:?}");
        s.delete("d/x/1").await.unwrap();
        assert_eq!(listed(s, "d/x/").await, vec![("d/x/2".to_string(), 22)]);
        s.delete_prefix("d/").await.unwrap();
        assert!(listed(s, "d/").await.is_empty());
        assert_eq!(listed(s, "dz/").await, vec![("dz/4".to_string(), 4)]);
    }

    /// `delete_many` removes every object named, across more than one batch (S3 DeleteObjects
    /// takes 1,000 keys), treats a missing one as deleted, and leaves the rest alone.
    pub async fn delete_many(f: &Fixture) {
        let s = &*f.storage;
        let paths: Vec<String> = (0..1005).map(|i| format!("many/{i:05}")).collect();
        futures::stream::iter(paths.iter())
            .map(|p| s.put(p, Bytes::from_static(b"x")))
            .buffer_unordered(32)
            .for_each(|r| async move { r.unwrap() })
            .await;
        s.put("keep/1", Bytes::from_static(b"k")).await.unwrap();
        let mut doomed = paths.clone();
        doomed.push("many/missing".to_string());
        s.delete_many(&doomed).await.unwrap();
        assert!(listed(s, "many/").await.is_empty());
        assert_eq!(listed(s, "keep/").await, vec![("keep/1".to_string(), 1)]);
        s.delete_many(&[]).await.unwrap();
    }

    pub async fn range_reads(f: &Fixture) {
        let s = &*f.storage;
        let data = random_bytes(3 * 1024 * 1024 + 17);
        s.put("r/obj", Bytes::from(data.clone())).await.unwrap();
        let n = data.len() as u64;
        for range in [
            0..10,
            5..6,
            1000..2_000_000,
            n - 17..n,
            n - 5..n + 100,
            0..n,
        ] {
            let want = &data[range.start as usize..(range.end.min(n)) as usize];
            assert_eq!(
                read_range(s, "r/obj", range.clone()).await,
                want,
                "{range:?}"
            );
        }
        assert_eq!(read_range(s, "r/obj", 7..u64::MAX).await, &data[7..]);
    }

    pub async fn large_multipart(f: &Fixture) {
        let s = &*f.storage;
        // 40 MiB in 1 MiB writes: several parts; memory stays at a few parts.
        let mut w = s.writer("big/object").await.unwrap();
        let mut hash = Sha256::new();
        let mut total = 0usize;
        for _ in 0..40 {
            let block = random_bytes(1024 * 1024);
            hash.update(&block);
            total += block.len();
            w.write(Bytes::from(block)).await.unwrap();
        }
        if !f.local {
            assert!(
                s.stat("big/object").await.unwrap().is_none(),
                "an object store shows nothing before close"
            );
        }
        w.close().await.unwrap();
        assert_eq!(
            s.stat("big/object").await.unwrap().unwrap().size,
            total as u64
        );
        let back = read_all(s, "big/object").await;
        assert_eq!(back.len(), total);
        assert_eq!(Sha256::digest(&back), hash.finalize());
        // A small object through the writer is a single request.
        let mut w = s.writer("big/small").await.unwrap();
        w.write(Bytes::from_static(b"tiny")).await.unwrap();
        w.close().await.unwrap();
        assert_eq!(&s.get("big/small").await.unwrap()[..], b"tiny");
    }

    pub async fn interrupted_upload(f: &Fixture) {
        let s = &*f.storage;
        // Aborted after several parts went up.
        let mut w = s.writer("up/aborted").await.unwrap();
        for _ in 0..20 {
            w.write(Bytes::from(random_bytes(1024 * 1024)))
                .await
                .unwrap();
        }
        w.abort().await.unwrap();
        assert!(s.stat("up/aborted").await.unwrap().is_none());
        // Dropped without close: what a crash mid-upload does. 48 MiB in 8 MiB parts, at most
        // two in flight (and one held back until the next arrives, in case it is the last): by
        // the fourth part the first is stored. Parts in flight at the drop are cut off.
        let mut w = s.writer("up/dropped").await.unwrap();
        for _ in 0..48 {
            w.write(Bytes::from(random_bytes(1024 * 1024)))
                .await
                .unwrap();
        }
        drop(w);
        if f.local {
            // Local disk may keep a partial file: deletable debris, never a committed object.
            s.delete("up/dropped").await.unwrap();
        }
        assert!(
            listed(s, "up/").await.is_empty(),
            "an interrupted upload left something visible: {:?}",
            listed(s, "up/").await
        );

        // Invisible to listing, but not gone: the store lists the dropped upload (S3's
        // ListMultipartUploads, local disk's staged file), never the aborted one, and aborting
        // it leaves nothing.
        assert!(s.capabilities().incomplete_uploads);
        let found = s.incomplete_uploads().await.unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        let u = &found[0];
        if f.local {
            assert_eq!(u.kind, UploadKind::Staged);
            assert!(u.path.starts_with(".holdfast-tmp/"), "{u:?}");
        } else {
            assert_eq!(u.kind, UploadKind::Multipart);
            assert_eq!(u.path, "up/dropped");
            assert!(u.parts >= 1, "{u:?}");
        }
        // At least the first part (8 MiB) was stored before the writer was dropped.
        assert!(u.bytes >= 8 << 20, "{u:?}");
        let age = time::OffsetDateTime::now_utc() - u.initiated;
        assert!(
            age > -time::Duration::minutes(1) && age < time::Duration::minutes(5),
            "started {age} ago? {u:?}"
        );
        s.abort_upload(u).await.unwrap();
        assert!(s.incomplete_uploads().await.unwrap().is_empty());
        // Idempotent: aborting it again succeeds.
        s.abort_upload(u).await.unwrap();
        assert!(listed(s, "").await.is_empty());
    }

    pub async fn put_if_absent(f: &Fixture) {
        let s = &*f.storage;
        assert!(s
            .put_if_absent("c/once", Bytes::from_static(b"1"))
            .await
            .unwrap());
        assert!(!s
            .put_if_absent("c/once", Bytes::from_static(b"2"))
            .await
            .unwrap());
        assert_eq!(&s.get("c/once").await.unwrap()[..], b"1");
    }

    /// Eight contenders, each taking the exclusive lock repeatedly: never two holders at once,
    /// and everyone gets its turn.
    pub async fn concurrent_lockers(f: &Fixture) {
        let holders = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let storage = f.storage.clone();
            let holders = holders.clone();
            let max_seen = max_seen.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                loop {
                    match RepoLock::acquire(storage.clone(), &format!("contender {i}")).await {
                        Ok(lock) => {
                            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            max_seen.fetch_max(now, Ordering::SeqCst);
                            lock.ensure_held().await.unwrap();
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            holders.fetch_sub(1, Ordering::SeqCst);
                            lock.release().await.unwrap();
                            return;
                        }
                        Err(e) if e.kind() == ErrorKind::Locked => {
                            assert!(tokio::time::Instant::now() < deadline, "starved: {e}");
                            let pause = 20 + rand::random::<u64>() % 80;
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                        Err(e) => panic!("acquire failed: {e}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max_seen.load(Ordering::SeqCst), 1, "two holders at once");
        assert!(
            listed(&*f.storage, "locks/").await.is_empty(),
            "released locks leave nothing behind"
        );
    }

    /// A held lock is reported with its holder; a stale one (expired) is taken over.
    pub async fn lock_reports_holder_and_expires(f: &Fixture) {
        let lock = RepoLock::acquire(f.storage.clone(), "first").await.unwrap();
        let err = RepoLock::acquire(f.storage.clone(), "second")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
        assert!(err.message().contains("first"), "{err}");
        // Make our record look expired (a holder that crashed on another host long ago).
        let mut record = lock.record().clone();
        record.expires = record.acquired - time::Duration::seconds(1);
        record.host = "gone-host".into();
        let body = serde_json::to_vec(&record).unwrap();
        f.storage.put(lock.path(), Bytes::from(body)).await.unwrap();
        let taken = RepoLock::acquire(f.storage.clone(), "third").await.unwrap();
        assert!(
            lock.ensure_held().await.is_err(),
            "the old holder must notice"
        );
        taken.release().await.unwrap();
    }
}

macro_rules! conformance {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use super::*;

            fn run<F: std::future::Future<Output = ()>>(case: impl FnOnce(Arc<Fixture>) -> F) {
                let fixture = Arc::new($fixture());
                runtime().block_on(case(fixture));
            }

            #[test]
            fn put_get() {
                run(|f| async move { cases::put_get(&f).await });
            }
            #[test]
            fn missing_object() {
                run(|f| async move { cases::missing_object(&f).await });
            }
            #[test]
            fn list_and_delete() {
                run(|f| async move { cases::list_and_delete(&f).await });
            }
            #[test]
            fn delete_many() {
                run(|f| async move { cases::delete_many(&f).await });
            }
            #[test]
            fn range_reads() {
                run(|f| async move { cases::range_reads(&f).await });
            }
            #[test]
            fn large_multipart() {
                run(|f| async move { cases::large_multipart(&f).await });
            }
            #[test]
            fn interrupted_upload() {
                run(|f| async move { cases::interrupted_upload(&f).await });
            }
            #[test]
            fn put_if_absent() {
                run(|f| async move { cases::put_if_absent(&f).await });
            }
            #[test]
            fn concurrent_lockers() {
                run(|f| async move { cases::concurrent_lockers(&f).await });
            }
            #[test]
            fn lock_reports_holder_and_expires() {
                run(|f| async move { cases::lock_reports_holder_and_expires(&f).await });
            }
        }
    };
}

conformance!(local_disk, local);
conformance!(garage_s3, garage);

/// What each store does with `If-None-Match: *`, measured: local disk honours it, Garage 2.5
/// accepts the second create too. The S3 backend must therefore not claim atomic creates for a
/// custom endpoint, and the lock takes the contended protocol there.
#[test]
fn conditional_create_is_measured_not_assumed() {
    let garage = GarageServer::start();
    runtime().block_on(async {
        let opts = garage_options(&garage);
        let loc = storage::Location::parse(&garage.repo_url("measure")).unwrap();
        let raw = storage::OpendalStorage::open(&loc, &opts).unwrap();
        assert!(raw
            .raw_conditional_create("probe", Bytes::from_static(b"1"))
            .await
            .unwrap());
        let second = raw
            .raw_conditional_create("probe", Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert!(
            second,
            "Garage now honours If-None-Match: revisit the s3 default for custom endpoints"
        );
        assert_eq!(
            &raw.get("probe").await.unwrap()[..],
            b"2",
            "the second create overwrote"
        );
        assert!(!raw.capabilities().atomic_create);

        let dir = tempfile::tempdir().unwrap();
        let local = storage::OpendalStorage::local(&dir.path().display().to_string()).unwrap();
        assert!(local.capabilities().atomic_create);
        assert!(local
            .raw_conditional_create("p", Bytes::from_static(b"1"))
            .await
            .unwrap());
        assert!(!local
            .raw_conditional_create("p", Bytes::from_static(b"2"))
            .await
            .unwrap());
    });
}

/// ListMultipartUploads is paginated (by key and upload id: two uploads of one key straddle a
/// page boundary) and sees only the repository's prefix; every upload found can be aborted.
#[test]
fn incomplete_uploads_are_paged_and_confined_to_the_prefix() {
    let garage = GarageServer::start();
    runtime().block_on(async {
        let opts = garage_options(&garage);
        let open = |prefix: &str| {
            let loc = storage::Location::parse(&garage.repo_url(prefix)).unwrap();
            storage::OpendalStorage::open(&loc, &opts).unwrap()
        };
        let repo = open("paged/repo").with_upload_page_size(2);
        // A neighbour whose name starts like ours: `paged/repo2/` is not under `paged/repo/`.
        let neighbour = open("paged/repo2");
        let start = |s: storage::OpendalStorage, path: &'static str| async move {
            let mut w = s.writer(path).await.unwrap();
            // A writer keeps its last full part back (a one-part object is a single PUT): the
            // upload is created when a third part begins.
            for _ in 0..17 {
                w.write(Bytes::from(random_bytes(1 << 20))).await.unwrap();
            }
            drop(w);
        };
        for path in ["a/one", "b/two", "b/two", "c/three", "d/four"] {
            start(repo.clone(), path).await;
        }
        start(neighbour.clone(), "a/one").await;
        let found = repo.incomplete_uploads().await.unwrap();
        let mut paths: Vec<&str> = found.iter().map(|u| u.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["a/one", "b/two", "b/two", "c/three", "d/four"]);
        let ids: std::collections::HashSet<&str> =
            found.iter().map(|u| u.upload_id.as_str()).collect();
        assert_eq!(ids.len(), 5, "an upload was listed twice: {found:#?}");
        // Three pages of two: the second and third asked to start after a marker.
        let log = garage.log();
        let continued = log
            .lines()
            .filter(|l| l.contains("uploads") && l.contains("key-marker="))
            .count();
        assert!(continued >= 2, "the listing was not paginated:\n{log}");
        for u in &found {
            repo.abort_upload(u).await.unwrap();
        }
        assert!(repo.incomplete_uploads().await.unwrap().is_empty());
        let theirs = neighbour.incomplete_uploads().await.unwrap();
        assert_eq!(theirs.len(), 1, "{theirs:#?}");
        assert_eq!(theirs[0].path, "a/one");
        neighbour.abort_upload(&theirs[0]).await.unwrap();
    });
}

/// The contended lock protocol on local disk too (a store that claims no conditional writes).
#[test]
fn contended_protocol_on_local_disk() {
    #[derive(Debug)]
    struct NoConditional(Arc<dyn Storage>);
    #[async_trait::async_trait]
    impl Storage for NoConditional {
        fn capabilities(&self) -> storage::Capabilities {
            storage::Capabilities {
                atomic_create: false,
                ..self.0.capabilities()
            }
        }
        fn location(&self) -> String {
            self.0.location()
        }
        async fn put(&self, p: &str, d: Bytes) -> holdfast::Result<()> {
            self.0.put(p, d).await
        }
        async fn put_if_absent(&self, p: &str, d: Bytes) -> holdfast::Result<bool> {
            if self.0.stat(p).await?.is_some() {
                return Ok(false);
            }
            self.0.put(p, d).await.map(|_| true)
        }
        async fn writer(&self, p: &str) -> holdfast::Result<Box<dyn storage::ObjectWriter>> {
            self.0.writer(p).await
        }
        async fn get(&self, p: &str) -> holdfast::Result<Bytes> {
            self.0.get(p).await
        }
        async fn reader(&self, p: &str) -> holdfast::Result<storage::ByteStream> {
            self.0.reader(p).await
        }
        async fn stat(&self, p: &str) -> holdfast::Result<Option<storage::ObjectMeta>> {
            self.0.stat(p).await
        }
        async fn list(&self, p: &str) -> holdfast::Result<Vec<storage::ObjectMeta>> {
            self.0.list(p).await
        }
        async fn delete(&self, p: &str) -> holdfast::Result<()> {
            self.0.delete(p).await
        }
        async fn delete_prefix(&self, p: &str) -> holdfast::Result<()> {
            self.0.delete_prefix(p).await
        }
    }
    let base = local();
    let f = Fixture {
        storage: Arc::new(NoConditional(base.storage.clone())),
        local: true,
        _dir: None,
        _garage: None,
    };
    runtime().block_on(async {
        cases::concurrent_lockers(&f).await;
        cases::lock_reports_holder_and_expires(&f).await;
        // The default (read-and-skip) range read of a backend that does not override it.
        cases::range_reads(&f).await;
    });
    drop(base);
}
