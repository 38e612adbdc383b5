//! [`ParallelZstdSink`]: one object compressed on several cores.
//!
//! The input is cut into frames of [`ZSTD_BLOCK`] bytes, exactly as [`super::ZstdSink`] does, but
//! each frame is compressed on the blocking thread pool while the caller keeps reading its
//! source; finished frames are hashed and uploaded strictly in input order. The object is the
//! same concatenation of independent zstd frames (`zstd -d` reads it as one stream), so readers
//! cannot tell the two sinks apart. Memory: at most `threads + 1` frames in flight.
//!
//! A caller that cuts its own frames (a dump cuts at line ends) hands each one over with
//! [`write_frame`](ParallelZstdSink::write_frame) and gets back an empty buffer to fill next,
//! recycled from a finished frame, so reading and compressing overlap without new allocations.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::write::{new_compressor, HashingSink, ZSTD_BLOCK};
use crate::manifest::{FileEntry, Segment};
use crate::{Error, ErrorKind, Result};

pub struct ParallelZstdSink {
    sink: HashingSink,
    level: i32,
    input: Vec<u8>,
    in_flight: VecDeque<JoinHandle<Result<Compressed>>>,
    max_in_flight: usize,
    /// Input buffers of finished frames, for [`write_frame`](Self::write_frame) to hand back.
    spare: Vec<Vec<u8>>,
    raw_size: u64,
    frames: u64,
}

impl ParallelZstdSink {
    /// Compresses into `sink` with `threads` frames compressing at once (at least 1).
    pub fn new(sink: HashingSink, level: i32, threads: usize) -> Self {
        ParallelZstdSink {
            sink,
            level,
            input: Vec::with_capacity(ZSTD_BLOCK),
            in_flight: VecDeque::new(),
            max_in_flight: threads.max(1) + 1,
            spare: Vec::new(),
            raw_size: 0,
            frames: 0,
        }
    }

    /// Uncompressed bytes accepted so far.
    pub fn raw_size(&self) -> u64 {
        self.raw_size
    }

    /// The size of the buffers [`write_owned`](Self::write_owned) takes without copying.
    pub fn frame_size(&self) -> usize {
        ZSTD_BLOCK
    }

    /// Appends bytes (copied into the current frame).
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let take = (ZSTD_BLOCK - self.input.len()).min(data.len());
            self.input.extend_from_slice(&data[..take]);
            self.raw_size += take as u64;
            data = &data[take..];
            if self.input.len() == ZSTD_BLOCK {
                let next = self.spare_buffer(ZSTD_BLOCK);
                let frame = std::mem::replace(&mut self.input, next);
                self.submit(frame).await?;
            }
        }
        Ok(())
    }

    /// Appends a buffer; a buffer of exactly [`frame_size`](Self::frame_size) bytes arriving on
    /// a frame boundary becomes one frame without a copy.
    pub async fn write_owned(&mut self, data: Vec<u8>) -> Result<()> {
        if self.input.is_empty() && data.len() == ZSTD_BLOCK {
            self.raw_size += data.len() as u64;
            return self.submit(data).await;
        }
        self.write(&data).await
    }

    /// Submits `frame`, cut by the caller, as one frame of its own (after whatever
    /// [`write`](Self::write) buffered) without copying it, and returns an empty buffer of at
    /// least the same capacity to fill next.
    pub async fn write_frame(&mut self, frame: Vec<u8>) -> Result<Vec<u8>> {
        if !self.input.is_empty() {
            let buffered = std::mem::take(&mut self.input);
            self.submit(buffered).await?;
        }
        let capacity = frame.capacity();
        if !frame.is_empty() {
            self.raw_size += frame.len() as u64;
            self.submit(frame).await?;
        }
        Ok(self.spare_buffer(capacity))
    }

    /// An empty buffer of at least `capacity` bytes, recycled from a finished frame if one is
    /// spare.
    fn spare_buffer(&mut self, capacity: usize) -> Vec<u8> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.reserve(capacity);
        buffer
    }

    async fn submit(&mut self, frame: Vec<u8>) -> Result<()> {
        while self.in_flight.len() >= self.max_in_flight {
            self.drain_one().await?;
        }
        let level = self.level;
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || compress(frame, level)));
        self.frames += 1;
        Ok(())
    }

    async fn drain_one(&mut self) -> Result<()> {
        let Some(handle) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let Compressed { input, output } = handle
            .await
            .map_err(|e| Error::internal(format!("compression task failed: {e}")))??;
        if self.spare.len() < self.max_in_flight {
            self.spare.push(input);
        }
        self.sink.write(Bytes::from(output)).await
    }

    /// Starts a segment (see [`HashingSink::begin_segment`]) after every frame submitted so far:
    /// what is submitted from now until [`end_segment`](Self::end_segment) is its own run of
    /// whole frames.
    pub async fn begin_segment(&mut self) -> Result<()> {
        self.settle().await?;
        self.sink.begin_segment();
        Ok(())
    }

    /// Ends the segment after compressing and writing everything submitted to it.
    pub async fn end_segment(&mut self) -> Result<Segment> {
        self.settle().await?;
        self.sink.end_segment()
    }

    /// Submits what [`write`](Self::write) buffered and waits until every frame is written.
    async fn settle(&mut self) -> Result<()> {
        if !self.input.is_empty() {
            let buffered = std::mem::take(&mut self.input);
            self.submit(buffered).await?;
        }
        while !self.in_flight.is_empty() {
            self.drain_one().await?;
        }
        Ok(())
    }

    /// Stored (compressed) bytes written to the object so far.
    pub fn stored_size(&self) -> u64 {
        self.sink.size()
    }

    /// Compresses what is left, waits for every frame, completes the object. An empty input
    /// still yields one (empty) frame, so every object is a valid zstd stream.
    pub async fn finish(mut self) -> Result<FileEntry> {
        if !self.input.is_empty() || self.frames == 0 {
            let frame = std::mem::take(&mut self.input);
            self.submit(frame).await?;
        }
        while !self.in_flight.is_empty() {
            self.drain_one().await?;
        }
        self.sink.finish().await
    }

    /// Abandons the object (best effort; debris is cleaned by the next backup).
    pub async fn abort(mut self) {
        for h in self.in_flight.drain(..) {
            h.abort();
        }
        self.sink.abort().await
    }
}

thread_local! {
    /// One compression context per blocking-pool thread, reused across frames and objects.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// A compressed frame, with its input buffer for reuse.
struct Compressed {
    input: Vec<u8>,
    output: Vec<u8>,
}

fn compress(frame: Vec<u8>, level: i32) -> Result<Compressed> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, new_compressor(level)?));
        }
        let (_, compressor) = slot.as_mut().expect("just set");
        let mut output = Vec::with_capacity(zstd::zstd_safe::compress_bound(frame.len()));
        compressor
            .compress_to_buffer(&frame, &mut output)
            .map_err(|e| Error::with_source(ErrorKind::Internal, "zstd compression failed", e))?;
        Ok(Compressed {
            input: frame,
            output,
        })
    })
}
