//! The binlog archive in a repository: segment data objects and their index entries.
//!
//! ```text
//! binlog/data/<server_id>/<file>@<created>/<start_pos>.<seq>.zst   events, zstd-compressed
//! binlog/data/<server_id>/<file>@<created>/<start_pos>.<first>-<last>.zst   a merged segment
//! binlog/index/<seq>.json                                     SegmentIndex, written after the data
//! binlog/stream-status.json                                   StreamStatus, the streamer's heartbeat
//! ```
//!
//! A segment exists if and only if its index entry exists (the same commit rule as backups). Data
//! objects without an index entry are debris of an interrupted write; the streamer removes those
//! numbered after the archive's last segment when it starts. Within one file instance the data
//! objects sort by position, so `cat binlog/data/1/mysql-bin.000003@1700000000/*.zst | zstd -d`
//! is that binlog file (when it was archived as one piece, and no compaction is half done).
//!
//! Compaction ([`super::compact`]) replaces the entry of a run's first segment with a *merged*
//! entry covering the run's numbers ([`SegmentIndex::merged_to`]); [`resolve`] is the reading
//! rule: an entry whose number a merged entry covers is ignored, so a reader sees the small
//! segments or the merged one, never both and never neither.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::manifest::{
    decode_self_checked, decode_versioned, encode_self_checked, FileEntry, SegmentIndex,
    SegmentSource, StreamStatus, SEGMENT_FORMAT, STREAM_STATUS_FORMAT,
};
use crate::pipeline::{read_all_verified, read_verified, Decompressor, HashingSink, ZstdSink};
use crate::storage::Storage;
use crate::{Error, ErrorKind, Result};

pub const DATA_DIR: &str = "binlog/data/";
pub const INDEX_DIR: &str = "binlog/index/";
/// The streamer's heartbeat record (overwritten in place).
pub const STREAM_STATUS_PATH: &str = "binlog/stream-status.json";
/// zstd level for segments: they are small and written every second, so favour speed.
const SEGMENT_ZSTD_LEVEL: i32 = 3;

/// The archive of one repository.
#[derive(Debug, Clone)]
pub struct Archive {
    storage: Arc<dyn Storage>,
}

impl Archive {
    pub fn new(storage: Arc<dyn Storage>) -> Archive {
        Archive { storage }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Sequence numbers of every index entry, ascending (merged entries and the entries they
    /// cover included).
    pub async fn sequence_numbers(&self) -> Result<Vec<u64>> {
        let mut seqs: Vec<u64> = self
            .storage
            .list(INDEX_DIR)
            .await?
            .iter()
            .filter_map(|o| parse_index_name(&o.path))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Every committed segment, in archive order: merged segments in place of the ones they
    /// cover (see [`resolve`]).
    pub async fn segments(&self) -> Result<Vec<SegmentIndex>> {
        Ok(resolve(self.entries().await?).live)
    }

    /// Every index entry, ascending by `seq`, loaded [`PARALLEL_INDEX_LOADS`] at a time. An
    /// entry listed and then gone (a compaction or an expire removed it meanwhile) makes the
    /// listing start over, a few times.
    pub async fn entries(&self) -> Result<Vec<SegmentIndex>> {
        let mut attempt = 0;
        loop {
            let seqs = self.sequence_numbers().await?;
            let loaded: Vec<Result<SegmentIndex>> = futures::stream::iter(seqs)
                .map(|seq| self.load_index(seq))
                .buffered(PARALLEL_INDEX_LOADS)
                .collect()
                .await;
            match loaded.into_iter().collect::<Result<Vec<_>>>() {
                Err(e) if e.kind() == ErrorKind::NotFound && attempt < 4 => attempt += 1,
                other => return other,
            }
        }
    }

    /// The newest committed segment, if any.
    pub async fn last_segment(&self) -> Result<Option<SegmentIndex>> {
        Ok(self.segments().await?.pop())
    }

    pub async fn load_index(&self, seq: u64) -> Result<SegmentIndex> {
        let path = index_path(seq);
        let bytes = self.storage.get(&path).await?;
        let index: SegmentIndex =
            decode_self_checked(&bytes, &format!("`{path}`"), SEGMENT_FORMAT)?;
        if index.seq != seq {
            return Err(Error::integrity(format!(
                "`{path}` describes segment {} instead of {seq}",
                index.seq
            )));
        }
        Ok(index)
    }

    /// Writes the data object of a merged segment (see [`super::compact`]): the events of `run`,
    /// in order, streamed one segment at a time (each checked against its entry as
    /// [`read_segment`](Self::read_segment) checks it, and decompressed piece by piece) into one
    /// zstd stream, hashed and counted as it is written. Memory is a few buffers of a few MiB,
    /// whatever the size of the run or of its segments. Returns `index` with `object` and
    /// `raw_size` filled in. Nothing is committed: [`commit_merged`](Self::commit_merged) does
    /// that. On an error the write is aborted; a crash leaves a staged file or an incomplete
    /// upload (`cleanup` removes them), and a failure while closing may leave a data object no
    /// entry names (debris, see [`super::compact::compaction_debris`]).
    pub async fn write_merged_data(
        &self,
        mut index: SegmentIndex,
        run: &[SegmentIndex],
    ) -> Result<SegmentIndex> {
        let path = merged_data_path(&index.source, index.start_pos, index.seq, index.last_seq());
        let sink = HashingSink::create(&*self.storage, &path, &path).await?;
        let mut out = ZstdSink::new(sink, SEGMENT_ZSTD_LEVEL)?;
        for segment in run {
            if let Err(e) = self.copy_segment(segment, &mut out).await {
                out.abort().await;
                return Err(e);
            }
        }
        index.raw_size = out.raw_size();
        index.object = out.finish().await?;
        Ok(index)
    }

    /// Commits a merged segment whose data object
    /// [`write_merged_data`](Self::write_merged_data) wrote: its index entry at `index.seq`
    /// replaces the entry of the run's first segment (an atomic replace on every store: a
    /// reader gets the old entry or the new one). Durable when it returns `Ok`.
    pub async fn commit_merged(&self, index: &SegmentIndex) -> Result<()> {
        let body = encode_self_checked(index)?;
        self.storage
            .put(&index_path(index.seq), Bytes::from(body))
            .await
    }

    /// Appends `segment`'s events to `out`, checked as [`read_segment`](Self::read_segment)
    /// checks them. The object's SHA-256 is known only at its end, after its bytes went into
    /// `out`: an error means the caller must abandon `out`.
    async fn copy_segment(&self, segment: &SegmentIndex, out: &mut ZstdSink) -> Result<()> {
        let path = &segment.object.path;
        let copied = async {
            let mut stream = read_verified(&*self.storage, path, &segment.object).await?;
            let mut decompressor = Decompressor::new(path)?;
            let start = out.raw_size();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let mut rest = &chunk[..];
                while let Some((used, piece)) = decompressor.feed_piece(rest)? {
                    rest = &rest[used..];
                    if out.raw_size() - start + piece.len() as u64 > segment.raw_size {
                        return Err(Error::integrity(format!(
                            "`{path}` decompresses to more than the {} bytes its index says",
                            segment.raw_size
                        )));
                    }
                    out.write(piece).await?;
                }
            }
            decompressor.finish()?;
            let raw = out.raw_size() - start;
            if raw != segment.raw_size {
                return Err(Error::integrity(format!(
                    "`{path}` decompresses to {raw} bytes, its index says {}",
                    segment.raw_size
                )));
            }
            Ok(())
        };
        copied.await.map_err(|e| e.context(segment.describe()))
    }

    /// Stores a segment's events (data first, then the index entry, which commits it).
    /// `index.object` is filled in here; the rest of `index` describes `raw`.
    pub async fn write_segment(&self, mut index: SegmentIndex, raw: &[u8]) -> Result<SegmentIndex> {
        let compressed = zstd::bulk::compress(raw, SEGMENT_ZSTD_LEVEL)
            .map_err(|e| Error::internal(format!("compressing a binlog segment: {e}")))?;
        let path = data_path(&index.source, index.start_pos, index.seq);
        index.object = FileEntry {
            path: path.clone(),
            size: compressed.len() as u64,
            sha256: hex::encode(Sha256::digest(&compressed)),
        };
        index.raw_size = raw.len() as u64;
        self.storage.put(&path, Bytes::from(compressed)).await?;
        let body = encode_self_checked(&index)?;
        let index_path = index_path(index.seq);
        if !self
            .storage
            .put_if_absent(&index_path, Bytes::from(body))
            .await?
        {
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "`{index_path}` already exists: another streamer is writing to this archive"
                ),
            ));
        }
        Ok(index)
    }

    /// A segment's events, verified against its index entry and decompressed. A missing,
    /// truncated or altered data object is an `Integrity` error naming the segment.
    pub async fn read_segment(&self, index: &SegmentIndex) -> Result<Vec<u8>> {
        self.read_segment_inner(index)
            .await
            .map_err(|e| e.context(index.describe()))
    }

    async fn read_segment_inner(&self, index: &SegmentIndex) -> Result<Vec<u8>> {
        let compressed =
            read_all_verified(&*self.storage, &index.object.path, &index.object).await?;
        let raw = zstd::bulk::decompress(&compressed, index.raw_size as usize).map_err(|e| {
            Error::integrity(format!("`{}` does not decompress: {e}", index.object.path))
        })?;
        if raw.len() as u64 != index.raw_size {
            return Err(Error::integrity(format!(
                "`{}` decompresses to {} bytes, its index says {}",
                index.object.path,
                raw.len(),
                index.raw_size
            )));
        }
        Ok(raw)
    }

    /// The streamer's heartbeat record, or `None` when no streamer has written one (an archive
    /// written by an older holdfast, or none at all). A record newer than this build reads is a
    /// `RepoInvalid` error; a malformed one is `Integrity`.
    pub async fn stream_status(&self) -> Result<Option<StreamStatus>> {
        match self.storage.get(STREAM_STATUS_PATH).await {
            Ok(bytes) => Ok(Some(decode_versioned(
                &bytes,
                &format!("`{STREAM_STATUS_PATH}`"),
                STREAM_STATUS_FORMAT,
            )?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Overwrites the heartbeat record. Only the archive's single writer (the holder of the
    /// stream lock) calls this; a reader may still see the previous record.
    pub async fn write_stream_status(&self, status: &StreamStatus) -> Result<()> {
        let body = serde_json::to_vec_pretty(status)
            .map_err(|e| Error::internal(format!("encoding the stream status: {e}")))?;
        self.storage
            .put(STREAM_STATUS_PATH, Bytes::from(body))
            .await
    }

    /// Streams a segment's data object through its SHA-256 and size check without keeping
    /// it; returns the bytes read. A missing, truncated or altered object is an `Integrity`
    /// error (missing: a committed object is gone, never `NotFound`).
    pub async fn check_segment(&self, index: &SegmentIndex) -> Result<u64> {
        let mut stream = read_verified(&*self.storage, &index.object.path, &index.object).await?;
        let mut bytes = 0;
        while let Some(chunk) = stream.next().await {
            bytes += chunk?.len() as u64;
        }
        Ok(bytes)
    }

    /// Paths of every data object in the archive (one listing; nothing is read).
    pub async fn data_objects(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .storage
            .list(DATA_DIR)
            .await?
            .into_iter()
            .map(|o| o.path)
            .collect())
    }

    /// Removes data objects numbered after the archive's last index entry (`last_seq`, 0 for
    /// an empty archive): debris of an interrupted segment write. Only the archive's single
    /// writer may call this. Objects of lower numbers are never touched: they belong to
    /// committed segments, or to a compaction (which cleans up after itself).
    ///
    /// Cheap whatever the archive's size: it lists the directory names (servers, then file
    /// instances) and only the objects of the file instances an interrupted write can have
    /// used: the one the archive ends in (`committed`'s last) and any that no committed segment
    /// is in (a new file, or another server after a failover).
    pub async fn remove_debris(
        &self,
        committed: &[SegmentIndex],
        last_seq: u64,
    ) -> Result<Vec<String>> {
        let debris = self.debris(committed, last_seq).await?;
        for path in &debris {
            self.storage.delete(path).await?;
        }
        Ok(debris)
    }

    /// What [`remove_debris`](Self::remove_debris) would remove, removing nothing.
    pub async fn debris(&self, committed: &[SegmentIndex], last_seq: u64) -> Result<Vec<String>> {
        let used: std::collections::HashSet<String> =
            committed.iter().map(|s| instance_dir(&s.source)).collect();
        let mut dirs: Vec<String> = committed
            .last()
            .map(|s| instance_dir(&s.source))
            .into_iter()
            .collect();
        for server in self.storage.list_dirs(DATA_DIR).await? {
            let prefix = format!("{DATA_DIR}{server}/");
            for instance in self.storage.list_dirs(&prefix).await? {
                let dir = format!("{prefix}{instance}/");
                if !used.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        let mut found = Vec::new();
        for dir in dirs {
            for object in self.storage.list(&dir).await? {
                if parse_data_name(&object.path).is_some_and(|(first, _)| first > last_seq) {
                    found.push(object.path);
                }
            }
        }
        Ok(found)
    }
}

/// Index entries sorted into what readers use and what they ignore.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// The committed segments in archive order: each merged segment in place of the ones it
    /// covers.
    pub live: Vec<SegmentIndex>,
    /// Entries whose number a merged entry covers: left by an interrupted compaction, ignored
    /// by readers and removed by the next compaction.
    pub covered: Vec<SegmentIndex>,
}

/// The reading rule of the archive: entries ascending by `seq`; an entry whose number lies
/// inside the range of an earlier live merged entry (`seq < n <= merged_to`) is covered. So a
/// crash at any point of a compaction leaves a reader exactly one copy of every event: the
/// small segments (before the merged entry is written) or the merged one (after).
pub fn resolve(mut entries: Vec<SegmentIndex>) -> Resolved {
    entries.sort_by_key(|e| e.seq);
    let mut out = Resolved::default();
    let mut covered_to = 0u64;
    for e in entries {
        if e.seq <= covered_to {
            out.covered.push(e);
        } else {
            covered_to = covered_to.max(e.last_seq());
            out.live.push(e);
        }
    }
    out
}

/// Loads index entries this many at a time.
pub const PARALLEL_INDEX_LOADS: usize = 32;

pub fn index_path(seq: u64) -> String {
    format!("{INDEX_DIR}{seq:012}.json")
}

fn parse_index_name(path: &str) -> Option<u64> {
    path.strip_prefix(INDEX_DIR)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// `binlog/data/<server_id>/<file>@<created>/<start_pos>.<seq>.zst`, named by the file offset
/// the segment's bytes start at (0 for the first segment of a file: it holds the magic), so
/// that the objects of one file sort in file order; the sequence number keeps names unique.
pub fn data_path(source: &SegmentSource, start_pos: u64, seq: u64) -> String {
    format!("{}{start_pos:012}.{seq:08}.zst", instance_dir(source))
}

/// `binlog/data/<server_id>/<file>@<created>/`: where one file instance's objects live.
pub fn instance_dir(source: &SegmentSource) -> String {
    format!(
        "{DATA_DIR}{}/{}@{}/",
        source.server_id,
        encode_file_name(&source.file),
        source.file_created
    )
}

/// `…/<start_pos>.<first>-<last>.zst`: a merged segment's data object, beside the objects it
/// replaces (named apart from them, so writing it never overwrites one).
pub fn merged_data_path(source: &SegmentSource, start_pos: u64, first: u64, last: u64) -> String {
    let small = data_path(source, start_pos, first);
    let stem = small.strip_suffix(".zst").expect("data paths end in .zst");
    format!("{stem}-{last:08}.zst")
}

/// The sequence numbers a data object's name carries: `(seq, seq)` for a segment,
/// `(first, last)` for a merged one; `None` for a name holdfast did not write.
pub fn parse_data_name(path: &str) -> Option<(u64, u64)> {
    let name = path.rsplit('/').next()?.strip_suffix(".zst")?;
    let (_pos, seqs) = name.split_once('.')?;
    match seqs.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => {
            let n = seqs.parse().ok()?;
            Some((n, n))
        }
    }
}

/// Binlog file names keep their dots (`mysql-bin.000003`), so the archive reads like the
/// server's directory; anything unusual is percent-encoded.
fn encode_file_name(name: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');
    match name {
        "." | ".." | "" => utf8_percent_encode(name, NON_ALPHANUMERIC).to_string(),
        _ => utf8_percent_encode(name, SET).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_in_file_order_and_round_trip() {
        let source = SegmentSource {
            server_id: 7,
            server_version: "10.11".into(),
            file: "mysql-bin.000003".into(),
            file_created: 1_700_000_000,
        };
        assert_eq!(
            data_path(&source, 0, 5),
            "binlog/data/7/mysql-bin.000003@1700000000/000000000000.00000005.zst"
        );
        assert!(data_path(&source, 9_999, 9) < data_path(&source, 10_000, 8));
        assert_eq!(parse_index_name(&index_path(42)), Some(42));
        assert_eq!(parse_data_name(&data_path(&source, 4, 9)), Some((9, 9)));
        let merged = merged_data_path(&source, 0, 5, 17);
        assert_eq!(
            merged,
            "binlog/data/7/mysql-bin.000003@1700000000/000000000000.00000005-00000017.zst"
        );
        assert_eq!(parse_data_name(&merged), Some((5, 17)));
        assert_eq!(parse_data_name("binlog/data/7/x@1/notes.txt"), None);
        assert_eq!(parse_index_name("binlog/index/x.json"), None);
    }
}
