//! The fast replay path: the restored server replicates the archive from holdfast.
//!
//! [`until_position`] reads the planned segments once to find the exact GTID position the
//! target means (the same stop rule as the portable path, [`Stop::before`]). [`replay_fast`]
//! then starts a [`ReplayPrimary`] on 127.0.0.1, points a dedicated replication connection of
//! the target at it (`CHANGE MASTER 'holdfast_replay' TO …`, so an existing default replication
//! setup is never touched), and runs `START SLAVE … UNTIL master_gtid_pos = …` with the server's
//! own (parallel) replication. When the SQL thread has stopped at the position, the connection
//! is removed again (`RESET SLAVE … ALL`) and `gtid_slave_pos` holds the result.
//!
//! The server skips events carrying its own `server_id`, so when the target shares an id with
//! the archived events (a restore into a copy of the same configuration) it runs the replay
//! under a temporary id and gets its own back afterwards.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use rand::Rng;
use serde::Serialize;

use crate::binlog::apply::{Stop, StopReason};
use crate::binlog::archive::Archive;
use crate::binlog::event::{Boundary, EventReader, GroupTracker};
use crate::binlog::gtid::{Gtid, GtidPos};
use crate::binlog::serve::{ReplayPrimary, ServePlan, REPLAY_USER};
use crate::manifest::SegmentIndex;
use crate::progress::Progress;
use crate::recovery::plan::{RecoveryPlan, Target};
use crate::source::conn::ConnectionConfig;
use crate::{Error, ErrorKind, Result};

/// The replication connection name used on the target.
pub const CONNECTION_NAME: &str = "holdfast_replay";
/// An IO-thread error that lasts this long ends the replay.
const IO_ERROR_GRACE: Duration = Duration::from_secs(10);
/// Neither received nor applied anything new for this long: the replay is stuck.
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// Where the replay stops, found by reading the planned segments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UntilPosition {
    /// The plan's start advanced by every transaction to apply.
    pub position: GtidPos,
    pub transactions: u64,
    pub last_applied: Option<Gtid>,
    /// The first transaction left out by the target.
    pub stopped_before: Option<Gtid>,
}

/// What the fast replay did.
#[derive(Debug, Clone, Serialize)]
pub struct FastReport {
    pub transactions_applied: u64,
    pub last_applied: Option<Gtid>,
    pub stopped_before: Option<Gtid>,
    pub position: GtidPos,
    pub events_sent: u64,
    #[serde(rename = "sent_bytes")]
    pub bytes_sent: u64,
    pub parallel_threads: u64,
    /// The target ran the replay under this temporary server_id (its own equals an archived
    /// event's), restored afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_server_id: Option<u32>,
}

/// The stop rule of a recovery target.
pub fn stop_for(target: Target) -> Stop {
    match target {
        Target::Latest => Stop::End,
        Target::Time(t) => Stop::AtTime(t.unix_timestamp()),
        Target::Gtid(g) => Stop::AtGtid(g),
        Target::BeforeGtid(g) => Stop::BeforeGtid(g),
    }
}

/// The planned pieces as segment indexes.
pub fn planned_pieces(
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
) -> Result<Vec<Vec<SegmentIndex>>> {
    plan.pieces
        .iter()
        .map(|piece| {
            piece
                .iter()
                .map(|seq| {
                    segments
                        .iter()
                        .find(|s| s.seq == *seq)
                        .cloned()
                        .ok_or_else(|| Error::internal(format!("planned segment {seq} vanished")))
                })
                .collect()
        })
        .collect()
}

/// Reads the pieces and returns the position the replay must stop at: every complete
/// transaction not in `start` up to the target. A GTID target the archive does not reach is a
/// `NotRecoverable` error.
pub async fn until_position(
    archive: &Archive,
    pieces: &[Vec<SegmentIndex>],
    start: &GtidPos,
    target: Target,
) -> Result<UntilPosition> {
    let stop = stop_for(target);
    let mut out = UntilPosition {
        position: start.clone(),
        transactions: 0,
        last_applied: None,
        stopped_before: None,
    };
    let mut reason = StopReason::EndOfInput;
    'pieces: for piece in pieces {
        let mut tracker = GroupTracker::default();
        let mut open: Option<Gtid> = None;
        let mut checksum = None;
        for (i, segment) in piece.iter().enumerate() {
            let raw = archive.read_segment(segment).await?;
            let events = match (i, checksum) {
                (0, _) | (_, None) => EventReader::file(&raw)?,
                (_, Some(alg)) => EventReader::events(&raw, alg),
            };
            let mut events = events;
            while let Some(event) = events.next() {
                let event = event.map_err(|e| {
                    e.context(format_args!(
                        "{} (segment {})",
                        segment.source.file, segment.seq
                    ))
                })?;
                checksum = Some(events.checksum_alg());
                match tracker.observe(&event)? {
                    Boundary::Begins(g) => {
                        if start.contains(&g.gtid) {
                            open = None;
                            continue;
                        }
                        if let Some(r) = stop.before(&g.gtid, event.header.timestamp) {
                            reason = r;
                            out.stopped_before = Some(g.gtid);
                            break 'pieces;
                        }
                        open = Some(g.gtid);
                    }
                    Boundary::Ends => {
                        if let Some(g) = open.take() {
                            out.position.advance(g);
                            out.transactions += 1;
                            out.last_applied = Some(g);
                            if stop.completed_by(&g) {
                                reason = StopReason::Target;
                                break 'pieces;
                            }
                        }
                    }
                    Boundary::BeginsAnonymous | Boundary::None => {}
                }
            }
        }
    }
    if let (Target::Gtid(g) | Target::BeforeGtid(g), false) = (target, reason == StopReason::Target)
    {
        return Err(Error::new(
            ErrorKind::NotRecoverable,
            format!(
                "the archive does not reach GTID {g} ({reason:?}): the last transaction before \
                 it is {}",
                out.position
            ),
        ));
    }
    Ok(out)
}

/// Settings of the fast path.
#[derive(Debug, Clone)]
pub struct FastOptions {
    /// `slave_parallel_threads` for the replay (0: the server's own setting).
    pub parallel_threads: u64,
}

/// Checks, without changing anything, that `server` lets this account drive replication
/// (CHANGE MASTER / START SLAVE / SET GLOBAL gtid_slave_pos need SUPER or REPLICATION SLAVE
/// ADMIN granted globally).
pub async fn check_can_replicate(server: &ConnectionConfig) -> Result<()> {
    let mut conn = server.connect().await?;
    let granted = query_one(
        &mut conn,
        "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES \
         WHERE PRIVILEGE_TYPE IN ('SUPER', 'REPLICATION SLAVE ADMIN') \
         AND GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
         SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
    )
    .await?;
    if granted.trim() == "0" {
        return Err(Error::new(
            ErrorKind::Auth,
            format!(
                "--replay fast needs the target account {} to drive replication: grant it \
                 REPLICATION SLAVE ADMIN (or SUPER) on *.*, or use --replay portable",
                server.user
            ),
        ));
    }
    Ok(())
}

/// Replays the plan into `server` through its own replication, from `plan.start` to `until`.
pub async fn replay_fast(
    archive: &Archive,
    server: &ConnectionConfig,
    plan: &RecoveryPlan,
    pieces: Vec<Vec<SegmentIndex>>,
    until: &UntilPosition,
    opts: &FastOptions,
    progress: Arc<dyn Progress>,
) -> Result<FastReport> {
    let mut conn = server.connect().await?;
    let target_id: u32 = query_one(&mut conn, "SELECT @@global.server_id")
        .await?
        .parse()
        .map_err(|_| Error::server("the target reports an unreadable server_id"))?;
    let taken = event_server_ids(&pieces, &plan.start, &until.position);
    let mut rng = rand::thread_rng();
    let mut fresh_id = |avoid: &BTreeSet<u32>| loop {
        let id = rng.gen_range(1_000_000..u32::MAX / 2);
        if !avoid.contains(&id) {
            return id;
        }
    };
    let mut avoid = taken.clone();
    avoid.insert(target_id);
    let primary_id = fresh_id(&avoid);
    avoid.insert(primary_id);
    let temporary_id = taken.contains(&target_id).then(|| fresh_id(&avoid));
    let old_threads: u64 = query_one(&mut conn, "SELECT @@global.slave_parallel_threads")
        .await?
        .parse()
        .unwrap_or(0);

    let mut primary = ReplayPrimary::start(ServePlan {
        archive: archive.clone(),
        pieces,
        server_id: primary_id,
    })
    .await?;
    let mut restore_globals = Vec::new();
    if let Some(id) = temporary_id {
        restore_globals.push(format!("SET GLOBAL server_id = {target_id}"));
        exec(&mut conn, &format!("SET GLOBAL server_id = {id}")).await?;
    }
    if opts.parallel_threads > 0 && opts.parallel_threads != old_threads {
        restore_globals.push(format!("SET GLOBAL slave_parallel_threads = {old_threads}"));
        exec(
            &mut conn,
            &format!(
                "SET GLOBAL slave_parallel_threads = {}",
                opts.parallel_threads
            ),
        )
        .await?;
    }
    progress.phase(
        "replaying (server replication)",
        until.transactions,
        "transactions",
    );
    let result = run_replication(&mut conn, &mut primary, plan, until, &progress).await;
    // Always detach the replication connection and give the target its settings back.
    let mut cleanup = vec![
        format!("STOP SLAVE '{CONNECTION_NAME}'"),
        format!("RESET SLAVE '{CONNECTION_NAME}' ALL"),
    ];
    cleanup.extend(restore_globals);
    let mut cleanup_error = None;
    for sql in &cleanup {
        if let Err(e) = exec(&mut conn, sql).await {
            if !e.message().contains("1617") {
                cleanup_error.get_or_insert(e);
            }
        }
    }
    let stats = primary.stats();
    let events_sent = stats.events_sent.load(std::sync::atomic::Ordering::Relaxed);
    let bytes_sent = stats.bytes_sent.load(std::sync::atomic::Ordering::Relaxed);
    primary.shutdown().await.ok();
    result?;
    if let Some(e) = cleanup_error {
        return Err(e.context("removing the replay's replication connection from the target"));
    }
    Ok(FastReport {
        transactions_applied: until.transactions,
        last_applied: until.last_applied,
        stopped_before: until.stopped_before,
        position: until.position.clone(),
        events_sent,
        bytes_sent,
        parallel_threads: if opts.parallel_threads > 0 {
            opts.parallel_threads
        } else {
            old_threads
        },
        temporary_server_id: temporary_id,
    })
}

async fn run_replication(
    conn: &mut Conn,
    primary: &mut ReplayPrimary,
    plan: &RecoveryPlan,
    until: &UntilPosition,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    exec(
        conn,
        &format!("SET GLOBAL gtid_slave_pos = '{}'", plan.start),
    )
    .await?;
    exec(
        conn,
        &format!(
            "CHANGE MASTER '{CONNECTION_NAME}' TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = '{REPLAY_USER}', MASTER_PASSWORD = '{}', MASTER_USE_GTID = slave_pos, \
             MASTER_SSL = 0, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1",
            primary.port(),
            primary.password()
        ),
    )
    .await?;
    exec(
        conn,
        &format!(
            "START SLAVE '{CONNECTION_NAME}' UNTIL master_gtid_pos = '{}'",
            until.position
        ),
    )
    .await?;
    let mut io_error_since: Option<Instant> = None;
    let mut applied_before = 0u64;
    let mut last_change = (Instant::now(), String::new());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(e) = primary.failure().await {
            return Err(e.context("serving the archive to the target"));
        }
        let status = slave_status(conn).await?;
        let position: GtidPos = query_one(conn, "SELECT @@global.gtid_slave_pos")
            .await?
            .parse()
            .unwrap_or_else(|_| plan.start.clone());
        let applied = applied_since(&plan.start, &position);
        if applied > applied_before {
            progress.advance(applied - applied_before);
            applied_before = applied;
        }
        let marker = format!("{position}|{}", status.gtid_io_pos);
        if marker != last_change.1 {
            last_change = (Instant::now(), marker);
        } else if last_change.0.elapsed() > STALL_LIMIT {
            return Err(Error::new(
                ErrorKind::Server,
                format!(
                    "the target's replication made no progress for {}s (IO: {}, SQL: {}, \
                     received up to {}, applied up to {}, stopping at {})",
                    STALL_LIMIT.as_secs(),
                    status.io_state,
                    status.sql_state,
                    status.gtid_io_pos,
                    position,
                    until.position
                ),
            ));
        }
        if status.sql_errno != 0 {
            let next = next_transaction_after(&position, &until.position);
            return Err(Error::new(
                ErrorKind::Server,
                format!(
                    "the target's replication stopped at {}{}: error {}: {} — the server holds \
                     the base backup plus every transaction up to {}; fix the cause and restore \
                     again, or use --replay portable",
                    if position.is_empty() {
                        "the start".to_string()
                    } else {
                        format!("GTID position {position}")
                    },
                    next.map(|g| format!(" applying transaction {g}"))
                        .unwrap_or_default(),
                    status.sql_errno,
                    status.sql_error,
                    position
                ),
            ));
        }
        if status.sql_running == "No" {
            if position.includes(&until.position) {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::Server,
                format!(
                    "the target's replication stopped at {position} before reaching {} \
                     without an error",
                    until.position
                ),
            ));
        }
        if status.io_errno != 0 {
            let since = *io_error_since.get_or_insert_with(Instant::now);
            if since.elapsed() > IO_ERROR_GRACE || status.io_running == "No" {
                return Err(Error::new(
                    ErrorKind::Server,
                    format!(
                        "the target cannot replicate from holdfast's replay primary: error {}: {}",
                        status.io_errno, status.io_error
                    ),
                ));
            }
        } else {
            io_error_since = None;
        }
    }
}

struct SlaveStatus {
    io_running: String,
    sql_running: String,
    io_errno: u64,
    io_error: String,
    sql_errno: u64,
    sql_error: String,
    gtid_io_pos: String,
    io_state: String,
    sql_state: String,
}

async fn slave_status(conn: &mut Conn) -> Result<SlaveStatus> {
    let row: Option<Row> = conn
        .query_first(format!("SHOW SLAVE '{CONNECTION_NAME}' STATUS"))
        .await
        .map_err(|e| Error::with_source(ErrorKind::Server, "reading SHOW SLAVE STATUS", e))?;
    let row = row.ok_or_else(|| Error::server("the replay's replication connection vanished"))?;
    let text = |name: &str| -> String {
        row.get_opt::<Option<String>, _>(name)
            .and_then(|r| r.ok())
            .flatten()
            .unwrap_or_default()
    };
    Ok(SlaveStatus {
        io_running: text("Slave_IO_Running"),
        sql_running: text("Slave_SQL_Running"),
        io_errno: text("Last_IO_Errno").parse().unwrap_or(0),
        io_error: text("Last_IO_Error"),
        sql_errno: text("Last_SQL_Errno").parse().unwrap_or(0),
        sql_error: text("Last_SQL_Error"),
        gtid_io_pos: text("Gtid_IO_Pos"),
        io_state: text("Slave_IO_State"),
        sql_state: text("Slave_SQL_Running_State"),
    })
}

/// Transactions between `start` and `now` (per domain, by sequence number).
fn applied_since(start: &GtidPos, now: &GtidPos) -> u64 {
    now.gtids()
        .map(|g| g.seq - start.get(g.domain).map_or(0, |s| s.seq.min(g.seq)))
        .sum()
}

/// The transaction after `at` in the first domain that has not reached `until`.
fn next_transaction_after(at: &GtidPos, until: &GtidPos) -> Option<String> {
    until.gtids().find_map(|u| {
        let seq = at.get(u.domain).map_or(0, |g| g.seq);
        (seq < u.seq).then(|| format!("{}-?-{}", u.domain, seq + 1))
    })
}

/// Every server id of the events the replay sends (a replica skips events with its own id).
fn event_server_ids(
    pieces: &[Vec<SegmentIndex>],
    start: &GtidPos,
    until: &GtidPos,
) -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    for s in pieces.iter().flatten() {
        ids.insert(s.source.server_id);
        ids.extend(s.gtid_state.gtids().map(|g| g.server));
        ids.extend(
            s.first_gtid
                .iter()
                .chain(s.last_gtid.iter())
                .filter_map(|g| g.as_maria().map(|g| g.server)),
        );
    }
    ids.extend(start.gtids().chain(until.gtids()).map(|g| g.server));
    ids
}

async fn query_one(conn: &mut Conn, sql: &str) -> Result<String> {
    let value: Option<Option<String>> = conn
        .query_first(sql)
        .await
        .map_err(|e| Error::with_source(ErrorKind::Server, format!("running `{sql}`"), e))?;
    Ok(value.flatten().unwrap_or_default())
}

/// Runs a statement on the target; the message never repeats the statement (it may hold the
/// one-time password).
async fn exec(conn: &mut Conn, sql: &str) -> Result<()> {
    let what = sql.split(" TO ").next().unwrap_or(sql).to_string();
    conn.query_drop(sql).await.map_err(|e| {
        let kind = match &e {
            mysql_async::Error::Server(s) if s.code == 1227 => ErrorKind::Auth,
            _ => ErrorKind::Server,
        };
        let hint = if kind == ErrorKind::Auth {
            " (grant REPLICATION SLAVE ADMIN, or use --replay portable)"
        } else {
            ""
        };
        Error::with_source(kind, format!("`{what}` on the target failed{hint}"), e)
    })
}
