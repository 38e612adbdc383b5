//! The storage trait every repository backend implements, the backends, and the decorators
//! that wrap them.
//!
//! Paths are `/`-separated, relative to the repository root, never starting with `/`.
//! Backends are driven through [`Storage`]; what a backend really guarantees is stated by its
//! [`Capabilities`], never assumed (an object store has no directories and no atomic rename, and
//! some S3-compatible stores silently ignore conditional writes).
//!
//! - [`OpendalStorage`]: every backend, through Apache OpenDAL: local disk (`file://`), S3 and
//!   S3-compatible stores (`s3://`), Alibaba OSS (`oss://`), Google Cloud Storage (`gcs://`),
//!   Azure Blob (`azblob://`) and SFTP (`sftp://`). See [`location`] for the URL syntax. On
//!   local disk its streamed reads and writes bypass the page cache (`local_file`, direct I/O).
//! - Decorators, each one concern, stacked by [`open`]: [`RetryStorage`] (exponential backoff with
//!   jitter, transient errors only), [`ThrottleStorage`] (`--max-rate`), [`LimitStorage`]
//!   (concurrent requests) and [`TimeoutStorage`] (per request).
//! - [`IncompleteUpload`]: a write that was started and never completed nor aborted (an S3
//!   multipart upload cut off by a killed process, a local staged file left by a crash),
//!   invisible to [`Storage::list`]; listed and aborted where `incomplete_uploads` holds.

pub mod encrypted;
mod limit;
mod local_file;
pub mod location;
mod opendal_store;
mod retry;
mod s3_uploads;
mod throttle;
mod timeout;

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::Result;

pub use encrypted::EncryptedStorage;
pub use limit::LimitStorage;
pub use location::Location;
pub use opendal_store::OpendalStorage;
pub use retry::{RetryPolicy, RetryStorage};
pub use throttle::ThrottleStorage;
pub use timeout::TimeoutStorage;

/// A stream of byte chunks read from storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// What a backend really does. Callers branch on these instead of assuming a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `put_if_absent` is atomic: of two concurrent callers exactly one succeeds. False on
    /// stores that ignore `If-None-Match` (Garage), where `put_if_absent` is check-then-write.
    pub atomic_create: bool,
    /// A completed write is visible to `list` immediately (the lock protocol relies on it).
    pub list_after_write: bool,
    /// `reader_range` fetches only the requested bytes (otherwise it reads and skips).
    pub range_reads: bool,
    /// Streaming writes are uploaded in parts: an interrupted write leaves invisible parts on
    /// the store until they are aborted (a writer aborts its own on failure; those of a killed
    /// process are found with [`Storage::incomplete_uploads`] where `incomplete_uploads`
    /// holds, and by a bucket lifecycle rule elsewhere).
    pub multipart_uploads: bool,
    /// [`Storage::incomplete_uploads`] and [`Storage::abort_upload`] work: S3 lists its
    /// incomplete multipart uploads (ListMultipartUploads), local disk its staged files.
    /// False where holdfast cannot list them (OSS, GCS, Azure, SFTP): a bucket lifecycle rule
    /// must reclaim them there.
    pub incomplete_uploads: bool,
}

/// What kind of incomplete write an [`IncompleteUpload`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    /// An S3 multipart upload: parts stored (and billed) but no object.
    Multipart,
    /// A local-disk write staged in `.holdfast-tmp/` and never renamed into place.
    Staged,
}

/// A write that was started and never completed nor aborted. It is invisible to
/// [`Storage::list`] and holds storage until [`Storage::abort_upload`] removes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IncompleteUpload {
    pub kind: UploadKind,
    /// The repository path being written (S3), or the staged file's path under
    /// `.holdfast-tmp/` (local disk, where the target is not recorded).
    pub path: String,
    /// What identifies the upload to the store (the S3 upload id, the staged file's name).
    pub upload_id: String,
    /// When the upload started (S3's `Initiated`, the staged file's modification time).
    #[serde(with = "time::serde::rfc3339")]
    pub initiated: time::OffsetDateTime,
    /// Parts stored so far (1 for a staged file).
    pub parts: u64,
    /// Bytes stored so far.
    #[serde(rename = "stored_bytes")]
    pub bytes: u64,
}

/// One stored object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub path: String,
    pub size: u64,
}

/// A streaming writer for one object.
///
/// Contract: nothing is visible at the path until [`ObjectWriter::close`] returns `Ok`, except
/// on local disk, where a partial file may exist (the manifest-written-last commit protocol
/// makes such debris harmless). `abort` removes what was uploaded; a crash (the writer never
/// closed nor aborted) leaves an [`IncompleteUpload`], invisible to `list`, which
/// [`Storage::incomplete_uploads`] finds and [`Storage::abort_upload`] removes. Writers are not restartable: an
/// error leaves the writer unusable. Memory is bounded by the backend's part size.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. May buffer; memory use is bounded by the backend's part size.
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Completes the object; once this returns `Ok` the object is durable and readable.
    async fn close(self: Box<Self>) -> Result<()>;
    /// Abandons the object; best effort.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// An object store holding one repository.
///
/// Every method is idempotent unless stated otherwise, so a retry decorator may call it again.
/// A missing object is an error of kind [`crate::ErrorKind::NotFound`], never an empty result.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// What the backend guarantees.
    fn capabilities(&self) -> Capabilities;

    /// A human-readable location, for messages (`file:///backups/repo`). Never holds secrets.
    fn location(&self) -> String;

    /// Writes a whole object, replacing any previous one. Durable when it returns `Ok`.
    async fn put(&self, path: &str, data: Bytes) -> Result<()>;

    /// Writes an object only if nothing exists at `path`. Returns `false` if it already existed.
    /// Atomic only when `capabilities().atomic_create`; otherwise a best effort check-then-write.
    /// Not idempotent by itself: a retry after a lost response sees the object it wrote, so
    /// callers that retry compare the content (the retry decorator does).
    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool>;

    /// Starts a streaming write of an object.
    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>>;

    /// Starts a streaming write whose `close` makes the object readable under its name but not
    /// necessarily durable yet: [`sync`](Self::sync) makes every object closed before it
    /// durable. For writers of many small objects that are committed together (a backup's
    /// chunks, committed by its manifest): one flush at the end instead of one per object. The
    /// default is [`writer`](Self::writer), durable on close. A decorator forwards both this
    /// and `sync`, or neither.
    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        self.writer(path).await
    }

    /// Write barrier: every object closed from a [`writer_unsynced`](Self::writer_unsynced)
    /// writer before this call is durable when it returns `Ok`. Nothing to do by default.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Reads a whole object.
    async fn get(&self, path: &str) -> Result<Bytes>;

    /// Reads an object as a stream of chunks.
    async fn reader(&self, path: &str) -> Result<ByteStream>;

    /// Reads the bytes `range` of an object as a stream; an `end` past the object's size reads
    /// to its end (`u64::MAX` means "to the end"). The default reads from the start and skips,
    /// which is correct for any backend or decorator; backends with `range_reads` override it.
    async fn reader_range(&self, path: &str, range: Range<u64>) -> Result<ByteStream> {
        let stream = self.reader(path).await?;
        Ok(slice_stream(stream, range))
    }

    /// The object's metadata, or `None` if it does not exist.
    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>>;

    /// Every object whose path starts with `prefix` (recursively), in no particular order.
    /// A prefix with no objects yields an empty list.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// The names of the directories directly under `prefix` (which ends with `/`, or is empty
    /// for the root): the next path segment of every object below it, without the slash,
    /// sorted, each once. One entry per directory instead of [`list`](Self::list)'s one per
    /// object, so finding the backups of a repository does not walk every chunk of every
    /// backup. On local disk a directory emptied by deletes may still be named. The default
    /// derives it from `list`; backends override it.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .list(prefix)
            .await?
            .into_iter()
            .filter_map(|o| Some(o.path.strip_prefix(prefix)?.split_once('/')?.0.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Deletes an object; deleting a missing object succeeds.
    async fn delete(&self, path: &str) -> Result<()>;

    /// Deletes every object under `prefix` (which should end with `/`).
    async fn delete_prefix(&self, prefix: &str) -> Result<()>;

    /// Deletes these objects; missing ones are no error. Idempotent. Not atomic: on an error
    /// some may be gone and others not (callers order their batches so that any prefix of the
    /// work leaves the repository consistent). The default deletes one at a time; backends that can
    /// have several deletes in flight override it.
    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        for path in paths {
            self.delete(path).await?;
        }
        Ok(())
    }

    /// Every incomplete upload of this repository (under its prefix, never elsewhere in the
    /// bucket), including those of a writer that is still running: the caller decides what is
    /// debris (see [`crate::repo::uploads`]). Requires `capabilities().incomplete_uploads`;
    /// otherwise an error of kind [`crate::ErrorKind::Usage`] (the default).
    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        Err(no_incomplete_uploads(&self.location()))
    }

    /// Aborts an incomplete upload, removing its parts. Idempotent: aborting an upload that is
    /// already gone (completed, aborted) succeeds. A writer still sending parts to it fails.
    /// Requires `capabilities().incomplete_uploads`, like [`Storage::incomplete_uploads`].
    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        let _ = upload;
        Err(no_incomplete_uploads(&self.location()))
    }
}

fn no_incomplete_uploads(location: &str) -> crate::Error {
    crate::Error::usage(format!(
        "{location} cannot list or abort incomplete uploads; configure a lifecycle rule for \
         incomplete multipart uploads on the bucket"
    ))
}

/// Keeps only the bytes `range` (offsets within the whole stream) of a stream.
pub fn slice_stream(stream: ByteStream, range: Range<u64>) -> ByteStream {
    let mut pos = 0u64;
    stream
        .filter_map(move |item| {
            let out = match item {
                Err(e) => Some(Err(e)),
                Ok(chunk) => {
                    let start = pos;
                    let end = pos + chunk.len() as u64;
                    pos = end;
                    let from = range.start.max(start);
                    let to = range.end.min(end);
                    (from < to)
                        .then(|| Ok(chunk.slice((from - start) as usize..(to - start) as usize)))
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

/// How holdfast talks to a repository's storage; the CLI's `--max-rate`, `--storage-timeout`,
/// `--storage-retries` and `--storage-concurrency` fill it.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Time limit of one request (and of the wait for the next chunk of a read).
    pub request_timeout: Duration,
    /// Bytes per second, uploads and downloads together; `None` for no limit.
    pub max_rate: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: usize,
    /// Explicit credentials (from a configuration file); `None` reads the environment and the
    /// store's own credentials files. Never from the command line.
    pub credentials: Option<Credentials>,
}

/// An access key pair for S3 and OSS. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            max_rate: None,
            max_concurrent: 32,
            credentials: None,
        }
    }
}

/// Opens the storage named by a repository URL (see [`location`]) with the default options.
pub fn open_url(url: &str) -> Result<Arc<dyn Storage>> {
    open(url, &StorageOptions::default())
}

/// Opens the storage named by a repository URL, wrapped in the decorators `options` asks for:
/// retry ∘ throttle ∘ concurrency limit ∘ timeout ∘ backend. A retry re-enters the throttle
/// (re-sent bytes count) and the limit (a request waiting to be retried holds no slot); each
/// attempt has its own timeout.
pub fn open(url: &str, options: &StorageOptions) -> Result<Arc<dyn Storage>> {
    let location = Location::parse(url)?;
    let backend: Arc<dyn Storage> = Arc::new(OpendalStorage::open(&location, options)?);
    Ok(decorate(backend, options))
}

/// Wraps any backend in the decorators `options` asks for (see [`open`]).
pub fn decorate(backend: Arc<dyn Storage>, options: &StorageOptions) -> Arc<dyn Storage> {
    let mut s: Arc<dyn Storage> = Arc::new(TimeoutStorage::new(backend, options.request_timeout));
    s = Arc::new(LimitStorage::new(s, options.max_concurrent));
    if let Some(rate) = options.max_rate {
        s = Arc::new(ThrottleStorage::new(s, rate));
    }
    Arc::new(RetryStorage::new(s, options.retry.clone()))
}
