//! Which failures are retried, and when.
//!
//! A job runs one `holdfast` command; its documented exit code (docs/exit-codes.md) says what
//! kind of failure it was. Only failures that a later attempt can cure are transient: the server
//! or the storage unreachable, a lock held by another process, a snapshot lock that timed out,
//! the server failing mid-work. Wrong credentials, a bad config, a corrupt repository or a failed
//! drill are not: retrying them only delays the alert.

use super::{JobSpec, JobState};
use crate::time::Millis;

/// The outcome of one attempt of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exited 0.
    Succeeded,
    /// Exited with this code.
    Exited(i32),
    /// Killed by a signal or could not be started (the daemon's own trouble, e.g. out of memory).
    Crashed,
    /// Ran past its timeout and was stopped.
    TimedOut,
    /// Stopped because someone cancelled it or the daemon shut down.
    Cancelled,
}

/// May another attempt cure this exit code? See the module docs.
pub fn is_transient_exit(code: i32) -> bool {
    matches!(
        code,
        5  // locked: another holdfast process holds the repository lock
        | 6  // storage: the repository's store failed (network, I/O)
        | 10 // connect: the server cannot be reached
        | 12 // server: the server returned an error during the work
        | 13 // lock-timeout: the snapshot lock could not be aligned in time
    )
}

/// Is this outcome worth another attempt?
pub fn is_transient(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Exited(code) => is_transient_exit(code),
        Outcome::Crashed => true,
        Outcome::Succeeded | Outcome::TimedOut | Outcome::Cancelled => false,
    }
}

/// The delay before attempt `next_attempt` (2 = the first retry): exponential from `base`,
/// capped at `cap`, with full jitter (`unit` in [0, 1) picks uniformly in [0, delay]), so that
/// many jobs failing together do not come back together.
pub fn backoff(base: Millis, cap: Millis, next_attempt: u32, unit: f64) -> Millis {
    let exp = next_attempt.saturating_sub(2).min(30);
    let ceiling = base.saturating_mul(1i64 << exp).min(cap).max(0);
    (ceiling as f64 * unit.clamp(0.0, 1.0)) as Millis
}

/// The state a running job moves to after an attempt, and for `retrying` when the next
/// attempt may start. `attempt` is the attempt that just ended (from 1).
pub fn after_attempt(
    outcome: Outcome,
    attempt: u32,
    spec: &JobSpec,
    now: Millis,
    unit: f64,
) -> (JobState, Option<Millis>) {
    match outcome {
        Outcome::Succeeded => (JobState::Succeeded, None),
        Outcome::TimedOut => (JobState::TimedOut, None),
        Outcome::Cancelled => (JobState::Cancelled, None),
        _ if is_transient(outcome) && attempt < spec.max_attempts => {
            let delay = backoff(spec.backoff_base_ms, spec.backoff_cap_ms, attempt + 1, unit);
            (JobState::Retrying, Some(now + delay))
        }
        _ => (JobState::Failed, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_attempt_table() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "server": "a", "host": "h", "repository": "r", "kind": "backup", "priority": 1,
            "timeout_ms": 1, "max_attempts": 3, "backoff_base_ms": 1000, "backoff_cap_ms": 60000,
            "schedule": null, "planned_at": null, "trigger": "manual", "requested_by": null
        }))
        .unwrap();
        let cases = [
            (Outcome::Succeeded, 1, (JobState::Succeeded, None)),
            (Outcome::Exited(10), 1, (JobState::Retrying, Some(10_500))),
            (Outcome::Exited(10), 2, (JobState::Retrying, Some(11_000))),
            (Outcome::Exited(10), 3, (JobState::Failed, None)),
            (Outcome::Exited(11), 1, (JobState::Failed, None)),
            (Outcome::Crashed, 1, (JobState::Retrying, Some(10_500))),
            (Outcome::TimedOut, 1, (JobState::TimedOut, None)),
            (Outcome::Cancelled, 1, (JobState::Cancelled, None)),
        ];
        for (outcome, attempt, expected) in cases {
            assert_eq!(
                after_attempt(outcome, attempt, &spec, 10_000, 0.5),
                expected,
                "{outcome:?} #{attempt}"
            );
        }
    }

    #[test]
    fn transient_table() {
        let cases = [
            (Outcome::Exited(10), true),
            (Outcome::Exited(6), true),
            (Outcome::Exited(5), true),
            (Outcome::Exited(13), true),
            (Outcome::Exited(12), true),
            (Outcome::Exited(11), false),
            (Outcome::Exited(2), false),
            (Outcome::Exited(20), false),
            (Outcome::Exited(22), false),
            (Outcome::Exited(1), false),
            (Outcome::Crashed, true),
            (Outcome::TimedOut, false),
            (Outcome::Cancelled, false),
            (Outcome::Succeeded, false),
        ];
        for (outcome, expected) in cases {
            assert_eq!(is_transient(outcome), expected, "{outcome:?}");
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff(1_000, 60_000, 2, 0.999_999), 999);
        assert_eq!(backoff(1_000, 60_000, 3, 0.999_999), 1_999);
        assert_eq!(backoff(1_000, 60_000, 5, 0.999_999), 7_999);
        assert_eq!(backoff(1_000, 60_000, 12, 0.999_999), 59_999);
        assert_eq!(backoff(1_000, 60_000, 40, 0.5), 30_000);
        assert_eq!(backoff(1_000, 60_000, 3, 0.0), 0);
    }
}
