//! `holdfast binlog stream`: archive every binlog event as it arrives, resume exactly where
//! the archive ends after any disconnect or restart, and follow a failover by GTID.
//!
//! Both flavors are archived the same way (see [`client`](super::client) for the dump
//! strategies). MySQL's GTID dump leaves out the transactions the replica already has, so a
//! file may arrive with holes: each hole ends the pending piece and the events after it start
//! a new piece (by GTID, from the archive's state), so that every segment still holds
//! contiguous bytes of its file.
//!
//! Events go into a pending segment; at every flush interval (and at rotation) the pending
//! events up to the last transaction boundary become a segment in the repository. A segment is
//! cut inside a transaction only when the transaction alone exceeds the segment size limit.
//! Then the archive can end inside a transaction when the connection drops or the streamer is
//! killed: the stream resumes at the tail's exact position with the open transaction's state
//! (its GTID and where its group stands) kept across the reconnect, or rebuilt from the
//! segments it spans after a restart ([`SegmentWriter::recover_open_tail`]), so its end
//! completes it: no hole in the GTID state, no transaction archived twice.
//!
//! Only cancellation (SIGINT/SIGTERM) or `until_caught_up` ends a stream. Once it has streamed,
//! every disconnect is retried with backoff for as long as it takes: a clean end of the stream
//! (a server shutting down sends EOF), a lost link, and also errors that can heal (a server
//! restarting with the binlog off, a changed password or grant); see [`failure_policy`]. At
//! start-up the same non-transient errors fail fast.
//!
//! When the server no longer has the binlogs the archive needs (purged while nothing streamed)
//! and it is ahead of the archive on the same history, the stream starts a *new run* after a
//! hole ([`PieceStart::NewRun`]): from the newest backup's consistent point if the server still
//! has it, else from its oldest binlog. The hole is recorded, never bridged.
//!
//! The streamer keeps a heartbeat record, [`StreamStatus`], in the archive (see
//! [`Archive::write_stream_status`]).

use std::time::{Duration, Instant};

use rand::Rng;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::binlog::archive::Archive;
use crate::binlog::client::{
    dead_link_limit, is_missing_history, BinlogClient, DumpRequest, DumpStart, Fed,
    DEAD_LINK_ADVICE,
};
use crate::binlog::compact::CompactPolicy;
use crate::binlog::event::{
    kind, reseal_checksum, Boundary, ChecksumAlg, Event, FormatDescription, GroupTracker, Rotate,
    BINLOG_MAGIC, FLAG_ARTIFICIAL,
};
use crate::binlog::gtid::MariaGtid;
use crate::binlog::gtid::{Gtid, GtidPos};
use crate::manifest::{
    segment_format_for, BackupSummary, FileEntry, PieceStart, SegmentIndex, SegmentSource,
    StreamState, StreamStatus, STREAM_STATUS_FORMAT,
};
use crate::repo::Repository;
use crate::source::conn::ConnectionConfig;
use crate::source::privileges::{self, Role};
use crate::source::server::Flavor;
use crate::source::wire::WireConn;
use crate::{Error, ErrorKind, Result};

/// Name of the lock the single writer of the archive holds.
pub const STREAM_LOCK: &str = "binlog.lock";

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub replica_server_id: u32,
    /// Longest time an event waits before it is in the repository (at a transaction boundary).
    pub flush_interval: Duration,
    /// A pending segment larger than this is written even inside a transaction.
    pub max_segment_bytes: usize,
    pub heartbeat: Duration,
    /// First and longest wait between reconnection attempts (exponential, with jitter).
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Archive what the server has, then stop (instead of waiting for new events).
    pub until_caught_up: bool,
    /// How often the heartbeat record is rewritten while nothing changes.
    pub status_interval: Duration,
    /// Compact the archive in the background (segments older than the policy's threshold,
    /// see [`crate::binlog::compact`]); `None`: never.
    pub compact: Option<CompactPolicy>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            replica_server_id: 0x686f_6c64, // "hold"
            flush_interval: Duration::from_millis(500),
            max_segment_bytes: 16 << 20,
            heartbeat: Duration::from_secs(2),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            until_caught_up: false,
            status_interval: Duration::from_secs(5),
            compact: Some(CompactPolicy::default()),
        }
    }
}

/// What a streaming run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamReport {
    pub segments_written: u64,
    pub events: u64,
    pub transactions: u64,
    #[serde(rename = "archived_bytes")]
    pub bytes: u64,
    pub reconnects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_gtid: Option<Gtid>,
    pub gtid_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<u64>,
}

/// Called as the stream makes progress (for logs, progress lines and metrics).
pub trait StreamObserver: Send + Sync {
    /// The server accepted the dump request; `reconnects` is the number of reconnections
    /// before this connection (0: the first).
    fn connected(&self, _start: &DumpStart, _reconnects: u64) {}
    fn segment(&self, _segment: &SegmentIndex) {}
    /// The stream was lost or refused; the next attempt is in `wait`. `heal` marks an error
    /// that is not a network failure (credentials, grants, binlog off after a restart): it is
    /// retried in case it heals, and needs attention.
    fn retrying(&self, _error: &Error, _wait: Duration, _heal: bool) {}
    /// The archive's resume point is gone from the server: a new run starts after a hole.
    fn new_run(&self, _piece: &PieceStart) {}
    /// The heartbeat record, as just written (every status interval and on each change of
    /// state).
    fn status(&self, _status: &StreamStatus) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl StreamObserver for Quiet {}

/// The debris of a stream that was killed mid-write: data objects numbered after the archive's
/// last index entry (see [`Archive::remove_debris`]). Removed (unless `dry_run`) only when no
/// stream is running: this takes the stream's lock ([`STREAM_LOCK`]; a dead holder's is taken
/// over) and returns `None`, touching nothing, when a live stream holds it (that stream removes
/// its own debris when it next starts). `holdfast cleanup` calls this; a starting stream does
/// the same under the lock it holds for its run.
pub async fn stream_debris(repo: &Repository, dry_run: bool) -> Result<Option<Vec<String>>> {
    let lock = match repo.lock_named(STREAM_LOCK, "cleanup").await {
        Ok(lock) => lock,
        Err(e) if e.kind() == ErrorKind::Locked => return Ok(None),
        Err(e) => return Err(e),
    };
    let found = async {
        let archive = Archive::new(repo.storage().clone());
        let entries = archive.entries().await?;
        let last_seq = entries
            .iter()
            .map(SegmentIndex::last_seq)
            .max()
            .unwrap_or(0);
        let committed = crate::binlog::archive::resolve(entries).live;
        if dry_run {
            archive.debris(&committed, last_seq).await
        } else {
            archive.remove_debris(&committed, last_seq).await
        }
    }
    .await;
    lock.release().await?;
    found.map(Some)
}

/// Streams until `cancel` fires (or, with `until_caught_up`, until the server has sent all it
/// has), then writes what is pending and returns. Failures are retried forever with backoff
/// as [`failure_policy`] decides: at start-up only transient ones, once streaming every
/// disconnect and every error that can heal. History the server no longer has starts a new run
/// (see the module documentation); a server of another history ends the run.
pub async fn run_stream(
    repo: &Repository,
    source: &ConnectionConfig,
    options: &StreamOptions,
    observer: &dyn StreamObserver,
    cancel: CancellationToken,
) -> Result<StreamReport> {
    let limit = dead_link_limit(options.heartbeat);
    let flavor = preflight(source, limit).await?;
    let lock = repo.lock_named(STREAM_LOCK, "binlog stream").await?;
    let archive = Archive::new(repo.storage().clone());
    let entries = archive.entries().await?;
    let last_seq = entries
        .iter()
        .map(SegmentIndex::last_seq)
        .max()
        .unwrap_or(0);
    let committed = crate::binlog::archive::resolve(entries).live;
    let removed = archive.remove_debris(&committed, last_seq).await?;
    if !removed.is_empty() {
        tracing::info!(
            count = removed.len(),
            "removed debris of an interrupted segment write"
        );
    }
    // Compaction runs beside the stream, on segments older than its threshold (never the
    // tail), and stops with it.
    let compacting = CancellationToken::new();
    let compactor = options.compact.clone().map(|policy| {
        let every = (policy.older_than / 2).clamp(Duration::from_secs(1), Duration::from_secs(300));
        tokio::spawn(crate::binlog::compact::run_periodically(
            archive.clone(),
            policy,
            every,
            compacting.clone(),
        ))
    });
    let mut writer = SegmentWriter::new(archive.clone(), committed.last().cloned(), flavor);
    writer.recover_open_tail(&committed).await?;
    // Every index entry of the archive: not needed past start-up, and not to be held for the
    // life of the stream (an archive of months holds a great many).
    drop(committed);
    let mut status = StatusKeeper::new(archive, &repo.config().id, source, options, &writer);
    let mut report = StreamReport::default();
    let mut backoff = options.retry_initial;
    let mut ever_streamed = false;
    let result = loop {
        let written_before = report.segments_written;
        let outcome = match writer.resume_point(repo, source, limit).await {
            Ok(start) => {
                let mut session = Session {
                    writer: &mut writer,
                    repo,
                    source,
                    options,
                    observer,
                    cancel: &cancel,
                    report: &mut report,
                    status: &mut status,
                    ever_streamed: &mut ever_streamed,
                };
                session.stream_once(&start).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Ended::Cancelled) | Ok(Ended::CaughtUp) => break Ok(()),
            Err(e) => {
                let heal = match failure_policy(&e, ever_streamed) {
                    Policy::Fatal => break Err(e),
                    _ if cancel.is_cancelled() => break Ok(()),
                    Policy::Retry => false,
                    Policy::RetryHeal => true,
                };
                // Keep the complete transactions, forget the rest: the resume re-reads it.
                if let Err(e) = writer.flush(false, &mut report, observer).await {
                    break Err(e);
                }
                writer.discard_pending();
                let wait = jitter(backoff);
                report.reconnects += 1;
                status.reconnecting(&e, report.reconnects);
                status.write(&writer, &report, observer).await;
                observer.retrying(&e, wait, heal);
                tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, heal, "binlog stream interrupted; reconnecting");
                // Keep the heartbeat record fresh while waiting: reconnecting, not dead.
                let until = Instant::now() + wait;
                let mut cancelled = false;
                while Instant::now() < until {
                    let nap = (until - Instant::now()).min(options.status_interval);
                    tokio::select! {
                        _ = tokio::time::sleep(nap) => {}
                        _ = cancel.cancelled() => { cancelled = true; break; }
                    }
                    if Instant::now() < until {
                        status.write(&writer, &report, observer).await;
                    }
                }
                if cancelled {
                    break Ok(());
                }
                backoff = (backoff * 2).min(options.retry_max);
            }
        }
        if report.segments_written > written_before {
            backoff = options.retry_initial;
        }
    };
    let flushed = writer.flush(false, &mut report, observer).await;
    writer.discard_pending();
    compacting.cancel();
    if let Some(task) = compactor {
        // It stops between runs: a merge in progress completes.
        let _ = task.await;
    }
    status.stopped(result.as_ref().err().or(flushed.as_ref().err()));
    status.write(&writer, &report, observer).await;
    lock.release().await?;
    result?;
    flushed?;
    report.gtid_state = writer.tail_state().to_string();
    report.last_gtid = writer.last_gtid;
    report.last_segment = writer.next_seq.checked_sub(1).filter(|s| *s > 0);
    Ok(report)
}

enum Ended {
    Cancelled,
    CaughtUp,
}

/// What one connection needs: the writer, where to report, and when to stop.
struct Session<'a> {
    writer: &'a mut SegmentWriter,
    repo: &'a Repository,
    source: &'a ConnectionConfig,
    options: &'a StreamOptions,
    observer: &'a dyn StreamObserver,
    cancel: &'a CancellationToken,
    report: &'a mut StreamReport,
    status: &'a mut StatusKeeper,
    ever_streamed: &'a mut bool,
}

impl Session<'_> {
    /// One connection: open the dump at `start` (or, when the server no longer has that
    /// history, where [`Session::open_after_missing_history`] decides), then archive events
    /// until the connection ends.
    async fn stream_once(&mut self, start: &DumpStart) -> Result<Ended> {
        let request = DumpRequest {
            flavor: self.writer.flavor,
            replica_server_id: self.options.replica_server_id,
            start: start.clone(),
            heartbeat: self.options.heartbeat,
            non_blocking: self.options.until_caught_up,
        };
        let (client, start, piece) = match BinlogClient::open(self.source, &request).await {
            Ok(c) => (c, start.clone(), None),
            Err(e) if is_missing_history(&e) => {
                self.open_after_missing_history(&request, e).await?
            }
            Err(e) => return Err(e),
        };
        self.writer.begin_piece(&start, piece, client.checksum());
        // Events are read by a task of their own: a packet read is not cancel-safe, and the
        // timers below would otherwise cut reads in the middle of a packet.
        let mut events = client.into_feed(self.options.max_segment_bytes.max(1 << 20));
        *self.ever_streamed = true;
        self.observer.connected(&start, self.report.reconnects);
        self.status.streaming();
        self.status
            .write(self.writer, self.report, self.observer)
            .await;
        let options = self.options;
        let mut next_flush = Instant::now() + options.flush_interval;
        let mut next_status = Instant::now() + options.status_interval;
        loop {
            let received = tokio::select! {
                r = events.next() => r?,
                _ = tokio::time::sleep_until(next_flush.min(next_status).into()) => {
                    if Instant::now() >= next_flush {
                        self.flush(false).await?;
                        next_flush = Instant::now() + options.flush_interval;
                    }
                    if Instant::now() >= next_status {
                        self.status.write(self.writer, self.report, self.observer).await;
                        next_status = Instant::now() + options.status_interval;
                    }
                    continue;
                }
                _ = self.cancel.cancelled() => return Ok(Ended::Cancelled),
            };
            match received {
                Fed::End if options.until_caught_up => {
                    self.flush(false).await?;
                    self.status.caught_up(self.writer);
                    return Ok(Ended::CaughtUp);
                }
                Fed::End => {
                    // Only a non-blocking dump ends by itself: a server shutting down (or a
                    // dump thread killed) says "end of data" too. Not a reason to stop.
                    return Err(Error::new(
                        ErrorKind::Connect,
                        format!(
                            "{} ended the binlog stream (shutting down or restarting?)",
                            self.source.endpoint()
                        ),
                    )
                    .transient());
                }
                Fed::Event(raw, _read_ahead) => {
                    let header = crate::binlog::event::EventHeader::parse(&raw)?;
                    if header.type_code == kind::HEARTBEAT {
                        // The server has nothing more to send: once the pending events are in
                        // the repository, the archive is complete as of now.
                        self.flush(false).await?;
                        self.status.caught_up(self.writer);
                        continue;
                    }
                    if header.log_pos != 0 && !header.is_artificial() {
                        self.status.event(header.timestamp);
                    }
                    if self.writer.is_jump(&raw)? {
                        self.flush(true).await?;
                        self.writer.restart_piece_after_jump();
                    }
                    if self.writer.accept(&raw)? == Accepted::EndsFile {
                        self.flush(true).await?;
                    }
                    if self.writer.pending_len() >= options.max_segment_bytes {
                        self.flush(true).await?;
                    }
                    if Instant::now() >= next_flush {
                        self.flush(false).await?;
                        next_flush = Instant::now() + options.flush_interval;
                    }
                    if Instant::now() >= next_status {
                        self.status
                            .write(self.writer, self.report, self.observer)
                            .await;
                        next_status = Instant::now() + options.status_interval;
                    }
                }
            }
        }
    }

    async fn flush(&mut self, all: bool) -> Result<()> {
        self.writer.flush(all, self.report, self.observer).await
    }

    /// The server refused the start point with "not in my binlogs" (error 1236). With nothing
    /// archived: start at its oldest binlog (a gap precedes it, as before the first backup).
    /// With an archive whose GTID resume point the server has gone past (purged): a new run,
    /// from the newest backup's consistent point if the server still has it, else from its
    /// oldest binlog. Anything else (a position start, a server that is not ahead of the
    /// archive on its history) is another history: the error stands.
    async fn open_after_missing_history(
        &mut self,
        request: &DumpRequest,
        missing: Error,
    ) -> Result<(BinlogClient, DumpStart, Option<PieceStart>)> {
        let source = self.source;
        let flavor = self.writer.flavor;
        let limit = dead_link_limit(self.options.heartbeat);
        let Some(tail) = self.writer.tail.clone() else {
            // Nothing archived yet and the server no longer has the history we asked for:
            // start at its oldest binlog, and say there is a gap before it.
            let oldest = oldest_binlog(source, limit).await?;
            tracing::warn!(file = %oldest, "the server no longer has the binlogs from the newest backup's point; archiving from its oldest binlog (a gap precedes it)");
            let start = DumpStart::Position {
                file: oldest,
                pos: 4,
            };
            let client = BinlogClient::open(source, &request.with_start(start.clone())).await?;
            return Ok((client, start, Some(PieceStart::Oldest)));
        };
        if !matches!(request.start, DumpStart::Gtid(_)) {
            return Err(missing);
        }
        let server_state = server_gtid_state(source, flavor, limit).await?;
        if !server_state.includes(&tail.gtid_state) {
            return Err(missing.context(format!(
                "the server's GTID state ({server_state}) does not include the archive's end \
                 ({}): it is not ahead of the archive on the same history (another topology, \
                 or a re-initialised server). Refusing to mix histories; move the archive \
                 aside or point the stream at a server of the same topology",
                tail.gtid_state
            )));
        }
        let after_gap_from = tail.gtid_state.clone();
        // The newest complete backup's consistent point, when it is past the archive's end (a
        // partial backup is no base for what follows the hole).
        if let Some(m) = newest_recovery_base(self.repo).await? {
            if let Ok(from) = m.consistent_point.gtid_set.parse::<GtidPos>() {
                if !from.is_empty() && from.includes(&after_gap_from) {
                    let start = DumpStart::Gtid(from.clone());
                    match BinlogClient::open(source, &request.with_start(start.clone())).await {
                        Ok(client) => {
                            let piece = PieceStart::NewRun {
                                after_gap_from: after_gap_from.clone(),
                                from: Some(from.clone()),
                                reason: format!(
                                    "the server had purged the binlogs after the archive's end \
                                     (GTID {after_gap_from}); resumed at backup {}'s \
                                     consistent point (GTID {from})",
                                    m.id
                                ),
                            };
                            self.announce_new_run(&piece);
                            return Ok((client, start, Some(piece)));
                        }
                        Err(e) if is_missing_history(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // The server's oldest binlog, and the state before it where the server says it.
        let oldest = oldest_binlog(source, limit).await?;
        let (start, from) = match flavor {
            Flavor::MySql => {
                let purged = server_gtid_purged(source, limit).await?;
                (DumpStart::Gtid(purged.clone()), Some(purged))
            }
            Flavor::MariaDb => (
                DumpStart::Position {
                    file: oldest.clone(),
                    pos: 4,
                },
                binlog_start_state(source, &oldest, limit)
                    .await
                    .ok()
                    .flatten(),
            ),
        };
        let client = BinlogClient::open(source, &request.with_start(start.clone())).await?;
        let piece = PieceStart::NewRun {
            after_gap_from: after_gap_from.clone(),
            from,
            reason: format!(
                "the server had purged the binlogs after the archive's end (GTID \
                 {after_gap_from}), and no backup past that end has a point the server still \
                 has; resumed at its oldest binlog {oldest}"
            ),
        };
        self.announce_new_run(&piece);
        Ok((client, start, Some(piece)))
    }

    fn announce_new_run(&self, piece: &PieceStart) {
        if let PieceStart::NewRun { reason, .. } = piece {
            tracing::info!(%reason, "starting a new run of the binlog archive after a hole");
        }
        self.observer.new_run(piece);
    }
}

impl DumpRequest {
    fn with_start(&self, start: DumpStart) -> DumpRequest {
        DumpRequest {
            start,
            ..self.clone()
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Retry with backoff: a lost link, a clean end of the stream, a refused connection.
    Retry,
    /// Retry with backoff, and say it needs attention: not a network failure, but one that
    /// can heal once the stream has run (a restart in progress, a changed password or grant,
    /// the binlog turned off and on again).
    RetryHeal,
    /// End the stream with this error.
    Fatal,
}

/// Decides how a failure is handled (see [`Policy`]). `ever_streamed`: the server accepted a
/// dump request since the start; before that, only transient failures are retried, so a wrong
/// password, a missing grant or a binlog that is off fail fast with their exit codes.
/// History the server does not have (error 1236 left standing) or does not share is fatal
/// always, as are the repository's own failures and integrity errors.
fn failure_policy(error: &Error, ever_streamed: bool) -> Policy {
    if is_missing_history(error) || is_history_conflict(error) {
        return Policy::Fatal;
    }
    if error.is_transient() {
        return Policy::Retry;
    }
    match error.kind() {
        ErrorKind::Connect | ErrorKind::Auth | ErrorKind::Server if ever_streamed => {
            Policy::RetryHeal
        }
        _ => Policy::Fatal,
    }
}

/// The error [`SegmentWriter::open_piece`] raises when the server's file is not the archived one.
fn is_history_conflict(error: &Error) -> bool {
    error.kind() == ErrorKind::Server && error.message().contains("Refusing to mix histories")
}

/// Checks the server can be archived before taking any lock: binlog on, a row-based format
/// (statement-based is archived, with a warning), on MySQL GTIDs on. Returns the flavor.
async fn preflight(source: &ConnectionConfig, limit: Duration) -> Result<Flavor> {
    let mut conn = connect(source, limit).await?;
    let rows = conn
        .query_text("SELECT @@log_bin, @@binlog_format, @@version")
        .await?;
    let row = rows.first().cloned().unwrap_or_default();
    let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    if get(0) != "1" {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "{} has the binary log off (log_bin=0): there is nothing to archive. Start it \
                 with --log-bin (and --binlog-format=ROW, a server_id and, for failover, GTIDs)",
                source.endpoint()
            ),
        ));
    }
    let flavor = Flavor::from_version(&get(2));
    privileges::check_wire(&mut conn, flavor, &get(2), Role::BinlogStream).await?;
    if flavor == Flavor::MySql {
        let rows = conn
            .query_text("SELECT @@gtid_mode, @@enforce_gtid_consistency")
            .await?;
        let row = rows.first().cloned().unwrap_or_default();
        let mode = row.first().cloned().flatten().unwrap_or_default();
        if !mode.eq_ignore_ascii_case("ON") {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "{} runs MySQL {} with gtid_mode={mode}: holdfast archives and recovers \
                     MySQL by GTID. Set gtid_mode=ON and enforce_gtid_consistency=ON (in the \
                     server's configuration, or online step by step: \
                     enforce_gtid_consistency=ON, gtid_mode=OFF_PERMISSIVE, ON_PERMISSIVE, ON)",
                    source.endpoint(),
                    get(2)
                ),
            ));
        }
    }
    if get(1) != "ROW" {
        tracing::warn!(
            binlog_format = %get(1),
            "binlog_format is not ROW: statement-based events replay only as well as the \
             statements are deterministic; set binlog_format=ROW for exact point-in-time recovery"
        );
    }
    Ok(flavor)
}

async fn oldest_binlog(source: &ConnectionConfig, limit: Duration) -> Result<String> {
    let mut conn = connect(source, limit).await?;
    let rows = conn.query_text("SHOW BINARY LOGS").await?;
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .ok_or_else(|| Error::server(format!("{} lists no binary logs", source.endpoint())))
}

/// The server's GTID state: every transaction it has executed (MariaDB: `gtid_binlog_pos`, the
/// last of each domain; MySQL: `gtid_executed`).
async fn server_gtid_state(
    source: &ConnectionConfig,
    flavor: Flavor,
    limit: Duration,
) -> Result<GtidPos> {
    let sql = match flavor {
        Flavor::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
        Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
    };
    let mut conn = connect(source, limit).await?;
    let rows = conn.query_text(sql).await?;
    let text = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    text.parse()
}

/// MySQL: the transactions no longer in the server's binlogs (`gtid_purged`).
async fn server_gtid_purged(source: &ConnectionConfig, limit: Duration) -> Result<GtidPos> {
    let mut conn = connect(source, limit).await?;
    let rows = conn.query_text("SELECT @@GLOBAL.gtid_purged").await?;
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default()
        .parse()
}

/// MariaDB: the GTID state before `file`, from its GTID list event (`None` when the file
/// has none).
async fn binlog_start_state(
    source: &ConnectionConfig,
    file: &str,
    limit: Duration,
) -> Result<Option<GtidPos>> {
    let mut conn = connect(source, limit).await?;
    let rows = conn
        .query_text(&format!(
            "SHOW BINLOG EVENTS IN '{}' LIMIT 4",
            file.replace('\\', "\\\\").replace('\'', "\\'")
        ))
        .await?;
    for row in rows {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        if get(2).eq_ignore_ascii_case("Gtid_list") {
            let info = get(5);
            let list = info.trim().trim_start_matches('[').trim_end_matches(']');
            let mut gtids = Vec::new();
            for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                gtids.push(Gtid::MariaDb(part.parse::<MariaGtid>()?));
            }
            return Ok(Some(GtidPos::from_gtids(gtids)));
        }
    }
    Ok(None)
}

async fn server_has_file(source: &ConnectionConfig, file: &str, limit: Duration) -> Result<bool> {
    let mut conn = connect(source, limit).await?;
    let rows = conn.query_text("SHOW BINARY LOGS").await?;
    Ok(rows
        .iter()
        .any(|r| r.first().cloned().flatten().as_deref() == Some(file)))
}

async fn server_id(source: &ConnectionConfig, limit: Duration) -> Result<u32> {
    let mut conn = connect(source, limit).await?;
    let rows = conn.query_text("SELECT @@server_id").await?;
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::server("cannot read @@server_id"))
}

/// A connection for the stream's own queries (before and between dumps): a server that answers
/// nothing for the dead-link limit fails the query, as a silent dump does, instead of holding
/// the stream forever.
async fn connect(source: &ConnectionConfig, limit: Duration) -> Result<WireConn> {
    let mut conn = WireConn::connect(source).await?;
    conn.set_silence_limit(Some(limit), DEAD_LINK_ADVICE);
    Ok(conn)
}

fn jitter(d: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    d.mul_f64(factor)
}

/// Keeps the heartbeat record ([`StreamStatus`]) and writes it to the archive.
struct StatusKeeper {
    archive: Archive,
    status: StreamStatus,
    /// Timestamp of the newest event received (not yet necessarily archived).
    last_received: Option<u32>,
    /// A heartbeat came after the newest event, with nothing left to write.
    idle: bool,
}

impl StatusKeeper {
    fn new(
        archive: Archive,
        repository_id: &str,
        source: &ConnectionConfig,
        options: &StreamOptions,
        writer: &SegmentWriter,
    ) -> StatusKeeper {
        let now = OffsetDateTime::now_utc();
        StatusKeeper {
            archive,
            status: StreamStatus {
                format: STREAM_STATUS_FORMAT,
                written: now,
                interval_seconds: options.status_interval.as_secs().max(1),
                host: crate::repo::lock::hostname(),
                pid: std::process::id(),
                holdfast_version: env!("CARGO_PKG_VERSION").to_string(),
                started: now,
                state: StreamState::Reconnecting,
                source: source.endpoint(),
                source_server_id: writer.tail.as_ref().map(|t| t.source.server_id),
                last_seq: None,
                last_event_time: None,
                gtid_state: String::new(),
                caught_up_as_of: None,
                lag_seconds: None,
                segments_written: 0,
                reconnects: 0,
                last_error: None,
                repository_id: Some(repository_id.to_string()),
            },
            last_received: None,
            idle: false,
        }
    }

    fn streaming(&mut self) {
        self.status.state = StreamState::Streaming;
        self.status.last_error = None;
    }

    fn reconnecting(&mut self, error: &Error, reconnects: u64) {
        self.status.state = StreamState::Reconnecting;
        self.status.last_error = Some(error.to_string());
        self.status.reconnects = reconnects;
    }

    fn stopped(&mut self, error: Option<&Error>) {
        self.status.state = StreamState::Stopped;
        self.status.last_error = error.map(|e| e.to_string());
    }

    /// An event stamped `timestamp` arrived.
    fn event(&mut self, timestamp: u32) {
        if timestamp != 0 {
            self.last_received = Some(timestamp);
        }
        self.idle = false;
    }

    /// The server has nothing more to send; complete as of now if nothing is left to write.
    fn caught_up(&mut self, writer: &SegmentWriter) {
        if writer.pending_len() == 0 {
            self.status.caught_up_as_of = Some(OffsetDateTime::now_utc());
            self.idle = true;
        }
    }

    /// Fills in the archive's side and writes the record. A failed write is logged, not fatal:
    /// the segments are what matter, and the next write may succeed.
    async fn write(
        &mut self,
        writer: &SegmentWriter,
        report: &StreamReport,
        observer: &dyn StreamObserver,
    ) {
        let now = OffsetDateTime::now_utc();
        let st = &mut self.status;
        st.written = now;
        if let Some(tail) = &writer.tail {
            st.last_seq = Some(tail.seq);
            st.source_server_id = Some(tail.source.server_id);
            st.gtid_state = tail.gtid_state.to_string();
            st.last_event_time = (tail.last_event_time != 0)
                .then(|| OffsetDateTime::from_unix_timestamp(i64::from(tail.last_event_time)).ok())
                .flatten();
        }
        if let Some(s) = &writer.source {
            st.source_server_id = Some(s.server_id);
        }
        st.lag_seconds = if self.idle {
            Some(0)
        } else {
            self.last_received
                .map(|t| (now.unix_timestamp() - i64::from(t)).max(0) as u64)
        };
        st.segments_written = report.segments_written;
        st.reconnects = report.reconnects;
        if let Err(e) = self.archive.write_stream_status(&self.status).await {
            tracing::warn!(error = %e, "cannot write the stream status record");
        }
        observer.status(&self.status);
    }
}

/// Where the archive ends: the point the next event must continue from.
#[derive(Debug, Clone)]
struct Tail {
    seq: u64,
    source: SegmentSource,
    end_pos: u64,
    ends_file: bool,
    gtid_state: GtidPos,
    last_event_time: u32,
}

impl Tail {
    fn of(segment: &SegmentIndex) -> Tail {
        Tail {
            seq: segment.seq,
            source: segment.source.clone(),
            end_pos: segment.end_pos,
            ends_file: segment.ends_file,
            gtid_state: segment.gtid_state.clone(),
            last_event_time: segment.last_event_time,
        }
    }
}

/// The transaction the archive's tail ends inside: where its group stands and its GTID
/// (`None` for MySQL's anonymous groups).
#[derive(Debug, Clone)]
struct OpenTail {
    tracker: GroupTracker,
    gtid: Option<Gtid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepted {
    Stored,
    Skipped,
    EndsFile,
}

/// Per-event bookkeeping of the pending buffer.
#[derive(Debug, Clone)]
struct EventMark {
    end: usize,
    timestamp: u32,
    log_pos: u32,
    begins: Option<Gtid>,
    ends_group: bool,
    ends_file: bool,
    /// The pending bytes up to here end at a transaction boundary.
    boundary: bool,
}

/// Room the pending buffer keeps after a flush, in bytes and in marks: a flush interval of a
/// busy server (5 MB/s of binlog, 500 ms) fits without a reallocation.
const PENDING_FLOOR_BYTES: usize = 4 << 20;
const PENDING_FLOOR_MARKS: usize = 1 << 15;

/// The capacity a pending buffer shrinks to after a flush took `flushed` items out and `left`
/// remain, or `None` to keep it. A catch-up, or a transaction larger than a segment, grows
/// the buffer to twice the segment limit (32 MiB by default); without this it would keep that
/// high-water mark for the life of the process. A buffer keeps room for what the last flush
/// needed (at least `floor`) and twice that before it shrinks, so a steady load never
/// reallocates.
fn capacity_after_flush(
    capacity: usize,
    flushed: usize,
    left: usize,
    floor: usize,
) -> Option<usize> {
    let need = floor.max(flushed).max(left);
    (capacity > 2 * need).then_some(need)
}

fn shrink_after_flush<T>(buffer: &mut Vec<T>, flushed: usize, floor: usize) {
    if let Some(to) = capacity_after_flush(buffer.capacity(), flushed, buffer.len(), floor) {
        buffer.shrink_to(to);
    }
}

/// Turns received events into segments: tracks the current file, transaction boundaries and
/// GTID state, and writes segments to the archive.
struct SegmentWriter {
    archive: Archive,
    flavor: Flavor,
    /// Where the next event of the current file must start (to notice holes in a MySQL GTID
    /// dump).
    expect_pos: Option<u64>,
    tail: Option<Tail>,
    next_seq: u64,
    /// The file the server is sending (from the last rotate).
    current_file: Option<String>,
    /// The current file's instance and format description, once seen.
    source: Option<SegmentSource>,
    fde: Option<Vec<u8>>,
    checksum: ChecksumAlg,
    /// How the next piece starts, until its header is written.
    piece_start: Option<PieceStart>,
    /// The next stored event must start a new piece (with a header).
    need_header: bool,
    tracker: GroupTracker,
    /// GTID state including groups completed in `pending`.
    state: GtidPos,
    pending: Vec<u8>,
    marks: Vec<EventMark>,
    pending_header: bool,
    pending_start: u64,
    open_group: Option<Gtid>,
    /// A group that began in an already written segment and has not ended yet.
    carry_open: Option<Gtid>,
    /// The archive's tail ends inside this group: restored when the stream resumes at the
    /// tail's exact position, so the group's end completes it.
    tail_group: Option<OpenTail>,
    /// The last stored event ended its file: the next file's piece starts by rotation.
    rotated: bool,
    /// The GTID state the first segment builds on, before anything is archived (MySQL: the
    /// set the stream started from).
    floor: GtidPos,
    last_gtid: Option<Gtid>,
}

impl SegmentWriter {
    fn new(archive: Archive, last: Option<SegmentIndex>, flavor: Flavor) -> SegmentWriter {
        let next_seq = last.as_ref().map_or(1, |s| s.last_seq() + 1);
        let state = last
            .as_ref()
            .map(|s| s.gtid_state.clone())
            .unwrap_or_default();
        SegmentWriter {
            archive,
            flavor,
            expect_pos: None,
            tail: last.as_ref().map(Tail::of),
            next_seq,
            current_file: None,
            source: None,
            fde: None,
            checksum: ChecksumAlg::Off,
            piece_start: None,
            need_header: true,
            tracker: GroupTracker::default(),
            state,
            pending: Vec::new(),
            marks: Vec::new(),
            pending_header: false,
            pending_start: 0,
            open_group: None,
            carry_open: None,
            tail_group: None,
            rotated: false,
            floor: GtidPos::new(),
            last_gtid: last.and_then(|s| s.last_gtid),
        }
    }

    fn restore_open_tail(&mut self, open: OpenTail) {
        self.tracker = open.tracker;
        self.open_group = open.gtid;
        self.carry_open = open.gtid;
    }

    /// At start-up, when the archive ends inside a transaction (the streamer was stopped or
    /// killed while a transaction larger than a segment was being archived): rebuilds where
    /// that transaction's group stands, and its GTID, from the segments it spans, so the rest
    /// of it, streamed from the tail's position, completes it. The segments are read back
    /// (verified) from the first one the transaction begins in.
    async fn recover_open_tail(&mut self, committed: &[SegmentIndex]) -> Result<()> {
        let Some(last) = committed.last().filter(|s| s.open_transaction) else {
            return Ok(());
        };
        // Back to the segment the transaction begins in: a piece's first segment starts with
        // whole transactions, and so does a segment after one that ends at a boundary.
        let mut first = committed.len() - 1;
        while first > 0
            && !committed[first].header
            && committed[first - 1].open_transaction
            && committed[first - 1].source == last.source
        {
            first -= 1;
        }
        let mut tracker = GroupTracker::default();
        let mut gtid = None;
        for index in &committed[first..] {
            let bytes = self.archive.read_segment(index).await?;
            let mut at = if index.header { BINLOG_MAGIC.len() } else { 0 };
            while at < bytes.len() {
                let header = crate::binlog::event::EventHeader::parse(&bytes[at..])
                    .map_err(|e| e.context(index.describe()))?;
                let end = at + header.event_size as usize;
                let raw = bytes.get(at..end).ok_or_else(|| {
                    Error::integrity(format!("{} ends inside an event", index.describe()))
                })?;
                let event =
                    Event::parse(raw, index.checksum).map_err(|e| e.context(index.describe()))?;
                match tracker.observe(&event)? {
                    Boundary::Begins(g) => gtid = Some(g.gtid),
                    Boundary::BeginsAnonymous | Boundary::Ends => gtid = None,
                    Boundary::None => {}
                }
                at = end;
            }
        }
        if tracker.in_group() {
            let open = OpenTail { tracker, gtid };
            self.tail_group = Some(open.clone());
            self.restore_open_tail(open);
        }
        Ok(())
    }

    fn tail_state(&self) -> &GtidPos {
        &self.state
    }

    fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Decides where to ask the server to start: the exact file position when it is the same
    /// server and still has the file, else by GTID from the archive's end (or, for an empty
    /// archive, from the newest complete backup's consistent point).
    async fn resume_point(
        &self,
        repo: &Repository,
        source: &ConnectionConfig,
        limit: Duration,
    ) -> Result<DumpStart> {
        match &self.tail {
            Some(tail) => {
                if !tail.ends_file
                    && server_id(source, limit).await? == tail.source.server_id
                    && server_has_file(source, &tail.source.file, limit).await?
                {
                    return Ok(DumpStart::Position {
                        file: tail.source.file.clone(),
                        pos: tail.end_pos,
                    });
                }
                Ok(DumpStart::Gtid(tail.gtid_state.clone()))
            }
            None => {
                // A partial backup is never a recovery base: start where a complete one is.
                let from = match newest_recovery_base(repo).await? {
                    Some(m) => m
                        .consistent_point
                        .gtid_set
                        .parse::<GtidPos>()
                        .map_err(|e| {
                            Error::integrity(format!(
                                "backup {} records an unreadable GTID position: {e}",
                                m.id
                            ))
                        })?,
                    None => GtidPos::new(),
                };
                Ok(DumpStart::Gtid(from))
            }
        }
    }

    /// True when `raw` does not start where the previous event of its file ended: the server
    /// left transactions out (MySQL's GTID dump skips those the replica has).
    fn is_jump(&self, raw: &[u8]) -> Result<bool> {
        if self.flavor != Flavor::MySql || self.need_header {
            return Ok(false);
        }
        let h = crate::binlog::event::EventHeader::parse(raw)?;
        if h.log_pos == 0
            || h.is_artificial()
            || matches!(
                h.type_code,
                kind::FORMAT_DESCRIPTION | kind::HEARTBEAT | kind::ROTATE
            )
        {
            return Ok(false);
        }
        let start = u64::from(h.log_pos).saturating_sub(u64::from(h.event_size));
        Ok(self.expect_pos.is_some_and(|p| p != start))
    }

    /// After a hole (and a flush of everything before it): the next event opens a new piece,
    /// continuous by GTID with the archive's state.
    fn restart_piece_after_jump(&mut self) {
        self.need_header = true;
        self.piece_start = Some(PieceStart::Gtid {
            from: self.state.clone(),
        });
    }

    /// A new connection starts a new piece unless it continues the tail exactly. `piece` says
    /// how, when the start is not the plain resume point (the oldest binlog, a new run).
    fn begin_piece(&mut self, start: &DumpStart, piece: Option<PieceStart>, checksum: ChecksumAlg) {
        self.expect_pos = None;
        if let Some(PieceStart::NewRun {
            from: Some(from), ..
        }) = &piece
        {
            // Everything up to the new run's start is behind the archive from here on (the
            // hole included): the state of the run's segments says so, for both flavors.
            self.state.union(from);
            if let Some(tail) = self.tail.as_mut() {
                tail.gtid_state.union(from);
            }
        }
        if let (Flavor::MySql, DumpStart::Gtid(from)) = (self.flavor, start) {
            // A MySQL set names every transaction before the point: the archive's state from
            // here on includes them (MariaDB positions are per domain and already cumulative).
            self.state.union(from);
            if let Some(tail) = self.tail.as_mut() {
                tail.gtid_state.union(from);
            } else {
                self.floor.union(from);
            }
        }
        self.checksum = checksum;
        self.rotated = false;
        // Resuming at the tail's exact position continues a transaction the tail ends inside;
        // any other start begins with whole transactions.
        let at_tail = matches!((start, &self.tail), (DumpStart::Position { file, pos }, Some(t))
            if *file == t.source.file && *pos == t.end_pos && !t.ends_file);
        match self.tail_group.clone().filter(|_| at_tail) {
            Some(open) => self.restore_open_tail(open),
            None => {
                self.tracker.reset();
                self.open_group = None;
                self.carry_open = None;
            }
        }
        self.current_file = None;
        self.source = None;
        self.fde = None;
        self.need_header = true;
        self.piece_start = Some(match (piece, start) {
            (Some(piece), _) => piece,
            (None, DumpStart::Position { .. }) => PieceStart::Position,
            (None, DumpStart::Gtid(from)) => PieceStart::Gtid { from: from.clone() },
        });
    }

    fn accept(&mut self, raw: &[u8]) -> Result<Accepted> {
        let event = Event::parse(raw, self.checksum)?;
        let h = event.header;
        match h.type_code {
            kind::HEARTBEAT => return Ok(Accepted::Skipped),
            kind::ROTATE if h.log_pos == 0 || h.is_artificial() => {
                let rotate = Rotate::parse(&event)?;
                if self.current_file.as_deref() != Some(rotate.next_file.as_str()) {
                    self.current_file = Some(rotate.next_file);
                    self.source = None;
                }
                return Ok(Accepted::Skipped);
            }
            kind::FORMAT_DESCRIPTION => return self.accept_fde(&event),
            _ if h.log_pos == 0 => return Ok(Accepted::Skipped), // other artificial events
            _ => {}
        }
        if self.source.is_none() {
            return Err(Error::integrity(format!(
                "the server sent event type {} before the file's format description",
                h.type_code
            )));
        }
        if self.need_header
            && self.tracker.in_group()
            && !self.continues_tail(u64::from(h.log_pos).saturating_sub(raw.len() as u64))
        {
            // The tail's open transaction will not continue here (the server moved on to its
            // next file, as after a crash that cut the transaction off): forget it.
            self.tracker.reset();
            self.open_group = None;
            self.carry_open = None;
        }
        let boundary = self.tracker.observe(&event)?;
        let mut begins = None;
        let mut ends_group = false;
        match boundary {
            Boundary::Begins(g) => {
                begins = Some(g.gtid);
                self.open_group = Some(g.gtid);
            }
            Boundary::BeginsAnonymous => {
                self.open_group = None;
            }
            Boundary::Ends => {
                ends_group = true;
                if let Some(g) = self.open_group.take() {
                    self.state.advance(g);
                    self.last_gtid = Some(g);
                }
            }
            Boundary::None => {}
        }
        let ends_file = matches!(h.type_code, kind::ROTATE | kind::STOP);
        if ends_file {
            let rotate_next = (h.type_code == kind::ROTATE)
                .then(|| Rotate::parse(&event))
                .transpose()?;
            if let Some(r) = rotate_next {
                self.current_file = Some(r.next_file);
            }
        }
        self.push_event(raw, h.timestamp, h.log_pos, begins, ends_group, ends_file)?;
        if ends_file {
            // The next file starts with its own format description at offset 4; the pending
            // piece is written (with its own start) before that arrives.
            self.rotated = true;
            return Ok(Accepted::EndsFile);
        }
        Ok(Accepted::Stored)
    }

    fn accept_fde(&mut self, event: &Event<'_>) -> Result<Accepted> {
        let fde = FormatDescription::parse(event)?;
        self.checksum = fde.checksum;
        self.expect_pos = None;
        let file = self.current_file.clone().ok_or_else(|| {
            Error::integrity("the server sent a format description before naming the file")
        })?;
        if std::mem::take(&mut self.rotated)
            && !matches!(self.piece_start, Some(PieceStart::NewRun { .. }))
        {
            self.piece_start = Some(PieceStart::Rotation);
        }
        // Resumed at the archive's end and the server moved on to its next file (the previous
        // one ended without a rotate event, as after a crash): the stream is continuous.
        if self.piece_start == Some(PieceStart::Position)
            && self.tail.as_ref().is_some_and(|t| t.source.file != file)
        {
            self.piece_start = Some(PieceStart::Rotation);
        }
        self.source = Some(SegmentSource {
            server_id: event.header.server_id,
            server_version: fde.server_version,
            file,
            file_created: event.header.timestamp,
        });
        // Keep the event as it stands in the file: a re-sent copy has position 0 and the
        // artificial flag, the original ends at 4 + its length.
        let mut raw = event.raw().to_vec();
        let end = (BINLOG_MAGIC.len() + raw.len()) as u32;
        let flags = event.header.flags & !FLAG_ARTIFICIAL;
        if event.header.log_pos != end || flags != event.header.flags {
            raw[13..17].copy_from_slice(&end.to_le_bytes());
            raw[17..19].copy_from_slice(&flags.to_le_bytes());
            if fde.checksum == ChecksumAlg::Crc32 {
                reseal_checksum(&mut raw);
            }
        }
        self.fde = Some(raw);
        self.need_header = true;
        Ok(Accepted::Skipped)
    }

    /// True when an event at `event_start` of the current file continues the archive's tail
    /// exactly (same file instance, right after its last event, not a new run).
    fn continues_tail(&self, event_start: u64) -> bool {
        let new_run = matches!(self.piece_start, Some(PieceStart::NewRun { .. }));
        !new_run
            && self.tail.as_ref().is_some_and(|t| {
                self.source.as_ref() == Some(&t.source) && !t.ends_file && t.end_pos == event_start
            })
    }

    /// Decides, at the first event after a format description, whether the events continue
    /// the archive's tail or start a new piece (whose data then starts with a header).
    fn open_piece(&mut self, event_start: u64) -> Result<()> {
        self.need_header = false;
        let source = self.source.clone().expect("checked by accept");
        let fde = self.fde.clone().expect("set with source");
        let continues_tail = self.continues_tail(event_start);
        if continues_tail && self.pending.is_empty() {
            self.piece_start = None;
            return Ok(());
        }
        if self.piece_start == Some(PieceStart::Position) {
            return Err(Error::new(
                ErrorKind::Server,
                format!(
                    "the server's {} at position {event_start} is not the archived file (it was \
                     created at another time: the server was re-initialised or its binlogs \
                     reset). Refusing to mix histories; move the archive aside or point the \
                     stream at a server of the same topology",
                    source.file
                ),
            ));
        }
        if !self.pending.is_empty() {
            return Err(Error::internal(
                "a new binlog piece starts while events of the previous one are pending",
            ));
        }
        self.pending_header = true;
        self.pending.extend_from_slice(&BINLOG_MAGIC);
        self.pending.extend_from_slice(&fde);
        // Right after the format description: the file from its start; else a piece that
        // starts mid-file, named by its first event's position.
        self.pending_start = if event_start == (BINLOG_MAGIC.len() + fde.len()) as u64 {
            0
        } else {
            event_start
        };
        self.marks.push(EventMark {
            end: self.pending.len(),
            timestamp: 0,
            log_pos: 0,
            begins: None,
            ends_group: false,
            ends_file: false,
            boundary: true,
        });
        Ok(())
    }

    fn push_event(
        &mut self,
        raw: &[u8],
        timestamp: u32,
        log_pos: u32,
        begins: Option<Gtid>,
        ends_group: bool,
        ends_file: bool,
    ) -> Result<()> {
        let event_start = (log_pos as u64).saturating_sub(raw.len() as u64);
        if self.need_header {
            self.open_piece(event_start)?;
        }
        if log_pos != 0 {
            self.expect_pos = Some(u64::from(log_pos));
        }
        if self.pending.is_empty() {
            self.pending_header = false;
            self.pending_start = event_start;
        }
        self.pending.extend_from_slice(raw);
        self.marks.push(EventMark {
            end: self.pending.len(),
            timestamp,
            log_pos,
            begins,
            ends_group,
            ends_file,
            boundary: !self.tracker.in_group(),
        });
        Ok(())
    }

    /// Drops pending events that were not written (after a lost connection they are re-read).
    fn discard_pending(&mut self) {
        self.pending.clear();
        self.marks.clear();
        match self.tail_group.clone() {
            Some(open) => self.restore_open_tail(open),
            None => {
                self.tracker.reset();
                self.open_group = None;
                self.carry_open = None;
            }
        }
        self.state = self
            .tail
            .as_ref()
            .map(|t| t.gtid_state.clone())
            .unwrap_or_else(|| self.floor.clone());
    }

    /// Writes pending events as a segment: everything when `all` (even inside a transaction),
    /// else up to the last transaction boundary.
    async fn flush(
        &mut self,
        all: bool,
        report: &mut StreamReport,
        observer: &dyn StreamObserver,
    ) -> Result<()> {
        let cut = if all {
            self.marks.len()
        } else {
            match self.marks.iter().rposition(|m| m.boundary) {
                Some(i) => i + 1,
                None => return Ok(()),
            }
        };
        if cut == 0 {
            return Ok(());
        }
        let marks: Vec<EventMark> = self.marks.drain(..cut).collect();
        let len = marks.last().expect("cut > 0").end;
        let bytes: Vec<u8> = self.pending.drain(..len).collect();
        for m in &mut self.marks {
            m.end -= len;
        }
        shrink_after_flush(&mut self.pending, len, PENDING_FLOOR_BYTES);
        shrink_after_flush(&mut self.marks, cut, PENDING_FLOOR_MARKS);
        let last = marks.last().expect("cut > 0");
        let open_transaction = !last.boundary;
        let source = self
            .source
            .clone()
            .or_else(|| self.tail.as_ref().map(|t| t.source.clone()))
            .ok_or_else(|| Error::internal("flushing events of an unknown file"))?;
        // The GTID state after these events: groups ending in them.
        let mut gtid_state = self
            .tail
            .as_ref()
            .map(|t| t.gtid_state.clone())
            .unwrap_or_else(|| self.floor.clone());
        let mut transactions = 0;
        let mut first_gtid = None;
        let mut last_gtid = None;
        let mut open: Option<Gtid> = None;
        for m in &marks {
            if let Some(g) = m.begins {
                first_gtid.get_or_insert(g);
                open = Some(g);
            }
            if m.ends_group {
                transactions += 1;
                if let Some(g) = open.take().or(self.carry_open) {
                    gtid_state.advance(g);
                    last_gtid = Some(g);
                }
                self.carry_open = None;
            }
        }
        // A transaction still open at the end continues in the next segment.
        self.carry_open = open.or(if open_transaction {
            self.carry_open
        } else {
            None
        });
        let header = self.pending_header;
        let real: Vec<&EventMark> = marks.iter().filter(|m| m.log_pos != 0).collect();
        let piece_start = if header {
            self.piece_start.take()
        } else {
            None
        };
        let index = SegmentIndex {
            format: segment_format_for(
                &gtid_state,
                first_gtid.as_ref(),
                last_gtid.as_ref(),
                piece_start.as_ref(),
            ),
            seq: self.next_seq,
            source: source.clone(),
            start_pos: self.pending_start,
            end_pos: last.log_pos as u64,
            header,
            piece_start,
            checksum: self.checksum,
            events: marks.len() as u64,
            transactions,
            first_event_time: real.first().map_or(0, |m| m.timestamp),
            last_event_time: real.last().map_or(0, |m| m.timestamp),
            first_gtid,
            last_gtid,
            gtid_state: gtid_state.clone(),
            open_transaction,
            ends_file: last.ends_file,
            raw_size: 0,
            object: FileEntry {
                path: String::new(),
                size: 0,
                sha256: String::new(),
            },
            archived: OffsetDateTime::now_utc(),
            merged_to: None,
            replaced_object: None,
        };
        let written = self.archive.write_segment(index, &bytes).await?;
        self.next_seq += 1;
        report.segments_written += 1;
        report.events += written.events;
        report.transactions += written.transactions;
        report.bytes += written.raw_size;
        self.tail = Some(Tail::of(&written));
        // Cut inside a transaction (only ever with `all`, so nothing is left pending): the
        // state of its group at the cut is the tail's.
        self.tail_group = open_transaction.then(|| OpenTail {
            tracker: self.tracker.clone(),
            gtid: self.carry_open,
        });
        // The rest of the pending buffer continues right after this segment.
        self.pending_header = false;
        self.pending_start = written.end_pos;
        observer.segment(&written);
        Ok(())
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn failures_retry_or_end_the_stream_by_class_and_by_whether_it_has_run() {
        let lost = Error::new(ErrorKind::Connect, "connection lost").transient();
        let refused_now = Error::new(ErrorKind::Connect, "refused");
        let auth = Error::new(ErrorKind::Auth, "access denied (error 1045)");
        let restarting = Error::server("server error 1053: shutdown in progress");
        let purged = Error::server("cannot send the requested binlog: … (error 1236)");
        let conflict = Error::server("… Refusing to mix histories; move the archive aside");
        let storage = Error::new(ErrorKind::Storage, "disk full");
        let flaky_storage = Error::new(ErrorKind::Storage, "timeout").transient();
        let corrupt = Error::integrity("bad checksum");
        let usage = Error::usage("MariaDB position to a MySQL server");
        let cases: &[(&Error, Policy, Policy)] = &[
            // (error, before the first dump was accepted, once streaming)
            (&lost, Policy::Retry, Policy::Retry),
            (&flaky_storage, Policy::Retry, Policy::Retry),
            (&refused_now, Policy::Fatal, Policy::RetryHeal),
            (&auth, Policy::Fatal, Policy::RetryHeal),
            (&restarting, Policy::Fatal, Policy::RetryHeal),
            (&purged, Policy::Fatal, Policy::Fatal),
            (&conflict, Policy::Fatal, Policy::Fatal),
            (&storage, Policy::Fatal, Policy::Fatal),
            (&corrupt, Policy::Fatal, Policy::Fatal),
            (&usage, Policy::Fatal, Policy::Fatal),
        ];
        for (error, at_start, streaming) in cases {
            assert_eq!(failure_policy(error, false), *at_start, "{error} at start");
            assert_eq!(
                failure_policy(error, true),
                *streaming,
                "{error} once streaming"
            );
        }
    }
}

#[cfg(test)]
mod memory_tests {
    use std::sync::Arc;

    use super::*;
    use crate::binlog::event::{CHECKSUM_LEN, HEADER_LEN};
    use crate::storage::OpendalStorage;

    #[test]
    fn a_buffer_gives_back_its_high_water_mark_and_a_steady_load_keeps_its_room() {
        const MIB: usize = 1 << 20;
        let floor = 4 * MIB;
        let cases: &[(&str, usize, usize, usize, Option<usize>)] = &[
            // (case, capacity, flushed, left, shrinks to)
            ("after a catch-up", 32 * MIB, 2 * MIB, 0, Some(floor)),
            ("the catch-up itself", 32 * MIB, 16 * MIB, MIB, None),
            ("a steady load under the floor", 4 * MIB, 3 * MIB, 0, None),
            ("twice the floor", 8 * MIB, MIB, 0, None),
            ("a steady load above the floor", 16 * MIB, 9 * MIB, 0, None),
            (
                "a large remainder is kept",
                32 * MIB,
                MIB,
                15 * MIB,
                Some(15 * MIB),
            ),
            ("empty", 0, 0, 0, None),
        ];
        for &(case, capacity, flushed, left, want) in cases {
            assert_eq!(
                capacity_after_flush(capacity, flushed, left, floor),
                want,
                "{case}"
            );
        }
    }

    /// A MariaDB event with a CRC32 trailer.
    fn event(type_code: u8, body: &[u8], log_pos: u32, flags: u16) -> Vec<u8> {
        let size = (HEADER_LEN + body.len() + CHECKSUM_LEN) as u32;
        let mut raw = Vec::with_capacity(size as usize);
        raw.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        raw.push(type_code);
        raw.extend_from_slice(&1u32.to_le_bytes());
        raw.extend_from_slice(&size.to_le_bytes());
        raw.extend_from_slice(&log_pos.to_le_bytes());
        raw.extend_from_slice(&flags.to_le_bytes());
        raw.extend_from_slice(body);
        raw.extend_from_slice(&[0; CHECKSUM_LEN]);
        reseal_checksum(&mut raw);
        raw
    }

    /// Feeds transactions of `rows` bytes of row events through the writer as a session does
    /// (a segment at the size limit, inside a transaction if need be).
    struct Feed {
        pos: u32,
        seq: u64,
    }

    impl Feed {
        fn start(writer: &mut SegmentWriter) -> Feed {
            let mut rotate = 4u64.to_le_bytes().to_vec();
            rotate.extend_from_slice(b"mysql-bin.000001");
            let rotate = event(kind::ROTATE, &rotate, 0, FLAG_ARTIFICIAL);
            assert_eq!(writer.accept(&rotate).unwrap(), Accepted::Skipped);
            let mut fde = 4u16.to_le_bytes().to_vec();
            let mut version = b"10.11.6-MariaDB".to_vec();
            version.resize(50, 0);
            fde.extend_from_slice(&version);
            fde.extend_from_slice(&0u32.to_le_bytes());
            fde.push(HEADER_LEN as u8);
            fde.push(1); // checksum algorithm: CRC32
            let size = (HEADER_LEN + fde.len() + CHECKSUM_LEN) as u32;
            let fde = event(kind::FORMAT_DESCRIPTION, &fde, 4 + size, 0);
            assert_eq!(writer.accept(&fde).unwrap(), Accepted::Skipped);
            Feed {
                pos: 4 + size,
                seq: 0,
            }
        }

        fn next(&mut self, type_code: u8, body: &[u8]) -> Vec<u8> {
            self.pos += (HEADER_LEN + body.len() + CHECKSUM_LEN) as u32;
            event(type_code, body, self.pos, 0)
        }

        async fn transaction(&mut self, writer: &mut SegmentWriter, rows: usize, limit: usize) {
            self.seq += 1;
            let mut gtid = self.seq.to_le_bytes().to_vec();
            gtid.extend_from_slice(&0u32.to_le_bytes());
            gtid.push(0);
            let mut events = vec![self.next(kind::GTID, &gtid)];
            for _ in 0..rows.div_ceil(8192) {
                events.push(self.next(kind::WRITE_ROWS, &[7; 8192]));
            }
            events.push(self.next(kind::XID, &self.seq.to_le_bytes()));
            for raw in events {
                assert_eq!(writer.accept(&raw).unwrap(), Accepted::Stored);
                if writer.pending_len() >= limit {
                    writer
                        .flush(true, &mut StreamReport::default(), &Quiet)
                        .await
                        .unwrap();
                }
            }
        }
    }

    #[tokio::test]
    async fn the_pending_buffer_does_not_keep_a_catch_ups_size() {
        let dir = tempfile::tempdir().unwrap();
        let storage = OpendalStorage::local(dir.path().to_str().unwrap()).unwrap();
        let archive = Archive::new(Arc::new(storage));
        let mut writer = SegmentWriter::new(archive, None, Flavor::MariaDb);
        writer.begin_piece(&DumpStart::Gtid(GtidPos::new()), None, ChecksumAlg::Crc32);
        let limit = StreamOptions::default().max_segment_bytes;
        let mut feed = Feed::start(&mut writer);
        let mut report = StreamReport::default();
        // A catch-up: 40 MiB at once, in segments of the size limit.
        for _ in 0..160 {
            feed.transaction(&mut writer, 256 << 10, limit).await;
        }
        writer.flush(false, &mut report, &Quiet).await.unwrap();
        // Then a steady load: a small segment per flush interval, for many segments.
        for _ in 0..200 {
            feed.transaction(&mut writer, 16 << 10, limit).await;
            writer.flush(false, &mut report, &Quiet).await.unwrap();
            assert!(
                writer.pending.capacity() <= 2 * PENDING_FLOOR_BYTES,
                "pending keeps {} bytes of room",
                writer.pending.capacity()
            );
            assert!(
                writer.marks.capacity() <= 2 * PENDING_FLOOR_MARKS,
                "pending keeps room for {} marks",
                writer.marks.capacity()
            );
        }
        assert_eq!(writer.tail_state().to_string(), "0-1-360");
    }
}

/// The newest complete backup, as its manifest describes it: where the archive must start for
/// that backup to be a recovery base. The summaries choose it (a partial backup is never a
/// base); its point comes from its manifest, which a recovery will use, so a damaged or stale
/// summary cannot move the stream's start past transactions the recovery needs. A backup whose
/// manifest says partial after all is passed over.
async fn newest_recovery_base(repo: &Repository) -> Result<Option<BackupSummary>> {
    for listed in repo.list_summaries().await?.into_iter().rev() {
        if listed.is_partial() {
            continue;
        }
        let derived = repo.derive_summary(&listed.id).await?;
        if derived.consistent_point != listed.consistent_point {
            tracing::warn!(
                backup = listed.id,
                summary = listed.consistent_point.gtid_set,
                manifest = derived.consistent_point.gtid_set,
                "the backup's summary and manifest disagree on its point: starting at the \
                 manifest's (`holdfast verify` reports the summary)"
            );
        }
        if !derived.is_partial() {
            return Ok(Some(derived));
        }
    }
    Ok(None)
}
