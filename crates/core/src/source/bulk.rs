//! MariaDB's array binding: one `COM_STMT_BULK_EXECUTE` command carries many rows of values
//! for one prepared statement, already split into fields, so the server parses nothing per byte.
//!
//! [`BulkBatch`] builds the command: header (0xFA, statement id, flags with
//! `SEND_TYPES_TO_SERVER`), one (type, flag) pair per parameter, then per row and parameter an
//! indicator byte (0: a value follows, 1: NULL) and the value. Every parameter is sent as
//! `MYSQL_TYPE_STRING`, a length-encoded byte string: on a `SET NAMES binary` session the server
//! converts it into the column exactly as `LOAD DATA ... CHARACTER SET binary` does a field.
//! Send it with [`WireConn::bulk_execute`](crate::source::wire::WireConn::bulk_execute).

const COM_STMT_BULK_EXECUTE: u8 = 0xFA;
const STMT_BULK_FLAG_SEND_TYPES_TO_SERVER: u16 = 128;
const MYSQL_TYPE_STRING: u8 = 0xFE;
const INDICATOR_NONE: u8 = 0;
const INDICATOR_NULL: u8 = 1;

/// One bulk command under construction. Rows are appended value by value; the caller keeps
/// the values of a row complete (exactly `params` per row) before sending.
pub struct BulkBatch {
    buf: Vec<u8>,
    header_len: usize,
    rows: u64,
}

impl BulkBatch {
    pub fn new(statement: u32, params: u16) -> BulkBatch {
        let mut buf = Vec::with_capacity(7 + 2 * params as usize);
        buf.push(COM_STMT_BULK_EXECUTE);
        buf.extend_from_slice(&statement.to_le_bytes());
        buf.extend_from_slice(&STMT_BULK_FLAG_SEND_TYPES_TO_SERVER.to_le_bytes());
        for _ in 0..params {
            buf.extend_from_slice(&[MYSQL_TYPE_STRING, 0]);
        }
        let header_len = buf.len();
        BulkBatch {
            buf,
            header_len,
            rows: 0,
        }
    }

    /// Appends a NULL value.
    pub fn push_null(&mut self) {
        self.buf.push(INDICATOR_NULL);
    }

    /// Appends a value.
    pub fn push_value(&mut self, value: &[u8]) {
        self.begin_value(value.len());
        self.buf.extend_from_slice(value);
    }

    /// Appends the indicator and length prefix of a value of `len` bytes, whose bytes the
    /// caller then appends through [`value_buf`](Self::value_buf).
    pub fn begin_value(&mut self, len: usize) {
        self.buf.push(INDICATOR_NONE);
        put_lenenc_int(&mut self.buf, len as u64);
    }

    /// The command buffer, for appending the bytes announced by [`begin_value`](Self::begin_value).
    pub fn value_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Counts one complete row.
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    /// Drops everything after byte `len` (a row that turned out malformed).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len.max(self.header_len));
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes of the command so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The whole command, ready to send.
    pub fn command(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the batch for the next rows, keeping the header and the allocation.
    pub fn clear(&mut self) {
        self.buf.truncate(self.header_len);
        self.rows = 0;
    }
}

/// Appends `n` as a protocol length-encoded integer.
pub(crate) fn put_lenenc_int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::wire::split_lenenc_value;

    #[test]
    fn command_layout() {
        let mut b = BulkBatch::new(0x0102_0304, 2);
        assert_eq!(
            b.command(),
            &[0xFA, 4, 3, 2, 1, 128, 0, 0xFE, 0, 0xFE, 0][..]
        );
        b.push_value(b"ab");
        b.push_null();
        b.end_row();
        assert_eq!(&b.command()[11..], &[0, 2, b'a', b'b', 1][..]);
        assert_eq!(b.rows(), 1);
        b.clear();
        assert_eq!(b.len(), 11);
        assert!(b.is_empty());
    }

    #[test]
    fn long_values_get_wide_length_prefixes() {
        for len in [0usize, 250, 251, 65_535, 65_536, 16_777_215, 16_777_216] {
            let value = vec![7u8; len];
            let mut b = BulkBatch::new(1, 1);
            b.push_value(&value);
            let body = &b.command()[9..];
            assert_eq!(body[0], INDICATOR_NONE);
            let (v, rest) = split_lenenc_value(&body[1..]).unwrap();
            assert_eq!(v.map(<[u8]>::len), Some(len));
            assert!(rest.is_empty());
        }
    }
}
