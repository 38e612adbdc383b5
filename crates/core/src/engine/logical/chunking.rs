//! Splitting a table into key ranges.
//!
//! A table with a primary key (or a NOT NULL unique key) is split into ranges of the key's
//! leading column. The ranges tile the column's whole domain by construction: the first is open
//! below, the last open above, and each boundary is the lower bound of the next range, so every
//! row falls into exactly one chunk whatever values exist or arrive. For an integer column the
//! boundaries are computed from MIN and MAX; for other types they are values sampled from the
//! table in the snapshot (see `backup::sample_boundaries`), strictly increasing under the same
//! comparison the chunk conditions use. Tables without such a key are streamed whole. Sizes come
//! from the server's estimate of the table's bytes.

use serde::{Deserialize, Serialize};

use super::ddl::quote_ident;

/// A half-open range `lo <= key < hi` with bounds as SQL literals; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub lo: Option<String>,
    pub hi: Option<String>,
}

impl KeyRange {
    pub const ALL: KeyRange = KeyRange { lo: None, hi: None };

    pub fn is_all(&self) -> bool {
        self.lo.is_none() && self.hi.is_none()
    }

    /// Ranges between consecutive `bounds` (strictly increasing), open at both ends.
    pub fn tiling(bounds: Vec<String>) -> Vec<KeyRange> {
        let mut ranges = Vec::with_capacity(bounds.len() + 1);
        let mut lo = None;
        for b in bounds {
            ranges.push(KeyRange {
                lo,
                hi: Some(b.clone()),
            });
            lo = Some(b);
        }
        ranges.push(KeyRange { lo, hi: None });
        ranges
    }

    /// The SQL condition selecting this range of `column` (`TRUE` for everything).
    pub fn condition(&self, column: &str) -> String {
        let c = quote_ident(column);
        match (&self.lo, &self.hi) {
            (None, None) => "TRUE".to_string(),
            (Some(lo), None) => format!("{c} >= {lo}"),
            (None, Some(hi)) => format!("{c} < {hi}"),
            (Some(lo), Some(hi)) => format!("{c} >= {lo} AND {c} < {hi}"),
        }
    }
}

/// How many chunks a table of `estimated_bytes` gets for chunks of `target_bytes`.
pub fn chunk_count(estimated_bytes: u64, target_bytes: u64, max_chunks: u64) -> u64 {
    let target = target_bytes.max(1);
    estimated_bytes.div_ceil(target).clamp(1, max_chunks.max(1))
}

/// Splits the observed key interval `[min, max]` into at most `parts` ranges that together cover
/// every integer (the outer ranges are unbounded).
pub fn split_range(min: i128, max: i128, parts: u64) -> Vec<KeyRange> {
    if max < min || parts <= 1 {
        return vec![KeyRange::ALL];
    }
    let span = (max - min) as u128 + 1;
    let parts = (parts as u128).min(span);
    let mut bounds = Vec::with_capacity(parts as usize);
    for i in 1..parts {
        let b = min + (span * i / parts) as i128;
        if bounds.last() != Some(&b) {
            bounds.push(b);
        }
    }
    KeyRange::tiling(bounds.into_iter().map(|b| b.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(b: &Option<String>) -> Option<i128> {
        b.as_ref().map(|s| s.parse().unwrap())
    }

    fn contains(r: &KeyRange, v: i128) -> bool {
        int(&r.lo).is_none_or(|lo| v >= lo) && int(&r.hi).is_none_or(|hi| v < hi)
    }

    #[test]
    fn ranges_tile_every_value() {
        let cases = [
            (1, 1_000_000, 8),
            (1, 1, 8),
            (-5, 5, 3),
            (0, 3, 10),
            (i64::MIN as i128, i64::MAX as i128, 7),
            (0, u64::MAX as i128, 16),
            (100, 50, 4),
        ];
        for (min, max, parts) in cases {
            let ranges = split_range(min, max, parts);
            assert!(ranges.len() as u64 <= parts.max(1));
            assert_eq!(ranges.first().unwrap().lo, None);
            assert_eq!(ranges.last().unwrap().hi, None);
            for w in ranges.windows(2) {
                assert_eq!(w[0].hi, w[1].lo, "ranges must be contiguous");
                assert!(int(&w[0].hi).unwrap() > int(&w[0].lo).unwrap_or(i128::MIN));
            }
            // Every probe value, inside and outside the observed interval, is in exactly one.
            let probes = [
                min - 1,
                min,
                min + 1,
                (min + max) / 2,
                max - 1,
                max,
                max + 1,
                i128::MIN,
                i128::MAX,
            ];
            for v in probes {
                let n = ranges.iter().filter(|r| contains(r, v)).count();
                assert_eq!(n, 1, "value {v} in {n} ranges of {ranges:?}");
            }
        }
    }

    #[test]
    fn chunk_counts() {
        assert_eq!(chunk_count(0, 64, 100), 1);
        assert_eq!(chunk_count(64, 64, 100), 1);
        assert_eq!(chunk_count(65, 64, 100), 2);
        assert_eq!(chunk_count(1 << 40, 64, 100), 100);
    }

    #[test]
    fn conditions() {
        let r = |lo: Option<&str>, hi: Option<&str>| KeyRange {
            lo: lo.map(Into::into),
            hi: hi.map(Into::into),
        };
        assert_eq!(KeyRange::ALL.condition("id"), "TRUE");
        assert_eq!(r(Some("5"), None).condition("id"), "`id` >= 5");
        assert_eq!(
            r(Some("5"), Some("9")).condition("a`b"),
            "`a``b` >= 5 AND `a``b` < 9"
        );
        assert_eq!(r(None, Some("'x'")).condition("s"), "`s` < 'x'");
        assert_eq!(KeyRange::tiling(vec![]), vec![KeyRange::ALL]);
        let two = KeyRange::tiling(vec!["'b'".into(), "'m'".into()]);
        assert_eq!(
            two,
            vec![
                r(None, Some("'b'")),
                r(Some("'b'"), Some("'m'")),
                r(Some("'m'"), None)
            ]
        );
    }
}
