//! Job history pruning: every [`PRUNE_EVERY`] (and once at start), the jobs that ended longer
//! than `[daemon] keep_history` ago are removed from the store with their transitions and logs
//! (see [`crate::store::JobStore::prune_history`] for what is never removed). With several
//! daemons sharing a store each prunes; the deletes are idempotent.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::time::now_millis;

/// How often the history is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let keep = shared.config.borrow().daemon.keep_history_ms();
        if let Some(keep) = keep {
            let before = now_millis() - keep;
            match shared.store.prune_history(before).await {
                Ok(p) if p.jobs > 0 => tracing::info!(
                    jobs = p.jobs,
                    transitions = p.transitions,
                    log_lines = p.log_lines,
                    before,
                    "pruned the job history"
                ),
                Ok(_) => tracing::debug!(before, "job history: nothing to prune"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune the job history; retrying later")
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
