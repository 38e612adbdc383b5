//! The storage trait every repository backend implements, and its local-disk implementation.
//!
//! Paths are `/`-separated, relative to the repository root, never starting with `/`.
//! Backends are driven through [`Storage`]; what a backend really guarantees is stated by its
//! [`Capabilities`], never assumed (an object store has no directories and no atomic rename).

pub mod encrypted;
mod opendal_store;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::{Error, ErrorKind, Result};

pub use encrypted::EncryptedStorage;
pub use opendal_store::OpendalStorage;

/// A stream of byte chunks read from storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// What a backend really does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `put_if_absent` is atomic: of two concurrent callers exactly one succeeds.
    pub atomic_create: bool,
    /// A completed write is visible to `list` immediately.
    pub list_after_write: bool,
}

/// One stored object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub path: String,
    pub size: u64,
}

/// A streaming writer for one object.
///
/// Contract: nothing is visible at the path until [`ObjectWriter::close`] returns `Ok`; after
/// `abort` (or a crash) the backend may leave invisible debris that `Storage::delete` of the same
/// path removes. Writers are not restartable: an error leaves the writer unusable.
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
/// A missing object is an error of kind [`ErrorKind::NotFound`], never an empty result.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// What the backend guarantees.
    fn capabilities(&self) -> Capabilities;

    /// A human-readable location, for messages (`file:///backups/repo`).
    fn location(&self) -> String;

    /// Writes a whole object, replacing any previous one. Durable when it returns `Ok`.
    async fn put(&self, path: &str, data: Bytes) -> Result<()>;

    /// Writes an object only if nothing exists at `path`. Returns `false` if it already existed.
    /// Atomic only when `capabilities().atomic_create`; otherwise a best effort check-then-write.
    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool>;

    /// Starts a streaming write of an object.
    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>>;

    /// Reads a whole object.
    async fn get(&self, path: &str) -> Result<Bytes>;

    /// Reads an object as a stream of chunks.
    async fn reader(&self, path: &str) -> Result<ByteStream>;

    /// The object's metadata, or `None` if it does not exist.
    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>>;

    /// Every object whose path starts with `prefix` (recursively), in no particular order.
    /// A prefix with no objects yields an empty list.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object; deleting a missing object succeeds.
    async fn delete(&self, path: &str) -> Result<()>;

    /// Deletes every object under `prefix` (which should end with `/`).
    async fn delete_prefix(&self, prefix: &str) -> Result<()>;
}

/// Opens the storage named by a repository URL: `file:///path` or a plain path.
pub fn open_url(url: &str) -> Result<Arc<dyn Storage>> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(Arc::new(OpendalStorage::local(rest)?));
    }
    if url.contains("://") {
        let scheme = url.split("://").next().unwrap_or_default();
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "repository URL scheme `{scheme}://` is not supported yet; use file:///path/to/repo"
            ),
        ));
    }
    let path = std::path::absolute(url).map_err(|e| {
        Error::with_source(
            ErrorKind::Usage,
            format!("invalid repository path `{url}`"),
            e,
        )
    })?;
    Ok(Arc::new(OpendalStorage::local(&path.to_string_lossy())?))
}
