//! [`Storage`] over an Apache OpenDAL operator (the `fs` service for local disk).

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use opendal::{services, ErrorKind as OdKind, Operator};

use super::{ByteStream, Capabilities, ObjectMeta, ObjectWriter, Storage};
use crate::{Error, ErrorKind, Result};

/// Part size for streaming writes: bounds memory per open writer.
const WRITE_CHUNK: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OpendalStorage {
    op: Operator,
    location: String,
    capabilities: Capabilities,
}

impl OpendalStorage {
    /// Local disk rooted at `root` (created on first write).
    pub fn local(root: &str) -> Result<Self> {
        let builder = services::Fs::default().root(root);
        let op = Operator::new(builder)
            .map_err(|e| map_err(e, root))?
            .finish();
        let cap = op.info().full_capability();
        Ok(OpendalStorage {
            op,
            location: format!("file://{root}"),
            capabilities: Capabilities {
                atomic_create: cap.write_with_if_not_exists,
                list_after_write: true,
            },
        })
    }
}

fn map_err(e: opendal::Error, path: &str) -> Error {
    let kind = match e.kind() {
        OdKind::NotFound => ErrorKind::NotFound,
        OdKind::ConfigInvalid => ErrorKind::Usage,
        _ => ErrorKind::Storage,
    };
    let what = match e.kind() {
        OdKind::NotFound => format!("`{path}` does not exist"),
        OdKind::PermissionDenied => format!("permission denied on `{path}`"),
        _ => format!("storage operation on `{path}` failed"),
    };
    let transient = e.is_temporary();
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
        self.inner
            .close()
            .await
            .map(|_| ())
            .map_err(|e| map_err(e, &self.path))
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
        self.op
            .write(path, data)
            .await
            .map(|_| ())
            .map_err(|e| map_err(e, path))
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
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

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        let inner = self
            .op
            .writer_with(path)
            .chunk(WRITE_CHUNK)
            .await
            .map_err(|e| map_err(e, path))?;
        Ok(Box::new(OpendalWriter {
            inner,
            path: path.to_string(),
        }))
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.op
            .read(path)
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| map_err(e, path))
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        let reader = self
            .op
            .reader_with(path)
            .chunk(WRITE_CHUNK)
            .await
            .map_err(|e| map_err(e, path))?;
        let owned = path.to_string();
        let stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| map_err(e, path))?
            .map_err(move |e| {
                Error::with_source(ErrorKind::Storage, format!("reading `{owned}` failed"), e)
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
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| ObjectMeta {
                path: e.path().to_string(),
                size: e.metadata().content_length(),
            })
            .collect())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == OdKind::NotFound => Ok(()),
            Err(e) => Err(map_err(e, path)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.op
            .remove_all(prefix)
            .await
            .map_err(|e| map_err(e, prefix))
    }
}
