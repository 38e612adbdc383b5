//! Pure functions over drill records: what each backup's drill status is, which backups to
//! drill next, and the report. No I/O: tested with tables of cases.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::manifest::{DrillKind, DrillRecord};

/// A backup's drill status, decided by its newest drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DrillStatus {
    /// Never drilled.
    Unverified,
    /// The newest drill passed.
    Verified {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        drill_id: String,
    },
    /// The newest drill failed.
    Failed {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        drill_id: String,
        reason: String,
    },
}

impl DrillStatus {
    /// `unverified`, `verified 2026-11-21`, `failed 2026-11-21: table `a`.`b` …` for people.
    pub fn describe(&self) -> String {
        let day = |t: &OffsetDateTime| {
            format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
        };
        match self {
            DrillStatus::Unverified => "unverified".into(),
            DrillStatus::Verified { at, .. } => format!("verified {}", day(at)),
            DrillStatus::Failed { at, reason, .. } => format!("failed {}: {reason}", day(at)),
        }
    }

    /// `unverified`, `verified` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            DrillStatus::Unverified => "unverified",
            DrillStatus::Verified { .. } => "verified",
            DrillStatus::Failed { .. } => "failed",
        }
    }
}

/// Each drilled backup's status (backups without a record are [`DrillStatus::Unverified`]).
pub fn statuses(records: &[DrillRecord]) -> BTreeMap<String, DrillStatus> {
    let mut newest: BTreeMap<&str, &DrillRecord> = BTreeMap::new();
    // A backup's status is about restoring that backup; point-in-time drills and chain
    // proofs are about the archive (see [`archive_coverage`]).
    for r in records.iter().filter(|r| r.kind.is_backup()) {
        let e = newest.entry(&r.backup_id).or_insert(r);
        if (r.finished, &r.id) > (e.finished, &e.id) {
            *e = r;
        }
    }
    newest
        .into_iter()
        .map(|(id, r)| {
            let status = if r.passed() {
                DrillStatus::Verified {
                    at: r.finished,
                    drill_id: r.id.clone(),
                }
            } else {
                DrillStatus::Failed {
                    at: r.finished,
                    drill_id: r.id.clone(),
                    reason: r.reason.clone().unwrap_or_else(|| "a check failed".into()),
                }
            };
            (id.to_string(), status)
        })
        .collect()
}

/// The status of one backup.
pub fn status_of(statuses: &BTreeMap<String, DrillStatus>, backup_id: &str) -> DrillStatus {
    statuses
        .get(backup_id)
        .cloned()
        .unwrap_or(DrillStatus::Unverified)
}

/// The backups to drill to bring coverage up, in order: never drilled first, then those whose
/// newest drill failed, each oldest first (`backup_ids` are oldest first); at most `sample`.
pub fn select_unverified(
    backup_ids: &[String],
    records: &[DrillRecord],
    sample: Option<usize>,
) -> Vec<String> {
    let st = statuses(records);
    let mut out: Vec<String> = backup_ids
        .iter()
        .filter(|id| !st.contains_key(*id))
        .cloned()
        .collect();
    out.extend(
        backup_ids
            .iter()
            .filter(|id| matches!(st.get(*id), Some(DrillStatus::Failed { .. })))
            .cloned(),
    );
    if let Some(n) = sample {
        out.truncate(n);
    }
    out
}

/// One failed drill, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureSummary {
    pub drill_id: String,
    /// `backup`, `pitr` or `chain`.
    pub kind: DrillKind,
    pub backup_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: String,
}

/// `holdfast drill report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    /// Drills finished at or after this instant count (all when `None`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    pub drills: usize,
    pub passed: usize,
    pub failed: usize,
    /// passed / drills; `None` without drills.
    pub success_rate: Option<f64>,
    /// Over passed drills; `None` without any.
    pub rto_mean_seconds: Option<f64>,
    /// Nearest-rank 95th percentile over passed drills.
    pub rto_p95_seconds: Option<f64>,
    /// RTO of each passed drill, oldest first: the trend.
    pub rto_trend_seconds: Vec<f64>,
    /// Committed backups now in the repository.
    pub backups: usize,
    /// Of those, backups whose newest drill in the window passed.
    pub backups_verified: usize,
    /// backups_verified / backups; `None` without backups.
    pub coverage: Option<f64>,
    /// Share of the archive's time range that passed point-in-time drills and chain proofs
    /// replayed through; `None` without an archive.
    pub archive_coverage: Option<f64>,
    /// The archive's time range and how much of it was replayed.
    pub archive: Option<ArchiveCoverage>,
    /// The newest failures, newest first.
    pub failures: Vec<FailureSummary>,
}

/// How much of the archive's time range drills replayed through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveCoverage {
    /// The archive's first and last event.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Seconds of `from..to` inside the range of a passed PITR drill or chain proof (each
    /// covers its base's consistent point to its point; overlaps count once).
    pub covered_seconds: f64,
    pub seconds: f64,
    /// Passed drills of each kind in the window.
    pub pitr_drills: usize,
    pub chain_drills: usize,
}

/// The share of `archive` (first, last event) covered by the ranges of passed PITR drills and
/// chain proofs among `records`.
pub fn archive_coverage(
    records: &[DrillRecord],
    archive: (OffsetDateTime, OffsetDateTime),
) -> ArchiveCoverage {
    let (from, to) = archive;
    let passed: Vec<&DrillRecord> = records
        .iter()
        .filter(|r| r.passed() && !r.kind.is_backup())
        .collect();
    let mut spans: Vec<(OffsetDateTime, OffsetDateTime)> = passed
        .iter()
        .filter_map(|r| r.range.as_ref())
        .map(|g| (g.from_time.max(from), g.to_time.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort();
    let mut covered = 0.0;
    let mut current: Option<(OffsetDateTime, OffsetDateTime)> = None;
    for (a, b) in spans {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += (cb - ca).as_seconds_f64();
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = current {
        covered += (cb - ca).as_seconds_f64();
    }
    let count = |k: DrillKind| passed.iter().filter(|r| r.kind == k).count();
    ArchiveCoverage {
        from,
        to,
        covered_seconds: covered,
        seconds: (to - from).as_seconds_f64().max(0.0),
        pitr_drills: count(DrillKind::Pitr),
        chain_drills: count(DrillKind::Chain),
    }
}

/// The report over `records` finished at or after `since`, for the repository's current
/// `backup_ids` and the archive's time range `archive`, with the newest `last_failures`
/// failures.
pub fn report(
    records: &[DrillRecord],
    backup_ids: &[String],
    archive: Option<(OffsetDateTime, OffsetDateTime)>,
    since: Option<OffsetDateTime>,
    last_failures: usize,
) -> DrillReport {
    let window: Vec<DrillRecord> = records
        .iter()
        .filter(|r| since.is_none_or(|s| r.finished >= s))
        .cloned()
        .collect();
    let passed: Vec<&DrillRecord> = window.iter().filter(|r| r.passed()).collect();
    let mut rtos: Vec<f64> = passed.iter().map(|r| r.rto_seconds).collect();
    let trend = rtos.clone();
    rtos.sort_by(|a, b| a.total_cmp(b));
    let st = statuses(&window);
    let verified = backup_ids
        .iter()
        .filter(|id| matches!(st.get(*id), Some(DrillStatus::Verified { .. })))
        .count();
    let mut failures: Vec<FailureSummary> = window
        .iter()
        .filter(|r| !r.passed())
        .map(|r| FailureSummary {
            drill_id: r.id.clone(),
            kind: r.kind,
            backup_id: r.backup_id.clone(),
            at: r.finished,
            reason: r.reason.clone().unwrap_or_default(),
        })
        .collect();
    failures.sort_by(|a, b| (b.at, &b.drill_id).cmp(&(a.at, &a.drill_id)));
    failures.truncate(last_failures);
    let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
    let archive = archive.map(|range| archive_coverage(&window, range));
    DrillReport {
        since,
        drills: window.len(),
        passed: passed.len(),
        failed: window.len() - passed.len(),
        success_rate: ratio(passed.len(), window.len()),
        rto_mean_seconds: (!rtos.is_empty()).then(|| rtos.iter().sum::<f64>() / rtos.len() as f64),
        rto_p95_seconds: percentile(&rtos, 0.95),
        rto_trend_seconds: trend,
        backups: backup_ids.len(),
        backups_verified: verified,
        coverage: ratio(verified, backup_ids.len()),
        archive_coverage: archive.as_ref().map(|a| {
            if a.seconds > 0.0 {
                (a.covered_seconds / a.seconds).min(1.0)
            } else if a.covered_seconds > 0.0 || a.pitr_drills + a.chain_drills > 0 {
                1.0
            } else {
                0.0
            }
        }),
        archive,
        failures,
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DrillKind, DrillOutcome, DrillServer, DRILL_FORMAT};

    fn rec(id: &str, backup: &str, minute: i64, ok: bool, rto: f64) -> DrillRecord {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000 + minute * 60).unwrap();
        DrillRecord {
            format: DRILL_FORMAT,
            id: id.into(),
            kind: DrillKind::Backup,
            backup_id: backup.into(),
            engine: "logical".into(),
            outcome: if ok {
                DrillOutcome::Passed
            } else {
                DrillOutcome::Failed
            },
            reason: (!ok).then(|| format!("table `d`.`{backup}`: differs")),
            checks: Vec::new(),
            range: None,
            server: DrillServer {
                binary: String::new(),
                version: String::new(),
                kind: "sandbox".into(),
                memory_bytes: None,
                peak_memory_bytes: None,
            },
            started: t,
            finished: t,
            rto_seconds: rto,
            check_seconds: 0.0,
            bytes_restored: 0,
            rows_restored: 0,
            holdfast_version: String::new(),
            host: String::new(),
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_newest_drill_decides_a_status() {
        type Drills<'a> = &'a [(&'a str, i64, bool)];
        let cases: &[(Drills, &str)] = &[
            (&[], "unverified"),
            (&[("b", 1, true)], "verified"),
            (&[("b", 1, false)], "failed"),
            (&[("b", 1, false), ("b", 2, true)], "verified"),
            (&[("b", 1, true), ("b", 2, false)], "failed"),
            (&[("other", 3, true)], "unverified"),
        ];
        for (drills, want) in cases {
            let records: Vec<DrillRecord> = drills
                .iter()
                .enumerate()
                .map(|(i, (b, m, ok))| rec(&format!("d{i}"), b, *m, *ok, 1.0))
                .collect();
            let got = status_of(&statuses(&records), "b");
            assert_eq!(got.word(), *want, "{drills:?}");
        }
    }

    #[test]
    fn selection_takes_never_drilled_then_failed_oldest_first() {
        let backups = ids(&["b1", "b2", "b3", "b4", "b5"]);
        let records = vec![
            rec("d1", "b1", 1, false, 1.0),
            rec("d2", "b2", 2, true, 1.0),
            rec("d3", "b4", 3, true, 1.0),
            rec("d4", "b4", 4, false, 1.0),
        ];
        for (sample, want) in [
            (None, vec!["b3", "b5", "b1", "b4"]),
            (Some(1), vec!["b3"]),
            (Some(3), vec!["b3", "b5", "b1"]),
            (Some(0), vec![]),
        ] {
            assert_eq!(select_unverified(&backups, &records, sample), ids(&want));
        }
        assert!(select_unverified(&backups[1..2], &records, None).is_empty());
    }

    #[test]
    fn report_figures() {
        let backups = ids(&["b1", "b2", "b3", "b4"]);
        let records = vec![
            rec("d1", "b1", 1, true, 10.0),
            rec("d2", "b2", 2, false, 99.0),
            rec("d3", "b3", 3, true, 20.0),
            rec("d4", "b1", 4, true, 30.0),
            rec("gone", "deleted", 5, true, 40.0),
        ];
        let r = report(&records, &backups, None, None, 10);
        assert_eq!((r.drills, r.passed, r.failed), (5, 4, 1));
        assert_eq!(r.success_rate, Some(0.8));
        assert_eq!(r.rto_mean_seconds, Some(25.0));
        assert_eq!(r.rto_p95_seconds, Some(40.0));
        assert_eq!(r.rto_trend_seconds, vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!((r.backups, r.backups_verified), (4, 2));
        assert_eq!(r.coverage, Some(0.5));
        assert_eq!(r.failures.len(), 1);
        assert_eq!(r.failures[0].backup_id, "b2");

        let since = OffsetDateTime::from_unix_timestamp(1_700_000_000 + 3 * 60).unwrap();
        let r = report(&records, &backups, None, Some(since), 10);
        assert_eq!((r.drills, r.failed), (3, 0));
        assert_eq!(r.coverage, Some(0.5));
        assert!(r.failures.is_empty());

        let r = report(&[], &[], None, None, 10);
        assert_eq!(
            (r.success_rate, r.rto_mean_seconds, r.coverage),
            (None, None, None)
        );
    }

    fn ranged(kind: DrillKind, ok: bool, from: i64, to: i64) -> DrillRecord {
        let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap();
        DrillRecord {
            kind,
            range: Some(crate::manifest::DrillRange {
                base_backup: "b".into(),
                from_time: t(from),
                from_gtid: String::new(),
                to_time: t(to),
                target: String::new(),
                expected_gtid: String::new(),
                reached_gtid: String::new(),
                segments: 0,
                transactions: 0,
            }),
            ..rec("d", "b", 0, ok, 1.0)
        }
    }

    #[test]
    fn archive_coverage_is_the_union_of_passed_ranges() {
        use DrillKind::{Chain, Pitr};
        let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap();
        type Case<'a> = (&'a [(DrillKind, bool, i64, i64)], f64, usize, usize);
        let cases: &[Case] = &[
            (&[], 0.0, 0, 0),
            (&[(Pitr, true, 0, 25)], 25.0, 1, 0),
            (&[(Pitr, false, 0, 25)], 0.0, 0, 0),
            // Overlaps count once; chain and PITR ranges add up.
            (&[(Pitr, true, 0, 25), (Chain, true, 10, 50)], 50.0, 1, 1),
            (&[(Chain, true, 60, 70), (Pitr, true, 0, 10)], 20.0, 1, 1),
            // Clipped to the archive (0..100); a range outside it covers nothing.
            (&[(Chain, true, -50, 10), (Pitr, true, 90, 150)], 20.0, 1, 1),
            (&[(Pitr, true, 200, 300)], 0.0, 1, 0),
            // Backup drills carry no range and cover nothing.
            (&[(DrillKind::Backup, true, 0, 100)], 0.0, 0, 0),
        ];
        for (drills, covered, pitr, chain) in cases {
            let records: Vec<DrillRecord> = drills
                .iter()
                .map(|(k, ok, a, b)| ranged(*k, *ok, *a, *b))
                .collect();
            let c = archive_coverage(&records, (t(0), t(100)));
            assert_eq!(c.covered_seconds, *covered, "{drills:?}");
            assert_eq!(
                (c.pitr_drills, c.chain_drills),
                (*pitr, *chain),
                "{drills:?}"
            );
            assert_eq!(c.seconds, 100.0);
        }
        let records = vec![ranged(Pitr, true, 0, 25), ranged(Chain, true, 50, 75)];
        let r = report(&records, &ids(&["b"]), Some((t(0), t(100))), None, 10);
        assert_eq!(r.archive_coverage, Some(0.5));
        // PITR and chain drills do not make a backup verified.
        assert_eq!(r.backups_verified, 0);
        assert_eq!(report(&records, &[], None, None, 10).archive_coverage, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        for (p, want) in [(0.95, 19.0), (0.5, 10.0), (1.0, 20.0), (0.0, 1.0)] {
            assert_eq!(percentile(&v, p), Some(want), "{p}");
        }
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.95), None);
    }
}
