//! The chain proof: base N−1 restored into a throwaway server, the archive replayed up to base
//! N's consistent point (its GTID position), then every table of base N's manifest compared
//! with the server — columns, row count and content fingerprint, the same fingerprint the
//! logical backup computed while reading the source — and base N's schema objects looked for.
//! Passing proves that N−1 plus the archive between the two backups reproduces N exactly: the
//! archive between them is complete and correct.
//!
//! An archive that cannot be replayed to N's point (a missing or damaged segment, a hole) is a
//! failed `archive` check naming it; the planner's and the segment check's messages name the
//! segment and the gap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::*;
use time::OffsetDateTime;

use super::logical::{check_schema, check_table};
use super::pitr::{position_check, predict};
use super::replay::{is_archive_failure, restore_and_replay, sandbox_server, start_sandbox};
use super::{assemble, failed, passed, write_record, DrillOptions, Outcome};
use crate::binlog::gtid::{Gtid, GtidPos, MysqlGtid};
use crate::engine::logical::restore::load_schema;
use crate::manifest::{
    BackupHead, BackupManifest, DrillCheck, DrillKind, DrillRange, DrillRecord, DrillServer,
    SegmentIndex,
};
use crate::progress::Progress;
use crate::recovery::{base_candidate, plan_for, BaseEngine, BaseRule, Planned, Target};
use crate::repo::Repository;
use crate::{Error, Result};

/// Schemas that belong to the server, not to a backup.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// The backup the chain proof starts from: the newest complete logical backup with a binlog
/// position whose consistent point is before `n`'s and whose position `n`'s includes.
pub fn previous_base<'a, B: BackupHead>(
    n: &impl BackupHead,
    n_pos: &GtidPos,
    backups: &'a [B],
) -> Result<Option<&'a B>> {
    let key = |b: &'a B| (b.consistent_point().time, b.backup_id());
    let n_key = (n.consistent_point().time, n.backup_id());
    let mut best: Option<&B> = None;
    for b in backups {
        if b.backup_id() == n.backup_id() || b.is_physical() || b.is_partial() {
            continue;
        }
        let Some(pos) = base_candidate(b)?.gtid else {
            continue;
        };
        if key(b) < n_key && n_pos.includes(&pos) && best.is_none_or(|x| key(x) < key(b)) {
            best = Some(b);
        }
    }
    Ok(best)
}

/// The last transaction of each lane of `pos` (MariaDB: each domain's; MySQL: each source's
/// highest number).
fn lane_tails(pos: &GtidPos) -> Vec<Gtid> {
    let mut out: Vec<Gtid> = pos.gtids().map(|g| Gtid::MariaDb(*g)).collect();
    out.extend(pos.sources().filter_map(|(sid, set)| {
        set.last()
            .map(|gno| Gtid::MySql(MysqlGtid { sid: *sid, gno }))
    }));
    out
}

/// The GTID targets that may stop the replay exactly at `to` from `from`, best first: of the
/// lanes `to` advances, the one whose last transaction the archive reaches last (the others
/// are reached before it). Lanes reached in the same segment are all listed (the index does
/// not order them; the archive's events decide, see [`run_chain_drill`]). Empty when `to` has
/// no transaction at all.
pub fn chain_targets(from: &GtidPos, to: &GtidPos, segments: &[SegmentIndex]) -> Vec<Gtid> {
    let tails = lane_tails(to);
    let newer: Vec<Gtid> = tails
        .iter()
        .filter(|g| !from.contains(g))
        .copied()
        .collect();
    if newer.is_empty() {
        return tails.into_iter().take(1).collect();
    }
    let reached_at = |g: &Gtid| {
        segments
            .iter()
            .position(|s| s.gtid_state.contains(g))
            .unwrap_or(usize::MAX)
    };
    let last = newer.iter().map(reached_at).max().unwrap_or(usize::MAX);
    newer
        .into_iter()
        .filter(|g| reached_at(g) == last)
        .collect()
}

/// Runs the chain proof ending at backup `n` and writes its record (see the module
/// documentation). Errors: `n` is physical or partial or has no binlog position, no earlier
/// backup to start from, the drill server cannot run.
pub async fn run_chain_drill(
    repo: &Repository,
    n: &BackupManifest,
    opts: &DrillOptions,
    progress: Arc<dyn Progress>,
) -> Result<DrillRecord> {
    if opts.target.is_some() {
        return Err(Error::usage(
            "the chain proof replays into a throwaway server it starts; --target is for drills \
             of one logical backup",
        ));
    }
    if n.is_physical() {
        return Err(Error::usage(format!(
            "backup {} is physical: the chain proof compares every table with the row counts \
             and fingerprints a logical manifest records; give a logical backup",
            n.id
        )));
    }
    let Some(n_pos) = base_candidate(n)?.gtid else {
        return Err(Error::usage(format!(
            "backup {} records no binlog position (the source's binary log was off): there is \
             no point in the archive to replay to",
            n.id
        )));
    };
    let started = OffsetDateTime::now_utc();
    let backups = repo.list_summaries().await?;
    let Some(prev) = previous_base(n, &n_pos, &backups)? else {
        return Err(Error::usage(format!(
            "no complete logical backup with a binlog position precedes backup {} in the same \
             history: the chain proof needs base N−1 to start from (take another backup later \
             and prove the chain to it)",
            n.id
        )));
    };
    let prev_pos = base_candidate(prev)?.gtid.unwrap_or_default();
    let archive = crate::binlog::archive::Archive::new(repo.storage().clone());
    let all_segments = archive.segments().await?;
    let mut range = DrillRange {
        base_backup: prev.id.clone(),
        from_time: prev.consistent_point.time,
        from_gtid: prev_pos.to_string(),
        to_time: n.consistent_point.time,
        target: String::new(),
        expected_gtid: n_pos.to_string(),
        reached_gtid: String::new(),
        segments: 0,
        transactions: 0,
    };
    let no_server = DrillServer {
        binary: String::new(),
        version: String::new(),
        kind: "sandbox".into(),
        memory_bytes: Some(opts.sandbox.memory),
        peak_memory_bytes: None,
    };
    let outcome = |checks, rto, range, server| Outcome {
        checks,
        rto_seconds: rto,
        check_seconds: 0.0,
        bytes: 0,
        rows: 0,
        server,
        range: Some(range),
    };
    let archive_failed = |detail: String, range: DrillRange| {
        let check = failed(
            "archive",
            None,
            format!(
                "the archive from backup {} to backup {} cannot be replayed: {detail}",
                prev.id, n.id
            ),
        );
        assemble(
            n,
            DrillKind::Chain,
            started,
            outcome(vec![check], 0.0, range, no_server.clone()),
        )
    };

    let goals = chain_targets(&prev_pos, &n_pos, &all_segments);
    if goals.is_empty() {
        return Err(Error::usage(format!(
            "backup {} records an empty GTID position: nothing to replay to",
            n.id
        )));
    }
    let rule = BaseRule {
        named: Some(prev.id.clone()),
        engine: Some(BaseEngine::Logical),
        engine_reason: "the chain proof restores a logical base into its throwaway server".into(),
    };
    // Several candidates only when lanes end in the same segment: the first whose replay the
    // archive's events predict to end exactly at N's position is the one.
    let mut chosen = None;
    for goal in &goals {
        let target = Target::Gtid(*goal);
        range.target = target.to_string();
        progress.note(&format!(
            "proving the chain from backup {} to backup {} ({target})",
            prev.id, n.id
        ));
        let Planned {
            plan,
            segments,
            base,
        } = match plan_for(repo, target, &rule).await {
            Ok(p) => p,
            Err(e) if is_archive_failure(&e) => {
                let record = archive_failed(e.to_string(), range);
                write_record(repo, &record).await?;
                return Ok(record);
            }
            Err(e) => return Err(e),
        };
        let predicted = match predict(repo, &plan, &segments, progress.clone()).await {
            Ok(p) => p,
            Err(e) if is_archive_failure(&e) => {
                let record = archive_failed(e.to_string(), range);
                write_record(repo, &record).await?;
                return Ok(record);
            }
            Err(e) => return Err(e),
        };
        let exact = predicted == n_pos;
        if exact || chosen.is_none() {
            chosen = Some((target, plan, segments, predicted, base));
        }
        if exact {
            break;
        }
    }
    let (target, plan, segments, predicted, base) = chosen.expect("at least one goal");
    range.target = target.to_string();
    range.segments = plan.segment_count();
    let mut checks = Vec::new();
    checks.push(if predicted == n_pos {
        passed(
            "archive",
            None,
            format!(
                "{} segments from backup {} ({prev_pos}) to backup {} ({n_pos}) intact and \
                 continuous",
                plan.segment_count(),
                prev.id,
                n.id
            ),
        )
    } else {
        failed(
            "archive",
            None,
            format!(
                "replaying the archive from backup {} to {target} gives {predicted}, not backup \
                 {}'s position {n_pos}",
                prev.id, n.id
            ),
        )
    });

    // `prev`'s manifest, checked against the summary it was chosen by.
    let prev = &base;
    range.from_time = prev.consistent_point.time;
    let mut sandbox = start_sandbox(prev, opts, &progress).await?;
    let conn_cfg = sandbox.connection()?;
    let result = async {
        let replayed = restore_and_replay(
            repo,
            prev,
            &plan,
            &segments,
            &conn_cfg,
            opts,
            progress.clone(),
        )
        .await?;
        let done = match replayed {
            Ok(done) => done,
            Err(failure) => return Ok((Err(failure), Vec::new(), 0.0)),
        };
        let check_began = Instant::now();
        let mut conn = conn_cfg.connect().await?;
        let mut more = vec![position_check(&done.reached, &n_pos)];
        progress.phase("check", n.tables.len() as u64, "tables");
        for table in &n.tables {
            more.push(check_table(&mut conn, table).await?);
            progress.advance(1);
        }
        let schema = load_schema(repo, n).await?;
        more.extend(
            check_schema(&mut conn, &schema, n.includes_users && prev.includes_users).await?,
        );
        if !n.is_partial() {
            more.push(extra_tables(&mut conn, n).await?);
        }
        Ok::<_, Error>((Ok(done), more, check_began.elapsed().as_secs_f64()))
    }
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
    let (replayed, more, check_seconds) = result?;
    let record_outcome = match replayed {
        Err((check, rto)) => {
            checks.push(check);
            outcome(checks, rto, range, server)
        }
        Ok(done) => {
            range.reached_gtid = done.reached.to_string();
            range.transactions = done.transactions;
            checks.push(passed(
                "replay",
                None,
                format!(
                    "backup {} restored ({} rows) and {} transactions of {} segments replayed \
                     to backup {}'s point",
                    prev.id, done.rows, done.transactions, range.segments, n.id
                ),
            ));
            checks.extend(more);
            Outcome {
                check_seconds,
                bytes: done.bytes,
                rows: done.rows,
                ..outcome(checks, done.rto_seconds, range, server)
            }
        }
    };
    let record = assemble(n, DrillKind::Chain, started, record_outcome);
    write_record(repo, &record).await?;
    Ok(record)
}

/// Tables on the server that base N does not have (created by the replay but dropped before N,
/// or left from N−1): a table N's manifest lacks means the replay did not reproduce N.
async fn extra_tables(conn: &mut mysql_async::Conn, n: &BackupManifest) -> Result<DrillCheck> {
    let on_server: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY 1, 2",
        )
        .await?;
    let known: BTreeSet<(&str, &str)> = n
        .tables
        .iter()
        .map(|t| (t.database.as_str(), t.table.as_str()))
        .collect();
    let extra: Vec<String> = on_server
        .iter()
        .filter(|(db, _)| !SYSTEM_SCHEMAS.contains(&db.as_str()))
        .filter(|(db, t)| !known.contains(&(db.as_str(), t.as_str())))
        .map(|(db, t)| format!("`{db}`.`{t}`"))
        .collect();
    Ok(if extra.is_empty() {
        passed(
            "extra-tables",
            None,
            format!("no table beyond backup {}'s", n.id),
        )
    } else {
        failed(
            "extra-tables",
            None,
            format!(
                "{} table(s) that backup {} does not have: {}",
                extra.len(),
                n.id,
                extra.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event::ChecksumAlg;
    use crate::manifest::{FileEntry, SegmentSource, SEGMENT_FORMAT};

    fn pos(text: &str) -> GtidPos {
        text.parse().unwrap()
    }

    fn seg(seq: u64, state: &str) -> SegmentIndex {
        SegmentIndex {
            format: SEGMENT_FORMAT,
            seq,
            source: SegmentSource {
                server_id: 1,
                server_version: "10.11".into(),
                file: "b.000001".into(),
                file_created: 1,
            },
            start_pos: 0,
            end_pos: 0,
            header: seq == 1,
            piece_start: None,
            checksum: ChecksumAlg::Crc32,
            events: 1,
            transactions: 1,
            first_event_time: 0,
            last_event_time: 0,
            first_gtid: None,
            last_gtid: None,
            gtid_state: pos(state),
            open_transaction: false,
            ends_file: false,
            raw_size: 0,
            object: FileEntry {
                path: String::new(),
                size: 0,
                sha256: String::new(),
            },
            archived: OffsetDateTime::UNIX_EPOCH,
            merged_to: None,
            replaced_object: None,
        }
    }

    #[test]
    fn the_chain_stops_on_the_lane_the_archive_reaches_last() {
        let archive = [
            seg(1, "0-1-5"),
            seg(2, "0-1-9,1-1-3"),
            seg(3, "0-1-12,1-1-3"),
            seg(4, "0-1-12,1-1-7"),
        ];
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let cases: &[(&str, &str, &[&str])] = &[
            // One domain: its last GTID.
            ("0-1-5", "0-1-12", &["0-1-12"]),
            // Domain 1 reaches 1-1-7 only in segment 4, after 0-1-12 (segment 3).
            ("0-1-5", "0-1-12,1-1-7", &["1-1-7"]),
            // Both end in segment 2: both are candidates.
            ("0-1-5", "0-1-9,1-1-3", &["0-1-9", "1-1-3"]),
            // Only the lanes N advances count.
            ("0-1-12,1-1-3", "0-1-12,1-1-7", &["1-1-7"]),
            // Nothing between the two backups: N's own point (no replay).
            ("0-1-9", "0-1-9", &["0-1-9"]),
            ("", "", &[]),
        ];
        for (from, to, want) in cases {
            let got: Vec<String> = chain_targets(&pos(from), &pos(to), &archive)
                .iter()
                .map(|g| g.to_string())
                .collect();
            assert_eq!(got, *want, "{from} -> {to}");
        }
        // MySQL: the source's highest number.
        let got = chain_targets(
            &pos(&format!("{uuid}:1-5")),
            &pos(&format!("{uuid}:1-9")),
            &[],
        );
        assert_eq!(got[0].to_string(), format!("{uuid}:9"));
    }
}
