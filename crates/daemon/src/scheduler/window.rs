//! Start windows: "drills only 01:00-05:00" in a schedule's time zone.
//!
//! A [`Window`] is a span of local wall-clock time, `start` inclusive, `end` exclusive; when
//! `start > end` it crosses midnight (`22:00-04:00`). A job may start only inside; a run planned
//! outside is deferred to the window's next opening ([`next_open`]). Around DST changes the wall
//! clock decides: a window opening in the hour skipped in spring opens when the clocks have
//! jumped (03:00 for 02:30 in Europe/Berlin); one opening in the repeated hour of autumn opens at
//! the first of the two.

use std::fmt;
use std::str::FromStr;

use chrono::{Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::time::Millis;

/// A daily span of local time, e.g. `01:00-05:00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Seconds after local midnight, inclusive.
    start: u32,
    /// Seconds after local midnight, exclusive (86 400 for `24:00`).
    end: u32,
}

impl Window {
    /// Whether a local wall-clock time lies inside.
    pub fn contains(&self, time: NaiveTime) -> bool {
        let s = time.num_seconds_from_midnight();
        if self.start < self.end {
            self.start <= s && s < self.end
        } else {
            s >= self.start || s < self.end
        }
    }

    /// Whether the instant `t` lies inside, read in `tz`.
    pub fn contains_at(&self, tz: Tz, t: Millis) -> bool {
        match tz.timestamp_millis_opt(t) {
            LocalResult::Single(dt) => self.contains(dt.time()),
            _ => false,
        }
    }

    fn start_time(&self) -> NaiveTime {
        NaiveTime::from_num_seconds_from_midnight_opt(self.start, 0).expect("validated")
    }
}

impl FromStr for Window {
    type Err = String;

    /// `HH:MM-HH:MM` (24-hour clock; `24:00` as the end means midnight).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}` is not a window; write local start and end as HH:MM-HH:MM, e.g. \
                 01:00-05:00 (it may cross midnight: 22:00-04:00)"
            )
        };
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let start = parse_hhmm(a, false).ok_or_else(bad)?;
        let end = parse_hhmm(b, true).ok_or_else(bad)?;
        if start == end || (start == 0 && end == 86_400) {
            return Err(format!(
                "the window `{text}` is empty or the whole day; leave `window` out to allow \
                 any time"
            ));
        }
        Ok(Window { start, end })
    }
}

fn parse_hhmm(s: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
        return None;
    }
    Some(h * 3600 + m * 60)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| format!("{:02}:{:02}", s / 3600, (s % 3600) / 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// The first instant at or after `t` when a job may start: `t` itself when it lies inside the
/// window, else the window's next opening in `tz` (see the module docs for DST).
pub fn next_open(window: &Window, tz: Tz, t: Millis) -> Millis {
    let Some(local) = tz.timestamp_millis_opt(t).single() else {
        return t;
    };
    if window.contains(local.time()) {
        return t;
    }
    let today = local.date_naive();
    let date = if local.time() < window.start_time() {
        today
    } else {
        today.succ_opt().unwrap_or(today)
    };
    first_instant_at_or_after(tz, date, window.start_time())
}

/// The instant of local `date time` in `tz`: the earlier of two in a repeated hour, the end of
/// the gap when that wall-clock time is skipped.
fn first_instant_at_or_after(tz: Tz, date: NaiveDate, time: NaiveTime) -> Millis {
    let mut naive = NaiveDateTime::new(date, time);
    // Gaps are at most a few hours; step a minute at a time past one.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(dt) => return dt.timestamp_millis(),
            LocalResult::Ambiguous(earliest, _) => return earliest.timestamp_millis(),
            LocalResult::None => {
                naive = naive
                    .with_second(0)
                    .expect("0 is a valid second")
                    .checked_add_signed(Duration::minutes(1))
                    .unwrap_or(naive);
            }
        }
    }
    naive.and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Millis {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .expect("valid local time")
            .timestamp_millis()
    }

    fn utc(text: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn parsing() {
        for (text, ok) in [
            ("01:00-05:00", Some("01:00-05:00")),
            ("22:00-04:00", Some("22:00-04:00")),
            (" 1:30 - 2:45 ", Some("01:30-02:45")),
            ("20:00-24:00", Some("20:00-24:00")),
            ("00:00-00:00", None),
            ("00:00-24:00", None),
            ("03:00-03:00", None),
            ("24:00-02:00", None),
            ("25:00-02:00", None),
            ("01:60-02:00", None),
            ("1-5", None),
            ("01:00", None),
            ("", None),
        ] {
            let got = text.parse::<Window>().map(|w| w.to_string()).ok();
            assert_eq!(got.as_deref(), ok, "{text}");
        }
    }

    #[test]
    fn contains() {
        let day: Window = "01:00-05:00".parse().unwrap();
        let night: Window = "22:00-04:00".parse().unwrap();
        let late: Window = "20:00-24:00".parse().unwrap();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        for (w, time, want) in [
            (day, t(0, 59), false),
            (day, t(1, 0), true),
            (day, t(4, 59), true),
            (day, t(5, 0), false),
            (night, t(21, 59), false),
            (night, t(22, 0), true),
            (night, t(0, 0), true),
            (night, t(3, 59), true),
            (night, t(4, 0), false),
            (late, t(23, 59), true),
            (late, t(0, 0), false),
        ] {
            assert_eq!(w.contains(time), want, "{w} {time}");
        }
    }

    #[test]
    fn next_open_table() {
        let berlin = chrono_tz::Europe::Berlin;
        let ny = chrono_tz::America::New_York;
        let day: Window = "01:00-05:00".parse().unwrap();
        let night: Window = "22:00-04:00".parse().unwrap();
        let gap: Window = "02:30-04:00".parse().unwrap();
        let repeated: Window = "02:30-04:00".parse().unwrap();
        let ny_gap: Window = "02:15-03:30".parse().unwrap();
        for (name, w, tz, t, want) in [
            (
                "inside: now",
                day,
                berlin,
                at(berlin, 2026, 6, 1, 3, 0),
                at(berlin, 2026, 6, 1, 3, 0),
            ),
            (
                "before: today",
                day,
                berlin,
                at(berlin, 2026, 6, 1, 0, 10),
                at(berlin, 2026, 6, 1, 1, 0),
            ),
            (
                "after: tomorrow",
                day,
                berlin,
                at(berlin, 2026, 6, 1, 5, 0),
                at(berlin, 2026, 6, 2, 1, 0),
            ),
            (
                "crossing midnight, after midnight: inside",
                night,
                berlin,
                at(berlin, 2026, 6, 2, 1, 0),
                at(berlin, 2026, 6, 2, 1, 0),
            ),
            (
                "crossing midnight, afternoon: tonight",
                night,
                berlin,
                at(berlin, 2026, 6, 2, 14, 0),
                at(berlin, 2026, 6, 2, 22, 0),
            ),
            (
                "opening in the skipped hour (Berlin, 29 March 2026): when the clocks jumped",
                gap,
                berlin,
                at(berlin, 2026, 3, 29, 0, 0),
                utc("2026-03-29T01:00:00Z"), // 03:00 CEST
            ),
            (
                "opening in the repeated hour (Berlin, 25 October 2026): the first 02:30",
                repeated,
                berlin,
                at(berlin, 2026, 10, 25, 0, 0),
                utc("2026-10-25T00:30:00Z"), // 02:30 CEST
            ),
            (
                "New York spring forward (8 March 2026): 03:00 EDT",
                ny_gap,
                ny,
                at(ny, 2026, 3, 8, 0, 0),
                utc("2026-03-08T07:00:00Z"),
            ),
            (
                "New York fall back (1 November 2026): the first 02:15 is EST already (01:xx repeats)",
                ny_gap,
                ny,
                at(ny, 2026, 11, 1, 0, 0),
                utc("2026-11-01T07:15:00Z"),
            ),
        ] {
            assert_eq!(next_open(&w, tz, t), want, "{name}");
        }
    }
}
