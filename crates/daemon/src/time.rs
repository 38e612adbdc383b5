//! Time as the daemon stores it: Unix milliseconds, UTC. One integer type works the same in
//! SQLite and PostgreSQL and in JSON, and orders correctly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A duration in [`Millis`] (saturating).
pub fn millis(d: Duration) -> Millis {
    d.as_millis().min(i64::MAX as u128) as Millis
}

/// A short human form of a duration: "45s", "12m", "3h 5m", "2d 4h".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}
