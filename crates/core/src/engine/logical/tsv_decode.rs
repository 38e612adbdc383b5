//! Reading the dump's TSV lines back into values, for loaders that send values rather than
//! the text (MariaDB's bulk execute). It undoes exactly what [`tsv`](super::tsv) writes and
//! reads it the way `LOAD DATA ... FIELDS ESCAPED BY '\\'` does: a field that is exactly `\N`
//! is NULL; `\0`, `\b`, `\n`, `\r`, `\t`, `\Z` are NUL, backspace, newline, carriage return, tab
//! and Ctrl-Z; a backslash before any other byte stands for that byte. The encoder never writes
//! a raw tab or newline inside a value, so fields split at every tab and lines at every newline.

/// Decodes fields, reusing one buffer for the values that hold escapes.
#[derive(Default)]
pub struct FieldDecoder {
    scratch: Vec<u8>,
}

/// A line the encoder cannot have written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedLine(pub &'static str);

impl std::fmt::Display for MalformedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed TSV line: {}", self.0)
    }
}

impl FieldDecoder {
    /// Calls `f` with each field of `line` (without its newline) in order, `None` for NULL;
    /// returns the number of fields. Values without escapes are lent from `line` unchanged.
    pub fn decode(
        &mut self,
        line: &[u8],
        mut f: impl FnMut(Option<&[u8]>),
    ) -> Result<usize, MalformedLine> {
        let mut count = 0;
        let mut rest = line;
        loop {
            let end = memchr::memchr(b'\t', rest).unwrap_or(rest.len());
            let raw = &rest[..end];
            count += 1;
            if raw == b"\\N" {
                f(None);
            } else if memchr::memchr(b'\\', raw).is_none() {
                f(Some(raw));
            } else {
                unescape(raw, &mut self.scratch)?;
                f(Some(&self.scratch));
            }
            if end == rest.len() {
                return Ok(count);
            }
            rest = &rest[end + 1..];
        }
    }
}

/// Replaces `out` with `raw` unescaped.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), MalformedLine> {
    out.clear();
    let mut start = 0;
    while let Some(at) = memchr::memchr(b'\\', &raw[start..]) {
        let at = start + at;
        out.extend_from_slice(&raw[start..at]);
        let byte = match raw.get(at + 1) {
            Some(b'0') => 0,
            Some(b'b') => 8,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'Z') => 26,
            Some(&other) => other,
            None => return Err(MalformedLine("a field ends in a lone backslash")),
        };
        out.push(byte);
        start = at + 2;
    }
    out.extend_from_slice(&raw[start..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tsv::{encode_packet, encode_row, escape_into};
    use super::*;

    fn decode_all(line: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        FieldDecoder::default()
            .decode(line, |v| out.push(v.map(<[u8]>::to_vec)))
            .unwrap();
        out
    }

    /// A text-protocol row packet: each value length-encoded, NULL as 0xFB.
    fn packet(values: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut p = Vec::new();
        for v in values {
            match v {
                None => p.push(0xFB),
                Some(v) => {
                    let n = v.len();
                    match n {
                        0..=250 => p.push(n as u8),
                        251..=0xFFFF => {
                            p.push(0xFC);
                            p.extend_from_slice(&(n as u16).to_le_bytes());
                        }
                        _ => {
                            p.push(0xFD);
                            p.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
                        }
                    }
                    p.extend_from_slice(v);
                }
            }
        }
        p
    }

    fn tricky_rows() -> Vec<Vec<Option<Vec<u8>>>> {
        let all_bytes: Vec<u8> = (0..=255).collect();
        let v = |b: &[u8]| Some(b.to_vec());
        vec![
            vec![v(b"1"), None, v(b""), v(b"a\tb\\N")],
            vec![None],
            vec![v(b"")],
            vec![v(b""), v(b"")],
            vec![None, None, v(b"\\N"), v(b"\\")],
            vec![v(b"\\"), v(b"\\\\"), v(b"\\\t"), v(b"x\\")],
            vec![
                v(b"tab\there"),
                v(b"new\nline"),
                v(b"cr\rlf\n"),
                v(b"nul\0byte"),
            ],
            vec![v(&all_bytes), v(&[0xFB, 0xFF, 0x00, 0x1A, 0x08])],
            vec![v(b"\\0\\n\\t"), v(b"N"), v(b"\\Z")],
            vec![v("utf8 ✓ 中文 😀".as_bytes()), v(&vec![b'\\'; 70_000])],
            vec![v(&[b'\t'; 300]), v(&[b'\n'; 251]), v(&[0; 2])],
        ]
    }

    #[test]
    fn packets_round_trip() {
        for row in tricky_rows() {
            let mut line = Vec::new();
            assert_eq!(encode_packet(&packet(&row), &mut line).unwrap(), row.len());
            assert_eq!(line.pop(), Some(b'\n'));
            assert!(!line.contains(&b'\n'), "{row:?}");
            assert_eq!(decode_all(&line), row);
        }
    }

    #[test]
    fn rows_round_trip() {
        use mysql_common::constants::ColumnType;
        use mysql_common::packets::Column;
        use mysql_common::value::Value;
        for values in tricky_rows() {
            let columns: std::sync::Arc<[Column]> = (0..values.len())
                .map(|_| Column::new(ColumnType::MYSQL_TYPE_BLOB))
                .collect();
            let row = mysql_common::row::new_row(
                values
                    .iter()
                    .map(|v| v.clone().map_or(Value::NULL, Value::Bytes))
                    .collect(),
                columns,
            );
            let mut line = Vec::new();
            encode_row(&row, &mut line);
            assert_eq!(line.pop(), Some(b'\n'));
            assert_eq!(decode_all(&line), values);
        }
    }

    #[test]
    fn every_escape_load_data_knows() {
        assert_eq!(
            decode_all(b"\\0\\b\\n\\r\\t\\Z\\\\\\N\\x"),
            vec![Some(b"\0\x08\n\r\t\x1A\\Nx".to_vec())]
        );
        // Only a whole field `\N` is NULL.
        assert_eq!(
            decode_all(b"\\N\tx\\N\t\\\\N"),
            vec![None, Some(b"xN".to_vec()), Some(b"\\N".to_vec())]
        );
    }

    #[test]
    fn escaped_values_decode_back() {
        let mut escaped = Vec::new();
        escape_into(b"a\\b\tc", &mut escaped);
        assert_eq!(decode_all(&escaped), vec![Some(b"a\\b\tc".to_vec())]);
    }

    #[test]
    fn a_lone_trailing_backslash_is_refused() {
        let mut d = FieldDecoder::default();
        assert!(d.decode(b"ok\tbad\\", |_| {}).is_err());
        assert!(d.decode(b"bad\\\tok", |_| {}).is_err());
    }
}
