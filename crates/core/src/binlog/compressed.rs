//! MariaDB's compressed events (`log_bin_compress=ON`): QUERY_COMPRESSED and the six
//! *_ROWS_COMPRESSED types, turned back into the plain events a server accepts in a `BINLOG`
//! statement (which refuses the compressed types), as `mariadb-binlog` does before printing.
//!
//! A compressed record is one header byte (`0x80 | algorithm << 4 | length-of-length`), the
//! uncompressed length in 1–4 big-endian bytes, then a zlib stream. Everything before the
//! record (event header, post-header, column bitmaps or query context) is copied unchanged.

use std::io::Read;

use crate::binlog::event::{self, kind, ChecksumAlg, CHECKSUM_LEN, HEADER_LEN, MAX_EVENT_SIZE};
use crate::{Error, Result};

/// Post-header length of a v1 rows event (6-byte table id, 2-byte flags).
const ROWS_HEADER_LEN_V1: usize = 8;
/// Post-header length of a v2 rows event (adds the 2-byte extra-data length).
const ROWS_HEADER_LEN_V2: usize = 10;

/// What a FORMAT_DESCRIPTION event says about the other events of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLayout {
    /// Post-header length of each event type, indexed by `type_code - 1`.
    post_header_len: Vec<u8>,
    pub checksum: ChecksumAlg,
}

impl EventLayout {
    /// Reads the post-header lengths from a format description event's raw bytes.
    pub fn from_format_description(fde: &event::Event<'_>) -> Result<EventLayout> {
        let raw = fde.raw();
        // header, binlog version (2), server version (50), created (4), header length (1),
        // post-header lengths…, checksum algorithm (1), checksum (4).
        let start = HEADER_LEN + 2 + 50 + 4 + 1;
        let end = raw.len().saturating_sub(1 + CHECKSUM_LEN);
        if end < start {
            return Err(Error::integrity("truncated format description event"));
        }
        Ok(EventLayout {
            post_header_len: raw[start..end].to_vec(),
            checksum: fde.checksum_alg(),
        })
    }

    /// The post-header length of events of `type_code` (0 when the file does not know the type).
    pub fn post_header_len(&self, type_code: u8) -> usize {
        type_code
            .checked_sub(1)
            .and_then(|i| self.post_header_len.get(i as usize))
            .map_or(0, |&n| n as usize)
    }
}

/// True for the compressed rows types.
pub fn is_compressed_rows(type_code: u8) -> bool {
    (kind::WRITE_ROWS_COMPRESSED_V1..=kind::DELETE_ROWS_COMPRESSED).contains(&type_code)
}

/// The plain type of a compressed rows type (v2 types stay v2, v1 stay v1).
fn plain_rows_type(type_code: u8) -> u8 {
    if type_code >= kind::WRITE_ROWS_COMPRESSED {
        type_code - kind::WRITE_ROWS_COMPRESSED + kind::WRITE_ROWS
    } else {
        type_code - kind::WRITE_ROWS_COMPRESSED_V1 + kind::WRITE_ROWS_V1
    }
}

/// Rebuilds a compressed rows or query event as its plain equivalent (new type code, length
/// and checksum). Errors name what is corrupt; nothing here panics on bad bytes.
pub fn decompress_event(ev: &event::Event<'_>, layout: &EventLayout) -> Result<Vec<u8>> {
    let raw = ev.raw();
    let code = ev.header.type_code;
    let trailer = match ev.checksum_alg() {
        ChecksumAlg::Crc32 => CHECKSUM_LEN,
        ChecksumAlg::Off => 0,
    };
    let end = raw.len() - trailer;
    let bad = |what: &str| {
        Error::integrity(format!(
            "corrupt compressed event (type {code}, ending at position {}): {what}",
            ev.header.log_pos
        ))
    };
    let (record_at, plain_type) = if code == kind::QUERY_COMPRESSED {
        let post = layout.post_header_len(code);
        let fixed = raw
            .get(HEADER_LEN..HEADER_LEN + 13)
            .ok_or_else(|| bad("short header"))?;
        let db_len = fixed[8] as usize;
        let status_len = u16::from_le_bytes([fixed[11], fixed[12]]) as usize;
        (HEADER_LEN + post + status_len + db_len + 1, kind::QUERY)
    } else if is_compressed_rows(code) {
        let plain = plain_rows_type(code);
        let mut at = HEADER_LEN + ROWS_HEADER_LEN_V1;
        if layout.post_header_len(code) == ROWS_HEADER_LEN_V2 {
            let len = raw.get(at..at + 2).ok_or_else(|| bad("short extra data"))?;
            at += u16::from_le_bytes([len[0], len[1]]) as usize;
        }
        let (width, n) = packed_int(raw.get(at..end).unwrap_or_default())
            .ok_or_else(|| bad("bad column count"))?;
        let bitmap = usize::try_from(width.div_ceil(8)).map_err(|_| bad("bad column count"))?;
        at += n + bitmap;
        if plain == kind::UPDATE_ROWS || plain == kind::UPDATE_ROWS_V1 {
            at += bitmap;
        }
        (at, plain)
    } else {
        return Err(bad("not a compressed event type"));
    };
    if record_at >= end {
        return Err(bad("no compressed record"));
    }
    let plain = uncompress_record(&raw[record_at..end]).map_err(|what| bad(&what))?;
    let size = record_at + plain.len() + trailer;
    if size > MAX_EVENT_SIZE as usize {
        return Err(bad("uncompressed event larger than 1 GiB"));
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&raw[..record_at]);
    out.extend_from_slice(&plain);
    out.extend_from_slice(&[0; CHECKSUM_LEN][..trailer]);
    out[4] = plain_type;
    out[9..13].copy_from_slice(&(size as u32).to_le_bytes());
    if trailer > 0 {
        event::reseal_checksum(&mut out);
    }
    Ok(out)
}

/// Uncompresses one compressed record (header byte, big-endian length, zlib data).
pub fn uncompress_record(record: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let (&head, rest) = record.split_first().ok_or("empty record")?;
    if head & 0x80 == 0 {
        return Err("record header lacks the compressed bit".into());
    }
    if (head & 0x70) >> 4 != 0 {
        return Err(format!(
            "unknown compression algorithm {}",
            (head & 0x70) >> 4
        ));
    }
    let len_len = (head & 0x07) as usize;
    if !(1..=4).contains(&len_len) || rest.len() < len_len {
        return Err("bad uncompressed-length field".into());
    }
    let len = rest[..len_len]
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if len > MAX_EVENT_SIZE as usize {
        return Err(format!("declares {len} uncompressed bytes"));
    }
    let mut out = Vec::with_capacity(len);
    flate2::read::ZlibDecoder::new(&rest[len_len..])
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zlib: {e}"))?;
    if out.len() != len {
        return Err(format!(
            "declares {len} uncompressed bytes, holds {}",
            out.len()
        ));
    }
    Ok(out)
}

/// A length-encoded integer; returns the value and the bytes it took.
fn packed_int(b: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = b.split_first()?;
    let le = |n: usize| -> Option<(u64, usize)> {
        let bytes = rest.get(..n)?;
        let v = bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | x as u64);
        Some((v, n + 1))
    };
    match first {
        0..=250 => Some((first as u64, 1)),
        252 => le(2),
        253 => le(3),
        254 => le(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        let z = enc.finish().unwrap();
        let len = (data.len() as u32).to_be_bytes();
        let mut out = vec![0x80 | 4];
        out.extend_from_slice(&len);
        out.extend_from_slice(&z);
        out
    }

    #[test]
    fn records_round_trip_and_bad_records_are_errors() {
        let data = b"hello hello hello hello".repeat(10);
        assert_eq!(uncompress_record(&compress(&data)).unwrap(), data);
        let mut lying = compress(&data);
        lying[4] += 1;
        assert!(uncompress_record(&lying).is_err());
        assert!(uncompress_record(&[]).is_err());
        assert!(uncompress_record(&[0x01, 0]).is_err());
        assert!(uncompress_record(&[0x81]).is_err());
        let z = compress(&data);
        for len in 0..z.len() {
            assert!(uncompress_record(&z[..len]).is_err(), "{len}");
        }
    }

    /// A WRITE_ROWS_COMPRESSED_V1 event (8-byte post-header) around `rows`, with a CRC32.
    fn compressed_rows_event(rows: &[u8]) -> Vec<u8> {
        let mut body = vec![1, 0, 0, 0, 0, 0, 1, 0]; // table id 1, flags STMT_END
        body.push(3); // 3 columns
        body.push(0b111); // columns present
        body.extend_from_slice(&compress(rows));
        let size = (HEADER_LEN + body.len() + CHECKSUM_LEN) as u32;
        let mut raw = vec![0, 0, 0, 0, kind::WRITE_ROWS_COMPRESSED_V1, 1, 0, 0, 0];
        raw.extend_from_slice(&size.to_le_bytes());
        raw.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        raw.extend_from_slice(&body);
        raw.extend_from_slice(&[0; 4]);
        event::reseal_checksum(&mut raw);
        raw
    }

    fn layout() -> EventLayout {
        let mut post_header_len = vec![0u8; 171];
        post_header_len[(kind::WRITE_ROWS_COMPRESSED_V1 - 1) as usize] = 8;
        EventLayout {
            post_header_len,
            checksum: ChecksumAlg::Crc32,
        }
    }

    #[test]
    fn compressed_rows_become_plain_rows_and_bad_bytes_never_panic() {
        let rows = b"\x00row one\x00row two".repeat(20);
        let raw = compressed_rows_event(&rows);
        let ev = event::Event::parse(&raw, ChecksumAlg::Crc32).unwrap();
        let plain = decompress_event(&ev, &layout()).unwrap();
        let plain_ev = event::Event::parse(&plain, ChecksumAlg::Crc32).unwrap();
        assert_eq!(plain_ev.header.type_code, kind::WRITE_ROWS_V1);
        assert_eq!(&plain_ev.body()[10..], &rows[..]);
        // Every single-byte corruption of the body (checksum resealed, so the parser gets
        // past it) is an error or a plain event, never a panic.
        for i in HEADER_LEN..raw.len() - CHECKSUM_LEN {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = raw.clone();
                bad[i] ^= flip;
                event::reseal_checksum(&mut bad);
                if let Ok(ev) = event::Event::parse(&bad, ChecksumAlg::Crc32) {
                    let _ = decompress_event(&ev, &layout());
                }
            }
        }
    }

    #[test]
    fn packed_ints() {
        assert_eq!(packed_int(&[7]), Some((7, 1)));
        assert_eq!(packed_int(&[252, 1, 2]), Some((0x201, 3)));
        assert_eq!(packed_int(&[252, 1]), None);
        assert_eq!(packed_int(&[255]), None);
        assert_eq!(packed_int(&[]), None);
    }
}
