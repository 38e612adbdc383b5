//! The retention decision, a pure function: [`apply`] takes the backups, the binlog archive's
//! segments, a [`Policy`] and "now", and returns a [`Plan`] saying for every backup and every
//! range of segments whether it is kept or removed, with every reason that applies.
//!
//! Rules (the union is kept): keep-last, keep-hourly/daily/weekly/monthly/yearly (restic's
//! semantics: walking from the newest backup, the newest backup of each calendar bucket is kept
//! until N buckets that have backups are counted; buckets in the policy's time zone, ISO weeks),
//! keep-within (relative to the newest backup, so a stopped scheduler never wipes the
//! repository), and the recovery window (the newest complete base at or before now − window,
//! and every segment from its consistent point on).
//!
//! Invariants no policy overrides: a kept incremental keeps its whole chain down to its full;
//! the newest `min_keep` backups (at least one) are kept; a pin keeps its backup until it is
//! removed or lapses; segments are removed only before the oldest kept base's consistent point
//! (keeping the segment just before it, which shows the archive continues from that point, and
//! the newest segment, which a running stream resumes from), and a removed range that spans a
//! gap in the archive says so.

use std::collections::{HashMap, HashSet};

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};
use serde::Serialize;
use time::OffsetDateTime;

use crate::binlog::gtid::GtidPos;
use crate::manifest::{PolicySpec, SegmentIndex};
use crate::recovery::plan::{
    archive_gap, plan_recovery, BaseCandidate, BaseEngine, BaseRule, Target,
};
use crate::{Error, Result};

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Full,
    Incremental,
}

/// What the policy needs to know about a backup.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupFacts {
    pub id: String,
    /// `logical` or `physical`.
    pub engine: String,
    pub kind: Kind,
    /// The backup an incremental is built on.
    pub parent: Option<String>,
    /// When the backup finished: what keep-last, the calendar buckets and keep-within see.
    pub finished: OffsetDateTime,
    /// The consistent point: what the recovery window and the binlog archive see.
    pub point_time: OffsetDateTime,
    /// GTID position at the consistent point; `None` when the binary log was off (no base for
    /// point-in-time recovery).
    pub gtid: Option<GtidPos>,
    /// Every database and table of the server (a partial backup is no base for the window).
    pub complete: bool,
    pub pin: Option<PinFacts>,
    /// Verified or drilled successfully (`None`: never checked).
    pub verified: Option<bool>,
    /// Stored bytes.
    pub bytes: u64,
}

/// A pin as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PinFacts {
    pub reason: Option<String>,
    pub until: Option<OffsetDateTime>,
}

/// A validated policy. Build one with [`Policy::from_spec`].
#[derive(Debug, Clone)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub keep_within: Option<(String, Span)>,
    pub recovery_window: Option<(String, Span)>,
    pub min_keep: u32,
    pub timezone: TimeZone,
    /// The zone's name as shown in every plan (`Europe/Berlin`, `UTC`, `local (+01:00)`).
    pub timezone_name: String,
}

impl Policy {
    /// Validates a policy: at least one rule, `min_keep` at least 1, durations and the time
    /// zone readable. An unset time zone is the local one.
    pub fn from_spec(spec: &PolicySpec) -> Result<Policy> {
        if !spec.has_rule() {
            return Err(Error::usage(
                "no retention rule given: set at least one of --keep-last, --keep-hourly, \
                 --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within, \
                 --recovery-window (or store a policy with `holdfast policy set`)",
            ));
        }
        if spec.min_keep == Some(0) {
            return Err(Error::usage(
                "--min-keep 0 would let a policy remove every backup; the smallest is 1",
            ));
        }
        let (timezone, timezone_name) = match &spec.timezone {
            Some(name) => (
                TimeZone::get(name).map_err(|e| {
                    Error::usage(format!(
                        "--timezone `{name}` is not a known IANA time zone ({e}); use a name \
                         like Europe/Berlin, America/New_York or UTC"
                    ))
                })?,
                name.clone(),
            ),
            None => {
                let tz = TimeZone::system();
                let name = zone_label(&tz);
                (tz, name)
            }
        };
        Ok(Policy {
            keep_last: spec.keep_last.unwrap_or(0),
            keep_hourly: spec.keep_hourly.unwrap_or(0),
            keep_daily: spec.keep_daily.unwrap_or(0),
            keep_weekly: spec.keep_weekly.unwrap_or(0),
            keep_monthly: spec.keep_monthly.unwrap_or(0),
            keep_yearly: spec.keep_yearly.unwrap_or(0),
            keep_within: spec
                .keep_within
                .as_ref()
                .map(|s| parse_span("--keep-within", s).map(|sp| (s.clone(), sp)))
                .transpose()?,
            recovery_window: spec
                .recovery_window
                .as_ref()
                .map(|s| parse_span("--recovery-window", s).map(|sp| (s.clone(), sp)))
                .transpose()?,
            min_keep: spec.min_keep.unwrap_or(1),
            timezone,
            timezone_name,
        })
    }
}

/// A zone's IANA name, or its current offset when it has none.
fn zone_label(tz: &TimeZone) -> String {
    match tz.iana_name() {
        Some(n) => n.to_string(),
        None => format!("local ({})", Timestamp::now().to_zoned(tz.clone()).offset()),
    }
}

/// Parses a duration such as `14d`, `36h`, `2w`, `6 months`, `1y` or ISO 8601 `P14D`. Calendar
/// units (days and longer) are counted in the policy's time zone, so `1d` across a DST change
/// is a calendar day (23 or 25 hours).
pub fn parse_span(flag: &str, text: &str) -> Result<Span> {
    let span: Span = text.trim().parse().map_err(|_| {
        Error::usage(format!(
            "{flag} `{text}` is not a duration: use a number and a unit, e.g. 36h, 14d, 2w, \
             6mo, 1y (m is minutes, mo months)"
        ))
    })?;
    if span.is_negative() || span.is_zero() {
        return Err(Error::usage(format!(
            "{flag} `{text}` must be a positive duration"
        )));
    }
    Ok(span)
}

/// The plan for one backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupDecision {
    pub id: String,
    pub engine: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    pub bytes: u64,
    pub keep: bool,
    /// Why it is kept (every rule that applies), or why it is removed.
    pub reasons: Vec<String>,
}

/// The plan for a run of consecutive segments with the same decision and reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRange {
    pub first_seq: u64,
    pub last_seq: u64,
    pub segments: usize,
    /// First and last event time of the range (seconds since the epoch, as in the archive).
    pub first_event_time: u32,
    pub last_event_time: u32,
    pub bytes: u64,
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// What [`apply`] decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    pub timezone: String,
    /// Oldest first, like `holdfast list`.
    pub backups: Vec<BackupDecision>,
    /// In archive order.
    pub segments: Vec<SegmentRange>,
    /// What the policy could not honour, gaps in what is kept, broken chains.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn removed_backups(&self) -> impl Iterator<Item = &BackupDecision> {
        self.backups.iter().filter(|b| !b.keep)
    }

    pub fn removed_ranges(&self) -> impl Iterator<Item = &SegmentRange> {
        self.segments.iter().filter(|r| !r.keep)
    }

    pub fn backup_bytes_freed(&self) -> u64 {
        self.removed_backups().map(|b| b.bytes).sum()
    }

    pub fn segment_bytes_freed(&self) -> u64 {
        self.removed_ranges().map(|r| r.bytes).sum()
    }

    /// Whether the plan removes anything.
    pub fn removes_anything(&self) -> bool {
        self.removed_backups().next().is_some() || self.removed_ranges().next().is_some()
    }
}

/// Reasons attached to each backup, deduplicated, in the order they were found.
struct Reasons(Vec<Vec<String>>);

impl Reasons {
    fn add(&mut self, i: usize, reason: String) {
        if !self.0[i].contains(&reason) {
            self.0[i].push(reason);
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn zoned(t: OffsetDateTime, tz: &TimeZone) -> Zoned {
    let ts = Timestamp::from_nanosecond(t.unix_timestamp_nanos()).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(tz.clone())
}

fn from_zoned(z: &Zoned) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(z.timestamp().as_nanosecond())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `t − span`, calendar units in `tz`; the earliest representable time if out of range.
fn minus(t: OffsetDateTime, span: Span, tz: &TimeZone) -> OffsetDateTime {
    zoned(t, tz)
        .checked_sub(span)
        .map(|z| from_zoned(&z))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The calendar buckets: flag-like name and the label of a time's bucket.
const BUCKETS: [&str; 5] = ["hourly", "daily", "weekly", "monthly", "yearly"];

/// The label of `t`'s bucket of kind `kind` in `tz`. Hours carry their UTC offset, so the
/// hour repeated when clocks go back is two buckets, as it is two hours.
pub fn bucket_label(kind: &str, t: OffsetDateTime, tz: &TimeZone) -> String {
    let z = zoned(t, tz);
    let d = z.date();
    match kind {
        "hourly" => format!(
            "{:04}-{:02}-{:02} {:02}:00{}",
            d.year(),
            d.month(),
            d.day(),
            z.hour(),
            z.offset()
        ),
        "daily" => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        "weekly" => {
            let w = d.iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        "monthly" => format!("{:04}-{:02}", d.year(), d.month()),
        _ => format!("{:04}", d.year()),
    }
}

/// Applies `policy` at `now`; see the module documentation. `backups` in any order,
/// `segments` in archive order.
pub fn apply(
    backups: &[BackupFacts],
    segments: &[SegmentIndex],
    policy: &Policy,
    now: OffsetDateTime,
) -> Plan {
    let tz = &policy.timezone;
    let mut warnings = Vec::new();
    let mut reasons = Reasons(vec![Vec::new(); backups.len()]);
    // Newest first.
    let mut order: Vec<usize> = (0..backups.len()).collect();
    order.sort_by(|&a, &b| {
        (backups[b].finished, &backups[b].id).cmp(&(backups[a].finished, &backups[a].id))
    });

    for &i in order.iter().take(policy.keep_last as usize) {
        reasons.add(i, format!("last {}", policy.keep_last));
    }
    let counts = [
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    ];
    for (kind, n) in BUCKETS.iter().zip(counts) {
        let mut last: Option<String> = None;
        let mut kept = 0;
        for &i in &order {
            if kept >= n {
                break;
            }
            let label = bucket_label(kind, backups[i].finished, tz);
            if last.as_ref() != Some(&label) {
                reasons.add(i, format!("{kind} {label}"));
                kept += 1;
                last = Some(label);
            }
        }
    }
    if let (Some((text, span)), Some(&newest)) = (&policy.keep_within, order.first()) {
        let cutoff = minus(backups[newest].finished, *span, tz);
        for &i in &order {
            if backups[i].finished >= cutoff {
                reasons.add(i, format!("within {text} of the newest backup"));
            }
        }
    }
    let mut removal_notes: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, b) in backups.iter().enumerate() {
        let Some(pin) = &b.pin else { continue };
        let why = pin.reason.as_deref().unwrap_or("no reason given");
        match pin.until {
            Some(u) if now >= u => removal_notes
                .entry(i)
                .or_default()
                .push(format!("pin lapsed at {} ({why})", rfc3339(u))),
            Some(u) => reasons.add(i, format!("pinned until {}: {why}", rfc3339(u))),
            None => reasons.add(i, format!("pinned: {why}")),
        }
    }
    let window_start = policy
        .recovery_window
        .as_ref()
        .map(|(text, span)| (text.clone(), minus(now, *span, tz)));
    if let Some((text, start)) = &window_start {
        let bases = || {
            backups
                .iter()
                .enumerate()
                .filter(|(_, b)| b.complete && b.gtid.is_some())
        };
        let at_or_before = bases()
            .filter(|(_, b)| b.point_time <= *start)
            .max_by_key(|(_, b)| (b.point_time, b.id.clone()));
        match at_or_before {
            Some((i, _)) => reasons.add(
                i,
                format!("recovery window {text}: base for {} on", rfc3339(*start)),
            ),
            None => match bases().min_by_key(|(_, b)| (b.point_time, b.id.clone())) {
                Some((i, b)) => {
                    reasons.add(
                        i,
                        format!(
                            "recovery window {text}: oldest base (the window starts before it)"
                        ),
                    );
                    warnings.push(format!(
                        "the recovery window ({text}) starts at {}, before the oldest complete \
                         backup with a binlog position ({}, consistent at {}): points before it \
                         cannot be recovered",
                        rfc3339(*start),
                        b.id,
                        rfc3339(b.point_time)
                    ));
                }
                None => warnings.push(format!(
                    "the recovery window ({text}) cannot be honoured: no complete backup \
                     records a binlog position"
                )),
            },
        }
    }
    if let Some(&i) = order.iter().find(|&&i| backups[i].verified == Some(true)) {
        reasons.add(i, "newest verified backup".to_string());
    }
    let min_keep = policy.min_keep.max(1);
    for &i in order.iter().take(min_keep as usize) {
        reasons.add(
            i,
            if min_keep == 1 {
                "newest backup (min-keep)".to_string()
            } else {
                format!("newest {min_keep} (min-keep)")
            },
        );
    }
    // Chains: every kept incremental keeps its parents down to its full.
    let by_id: HashMap<&str, usize> = backups
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id.as_str(), i))
        .collect();
    let kept_by_rules: Vec<usize> = (0..backups.len())
        .filter(|&i| !reasons.0[i].is_empty())
        .collect();
    let mut broken: HashSet<usize> = HashSet::new();
    for i in kept_by_rules {
        let mut child = i;
        let mut steps = 0;
        while let Some(parent) = backups[child].parent.as_deref() {
            steps += 1;
            if steps > backups.len() {
                break;
            }
            match by_id.get(parent) {
                Some(&p) => {
                    reasons.add(p, format!("parent of {}", backups[child].id));
                    child = p;
                }
                None => {
                    if broken.insert(child) {
                        warnings.push(format!(
                            "backup {}'s parent {parent} is not in the repository: its chain \
                             is broken and it cannot be restored",
                            backups[child].id
                        ));
                    }
                    break;
                }
            }
        }
    }
    let keep: Vec<bool> = reasons.0.iter().map(|r| !r.is_empty()).collect();

    let mut decisions: Vec<BackupDecision> = backups
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut why = reasons.0[i].clone();
            if !keep[i] {
                why.push("no rule keeps it".to_string());
            }
            why.extend(removal_notes.remove(&i).unwrap_or_default());
            BackupDecision {
                id: b.id.clone(),
                engine: b.engine.clone(),
                kind: b.kind,
                parent: b.parent.clone(),
                finished: b.finished,
                bytes: b.bytes,
                keep: keep[i],
                reasons: why,
            }
        })
        .collect();
    decisions.sort_by(|a, b| (a.finished, &a.id).cmp(&(b.finished, &b.id)));

    let kept_bases: Vec<&BackupFacts> = backups
        .iter()
        .zip(&keep)
        .filter(|(b, k)| **k && b.gtid.is_some())
        .map(|(b, _)| b)
        .collect();
    let window_point = window_start.as_ref().map(|(_, s)| *s);
    let ranges = plan_segments(segments, &kept_bases, window_point, &mut warnings);
    Plan {
        now,
        timezone: policy.timezone_name.clone(),
        backups: decisions,
        segments: ranges,
        warnings,
    }
}

/// Decides every segment: removed only before the oldest kept base's point.
fn plan_segments(
    segments: &[SegmentIndex],
    kept_bases: &[&BackupFacts],
    window_start: Option<OffsetDateTime>,
    warnings: &mut Vec<String>,
) -> Vec<SegmentRange> {
    if segments.is_empty() {
        return Vec::new();
    }
    let last = segments.len() - 1;
    let oldest = kept_bases
        .iter()
        .min_by_key(|b| (b.point_time, b.id.clone()))
        .copied();
    // Index of the first segment kept, and what the removed ones are "before".
    let (keep_from, boundary) = match oldest {
        None => {
            warnings.push(
                "no kept backup records a binlog position: the whole binlog archive is kept"
                    .to_string(),
            );
            (0, None)
        }
        Some(base) => {
            let pos = base.gtid.as_ref().expect("kept bases have a position");
            let from = keep_from(segments, base, pos);
            (from.min(last), Some(base))
        }
    };
    let mut per_segment: Vec<(bool, Vec<String>)> = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        let mut why = Vec::new();
        let keep = i >= keep_from;
        if let Some(base) = boundary {
            if keep {
                let in_base = base
                    .gtid
                    .as_ref()
                    .is_some_and(|p| p.includes(&s.gtid_state));
                if !in_base {
                    why.push(format!("after backup {}'s consistent point", base.id));
                } else if i < last {
                    why.push(format!(
                        "start of the replay from backup {} (format description, continuity)",
                        base.id
                    ));
                }
            } else {
                why.push(format!(
                    "before the oldest kept base {} (consistent at {})",
                    base.id,
                    rfc3339(base.point_time)
                ));
            }
        } else {
            why.push("no kept backup has a binlog position".to_string());
        }
        if keep && window_start.is_some_and(|w| (s.last_event_time as i64) >= w.unix_timestamp()) {
            why.push("recovery window".to_string());
        }
        if i == last {
            why.push("newest segment (a running stream resumes from it)".to_string());
        }
        per_segment.push((keep, why));
    }
    let mut ranges: Vec<SegmentRange> = Vec::new();
    // The reasons each range was opened with (before a "follows a gap" note).
    let mut opened_with: Vec<Vec<String>> = Vec::new();
    for (i, (s, (keep, why))) in segments.iter().zip(per_segment).enumerate() {
        let gap = (i > 0).then(|| archive_gap(&segments[i - 1..=i])).flatten();
        let joins = ranges
            .last()
            .is_some_and(|r| r.keep == keep && opened_with.last() == Some(&why) && gap.is_none());
        if let Some(gap) = &gap {
            let prev_kept = i >= 1 && ranges.last().is_some_and(|r| r.keep);
            warnings.push(match (prev_kept, keep) {
                (true, _) => format!("kept archive: {gap}"),
                (false, true) => format!("the removed range ends at a gap: {gap}"),
                (false, false) => format!("a removed range spans a gap: {gap}"),
            });
        }
        if joins {
            let r = ranges.last_mut().expect("joins");
            r.last_seq = s.seq;
            r.segments += 1;
            r.last_event_time = s.last_event_time;
            r.bytes += s.object.size;
        } else {
            opened_with.push(why.clone());
            let mut why = why;
            if let Some(gap) = gap {
                why.push(format!("follows a gap: {gap}"));
            }
            ranges.push(SegmentRange {
                first_seq: s.seq,
                last_seq: s.seq,
                segments: 1,
                first_event_time: s.first_event_time,
                last_event_time: s.last_event_time,
                bytes: s.object.size,
                keep,
                reasons: why,
            });
        }
    }
    ranges
}

/// The index of the first segment a replay from `base` needs: the piece holding the base's
/// first missing transaction, widened (checked with the recovery planner itself) until a
/// recovery that worked on the whole archive works on what is kept; a piece that continues by
/// rotation needs the segment before it, which shows the archive reaches the base's point.
fn keep_from(segments: &[SegmentIndex], base: &BackupFacts, pos: &GtidPos) -> usize {
    let last = segments.len() - 1;
    let Some(first_new) = segments.iter().position(|s| !pos.includes(&s.gtid_state)) else {
        return last;
    };
    let Some(piece) = (0..=first_new).rev().find(|&j| segments[j].header) else {
        return 0;
    };
    let candidate = [BaseCandidate {
        id: base.id.clone(),
        gtid: Some(pos.clone()),
        time: base.point_time,
        engine: if base.engine == "physical" {
            BaseEngine::Physical
        } else {
            BaseEngine::Logical
        },
        partial: None,
    }];
    let any = BaseRule::default();
    if plan_recovery(&candidate, segments, Target::Latest, &any).is_err() {
        // A gap further on: the planner cannot check the start alone, so keep the segment
        // before the piece too (a piece continued by rotation or position is checked against
        // it).
        return piece.saturating_sub(1);
    }
    let mut from = piece;
    let mut tries = 0;
    while from > 0 && plan_recovery(&candidate, &segments[from..], Target::Latest, &any).is_err() {
        from -= 1;
        tries += 1;
        if tries > 64 {
            return 0;
        }
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event::ChecksumAlg;
    use crate::binlog::gtid::Gtid;
    use crate::manifest::{FileEntry, PieceStart, SegmentSource, SEGMENT_FORMAT};

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    /// Relative seconds on the archive's clock (as in recovery::plan's tests).
    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn pos(seq: u64) -> GtidPos {
        GtidPos::from_gtids([Gtid::maria(0, 1, seq)])
    }

    fn spec(f: impl FnOnce(&mut PolicySpec)) -> PolicySpec {
        let mut s = PolicySpec {
            timezone: Some("UTC".into()),
            ..PolicySpec::default()
        };
        f(&mut s);
        s
    }

    fn policy(f: impl FnOnce(&mut PolicySpec)) -> Policy {
        Policy::from_spec(&spec(f)).unwrap()
    }

    /// A full logical backup finished at `finished`, consistent then, at no GTID position.
    fn full(id: &str, finished: OffsetDateTime) -> BackupFacts {
        BackupFacts {
            id: id.into(),
            engine: "logical".into(),
            kind: Kind::Full,
            parent: None,
            finished,
            point_time: finished,
            gtid: None,
            complete: true,
            pin: None,
            verified: None,
            bytes: 100,
        }
    }

    fn inc(id: &str, finished: OffsetDateTime, parent: &str) -> BackupFacts {
        BackupFacts {
            engine: "physical".into(),
            kind: Kind::Incremental,
            parent: Some(parent.into()),
            ..full(id, finished)
        }
    }

    /// A base at transaction `txn`, consistent at relative second `txn`.
    fn base(id: &str, txn: u64) -> BackupFacts {
        BackupFacts {
            gtid: Some(pos(txn)),
            point_time: t(txn as i64),
            ..full(id, t(txn as i64 + 1))
        }
    }

    /// A segment of `file` from byte `start` to `end` holding transactions `first..=last`,
    /// committed at relative seconds `first..=last`; a file's first segment (start 0) is a
    /// piece started by GTID from `first - 1`.
    fn seg(seq: u64, file: &str, start: u64, end: u64, first: u64, last: u64) -> SegmentIndex {
        SegmentIndex {
            format: SEGMENT_FORMAT,
            seq,
            source: SegmentSource {
                server_id: 1,
                server_version: "10.11".into(),
                file: file.into(),
                file_created: 1,
            },
            start_pos: start,
            end_pos: end,
            header: start == 0,
            piece_start: (start == 0).then(|| PieceStart::Gtid {
                from: pos(first - 1),
            }),
            checksum: ChecksumAlg::Crc32,
            events: 1,
            transactions: last - first + 1,
            first_event_time: (1_700_000_000 + first) as u32,
            last_event_time: (1_700_000_000 + last) as u32,
            first_gtid: Some(Gtid::maria(0, 1, first)),
            last_gtid: Some(Gtid::maria(0, 1, last)),
            gtid_state: pos(last),
            open_transaction: false,
            ends_file: false,
            raw_size: 0,
            object: FileEntry {
                path: format!("binlog/data/{seq}"),
                size: 1000,
                sha256: String::new(),
            },
            merged_to: None,
            replaced_object: None,
            archived: t(0),
        }
    }

    fn kept(plan: &Plan) -> Vec<&str> {
        plan.backups
            .iter()
            .filter(|b| b.keep)
            .map(|b| b.id.as_str())
            .collect()
    }

    fn reasons<'a>(plan: &'a Plan, id: &str) -> &'a [String] {
        &plan.backups.iter().find(|b| b.id == id).unwrap().reasons
    }

    fn has(plan: &Plan, id: &str, reason: &str) -> bool {
        reasons(plan, id).iter().any(|r| r == reason)
    }

    fn segment_keep(plan: &Plan) -> Vec<(u64, u64, bool)> {
        plan.segments
            .iter()
            .map(|r| (r.first_seq, r.last_seq, r.keep))
            .collect()
    }

    #[test]
    fn calendar_buckets_follow_the_zone_dst_and_iso_weeks() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let ny = TimeZone::get("America/New_York").unwrap();
        let utc = TimeZone::UTC;
        let cases: &[(&str, &str, &TimeZone, &str)] = &[
            // 22:30 UTC is 00:30 the next day in summer (CEST) and 23:30 the same day in
            // winter (CET): two backups a day apart fall on the same Berlin date.
            ("daily", "2026-10-24T22:30:00Z", &berlin, "2026-10-25"),
            ("daily", "2026-10-25T22:30:00Z", &berlin, "2026-10-25"),
            ("daily", "2026-10-25T22:30:00Z", &utc, "2026-10-25"),
            ("daily", "2026-10-24T22:30:00Z", &utc, "2026-10-24"),
            // The repeated hour when clocks go back is two hours, two buckets.
            ("hourly", "2026-11-01T05:30:00Z", &ny, "2026-11-01 01:00-04"),
            ("hourly", "2026-11-01T06:30:00Z", &ny, "2026-11-01 01:00-05"),
            // ISO weeks across the year boundary: 2026 has 53 weeks.
            ("weekly", "2026-12-31T12:00:00Z", &utc, "2026-W53"),
            ("weekly", "2027-01-03T12:00:00Z", &utc, "2026-W53"),
            ("weekly", "2027-01-04T12:00:00Z", &utc, "2027-W01"),
            ("weekly", "2025-12-29T12:00:00Z", &utc, "2026-W01"),
            // Sunday evening in New York is already Monday in UTC.
            ("weekly", "2027-01-04T03:00:00Z", &ny, "2026-W53"),
            ("monthly", "2027-01-01T03:00:00Z", &ny, "2026-12"),
            ("yearly", "2027-01-01T03:00:00Z", &ny, "2026"),
            ("yearly", "2027-01-01T03:00:00Z", &utc, "2027"),
        ];
        for (kind, when, tz, want) in cases {
            let got = bucket_label(kind, at(when), tz);
            assert!(
                got.starts_with(want),
                "{kind} {when} in {:?}: got {got}, want {want}",
                tz.iana_name()
            );
        }
    }

    #[test]
    fn gfs_keeps_the_newest_backup_of_each_bucket_with_backups() {
        // (name, policy, backups (id, finished), zone, kept ids, a reason expected on an id)
        type Case = (
            &'static str,
            PolicySpec,
            Vec<(&'static str, &'static str)>,
            Vec<&'static str>,
            (&'static str, &'static str),
        );
        let cases: Vec<Case> = vec![
            (
                "daily across the fall-back DST change in Berlin",
                spec(|s| {
                    s.keep_daily = Some(3);
                    s.timezone = Some("Europe/Berlin".into());
                }),
                vec![
                    ("d23", "2026-10-23T22:30:00Z"),
                    ("d24", "2026-10-24T22:30:00Z"),
                    ("d25", "2026-10-25T22:30:00Z"),
                    ("d26", "2026-10-26T22:30:00Z"),
                ],
                vec!["d23", "d25", "d26"],
                ("d25", "daily 2026-10-25"),
            ),
            (
                "daily across the spring-forward DST change in New York",
                spec(|s| {
                    s.keep_daily = Some(2);
                    s.timezone = Some("America/New_York".into());
                }),
                // 04:30 UTC is 23:30 EST the day before, then 00:30 EDT the same day.
                vec![
                    ("m07", "2026-03-07T04:30:00Z"),
                    ("m08", "2026-03-08T04:30:00Z"),
                    ("m09", "2026-03-09T04:30:00Z"),
                ],
                vec!["m08", "m09"],
                ("m08", "daily 2026-03-07"),
            ),
            (
                "weekly and yearly across the year boundary (ISO 2026-W53)",
                spec(|s| {
                    s.keep_weekly = Some(2);
                    s.keep_yearly = Some(2);
                }),
                vec![
                    ("dec27", "2026-12-27T12:00:00Z"),
                    ("dec28", "2026-12-28T12:00:00Z"),
                    ("dec31", "2026-12-31T12:00:00Z"),
                    ("jan03", "2027-01-03T12:00:00Z"),
                    ("jan04", "2027-01-04T12:00:00Z"),
                    ("jan05", "2027-01-05T12:00:00Z"),
                ],
                vec!["dec31", "jan03", "jan05"],
                ("jan03", "weekly 2026-W53"),
            ),
            (
                "monthly counts only months that have backups",
                spec(|s| s.keep_monthly = Some(3)),
                vec![
                    ("jan", "2026-01-15T00:00:00Z"),
                    ("mar", "2026-03-15T00:00:00Z"),
                    ("jun1", "2026-06-01T00:00:00Z"),
                    ("jun2", "2026-06-20T00:00:00Z"),
                    ("dec", "2026-12-01T00:00:00Z"),
                ],
                vec!["mar", "jun2", "dec"],
                ("jun2", "monthly 2026-06"),
            ),
            (
                "keep-last and daily are a union",
                spec(|s| {
                    s.keep_last = Some(2);
                    s.keep_daily = Some(2);
                }),
                vec![
                    ("a1", "2026-05-01T01:00:00Z"),
                    ("a2", "2026-05-01T02:00:00Z"),
                    ("b1", "2026-05-02T01:00:00Z"),
                    ("b2", "2026-05-02T02:00:00Z"),
                    ("b3", "2026-05-02T03:00:00Z"),
                ],
                vec!["a2", "b2", "b3"],
                ("b3", "last 2"),
            ),
            (
                "keep-within counts calendar days in the zone (25 hours on the DST day)",
                spec(|s| {
                    s.keep_within = Some("1d".into());
                    s.timezone = Some("Europe/Berlin".into());
                }),
                vec![
                    ("old", "2026-10-24T20:30:00Z"),
                    ("day", "2026-10-24T21:30:00Z"),
                    ("new", "2026-10-25T22:00:00Z"),
                ],
                vec!["day", "new"],
                ("day", "within 1d of the newest backup"),
            ),
        ];
        for (name, spec, backups, want, (id, reason)) in cases {
            let policy = Policy::from_spec(&spec).unwrap();
            let facts: Vec<BackupFacts> = backups.iter().map(|(i, w)| full(i, at(w))).collect();
            let plan = apply(&facts, &[], &policy, at("2027-06-01T00:00:00Z"));
            assert_eq!(kept(&plan), want, "{name}: {plan:#?}");
            assert!(has(&plan, id, reason), "{name}: {:?}", reasons(&plan, id));
            assert_eq!(plan.timezone, spec.timezone.unwrap());
        }
    }

    #[test]
    fn keep_within_is_relative_to_the_newest_backup() {
        let facts: Vec<BackupFacts> = (1..=10)
            .map(|d| {
                full(
                    &format!("d{d:02}"),
                    at(&format!("2026-01-{d:02}T12:00:00Z")),
                )
            })
            .collect();
        // A year later (a scheduler stopped long ago): the last 3 days of backups are kept.
        let plan = apply(
            &facts,
            &[],
            &policy(|s| s.keep_within = Some("3d".into())),
            at("2027-01-01T00:00:00Z"),
        );
        assert_eq!(kept(&plan), vec!["d07", "d08", "d09", "d10"]);
        assert!(has(&plan, "d06", "no rule keeps it"));
    }

    #[test]
    fn chains_pins_and_min_keep() {
        let day = |d: u32| at(&format!("2026-02-{d:02}T00:00:00Z"));
        let chain = || {
            vec![
                full("F1", day(1)),
                inc("I1", day(2), "F1"),
                inc("I2", day(3), "I1"),
                full("F2", day(4)),
                inc("J1", day(5), "F2"),
            ]
        };
        let now = day(20);
        // keep-last 1 keeps the newest incremental's whole chain, and nothing of the other.
        let plan = apply(&chain(), &[], &policy(|s| s.keep_last = Some(1)), now);
        assert_eq!(kept(&plan), vec!["F2", "J1"]);
        assert!(has(&plan, "F2", "parent of J1"));
        assert!(has(&plan, "J1", "newest backup (min-keep)"));
        // Keeping an old incremental keeps its parents down to the full.
        let mut pinned = chain();
        pinned[2].pin = Some(PinFacts {
            reason: Some("before schema migration".into()),
            until: None,
        });
        let plan = apply(&pinned, &[], &policy(|s| s.keep_last = Some(1)), now);
        assert_eq!(kept(&plan), vec!["F1", "I1", "I2", "F2", "J1"]);
        assert!(has(&plan, "I2", "pinned: before schema migration"));
        assert!(has(&plan, "I1", "parent of I2"));
        assert!(has(&plan, "F1", "parent of I1"));
        // A lapsed pin keeps nothing and says so; a pin with a future end does.
        let mut lapsed = chain();
        lapsed[0].pin = Some(PinFacts {
            reason: None,
            until: Some(day(10)),
        });
        lapsed[3].pin = Some(PinFacts {
            reason: Some("audit".into()),
            until: Some(day(28)),
        });
        let plan = apply(&lapsed, &[], &policy(|s| s.keep_last = Some(1)), now);
        assert_eq!(kept(&plan), vec!["F2", "J1"]);
        assert!(reasons(&plan, "F1")
            .iter()
            .any(|r| r.starts_with("pin lapsed at 2026-02-10")));
        assert!(has(&plan, "F2", "pinned until 2026-02-28T00:00:00Z: audit"));
        // A removed full: its incrementals' chain is broken, which the plan says.
        let broken: Vec<BackupFacts> = chain().into_iter().skip(1).collect();
        let plan = apply(&broken, &[], &policy(|s| s.keep_last = Some(4)), now);
        assert_eq!(kept(&plan), vec!["I1", "I2", "F2", "J1"]);
        assert!(
            plan.warnings.iter().any(|w| w.contains("I1's parent F1")),
            "{:?}",
            plan.warnings
        );
        // min-keep: a rule that keeps nothing still leaves the newest backups.
        let plan = apply(
            &chain(),
            &[],
            &policy(|s| {
                s.recovery_window = Some("1d".into());
                s.min_keep = Some(2);
            }),
            now,
        );
        assert_eq!(kept(&plan), vec!["F2", "J1"]);
        assert!(has(&plan, "F2", "newest 2 (min-keep)"));
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.contains("cannot be honoured")));
    }

    #[test]
    fn policies_without_a_rule_or_with_min_keep_0_are_refused() {
        for bad in [
            spec(|_| {}),
            spec(|s| s.min_keep = Some(3)),
            spec(|s| {
                s.keep_last = Some(1);
                s.min_keep = Some(0);
            }),
            spec(|s| s.keep_within = Some("soon".into())),
            spec(|s| s.recovery_window = Some("-3d".into())),
            spec(|s| {
                s.keep_last = Some(1);
                s.timezone = Some("Mars/Olympus_Mons".into());
            }),
        ] {
            let e = Policy::from_spec(&bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Usage, "{bad:?}");
        }
        for good in ["14d", "36h", "2w", "6mo", "1y", "90m", "P14D", "1 week"] {
            assert!(parse_span("--keep-within", good).is_ok(), "{good}");
        }
    }

    /// Segments 1-2 (file b.1: txns 1-10, 11-12), 3-4 (b.2, a piece by GTID from 12: txns
    /// 13-20, 21-30), 5-6 (b.3 from 30: 31-40, 41-50).
    fn archive() -> Vec<SegmentIndex> {
        vec![
            seg(1, "b.1", 0, 100, 1, 10),
            seg(2, "b.1", 100, 200, 11, 12),
            seg(3, "b.2", 0, 100, 13, 20),
            seg(4, "b.2", 100, 200, 21, 30),
            seg(5, "b.3", 0, 100, 31, 40),
            seg(6, "b.3", 100, 200, 41, 50),
        ]
    }

    #[test]
    fn recovery_window_starting_between_two_bases() {
        let backups = vec![base("A", 5), base("B", 15), base("C", 35)];
        // The window starts at second 20: B (15) is the newest base at or before it.
        let plan = apply(
            &backups,
            &archive(),
            &policy(|s| s.recovery_window = Some("30s".into())),
            t(50),
        );
        assert_eq!(kept(&plan), vec!["B", "C"]);
        assert!(reasons(&plan, "B")[0].starts_with("recovery window 30s: base for"));
        assert!(has(&plan, "A", "no rule keeps it"));
        // Segments before B's point go, except what a replay from B reads: the piece holding
        // its first missing transaction (13-20) on.
        assert_eq!(
            segment_keep(&plan)
                .iter()
                .map(|r| (r.0, r.2))
                .collect::<Vec<_>>(),
            vec![(1, false), (3, true), (6, true)],
            "{:#?}",
            plan.segments
        );
        assert!(plan.segments[0].reasons[0].starts_with("before the oldest kept base B"));
        assert!(plan.segments[2]
            .reasons
            .contains(&"recovery window".to_string()));
        assert_eq!(plan.segment_bytes_freed(), 2000);
        // What is kept still plans a recovery from B to every point after it.
        let kept_segments: Vec<SegmentIndex> = archive().into_iter().skip(2).collect();
        let candidate = [BaseCandidate {
            id: "B".into(),
            gtid: Some(pos(15)),
            time: t(15),
            engine: BaseEngine::Logical,
            partial: None,
        }];
        for target in [Target::Time(t(21)), Target::Latest] {
            assert!(
                plan_recovery(&candidate, &kept_segments, target, &BaseRule::default()).is_ok()
            );
        }
    }

    #[test]
    fn a_rotation_piece_keeps_the_segment_that_shows_continuity() {
        // b.2 follows b.1 by rotation: a replay from a base at 12 must see segment 2 (which
        // ends at 12) to know the archive continues from the base's point.
        let mut segments = archive();
        segments[2].piece_start = Some(PieceStart::Rotation);
        segments[1].ends_file = true;
        let plan = apply(
            &[base("B", 12)],
            &segments,
            &policy(|s| s.keep_last = Some(1)),
            t(60),
        );
        assert_eq!(
            segment_keep(&plan)
                .iter()
                .map(|r| (r.0, r.2))
                .collect::<Vec<_>>(),
            vec![(1, false), (2, true), (3, true), (6, true)],
            "{:#?}",
            plan.segments
        );
        let kept_segments: Vec<SegmentIndex> = segments.into_iter().skip(1).collect();
        let candidate = [BaseCandidate {
            id: "B".into(),
            gtid: Some(pos(12)),
            time: t(12),
            engine: BaseEngine::Logical,
            partial: None,
        }];
        plan_recovery(
            &candidate,
            &kept_segments,
            Target::Latest,
            &BaseRule::default(),
        )
        .unwrap();
    }

    #[test]
    fn gaps_in_the_archive_are_named_and_segments_kept_conservatively() {
        // A gap between segments 2 and 3 (b.2 starts from 11, after 12 was archived) and one
        // between 4 and 5 (b.3 starts from 35, not 30).
        let mut segments = archive();
        segments[2].piece_start = Some(PieceStart::Gtid { from: pos(11) });
        segments[4].piece_start = Some(PieceStart::Gtid { from: pos(35) });
        // Base after both gaps: everything before it goes, the removed ranges say where the
        // gaps are.
        let plan = apply(
            &[base("A", 5), base("C", 45)],
            &segments,
            &policy(|s| s.keep_last = Some(1)),
            t(60),
        );
        assert_eq!(kept(&plan), vec!["C"]);
        let removed: Vec<&SegmentRange> = plan.removed_ranges().collect();
        assert_eq!(removed.len(), 2, "{:#?}", plan.segments);
        assert_eq!((removed[0].first_seq, removed[0].last_seq), (1, 2));
        assert_eq!((removed[1].first_seq, removed[1].last_seq), (3, 4));
        assert!(removed[1].reasons.iter().any(|r| r.contains("gap")));
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.starts_with("a removed range spans a gap")));
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.starts_with("the removed range ends at a gap")));
        let mut segments = archive();
        segments[4].piece_start = Some(PieceStart::Gtid { from: pos(35) });
        // Base before the gap: no recovery from it crosses the gap, so the planner cannot
        // check what it needs; the segment before its piece is kept as well.
        let plan = apply(
            &[base("B", 15)],
            &segments,
            &policy(|s| s.keep_last = Some(1)),
            t(60),
        );
        assert_eq!(
            segment_keep(&plan).first().map(|r| (r.0, r.2)),
            Some((1, false))
        );
        assert_eq!(plan.segments[1].first_seq, 2);
        assert!(plan.segments[1].keep);
        assert!(plan
            .warnings
            .iter()
            .any(|w| w.starts_with("kept archive: the archive has a gap")));
    }

    #[test]
    fn the_archive_is_kept_without_a_base_and_its_newest_segment_always() {
        let plan = apply(
            &[full("L", t(100))],
            &archive(),
            &policy(|s| s.keep_last = Some(1)),
            t(200),
        );
        assert!(plan.segments.iter().all(|r| r.keep));
        assert!(plan.warnings[0].contains("whole binlog archive is kept"));
        // A base past the end of the archive keeps only the newest segment.
        let plan = apply(
            &[base("Z", 60)],
            &archive(),
            &policy(|s| s.keep_last = Some(1)),
            t(200),
        );
        assert_eq!(
            segment_keep(&plan),
            vec![(1, 5, false), (6, 6, true)],
            "{:#?}",
            plan.segments
        );
        assert!(plan.segments[1]
            .reasons
            .iter()
            .any(|r| r.starts_with("newest segment")));
    }
}
