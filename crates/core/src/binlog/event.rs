//! Binlog event framing: the v4 event header, checksums, and the few event bodies holdfast
//! needs to understand (rotation, format description, GTIDs of both flavors, transaction ends,
//! queries). MySQL's GTID and PREVIOUS_GTIDS bodies are decoded by mysql_common.
//!
//! Every parser checks lengths before it reads, so truncated or corrupt bytes are an
//! [`ErrorKind::Integrity`] error naming what is wrong, never a panic. Events are kept as the
//! exact bytes the server sent (header, body and checksum): holdfast archives them unchanged.

use crate::binlog::gtid::{Gtid, GtidPos, MariaGtid, MysqlGtid};
use crate::{Error, Result};

/// The four bytes every binlog file starts with.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Length of a v4 event header.
pub const HEADER_LEN: usize = 19;
/// Length of a CRC32 event checksum.
pub const CHECKSUM_LEN: usize = 4;
/// Events larger than this are refused as corrupt (the server's own hard limit is 1 GiB).
pub const MAX_EVENT_SIZE: u32 = 1 << 30;

/// Event type codes (MySQL and MariaDB share the low numbers; MariaDB's own start at 160).
pub mod kind {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    /// MySQL: the statement text of the row events that follow (informational).
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS: u8 = 30;
    pub const UPDATE_ROWS: u8 = 31;
    pub const DELETE_ROWS: u8 = 32;
    /// MySQL: starts a transaction with a GTID (`uuid:gno`).
    pub const MYSQL_GTID: u8 = 33;
    /// MySQL: starts a transaction without a GTID (gtid_mode OFF or transitioning).
    pub const ANONYMOUS_GTID: u8 = 34;
    /// MySQL: the GTID set of everything before this file, after its format description.
    pub const PREVIOUS_GTIDS: u8 = 35;
    pub const TRANSACTION_CONTEXT: u8 = 36;
    pub const VIEW_CHANGE: u8 = 37;
    pub const XA_PREPARE: u8 = 38;
    pub const ANNOTATE_ROWS: u8 = 160;
    pub const BINLOG_CHECKPOINT: u8 = 161;
    pub const GTID: u8 = 162;
    pub const GTID_LIST: u8 = 163;
    pub const START_ENCRYPTION: u8 = 164;
    pub const QUERY_COMPRESSED: u8 = 165;
    pub const WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    pub const DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    pub const WRITE_ROWS_COMPRESSED: u8 = 169;
    pub const UPDATE_ROWS_COMPRESSED: u8 = 170;
    pub const DELETE_ROWS_COMPRESSED: u8 = 171;
}

/// Header flag of a file's format description: the file is open (not closed cleanly yet).
pub const FLAG_BINLOG_IN_USE: u16 = 0x1;

/// Header flag: the event was made up by the server for the stream (fake rotate, re-sent
/// format description), not read from the binlog file.
pub const FLAG_ARTIFICIAL: u16 = 0x20;

/// The fixed 19-byte header of every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// Seconds since the epoch when the statement began (the commit time for XID events).
    pub timestamp: u32,
    pub type_code: u8,
    /// The server that originally wrote the event (the primary's id on a replica).
    pub server_id: u32,
    /// Whole event length: header, body and checksum.
    pub event_size: u32,
    /// Position just after this event in the file it was written to (0 for artificial events).
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    /// Parses a header, checking the declared size is plausible.
    pub fn parse(buf: &[u8]) -> Result<EventHeader> {
        if buf.len() < HEADER_LEN {
            return Err(Error::integrity(format!(
                "truncated binlog event header: {} of {HEADER_LEN} bytes",
                buf.len()
            )));
        }
        let header = EventHeader {
            timestamp: u32_le(&buf[0..4]),
            type_code: buf[4],
            server_id: u32_le(&buf[5..9]),
            event_size: u32_le(&buf[9..13]),
            log_pos: u32_le(&buf[13..17]),
            flags: u16::from_le_bytes([buf[17], buf[18]]),
        };
        if (header.event_size as usize) < HEADER_LEN || header.event_size > MAX_EVENT_SIZE {
            return Err(Error::integrity(format!(
                "corrupt binlog event header: type {} declares a size of {} bytes",
                header.type_code, header.event_size
            )));
        }
        Ok(header)
    }

    pub fn is_artificial(&self) -> bool {
        self.flags & FLAG_ARTIFICIAL != 0
    }
}

/// Which checksum trails each event, as announced by the format description event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlg {
    Off,
    Crc32,
}

impl ChecksumAlg {
    fn trailer_len(self) -> usize {
        match self {
            ChecksumAlg::Off => 0,
            ChecksumAlg::Crc32 => CHECKSUM_LEN,
        }
    }
}

/// One whole event as raw bytes, checked for framing (and checksum, when there is one).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub header: EventHeader,
    raw: &'a [u8],
    checksum: ChecksumAlg,
}

impl<'a> Event<'a> {
    /// Frames the event at the start of `buf` (which may hold more after it). `checksum` is the
    /// algorithm announced by the current format description; a format description event carries
    /// its own. Returns the event; its length is `header.event_size`.
    pub fn parse(buf: &'a [u8], checksum: ChecksumAlg) -> Result<Event<'a>> {
        let header = EventHeader::parse(buf)?;
        let size = header.event_size as usize;
        if buf.len() < size {
            return Err(Error::integrity(format!(
                "truncated binlog event: type {} declares {size} bytes, {} present",
                header.type_code,
                buf.len()
            )));
        }
        let raw = &buf[..size];
        let checksum = if header.type_code == kind::FORMAT_DESCRIPTION {
            fde_checksum_alg(raw)?
        } else {
            checksum
        };
        if size < HEADER_LEN + checksum.trailer_len() {
            return Err(Error::integrity(format!(
                "corrupt binlog event: type {} of {size} bytes has no room for its checksum",
                header.type_code
            )));
        }
        let event = Event {
            header,
            raw,
            checksum,
        };
        event.verify_checksum()?;
        Ok(event)
    }

    /// The whole event as stored: header, body, checksum.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The event body: after the header, without the checksum.
    pub fn body(&self) -> &'a [u8] {
        &self.raw[HEADER_LEN..self.raw.len() - self.checksum.trailer_len()]
    }

    pub fn checksum_alg(&self) -> ChecksumAlg {
        self.checksum
    }

    fn verify_checksum(&self) -> Result<()> {
        if self.checksum == ChecksumAlg::Off {
            return Ok(());
        }
        let (data, stored) = self.raw.split_at(self.raw.len() - CHECKSUM_LEN);
        let mut computed = crc32fast::hash(data);
        if computed != u32_le(stored)
            && self.header.type_code == kind::FORMAT_DESCRIPTION
            && self.header.flags & FLAG_BINLOG_IN_USE != 0
        {
            // The server sets "in use" in the file's format description after checksumming
            // it, and clears it on a clean close: the checksum covers the flag cleared.
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&data[..17]);
            hasher.update(&(self.header.flags & !FLAG_BINLOG_IN_USE).to_le_bytes());
            hasher.update(&data[19..]);
            computed = hasher.finalize();
        }
        if computed != u32_le(stored) {
            return Err(Error::integrity(format!(
                "binlog event checksum mismatch: type {} ending at position {}",
                self.header.type_code, self.header.log_pos
            )));
        }
        Ok(())
    }
}

/// Recomputes the CRC32 trailer of an event whose bytes were changed (for example a re-sent
/// format description whose position holdfast restores).
pub fn reseal_checksum(raw: &mut [u8]) {
    if raw.len() < HEADER_LEN + CHECKSUM_LEN {
        return;
    }
    let split = raw.len() - CHECKSUM_LEN;
    let crc = crc32fast::hash(&raw[..split]);
    raw[split..].copy_from_slice(&crc.to_le_bytes());
}

/// FORMAT_DESCRIPTION: the first event of every binlog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescription {
    pub binlog_version: u16,
    pub server_version: String,
    /// When the file was created (0 except for the first file after a server start).
    pub created: u32,
    pub header_len: u8,
    pub checksum: ChecksumAlg,
}

const FDE_FIXED: usize = 2 + 50 + 4 + 1;

/// A checksum-aware server always ends its format description with the algorithm byte and a
/// 4-byte checksum field (zero when checksums are off).
fn fde_checksum_alg(raw: &[u8]) -> Result<ChecksumAlg> {
    if raw.len() < HEADER_LEN + FDE_FIXED + 1 + CHECKSUM_LEN {
        return Err(Error::integrity(format!(
            "truncated format description event: {} bytes",
            raw.len()
        )));
    }
    match raw[raw.len() - CHECKSUM_LEN - 1] {
        0 => Ok(ChecksumAlg::Off),
        1 => Ok(ChecksumAlg::Crc32),
        other => Err(Error::integrity(format!(
            "format description event names unknown checksum algorithm {other}"
        ))),
    }
}

impl FormatDescription {
    pub fn parse(event: &Event<'_>) -> Result<FormatDescription> {
        let body = event.body();
        if body.len() < FDE_FIXED {
            return Err(Error::integrity("truncated format description event"));
        }
        let version = &body[2..52];
        let end = version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(version.len());
        Ok(FormatDescription {
            binlog_version: u16::from_le_bytes([body[0], body[1]]),
            server_version: String::from_utf8_lossy(&version[..end]).into_owned(),
            created: u32_le(&body[52..56]),
            header_len: body[56],
            checksum: event.checksum_alg(),
        })
    }
}

/// ROTATE: the name of the next binlog file (and the position to continue at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotate {
    pub position: u64,
    pub next_file: String,
}

impl Rotate {
    pub fn parse(event: &Event<'_>) -> Result<Rotate> {
        let body = event.body();
        if body.len() < 9 {
            return Err(Error::integrity("truncated rotate event"));
        }
        let next_file = std::str::from_utf8(&body[8..])
            .map_err(|_| Error::integrity("rotate event names a file that is not UTF-8"))?;
        Ok(Rotate {
            position: u64::from_le_bytes(body[0..8].try_into().expect("8 bytes")),
            next_file: next_file.to_string(),
        })
    }
}

/// GTID flags of MariaDB's GTID event.
pub mod gtid_flags {
    /// The group is one statement with no BEGIN/COMMIT (DDL, non-transactional).
    pub const STANDALONE: u8 = 1;
    pub const GROUP_COMMIT_ID: u8 = 2;
    pub const TRANSACTIONAL: u8 = 4;
    pub const ALLOW_PARALLEL: u8 = 8;
    pub const WAITED: u8 = 16;
    pub const DDL: u8 = 32;
    pub const PREPARED_XA: u8 = 64;
    pub const COMPLETED_XA: u8 = 128;
}

/// A GTID event: starts every event group (transaction or standalone statement). MariaDB's
/// carries flags that say whether the group is standalone; MySQL's does not (its flags here are
/// 0), the group's first statement tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: Gtid,
    pub flags: u8,
    pub commit_id: Option<u64>,
}

impl GtidEvent {
    pub fn parse(event: &Event<'_>) -> Result<GtidEvent> {
        let body = event.body();
        if body.len() < 13 {
            return Err(Error::integrity("truncated GTID event"));
        }
        let seq = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
        let domain = u32_le(&body[8..12]);
        let flags = body[12];
        let commit_id = if flags & gtid_flags::GROUP_COMMIT_ID != 0 {
            let bytes = body
                .get(13..21)
                .ok_or_else(|| Error::integrity("truncated GTID event (commit id)"))?;
            Some(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
        } else {
            None
        };
        Ok(GtidEvent {
            gtid: Gtid::MariaDb(MariaGtid {
                domain,
                server: event.header.server_id,
                seq,
            }),
            flags,
            commit_id,
        })
    }

    /// MySQL's GTID event (type 33).
    pub fn parse_mysql(event: &Event<'_>) -> Result<GtidEvent> {
        use mysql_common::binlog::events::{FormatDescriptionEvent, GtidEvent as MyGtid};
        use mysql_common::binlog::{consts::BinlogVersion, BinlogCtx};
        use mysql_common::io::ParseBuf;
        use mysql_common::proto::MyDeserialize;
        let body = event.body();
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ctx = BinlogCtx::new(event.raw().len(), &fde, kind::MYSQL_GTID);
        let parsed = MyGtid::deserialize(ctx, &mut ParseBuf(body))
            .map_err(|e| Error::integrity(format!("corrupt MySQL GTID event: {e}")))?;
        if parsed.gno() == 0 {
            return Err(Error::integrity(
                "corrupt MySQL GTID event: transaction number 0",
            ));
        }
        Ok(GtidEvent {
            gtid: Gtid::MySql(MysqlGtid {
                sid: uuid::Uuid::from_bytes(parsed.sid()),
                gno: parsed.gno(),
            }),
            flags: 0,
            commit_id: None,
        })
    }

    pub fn is_standalone(&self) -> bool {
        self.flags & gtid_flags::STANDALONE != 0
    }
}

/// MariaDB's GTID_LIST event: the binlog state (last GTID per domain and server) at the start
/// of a file, written after its format description.
pub fn parse_gtid_list(event: &Event<'_>) -> Result<Vec<Gtid>> {
    let body = event.body();
    if body.len() < 4 {
        return Err(Error::integrity("truncated GTID list event"));
    }
    let count = (u32_le(&body[0..4]) & 0x0fff_ffff) as usize;
    let entries = &body[4..];
    if entries.len() < count * 16 {
        return Err(Error::integrity(format!(
            "truncated GTID list event: {count} entries declared, {} bytes present",
            entries.len()
        )));
    }
    Ok(entries
        .chunks_exact(16)
        .take(count)
        .map(|e| {
            Gtid::MariaDb(MariaGtid {
                domain: u32_le(&e[0..4]),
                server: u32_le(&e[4..8]),
                seq: u64::from_le_bytes(e[8..16].try_into().expect("8 bytes")),
            })
        })
        .collect())
}

/// MySQL's PREVIOUS_GTIDS event: the GTID set of everything written before this file.
pub fn parse_previous_gtids(event: &Event<'_>) -> Result<GtidPos> {
    use mysql_common::binlog::events::{FormatDescriptionEvent, PreviousGtidsEvent};
    use mysql_common::binlog::{consts::BinlogVersion, BinlogCtx};
    use mysql_common::io::ParseBuf;
    use mysql_common::proto::MyDeserialize;
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let ctx = BinlogCtx::new(event.raw().len(), &fde, kind::PREVIOUS_GTIDS);
    let parsed = PreviousGtidsEvent::deserialize(ctx, &mut ParseBuf(event.body()))
        .map_err(|e| Error::integrity(format!("corrupt PREVIOUS_GTIDS event: {e}")))?;
    let mut pos = GtidPos::new();
    for sid in parsed.sids() {
        let uuid = uuid::Uuid::from_bytes(sid.uuid());
        for i in sid.intervals() {
            if i.start() == 0 || i.end() <= i.start() {
                return Err(Error::integrity(format!(
                    "corrupt PREVIOUS_GTIDS event: interval [{}, {}) of {uuid}",
                    i.start(),
                    i.end()
                )));
            }
            // Interval ends are exclusive; a set this large is corrupt, not a loop to run.
            if i.end() - i.start() > 1 << 40 {
                return Err(Error::integrity(
                    "corrupt PREVIOUS_GTIDS event: interval too large",
                ));
            }
            pos.add_range(uuid, i.start(), i.end() - 1);
        }
    }
    Ok(pos)
}

/// XID: the commit of a transaction on a transactional engine.
pub fn parse_xid(event: &Event<'_>) -> Result<u64> {
    let body = event.body();
    let bytes = body
        .get(0..8)
        .ok_or_else(|| Error::integrity("truncated XID event"))?;
    Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
}

/// QUERY: a statement with its session context.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub thread_id: u32,
    pub exec_time: u32,
    pub error_code: u16,
    /// Encoded status variables (session context); see the replay module for decoding.
    pub status_vars: &'a [u8],
    /// The default database (may be empty).
    pub db: &'a [u8],
    pub sql: &'a [u8],
}

const QUERY_POST_HEADER: usize = 13;

impl<'a> Query<'a> {
    pub fn parse(event: &Event<'a>) -> Result<Query<'a>> {
        let body = event.body();
        if body.len() < QUERY_POST_HEADER {
            return Err(Error::integrity("truncated query event"));
        }
        let db_len = body[8] as usize;
        let status_len = u16::from_le_bytes([body[11], body[12]]) as usize;
        let status_end = QUERY_POST_HEADER + status_len;
        let db_end = status_end + db_len;
        // The database name is followed by a NUL byte, then the statement.
        if body.len() < db_end + 1 {
            return Err(Error::integrity(
                "truncated query event: status variables or database name cut short",
            ));
        }
        Ok(Query {
            thread_id: u32_le(&body[0..4]),
            exec_time: u32_le(&body[4..8]),
            error_code: u16::from_le_bytes([body[9], body[10]]),
            status_vars: &body[QUERY_POST_HEADER..status_end],
            db: &body[status_end..db_end],
            sql: &body[db_end + 1..],
        })
    }

    /// True when the statement ends a transaction (`COMMIT`, `ROLLBACK`, `XA COMMIT` …).
    pub fn ends_transaction(&self) -> bool {
        let sql = trim_ascii_start(self.sql);
        starts_with_ignore_case(sql, b"COMMIT")
            || starts_with_ignore_case(sql, b"ROLLBACK") && !is_rollback_to_savepoint(sql)
            || starts_with_ignore_case(sql, b"XA COMMIT")
            || starts_with_ignore_case(sql, b"XA ROLLBACK")
    }

    /// True for `XA START` (MySQL writes it, not `BEGIN`, at the start of an XA transaction).
    pub fn is_xa_start(&self) -> bool {
        let sql = trim_ascii_start(self.sql);
        starts_with_ignore_case(sql, b"XA START") || starts_with_ignore_case(sql, b"XA BEGIN")
    }

    /// True for `BEGIN` (or `START TRANSACTION`), which opens a non-standalone group.
    pub fn is_begin(&self) -> bool {
        let sql = trim_ascii_start(self.sql);
        sql.eq_ignore_ascii_case(b"BEGIN") || starts_with_ignore_case(sql, b"START TRANSACTION")
    }
}

fn is_rollback_to_savepoint(sql: &[u8]) -> bool {
    let rest = trim_ascii_start(&sql[b"ROLLBACK".len()..]);
    starts_with_ignore_case(rest, b"TO ")
}

fn trim_ascii_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    &s[start..]
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Iterates the events of a binlog file (or of several concatenated pieces of files) held in
/// memory, following format description events for the checksum algorithm.
pub struct EventReader<'a> {
    buf: &'a [u8],
    offset: usize,
    checksum: ChecksumAlg,
}

impl<'a> EventReader<'a> {
    /// Reads a whole binlog file: it must start with the magic bytes.
    pub fn file(buf: &'a [u8]) -> Result<EventReader<'a>> {
        if buf.len() < BINLOG_MAGIC.len() || buf[..4] != BINLOG_MAGIC {
            return Err(Error::integrity(
                "not a binlog file: the magic bytes \\xfebin are missing",
            ));
        }
        Ok(EventReader {
            buf,
            offset: BINLOG_MAGIC.len(),
            checksum: ChecksumAlg::Off,
        })
    }

    /// Reads bare events (no magic), with the checksum algorithm already known.
    pub fn events(buf: &'a [u8], checksum: ChecksumAlg) -> EventReader<'a> {
        EventReader {
            buf,
            offset: 0,
            checksum,
        }
    }

    /// Byte offset of the next event in the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn checksum_alg(&self) -> ChecksumAlg {
        self.checksum
    }
}

impl<'a> Iterator for EventReader<'a> {
    type Item = Result<Event<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.buf.len() {
            return None;
        }
        let at = self.offset;
        match Event::parse(&self.buf[at..], self.checksum) {
            Ok(event) => {
                if event.header.type_code == kind::FORMAT_DESCRIPTION {
                    self.checksum = event.checksum_alg();
                }
                self.offset += event.raw().len();
                Some(Ok(event))
            }
            Err(e) => {
                self.offset = self.buf.len();
                Some(Err(e.context(format_args!("at byte offset {at}"))))
            }
        }
    }
}

/// Tracks where event groups (transactions) begin and end in an event sequence of either
/// flavor.
#[derive(Debug, Default, Clone)]
pub struct GroupTracker {
    open: Option<OpenGroup>,
}

#[derive(Debug, Clone, Copy)]
struct OpenGroup {
    /// `None` for a MySQL group until its first statement: `BEGIN` opens a transaction that
    /// ends at XID or COMMIT, anything else (DDL) is the whole group.
    standalone: Option<bool>,
}

/// What an event means for transaction boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// The event starts a group (a GTID event).
    Begins(GtidEvent),
    /// The event starts a group without a GTID (MySQL's ANONYMOUS_GTID).
    BeginsAnonymous,
    /// The event ends the open group.
    Ends,
    /// Inside a group, or an event outside any group (format description, rotate…).
    None,
}

impl GroupTracker {
    /// Feeds the next event; says whether it starts or ends a group.
    pub fn observe(&mut self, event: &Event<'_>) -> Result<Boundary> {
        let code = event.header.type_code;
        if code == kind::GTID {
            let gtid = GtidEvent::parse(event)?;
            self.open = Some(OpenGroup {
                standalone: Some(gtid.is_standalone()),
            });
            return Ok(Boundary::Begins(gtid));
        }
        if code == kind::MYSQL_GTID || code == kind::ANONYMOUS_GTID {
            self.open = Some(OpenGroup { standalone: None });
            return Ok(if code == kind::MYSQL_GTID {
                Boundary::Begins(GtidEvent::parse_mysql(event)?)
            } else {
                Boundary::BeginsAnonymous
            });
        }
        let Some(group) = self.open.as_mut() else {
            return Ok(Boundary::None);
        };
        let ends = match code {
            kind::XID | kind::XA_PREPARE => true,
            kind::QUERY => {
                let query = Query::parse(event)?;
                match group.standalone {
                    Some(standalone) => standalone || query.ends_transaction(),
                    None => {
                        let begins = query.is_begin() || query.is_xa_start();
                        group.standalone = Some(!begins);
                        !begins
                    }
                }
            }
            kind::QUERY_COMPRESSED => group.standalone == Some(true),
            // A MySQL group's first event decides: rows without BEGIN do not happen, but a
            // group must not stay undecided.
            _ => {
                group.standalone.get_or_insert(false);
                false
            }
        };
        if ends {
            self.open = None;
            Ok(Boundary::Ends)
        } else {
            Ok(Boundary::None)
        }
    }

    /// True while a group has begun and not ended.
    pub fn in_group(&self) -> bool {
        self.open.is_some()
    }

    /// Forgets an open group (its remaining events will never come, e.g. after a reconnect).
    pub fn reset(&mut self) {
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_code: u8, body: &[u8], log_pos: u32) -> Vec<u8> {
        let size = (HEADER_LEN + body.len() + CHECKSUM_LEN) as u32;
        let mut raw = Vec::new();
        raw.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        raw.push(type_code);
        raw.extend_from_slice(&7u32.to_le_bytes());
        raw.extend_from_slice(&size.to_le_bytes());
        raw.extend_from_slice(&log_pos.to_le_bytes());
        raw.extend_from_slice(&0u16.to_le_bytes());
        raw.extend_from_slice(body);
        raw.extend_from_slice(&[0; 4]);
        reseal_checksum(&mut raw);
        raw
    }

    fn gtid_body(seq: u64, domain: u32, flags: u8) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&domain.to_le_bytes());
        b.push(flags);
        b
    }

    #[test]
    fn parses_gtid_and_verifies_checksum() {
        let raw = event(kind::GTID, &gtid_body(42, 3, 0), 100);
        let ev = Event::parse(&raw, ChecksumAlg::Crc32).unwrap();
        let g = GtidEvent::parse(&ev).unwrap();
        assert_eq!(g.gtid, Gtid::maria(3, 7, 42));
        let mut bad = raw.clone();
        bad[20] ^= 1;
        let err = Event::parse(&bad, ChecksumAlg::Crc32).unwrap_err();
        assert!(err.message().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let raw = event(kind::GTID, &gtid_body(1, 0, 0), 100);
        for len in 0..raw.len() {
            assert!(
                Event::parse(&raw[..len], ChecksumAlg::Crc32).is_err(),
                "{len}"
            );
        }
        // A declared size below the header length is corrupt.
        let mut bad = raw.clone();
        bad[9..13].copy_from_slice(&5u32.to_le_bytes());
        assert!(Event::parse(&bad, ChecksumAlg::Off).is_err());
        // Bodies too short for their type.
        let short = event(kind::GTID, &[1, 2, 3], 10);
        let ev = Event::parse(&short, ChecksumAlg::Crc32).unwrap();
        assert!(GtidEvent::parse(&ev).is_err());
        let short = event(kind::QUERY, &[0; 12], 10);
        let ev = Event::parse(&short, ChecksumAlg::Crc32).unwrap();
        assert!(Query::parse(&ev).is_err());
        let short = event(kind::GTID_LIST, &[5, 0, 0, 0, 1], 10);
        let ev = Event::parse(&short, ChecksumAlg::Crc32).unwrap();
        assert!(parse_gtid_list(&ev).is_err());
    }

    fn query_body(sql: &str) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b.push(1); // db len
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes()); // status vars len
        b.extend_from_slice(b"d\0");
        b.extend_from_slice(sql.as_bytes());
        b
    }

    #[test]
    fn groups_end_at_xid_commit_or_after_a_standalone_statement() {
        let mut t = GroupTracker::default();
        let seq = [
            (kind::GTID, gtid_body(1, 0, 0), "begins"),
            (kind::QUERY, query_body("BEGIN"), "none"),
            (kind::TABLE_MAP, vec![0; 8], "none"),
            (kind::XID, 9u64.to_le_bytes().to_vec(), "ends"),
            (
                kind::GTID,
                gtid_body(2, 0, gtid_flags::STANDALONE),
                "begins",
            ),
            (kind::QUERY, query_body("CREATE TABLE t (a int)"), "ends"),
            (kind::GTID, gtid_body(3, 0, 0), "begins"),
            (kind::QUERY, query_body("BEGIN"), "none"),
            (
                kind::QUERY,
                query_body("insert into myisam_t values (1)"),
                "none",
            ),
            (kind::QUERY, query_body("ROLLBACK TO SAVEPOINT a"), "none"),
            (kind::QUERY, query_body(" commit"), "ends"),
            (kind::ROTATE, vec![0; 10], "none"),
        ];
        for (code, body, want) in seq {
            let raw = event(code, &body, 1);
            let ev = Event::parse(&raw, ChecksumAlg::Crc32).unwrap();
            let got = match t.observe(&ev).unwrap() {
                Boundary::Begins(_) | Boundary::BeginsAnonymous => "begins",
                Boundary::Ends => "ends",
                Boundary::None => "none",
            };
            assert_eq!(got, want, "event type {code}");
        }
        assert!(!t.in_group());
    }

    /// MySQL 5.7's GTID event body: flags, sid, gno, logical-clock type and timestamps.
    fn mysql_gtid_body(sid: [u8; 16], gno: u64) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(&sid);
        b.extend_from_slice(&gno.to_le_bytes());
        b.push(2); // LOGICAL_TIMESTAMP_TYPECODE
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&8u64.to_le_bytes());
        b
    }

    #[test]
    fn mysql_gtid_and_previous_gtids_events_parse_and_reject_truncation() {
        let sid = *uuid::Uuid::parse_str("3e11fa47-71ca-11e1-9e33-c80aa9429562")
            .unwrap()
            .as_bytes();
        let raw = event(kind::MYSQL_GTID, &mysql_gtid_body(sid, 42), 100);
        let ev = Event::parse(&raw, ChecksumAlg::Crc32).unwrap();
        let g = GtidEvent::parse_mysql(&ev).unwrap();
        assert_eq!(
            g.gtid.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:42"
        );
        for len in 0..25 {
            let short = event(kind::MYSQL_GTID, &mysql_gtid_body(sid, 42)[..len], 100);
            let ev = Event::parse(&short, ChecksumAlg::Crc32).unwrap();
            assert!(GtidEvent::parse_mysql(&ev).is_err(), "{len}");
        }
        // PREVIOUS_GTIDS: one sid with intervals [1, 6) and [8, 10).
        let mut body = 1u64.to_le_bytes().to_vec();
        body.extend_from_slice(&sid);
        body.extend_from_slice(&2u64.to_le_bytes());
        for (a, b) in [(1u64, 6u64), (8, 10)] {
            body.extend_from_slice(&a.to_le_bytes());
            body.extend_from_slice(&b.to_le_bytes());
        }
        let raw = event(kind::PREVIOUS_GTIDS, &body, 200);
        let ev = Event::parse(&raw, ChecksumAlg::Crc32).unwrap();
        assert_eq!(
            parse_previous_gtids(&ev).unwrap().to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:8-9"
        );
        for len in [0, 7, 8, 20, 31, body.len() - 1] {
            let short = event(kind::PREVIOUS_GTIDS, &body[..len], 200);
            let ev = Event::parse(&short, ChecksumAlg::Crc32).unwrap();
            let parsed = parse_previous_gtids(&ev);
            // A body cut at the sid count is an empty set only when it declares none.
            assert!(parsed.is_err(), "{len}: {parsed:?}");
        }
    }

    #[test]
    fn mysql_groups_end_at_xid_commit_or_after_a_ddl() {
        let sid = [7u8; 16];
        let mut t = GroupTracker::default();
        let seq = [
            (kind::MYSQL_GTID, mysql_gtid_body(sid, 1), "begins"),
            (kind::QUERY, query_body("BEGIN"), "none"),
            (kind::TABLE_MAP, vec![0; 8], "none"),
            (kind::WRITE_ROWS, vec![0; 8], "none"),
            (kind::XID, 9u64.to_le_bytes().to_vec(), "ends"),
            (kind::MYSQL_GTID, mysql_gtid_body(sid, 2), "begins"),
            (kind::QUERY, query_body("CREATE TABLE t (a int)"), "ends"),
            (kind::MYSQL_GTID, mysql_gtid_body(sid, 3), "begins"),
            (kind::QUERY, query_body("BEGIN"), "none"),
            (
                kind::QUERY,
                query_body("insert into myisam_t values (1)"),
                "none",
            ),
            (kind::QUERY, query_body("COMMIT"), "ends"),
            (kind::ANONYMOUS_GTID, mysql_gtid_body([0; 16], 1), "begins"),
            (kind::QUERY, query_body("DROP TABLE t"), "ends"),
            (kind::PREVIOUS_GTIDS, 0u64.to_le_bytes().to_vec(), "none"),
        ];
        for (code, body, want) in seq {
            let raw = event(code, &body, 1);
            let ev = Event::parse(&raw, ChecksumAlg::Crc32).unwrap();
            let got = match t.observe(&ev).unwrap() {
                Boundary::Begins(_) | Boundary::BeginsAnonymous => "begins",
                Boundary::Ends => "ends",
                Boundary::None => "none",
            };
            assert_eq!(got, want, "event type {code}");
        }
        assert!(!t.in_group());
    }

    #[test]
    fn an_open_files_format_description_checks_with_the_in_use_flag_cleared() {
        // binlog version 4, server version, created, header length, post-header lengths,
        // checksum algorithm CRC32, then the checksum.
        let mut body = 4u16.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 50]);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.push(HEADER_LEN as u8);
        body.extend_from_slice(&[0; 10]);
        body.push(1);
        let mut raw = event(kind::FORMAT_DESCRIPTION, &body, 0);
        assert!(Event::parse(&raw, ChecksumAlg::Off).is_ok());
        // The server sets the flag after checksumming the event.
        raw[17] |= FLAG_BINLOG_IN_USE as u8;
        let ev = Event::parse(&raw, ChecksumAlg::Off).unwrap();
        assert_eq!(ev.checksum_alg(), ChecksumAlg::Crc32);
        raw[30] ^= 1;
        assert!(Event::parse(&raw, ChecksumAlg::Off).is_err());
    }

    #[test]
    fn reader_walks_a_file_and_names_the_offset_of_a_bad_event() {
        let mut file = BINLOG_MAGIC.to_vec();
        file.extend(event(kind::GTID, &gtid_body(1, 0, 0), 50));
        file.extend(event(kind::XID, &1u64.to_le_bytes(), 70));
        let events: Vec<_> = EventReader::events(&file[4..], ChecksumAlg::Crc32)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(events.len(), 2);
        file.truncate(file.len() - 3);
        let results: Vec<_> = EventReader::events(&file[4..], ChecksumAlg::Crc32).collect();
        let err = results.last().unwrap().as_ref().unwrap_err();
        assert!(err.to_string().contains("offset"), "{err}");
        assert!(EventReader::file(b"nope").is_err());
    }
}
