//! Rows as LOAD DATA–compatible TSV: the format of `LOAD DATA ... CHARACTER SET binary FIELDS
//! TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'`.
//!
//! Values are the server's text-protocol bytes with no charset conversion (the dump session runs
//! `SET NAMES binary`). NULL is `\N`; backslash, tab, newline, carriage return and NUL are escaped
//! (`\\`, `\t`, `\n`, `\r`, `\0`); every other byte, binary or not, is written as is. A value equal
//! to the two characters `\N` is written `\\N`, so it cannot be mistaken for NULL.

use mysql_async::{Row, Value};

/// The clause that reads this format, for `LOAD DATA`.
pub const LOAD_DATA_FORMAT: &str =
    "CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'";

/// Appends one row as a TSV line (with its newline) to `out`.
pub fn encode_row(row: &Row, out: &mut Vec<u8>) {
    for i in 0..row.len() {
        if i > 0 {
            out.push(b'\t');
        }
        match row.as_ref(i) {
            None | Some(Value::NULL) => out.extend_from_slice(b"\\N"),
            Some(Value::Bytes(b)) => escape_into(b, out),
            // The text protocol only yields bytes and NULL; other variants come from the binary
            // protocol, which the dump does not use.
            Some(other) => escape_into(other.as_sql(true).as_bytes(), out),
        }
    }
    out.push(b'\n');
}

/// Appends one text-protocol row packet (a length-encoded string or `0xFB` for NULL per column)
/// as a TSV line to `out`, straight from the packet bytes. Returns the number of columns read;
/// an error names what is malformed (a truncated packet or trailing bytes), in which case `out`
/// may hold a partial line.
pub fn encode_packet(packet: &[u8], out: &mut Vec<u8>) -> Result<usize, MalformedRow> {
    // One scan of the whole packet for bytes that need escaping, instead of one per value: most
    // rows have none. A hit in a length prefix only sends that one value the careful way.
    let mut special = find_special(packet);
    let mut rest = packet;
    let mut columns = 0;
    while let Some((&first, tail)) = rest.split_first() {
        if columns > 0 {
            out.push(b'\t');
        }
        columns += 1;
        let (len, tail) = match first {
            0xFB => {
                out.extend_from_slice(b"\\N");
                rest = tail;
                continue;
            }
            0xFC => (le_int(tail, 2)?, &tail[2..]),
            0xFD => (le_int(tail, 3)?, &tail[3..]),
            0xFE => (le_int(tail, 8)?, &tail[8..]),
            0xFF => return Err(MalformedRow("a field starts with 0xFF")),
            n => (n as u64, tail),
        };
        let len = usize::try_from(len).map_err(|_| MalformedRow("a field is too long"))?;
        if len > tail.len() {
            return Err(MalformedRow("a field runs past the end of its packet"));
        }
        let value = &tail[..len];
        let value_end = packet.len() - tail.len() + len;
        if special < value_end {
            escape_into(value, out);
            special = value_end + find_special(&packet[value_end..]);
        } else {
            out.extend_from_slice(value);
        }
        rest = &tail[len..];
    }
    out.push(b'\n');
    Ok(columns)
}

/// A row packet that does not parse as length-encoded fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedRow(pub &'static str);

impl std::fmt::Display for MalformedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed row packet: {}", self.0)
    }
}

fn le_int(bytes: &[u8], width: usize) -> Result<u64, MalformedRow> {
    let raw = bytes
        .get(..width)
        .ok_or(MalformedRow("a length prefix is cut short"))?;
    Ok(raw
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Position of the first byte that TSV escapes, or `bytes.len()`.
fn find_special(bytes: &[u8]) -> usize {
    // Two vectorised scans are much cheaper than a byte loop.
    let a = memchr::memchr3(b'\\', b'\t', b'\n', bytes).unwrap_or(bytes.len());
    memchr::memchr2(b'\r', 0, &bytes[..a]).unwrap_or(a)
}

/// Appends `value` with TSV escaping.
pub fn escape_into(value: &[u8], out: &mut Vec<u8>) {
    if find_special(value) == value.len() {
        out.extend_from_slice(value);
        return;
    }
    out.reserve(value.len() + 8);
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        let esc = match b {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&value[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&value[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of one TSV line (without its newline), through the restore's decoder.
    fn decode_line(line: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        super::super::tsv_decode::FieldDecoder::default()
            .decode(line, |v| out.push(v.map(<[u8]>::to_vec)))
            .expect("a line the encoder wrote");
        out
    }

    #[test]
    fn escapes_round_trip() {
        let cases: &[&[u8]] = &[
            b"",
            b"plain",
            b"tab\there",
            b"new\nline",
            b"cr\rlf\n",
            b"back\\slash",
            b"\\N",
            b"nul\0byte",
            &[0xff, 0xfe, 0x00, 0x09, 0x0a, 0x5c, 0x80],
            "utf8 ✓ 中文".as_bytes(),
        ];
        for &c in cases {
            let mut out = Vec::new();
            escape_into(c, &mut out);
            assert!(!out.contains(&b'\t') && !out.contains(&b'\n'), "{c:?}");
            let back = decode_line(&out);
            assert_eq!(back, vec![Some(c.to_vec())], "{c:?}");
        }
    }

    /// A text-protocol row packet: each value length-encoded, NULL as 0xFB.
    fn packet(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut p = Vec::new();
        for v in values {
            match v {
                None => p.push(0xFB),
                Some(v) => {
                    crate::source::bulk::put_lenenc_int(&mut p, v.len() as u64);
                    p.extend_from_slice(v);
                }
            }
        }
        p
    }

    #[test]
    fn packets_encode_like_values() {
        let long = vec![b'x'; 300];
        let longer = vec![b'\t'; 70_000];
        let rows: &[&[Option<&[u8]>]] = &[
            &[Some(b"1"), None, Some(b""), Some(b"a\tb\\N")],
            &[None],
            &[Some(b"")],
            &[Some(&long), Some(&longer), None],
            &[Some(&[0xFB, 0xFF, 0x00])],
            // Length prefixes that are themselves special bytes (9 = tab, 10 = newline, 0).
            &[
                Some(b"123456789"),
                Some(b"1234567890"),
                Some(b""),
                Some(b"x\ny"),
            ],
            &[Some(b"a\\b"), Some(b"plain"), Some(b"\r"), Some(b"tail")],
        ];
        for &row in rows {
            let mut out = Vec::new();
            let columns = encode_packet(&packet(row), &mut out).unwrap();
            assert_eq!(columns, row.len());
            assert_eq!(out.pop(), Some(b'\n'));
            let back = decode_line(&out);
            let want: Vec<Option<Vec<u8>>> = row.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
            assert_eq!(back, want);
        }
    }

    #[test]
    fn malformed_packets_are_refused() {
        let mut out = Vec::new();
        assert!(encode_packet(&[5, b'a', b'b'], &mut out).is_err());
        assert!(encode_packet(&[0xFC, 1], &mut out).is_err());
        assert!(encode_packet(&[0xFF], &mut out).is_err());
        assert!(encode_packet(
            &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            &mut out
        )
        .is_err());
    }

    #[test]
    fn null_is_distinct_from_backslash_n() {
        let mut out = Vec::new();
        escape_into(b"\\N", &mut out);
        assert_eq!(out, b"\\\\N");
        assert_eq!(
            decode_line(b"\\N\t\\\\N"),
            vec![None, Some(b"\\N".to_vec())]
        );
    }
}
