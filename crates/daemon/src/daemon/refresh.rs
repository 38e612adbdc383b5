//! Every [`REFRESH`](crate::metrics::REFRESH), and at once when a job has succeeded: job counts
//! from the store, and each repository's backups, archive, window and drills read into metrics
//! and into the typed [`Fleet`](crate::fleet::Fleet) view the API serves; the alerts derived
//! from them (archive lag, window shrinking, failed drills, size) raised or resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::config::parse_duration_ms;
use crate::metrics::{refresh_repository, servers_by_repository, RepositoryFacts, REFRESH};
use crate::time::now_millis;

pub async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let started = now_millis() as f64 / 1000.0;
    let mut previous: BTreeMap<String, RepositoryFacts> = BTreeMap::new();
    let mut drills_seen: BTreeSet<String> = BTreeSet::new();
    loop {
        match shared.store.count_by_state().await {
            Ok(counts) => crate::metrics::jobs_by_state(&counts),
            Err(e) => tracing::warn!(error = %e, "cannot count jobs for the metrics"),
        }
        let cfg = shared.config.borrow().clone();
        let lag_threshold =
            parse_duration_ms(&cfg.alerts.archive_lag).unwrap_or(300_000) as f64 / 1000.0;
        for (repo_name, servers) in servers_by_repository(&cfg) {
            let Some(repo_cfg) = cfg.repository(&repo_name) else {
                continue;
            };
            let facts = match refresh_repository(repo_cfg, &servers).await {
                Ok((facts, view)) => {
                    shared.fleet.update(view);
                    facts
                }
                Err(e) => {
                    tracing::warn!(repository = %repo_name, error = %e, "cannot read the repository for the metrics");
                    shared
                        .fleet
                        .failed(&repo_name, e.to_string(), time::OffsetDateTime::now_utc());
                    continue;
                }
            };
            let server_label = servers.join(",");
            let archiving = servers
                .iter()
                .any(|s| cfg.server(s).is_some_and(|s| s.binlog));
            if archiving {
                if let Some(lag) = facts.archive_lag_seconds {
                    shared
                        .alerts
                        .archive_lag(&repo_name, &server_label, lag, lag_threshold);
                }
            }
            if let Some(before) = previous.get(&repo_name) {
                if let Some(text) = shrinking(before, &facts) {
                    shared.alerts.window_shrinking(&repo_name, &text, false);
                } else if facts.window_end > before.window_end {
                    shared
                        .alerts
                        .window_shrinking(&repo_name, "the window grows again", true);
                }
            }
            for (id, finished) in &facts.drill_failures {
                // Failures older than this daemon were someone else's news.
                if drills_seen.insert(id.clone()) && *finished >= started - 3600.0 {
                    shared.alerts.drill_failed(&repo_name, id);
                }
            }
            if let Some(limit) = repo_cfg.size_limit.as_deref().and_then(holdfast_size) {
                shared.alerts.repository_size(
                    &repo_name,
                    facts.size_bytes,
                    limit,
                    cfg.alerts.size_warn_ratio,
                );
            }
            previous.insert(repo_name, facts);
        }
        shared.fleet.retain(
            &cfg.repository
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>(),
        );
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
            // A job changed a repository (a backup, an expire): show it now, not in 30 s.
            _ = shared.refresh_now.notified() => {}
        }
    }
}

/// The window lost time at its start without gaining at its end, or disappeared.
fn shrinking(before: &RepositoryFacts, now: &RepositoryFacts) -> Option<String> {
    match (before.window_start, before.window_end, now.window_start, now.window_end) {
        (Some(_), Some(_), None, _) | (Some(_), Some(_), _, None) => {
            Some("the repository no longer has a recoverable window".into())
        }
        (Some(s0), Some(e0), Some(s1), Some(e1)) if s1 > s0 && e1 <= e0 => Some(format!(
            "the window's start moved {:.0}s later while its end did not advance (archive stalled?)",
            s1 - s0
        )),
        _ => None,
    }
}

fn holdfast_size(text: &str) -> Option<u64> {
    holdfast::sandbox::parse_size(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(start: Option<f64>, end: Option<f64>) -> RepositoryFacts {
        RepositoryFacts {
            window_start: start,
            window_end: end,
            ..Default::default()
        }
    }

    #[test]
    fn shrinking_table() {
        let cases = [
            (
                f(Some(10.0), Some(100.0)),
                f(Some(10.0), Some(110.0)),
                false,
            ),
            (
                f(Some(10.0), Some(100.0)),
                f(Some(50.0), Some(130.0)),
                false,
            ),
            (f(Some(10.0), Some(100.0)), f(Some(50.0), Some(100.0)), true),
            (f(Some(10.0), Some(100.0)), f(None, None), true),
            (f(None, None), f(None, None), false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(shrinking(&a, &b).is_some(), expected, "{a:?} -> {b:?}");
        }
    }
}
