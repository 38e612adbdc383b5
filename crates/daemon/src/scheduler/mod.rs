//! When schedules fire: pure functions of a schedule, the last planned time and now.
//!
//! A [`Schedule`] is a cron expression with seconds (croner: `sec min hour day-of-month month
//! day-of-week`) read in an IANA time zone (chrono-tz), with an optional start [`Window`].
//!
//! Rules (docs/daemon.md "Configuration" says the same for users):
//! - **DST** (croner's rules): a fixed time that does not exist on a spring-forward day runs when
//!   the clocks have jumped (02:30 in Europe/Berlin on the last Sunday of March runs at 03:00); a
//!   fixed time that occurs twice on a fall-back day runs once, at the first. Schedules with
//!   wildcards or steps (every 30 minutes) follow the wall clock too: the skipped hour has no
//!   ticks, and the repeated hour runs once, in its first pass (after 02:30 CEST comes 03:00 CET,
//!   an hour and a half later). Nothing ever runs twice for one wall-clock time.
//! - **Catch-up** ([`due`]): every planned time after the last one queued and up to now is due;
//!   several of them yield ONE run, at the newest planned time, and the others are counted as
//!   missed. A run that starts more than [`ON_TIME_MS`] after its planned time is late: it is a
//!   catch-up run and counts as missed too. A schedule never run before catches nothing up.
//! - **Windows** ([`window::next_open`]): a run planned outside its window keeps its planned time
//!   (its identity in the store) but starts at the window's next opening.
//!
//! Keys: a schedule is known in the store as `<server>/<index>:<job>` (see
//! [`crate::config::schedule_key`]): stable across reloads as long as the order of a server's
//! schedules is.

pub mod window;

use std::str::FromStr;

use chrono::{LocalResult, TimeZone};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::time::Millis;
pub use window::Window;

/// A run starting later than this after its planned time is late (a catch-up, reported missed).
pub const ON_TIME_MS: Millis = 60_000;

/// [`due`] counts missed planned times up to this many (a per-second schedule after a week down
/// would otherwise mean 600 000 steps); beyond, `missed` says "at least this many".
pub const MAX_COUNTED: u32 = 10_000;

/// Parses a cron expression with seconds: six fields, `sec min hour day-of-month month
/// day-of-week` (names like `MON` and `JAN`, ranges, steps, `L`, `#`, `W`; `@daily` and the like).
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let trimmed = text.trim();
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build();
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && fields != 6 {
        return Err(format!(
            "`{text}` has {fields} fields, cron here needs 6: seconds minutes hours \
             day-of-month month day-of-week (e.g. `0 0 2 * * *` for 02:00 every day)"
        ));
    }
    parser
        .parse(trimmed)
        .map_err(|e| format!("`{text}` is not a cron expression ({e}); e.g. `0 0 2 * * *`"))
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(text: &str) -> Result<Tz, String> {
    Tz::from_str(text.trim()).map_err(|_| {
        format!(
            "unknown time zone `{text}`; use an IANA name such as `UTC`, `Europe/Berlin` or \
             `America/New_York`"
        )
    })
}

/// One schedule, parsed.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// `<server>/<index>:<job>`.
    pub key: String,
    pub cron: Cron,
    pub tz: Tz,
    pub window: Option<Window>,
}

impl Schedule {
    /// Parses the parts; errors say which part is wrong.
    pub fn parse(
        key: impl Into<String>,
        cron: &str,
        tz: &str,
        window: Option<&str>,
    ) -> Result<Self, String> {
        Ok(Schedule {
            key: key.into(),
            cron: parse_cron(cron)?,
            tz: parse_timezone(tz)?,
            window: window.map(Window::from_str).transpose()?,
        })
    }

    /// The cron expression as written.
    pub fn pattern(&self) -> &str {
        self.cron.pattern.as_str()
    }

    /// When a run planned at `planned` may start: `planned`, or its window's next opening.
    pub fn start_at(&self, planned: Millis) -> Millis {
        match &self.window {
            Some(w) => window::next_open(w, self.tz, planned),
            None => planned,
        }
    }

    /// The next `n` planned times after `t`.
    pub fn upcoming(&self, t: Millis, n: usize) -> Vec<Millis> {
        let mut out = Vec::with_capacity(n);
        let mut cur = t;
        while out.len() < n {
            match next_after(self, cur) {
                Some(next) => {
                    out.push(next);
                    cur = next;
                }
                None => break,
            }
        }
        out
    }
}

/// The first planned time strictly after `t`; `None` when the expression never matches again
/// (e.g. `0 0 0 30 2 *`).
pub fn next_after(schedule: &Schedule, t: Millis) -> Option<Millis> {
    // Ticks fall on whole seconds: the first one after `t` is the first after `t`'s second.
    let floor = t.div_euclid(1000) * 1000;
    let start = match schedule.tz.timestamp_millis_opt(floor) {
        LocalResult::Single(dt) => dt,
        _ => return None,
    };
    schedule
        .cron
        .find_next_occurrence(&start, false)
        .ok()
        .map(|dt| dt.timestamp_millis())
}

/// What [`due`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// The planned time to queue a run for now (the newest one due), if any.
    pub run: Option<Millis>,
    /// Planned times that did not start on time: superseded by `run`, plus `run` itself when it
    /// is late. Saturates at [`MAX_COUNTED`].
    pub missed: u32,
    /// `run` is late (more than [`ON_TIME_MS`] after its planned time): queue it as a catch-up.
    pub catch_up: bool,
    /// When `run` may start: its planned time, or its window's next opening.
    pub start_at: Option<Millis>,
    /// The next planned time after now (to sleep until).
    pub next: Option<Millis>,
}

impl Due {
    /// The trigger to queue `run` with: a catch-up when it is late.
    pub fn trigger(&self) -> crate::jobs::Trigger {
        if self.catch_up {
            crate::jobs::Trigger::CatchUp
        } else {
            crate::jobs::Trigger::Schedule
        }
    }
}

/// Which run is due now. `last_planned` is the planned time of the schedule's last queued run;
/// `None` for a schedule never run, which catches nothing up (its first run is at its next
/// planned time: record `now` as its last planned time when it is first seen). See the module
/// docs for the rules.
pub fn due(schedule: &Schedule, last_planned: Option<Millis>, now: Millis) -> Due {
    let next_after_now = next_after(schedule, now);
    let nothing = Due {
        run: None,
        missed: 0,
        catch_up: false,
        start_at: None,
        next: next_after_now,
    };
    let Some(last) = last_planned else {
        return nothing;
    };
    let mut count: u32 = 0;
    let mut newest = None;
    let mut cur = last;
    let mut capped = false;
    while let Some(t) = next_after(schedule, cur).filter(|&t| t <= now) {
        count += 1;
        newest = Some(t);
        cur = t;
        if count >= MAX_COUNTED {
            // Far behind: jump to the newest planned time at or before now.
            newest = previous_at_or_before(schedule, now)
                .filter(|&p| p > last)
                .or(newest);
            capped = newest != Some(t);
            break;
        }
    }
    let Some(run) = newest else {
        return nothing;
    };
    let catch_up = now - run > ON_TIME_MS;
    let missed = if capped {
        MAX_COUNTED
    } else {
        (count - 1).saturating_add(catch_up as u32).min(MAX_COUNTED)
    };
    Due {
        run: Some(run),
        missed,
        catch_up,
        start_at: Some(schedule.start_at(run)),
        next: next_after_now,
    }
}

/// `t` as RFC 3339 in UTC (`2026-12-08T01:00:00Z`), for reports.
pub fn format_utc(t: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|dt| dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| t.to_string())
}

/// `t` as wall-clock time in `tz` with its abbreviation (`2026-12-08 02:00:00 CET`).
pub fn format_local(tz: Tz, t: Millis) -> String {
    match tz.timestamp_millis_opt(t) {
        LocalResult::Single(dt) => dt.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        _ => format_utc(t),
    }
}

fn previous_at_or_before(schedule: &Schedule, t: Millis) -> Option<Millis> {
    let floor = t.div_euclid(1000) * 1000;
    let start = schedule.tz.timestamp_millis_opt(floor).single()?;
    schedule
        .cron
        .find_previous_occurrence(&start, true)
        .ok()
        .map(|dt| dt.timestamp_millis())
}

#[cfg(test)]
mod tests;
