//! The daemon's alert events, raised where they happen and handed to a sink (the notifiers of
//! [`crate::notify`]). Each event has an incident key: the sink sends one message when an
//! incident opens and one when it resolves, however often it is raised in between.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::jobs::Job;

/// One raised alert (or resolution).
#[derive(Clone, Debug, PartialEq)]
pub struct RaisedAlert {
    /// The incident, e.g. `job-failed/db1/backup`.
    pub key: String,
    /// Stable event name: `job-failed`, `schedule-missed`, `archiver-down`, `archive-lag`,
    /// `window-shrinking`, `drill-failed`, `repository-size`.
    pub event: &'static str,
    /// `critical` or `warning`.
    pub severity: &'static str,
    pub resolved: bool,
    pub title: String,
    pub text: String,
    pub labels: BTreeMap<String, String>,
}

/// Where raised alerts go. Must not block: the caller is a job or the scheduler.
pub trait AlertSink: Send + Sync {
    fn send(&self, alert: RaisedAlert);
}

/// A sink that only logs (no notifier configured).
struct LogOnly;

impl AlertSink for LogOnly {
    fn send(&self, a: RaisedAlert) {
        if a.resolved {
            tracing::info!(key = %a.key, "resolved: {}", a.title);
        } else {
            tracing::warn!(key = %a.key, severity = a.severity, "alert: {}: {}", a.title, a.text);
        }
    }
}

#[derive(Clone)]
pub struct Alerts {
    sink: Arc<dyn AlertSink>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts::new(Arc::new(LogOnly))
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The alert sink of a config: its notifiers (none: log only).
/// The daemon's alerts: the configured notifiers ([`crate::notify::Notifications`]), or only
/// the log when there are none. Call inside the runtime. A notifier that does not build (the
/// config was validated, so only e.g. a secret file removed since) is logged and the others
/// still work; with none left, alerts go to the log.
pub fn from_config(config: &crate::config::Config) -> Alerts {
    use crate::notify::{build_channel, Notifications, NotifyOptions};
    if config.notifier.is_empty() {
        return Alerts::default();
    }
    let options = NotifyOptions::from_config(&config.alerts).unwrap_or_else(|e| {
        tracing::error!(error = %e, "alert options; using the defaults");
        NotifyOptions::default()
    });
    let mut channels = Vec::new();
    for n in &config.notifier {
        match build_channel(n) {
            Ok(c) => channels.push(c),
            Err(e) => tracing::error!(error = %e, "notifier not usable; its alerts are lost"),
        }
    }
    if channels.is_empty() {
        return Alerts::default();
    }
    Alerts::new(Arc::new(Notifications::with_channels(channels, options)))
}

/// Raised alerts go to the notifiers (de-duplicated, rate-limited, retried there).
impl AlertSink for crate::notify::Notifications {
    fn send(&self, a: RaisedAlert) {
        use crate::notify::{Alert, AlertEvent, Severity};
        let event = match a.event {
            "job-failed" if a.resolved => AlertEvent::JobRecovered,
            "job-failed" => AlertEvent::JobFailed,
            "schedule-missed" => AlertEvent::ScheduleMissed,
            "archiver-down" | "archive-stopped" => AlertEvent::ArchiveStopped,
            "archive-lag" => AlertEvent::ArchiveLag,
            "window-shrinking" => AlertEvent::WindowShrinking,
            "drill-failed" => AlertEvent::DrillFailed,
            "repository-size" => AlertEvent::RepositorySize,
            _ => AlertEvent::JobFailed,
        };
        let severity = match a.severity {
            "critical" => Severity::Critical,
            "info" => Severity::Info,
            _ => Severity::Warning,
        };
        let mut alert = Alert::new(a.key, event, severity, a.title, a.text);
        alert.labels = a.labels;
        alert.resolved = a.resolved;
        self.emit(alert);
    }
}

impl Alerts {
    pub fn new(sink: Arc<dyn AlertSink>) -> Alerts {
        Alerts { sink }
    }

    fn raise(&self, alert: RaisedAlert) {
        self.sink.send(alert);
    }

    fn job_key(job: &Job) -> String {
        format!("job-failed/{}/{}", job.spec.server, job.spec.kind)
    }

    fn job_labels(job: &Job) -> BTreeMap<String, String> {
        let id = job.id.to_string();
        labels(&[
            ("server", &job.spec.server),
            ("repository", &job.spec.repository),
            ("kind", job.spec.kind.as_str()),
            ("job_id", &id),
            ("trace_id", &job.trace_id),
        ])
    }

    /// A job failed for good (after its last attempt, or with an error no retry cures).
    pub fn job_failed(&self, job: &Job, state: &str, error: &str) {
        self.raise(RaisedAlert {
            key: Self::job_key(job),
            event: "job-failed",
            severity: "critical",
            resolved: false,
            title: format!("{} of {} {state}", job.spec.kind, job.spec.server),
            text: format!(
                "job {} ({} of {} into {}) {state} after attempt {} of {}: {error}",
                job.id,
                job.spec.kind,
                job.spec.server,
                job.spec.repository,
                job.attempt,
                job.spec.max_attempts
            ),
            labels: Self::job_labels(job),
        });
    }

    /// A job of the same server and kind succeeded: resolves an open `job-failed`.
    pub fn job_succeeded(&self, job: &Job) {
        self.raise(RaisedAlert {
            key: Self::job_key(job),
            event: "job-failed",
            severity: "critical",
            resolved: true,
            title: format!("{} of {} recovered", job.spec.kind, job.spec.server),
            text: format!("job {} succeeded (attempt {})", job.id, job.attempt),
            labels: Self::job_labels(job),
        });
    }

    /// A schedule's planned runs passed without a run (the daemon was down).
    pub fn schedule_missed(&self, server: &str, schedule: &str, missed: u32, catch_up: bool) {
        self.raise(RaisedAlert {
            key: format!("schedule-missed/{schedule}"),
            event: "schedule-missed",
            severity: "warning",
            resolved: false,
            title: format!("schedule {schedule} missed {missed} run(s)"),
            text: format!(
                "{missed} planned run(s) of {schedule} passed while no daemon ran them; {}",
                if catch_up {
                    "one catch-up run was queued"
                } else {
                    "none was queued"
                }
            ),
            labels: labels(&[("server", server), ("schedule", schedule)]),
        });
    }

    /// The schedule ran again on time: resolves `schedule-missed`.
    pub fn schedule_on_time(&self, server: &str, schedule: &str) {
        self.raise(RaisedAlert {
            key: format!("schedule-missed/{schedule}"),
            event: "schedule-missed",
            severity: "warning",
            resolved: true,
            title: format!("schedule {schedule} runs on time again"),
            text: String::new(),
            labels: labels(&[("server", server), ("schedule", schedule)]),
        });
    }

    /// The binlog archiver of a server ended or cannot start.
    pub fn archiver_down(&self, server: &str, why: &str) {
        self.raise(RaisedAlert {
            key: format!("archiver-down/{server}"),
            event: "archiver-down",
            severity: "critical",
            resolved: false,
            title: format!("binlog archiver of {server} stopped"),
            text: format!("the binlog stream of {server} ended: {why}; restarting with backoff"),
            labels: labels(&[("server", server)]),
        });
    }

    /// Archive lag (complete-as-of age) above or back under the threshold.
    pub fn archive_lag(&self, repository: &str, server: &str, lag_seconds: f64, threshold: f64) {
        let resolved = lag_seconds <= threshold;
        self.raise(RaisedAlert {
            key: format!("archive-lag/{repository}"),
            event: "archive-lag",
            severity: "critical",
            resolved,
            title: if resolved {
                format!("binlog archive of {repository} caught up")
            } else {
                format!("binlog archive of {repository} lags {lag_seconds:.0}s")
            },
            text: format!(
                "the archive is complete as of {lag_seconds:.0}s ago (threshold {threshold:.0}s): \
                 a loss now would lose that much"
            ),
            labels: labels(&[("repository", repository), ("server", server)]),
        });
    }

    /// The recoverable window's start moved later by more than retention explains, or its end
    /// stopped advancing.
    pub fn window_shrinking(&self, repository: &str, text: &str, resolved: bool) {
        self.raise(RaisedAlert {
            key: format!("window-shrinking/{repository}"),
            event: "window-shrinking",
            severity: "warning",
            resolved,
            title: format!("recoverable window of {repository} shrinking"),
            text: text.to_string(),
            labels: labels(&[("repository", repository)]),
        });
    }

    /// A drill failed.
    pub fn drill_failed(&self, repository: &str, drill_id: &str) {
        self.raise(RaisedAlert {
            key: format!("drill-failed/{repository}/{drill_id}"),
            event: "drill-failed",
            severity: "critical",
            resolved: false,
            title: format!("restore drill {drill_id} failed in {repository}"),
            text: format!("see `holdfast drill report` and drills/{drill_id}.json"),
            labels: labels(&[("repository", repository), ("drill", drill_id)]),
        });
    }

    /// The repository is above or back under its size warning.
    pub fn repository_size(&self, repository: &str, size: u64, limit: u64, ratio: f64) {
        let resolved = (size as f64) < limit as f64 * ratio;
        self.raise(RaisedAlert {
            key: format!("repository-size/{repository}"),
            event: "repository-size",
            severity: "warning",
            resolved,
            title: format!(
                "repository {repository} at {:.0}% of its limit",
                size as f64 * 100.0 / limit.max(1) as f64
            ),
            text: format!("{size} bytes of {limit}"),
            labels: labels(&[("repository", repository)]),
        });
    }
}
