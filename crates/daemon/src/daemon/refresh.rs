//! Every [`REFRESH`](crate::metrics::REFRESH), and as soon as a job ends: job counts from the
//! store, and each repository's backups, archive, window and drills read into metrics and into
//! the typed [`Fleet`](crate::fleet::Fleet) view the API serves; the alerts derived from them
//! (archive lag, window shrinking, failed drills, size) raised or resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::config::parse_duration_ms;
use crate::jobs::JobState;
use crate::metrics::{attributions, refresh_repository, RepositoryFacts, REFRESH};
use crate::notify::Alert;
use crate::store::JobFilter;
use crate::time::now_millis;

/// How many of the newest succeeded jobs are read to attribute backups to servers.
const ATTRIBUTION_JOBS: u32 = 5_000;

pub async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let started = now_millis() as f64 / 1000.0;
    let mut previous: BTreeMap<String, RepositoryFacts> = BTreeMap::new();
    let mut drills_seen: BTreeSet<String> = BTreeSet::new();
    loop {
        match shared.store.count_by_state().await {
            Ok(counts) => crate::metrics::jobs_by_state(&counts),
            Err(e) => tracing::warn!(error = %e, "cannot count jobs for the metrics"),
        }
        let made = backups_made(&shared).await;
        let cfg = shared.config.borrow().clone();
        let lag_threshold_ms = parse_duration_ms(&cfg.alerts.archive_lag).unwrap_or(300_000);
        for (repo_name, who) in attributions(&cfg, &made) {
            let Some(repo_cfg) = cfg.repository(&repo_name) else {
                continue;
            };
            let facts = match refresh_repository(repo_cfg, &who).await {
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
            let archiver = facts
                .archive_server
                .as_deref()
                .filter(|s| cfg.server(s).is_some_and(|s| s.binlog));
            if let (Some(server), Some(lag)) = (archiver, facts.archive_lag_seconds) {
                let lag_ms = (lag * 1000.0) as i64;
                shared.alerts.raise_or_resolve(
                    Alert::archive_lag(server, &repo_name, lag_ms, lag_threshold_ms),
                    lag_ms > lag_threshold_ms,
                );
            }
            if let Some(before) = previous.get(&repo_name) {
                let server = facts.archive_server.as_deref();
                if let Some(text) = shrinking(before, &facts) {
                    shared
                        .alerts
                        .raise(Alert::window_shrinking(server, &repo_name, &text));
                } else if facts.window_end > before.window_end {
                    shared.alerts.raise(
                        Alert::window_shrinking(server, &repo_name, "the window grows again")
                            .resolved(),
                    );
                }
            }
            drill_alerts(&shared, &repo_name, &facts, &mut drills_seen, started);
            if let Some(limit) = repo_cfg.size_limit.as_deref().and_then(holdfast_size) {
                let warn_at = limit as f64 * cfg.alerts.size_warn_ratio;
                shared.alerts.raise_or_resolve(
                    Alert::repository_size(&repo_name, facts.size_bytes, limit),
                    facts.size_bytes as f64 >= warn_at,
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
            // A job ended (a backup, an expire changed a repository): show it now, not in 30 s.
            _ = shared.refresh.notified() => {}
        }
    }
}

/// `(server, repository, backup id)` of the backups the daemon's succeeded jobs made.
async fn backups_made(shared: &Shared) -> Vec<(String, String, String)> {
    let filter = JobFilter {
        states: vec![JobState::Succeeded],
        limit: Some(ATTRIBUTION_JOBS),
        ..Default::default()
    };
    match shared.store.jobs(&filter).await {
        Ok(jobs) => jobs
            .into_iter()
            .filter(|j| j.spec.kind.loads_server())
            .filter_map(|j| {
                let id = j.result.as_ref()?.get("id")?.as_str()?.to_string();
                Some((j.spec.server, j.spec.repository, id))
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the jobs to attribute backups to servers");
            Vec::new()
        }
    }
}

/// A failed drill opens its server's incident once (failures from before this daemon started
/// were someone else's news); the newest drill of a server passing closes it.
fn drill_alerts(
    shared: &Shared,
    repository: &str,
    facts: &RepositoryFacts,
    seen: &mut BTreeSet<String>,
    started: f64,
) {
    let mut newest: BTreeMap<Option<&str>, &crate::metrics::DrillFact> = BTreeMap::new();
    for d in &facts.drills {
        let e = newest.entry(d.server.as_deref()).or_insert(d);
        if d.finished > e.finished {
            *e = d;
        }
        if !d.passed && seen.insert(d.id.clone()) && d.finished >= started - 3600.0 {
            let why = d.reason.as_deref().unwrap_or("a check failed");
            shared.alerts.raise(Alert::drill_failed(
                d.server.as_deref(),
                repository,
                &d.backup,
                &format!("{why} (drill {})", d.id),
            ));
        }
    }
    for (server, d) in newest {
        if d.passed {
            shared.alerts.raise(
                Alert::drill_failed(server, repository, &d.backup, "passed again").resolved(),
            );
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
