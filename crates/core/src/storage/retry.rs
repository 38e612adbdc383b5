//! [`RetryStorage`]: retries transient failures with exponential backoff and jitter.
//!
//! Only errors marked transient (timeouts, dropped connections, 5xx and rate limiting, see
//! [`crate::Error::is_transient`]) are retried; a missing object, a permission problem or a
//! corrupt file fails at once. Every method of [`Storage`] is idempotent except
//! `put_if_absent`, whose retry checks whether the object it finds is the one it wrote.
//! A read stream that breaks in the middle resumes where it stopped with a range read.
//! Streaming writes are not replayed from here (that would mean buffering the whole object);
//! their parts are retried inside the backend with the same policy.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures::StreamExt;

use super::{ByteStream, Capabilities, IncompleteUpload, ObjectMeta, ObjectWriter, Storage};
use crate::{Error, Result};

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub retries: usize,
    /// Delay before the first retry; doubles each time, with random jitter.
    pub min_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six retries from 250 ms up to 10 s: about 16 s of patience before giving up.
    fn default() -> Self {
        RetryPolicy {
            retries: 6,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.retries)
            .with_jitter()
    }
}

#[derive(Debug)]
pub struct RetryStorage {
    inner: Arc<dyn Storage>,
    policy: RetryPolicy,
}

impl RetryStorage {
    pub fn new(inner: Arc<dyn Storage>, policy: RetryPolicy) -> Self {
        RetryStorage { inner, policy }
    }

    async fn run<T, F, Fut>(&self, what: &str, path: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        op.retry(self.policy.backoff())
            .when(Error::is_transient)
            .notify(|e: &Error, delay: Duration| {
                tracing::warn!(
                    operation = what,
                    path,
                    error = %e,
                    "storage request failed; retrying in {:.1}s",
                    delay.as_secs_f64()
                );
            })
            .await
    }
}

#[async_trait]
impl Storage for RetryStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.run("put", path, || self.inner.put(path, data.clone()))
            .await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        let mut attempted = false;
        self.run("put_if_absent", path, || {
            let first = !attempted;
            attempted = true;
            let data = data.clone();
            async move {
                if self.inner.put_if_absent(path, data.clone()).await? {
                    return Ok(true);
                }
                // After a failed attempt whose request may have landed, the object we find
                // may be our own.
                Ok(!first && self.inner.get(path).await.ok().as_ref() == Some(&data))
            }
        })
        .await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        self.run("writer", path, || self.inner.writer(path)).await
    }

    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        self.run("writer", path, || self.inner.writer_unsynced(path))
            .await
    }

    async fn sync(&self) -> Result<()> {
        self.run("sync", "", || self.inner.sync()).await
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.run("get", path, || self.inner.get(path)).await
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        self.reader_range(path, 0..u64::MAX).await
    }

    async fn reader_range(&self, path: &str, range: Range<u64>) -> Result<ByteStream> {
        let stream = self
            .run("read", path, || {
                self.inner.reader_range(path, range.clone())
            })
            .await?;
        Ok(resuming(
            self.inner.clone(),
            path.to_string(),
            range,
            stream,
            self.policy.clone(),
        ))
    }

    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        self.run("stat", path, || self.inner.stat(path)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.run("list", prefix, || self.inner.list(prefix)).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.run("list", prefix, || self.inner.list_dirs(prefix))
            .await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.run("delete", path, || self.inner.delete(path)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.run("delete_prefix", prefix, || self.inner.delete_prefix(prefix))
            .await
    }

    /// A batch delete is idempotent as a whole, so a failed one is retried whole.
    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        let first = paths.first().map(String::as_str).unwrap_or("");
        self.run("delete_many", first, || self.inner.delete_many(paths))
            .await
    }

    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        self.run("list incomplete uploads", "", || {
            self.inner.incomplete_uploads()
        })
        .await
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        self.run("abort upload", &upload.path, || {
            self.inner.abort_upload(upload)
        })
        .await
    }
}

/// A read stream that, on a transient error, reopens the object at the offset it reached.
fn resuming(
    inner: Arc<dyn Storage>,
    path: String,
    range: Range<u64>,
    stream: ByteStream,
    policy: RetryPolicy,
) -> ByteStream {
    struct State {
        inner: Arc<dyn Storage>,
        path: String,
        pos: u64,
        end: u64,
        stream: Option<ByteStream>,
        delays: backon::ExponentialBackoff,
        done: bool,
    }
    let state = State {
        inner,
        path,
        pos: range.start,
        end: range.end,
        stream: Some(stream),
        delays: policy.backoff().build(),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let item = match st.stream.as_mut() {
                Some(s) => s.next().await,
                None => match st.inner.reader_range(&st.path, st.pos..st.end).await {
                    Ok(s) => {
                        st.stream = Some(s);
                        continue;
                    }
                    Err(e) => Some(Err(e)),
                },
            };
            match item {
                None => return None,
                Some(Ok(chunk)) => {
                    st.pos += chunk.len() as u64;
                    return Some((Ok(chunk), st));
                }
                Some(Err(e)) if e.is_transient() => match st.delays.next() {
                    Some(delay) => {
                        tracing::warn!(
                            path = st.path,
                            offset = st.pos,
                            error = %e,
                            "read interrupted; resuming in {:.1}s",
                            delay.as_secs_f64()
                        );
                        st.stream = None;
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                },
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
    .boxed()
}
