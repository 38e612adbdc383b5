//! What the daemon tells people: an [`Alert`] about one incident, identified by its `key`.
//!
//! An incident opens with an alert whose `resolved` is false and closes with one whose
//! `resolved` is true under the same key (see [`super::dedup`] for what is sent when).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::jobs::JobKind;
use crate::time::{now_millis, Millis};

/// How loud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertEvent {
    /// A job failed after its last attempt (or with an error no retry cures).
    JobFailed,
    /// A job of a kind that had failed succeeded again (closes `job-failed`).
    JobRecovered,
    /// A schedule's planned run did not happen (the daemon was down, or the job could not start
    /// in its window); it is caught up once.
    ScheduleMissed,
    /// The binlog archive lags behind the server by more than the threshold.
    ArchiveLag,
    /// The binlog streamer stopped (and its restarts keep failing).
    ArchiveStopped,
    /// The recoverable window got shorter than it was (its start moved forward without the
    /// retention policy asking for it, or its end stopped moving).
    WindowShrinking,
    /// A restore drill ran and the backup failed a check.
    DrillFailed,
    /// The repository grew beyond the warning share of its size limit.
    RepositorySize,
    /// `holdfast notify test`.
    Test,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::JobFailed => "job-failed",
            AlertEvent::JobRecovered => "job-recovered",
            AlertEvent::ScheduleMissed => "schedule-missed",
            AlertEvent::ArchiveLag => "archive-lag",
            AlertEvent::ArchiveStopped => "archive-stopped",
            AlertEvent::WindowShrinking => "window-shrinking",
            AlertEvent::DrillFailed => "drill-failed",
            AlertEvent::RepositorySize => "repository-size",
            AlertEvent::Test => "test",
        }
    }
}

/// One message about one incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// The incident: alerts with the same key are about the same thing, e.g.
    /// `job-failed/db1/backup`. Opening and closing alerts share it.
    pub key: String,
    pub event: AlertEvent,
    pub severity: Severity,
    /// This alert closes the incident.
    pub resolved: bool,
    /// One line, e.g. "backup of db1 failed".
    pub title: String,
    /// What happened and what to do, a few lines of plain text.
    pub text: String,
    /// `server`, `repository`, `job`, `job_id`, … (also the Alertmanager labels).
    pub labels: BTreeMap<String, String>,
    /// When this was observed.
    pub at: Millis,
    /// When the incident opened (the dispatcher sets it on repeats and on the resolved message).
    pub started_at: Millis,
}

impl Alert {
    /// A new alert at the current time.
    pub fn new(
        key: impl Into<String>,
        event: AlertEvent,
        severity: Severity,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Alert {
        let at = now_millis();
        Alert {
            key: key.into(),
            event,
            severity,
            resolved: false,
            title: title.into(),
            text: text.into(),
            labels: BTreeMap::new(),
            at,
            started_at: at,
        }
    }

    /// Adds a label.
    pub fn label(mut self, name: &str, value: impl Into<String>) -> Alert {
        self.labels.insert(name.to_string(), value.into());
        self
    }

    /// Marks it as closing its incident.
    pub fn resolved(mut self) -> Alert {
        self.resolved = true;
        self
    }

    /// A job failed after its last attempt. Opens `job-failed/<server>/<job>`.
    pub fn job_failed(
        server: &str,
        repository: &str,
        job: JobKind,
        job_id: i64,
        error: &str,
    ) -> Alert {
        Alert::new(
            format!("job-failed/{server}/{job}"),
            AlertEvent::JobFailed,
            Severity::Critical,
            format!("{job} of {server} failed"),
            format!("Job {job_id} ({job} of {server} into {repository}) failed: {error}"),
        )
        .label("server", server)
        .label("repository", repository)
        .label("job", job.as_str())
        .label("job_id", job_id.to_string())
    }

    /// A job of that kind succeeded: closes `job-failed/<server>/<job>` if it is open.
    pub fn job_recovered(server: &str, repository: &str, job: JobKind, job_id: i64) -> Alert {
        Alert::new(
            format!("job-failed/{server}/{job}"),
            AlertEvent::JobRecovered,
            Severity::Critical,
            format!("{job} of {server} recovered"),
            format!("Job {job_id} ({job} of {server} into {repository}) succeeded."),
        )
        .label("server", server)
        .label("repository", repository)
        .label("job", job.as_str())
        .label("job_id", job_id.to_string())
        .resolved()
    }

    /// A schedule's run was missed. Each miss is its own incident (planned time in the key), so
    /// every miss is reported once and none needs resolving.
    pub fn schedule_missed(server: &str, schedule: &str, planned_at: Millis, why: &str) -> Alert {
        Alert::new(
            format!("schedule-missed/{schedule}/{planned_at}"),
            AlertEvent::ScheduleMissed,
            Severity::Warning,
            format!("schedule {schedule} missed a run"),
            format!(
                "The run of {schedule} planned at {} did not happen: {why}",
                rfc3339(planned_at)
            ),
        )
        .label("server", server)
        .label("schedule", schedule)
    }

    /// The archive of `server` lags by `lag_ms` (over the threshold). Opens
    /// `archive-lag/<server>`; close it with [`Alert::resolved`] once the lag is back under.
    pub fn archive_lag(
        server: &str,
        repository: &str,
        lag_ms: Millis,
        threshold_ms: Millis,
    ) -> Alert {
        Alert::new(
            format!("archive-lag/{server}"),
            AlertEvent::ArchiveLag,
            Severity::Warning,
            format!("binlog archive of {server} lags {}", human_ms(lag_ms)),
            format!(
                "The binlog archive of {server} in {repository} is {} behind the server \
                 (threshold {}). Check the streamer's log and the storage.",
                human_ms(lag_ms),
                human_ms(threshold_ms)
            ),
        )
        .label("server", server)
        .label("repository", repository)
    }

    /// The binlog streamer of `server` stopped. Opens `archive-stopped/<server>`.
    pub fn archive_stopped(server: &str, repository: &str, error: &str) -> Alert {
        Alert::new(
            format!("archive-stopped/{server}"),
            AlertEvent::ArchiveStopped,
            Severity::Critical,
            format!("binlog archiving of {server} stopped"),
            format!(
                "The binlog streamer of {server} into {repository} stopped: {error}. \
                 Point-in-time recovery ends at the last archived event until it runs again."
            ),
        )
        .label("server", server)
        .label("repository", repository)
    }

    /// The recoverable window shrank (`detail` says how). It is the window of `server`'s
    /// archive in `repository`: opens `window-shrinking/<server>`; when the repository's window
    /// cannot be attributed to one configured server (`None`),
    /// `window-shrinking/repository/<repository>`.
    pub fn window_shrinking(server: Option<&str>, repository: &str, detail: &str) -> Alert {
        let who = server.map_or_else(|| format!("repository {repository}"), str::to_string);
        let alert = Alert::new(
            format!("window-shrinking/{}", subject(server, repository)),
            AlertEvent::WindowShrinking,
            Severity::Warning,
            format!("recoverable window of {who} is shrinking"),
            format!("The recoverable window of {who} in {repository} shrank: {detail}"),
        )
        .label("repository", repository);
        match server {
            Some(s) => alert.label("server", s),
            None => alert,
        }
    }

    /// A drill of a backup of `server` failed a check. Opens `drill-failed/<server>` (a passing
    /// drill of that server resolves it); `drill-failed/repository/<repository>` when the
    /// backup cannot be attributed to one configured server (`None`).
    pub fn drill_failed(
        server: Option<&str>,
        repository: &str,
        backup: &str,
        check: &str,
    ) -> Alert {
        let who = server.unwrap_or("an unknown server");
        let alert = Alert::new(
            format!("drill-failed/{}", subject(server, repository)),
            AlertEvent::DrillFailed,
            Severity::Critical,
            format!(
                "restore drill of {} failed",
                server.map_or_else(|| format!("repository {repository}"), str::to_string)
            ),
            format!(
                "The drill of backup {backup} of {who} (repository {repository}) failed: \
                 {check}. The backup may not restore; take a new one and investigate."
            ),
        )
        .label("repository", repository)
        .label("backup", backup);
        match server {
            Some(s) => alert.label("server", s),
            None => alert,
        }
    }

    /// The repository holds `size` bytes of its `limit`. Opens `repository-size/<repository>`.
    pub fn repository_size(repository: &str, size: u64, limit: u64) -> Alert {
        let pct = if limit == 0 {
            100.0
        } else {
            size as f64 * 100.0 / limit as f64
        };
        Alert::new(
            format!("repository-size/{repository}"),
            AlertEvent::RepositorySize,
            Severity::Warning,
            format!("repository {repository} is {pct:.0}% full"),
            format!(
                "Repository {repository} holds {size} bytes, {pct:.1}% of its size limit \
                 {limit}. Tighten the retention policy or raise the limit."
            ),
        )
        .label("repository", repository)
    }

    /// The message `holdfast notify test` sends.
    pub fn test(channel: &str) -> Alert {
        Alert::new(
            format!("test/{channel}/{}", now_millis()),
            AlertEvent::Test,
            Severity::Info,
            "holdfast test alert",
            format!(
                "This is a test message from holdfast to the notifier `{channel}`. \
                 Alerts will arrive here."
            ),
        )
        .label("channel", channel)
    }

    /// "[RESOLVED] …" or "[CRITICAL] …": the subject line every channel shows.
    pub fn headline(&self) -> String {
        let tag = if self.resolved {
            "RESOLVED".to_string()
        } else {
            self.severity.as_str().to_uppercase()
        };
        format!("[{tag}] {}", self.title)
    }

    /// Labels as `name=value` lines, for the text channels.
    pub fn label_lines(&self) -> String {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The part of a key naming what an incident is about: the server, or the repository when no
/// configured server can be named.
fn subject(server: Option<&str>, repository: &str) -> String {
    server.map_or_else(|| format!("repository/{repository}"), str::to_string)
}

/// RFC 3339 (UTC, whole seconds) of a [`Millis`].
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn human_ms(ms: Millis) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pair_open_and_close() {
        let f = Alert::job_failed("db1", "main", JobKind::Backup, 7, "exit 11: access denied");
        let r = Alert::job_recovered("db1", "main", JobKind::Backup, 8);
        assert_eq!(f.key, "job-failed/db1/backup");
        assert_eq!(f.key, r.key);
        assert!(!f.resolved && r.resolved);
        assert_eq!(f.headline(), "[CRITICAL] backup of db1 failed");
        assert_eq!(r.headline(), "[RESOLVED] backup of db1 recovered");
        assert_eq!(f.labels["job_id"], "7");
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(human_ms(59_000), "59s");
        assert_eq!(human_ms(61_000), "1m01s");
        assert_eq!(human_ms(7_260_000), "2h01m");
    }
}
