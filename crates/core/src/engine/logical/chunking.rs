//! Splitting a table into key ranges.
//!
//! A table with an integer leading column in its primary key (or a NOT NULL unique key) is split
//! into ranges of that column. The ranges tile the whole integer line by construction: the first
//! is open below, the last open above, and each boundary is the lower bound of the next range,
//! so every row falls into exactly one chunk whatever values exist. Tables without such a key
//! are streamed whole. Sizes come from the server's estimate of the table's bytes.

use serde::{Deserialize, Serialize};

use super::ddl::quote_ident;

/// A half-open range `lo <= key < hi`; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub lo: Option<i128>,
    pub hi: Option<i128>,
}

impl KeyRange {
    pub const ALL: KeyRange = KeyRange { lo: None, hi: None };

    /// The SQL condition selecting this range of `column` (`TRUE` for everything).
    pub fn condition(&self, column: &str) -> String {
        let c = quote_ident(column);
        match (self.lo, self.hi) {
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
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut lo = None;
    for b in bounds {
        ranges.push(KeyRange { lo, hi: Some(b) });
        lo = Some(b);
    }
    ranges.push(KeyRange { lo, hi: None });
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(r: &KeyRange, v: i128) -> bool {
        r.lo.is_none_or(|lo| v >= lo) && r.hi.is_none_or(|hi| v < hi)
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
                assert!(w[0].hi.unwrap() > w[0].lo.unwrap_or(i128::MIN));
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
        assert_eq!(KeyRange::ALL.condition("id"), "TRUE");
        assert_eq!(
            KeyRange {
                lo: Some(5),
                hi: None
            }
            .condition("id"),
            "`id` >= 5"
        );
        assert_eq!(
            KeyRange {
                lo: Some(5),
                hi: Some(9)
            }
            .condition("a`b"),
            "`a``b` >= 5 AND `a``b` < 9"
        );
    }
}
