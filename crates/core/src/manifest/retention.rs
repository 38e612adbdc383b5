//! `policy.json` (the repository's stored retention policy) and `pins/<id>.json` (a pinned
//! backup). Both are small objects beside the backups: a manifest is immutable, so a pin lives
//! in its own object, written and removed under the exclusive lock.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The newest `policy.json` format this build reads and writes.
pub const POLICY_FORMAT: u32 = 1;
/// The newest `pins/<id>.json` format this build reads and writes.
pub const PIN_FORMAT: u32 = 1;

/// A retention policy as the user gave it (flags of `holdfast expire` / `policy set`). Durations
/// are kept as written (`14d`, `1w`, `6 months`) and validated when the policy is parsed
/// (`retention::Policy::from_spec`), so a stored policy reads back exactly as it was set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep every backup finished within this long of the newest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// Every second of the last DURATION stays restorable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_window: Option<String>,
    /// The newest N backups are always kept (default 1, never less).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_keep: Option<u32>,
    /// IANA time zone of the calendar buckets; `None`: the local zone of whoever applies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl PolicySpec {
    /// Fills every field `self` leaves unset from `other` (flags over the stored policy).
    pub fn or(self, other: &PolicySpec) -> PolicySpec {
        PolicySpec {
            keep_last: self.keep_last.or(other.keep_last),
            keep_hourly: self.keep_hourly.or(other.keep_hourly),
            keep_daily: self.keep_daily.or(other.keep_daily),
            keep_weekly: self.keep_weekly.or(other.keep_weekly),
            keep_monthly: self.keep_monthly.or(other.keep_monthly),
            keep_yearly: self.keep_yearly.or(other.keep_yearly),
            keep_within: self.keep_within.or_else(|| other.keep_within.clone()),
            recovery_window: self
                .recovery_window
                .or_else(|| other.recovery_window.clone()),
            min_keep: self.min_keep.or(other.min_keep),
            timezone: self.timezone.or_else(|| other.timezone.clone()),
        }
    }

    /// Whether any rule is set (`min_keep` and `timezone` are not rules).
    pub fn has_rule(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_hourly.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
            || self.keep_within.is_some()
            || self.recovery_window.is_some()
    }

    /// The policy as flags, e.g. `--keep-daily 7 --keep-weekly 4 --recovery-window 14d`.
    pub fn to_flags(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut num = |flag: &str, v: Option<u32>| {
            if let Some(v) = v {
                out.push(format!("--{flag} {v}"));
            }
        };
        num("keep-last", self.keep_last);
        num("keep-hourly", self.keep_hourly);
        num("keep-daily", self.keep_daily);
        num("keep-weekly", self.keep_weekly);
        num("keep-monthly", self.keep_monthly);
        num("keep-yearly", self.keep_yearly);
        for (flag, v) in [
            ("keep-within", &self.keep_within),
            ("recovery-window", &self.recovery_window),
        ] {
            if let Some(v) = v {
                out.push(format!("--{flag} '{v}'"));
            }
        }
        if let Some(v) = self.min_keep {
            out.push(format!("--min-keep {v}"));
        }
        if let Some(v) = &self.timezone {
            out.push(format!("--timezone {v}"));
        }
        out.join(" ")
    }
}

/// `policy.json`: the policy `holdfast expire` (without rule flags), `backup --expire` and the
/// daemon apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredPolicy {
    pub format: u32,
    #[serde(flatten)]
    pub rules: PolicySpec,
    #[serde(with = "time::serde::rfc3339")]
    pub set: OffsetDateTime,
    /// `holdfast <version> on <host>`.
    pub set_by: String,
}

/// `pins/<id>.json`: the backup is kept by every policy until unpinned (or until `until`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PinRecord {
    pub format: u32,
    pub backup: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The pin lapses at this instant (then the policy decides again); `None`: until unpinned.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub pinned: OffsetDateTime,
    /// `holdfast <version> on <host>`.
    pub pinned_by: String,
}

impl PinRecord {
    /// Whether the pin still holds at `now`.
    pub fn holds_at(&self, now: OffsetDateTime) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}
