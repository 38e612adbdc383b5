//! The scheduler pass: every schedule of every server, fired into the store when due.
//!
//! Each daemon computes the same planned times; the store's unique `(schedule, planned_at)` makes
//! the first enqueue win, so a schedule fires once however many daemons share the store. After
//! downtime the last planned time comes from the store, and [`crate::scheduler::due`] turns any
//! number of missed ticks into one catch-up run (the miss itself is counted and alerted).

use std::collections::{BTreeMap, BTreeSet};

use super::Shared;
use crate::config::{schedule_key, Config};
use crate::jobs::Trigger;
use crate::scheduler::{due, Schedule};
use crate::store::StoreError;
use crate::time::Millis;

/// What the pass remembers between runs: each schedule's last planned time.
#[derive(Default)]
pub struct State {
    last: BTreeMap<String, Millis>,
    /// Schedules whose config could not be parsed, already reported.
    reported: BTreeSet<String>,
}

/// Fires what is due; returns the earliest planned time still ahead (the loop wakes for it).
pub async fn pass(
    shared: &Shared,
    cfg: &Config,
    state: &mut State,
    now: Millis,
) -> Result<Option<Millis>, StoreError> {
    let mut next: Option<Millis> = None;
    for server in &cfg.server {
        for (index, sc) in server.schedule.iter().enumerate() {
            let key = schedule_key(server, index);
            let tz = sc.timezone.as_deref().unwrap_or(&cfg.daemon.timezone);
            let schedule = match Schedule::parse(key.clone(), &sc.cron, tz, sc.window.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    // validate() refuses such a config; a reload keeps the old one.
                    if state.reported.insert(key.clone()) {
                        tracing::error!(schedule = %key, error = %e, "schedule skipped");
                    }
                    continue;
                }
            };
            let last = match state.last.get(&key) {
                Some(&l) => l,
                None => {
                    // Never run: the first run is the next planned time (nothing to catch up).
                    let l = shared.store.last_planned(&key).await?.unwrap_or(now);
                    state.last.insert(key.clone(), l);
                    l
                }
            };
            let due = due(&schedule, Some(last), now);
            if let Some(n) = due.next {
                next = Some(next.map_or(n, |m: Millis| m.min(n)));
            }
            let Some(planned) = due.run else { continue };
            if due.missed > 0 {
                tracing::warn!(schedule = %key, missed = due.missed, catch_up = due.catch_up, "schedule missed planned runs");
                crate::metrics::schedule_missed(&server.name, &key, due.missed);
                shared.alerts.schedule_missed(
                    &server.name,
                    &key,
                    planned,
                    due.missed,
                    due.catch_up,
                );
            }
            let trigger = if due.catch_up {
                Trigger::CatchUp
            } else {
                Trigger::Schedule
            };
            let spec = cfg.scheduled_job(server, index, trigger, planned);
            let start = due.start_at.unwrap_or(planned);
            match shared.store.enqueue(&spec, start, now).await? {
                Some(job) => tracing::info!(
                    schedule = %key,
                    job_id = job.id,
                    planned_at = planned,
                    trigger = trigger.as_str(),
                    "queued"
                ),
                None => {
                    tracing::debug!(schedule = %key, planned_at = planned, "already queued by another daemon")
                }
            }
            state.last.insert(key, planned);
        }
    }
    Ok(next)
}
