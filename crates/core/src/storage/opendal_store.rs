//! [`Storage`] over an Apache OpenDAL operator: one type for every backend.
//!
//! Two operators share the backend: `op` for whole-object requests (the [`RetryStorage`]
//! decorator above retries those), and `write_op` for streaming writes, with OpenDAL's own
//! timeout and retry layers inside it. A multipart upload's parts are retried there, part by
//! part, because a stream cannot be replayed from above without buffering all of it; the part
//! being sent is the only data held (bounded memory).
//!
//! On local disk, streamed reads and writes go around OpenDAL and the page cache, through
//! `local_file` (direct I/O); whole-object requests, listings and deletes still use OpenDAL.
//!
//! Incomplete uploads: on S3 the multipart uploads under the repository's prefix (through
//! [`S3Uploads`], signed requests OpenDAL has no API for); on local disk the files staged in
//! `.holdfast-tmp/` that were never renamed into place (a crash mid-write).
//!
//! [`RetryStorage`]: super::RetryStorage

use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, ErrorKind as OdKind, Operator};

use std::sync::Arc;

use super::local_file::{self, LocalFileWriter};
use super::location::Location;
use super::s3_uploads::{S3Target, S3Uploads, DEFAULT_PAGE_SIZE};
use super::{
    ByteStream, Capabilities, IncompleteUpload, ObjectMeta, ObjectWriter, Storage, StorageOptions,
    UploadKind,
};
use crate::{Error, ErrorKind, Result};

/// Part size of streaming writes and chunk size of reads: bounds memory per open stream.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Where local-disk writes are staged before their rename, inside the repository directory (a
/// rename must not cross file systems); never listed.
const LOCAL_TMP_DIR: &str = ".holdfast-tmp";
/// Parts of one object uploaded at once (memory: this many parts plus one being filled).
const PART_CONCURRENCY: usize = 2;

#[derive(Debug, Clone)]
pub struct OpendalStorage {
    op: Operator,
    write_op: Operator,
    location: String,
    capabilities: Capabilities,
    local: bool,
    /// The repository directory, for local disk.
    local_root: Option<std::path::PathBuf>,
    /// Listing and aborting incomplete multipart uploads, for S3.
    s3_uploads: Option<Arc<S3Uploads>>,
    /// Uploads per ListMultipartUploads request.
    upload_page_size: usize,
}

impl OpendalStorage {
    /// Local disk rooted at `root` (created on first write), default options.
    pub fn local(root: &str) -> Result<Self> {
        Self::open(
            &Location::File {
                root: root.to_string(),
            },
            &StorageOptions::default(),
        )
    }

    /// The backend named by `location`; credentials come from the environment.
    pub fn open(location: &Location, options: &StorageOptions) -> Result<Self> {
        let shown = location.to_string();
        // A bad configuration is a usage error; anything else (a local root that cannot be
        // created, say) is the storage failing.
        let config_err = |e: opendal::Error| match e.kind() {
            OdKind::ConfigInvalid => Error::with_source(
                ErrorKind::Usage,
                format!("cannot configure the storage backend for {shown}"),
                e,
            ),
            _ => Error::with_source(
                ErrorKind::Storage,
                format!("cannot open the repository storage at {shown}"),
                e,
            ),
        };
        let mut s3_uploads = None;
        let (op, conditional_writes_honoured) = match location {
            Location::File { root } => {
                // Writes go to a temporary file renamed into place on close: a reader never
                // sees a torn object (lock records, manifests), and `abort` can discard it.
                let tmp = format!("{}/{LOCAL_TMP_DIR}", root.trim_end_matches('/'));
                let b = services::Fs::default().root(root).atomic_write_dir(&tmp);
                (Operator::new(b).map_err(config_err)?.finish(), true)
            }
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                virtual_host,
                conditional_writes,
            } => {
                let mut b = services::S3::default()
                    .bucket(bucket)
                    .root(&root_of(prefix))
                    .region(region.as_deref().unwrap_or("us-east-1"));
                if let Some(e) = endpoint {
                    // A self-hosted store: no EC2 instance metadata to ask for credentials.
                    b = b.endpoint(e).disable_ec2_metadata();
                }
                if let Some(c) = &options.credentials {
                    b = b
                        .access_key_id(&c.access_key_id)
                        .secret_access_key(&c.secret_access_key);
                    if let Some(t) = &c.session_token {
                        b = b.session_token(t);
                    }
                }
                if *virtual_host {
                    b = b.enable_virtual_host_style();
                }
                // AWS S3 honours If-None-Match since 2024; S3-compatible stores vary (Garage
                // 2.5 ignores it, measured in crates/core/tests/storage_conformance.rs), so a
                // custom endpoint is assumed not to unless the URL says otherwise.
                let honoured = conditional_writes.unwrap_or(endpoint.is_none());
                s3_uploads = Some(Arc::new(S3Uploads::new(&S3Target {
                    bucket,
                    prefix,
                    endpoint: endpoint.as_deref(),
                    region: region.as_deref().unwrap_or("us-east-1"),
                    virtual_host: *virtual_host,
                    credentials: options.credentials.as_ref(),
                    location: shown.clone(),
                })?));
                (Operator::new(b).map_err(config_err)?.finish(), honoured)
            }
            Location::Oss {
                bucket,
                prefix,
                endpoint,
            } => {
                let mut b = services::Oss::default()
                    .bucket(bucket)
                    .root(&root_of(prefix));
                if let Some(e) = endpoint {
                    b = b.endpoint(e);
                }
                let from_env = |k: &str| std::env::var(k).ok();
                let (id, secret) = match &options.credentials {
                    Some(c) => (
                        Some(c.access_key_id.clone()),
                        Some(c.secret_access_key.clone()),
                    ),
                    None => (
                        from_env("ALIBABA_CLOUD_ACCESS_KEY_ID"),
                        from_env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
                    ),
                };
                if let Some(v) = id {
                    b = b.access_key_id(&v);
                }
                if let Some(v) = secret {
                    b = b.access_key_secret(&v);
                }
                (Operator::new(b).map_err(config_err)?.finish(), false)
            }
            Location::Gcs {
                bucket,
                prefix,
                endpoint,
            } => {
                let mut b = services::Gcs::default()
                    .bucket(bucket)
                    .root(&root_of(prefix));
                if let Some(e) = endpoint {
                    b = b.endpoint(e);
                }
                if let Ok(v) = std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
                    b = b.credential_path(&v);
                }
                (Operator::new(b).map_err(config_err)?.finish(), false)
            }
            Location::Azblob {
                container,
                prefix,
                account,
                endpoint,
            } => {
                let account = account
                    .clone()
                    .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT").ok())
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "{shown}: name the storage account with `?account=NAME` or \
                             AZURE_STORAGE_ACCOUNT"
                        ))
                    })?;
                let endpoint = endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
                let mut b = services::Azblob::default()
                    .container(container)
                    .root(&root_of(prefix))
                    .account_name(&account)
                    .endpoint(&endpoint);
                if let Ok(v) = std::env::var("AZURE_STORAGE_ACCOUNT_KEY") {
                    b = b.account_key(&v);
                }
                if let Ok(v) = std::env::var("AZURE_STORAGE_SAS_TOKEN") {
                    b = b.sas_token(&v);
                }
                (Operator::new(b).map_err(config_err)?.finish(), false)
            }
            Location::Sftp {
                user,
                host,
                port,
                root,
                key,
            } => {
                let endpoint = match port {
                    Some(p) => format!("ssh://{host}:{p}"),
                    None => format!("ssh://{host}"),
                };
                let mut b = services::Sftp::default().endpoint(&endpoint).root(root);
                if let Some(u) = user {
                    b = b.user(u);
                }
                if let Some(k) = key {
                    b = b.key(k);
                }
                (Operator::new(b).map_err(config_err)?.finish(), false)
            }
        };
        let full = op.info().full_capability();
        let capabilities = Capabilities {
            atomic_create: full.write_with_if_not_exists && conditional_writes_honoured,
            list_after_write: true,
            range_reads: full.read,
            multipart_uploads: full.write_can_multi && !matches!(location, Location::File { .. }),
            incomplete_uploads: s3_uploads.is_some() || matches!(location, Location::File { .. }),
        };
        let retry = &options.retry;
        let write_op = op
            .clone()
            .layer(TimeoutLayer::new().with_io_timeout(options.request_timeout))
            .layer(
                RetryLayer::new()
                    .with_max_times(retry.retries)
                    .with_min_delay(retry.min_delay)
                    .with_max_delay(retry.max_delay)
                    .with_factor(2.0)
                    .with_jitter(),
            );
        Ok(OpendalStorage {
            op,
            write_op,
            location: shown,
            capabilities,
            local: matches!(location, Location::File { .. }),
            local_root: match location {
                Location::File { root } => Some(std::path::PathBuf::from(root)),
                _ => None,
            },
            s3_uploads,
            upload_page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Lists incomplete S3 uploads `n` per request (so a test can exercise the pagination).
    pub fn with_upload_page_size(mut self, n: usize) -> Self {
        self.upload_page_size = n.max(1);
        self
    }
}

/// OpenDAL roots are absolute within the bucket.
fn root_of(prefix: &str) -> String {
    if prefix.is_empty() {
        "/".to_string()
    } else {
        format!("/{prefix}/")
    }
}

/// Maps an OpenDAL error to ours: the kind callers branch on, whether a retry may help, and a
/// message that says what to check.
fn map_err(e: opendal::Error, path: &str) -> Error {
    let kind = match e.kind() {
        OdKind::NotFound => ErrorKind::NotFound,
        OdKind::ConfigInvalid => ErrorKind::Usage,
        _ => ErrorKind::Storage,
    };
    let what = match e.kind() {
        OdKind::NotFound => format!("`{path}` does not exist"),
        OdKind::PermissionDenied => format!(
            "permission denied on `{path}`: check the store's credentials (for S3: \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) and their rights \
             on the bucket"
        ),
        OdKind::RateLimited => format!("the store is rate limiting requests on `{path}`"),
        _ => format!("storage operation on `{path}` failed"),
    };
    let transient = e.is_temporary() || e.kind() == OdKind::RateLimited;
    let err = Error::with_source(kind, what, e);
    if transient {
        err.transient()
    } else {
        err
    }
}

struct OpendalWriter {
    inner: opendal::Writer,
    path: String,
}

#[async_trait]
impl ObjectWriter for OpendalWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.inner
            .write(data)
            .await
            .map_err(|e| map_err(e, &self.path))
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        match self.inner.close().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_err(e, &self.path);
                // Leave no parts behind on the store.
                let _ = self.inner.abort().await;
                Err(err)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.inner.abort().await.map_err(|e| map_err(e, &self.path))
    }
}

#[async_trait]
impl Storage for OpendalStorage {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        let Some(root) = &self.local_root else {
            return self
                .op
                .write(path, data)
                .await
                .map(|_| ())
                .map_err(|e| map_err(e, path));
        };
        // OpenDAL flushes the file before renaming it into place; the names (the file's and
        // those of directories created for it) are flushed here, so `Ok` means durable.
        let parent = root.join(path).parent().map(Path::to_path_buf);
        let parent = parent.unwrap_or_else(|| root.clone());
        let io_err = |e: std::io::Error| {
            Error::with_source(ErrorKind::Storage, format!("cannot write `{path}`"), e)
        };
        let dir = parent.clone();
        let created = blocking(move || local_file::create_dirs(&dir))
            .await?
            .map_err(io_err)?;
        self.op
            .write(path, data)
            .await
            .map_err(|e| map_err(e, path))?;
        blocking(move || {
            let changed = std::iter::once(parent.as_path());
            local_file::sync_dirs(changed.chain(created.iter().map(PathBuf::as_path)))
        })
        .await?
        .map_err(io_err)
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        if let Some(root) = &self.local_root {
            return local_create(root, path, data).await;
        }
        if self.capabilities.atomic_create {
            return match self.op.write_with(path, data).if_not_exists(true).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == OdKind::ConditionNotMatch => Ok(false),
                Err(e) => Err(map_err(e, path)),
            };
        }
        if self.stat(path).await?.is_some() {
            return Ok(false);
        }
        self.put(path, data).await?;
        Ok(true)
    }

    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        match &self.local_root {
            Some(root) => Ok(Box::new(
                LocalFileWriter::create_unsynced(root, LOCAL_TMP_DIR, path).await?,
            )),
            // Object stores: durable on close.
            None => self.writer(path).await,
        }
    }

    async fn sync(&self) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        blocking(move || local_file::sync_filesystem(&root))
            .await?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Storage,
                    format!("cannot flush the repository to disk: {e}"),
                )
            })
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        if let Some(root) = &self.local_root {
            return Ok(Box::new(
                LocalFileWriter::create(root, LOCAL_TMP_DIR, path).await?,
            ));
        }
        let inner = self
            .write_op
            .writer_with(path)
            .chunk(PART_SIZE)
            .concurrent(PART_CONCURRENCY)
            .await
            .map_err(|e| map_err(e, path))?;
        Ok(Box::new(OpendalWriter {
            inner,
            path: path.to_string(),
        }))
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        if let Some(root) = &self.local_root {
            return local_file::read_all(root, path).await;
        }
        self.op
            .read(path)
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| map_err(e, path))
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        self.reader_range(path, 0..u64::MAX).await
    }

    async fn reader_range(&self, path: &str, range: Range<u64>) -> Result<ByteStream> {
        if let Some(root) = &self.local_root {
            return local_file::read_range(root, path, range).await;
        }
        let reader = self
            .op
            .reader_with(path)
            .chunk(PART_SIZE)
            .await
            .map_err(|e| map_err(e, path))?;
        let mut range = range;
        if range.end != u64::MAX {
            // A range past the end reads to the end (the store would report a short read).
            let size = self
                .stat(path)
                .await?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("`{path}` does not exist")))?
                .size;
            range.end = range.end.min(size);
            range.start = range.start.min(range.end);
        }
        let owned = path.to_string();
        let stream = if range.end == u64::MAX {
            reader.into_bytes_stream(range.start..).await
        } else {
            reader.into_bytes_stream(range).await
        }
        .map_err(|e| map_err(e, path))?
        .map_err(move |e| {
            // The stream's errors are io::Errors wrapping OpenDAL's; keep them retryable.
            let transient = match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<opendal::Error>())
            {
                Some(oe) => oe.is_temporary(),
                None => matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                ),
            };
            let err =
                Error::with_source(ErrorKind::Storage, format!("reading `{owned}` failed"), e);
            if transient {
                err.transient()
            } else {
                err
            }
        });
        Ok(stream.boxed())
    }

    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        match self.op.stat(path).await {
            Ok(meta) => Ok(Some(ObjectMeta {
                path: path.to_string(),
                size: meta.content_length(),
            })),
            Err(e) if e.kind() == OdKind::NotFound => Ok(None),
            Err(e) => Err(map_err(e, path)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let entries = match self.op.list_with(prefix).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == OdKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err(e, prefix)),
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !e.metadata().is_file() || e.path().starts_with(LOCAL_TMP_DIR) {
                continue;
            }
            // Local disk's listing carries no sizes; object stores' listings do.
            let size = match self.local {
                true => self.stat(e.path()).await?.map(|m| m.size),
                false => Some(e.metadata().content_length()),
            };
            if let Some(size) = size {
                out.push(ObjectMeta {
                    path: e.path().to_string(),
                    size,
                });
            }
        }
        Ok(out)
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let entries = match self.op.list_with(prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == OdKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err(e, prefix)),
        };
        let mut names: Vec<String> = entries
            .iter()
            .filter(|e| e.metadata().is_dir() && !e.path().starts_with(LOCAL_TMP_DIR))
            .filter_map(|e| e.path().strip_prefix(prefix)?.strip_suffix('/'))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == OdKind::NotFound => Ok(()),
            Err(e) => Err(map_err(e, path)),
        }
    }

    /// Up to 16 deletes in flight. Not OpenDAL's batched `delete_iter` (S3 DeleteObjects): in
    /// OpenDAL 0.55 its deleter counts more objects deleted than it queued against Garage (a
    /// subtraction overflow in `Deleter::flush`; in a release build `close` would then loop
    /// forever), found by the storage conformance suite's `delete_many` case.
    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        let deletes: Vec<_> = paths.iter().map(|path| self.delete(path)).collect();
        futures::stream::iter(deletes)
            .buffer_unordered(16)
            .try_collect::<()>()
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.op
            .remove_all(prefix)
            .await
            .map_err(|e| map_err(e, prefix))
    }

    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        if let Some(s3) = &self.s3_uploads {
            return s3.list(self.upload_page_size).await;
        }
        match &self.local_root {
            Some(root) => staged_files(root).await,
            None => Err(Error::usage(format!(
                "{} cannot list incomplete uploads; configure a lifecycle rule for incomplete \
                 multipart uploads on the bucket",
                self.location
            ))),
        }
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        match (upload.kind, &self.s3_uploads, &self.local_root) {
            (UploadKind::Multipart, Some(s3), _) => s3.abort(&upload.path, &upload.upload_id).await,
            (UploadKind::Staged, _, Some(root)) => remove_staged(root, &upload.upload_id).await,
            _ => Err(Error::usage(format!(
                "{} cannot abort the {:?} upload of `{}`",
                self.location, upload.kind, upload.path
            ))),
        }
    }
}

/// The files staged in `.holdfast-tmp/` (each the unfinished write of one object).
async fn staged_files(root: &std::path::Path) -> Result<Vec<IncompleteUpload>> {
    let dir = root.join(LOCAL_TMP_DIR);
    let io_err = |e: std::io::Error| {
        Error::with_source(
            ErrorKind::Storage,
            format!("cannot list the staged files in {}", dir.display()),
            e,
        )
    };
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io_err)? {
        let meta = match entry.metadata().await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // renamed meanwhile
            Err(e) => return Err(io_err(e)),
        };
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let modified = meta.modified().map_err(io_err)?;
        out.push(IncompleteUpload {
            kind: UploadKind::Staged,
            path: format!("{LOCAL_TMP_DIR}/{name}"),
            upload_id: name,
            initiated: time::OffsetDateTime::from(modified),
            parts: 1,
            bytes: meta.len(),
        });
    }
    Ok(out)
}

/// Removes one staged file; one already gone (renamed into place, removed) is fine.
async fn remove_staged(root: &std::path::Path, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::usage(format!(
            "`{name}` is not a staged file's name"
        )));
    }
    let path = root.join(LOCAL_TMP_DIR).join(name);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::with_source(
            ErrorKind::Storage,
            format!("cannot remove the staged file {}", path.display()),
            e,
        )),
    }
}

/// Atomic create-if-absent on local disk: the content goes to a staging file first, then a hard
/// link gives it its name, which fails if the name exists. Readers never see a partial file.
async fn local_create(root: &std::path::Path, path: &str, data: Bytes) -> Result<bool> {
    let io_err = |e: std::io::Error| {
        Error::with_source(ErrorKind::Storage, format!("cannot create `{path}`"), e)
    };
    let staging = root
        .join(LOCAL_TMP_DIR)
        .join(format!("create-{}", uuid::Uuid::new_v4()));
    let target = root.join(path);
    if let Some(parent) = staging.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_err)?;
    }
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_err)?;
    }
    tokio::fs::write(&staging, &data).await.map_err(io_err)?;
    let linked = tokio::fs::hard_link(&staging, &target).await;
    let _ = tokio::fs::remove_file(&staging).await;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(e)),
    }
}

/// Runs file-system work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("a file-system task failed: {e}")))
}

/// Used by tests that measure what a store really does with `If-None-Match`.
impl OpendalStorage {
    /// Sends a conditional create (`If-None-Match: *`) whatever the capabilities say, and
    /// reports whether the store accepted it. For measuring a store, not for locking.
    pub async fn raw_conditional_create(&self, path: &str, data: Bytes) -> Result<bool> {
        if let Some(root) = &self.local_root {
            return local_create(root, path, data).await;
        }
        match self.op.write_with(path, data).if_not_exists(true).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == OdKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(map_err(e, path)),
        }
    }
}
