//! One incident, one message: which alerts are sent.
//!
//! - An alert for a key with no open incident opens one and is sent.
//! - Another alert for an open incident is sent only when `repeat_ms` has passed since the
//!   incident was last sent (a reminder), and `repeat_ms = 0` means never.
//! - A resolving alert for an open incident is sent once and closes it; one for a key with
//!   no open incident (a job that succeeds as usual) is not sent at all.
//! - Test alerts are always sent.
//!
//! The incidents live in memory (a reload carries them over): after a daemon restart an
//! incident still open is notified once more (better than never).

use std::collections::HashMap;

use super::{Alert, AlertEvent};
use crate::time::Millis;

/// What to do with one alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send this (the alert, with `started_at` the incident's opening).
    Send(Alert),
    /// Do not: the incident is open and was notified recently.
    Duplicate,
    /// Do not: nothing was open to resolve.
    NothingOpen,
}

#[derive(Clone, Debug)]
struct Incident {
    opened_at: Millis,
    last_sent: Millis,
}

/// The open incidents.
#[derive(Clone, Debug, Default)]
pub struct Incidents {
    repeat_ms: Millis,
    open: HashMap<String, Incident>,
}

impl Incidents {
    pub fn new(repeat_ms: Millis) -> Incidents {
        Incidents {
            repeat_ms,
            open: HashMap::new(),
        }
    }

    /// Decides about `alert` arriving at `now`, and updates the open incidents.
    pub fn decide(&mut self, mut alert: Alert, now: Millis) -> Decision {
        if alert.event == AlertEvent::Test {
            return Decision::Send(alert);
        }
        if alert.resolved {
            return match self.open.remove(&alert.key) {
                Some(incident) => {
                    alert.started_at = incident.opened_at;
                    Decision::Send(alert)
                }
                None => Decision::NothingOpen,
            };
        }
        match self.open.get_mut(&alert.key) {
            None => {
                self.open.insert(
                    alert.key.clone(),
                    Incident {
                        opened_at: alert.at,
                        last_sent: now,
                    },
                );
                Decision::Send(alert)
            }
            Some(incident) => {
                alert.started_at = incident.opened_at;
                if self.repeat_ms > 0 && now - incident.last_sent >= self.repeat_ms {
                    incident.last_sent = now;
                    Decision::Send(alert)
                } else {
                    Decision::Duplicate
                }
            }
        }
    }

    /// Changes the repeat interval (a reload), keeping the open incidents.
    pub fn set_repeat_ms(&mut self, repeat_ms: Millis) {
        self.repeat_ms = repeat_ms;
    }

    /// Open incidents' keys.
    pub fn open_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.open.keys().cloned().collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobKind;

    fn fail(at: Millis) -> Alert {
        let mut a = Alert::job_failed("db1", "main", JobKind::Backup, 1, "boom");
        a.at = at;
        a.started_at = at;
        a
    }

    fn ok(at: Millis) -> Alert {
        let mut a = Alert::job_recovered("db1", "main", JobKind::Backup, 2);
        a.at = at;
        a.started_at = at;
        a
    }

    #[test]
    fn table() {
        // (alert, now, sent?, expected started_at when sent)
        type Step = (fn(Millis) -> Alert, Millis, &'static str);
        let steps: &[Step] = &[
            (ok, 0, "nothing-open"),  // a success with nothing open says nothing
            (fail, 10, "send"),       // opens
            (fail, 20, "duplicate"),  // same incident: quiet
            (fail, 999, "duplicate"), // still inside the repeat interval
            (fail, 1_010, "send"),    // repeat after 1000 ms
            (fail, 1_500, "duplicate"),
            (ok, 1_600, "send"),         // resolved once
            (ok, 1_700, "nothing-open"), // and only once
            (fail, 1_800, "send"),       // a new incident
        ];
        let mut inc = Incidents::new(1_000);
        for (i, (make, now, want)) in steps.iter().enumerate() {
            let got = match inc.decide(make(*now), *now) {
                Decision::Send(_) => "send",
                Decision::Duplicate => "duplicate",
                Decision::NothingOpen => "nothing-open",
            };
            assert_eq!(got, *want, "step {i} at {now}");
        }
    }

    #[test]
    fn resolved_carries_the_opening_time_and_zero_repeat_never_repeats() {
        let mut inc = Incidents::new(0);
        assert!(matches!(inc.decide(fail(100), 100), Decision::Send(_)));
        assert_eq!(
            inc.decide(fail(10_000_000), 10_000_000),
            Decision::Duplicate
        );
        assert_eq!(inc.open_keys(), vec!["job-failed/db1/backup".to_string()]);
        match inc.decide(ok(10_000_100), 10_000_100) {
            Decision::Send(a) => {
                assert!(a.resolved);
                assert_eq!(a.started_at, 100);
            }
            other => panic!("{other:?}"),
        }
        assert!(inc.open_keys().is_empty());
    }
}
