//! The state machine's allowed moves, as one table. The store guards every update with the
//! state it expects (`… WHERE id = ? AND state = ?`), so two daemons can never both move a job.

use super::JobState::{self, *};

/// Every allowed `(from, to)`. `retrying → running` is the next attempt's claim; `running →
/// queued` is a rescue of a job whose worker vanished before it could do anything (not an
/// attempt spent).
pub const ALLOWED: &[(JobState, JobState)] = &[
    (Queued, Running),
    (Queued, Cancelled),
    (Running, Succeeded),
    (Running, Failed),
    (Running, Cancelled),
    (Running, TimedOut),
    (Running, Retrying),
    (Running, Queued),
    (Retrying, Running),
    (Retrying, Cancelled),
];

/// May a job move from `from` to `to`?
pub fn can_move(from: JobState, to: JobState) -> bool {
    ALLOWED.contains(&(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_never_move() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobState::ALL {
                assert!(!can_move(from, to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn every_state_is_reachable_from_queued() {
        let mut seen = vec![Queued];
        let mut frontier = vec![Queued];
        while let Some(s) = frontier.pop() {
            for &(a, b) in ALLOWED {
                if a == s && !seen.contains(&b) {
                    seen.push(b);
                    frontier.push(b);
                }
            }
        }
        for s in JobState::ALL {
            assert!(seen.contains(&s), "{s} unreachable");
        }
    }

    #[test]
    fn table() {
        let cases = [
            (Queued, Running, true),
            (Queued, Succeeded, false),
            (Running, Retrying, true),
            (Retrying, Running, true),
            (Retrying, Succeeded, false),
            (Succeeded, Running, false),
            (Cancelled, Queued, false),
            (Running, TimedOut, true),
            (Queued, TimedOut, false),
        ];
        for (from, to, ok) in cases {
            assert_eq!(can_move(from, to), ok, "{from} -> {to}");
        }
    }
}
