//! Streaming reads and writes of objects on local disk, around the page cache.
//!
//! A backup writes each byte once and nobody reads it back soon; a restore or a verify reads
//! each byte once. So on local disk the data moves between the device and holdfast's own buffers
//! with `O_DIRECT` instead of through the page cache. That saves the kernel's copy into freshly
//! allocated cache pages, the most expensive part of a buffered write (on this project's test
//! machines a buffered write plus `fsync` moves about 390 MB/s, a direct write 3.7 GB/s: `dd
//! bs=8M` of 1 GiB), and it leaves the cache of a database server on the same host alone instead
//! of evicting it for backup data.
//!
//! Reads: [`read_range`] streams a file in aligned blocks of [`BLOCK`] bytes, one read ahead of
//! the consumer; each block is handed on without a copy.
//!
//! Writes: the object is written to a staging file in the repository's `.holdfast-tmp/`, flushed
//! to the device (`fdatasync`) and renamed into place on close, so a reader never sees a torn
//! object and a crash leaves only a staged file, which `cleanup` lists and removes. Bytes are
//! gathered into aligned blocks of [`BLOCK`] bytes; up to [`WRITES_IN_FLIGHT`] blocks are being
//! written (on the blocking pool) while the next fills, so the device's latency does not hold up
//! the producer. The last block is padded to the alignment and the file cut back to its size.
//! After the rename the directory that gained the name is flushed too (`fsync`), and so is the
//! parent of every directory the write created: a closed object survives a crash by name, on
//! any file system, not only on those that commit renames in order (ext4's ordered journal).
//! A writer from [`LocalFileWriter::create_unsynced`] skips those flushes: its object is durable
//! after the next [`sync_filesystem`] (one `syncfs` for all of a backup's chunks).
//!
//! A file system that refuses `O_DIRECT` (tmpfs before Linux 6.6, some network file systems)
//! gets ordinary buffered I/O, chosen when the file is opened or on the first refused request.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{ByteStream, ObjectWriter};
use crate::{Error, ErrorKind, Result};

/// Alignment of direct-I/O buffers, offsets and lengths: the page size, a multiple of every
/// common logical block size.
const ALIGN: usize = 4096;
/// Bytes per read or write.
const BLOCK: usize = 2 << 20;
/// Blocks of one object being written at once. Memory per open writer: one block more.
const WRITES_IN_FLIGHT: usize = 3;
/// Blocks kept for the next writers (a dump opens one object per chunk).
const SPARE_BLOCKS: usize = 8;

static SPARE: Mutex<Vec<AlignedBlock>> = Mutex::new(Vec::new());

/// A buffer of [`BLOCK`] bytes whose data starts on an [`ALIGN`] boundary.
struct AlignedBlock {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBlock {
    /// A spare block if one is kept, else a new one.
    fn take() -> AlignedBlock {
        let spare = SPARE.lock().map(|mut s| s.pop()).unwrap_or(None);
        spare.unwrap_or_else(|| {
            let raw = vec![0u8; BLOCK + ALIGN];
            let start = raw.as_ptr().align_offset(ALIGN);
            AlignedBlock { raw, start, len: 0 }
        })
    }

    /// A placeholder holding no memory.
    fn none() -> AlignedBlock {
        AlignedBlock {
            raw: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// Keeps the block for a later writer.
    fn give_back(mut self) {
        if self.raw.is_empty() {
            return;
        }
        self.len = 0;
        if let Ok(mut spare) = SPARE.lock() {
            if spare.len() < SPARE_BLOCKS {
                spare.push(self);
            }
        }
    }

    fn room(&self) -> usize {
        BLOCK - self.len
    }

    fn push(&mut self, data: &[u8]) {
        let at = self.start + self.len;
        self.raw[at..at + data.len()].copy_from_slice(data);
        self.len += data.len();
    }

    /// The filled bytes, zero-padded to the next [`ALIGN`] boundary when `pad` (a direct write
    /// must cover whole blocks of the device).
    fn data(&mut self, pad: bool) -> &[u8] {
        let end = if pad {
            self.len.next_multiple_of(ALIGN)
        } else {
            self.len
        };
        self.raw[self.start + self.len..self.start + end].fill(0);
        &self.raw[self.start..self.start + end]
    }
}

/// An open file and whether it is still read or written directly.
struct DirectFile {
    inner: File,
    direct: AtomicBool,
}

impl DirectFile {
    fn direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Writes `block` at `offset`; a direct write the file system refuses (`EINVAL`) switches
    /// the file to buffered writes and is repeated.
    fn write_block(&self, block: &mut AlignedBlock, offset: u64) -> io::Result<()> {
        let direct = self.direct();
        match self.inner.write_all_at(block.data(direct), offset) {
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.stop_direct()?;
                self.inner.write_all_at(block.data(false), offset)
            }
            other => other,
        }
    }

    /// Reads `len` bytes at `offset` (fewer at the end of the file) into a new aligned buffer and
    /// returns them without a copy. A direct read the file system refuses (`EINVAL`) switches
    /// the file to buffered reads and is repeated.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let aligned = offset - offset % ALIGN as u64;
        let head = (offset - aligned) as usize;
        let span = (head + len).next_multiple_of(ALIGN);
        let mut raw = vec![0u8; span + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        let mut got = 0;
        while got < span {
            let buf = &mut raw[start + got..start + span];
            match self.inner.read_at(buf, aligned + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if self.direct() && e.raw_os_error() == Some(libc::EINVAL) => {
                    self.stop_direct()?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let end = (head + len).min(got.max(head));
        Ok(Bytes::from(raw).slice(start + head..start + end))
    }

    fn stop_direct(&self) -> io::Result<()> {
        let fd = self.inner.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on a file descriptor this struct owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.direct.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// One object being written to local disk (see the module documentation).
pub struct LocalFileWriter {
    /// The object's path in the repository, for messages.
    path: String,
    staging: PathBuf,
    destination: PathBuf,
    file: Arc<DirectFile>,
    block: AlignedBlock,
    /// Bytes handed to writes so far (whole blocks).
    offset: u64,
    in_flight: std::collections::VecDeque<JoinHandle<io::Result<AlignedBlock>>>,
    /// Flush the file and its directory entries on close (else [`sync_filesystem`] does later).
    durable: bool,
}

impl LocalFileWriter {
    /// Starts writing `path` under `root`, staged in `root/staging_dir`.
    pub async fn create(root: &Path, staging_dir: &str, path: &str) -> Result<Self> {
        Self::open(root, staging_dir, path, true).await
    }

    /// As [`create`](Self::create), but `close` only renames the object into place: it is
    /// durable after the next [`sync_filesystem`] of `root`.
    pub async fn create_unsynced(root: &Path, staging_dir: &str, path: &str) -> Result<Self> {
        let mut w = Self::open(root, staging_dir, path, true).await?;
        w.durable = false;
        Ok(w)
    }

    /// As [`create`](Self::create); `try_direct: false` writes through the page cache.
    async fn open(root: &Path, staging_dir: &str, path: &str, try_direct: bool) -> Result<Self> {
        let staging = root
            .join(staging_dir)
            .join(format!("write-{}", uuid::Uuid::new_v4()));
        let destination = root.join(path);
        let opened = {
            let staging = staging.clone();
            tokio::task::spawn_blocking(move || open_staging(&staging, try_direct)).await
        };
        let file = opened
            .map_err(|e| Error::internal(format!("opening a staging file: {e}")))?
            .map_err(|e| io_error(e, path, "cannot start writing"))?;
        Ok(LocalFileWriter {
            path: path.to_string(),
            staging,
            destination,
            file: Arc::new(file),
            block: AlignedBlock::take(),
            offset: 0,
            in_flight: Default::default(),
            durable: true,
        })
    }

    /// Waits for the oldest write in flight and returns its block.
    async fn settle_oldest(&mut self) -> Result<Option<AlignedBlock>> {
        let Some(handle) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let block = handle
            .await
            .map_err(|e| Error::internal(format!("a write task failed: {e}")))?
            .map_err(|e| io_error(e, &self.path, "cannot write"))?;
        Ok(Some(block))
    }

    /// Waits for every write in flight; the first failure is returned once all have ended.
    async fn settle_all(&mut self) -> Result<()> {
        let mut first_error = None;
        while !self.in_flight.is_empty() {
            match self.settle_oldest().await {
                Ok(block) => block.into_iter().for_each(AlignedBlock::give_back),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Starts writing the full current block and continues in an empty one (the block of the
    /// oldest write once [`WRITES_IN_FLIGHT`] are under way).
    async fn submit(&mut self) -> Result<()> {
        let next = if self.in_flight.len() >= WRITES_IN_FLIGHT {
            self.settle_oldest().await?
        } else {
            None
        };
        let mut next = next.unwrap_or_else(AlignedBlock::take);
        next.len = 0;
        let mut full = std::mem::replace(&mut self.block, next);
        let file = self.file.clone();
        let offset = self.offset;
        self.offset += full.len as u64;
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                file.write_block(&mut full, offset).map(|()| full)
            }));
        Ok(())
    }

    /// Writes the last partial block, cuts the padding, flushes to the device and renames the
    /// staging file into place.
    async fn complete(&mut self) -> Result<()> {
        self.settle_all().await?;
        let mut last = std::mem::replace(&mut self.block, AlignedBlock::none());
        let file = self.file.clone();
        let (offset, staging, destination, durable) = (
            self.offset,
            self.staging.clone(),
            self.destination.clone(),
            self.durable,
        );
        let done = tokio::task::spawn_blocking(move || {
            let size = offset + last.len as u64;
            if last.len > 0 {
                file.write_block(&mut last, offset)?;
                if file.direct() {
                    file.inner.set_len(size)?;
                }
            }
            last.give_back();
            if durable {
                file.inner.sync_data()?;
            }
            let parent = destination.parent().unwrap_or(Path::new("/"));
            let created = create_dirs(parent)?;
            std::fs::rename(&staging, &destination)?;
            if !durable {
                return Ok(());
            }
            sync_dirs(std::iter::once(parent).chain(created.iter().map(PathBuf::as_path)))
        })
        .await
        .map_err(|e| Error::internal(format!("a write task failed: {e}")))?;
        done.map_err(|e| io_error(e, &self.path, "cannot complete"))
    }

    async fn discard(&mut self) {
        let _ = self.settle_all().await;
        let staging = self.staging.clone();
        let _ = tokio::fs::remove_file(staging).await;
    }
}

#[async_trait]
impl ObjectWriter for LocalFileWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = self.block.room().min(rest.len());
            self.block.push(&rest[..n]);
            rest = &rest[n..];
            if self.block.room() == 0 {
                self.submit().await?;
            }
        }
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        let result = self.complete().await;
        if result.is_err() {
            self.discard().await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.discard().await;
        Ok(())
    }
}

/// The whole file `path` under `root`, in one buffer of its size (OpenDAL's local read reserves
/// 2 MiB per read: loading 32 index entries of 1 KiB at once cost 64 MiB). A missing file is an
/// error of kind [`ErrorKind::NotFound`].
pub async fn read_all(root: &Path, path: &str) -> Result<Bytes> {
    let full = root.join(path);
    let read = tokio::task::spawn_blocking(move || std::fs::read(full))
        .await
        .map_err(|e| Error::internal(format!("reading a file: {e}")))?;
    read.map(Bytes::from).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::new(ErrorKind::NotFound, format!("`{path}` does not exist"))
        }
        _ => io_error(e, path, "cannot read"),
    })
}

/// Streams `range` of the file `path` under `root`; a range past the end reads to the end. A
/// missing file is an error of kind [`ErrorKind::NotFound`].
pub async fn read_range(root: &Path, path: &str, range: Range<u64>) -> Result<ByteStream> {
    read_range_with(root, path, range, true).await
}

async fn read_range_with(
    root: &Path,
    path: &str,
    range: Range<u64>,
    try_direct: bool,
) -> Result<ByteStream> {
    let full = root.join(path);
    let opened = tokio::task::spawn_blocking(move || open_for_reading(&full, try_direct))
        .await
        .map_err(|e| Error::internal(format!("opening a file: {e}")))?;
    let (file, size) = opened.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::new(ErrorKind::NotFound, format!("`{path}` does not exist"))
        }
        _ => io_error(e, path, "cannot read"),
    })?;
    let end = range.end.min(size);
    let reader = BlockReader {
        file: Arc::new(file),
        next: range.start.min(end),
        end,
        ahead: None,
        path: path.to_string(),
    };
    Ok(futures::stream::unfold(reader, |mut r| async move {
        let block = r.next_block().await?;
        Some((block, r))
    })
    .boxed())
}

/// Reads a file block by block, the next block being read while the consumer has this one.
struct BlockReader {
    file: Arc<DirectFile>,
    next: u64,
    end: u64,
    ahead: Option<JoinHandle<io::Result<Bytes>>>,
    path: String,
}

impl BlockReader {
    fn start_read(&mut self) {
        if self.next >= self.end {
            return;
        }
        let len = (self.end - self.next).min(BLOCK as u64) as usize;
        let (file, offset) = (self.file.clone(), self.next);
        self.next += len as u64;
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let bytes = file.read_at(offset, len)?;
            if bytes.len() < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended early (changed while read)",
                ));
            }
            Ok(bytes)
        }));
    }

    /// The next block, `None` at the end; after an error, the end.
    async fn next_block(&mut self) -> Option<Result<Bytes>> {
        if self.ahead.is_none() {
            self.start_read();
        }
        let handle = self.ahead.take()?;
        let result = match handle.await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(io_error(e, &self.path, "cannot read")),
            Err(e) => Err(Error::internal(format!("a read task failed: {e}"))),
        };
        match result {
            Ok(_) => self.start_read(),
            Err(_) => self.next = self.end,
        }
        Some(result)
    }
}

/// Opens a file for reading, with `O_DIRECT` if `try_direct` and the file system takes it, and
/// returns it with its size.
fn open_for_reading(path: &Path, try_direct: bool) -> io::Result<(DirectFile, u64)> {
    let open = |flags: i32| OpenOptions::new().read(true).custom_flags(flags).open(path);
    let (file, direct) = match open(if try_direct { libc::O_DIRECT } else { 0 }) {
        Ok(f) => (f, try_direct),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    Ok((
        DirectFile {
            inner: file,
            direct: AtomicBool::new(direct),
        },
        size,
    ))
}

/// Creates `dir` with any missing ancestors; returns the directories that gained an entry
/// through this: the parent of each directory created, deepest first. Flushing those (and `dir`
/// once it holds something new) makes the new names durable.
pub(crate) fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir)?;
    Ok(missing
        .iter()
        .filter_map(|d| d.parent())
        .map(Path::to_path_buf)
        .collect())
}

/// Flushes the whole file system holding `root` (`syncfs`): every file written and every name
/// created or renamed on it before the call is durable when it returns (errors of writeback
/// since the descriptor was opened are reported, Linux 5.8+). One call instead of an `fsync`
/// per file and directory for objects from [`LocalFileWriter::create_unsynced`].
pub(crate) fn sync_filesystem(root: &Path) -> io::Result<()> {
    let dir = File::open(root)?;
    // SAFETY: a valid, open descriptor for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Flushes each directory (`fsync`), making the names it holds durable.
pub(crate) fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    for dir in dirs {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates the staging file, with `O_DIRECT` if `try_direct` and the file system takes it.
fn open_staging(path: &Path, try_direct: bool) -> io::Result<DirectFile> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let open = |flags: i32| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(path)
    };
    let (file, direct) = match open(if try_direct { libc::O_DIRECT } else { 0 }) {
        Ok(f) => (f, try_direct),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
        Err(e) => return Err(e),
    };
    Ok(DirectFile {
        inner: file,
        direct: AtomicBool::new(direct),
    })
}

fn io_error(e: io::Error, path: &str, doing: &str) -> Error {
    let what = match e.kind() {
        io::ErrorKind::StorageFull => format!(
            "{doing} `{path}`: the repository's disk is full; free space there or back up to \
             another repository"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "{doing} `{path}`: permission denied; the repository directory must be writable by \
             this user"
        ),
        _ => format!("{doing} `{path}` in the repository"),
    };
    Error::with_source(ErrorKind::Storage, what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn write_in_pieces(root: &Path, path: &str, data: &[u8], piece: usize) -> Result<()> {
        write_with(root, path, data, piece, Mode::Direct).await
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Direct,
        Buffered,
        /// Direct, switched to buffered after the first block (as when a write is refused).
        Switched,
    }

    async fn write_with(
        root: &Path,
        path: &str,
        data: &[u8],
        piece: usize,
        mode: Mode,
    ) -> Result<()> {
        let mut w =
            Box::new(LocalFileWriter::open(root, ".tmp", path, mode != Mode::Buffered).await?);
        assert_eq!(
            w.file.direct(),
            mode != Mode::Buffered,
            "this file system refuses O_DIRECT"
        );
        for p in data.chunks(piece.max(1)) {
            w.write(Bytes::copy_from_slice(p)).await?;
            if mode == Mode::Switched && w.offset > 0 && w.file.direct() {
                w.file.stop_direct().unwrap();
            }
        }
        w.close().await
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    fn staged(root: &Path) -> usize {
        std::fs::read_dir(root.join(".tmp")).map_or(0, |d| d.count())
    }

    async fn round_trips_every_size_in(root: &Path, mode: Mode) {
        let sizes = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 12345,
        ];
        for (i, &n) in sizes.iter().enumerate() {
            for piece in [1000, 65536, BLOCK + 7] {
                let path = format!("d{i}/sub/obj-{n}-{piece}");
                let data = pattern(n);
                write_with(root, &path, &data, piece, mode).await.unwrap();
                let back = std::fs::read(root.join(&path)).unwrap();
                assert_eq!(back.len(), n, "size of {path}");
                assert!(back == data, "content of {path}");
            }
        }
        assert_eq!(staged(root), 0, "no staging file is left behind");
    }

    #[tokio::test]
    async fn objects_of_every_size_round_trip_with_direct_io() {
        let dir = tempfile::tempdir().unwrap();
        round_trips_every_size_in(dir.path(), Mode::Direct).await;
    }

    #[tokio::test]
    async fn objects_of_every_size_round_trip_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        round_trips_every_size_in(dir.path(), Mode::Buffered).await;
    }

    #[tokio::test]
    async fn objects_round_trip_when_direct_io_stops_midway() {
        let dir = tempfile::tempdir().unwrap();
        round_trips_every_size_in(dir.path(), Mode::Switched).await;
    }

    async fn read_all(root: &Path, path: &str, range: Range<u64>, direct: bool) -> Result<Vec<u8>> {
        let mut stream = read_range_with(root, path, range, direct).await?;
        let mut out = Vec::new();
        while let Some(b) = stream.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn ranges_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * BLOCK + 5000;
        let data = pattern(n);
        std::fs::write(dir.path().join("f"), &data).unwrap();
        let n = n as u64;
        let ranges = [
            0..u64::MAX,
            0..n,
            1..n - 1,
            4095..4097,
            BLOCK as u64 - 1..BLOCK as u64 + 1,
            n - 10..n + 100,
            n..u64::MAX,
            n + 5..n + 10,
            7..7,
        ];
        for direct in [true, false] {
            for r in ranges.clone() {
                let back = read_all(dir.path(), "f", r.clone(), direct).await.unwrap();
                let (s, e) = (r.start.min(n) as usize, r.end.min(n) as usize);
                assert!(back == data[s..e.max(s)], "range {r:?} (direct: {direct})");
            }
        }
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        assert!(read_all(dir.path(), "empty", 0..u64::MAX, true)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn unsynced_objects_are_readable_on_close_and_flushed_by_the_barrier() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(3 * BLOCK + 17);
        let mut w = LocalFileWriter::create_unsynced(dir.path(), ".tmp", "d/t/00000.x")
            .await
            .unwrap();
        w.write(Bytes::from(data.clone())).await.unwrap();
        Box::new(w).close().await.unwrap();
        // In place under its name at once, staging emptied; durable after the barrier.
        assert_eq!(std::fs::read(dir.path().join("d/t/00000.x")).unwrap(), data);
        assert_eq!(staged(dir.path()), 0);
        sync_filesystem(dir.path()).unwrap();
        assert!(sync_filesystem(&dir.path().join("missing")).is_err());
    }

    #[tokio::test]
    async fn a_missing_file_reads_as_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_range(dir.path(), "nope", 0..u64::MAX)
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("`nope` does not exist"), "{err}");
    }

    #[tokio::test]
    async fn a_closed_object_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        write_in_pieces(dir.path(), "a", &pattern(BLOCK + 5), 4096)
            .await
            .unwrap();
        write_in_pieces(dir.path(), "a", b"short", 2).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"short");
    }

    #[tokio::test]
    async fn an_aborted_object_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Box::new(
            LocalFileWriter::create(dir.path(), ".tmp", "x/y")
                .await
                .unwrap(),
        );
        w.write(Bytes::from(pattern(2 * BLOCK + 3))).await.unwrap();
        assert_eq!(staged(dir.path()), 1, "the object is staged while written");
        w.abort().await.unwrap();
        assert_eq!(staged(dir.path()), 0);
        assert!(!dir.path().join("x/y").exists());
    }

    #[tokio::test]
    async fn an_unwritable_repository_is_a_clear_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        let err = LocalFileWriter::create(&file, ".tmp", "a")
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Storage);
        assert!(
            err.to_string().contains("cannot start writing `a`"),
            "{err}"
        );
    }

    #[test]
    fn created_directories_name_the_parents_whose_entries_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("a")).unwrap();
        let deep = root.join("a/b/c/d");
        let changed = create_dirs(&deep).unwrap();
        assert!(deep.is_dir());
        assert_eq!(
            changed,
            vec![root.join("a/b/c"), root.join("a/b"), root.join("a")],
            "deepest first: d was added to c, c to b, b to a"
        );
        assert!(
            create_dirs(&deep).unwrap().is_empty(),
            "nothing new the second time"
        );
        sync_dirs(changed.iter().map(PathBuf::as_path)).unwrap();
        let missing = root.join("gone");
        assert!(sync_dirs([missing.as_path()]).is_err());
    }
}
