//! `binlog/index/<seq>.json`: one archived binlog segment's index entry, written after the
//! segment's data object: the segment's commit point. A *merged* entry (written by compaction,
//! [`SegmentIndex::merged_to`]) stands for the consecutive segments `seq..=merged_to` and
//! replaces the entry of its first one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::binlog::event::ChecksumAlg;
use crate::binlog::gtid::{Gtid, GtidPos};
use crate::manifest::FileEntry;

/// The newest segment index format this build reads. Format 1: MariaDB GTIDs only; format 2
/// (written only when a GTID field holds a MySQL `uuid:…` GTID or set, so MariaDB archives keep
/// writing format 1 byte for byte): MySQL GTIDs too; format 3 (written only by the first
/// segment of a new run, [`PieceStart::NewRun`]): a piece that starts after a hole. A holdfast
/// that predates a format refuses such an entry as newer than it knows instead of misreading
/// it (an older reader would not know that a hole precedes the piece); format 4 (written only by
/// compaction, for a merged entry): an entry that covers a range of sequence numbers (an older
/// reader would take the covered numbers for lost entries, and its stream would remove the
/// merged data object as debris).
pub const SEGMENT_FORMAT: u32 = 4;

/// The format of a merged entry (see [`SEGMENT_FORMAT`]).
pub const MERGED_SEGMENT_FORMAT: u32 = 4;

/// The format a segment index with these GTIDs and this piece start is written in (see
/// [`SEGMENT_FORMAT`]).
pub fn segment_format_for(
    state: &GtidPos,
    first: Option<&Gtid>,
    last: Option<&Gtid>,
    piece_start: Option<&PieceStart>,
) -> u32 {
    let mysql = |g: Option<&Gtid>| matches!(g, Some(Gtid::MySql(_)));
    if matches!(piece_start, Some(PieceStart::NewRun { .. })) {
        3
    } else if state.has_sources() || mysql(first) || mysql(last) {
        2
    } else {
        1
    }
}

/// One archived segment: a run of whole events of one binlog file, in the order the server
/// wrote them. The data object holds the events zstd-compressed; a segment with `header`
/// starts with the binlog magic and the file's format description event, so the segments of
/// one file instance, concatenated in order and decompressed, are a binlog file that
/// `mariadb-binlog` reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentIndex {
    pub format: u32,
    /// Archive order: 1, 2, 3 … with no reuse, across files, servers and failovers.
    pub seq: u64,
    /// Where the events come from.
    pub source: SegmentSource,
    /// File offset this segment's bytes continue from: 0 for a file's first segment (which
    /// holds the magic), else the offset of its first event. A header segment of a piece that
    /// starts mid-file holds a copy of the file's format description, then events from here.
    pub start_pos: u64,
    /// File offset just after the last event.
    pub end_pos: u64,
    /// The data starts with the magic and the file's format description (a piece's first segment).
    pub header: bool,
    /// For a piece's first segment: how the stream reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piece_start: Option<PieceStart>,
    pub checksum: ChecksumAlg,
    /// Events stored (the header's format description included).
    pub events: u64,
    /// Transactions (event groups) that end in this segment.
    pub transactions: u64,
    /// Timestamps (seconds since the epoch) of the first and last event, header excluded.
    pub first_event_time: u32,
    pub last_event_time: u32,
    /// First GTID that begins in this segment and last GTID that ends in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_gtid: Option<Gtid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_gtid: Option<Gtid>,
    /// The archive's GTID position after this segment (complete transactions only).
    pub gtid_state: GtidPos,
    /// The segment ends inside a transaction, which continues in the next segment.
    pub open_transaction: bool,
    /// The segment ends its file (a ROTATE or STOP event was its last event).
    pub ends_file: bool,
    /// Decompressed size.
    pub raw_size: u64,
    /// The data object (path relative to the repository root).
    pub object: FileEntry,
    #[serde(with = "time::serde::rfc3339")]
    pub archived: OffsetDateTime,
    /// A merged segment (written by compaction): the last sequence number it covers. It stands
    /// for the segments `seq..=merged_to`, whose events it holds in order; where an entry of a
    /// covered number still exists (a compaction was interrupted), readers ignore it. Absent on
    /// the segments the stream writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_to: Option<u64>,
    /// A merged segment: the data object of the entry it replaced at `seq` (removed by the
    /// compaction that wrote this entry, or by the next one when it was interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_object: Option<String>,
}

impl SegmentIndex {
    /// The last sequence number this entry stands for: `merged_to` for a merged segment, else
    /// `seq`. The next segment in the archive is numbered `last_seq() + 1`.
    pub fn last_seq(&self) -> u64 {
        self.merged_to.unwrap_or(self.seq).max(self.seq)
    }

    /// The sequence number, or the range a merged segment covers (`12-40`).
    pub fn seq_label(&self) -> String {
        match self.merged_to {
            Some(to) if to != self.seq => format!("{}-{to}", self.seq),
            _ => self.seq.to_string(),
        }
    }

    /// Names the segment for a message: its sequence number, data object, binlog file and
    /// positions, and the GTIDs it holds.
    pub fn describe(&self) -> String {
        let gtids = match (&self.first_gtid, &self.last_gtid) {
            (Some(a), Some(b)) if a != b => format!(", GTIDs {a} to {b}"),
            (Some(a), _) | (None, Some(a)) => format!(", GTID {a}"),
            (None, None) => String::new(),
        };
        let which = match self.merged_to {
            Some(_) => format!("merged segment {}", self.seq_label()),
            None => format!("segment {}", self.seq),
        };
        format!(
            "{which} (`{}`: {} positions {} to {}{gtids})",
            self.object.path, self.source.file, self.start_pos, self.end_pos
        )
    }
}

/// The binlog file instance a segment belongs to. A re-initialised server writing
/// `mysql-bin.000001` again has another creation time, so its files never collide.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct SegmentSource {
    /// `server_id` of the server whose binlog this is (from its format description event).
    pub server_id: u32,
    pub server_version: String,
    pub file: String,
    /// Timestamp of the file's format description event: when the file was started.
    pub file_created: u32,
}

/// How the streamer arrived at the first event of a piece of a file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PieceStart {
    /// The server went on to this file while streaming (after a rotate event, or after a crash
    /// left the previous file without one): continuous with the previous segment.
    Rotation,
    /// Reconnected to the same server and file at the archive's end position.
    Position,
    /// Connected by GTID (first start, a restart on another server, a failover): continuous
    /// from `from`.
    Gtid { from: GtidPos },
    /// Started at the oldest binlog the server had, with nothing archived before it.
    Oldest,
    /// A new run of the archive after a hole: the server no longer had the binlogs the archive
    /// needed to continue (they were purged while nothing streamed), so streaming started
    /// again further on. Transactions after `after_gap_from` (the archive's state where the
    /// previous run ended) and up to `from` were never archived: no recovery crosses this
    /// point, and a point after it needs a base backup at or after `from`.
    NewRun {
        after_gap_from: GtidPos,
        /// Where this run starts: the GTID position streamed from (the newest backup's
        /// consistent point, or the server's state before its oldest binlog); `None` when
        /// unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<GtidPos>,
        /// Why the run started here, for humans.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_segments_keep_format_1_and_mysql_ones_are_format_2() {
        let maria: GtidPos = "0-1-5".parse().unwrap();
        let g: Gtid = "0-1-5".parse().unwrap();
        assert_eq!(segment_format_for(&maria, Some(&g), Some(&g), None), 1);
        assert_eq!(segment_format_for(&GtidPos::new(), None, None, None), 1);
        let set: GtidPos = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".parse().unwrap();
        let m: Gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:5".parse().unwrap();
        assert_eq!(segment_format_for(&set, None, None, None), 2);
        assert_eq!(segment_format_for(&GtidPos::new(), Some(&m), None, None), 2);
        assert!(segment_format_for(&set, Some(&m), Some(&m), None) <= SEGMENT_FORMAT);
        // Only a new run's first segment needs format 3; the rest keep theirs.
        let rotation = PieceStart::Rotation;
        assert_eq!(
            segment_format_for(&maria, Some(&g), Some(&g), Some(&rotation)),
            1
        );
        let new_run = PieceStart::NewRun {
            after_gap_from: maria.clone(),
            from: None,
            reason: "purged".into(),
        };
        assert_eq!(segment_format_for(&maria, None, None, Some(&new_run)), 3);
        assert_eq!(SEGMENT_FORMAT, 4);
        assert_eq!(MERGED_SEGMENT_FORMAT, SEGMENT_FORMAT);
    }
}
