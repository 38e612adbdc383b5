//! Running one claimed job to its next state: heartbeat its lease, run the attempt, record the
//! log and the outcome, raise or resolve its alert.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Shared;
use crate::audit::Event;
use crate::jobs::retry::{after_attempt, Outcome};
use crate::jobs::{Job, JobState};
use crate::runner::job_command;
use crate::store::{Change, LogLine};
use crate::time::now_millis;

/// Runs `job` (claimed by this daemon, `running`) until it leaves `running`. `cancel` stops it
/// (shutdown past its grace, or a cancel request); a lost lease stops it too.
pub async fn run_job(shared: Arc<Shared>, job: Job, cancel: CancellationToken) {
    let span = tracing::info_span!(
        "job",
        job_id = job.id,
        trace_id = %job.trace_id,
        server = %job.spec.server,
        kind = %job.spec.kind,
        attempt = job.attempt
    );
    run_job_inner(shared, job, cancel).instrument(span).await
}

async fn run_job_inner(shared: Arc<Shared>, job: Job, cancel: CancellationToken) {
    let started = now_millis();
    if let Some(planned) = job.spec.planned_at {
        if job.attempt == 1 {
            crate::metrics::schedule_jitter((started - planned) as f64 / 1000.0);
        }
    }
    tracing::info!("job started");
    crate::audit::record_or_log(
        &shared.access,
        job_event(&shared, &job, "job.start").detail(format!(
            "attempt {} of {}; {}",
            job.attempt,
            job.spec.max_attempts,
            match &job.spec.requested_by {
                Some(who) => format!("requested by {who}"),
                None => format!("{} trigger", job.spec.trigger.as_str()),
            }
        )),
    )
    .await;
    let config = shared.config.borrow().clone();
    let cmd = match job_command(&shared.program, &config, &job) {
        Ok(c) => c,
        Err(e) => {
            finish(
                &shared,
                &job,
                Outcome::Exited(2),
                Some(e.to_string()),
                None,
                None,
                0.0,
            )
            .await;
            return;
        }
    };

    // The lease: heartbeat every third of it; losing it (another daemon rescued the job) stops
    // the attempt.
    let lease_ms = config.daemon.lease_ms();
    let stop = cancel.child_token();
    let _registered = Registered::new(&shared, job.id, stop.clone());
    let lease_lost = CancellationToken::new();
    let heartbeat = {
        let (shared, stop, lease_lost) = (shared.clone(), stop.clone(), lease_lost.clone());
        let (id, worker) = (job.id, shared.worker.clone());
        tokio::spawn(async move {
            let every = Duration::from_millis((lease_ms / 3).max(100) as u64);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match shared
                    .store
                    .heartbeat(id, &worker, now_millis(), lease_ms)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            "lease lost (the job was rescued or cancelled elsewhere): stopping it"
                        );
                        lease_lost.cancel();
                        stop.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
                }
            }
        })
    };

    // The job's log: every stderr line of the child, stored in order by one writer.
    let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let log_writer = {
        let (shared, id, attempt) = (shared.clone(), job.id, job.attempt);
        tokio::spawn(async move {
            while let Some(line) = log_rx.recv().await {
                let entry = LogLine {
                    at: now_millis(),
                    attempt,
                    line,
                };
                if let Err(e) = shared.store.append_log(id, &entry).await {
                    tracing::warn!(error = %e, "cannot store a log line of the job");
                }
            }
        })
    };
    let timeout = Duration::from_millis(job.spec.timeout_ms.max(1) as u64);
    let attempt =
        crate::runner::run_attempt(&cmd, &shared.isolation, timeout, stop.clone(), |line| {
            tracing::debug!(target: "holdfast_daemon::job_output", "{line}");
            let _ = log_tx.send(line);
        })
        .await;
    drop(log_tx);
    let _ = log_writer.await;
    stop.cancel();
    let _ = heartbeat.await;

    if lease_lost.is_cancelled() {
        // Another daemon owns the job now; nothing of ours to record.
        return;
    }
    let seconds = attempt.duration.as_secs_f64();
    finish(
        &shared,
        &job,
        attempt.outcome,
        attempt.error,
        attempt.exit_code,
        attempt.report,
        seconds,
    )
    .await;
}

/// Records the attempt's outcome as the job's next state, with metrics and alerts.
async fn finish(
    shared: &Shared,
    job: &Job,
    outcome: Outcome,
    error: Option<String>,
    exit_code: Option<i32>,
    report: Option<serde_json::Value>,
    seconds: f64,
) {
    let now = now_millis();
    let (to, run_at) = after_attempt(outcome, job.attempt, &job.spec, now, rand::random::<f64>());
    let message = match (to, &error) {
        (JobState::Succeeded, _) => format!("succeeded in {seconds:.1}s"),
        (JobState::Retrying, Some(e)) => format!(
            "attempt {} of {} failed ({}): {e}; next attempt in {}s",
            job.attempt,
            job.spec.max_attempts,
            exit_text(exit_code),
            (run_at.unwrap_or(now) - now) / 1000
        ),
        (_, Some(e)) => format!("{} ({}): {e}", to, exit_text(exit_code)),
        (_, None) => format!("{to} ({})", exit_text(exit_code)),
    };
    let change = Change {
        from: JobState::Running,
        to,
        at: now,
        worker: Some(shared.worker.clone()),
        message: message.clone(),
        run_at,
        exit_code,
        error: error.clone(),
        result: report,
    };
    match shared.store.transition(job.id, &change).await {
        Ok(true) => {}
        Ok(false) => {
            match shared.store.job(job.id).await {
                Ok(Some(now)) if now.state == JobState::Cancelled => {
                    tracing::info!("job cancelled on request; its child stopped");
                    crate::audit::record_or_log(
                        &shared.access,
                        job_event(shared, job, "job.end")
                            .result("cancelled")
                            .detail(format!("after {seconds:.1}s")),
                    )
                    .await;
                }
                _ => tracing::warn!(
                    "the job was moved by someone else meanwhile; outcome not recorded: {message}"
                ),
            }
            shared.wake.notify_one();
            return;
        }
        Err(e) => {
            // The lease will expire and a rescuer retries the job: nothing is lost.
            tracing::error!(error = %e, "cannot record the outcome in the job store: {message}");
            return;
        }
    }
    crate::metrics::job_attempt_finished(job, to.as_str(), seconds, to == JobState::Retrying);
    crate::audit::record_or_log(
        &shared.access,
        job_event(shared, job, "job.end")
            .result(to.as_str())
            .detail(message.clone()),
    )
    .await;
    match to {
        JobState::Succeeded => {
            tracing::info!(seconds, "job succeeded");
            shared.alerts.job_succeeded(job);
        }
        JobState::Retrying => tracing::warn!("{message}"),
        JobState::Failed | JobState::TimedOut => {
            tracing::error!("{message}");
            shared.alerts.job_failed(
                job,
                to.as_str(),
                error.as_deref().unwrap_or("no error message"),
            );
        }
        _ => tracing::info!("{message}"),
    }
    shared.wake.notify_one();
    shared.refresh.notify_one();
}

/// An audit event of the daemon about `job` (its start or end), from this worker.
fn job_event(shared: &Shared, job: &Job, action: &str) -> Event {
    let what = match &job.spec.restore {
        Some(r) => format!("restore of {} into {}", job.spec.repository, r.target),
        None => format!("{} of {}", job.spec.kind, job.spec.server),
    };
    Event::new(
        "daemon",
        shared.worker.clone(),
        action,
        format!("job {} ({what})", job.id),
    )
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or("no exit code".to_string(), |c| format!("exit {c}"))
}

/// A running job's entry in [`Shared::running`], removed when the attempt ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: crate::jobs::JobId,
}

impl<'a> Registered<'a> {
    fn new(shared: &'a Shared, id: crate::jobs::JobId, stop: CancellationToken) -> Self {
        shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, stop);
        Registered { shared, id }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}
