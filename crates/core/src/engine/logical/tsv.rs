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

/// Appends `value` with TSV escaping.
pub fn escape_into(value: &[u8], out: &mut Vec<u8>) {
    // Most values need no escaping: two vectorised scans are much cheaper than a byte loop.
    if memchr::memchr3(b'\\', b'\t', b'\n', value).is_none()
        && memchr::memchr2(b'\r', 0, value).is_none()
    {
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

/// Decodes one TSV line (without its newline) back into values; `None` is NULL. Used by tests
/// and by tools that read chunks; the restore path hands the bytes to the server instead.
pub fn decode_line(line: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut fields = Vec::new();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
            continue;
        }
        let mut v = Vec::with_capacity(raw.len());
        let mut it = raw.iter();
        while let Some(&b) = it.next() {
            if b != b'\\' {
                v.push(b);
                continue;
            }
            match it.next() {
                Some(b't') => v.push(b'\t'),
                Some(b'n') => v.push(b'\n'),
                Some(b'r') => v.push(b'\r'),
                Some(b'0') => v.push(0),
                Some(b'Z') => v.push(26),
                Some(b'b') => v.push(8),
                Some(&other) => v.push(other),
                None => v.push(b'\\'),
            }
        }
        fields.push(Some(v));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

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
