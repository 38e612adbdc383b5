//! The daemon's alerts, raised where things happen (a job's end, the scheduler, the archivers,
//! the metrics refresh) and handed to a sink: the notifiers of [`crate::notify`], or the log when
//! none is configured. Every alert is a [`notify::Alert`](crate::notify::Alert) built by its typed
//! constructor, so the incident keys, events and severities are defined once, there; the sink
//! sends one message when an incident opens and one when it resolves, however often it is raised
//! in between.

use std::sync::Arc;

use crate::jobs::Job;
use crate::notify::Alert;
use crate::time::Millis;

/// Where raised alerts go. Must not block: the caller is a job or the scheduler.
pub trait AlertSink: Send + Sync {
    fn send(&self, alert: Alert);
}

/// A sink that only logs (no notifier configured).
struct LogOnly;

impl AlertSink for LogOnly {
    fn send(&self, a: Alert) {
        if a.resolved {
            tracing::info!(key = %a.key, event = a.event.as_str(), "resolved: {}", a.title);
        } else {
            tracing::warn!(
                key = %a.key,
                event = a.event.as_str(),
                severity = a.severity.as_str(),
                "alert: {}: {}",
                a.title,
                a.text
            );
        }
    }
}

/// Raised alerts go to the notifiers (de-duplicated, rate-limited, retried there).
impl AlertSink for crate::notify::Notifications {
    fn send(&self, a: Alert) {
        self.emit(a);
    }
}

/// The handle the daemon's tasks raise alerts through.
#[derive(Clone)]
pub struct Alerts {
    sink: Arc<dyn AlertSink>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts::new(Arc::new(LogOnly))
    }
}

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

impl Alerts {
    pub fn new(sink: Arc<dyn AlertSink>) -> Alerts {
        Alerts { sink }
    }

    /// Hands one alert to the sink.
    pub fn raise(&self, alert: Alert) {
        self.sink.send(alert);
    }

    /// Raises `alert` when `firing`, else its resolution (same key).
    pub fn raise_or_resolve(&self, alert: Alert, firing: bool) {
        self.raise(if firing { alert } else { alert.resolved() });
    }

    /// A job failed for good (`state` failed or timed-out: after its last attempt, or with an
    /// error no retry cures). Opens `job-failed/<server>/<job>`.
    pub fn job_failed(&self, job: &Job, state: &str, error: &str) {
        let why = format!(
            "{state} after attempt {} of {}: {error}",
            job.attempt, job.spec.max_attempts
        );
        self.raise(
            Alert::job_failed(
                &job.spec.server,
                &job.spec.repository,
                job.spec.kind,
                job.id,
                &why,
            )
            .label("trace_id", job.trace_id.clone()),
        );
    }

    /// A job succeeded: closes `job-failed/<server>/<job>` when it is open.
    pub fn job_succeeded(&self, job: &Job) {
        self.raise(
            Alert::job_recovered(
                &job.spec.server,
                &job.spec.repository,
                job.spec.kind,
                job.id,
            )
            .label("trace_id", job.trace_id.clone()),
        );
    }

    /// A schedule's planned runs passed without a run (the daemon was down); `planned` is the
    /// newest of them, `missed` how many.
    pub fn schedule_missed(
        &self,
        server: &str,
        schedule: &str,
        planned: Millis,
        missed: u32,
        catch_up: bool,
    ) {
        let why = format!(
            "{missed} planned run(s) passed while no daemon ran them; {}",
            if catch_up {
                "one catch-up run was queued"
            } else {
                "none was queued"
            }
        );
        self.raise(Alert::schedule_missed(server, schedule, planned, &why));
    }

    /// The binlog archiver of `server` (archiving into `repository`) ended or cannot start.
    pub fn archiver_down(&self, server: &str, repository: &str, why: &str) {
        self.raise(Alert::archive_stopped(
            server,
            repository,
            &format!("{why}; restarting with backoff"),
        ));
    }

    /// The binlog archiver of `server` has been running again for a while: closes an open
    /// `archive-stopped/<server>`.
    pub fn archiver_running(&self, server: &str, repository: &str) {
        self.raise(Alert::archive_stopped(server, repository, "running again").resolved());
    }
}
