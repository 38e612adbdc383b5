//! [`LimitStorage`]: at most N requests in flight, so many parallel workers do not flood a
//! store (or a small link) with connections.
//!
//! A slot is held for one request: a whole-object call, the opening of a stream, or one
//! `write`/`close` of a streaming writer. An open stream between requests holds no slot, so
//! long-lived readers and writers cannot starve each other into a deadlock.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ByteStream, Capabilities, IncompleteUpload, ObjectMeta, ObjectWriter, Storage};
use crate::{Error, Result};

#[derive(Debug)]
pub struct LimitStorage {
    inner: Arc<dyn Storage>,
    slots: Arc<Semaphore>,
}

impl LimitStorage {
    pub fn new(inner: Arc<dyn Storage>, max_concurrent: usize) -> Self {
        LimitStorage {
            inner,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit> {
        acquire(&self.slots).await
    }
}

async fn acquire(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit> {
    slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::internal("storage request limiter closed"))
}

struct LimitedWriter {
    inner: Box<dyn ObjectWriter>,
    slots: Arc<Semaphore>,
}

#[async_trait]
impl ObjectWriter for LimitedWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let _slot = acquire(&self.slots).await?;
        self.inner.write(data).await
    }

    async fn close(self: Box<Self>) -> Result<()> {
        let _slot = acquire(&self.slots).await?;
        self.inner.close().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl Storage for LimitStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        let _slot = self.slot().await?;
        self.inner.put(path, data).await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        let _slot = self.slot().await?;
        self.inner.put_if_absent(path, data).await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        let inner = {
            let _slot = self.slot().await?;
            self.inner.writer(path).await?
        };
        Ok(Box::new(LimitedWriter {
            inner,
            slots: self.slots.clone(),
        }))
    }

    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        let inner = {
            let _slot = self.slot().await?;
            self.inner.writer_unsynced(path).await?
        };
        Ok(Box::new(LimitedWriter {
            inner,
            slots: self.slots.clone(),
        }))
    }

    async fn sync(&self) -> Result<()> {
        let _slot = self.slot().await?;
        self.inner.sync().await
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let _slot = self.slot().await?;
        self.inner.get(path).await
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        let _slot = self.slot().await?;
        self.inner.reader(path).await
    }

    async fn reader_range(&self, path: &str, range: Range<u64>) -> Result<ByteStream> {
        let _slot = self.slot().await?;
        self.inner.reader_range(path, range).await
    }

    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        let _slot = self.slot().await?;
        self.inner.stat(path).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let _slot = self.slot().await?;
        self.inner.list(prefix).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let _slot = self.slot().await?;
        self.inner.list_dirs(prefix).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let _slot = self.slot().await?;
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let _slot = self.slot().await?;
        self.inner.delete_prefix(prefix).await
    }

    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        let _slot = self.slot().await?;
        self.inner.delete_many(paths).await
    }

    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        let _slot = self.slot().await?;
        self.inner.incomplete_uploads().await
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        let _slot = self.slot().await?;
        self.inner.abort_upload(upload).await
    }
}
