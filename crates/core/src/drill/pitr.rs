//! A point-in-time drill: a point (given, or random inside the recoverable window), the
//! recovery planned to it by the same planner `restore --to-time` uses, the base restored into
//! a throwaway server and the archive replayed, then the server's own GTID position compared
//! with the position the archive predicts for that point.
//!
//! The prediction is made before anything is restored, by reading the planned segments with
//! the replay's stop rule ([`until_position`]) — a reader of its own, not the replay — and
//! bracketed by the index: it must hold the base's position and lie within the last planned
//! segment's recorded GTID state. The position compared is read from the server afterwards.

use std::sync::Arc;

use mysql_async::prelude::*;
use rand::Rng;
use time::OffsetDateTime;

use super::replay::{is_archive_failure, restore_and_replay, sandbox_server, start_sandbox};
use super::{assemble, failed, passed, write_record, DrillOptions, Outcome};
use crate::binlog::archive::Archive;
use crate::binlog::gtid::GtidPos;
use crate::manifest::{DrillKind, DrillRange, DrillRecord, DrillServer, SegmentIndex};
use crate::progress::Progress;
use crate::recovery::fast::{planned_pieces, until_position};
use crate::recovery::{
    check_planned_segments, plan_for, window, BaseEngine, BaseRule, Planned, RecoveryPlan, Target,
};
use crate::repo::Repository;
use crate::{Error, ErrorKind, Result};

/// Where a point-in-time drill recovers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PitrPoint {
    Time(OffsetDateTime),
    /// A second drawn uniformly from the seconds of the recoverable window in which the archive
    /// has events (the whole window when it has none), so the drill replays something.
    Random,
}

/// A whole second of `[from, to]` (never before `from`) chosen with `draw` in `[0, 1)`: the
/// time of a segment's last transaction, the segment drawn in proportion to the transactions it
/// holds (`ends`: each segment's last event time and transaction count), so the point is a
/// moment the source committed at; uniformly from the whole window when no segment ends
/// inside it. (A segment's first and last event times may enclose an idle stretch, so only its
/// end is known to be a busy second.)
pub fn random_point(
    from: OffsetDateTime,
    to: OffsetDateTime,
    ends: &[(u32, u64)],
    draw: f64,
) -> OffsetDateTime {
    let lo = from.unix_timestamp() + i64::from(from.nanosecond() > 0);
    if lo > to.unix_timestamp() {
        // The window lies inside one second: no whole second in it; its end is the point.
        return to;
    }
    let hi = to.unix_timestamp();
    let draw = draw.clamp(0.0, 0.999_999);
    let inside: Vec<(i64, u64)> = ends
        .iter()
        .map(|&(t, n)| (i64::from(t), n.max(1)))
        .filter(|(t, _)| (lo..=hi).contains(t))
        .collect();
    let total: u64 = inside.iter().map(|(_, n)| n).sum();
    let second = if total == 0 {
        lo + ((hi - lo + 1) as f64 * draw).floor() as i64
    } else {
        let mut k = (total as f64 * draw).floor() as u64;
        inside
            .iter()
            .find(|(_, n)| {
                let hit = k < *n;
                k = k.saturating_sub(*n);
                hit
            })
            .map_or(hi, |(t, _)| *t)
    };
    OffsetDateTime::from_unix_timestamp(second.min(hi)).unwrap_or(to)
}

/// The rule for a drill's base: complete, logical (restored into the sandbox).
fn logical_base(named: Option<String>, why: &str) -> BaseRule {
    BaseRule {
        named,
        engine: Some(BaseEngine::Logical),
        engine_reason: why.to_string(),
    }
}

/// Runs a point-in-time drill and writes its record. An error means the drill could not run
/// (no window, no server binary, a point outside the window); a base that does not restore,
/// an archive that does not replay or a position other than predicted is a failed record.
pub async fn run_pitr_drill(
    repo: &Repository,
    point: PitrPoint,
    opts: &DrillOptions,
    progress: Arc<dyn Progress>,
) -> Result<DrillRecord> {
    if opts.target.is_some() {
        return Err(Error::usage(
            "a point-in-time drill replays into a throwaway server it starts; --target is for \
             drills of one logical backup",
        ));
    }
    let started = OffsetDateTime::now_utc();
    let at = match point {
        PitrPoint::Time(t) => t,
        PitrPoint::Random => {
            let w = window(repo).await?;
            let (Some(from), Some(to)) = (w.from_time, w.to_time) else {
                return Err(Error::new(
                    ErrorKind::NotRecoverable,
                    "the repository has no recoverable window (a backup with a binlog position \
                     and the archive after it): nothing to drill with --pitr random; take a \
                     backup and run `holdfast binlog stream`",
                ));
            };
            let ends: Vec<(u32, u64)> = Archive::new(repo.storage().clone())
                .segments()
                .await?
                .iter()
                .filter(|s| s.transactions > 0)
                .map(|s| (s.last_event_time, s.transactions))
                .collect();
            random_point(from, to, &ends, rand::thread_rng().gen())
        }
    };
    let target = Target::Time(at);
    let rule = logical_base(
        None,
        "a point-in-time drill restores a logical base into its throwaway server",
    );
    let Planned {
        plan,
        segments,
        base,
    } = plan_for(repo, target, &rule).await?;
    progress.note(&format!(
        "drilling a recovery to {target} from backup {}",
        base.id
    ));
    let mut range = DrillRange {
        base_backup: base.id.clone(),
        from_time: base.consistent_point.time,
        from_gtid: plan.start.to_string(),
        to_time: at,
        target: target.to_string(),
        expected_gtid: String::new(),
        reached_gtid: String::new(),
        segments: plan.segment_count(),
        transactions: 0,
    };
    let server = DrillServer {
        binary: String::new(),
        version: String::new(),
        kind: "sandbox".into(),
        memory_bytes: Some(opts.sandbox.memory),
        peak_memory_bytes: None,
    };
    let finish = |checks, rto, range, server| Outcome {
        checks,
        rto_seconds: rto,
        check_seconds: 0.0,
        bytes: 0,
        rows: 0,
        server,
        range: Some(range),
    };

    // The archive's prediction, before anything is restored.
    let expected = match predict(repo, &plan, &segments, progress.clone()).await {
        Ok(p) => p,
        Err(e) if is_archive_failure(&e) => {
            let checks = vec![failed("archive", None, e.to_string())];
            let record = assemble(
                &base,
                DrillKind::Pitr,
                started,
                finish(checks, 0.0, range, server),
            );
            write_record(repo, &record).await?;
            return Ok(record);
        }
        Err(e) => return Err(e),
    };
    range.expected_gtid = expected.to_string();
    let mut checks = vec![index_check(&plan, &segments, &expected)];

    let mut sandbox = start_sandbox(&base, opts, &progress).await?;
    let conn_cfg = sandbox.connection()?;
    let result = restore_and_replay(
        repo,
        &base,
        &plan,
        &segments,
        &conn_cfg,
        opts,
        progress.clone(),
    )
    .await;
    let version: String = match conn_cfg.connect().await {
        Ok(mut c) => c
            .query_first("SELECT @@version")
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let server = sandbox_server(&sandbox, opts, version);
    sandbox.stop(std::time::Duration::from_secs(60)).await;
    let outcome = match result? {
        Err((check, rto)) => {
            checks.push(check);
            finish(checks, rto, range, server)
        }
        Ok(done) => {
            range.reached_gtid = done.reached.to_string();
            range.transactions = done.transactions;
            checks.push(passed(
                "replay",
                None,
                format!(
                    "backup {} restored ({} rows) and {} transactions of {} segments replayed to {target}",
                    base.id, done.rows, done.transactions, range.segments
                ),
            ));
            checks.push(position_check(&done.reached, &expected));
            Outcome {
                bytes: done.bytes,
                rows: done.rows,
                ..finish(checks, done.rto_seconds, range, server)
            }
        }
    };
    let record = assemble(&base, DrillKind::Pitr, started, outcome);
    write_record(repo, &record).await?;
    Ok(record)
}

/// Every planned segment intact, then the position the archive holds at the plan's target.
pub(crate) async fn predict(
    repo: &Repository,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    progress: Arc<dyn Progress>,
) -> Result<GtidPos> {
    check_planned_segments(repo, plan, segments, progress).await?;
    if plan.pieces.is_empty() {
        return Ok(plan.start.clone());
    }
    let archive = Archive::new(repo.storage().clone());
    let pieces = planned_pieces(plan, segments)?;
    Ok(until_position(&archive, &pieces, &plan.start, plan.target)
        .await?
        .position)
}

/// The prediction against the index: at least the base's position, at most the GTID state the
/// index records after the last planned segment.
fn index_check(
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    expected: &GtidPos,
) -> crate::manifest::DrillCheck {
    let last_seq = plan.pieces.iter().flatten().last();
    let ceiling = last_seq
        .and_then(|seq| segments.iter().find(|s| s.seq == *seq))
        .map(|s| s.gtid_state.clone());
    let mut upper = ceiling.clone().unwrap_or_else(|| plan.start.clone());
    upper.union(&plan.start);
    if expected.includes(&plan.start) && upper.includes(expected) {
        passed(
            "archive",
            None,
            format!(
                "{} planned segments intact; the archive holds {expected} at the point, between \
                 the base's {} and the index's {upper}",
                plan.segment_count(),
                plan.start
            ),
        )
    } else {
        failed(
            "archive",
            None,
            format!(
                "the archive's events give {expected} at the point, outside what its index \
                 records (from the base's {} to {upper}): the index and the segments disagree",
                plan.start
            ),
        )
    }
}

/// The server's own position against the prediction.
pub(crate) fn position_check(reached: &GtidPos, expected: &GtidPos) -> crate::manifest::DrillCheck {
    if reached == expected {
        passed(
            "gtid-position",
            None,
            format!("the server's GTID position after the replay is {reached}, as predicted"),
        )
    } else {
        failed(
            "gtid-position",
            None,
            format!(
                "the server's GTID position after the replay is {reached}; the archive \
                 predicts {expected}"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_points_stay_inside_the_window() {
        let t = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let frac = t(100) + time::Duration::milliseconds(300);
        type Case<'a> = (OffsetDateTime, OffsetDateTime, &'a [(u32, u64)], f64, i64);
        let cases: &[Case] = &[
            // No segment ends in the window: the whole window (101 seconds).
            (t(100), t(200), &[], 0.0, 100),
            (t(100), t(200), &[], 0.999_999_9, 200),
            (t(100), t(200), &[], 1.0, 200),
            (t(100), t(200), &[(20, 5), (300, 5)], 0.5, 150),
            (frac, t(200), &[], 0.0, 101),
            (t(100), t(100), &[], 0.7, 100),
            // A window inside one second: its end (never a second after it).
            (frac, frac, &[], 0.7, 100),
            // Segment ends weighted by transactions: 120 holds 1 of 4, 150 holds 3 of 4.
            (t(100), t(200), &[(120, 1), (150, 3)], 0.0, 120),
            (t(100), t(200), &[(120, 1), (150, 3)], 0.24, 120),
            (t(100), t(200), &[(120, 1), (150, 3)], 0.25, 150),
            (t(100), t(200), &[(120, 1), (150, 3)], 0.99, 150),
            // Ends outside the window do not count; the window's edges do.
            (
                t(100),
                t(200),
                &[(50, 9), (100, 1), (200, 1), (250, 9)],
                0.0,
                100,
            ),
            (
                t(100),
                t(200),
                &[(50, 9), (100, 1), (200, 1), (250, 9)],
                0.9,
                200,
            ),
            (frac, t(200), &[(100, 5), (101, 1)], 0.0, 101),
        ];
        for (from, to, busy, draw, want) in cases {
            let point = random_point(*from, *to, busy, *draw);
            assert!(
                point >= *from && point <= *to,
                "{point} outside {from}..{to}"
            );
            assert_eq!(point.unix_timestamp(), *want, "{from} {to} {busy:?} {draw}");
        }
    }
}
