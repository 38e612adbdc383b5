//! [`ThrottleStorage`]: `--max-rate`, a bandwidth limit shared by every upload and download of
//! one repository, so a backup does not saturate the host's link.
//!
//! A token bucket (the `governor` crate) counts KiB. Uploads wait before sending; downloads
//! wait after each received chunk, which stalls the reader and lets TCP slow the sender. The
//! bucket holds one second of traffic, so bursts stay short.

use std::num::NonZeroU32;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{ByteStream, Capabilities, IncompleteUpload, ObjectMeta, ObjectWriter, Storage};
use crate::Result;

const CELL: u64 = 1024;

#[derive(Debug)]
pub struct ThrottleStorage {
    inner: Arc<dyn Storage>,
    bucket: Arc<Bucket>,
}

struct Bucket {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({} KiB burst)", self.burst)
    }
}

impl Bucket {
    fn new(bytes_per_second: u64) -> Bucket {
        let cells = (bytes_per_second / CELL).clamp(1, u32::MAX as u64) as u32;
        let per_second = NonZeroU32::new(cells).expect("clamped to at least 1");
        let burst = cells.max(64);
        let quota =
            Quota::per_second(per_second).allow_burst(NonZeroU32::new(burst).expect("at least 64"));
        Bucket {
            limiter: RateLimiter::direct(quota),
            burst,
        }
    }

    /// Waits until `bytes` may pass.
    async fn take(&self, bytes: usize) {
        let mut cells = (bytes as u64).div_ceil(CELL);
        while cells > 0 {
            let n = cells.min(self.burst as u64) as u32;
            cells -= n as u64;
            if let Some(n) = NonZeroU32::new(n) {
                // n never exceeds the burst, so capacity always suffices.
                let _ = self.limiter.until_n_ready(n).await;
            }
        }
    }
}

impl ThrottleStorage {
    /// Limits traffic to `bytes_per_second` (at least 1 KiB/s).
    pub fn new(inner: Arc<dyn Storage>, bytes_per_second: u64) -> Self {
        ThrottleStorage {
            inner,
            bucket: Arc::new(Bucket::new(bytes_per_second)),
        }
    }

    fn throttled(&self, stream: ByteStream) -> ByteStream {
        let bucket = self.bucket.clone();
        stream
            .then(move |item| {
                let bucket = bucket.clone();
                async move {
                    if let Ok(chunk) = &item {
                        bucket.take(chunk.len()).await;
                    }
                    item
                }
            })
            .boxed()
    }
}

struct ThrottledWriter {
    inner: Box<dyn ObjectWriter>,
    bucket: Arc<Bucket>,
}

#[async_trait]
impl ObjectWriter for ThrottledWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.bucket.take(data.len()).await;
        self.inner.write(data).await
    }

    async fn close(self: Box<Self>) -> Result<()> {
        self.inner.close().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl Storage for ThrottleStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.bucket.take(data.len()).await;
        self.inner.put(path, data).await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        self.bucket.take(data.len()).await;
        self.inner.put_if_absent(path, data).await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(ThrottledWriter {
            inner: self.inner.writer(path).await?,
            bucket: self.bucket.clone(),
        }))
    }

    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(ThrottledWriter {
            inner: self.inner.writer_unsynced(path).await?,
            bucket: self.bucket.clone(),
        }))
    }

    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let data = self.inner.get(path).await?;
        self.bucket.take(data.len()).await;
        Ok(data)
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        Ok(self.throttled(self.inner.reader(path).await?))
    }

    async fn reader_range(&self, path: &str, range: Range<u64>) -> Result<ByteStream> {
        Ok(self.throttled(self.inner.reader_range(path, range).await?))
    }

    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        self.inner.stat(path).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_dirs(prefix).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.inner.delete_prefix(prefix).await
    }

    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        self.inner.delete_many(paths).await
    }

    /// Listing and aborting move no data: not throttled.
    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        self.inner.incomplete_uploads().await
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        self.inner.abort_upload(upload).await
    }
}
