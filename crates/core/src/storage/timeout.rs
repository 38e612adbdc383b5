//! [`TimeoutStorage`]: a time limit on every request, so a stalled connection becomes a
//! transient error (which the retry decorator retries) instead of a hung backup.
//!
//! Whole-object requests are limited as a whole; a read stream is limited per chunk (a stall,
//! not a slow large object, trips it). Streaming writes are passed through: their parts have a
//! timeout inside the backend, where a timed-out part can be retried without losing data.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{ByteStream, Capabilities, IncompleteUpload, ObjectMeta, ObjectWriter, Storage};
use crate::{Error, ErrorKind, Result};

#[derive(Debug)]
pub struct TimeoutStorage {
    inner: Arc<dyn Storage>,
    limit: Duration,
}

impl TimeoutStorage {
    pub fn new(inner: Arc<dyn Storage>, limit: Duration) -> Self {
        TimeoutStorage { inner, limit }
    }

    async fn limited<T>(
        &self,
        what: &str,
        path: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        within(self.limit, what, path, fut).await
    }
}

async fn within<T>(
    limit: Duration,
    what: &str,
    path: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Storage,
            format!(
                "{what} of `{path}` timed out after {:.0}s (raise --storage-timeout on a slow link)",
                limit.as_secs_f64()
            ),
        )
        .transient()),
    }
}

#[async_trait]
impl Storage for TimeoutStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.limited("writing", path, self.inner.put(path, data))
            .await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        self.limited("writing", path, self.inner.put_if_absent(path, data))
            .await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        self.limited("opening", path, self.inner.writer(path)).await
    }

    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        self.limited("opening", path, self.inner.writer_unsynced(path))
            .await
    }

    async fn sync(&self) -> Result<()> {
        // A flush of everything written so far may take as long as writing it: not timed.
        self.inner.sync().await
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.limited("reading", path, self.inner.get(path)).await
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        self.reader_range(path, 0..u64::MAX).await
    }

    async fn reader_range(&self, path: &str, range: Range<u64>) -> Result<ByteStream> {
        let stream = self
            .limited("opening", path, self.inner.reader_range(path, range))
            .await?;
        let limit = self.limit;
        let path = path.to_string();
        Ok(futures::stream::unfold(
            (stream, path, false),
            move |(mut s, path, done)| async move {
                if done {
                    return None;
                }
                let next = within(limit, "reading", &path, async { Ok(s.next().await) }).await;
                match next {
                    Ok(Some(item)) => Some((item, (s, path, false))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), (s, path, true))),
                }
            },
        )
        .boxed())
    }

    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        self.limited("stat", path, self.inner.stat(path)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.limited("listing", prefix, self.inner.list(prefix))
            .await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.limited("listing", prefix, self.inner.list_dirs(prefix))
            .await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.limited("deleting", path, self.inner.delete(path))
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        // Many requests; the limit applies to the whole, scaled generously.
        within(
            self.limit * 10,
            "deleting",
            prefix,
            self.inner.delete_prefix(prefix),
        )
        .await
    }

    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        // One batch request per 1,000 objects, or one request each: scaled like a prefix.
        let first = paths.first().map(String::as_str).unwrap_or("");
        within(
            self.limit * 10,
            "deleting",
            first,
            self.inner.delete_many(paths),
        )
        .await
    }

    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        self.limited(
            "listing incomplete uploads",
            "",
            self.inner.incomplete_uploads(),
        )
        .await
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        self.limited(
            "aborting the upload",
            &upload.path,
            self.inner.abort_upload(upload),
        )
        .await
    }
}
