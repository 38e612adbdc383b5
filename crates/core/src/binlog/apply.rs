//! The portable replay path: MariaDB binlog events applied to a target server over a plain SQL
//! connection, like `mariadb-binlog FILES | mariadb` but in-process, streaming, and stopping
//! exactly at a transaction boundary.
//!
//! - [`Applier`] holds the connection. It is created with the position already in the target
//!   (transactions at or below it are skipped) and a [`Stop`] condition, fed the binlog files in
//!   order with [`Applier::apply`], and closed with [`Applier::finish`], which returns the
//!   [`ApplyReport`].
//! - Row events (TABLE_MAP + WRITE/UPDATE/DELETE_ROWS, compressed ones uncompressed first) go
//!   to the server as `BINLOG '<base64>'` statements after the file's FORMAT_DESCRIPTION;
//!   QUERY events go with their session context (see [`query_status`](super::query_status)),
//!   INTVAR/RAND/USER_VAR as the `SET`s they stand for; XID becomes `COMMIT`.
//! - Every transaction keeps its GTID: on MariaDB `gtid_domain_id`, `server_id` and
//!   `gtid_seq_no` are set before it, so a target with its binlog on ends with the source's
//!   GTID state; on MySQL `gtid_next='uuid:gno'` (recorded in the target's `gtid_executed`
//!   even with `sql_log_bin=0`), and `gtid_next=AUTOMATIC` again at the end. A MySQL
//!   transaction's `BEGIN` is its own QUERY event (its GTID event does not say whether a
//!   transaction or a lone DDL follows).
//! - One transaction is normally one round trip: its statements go as one multi-statement
//!   batch ending with its `BINLOG` statement, and its `COMMIT` opens the next transaction's
//!   batch (a large transaction goes in batches of at most `max_batch_bytes`).
//!
//! Contracts: a transaction is applied whole or not at all (as far as the target's engines
//! are transactional); the applier never applies a transaction past the stop condition; an
//! incomplete transaction at the end of the input is rolled back and reported, not applied;
//! bad bytes are an [`ErrorKind::Integrity`] error naming the input and offset, and a server
//! error names the GTID and offset of the transaction it refused; after such an error the
//! open transaction is rolled back and the applier refuses further input (start a new one from
//! the target's position). The applier is not idempotent on its own: feeding the same file
//! twice applies it twice unless the start position says it is already there. Call
//! [`Applier::finish`]: the last transaction's `COMMIT` may still wait in the batch.

use std::collections::HashMap;

use base64::Engine as _;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;
use tokio::io::AsyncRead;

use crate::binlog::compressed::{self, EventLayout};
use crate::binlog::event::{gtid_flags, kind, Boundary, Event, GroupTracker, GtidEvent, Query};
use crate::binlog::event_stream::EventStream;
use crate::binlog::gtid::{Gtid, GtidPos};
use crate::binlog::query_status::{CollationNames, QueryStatus, SessionContext};
use crate::binlog::statement_vars;
use crate::source::server::Flavor;
use crate::{Error, ErrorKind, Result};

/// Default upper bound of one batch sent to the server (further capped by the target's
/// `max_allowed_packet`).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 << 20;

/// Header flag of QUERY events that do not depend on the default database.
const LOG_EVENT_SUPPRESS_USE_F: u16 = 0x8;
/// Rows-event flag: the last event of a statement.
const STMT_END_F: u16 = 1;

/// Where the replay stops. Transactions are judged by their GTID event: its timestamp is the
/// commit time (the start of the statement that committed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Stop {
    /// Apply everything given.
    End,
    /// Apply every transaction up to the first one committed after this time (Unix seconds):
    /// a transaction committed at `T` itself is applied.
    AtTime(i64),
    /// Apply up to and including this GTID.
    AtGtid(Gtid),
    /// Apply up to, not including, this GTID.
    BeforeGtid(Gtid),
}

impl Stop {
    /// The stop reason if the transaction `gtid`, committed at `timestamp`, must not be applied
    /// (shared by both replay paths so they stop at the same transaction).
    pub fn before(&self, gtid: &Gtid, timestamp: u32) -> Option<StopReason> {
        match *self {
            Stop::End => None,
            Stop::AtTime(t) => (i64::from(timestamp) > t).then_some(StopReason::Target),
            Stop::BeforeGtid(target) if gtid.lane() == target.lane() => {
                if gtid.number() == target.number() {
                    Some(StopReason::Target)
                } else if gtid.number() > target.number() {
                    Some(StopReason::TargetMissing)
                } else {
                    None
                }
            }
            Stop::AtGtid(target)
                if gtid.lane() == target.lane() && gtid.number() > target.number() =>
            {
                Some(StopReason::TargetMissing)
            }
            _ => None,
        }
    }

    /// True when applying `gtid` completes the target (the inclusive GTID target).
    pub fn completed_by(&self, gtid: &Gtid) -> bool {
        matches!(*self, Stop::AtGtid(t) if t.lane() == gtid.lane() && t.number() == gtid.number())
    }
}

/// Why the replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The input ran out (the stop condition, if any, was not reached).
    EndOfInput,
    /// The stop condition was reached exactly.
    Target,
    /// A GTID target never came: a later transaction of its domain did, and was not applied.
    TargetMissing,
}

/// A transaction the input began but did not finish (a cut archive); it was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incomplete {
    pub gtid: Gtid,
    pub input: String,
    pub offset: u64,
}

/// Unix seconds as an RFC 3339 string (the JSON outputs' one time format).
fn unix_as_rfc3339<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    let text = t
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    match text {
        Some(text) => s.serialize_str(&text),
        None => s.serialize_none(),
    }
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyReport {
    pub transactions_applied: u64,
    /// Transactions at or below the start position (already in the target).
    pub transactions_skipped: u64,
    pub events: u64,
    #[serde(rename = "applied_bytes")]
    pub bytes: u64,
    pub last_applied: Option<Gtid>,
    /// Commit time (Unix seconds) of the last applied transaction; RFC 3339 in JSON.
    #[serde(serialize_with = "unix_as_rfc3339")]
    pub last_applied_time: Option<i64>,
    /// The start position advanced by every applied transaction: the target's position now.
    pub position: GtidPos,
    pub stop: Stop,
    pub stop_reason: StopReason,
    /// The first transaction left out because of the stop condition.
    pub stopped_before: Option<Gtid>,
    pub incomplete: Option<Incomplete>,
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Transactions at or below this position are already in the target and are skipped.
    pub start: GtidPos,
    pub stop: Stop,
    /// Upper bound of one batch of statements (bytes); capped by the target's
    /// `max_allowed_packet`.
    pub max_batch_bytes: usize,
}

impl ApplyOptions {
    pub fn new(start: GtidPos, stop: Stop) -> ApplyOptions {
        ApplyOptions {
            start,
            stop,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

/// Collation ids of the target, for user variables and `character_set_collations`.
struct Collations(HashMap<u16, (String, String)>);

impl CollationNames for Collations {
    fn collation(&self, id: u16) -> Option<(&str, &str)> {
        self.0.get(&id).map(|(cs, c)| (cs.as_str(), c.as_str()))
    }
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Group {
    gtid: Gtid,
    timestamp: u32,
    skip: bool,
    input: String,
    offset: u64,
    /// Statements of this group already went to the server.
    sent: bool,
}

/// Statements waiting to go to the server in one multi-statement round trip.
#[derive(Default)]
struct Batch {
    sql: Vec<u8>,
    /// Base64 of row events for the open `BINLOG '…'` statement.
    rows: String,
    /// Raw TABLE_MAP events of the statement in progress (repeated when a batch boundary
    /// splits a statement's row events).
    stmt_table_maps: Vec<Vec<u8>>,
    /// A format description the session has not seen yet: it opens the next `BINLOG`.
    fde: Option<Vec<u8>>,
    /// How much of `sql` ends transactions already read whole (their `COMMIT`, deferred so it
    /// travels with the next transaction's statements in one round trip).
    committed: usize,
}

impl Batch {
    /// Appends a statement; the caller has sent any open `BINLOG` first (see
    /// [`Applier::push`]).
    fn push(&mut self, stmt: &[u8]) {
        debug_assert!(self.rows.is_empty());
        if !self.sql.is_empty() {
            self.sql.extend_from_slice(b";\n");
        }
        self.sql.extend_from_slice(stmt);
    }

    /// Adds an event to the open `BINLOG` statement (the format description goes there too).
    fn push_rows_event(&mut self, raw: &[u8]) {
        if self.rows.is_empty() {
            if let Some(fde) = self.fde.take() {
                base64::engine::general_purpose::STANDARD.encode_string(fde, &mut self.rows);
                self.rows.push('\n');
            }
            for map in &self.stmt_table_maps {
                base64::engine::general_purpose::STANDARD.encode_string(map, &mut self.rows);
                self.rows.push('\n');
            }
        }
        base64::engine::general_purpose::STANDARD.encode_string(raw, &mut self.rows);
        self.rows.push('\n');
    }

    fn close_rows(&mut self) {
        if self.rows.is_empty() {
            return;
        }
        if !self.sql.is_empty() {
            self.sql.extend_from_slice(b";\n");
        }
        self.sql.extend_from_slice(b"BINLOG '\n");
        self.sql.extend_from_slice(self.rows.as_bytes());
        self.sql.push(b'\'');
        self.rows.clear();
    }

    fn len(&self) -> usize {
        self.sql.len() + self.rows.len()
    }

    fn is_empty(&self) -> bool {
        self.sql.is_empty() && self.rows.is_empty()
    }

    fn take(&mut self) -> Vec<u8> {
        self.close_rows();
        self.committed = 0;
        std::mem::take(&mut self.sql)
    }

    /// The statements of completed transactions; everything after them is dropped.
    fn take_committed(&mut self) -> Vec<u8> {
        let mut sql = std::mem::take(&mut self.sql);
        sql.truncate(self.committed);
        self.clear();
        sql
    }

    fn clear(&mut self) {
        self.sql.clear();
        self.rows.clear();
        self.stmt_table_maps.clear();
        self.fde = None;
        self.committed = 0;
    }
}

/// Replays binlog events into a target server; see the module documentation.
pub struct Applier {
    conn: Conn,
    opts: ApplyOptions,
    max_batch: usize,
    collations: Collations,
    session: SessionContext,
    /// The format description last given to the session (raw bytes).
    sent_fde: Option<Vec<u8>>,
    layout: Option<EventLayout>,
    tracker: GroupTracker,
    group: Option<Group>,
    batch: Batch,
    /// `(gtid_domain_id, server_id)` last set on the session.
    gtid_session: Option<(u32, u32)>,
    /// The target's flavor (MySQL takes `gtid_next`, MariaDB `gtid_seq_no`).
    flavor: Flavor,
    /// The transaction whose final statements wait in the batch.
    deferred: Option<Gtid>,
    stopped: bool,
    /// An error ended the replay; the session state is unknown.
    failed: bool,
    report: ApplyReport,
}

impl Applier {
    /// Prepares `conn` (a session on the target, with the privileges to run `BINLOG` and set
    /// `gtid_seq_no`, e.g. SUPER or BINLOG REPLAY + ...) for replay.
    pub async fn new(mut conn: Conn, opts: ApplyOptions) -> Result<Applier> {
        let row: Option<(u64, String)> = conn
            .query_first("SELECT @@max_allowed_packet, @@version")
            .await
            .map_err(|e| map_mysql(e, "reading the target's max_allowed_packet"))?;
        let (max_packet, version) = row.unwrap_or((16 << 20, String::new()));
        let max_packet = max_packet as usize;
        let flavor = Flavor::from_version(&version);
        // Leave room for the statement around the data and the packet header.
        let max_batch = opts
            .max_batch_bytes
            .min(max_packet.saturating_sub(4096))
            .max(4096);
        // Typed as options: MariaDB lists collation templates without an id.
        let rows: Vec<(Option<u32>, Option<String>, Option<String>)> = conn
            .query(
                "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS \
                 WHERE ID IS NOT NULL",
            )
            .await
            .map_err(|e| map_mysql(e, "reading the target's collations"))?;
        let collations = Collations(
            rows.into_iter()
                .filter_map(|(id, cs, c)| Some((u16::try_from(id?).ok()?, (cs?, c?))))
                .collect(),
        );
        // As mariadb-binlog's output begins: behave like a replica applying events.
        conn.query_drop("SET @@session.pseudo_slave_mode=1, @@session.completion_type=0")
            .await
            .map_err(|e| map_mysql(e, "preparing the replay session"))?;
        let report = ApplyReport {
            transactions_applied: 0,
            transactions_skipped: 0,
            events: 0,
            bytes: 0,
            last_applied: None,
            last_applied_time: None,
            position: opts.start.clone(),
            stop: opts.stop,
            stop_reason: StopReason::EndOfInput,
            stopped_before: None,
            incomplete: None,
        };
        Ok(Applier {
            conn,
            opts,
            max_batch,
            collations,
            session: SessionContext::for_flavor(flavor),
            sent_fde: None,
            layout: None,
            tracker: GroupTracker::default(),
            group: None,
            batch: Batch::default(),
            gtid_session: None,
            flavor,
            deferred: None,
            stopped: false,
            failed: false,
            report,
        })
    }

    /// True once the stop condition was reached: further input is ignored.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The report so far.
    pub fn report(&self) -> &ApplyReport {
        &self.report
    }

    /// Replays one binlog file, or a piece of one starting with the magic bytes and its
    /// FORMAT_DESCRIPTION; inputs must come in binlog order. A transaction may continue into
    /// the next input. Returns `false` once the stop condition is reached (the rest of this
    /// input was not read). `name` names the input in errors and the report.
    pub async fn apply<R: AsyncRead + Unpin>(&mut self, name: &str, reader: R) -> Result<bool> {
        if self.failed {
            return Err(Error::internal(
                "the applier failed earlier; start a new one from the target's position",
            ));
        }
        if self.stopped {
            return Ok(false);
        }
        let mut stream = EventStream::open(name, reader).await?;
        loop {
            let next = match stream.next().await {
                Ok(next) => next,
                Err(e) => {
                    self.abandon_group().await;
                    return Err(e);
                }
            };
            let Some((offset, event)) = next else {
                if self.group.is_none() {
                    let at = Position {
                        input: name,
                        offset: 0,
                    };
                    self.flush(&at).await?;
                }
                return Ok(true);
            };
            self.report.events += 1;
            self.report.bytes += event.raw().len() as u64;
            let at = Position {
                input: name,
                offset,
            };
            if let Err(e) = self.event(&event, &at).await {
                self.abandon_group().await;
                return Err(e);
            }
            if self.stopped {
                return Ok(false);
            }
        }
    }

    /// Ends the replay: an unfinished transaction is rolled back and reported as incomplete,
    /// the session's GTID variables are reset. Returns the report and the connection.
    pub async fn finish(mut self) -> Result<(ApplyReport, Conn)> {
        let committed = self.batch.take_committed();
        let group = self.group.take();
        if !committed.is_empty() {
            let at = Position {
                input: "the end of the input",
                offset: 0,
            };
            self.send(committed, &at, 0).await?;
        }
        if let Some(group) = group {
            if !group.skip {
                self.report.incomplete = Some(Incomplete {
                    gtid: group.gtid,
                    input: group.input.clone(),
                    offset: group.offset,
                });
            }
            if group.sent {
                self.conn
                    .query_drop("ROLLBACK")
                    .await
                    .map_err(|e| map_mysql(e, "rolling back the incomplete transaction"))?;
            }
        }
        let reset = match self.flavor {
            Flavor::MariaDb => {
                "SET @@session.server_id=@@global.server_id, \
                 @@session.gtid_domain_id=@@global.gtid_domain_id, \
                 @@session.pseudo_slave_mode=0, TIMESTAMP=DEFAULT"
            }
            Flavor::MySql => {
                "SET @@session.gtid_next=AUTOMATIC, @@session.pseudo_slave_mode=0, \
                 TIMESTAMP=DEFAULT"
            }
        };
        self.conn
            .query_drop(reset)
            .await
            .map_err(|e| map_mysql(e, "resetting the replay session"))?;
        Ok((self.report, self.conn))
    }

    async fn event(&mut self, event: &Event<'_>, at: &Position<'_>) -> Result<()> {
        let code = event.header.type_code;
        let boundary = self.tracker.observe(event).map_err(|e| e.context(at))?;
        if let Boundary::Begins(gtid) = boundary {
            return self.begin_group(event, &gtid, at).await;
        }
        if boundary == Boundary::BeginsAnonymous {
            return Err(Error::new(
                ErrorKind::NotRecoverable,
                format!(
                    "{at}: a transaction without a GTID (written while the source's gtid_mode \
                     was not ON): holdfast replays MySQL binlogs by GTID; recover to a point \
                     before it, or take a base backup after gtid_mode=ON"
                ),
            ));
        }
        let skipping = self.group.as_ref().is_some_and(|g| g.skip);
        match code {
            kind::FORMAT_DESCRIPTION => {
                self.layout =
                    Some(EventLayout::from_format_description(event).map_err(|e| e.context(at))?);
                if self.sent_fde.as_deref() != Some(event.raw()) {
                    self.batch.fde = Some(event.raw().to_vec());
                    self.sent_fde = Some(event.raw().to_vec());
                }
            }
            _ if skipping => {}
            kind::QUERY | kind::QUERY_COMPRESSED => self.query(event, at).await?,
            kind::TABLE_MAP => {
                self.batch.push_rows_event(event.raw());
                self.batch.stmt_table_maps.push(event.raw().to_vec());
            }
            kind::WRITE_ROWS_V1
            | kind::UPDATE_ROWS_V1
            | kind::DELETE_ROWS_V1
            | kind::WRITE_ROWS
            | kind::UPDATE_ROWS
            | kind::DELETE_ROWS => self.rows(event.raw(), at).await?,
            c if compressed::is_compressed_rows(c) => {
                let plain = compressed::decompress_event(event, self.layout(at)?)
                    .map_err(|e| e.context(at))?;
                self.rows(&plain, at).await?;
            }
            kind::INTVAR => {
                let stmt =
                    statement_vars::intvar_statement(event.body()).map_err(|e| e.context(at))?;
                self.push(&stmt, at).await?;
            }
            kind::RAND => {
                let stmt =
                    statement_vars::rand_statement(event.body()).map_err(|e| e.context(at))?;
                self.push(&stmt, at).await?;
            }
            kind::USER_VAR => {
                let stmt = statement_vars::user_var_statement(event.body(), &self.collations)
                    .map_err(|e| e.context(at))?;
                self.push(&stmt, at).await?;
            }
            kind::XID => {
                self.push(b"COMMIT", at).await?;
            }
            kind::XA_PREPARE => {
                return Err(self.unsupported("an XA PREPARE", at));
            }
            kind::INCIDENT => {
                return Err(Error::integrity(format!(
                    "{at}: the binlog records an incident (the source lost events here); a \
                     replay past it cannot be trusted: stop before it (--to-time or \
                     --before-gtid) and take a new base backup"
                )));
            }
            kind::START_ENCRYPTION => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "{at}: the binlog is encrypted (encrypt_binlog=ON); the portable replay \
                         reads only unencrypted binlogs"
                    ),
                ));
            }
            // ROTATE, GTID_LIST, BINLOG_CHECKPOINT, STOP, HEARTBEAT, ANNOTATE_ROWS (the
            // statement text of row events, informational) and ignorable events.
            _ => {}
        }
        if boundary == Boundary::Ends {
            self.end_group(at).await?;
        } else if self.batch.len() >= self.max_batch {
            self.flush(at).await?;
        }
        Ok(())
    }

    fn layout(&self, at: &Position<'_>) -> Result<&EventLayout> {
        self.layout.as_ref().ok_or_else(|| {
            Error::integrity(format!(
                "{at}: an event comes before the format description"
            ))
        })
    }

    fn unsupported(&self, what: &str, at: &Position<'_>) -> Error {
        let gtid = self
            .group
            .as_ref()
            .map(|g| format!(" (GTID {})", g.gtid))
            .unwrap_or_default();
        Error::new(
            ErrorKind::Usage,
            format!(
                "{at}{gtid}: {what} transaction cannot be replayed over SQL; replay this range \
                 with the server's own replication instead"
            ),
        )
    }

    async fn begin_group(
        &mut self,
        event: &Event<'_>,
        gtid: &GtidEvent,
        at: &Position<'_>,
    ) -> Result<()> {
        if self.group.is_some() {
            return Err(Error::integrity(format!(
                "{at}: GTID {} begins while transaction {} is still open: the binlog is \
                 corrupt or pieces are missing",
                gtid.gtid,
                self.group
                    .as_ref()
                    .map(|g| g.gtid.to_string())
                    .unwrap_or_default()
            )));
        }
        let timestamp = event.header.timestamp;
        if let Some(reason) = self.opts.stop.before(&gtid.gtid, timestamp) {
            self.flush(at).await?;
            self.stopped = true;
            self.report.stop_reason = reason;
            self.report.stopped_before = Some(gtid.gtid);
            self.tracker.reset();
            return Ok(());
        }
        let skip = self.opts.start.contains(&gtid.gtid);
        self.group = Some(Group {
            gtid: gtid.gtid,
            timestamp,
            skip,
            input: at.input.to_string(),
            offset: at.offset,
            sent: false,
        });
        if skip {
            return Ok(());
        }
        if gtid.flags & (gtid_flags::PREPARED_XA | gtid_flags::COMPLETED_XA) != 0 {
            return Err(self.unsupported("an XA", at));
        }
        let g = match (gtid.gtid, self.flavor) {
            (Gtid::MariaDb(g), Flavor::MariaDb) => g,
            (Gtid::MySql(g), Flavor::MySql) => {
                // Its BEGIN comes as a QUERY event; a DDL commits on its own.
                return self
                    .push(
                        format!("SET @@session.gtid_next='{g}', TIMESTAMP={timestamp}").as_bytes(),
                        at,
                    )
                    .await;
            }
            (other, flavor) => {
                return Err(Error::usage(format!(
                    "{at}: GTID {other} cannot be replayed into a {flavor:?} server: replay a \
                     binlog into a server of the flavor that wrote it"
                )));
            }
        };
        if self.gtid_session != Some((g.domain, g.server)) {
            self.push(
                format!(
                    "SET @@session.gtid_domain_id={}, @@session.server_id={}",
                    g.domain, g.server
                )
                .as_bytes(),
                at,
            )
            .await?;
            self.gtid_session = Some((g.domain, g.server));
        }
        self.push(
            format!("SET @@session.gtid_seq_no={}, TIMESTAMP={timestamp}", g.seq).as_bytes(),
            at,
        )
        .await?;
        if !gtid.is_standalone() {
            self.push(b"BEGIN", at).await?;
        }
        Ok(())
    }

    async fn end_group(&mut self, at: &Position<'_>) -> Result<()> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        if group.skip {
            self.report.transactions_skipped += 1;
        } else {
            // Its last statements (normally just COMMIT) wait for the next transaction's, to
            // share its round trip; a stop, the end of the input or finish() sends them.
            if self.batch.rows.is_empty() {
                self.batch.committed = self.batch.sql.len();
                self.deferred = Some(group.gtid);
            } else {
                self.group = Some(group.clone());
                self.flush(at).await?;
                self.group = None;
            }
            self.report.transactions_applied += 1;
            self.report.last_applied = Some(group.gtid);
            self.report.last_applied_time = Some(i64::from(group.timestamp));
            self.report.position.advance(group.gtid);
        }
        self.batch.stmt_table_maps.clear();
        if let Stop::AtGtid(target) = self.opts.stop {
            if group.gtid.lane() == target.lane() && group.gtid.number() == target.number() {
                self.flush(at).await?;
                self.stopped = true;
                self.report.stop_reason = StopReason::Target;
            }
        }
        Ok(())
    }

    async fn query(&mut self, event: &Event<'_>, at: &Position<'_>) -> Result<()> {
        let plain;
        let event = if event.header.type_code == kind::QUERY_COMPRESSED {
            plain =
                compressed::decompress_event(event, self.layout(at)?).map_err(|e| e.context(at))?;
            Event::parse(&plain, event.checksum_alg()).map_err(|e| e.context(at))?
        } else {
            *event
        };
        let query = Query::parse(&event).map_err(|e| e.context(at))?;
        if query.is_begin() && self.group.is_some() {
            // MariaDB: the GTID event already began the transaction.
            if self.flavor == Flavor::MySql {
                self.push(b"BEGIN", at).await?;
            }
            return Ok(());
        }
        if self.flavor == Flavor::MySql && query.is_xa_start() {
            return Err(self.unsupported("an XA", at));
        }
        if self.group.is_some()
            && query.ends_transaction()
            && query.sql.eq_ignore_ascii_case(b"COMMIT")
        {
            self.push(b"COMMIT", at).await?;
            return Ok(());
        }
        let status = QueryStatus::parse(query.status_vars).map_err(|e| e.context(at))?;
        let mut stmts = Vec::new();
        self.session.thread_id(query.thread_id, &mut stmts);
        self.session
            .statements_for(&status, &self.collations, &mut stmts)
            .map_err(|e| e.context(at))?;
        if event.header.flags & LOG_EVENT_SUPPRESS_USE_F == 0 {
            // Always re-select: a statement may have dropped the session's database.
            self.session.forget_database();
            self.session.use_database(query.db, &mut stmts);
        }
        let mut ts = format!("SET TIMESTAMP={}", event.header.timestamp);
        if let Some(us) = status.microseconds.filter(|&us| us < 1_000_000) {
            ts.push_str(&format!(".{us:06}"));
        }
        stmts.push(ts.into_bytes());
        for stmt in &stmts {
            self.push(stmt, at).await?;
        }
        // The statement goes last in its batch: its text may end in a comment.
        self.push(query.sql, at).await?;
        let expected_error = query.error_code;
        let sql = self.batch.take();
        self.send(sql, at, expected_error).await
    }

    async fn rows(&mut self, raw: &[u8], at: &Position<'_>) -> Result<()> {
        let layout = self.layout(at)?;
        let code = raw[4];
        // Post-header: table id (4 bytes with a 6-byte post-header, else 6) then flags.
        let flags_at = crate::binlog::event::HEADER_LEN
            + if layout.post_header_len(code) == 6 {
                4
            } else {
                6
            };
        let flags = raw
            .get(flags_at..flags_at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| Error::integrity(format!("{at}: truncated rows event")))?;
        let encoded = raw.len().div_ceil(3) * 4;
        if encoded + 64 > self.max_batch {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "{at}: a row event of {} bytes does not fit in one statement to the target \
                     (max_allowed_packet allows {} bytes of batch); raise max_allowed_packet on \
                     the target to at least {} and retry",
                    raw.len(),
                    self.max_batch,
                    (encoded + 8192).next_power_of_two()
                ),
            ));
        }
        if self.batch.len() + encoded > self.max_batch {
            self.flush(at).await?;
        }
        self.batch.push_rows_event(raw);
        if flags & STMT_END_F != 0 {
            self.batch.stmt_table_maps.clear();
        }
        Ok(())
    }

    /// Queues a statement. A `BINLOG` statement must end its round trip (applying row events
    /// clears the "more results" status of the multi-statement reply, so a client would lose
    /// track of the replies after it): an open one is sent first.
    async fn push(&mut self, stmt: &[u8], at: &Position<'_>) -> Result<()> {
        if !self.batch.rows.is_empty() {
            self.flush(at).await?;
        }
        self.batch.push(stmt);
        Ok(())
    }

    /// Sends what is pending (part of a large transaction, or context before a statement).
    async fn flush(&mut self, at: &Position<'_>) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let sql = self.batch.take();
        self.send(sql, at, 0).await
    }

    async fn send(&mut self, sql: Vec<u8>, at: &Position<'_>, expected_error: u16) -> Result<()> {
        if let Some(g) = self.group.as_mut() {
            g.sent = true;
        }
        let deferred = self.deferred.take();
        tracing::trace!(
            bytes = sql.len(),
            batch = %String::from_utf8_lossy(&sql[..sql.len().min(2000)]),
            "replay batch"
        );
        match self.conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(mysql_async::Error::Server(se))
                if expected_error != 0 && se.code == expected_error =>
            {
                // The statement failed the same way on the source.
                Ok(())
            }
            Err(e) => {
                let committing = match deferred {
                    Some(d) => format!("; the batch also commits GTID {d}"),
                    None => String::new(),
                };
                let what = match &self.group {
                    Some(g) => format!(
                        "replaying GTID {} (from {} at offset {}, failing near offset {}{committing})",
                        g.gtid, g.input, g.offset, at.offset
                    ),
                    None => format!("replaying {at}{committing}"),
                };
                Err(map_mysql(e, &what))
            }
        }
    }

    /// After an error: roll back what the open transaction sent, best effort, so nothing of
    /// it commits.
    async fn abandon_group(&mut self) {
        self.failed = true;
        // Completed transactions still commit; the open one is dropped.
        let committed = self.batch.take_committed();
        if !committed.is_empty() {
            let _ = self.conn.query_drop(committed).await;
        }
        self.sent_fde = None;
        if self.group.take().is_some_and(|g| g.sent) {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        self.tracker.reset();
    }
}

/// Where an event is, for messages: `mysql-bin.000003 at offset 4711`.
struct Position<'a> {
    input: &'a str,
    offset: u64,
}

impl std::fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.input, self.offset)
    }
}

fn map_mysql(e: mysql_async::Error, what: &str) -> Error {
    crate::source::classify_mysql_error(e).context(what)
}
