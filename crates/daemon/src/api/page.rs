//! Pagination: `?limit=N` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) and an opaque
//! `?cursor=` taken from the previous page's `next_cursor`.
//!
//! A cursor is a position (an offset into a snapshot list, or the last job id seen) encoded so
//! clients do not build them; a cursor this API did not give is a 400.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// One page of a list.
#[derive(Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The page size asked for, checked.
pub fn limit(asked: Option<usize>) -> Result<usize, ApiError> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit={n}: give 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
        ))),
    }
}

/// Encodes a position of list `kind` (`o`: offset, `j`: job id).
pub fn encode(kind: char, position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

/// Decodes a cursor of list `kind`.
pub fn decode(kind: char, cursor: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "cursor `{cursor}` is not one this list gave; start again without `cursor`"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (k, n) = text.split_once(':').ok_or_else(bad)?;
    if k.len() != 1 || !k.starts_with(kind) {
        return Err(bad());
    }
    n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(bad)
}

/// A page of an in-memory list.
pub fn slice<T>(
    all: Vec<T>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match cursor {
        Some(c) => decode('o', c)? as usize,
        None => 0,
    };
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(start).take(limit).collect();
    let end = start + items.len();
    let next = (end < total).then(|| encode('o', end as i64));
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode('o', &encode('o', 150)).unwrap(), 150);
        assert!(decode('j', &encode('o', 150)).is_err());
        for bad in ["", "abc", "%%%", &URL_SAFE_NO_PAD.encode("o:-1")] {
            assert!(decode('o', bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(500)).unwrap(), 500);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(501)).is_err());
    }

    #[test]
    fn slicing() {
        let all: Vec<u32> = (0..5).collect();
        let (a, next) = slice(all.clone(), None, 2).unwrap();
        assert_eq!(a, [0, 1]);
        let (b, next) = slice(all.clone(), next.as_deref(), 2).unwrap();
        assert_eq!(b, [2, 3]);
        let (c, next) = slice(all, next.as_deref(), 2).unwrap();
        assert_eq!(c, [4]);
        assert!(next.is_none());
    }
}
