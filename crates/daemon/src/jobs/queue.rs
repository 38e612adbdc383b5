//! Which waiting job runs next: a priority queue with aging, under concurrency limits.
//!
//! - Higher `priority` first (backups 100, drills 20 by default), but every minute waited adds a
//!   point ([`AGING_STEP_MS`]), so a drill behind a stream of backups still runs eventually.
//! - At most `limits.global` jobs run on this daemon at once.
//! - Jobs that read from a database server ([`JobKind::loads_server`](super::JobKind)): at most
//!   one per server at a time (the store also enforces this across daemons), and at most
//!   `limits.per_host` per database host (several servers may share one machine).

use super::Job;
use crate::time::Millis;

/// One point of priority per this long waited.
pub const AGING_STEP_MS: Millis = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Jobs running on this daemon at once.
    pub global: usize,
    /// Server-loading jobs running on one database host at once (across all daemons).
    pub per_host: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global: 2,
            per_host: 1,
        }
    }
}

/// The priority a waiting job has now.
pub fn effective_priority(job: &Job, now: Millis) -> i64 {
    let waited = (now - job.run_at).max(0);
    job.spec.priority as i64 + waited / AGING_STEP_MS
}

/// Why a due job may not start now, or `None` if it may.
pub fn blocked_by(
    job: &Job,
    running: &[Job],
    own_running: usize,
    limits: &Limits,
) -> Option<String> {
    if own_running >= limits.global {
        return Some(format!(
            "{own_running} jobs already run on this daemon (limit {})",
            limits.global
        ));
    }
    if job.spec.kind.loads_server() {
        if let Some(other) = running
            .iter()
            .find(|r| r.spec.kind.loads_server() && r.spec.server == job.spec.server)
        {
            return Some(format!(
                "job {} ({}) already reads from server {}",
                other.id, other.spec.kind, job.spec.server
            ));
        }
        let on_host = running
            .iter()
            .filter(|r| r.spec.kind.loads_server() && r.spec.host == job.spec.host)
            .count();
        if on_host >= limits.per_host {
            return Some(format!(
                "{on_host} jobs already read from host {} (limit {})",
                job.spec.host, limits.per_host
            ));
        }
    }
    None
}

/// The job to start now among `waiting` (any states; only due `queued`/`retrying` ones count),
/// given the jobs `running` anywhere and how many of them run on this daemon.
pub fn pick<'a>(
    waiting: &'a [Job],
    running: &[Job],
    own_running: usize,
    limits: &Limits,
    now: Millis,
) -> Option<&'a Job> {
    waiting
        .iter()
        .filter(|j| j.state.is_waiting() && j.run_at <= now)
        .filter(|j| blocked_by(j, running, own_running, limits).is_none())
        .max_by(|a, b| {
            effective_priority(a, now)
                .cmp(&effective_priority(b, now))
                .then(b.run_at.cmp(&a.run_at))
                .then(b.id.cmp(&a.id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobKind, JobSpec, JobState, Trigger};

    fn job(
        id: i64,
        server: &str,
        kind: JobKind,
        priority: i32,
        run_at: Millis,
        state: JobState,
    ) -> Job {
        Job {
            id,
            spec: JobSpec {
                server: server.into(),
                host: format!("host-{server}"),
                repository: "main".into(),
                kind,
                priority,
                timeout_ms: 3_600_000,
                max_attempts: 3,
                backoff_base_ms: 1_000,
                backoff_cap_ms: 60_000,
                schedule: None,
                planned_at: None,
                trigger: Trigger::Manual,
                requested_by: None,
                restore: None,
            },
            state,
            attempt: 0,
            run_at,
            created_at: run_at,
            updated_at: run_at,
            worker: None,
            lease_until: None,
            trace_id: String::new(),
            last_error: None,
            exit_code: None,
            result: None,
        }
    }

    use JobKind::*;
    use JobState::*;

    #[test]
    fn picks() {
        let now = 10 * 60_000;
        let limits = Limits {
            global: 2,
            per_host: 1,
        };
        // (name, waiting, running, own_running, expected id)
        type Case = (&'static str, Vec<Job>, Vec<Job>, usize, Option<i64>);
        let cases: Vec<Case> = vec![
            ("empty", vec![], vec![], 0, None),
            (
                "higher priority first",
                vec![
                    job(1, "a", Drill, 20, now, Queued),
                    job(2, "b", Backup, 100, now, Queued),
                ],
                vec![],
                0,
                Some(2),
            ),
            (
                "not before run_at",
                vec![
                    job(1, "a", Backup, 100, now + 1, Retrying),
                    job(2, "b", Drill, 20, now, Queued),
                ],
                vec![],
                0,
                Some(2),
            ),
            (
                "aging lets a drill that waited 81 minutes pass a fresh backup",
                vec![
                    job(1, "a", Backup, 100, now, Queued),
                    job(2, "b", Drill, 20, now - 81 * 60_000, Queued),
                ],
                vec![],
                0,
                Some(2),
            ),
            (
                "one server-loading job per server",
                vec![
                    job(1, "a", Backup, 100, now, Queued),
                    job(2, "a", Verify, 50, now, Queued),
                ],
                vec![job(9, "a", Incremental, 100, 0, Running)],
                0,
                Some(2),
            ),
            (
                "global limit",
                vec![job(1, "a", Backup, 100, now, Queued)],
                vec![],
                2,
                None,
            ),
            (
                "equal priority: oldest first",
                vec![
                    job(2, "a", Backup, 100, now - 1, Queued),
                    job(1, "b", Backup, 100, now - 2, Queued),
                ],
                vec![],
                0,
                Some(1),
            ),
            (
                "terminal and running rows are not candidates",
                vec![
                    job(1, "a", Backup, 100, 0, Succeeded),
                    job(2, "b", Backup, 100, 0, Running),
                ],
                vec![],
                0,
                None,
            ),
        ];
        for (name, waiting, running, own, expected) in cases {
            let got = pick(&waiting, &running, own, &limits, now).map(|j| j.id);
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn per_host_limit_counts_other_servers_on_the_host() {
        let now = 0;
        let mut a = job(1, "a", Backup, 100, now, Queued);
        let mut b = job(2, "b", Backup, 100, now, Running);
        a.spec.host = "h".into();
        b.spec.host = "h".into();
        let limits = Limits {
            global: 4,
            per_host: 1,
        };
        assert!(blocked_by(&a, std::slice::from_ref(&b), 1, &limits).is_some());
        let limits = Limits {
            global: 4,
            per_host: 2,
        };
        assert!(blocked_by(&a, &[b], 1, &limits).is_none());
    }
}
