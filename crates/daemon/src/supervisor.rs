//! Binlog archivers: one supervised `holdfast binlog stream` per server with `binlog = true`.
//!
//! The stream itself retries every disconnect; it only exits on a fatal error (bad
//! credentials before its first dump, a repository it cannot write) or when it is stopped. The
//! supervisor restarts it after a backoff that doubles from [`RESTART_BASE`] to
//! [`RESTART_CAP`] (full jitter) and resets once a run has lasted [`STABLE_AFTER`]. Its lag is
//! measured from the repository's stream record (see [`crate::metrics`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::alerts::Alerts;
use crate::config::Config;
use crate::jobs::retry::{backoff, Outcome};
use crate::runner::{run_attempt, stream_command, Isolation};
use crate::time::millis;

pub const RESTART_BASE: Duration = Duration::from_secs(1);
pub const RESTART_CAP: Duration = Duration::from_secs(300);
pub const STABLE_AFTER: Duration = Duration::from_secs(600);
/// A stream running this long after a start closes its `archive-stopped` incident.
pub const RUNNING_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// Supervises the archiver of `server` until `stop`; re-reads the config on every restart so a
/// reload that changes the server takes effect (and one that removes it or turns `binlog` off
/// ends the supervision).
pub async fn supervise(
    program: PathBuf,
    config: watch::Receiver<Arc<Config>>,
    server: String,
    alerts: Alerts,
    stop: CancellationToken,
) {
    let mut failures: u32 = 0;
    loop {
        let cfg = config.borrow().clone();
        let Some(server_cfg) = cfg.server(&server).filter(|s| s.binlog) else {
            tracing::info!(
                server,
                "binlog archiving no longer configured: archiver stopped"
            );
            return;
        };
        let repository = server_cfg.repository.clone();
        let cmd = match stream_command(&program, &cfg, server_cfg) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(server, error = %e, "cannot start the binlog archiver");
                alerts.archiver_down(&server, &server_cfg.repository, &e.to_string());
                if sleep_or_stop(RESTART_CAP, &stop).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(server, "binlog archiver starting");
        crate::metrics::archiver_up(&server, true);
        let started = Instant::now();
        let child_stop = stop.child_token();
        let name = server.clone();
        let isolation = Isolation::default();
        let run = run_attempt(
            &cmd,
            &isolation,
            Duration::from_secs(100 * 365 * 86_400),
            child_stop,
            move |line| tracing::info!(server = %name, archiver = true, "{line}"),
        );
        tokio::pin!(run);
        // Running for RUNNING_AGAIN_AFTER closes an open `archive-stopped` incident.
        let attempt = tokio::select! {
            a = &mut run => a,
            _ = tokio::time::sleep(RUNNING_AGAIN_AFTER) => {
                alerts.archiver_running(&server, &repository);
                run.await
            }
        };
        crate::metrics::archiver_up(&server, false);
        if stop.is_cancelled() {
            tracing::info!(server, "binlog archiver stopped");
            return;
        }
        if started.elapsed() >= STABLE_AFTER {
            failures = 0;
        }
        failures += 1;
        let why = attempt
            .error
            .clone()
            .unwrap_or_else(|| format!("exited ({:?})", attempt.outcome));
        let delay = Duration::from_millis(
            backoff(
                millis(RESTART_BASE),
                millis(RESTART_CAP),
                failures + 1,
                rand::random::<f64>(),
            )
            .max(200) as u64,
        );
        tracing::warn!(server, error = %why, restart_in = ?delay, "binlog archiver ended; restarting");
        if attempt.outcome != Outcome::Succeeded {
            alerts.archiver_down(&server, &repository, &why);
        }
        crate::metrics::archiver_restarted(&server);
        if sleep_or_stop(delay, &stop).await {
            return;
        }
    }
}

/// Sleeps `d`; `true` if `stop` fired first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}
