use std::io::Write;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::FLUSH_BYTES;
use crate::manifest::FileEntry;
use crate::storage::{ObjectWriter, Storage};
use crate::{Error, ErrorKind, Result};

/// Uploads one object, hashing what it writes.
pub struct HashingSink {
    writer: Option<Box<dyn ObjectWriter>>,
    hasher: Sha256,
    size: u64,
    /// Path recorded in the [`FileEntry`] (relative to the backup directory).
    entry_path: String,
}

impl HashingSink {
    /// Starts writing `storage_path`; the returned entry will carry `entry_path`.
    pub async fn create(
        storage: &dyn Storage,
        storage_path: &str,
        entry_path: &str,
    ) -> Result<Self> {
        let writer = storage.writer(storage_path).await?;
        Ok(HashingSink {
            writer: Some(writer),
            hasher: Sha256::new(),
            size: 0,
            entry_path: entry_path.to_string(),
        })
    }

    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.hasher.update(&data);
        self.size += data.len() as u64;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::internal("write after close"))?;
        writer.write(data).await
    }

    /// Completes the object and returns its entry.
    pub async fn finish(mut self) -> Result<FileEntry> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::internal("double close"))?;
        writer.close().await?;
        Ok(FileEntry {
            path: std::mem::take(&mut self.entry_path),
            size: self.size,
            sha256: hex::encode(self.hasher.clone().finalize()),
        })
    }

    /// Abandons the object (best effort; debris is cleaned by the next backup).
    pub async fn abort(mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.abort().await;
        }
    }
}

/// Compresses a byte stream with zstd into a [`HashingSink`].
pub struct ZstdSink {
    encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
    sink: HashingSink,
    raw_size: u64,
}

impl ZstdSink {
    pub fn new(sink: HashingSink, level: i32) -> Result<Self> {
        let encoder = zstd::stream::write::Encoder::new(Vec::with_capacity(FLUSH_BYTES), level)
            .map_err(|e| Error::with_source(ErrorKind::Internal, "zstd encoder", e))?;
        Ok(ZstdSink {
            encoder,
            sink,
            raw_size: 0,
        })
    }

    /// Uncompressed bytes written so far.
    pub fn raw_size(&self) -> u64 {
        self.raw_size
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.raw_size += data.len() as u64;
        self.encoder
            .write_all(data)
            .map_err(|e| Error::with_source(ErrorKind::Internal, "zstd compression failed", e))?;
        if self.encoder.get_ref().len() >= FLUSH_BYTES {
            let buf = std::mem::replace(self.encoder.get_mut(), Vec::with_capacity(FLUSH_BYTES));
            self.sink.write(Bytes::from(buf)).await?;
        }
        Ok(())
    }

    /// Ends the zstd frame, completes the object, returns its entry.
    pub async fn finish(mut self) -> Result<FileEntry> {
        self.encoder
            .do_finish()
            .map_err(|e| Error::with_source(ErrorKind::Internal, "zstd compression failed", e))?;
        let buf = std::mem::take(self.encoder.get_mut());
        self.sink.write(Bytes::from(buf)).await?;
        self.sink.finish().await
    }

    pub async fn abort(self) {
        self.sink.abort().await
    }
}
