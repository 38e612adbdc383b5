//! The replication connection: registers as a replica and receives binlog events as the exact
//! bytes the server wrote, over [`WireConn`].
//!
//! Both flavors declare the session checksum-aware with the server's own algorithm
//! (`@master_binlog_checksum = @@global.binlog_checksum`, so events arrive exactly as stored)
//! and set a heartbeat period (`@master_heartbeat_period`), then register as a replica. Every
//! read on the connection, from the session's setup on, gives up after [`dead_link_limit`] of
//! silence.
//!
//! - MariaDB strategy: GTID-aware (`@mariadb_slave_capability = 4`), asks for ANNOTATE_ROWS
//!   events, and starts with COM_BINLOG_DUMP either at a file and position or at a GTID
//!   position (`@slave_connect_state`).
//! - MySQL strategy: COM_BINLOG_DUMP at a file and position, or COM_BINLOG_DUMP_GTID with the
//!   SID/interval block of the set the replica already has (mysql_common's packet types): the
//!   server starts at the first binlog file with transactions outside the set and leaves out
//!   the transactions inside it.
//!
//! Reading a packet is not cancel-safe: a read cut midway (by a timer winning a `select!`)
//! loses the bytes it already took, and the next read starts inside a packet. A consumer that
//! waits for events next to timers uses [`EventFeed`], which reads in a task of its own.

use std::sync::Arc;
use std::time::Duration;

use mysql_common::constants::Command;
use mysql_common::packets::{BinlogDumpFlags, ComBinlogDumpGtid, GnoInterval, Sid};
use mysql_common::proto::MySerialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::binlog::event::{ChecksumAlg, HEADER_LEN};
use crate::binlog::gtid::GtidPos;
use crate::source::conn::ConnectionConfig;
use crate::source::server::Flavor;
use crate::source::wire::WireConn;
use crate::{Error, ErrorKind, Result};

/// MariaDB: the replica understands GTIDs and every event type of 10.0+.
const MARIA_SLAVE_CAPABILITY_GTID: u32 = 4;
/// COM_BINLOG_DUMP flags.
const DUMP_NON_BLOCK: u16 = 1;
const DUMP_SEND_ANNOTATE_ROWS: u16 = 2;

/// How long the stream waits for a server that sends nothing before it calls the link dead:
/// three heartbeat periods plus 5 s. The server sends a heartbeat after a period without
/// events; two more periods and 5 s absorb a late one. It bounds every read of the stream's
/// connections, the dump's and those of the queries before it, and runs from the last byte
/// received, so a reconnected stream is held to it as the first connection is.
pub fn dead_link_limit(heartbeat: Duration) -> Duration {
    heartbeat * 3 + Duration::from_secs(5)
}

/// What a read that ran into [`dead_link_limit`] says.
pub const DEAD_LINK_ADVICE: &str =
    "no event and not even a heartbeat for three --heartbeat periods plus 5 s: the link is dead";

/// Where the stream starts.
#[derive(Debug, Clone, PartialEq)]
pub enum DumpStart {
    /// At a byte offset of a binlog file (4 for its first event).
    Position { file: String, pos: u64 },
    /// After the transactions of a GTID position (empty: from the oldest binlog with complete
    /// history). MariaDB: one GTID per domain; MySQL: the set of every transaction the
    /// replica has.
    Gtid(GtidPos),
}

#[derive(Debug, Clone)]
pub struct DumpRequest {
    /// Which dialect of the replication protocol the server speaks.
    pub flavor: Flavor,
    /// Our server id as a replica; must differ from every server in the topology.
    pub replica_server_id: u32,
    pub start: DumpStart,
    /// The server sends a heartbeat after this much silence.
    pub heartbeat: Duration,
    /// End the stream when the server has sent everything it has (instead of waiting).
    pub non_blocking: bool,
}

/// One item of the stream.
#[derive(Debug)]
pub enum Received<'a> {
    /// A whole event (header, body and checksum).
    Event(&'a [u8]),
    /// The server has nothing more (only with `non_blocking`).
    End,
}

/// An open binlog stream.
pub struct BinlogClient {
    conn: WireConn,
    checksum: ChecksumAlg,
    endpoint: String,
    /// The first packet was read by `open` (to see the dump accepted) and not yet returned.
    peeked: bool,
}

impl BinlogClient {
    /// Connects, prepares the session and sends the dump request, and waits for the server's
    /// first answer (it sends a rotate event at once, or an error such as 1236 when it does not
    /// have the requested history), so a refused start is an error of `open`.
    pub async fn open(config: &ConnectionConfig, request: &DumpRequest) -> Result<BinlogClient> {
        let mut conn = WireConn::connect(config).await?;
        // Every read from here on, the session's setup as much as the events, gives up after
        // the dead-link limit of silence.
        conn.set_silence_limit(Some(dead_link_limit(request.heartbeat)), DEAD_LINK_ADVICE);
        let endpoint = config.endpoint();
        let heartbeat_ns = request.heartbeat.as_nanos().max(1_000_000);
        let mut setup = vec![
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_string(),
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
        ];
        if request.flavor == Flavor::MariaDb {
            setup.push(format!(
                "SET @mariadb_slave_capability = {MARIA_SLAVE_CAPABILITY_GTID}"
            ));
        }
        if let (Flavor::MariaDb, DumpStart::Gtid(pos)) = (request.flavor, &request.start) {
            setup.push(format!("SET @slave_connect_state = '{pos}'"));
            setup.push("SET @slave_gtid_strict_mode = 0".into());
            setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
        }
        for sql in &setup {
            conn.execute(sql).await.map_err(|e| {
                e.context(format_args!(
                    "preparing the replication session on {endpoint}"
                ))
            })?;
        }
        let alg = conn
            .query_text("SELECT @@global.binlog_checksum")
            .await?
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        let checksum = if alg.eq_ignore_ascii_case("CRC32") {
            ChecksumAlg::Crc32
        } else {
            ChecksumAlg::Off
        };
        let mut client = BinlogClient {
            conn,
            checksum,
            endpoint,
            peeked: false,
        };
        client.register(request.replica_server_id).await?;
        client.dump(request).await?;
        client.conn.read_packet().await?;
        if client.conn.last_packet().first() == Some(&0xff) {
            return Err(client.dump_error());
        }
        client.peeked = true;
        Ok(client)
    }

    /// The checksum algorithm of events the server makes up for the stream (the fake rotate
    /// that comes before any format description).
    pub fn checksum(&self) -> ChecksumAlg {
        self.checksum
    }

    async fn register(&mut self, server_id: u32) -> Result<()> {
        let host = crate::repo::lock::hostname();
        let host = &host.as_bytes()[..host.len().min(60)];
        let mut payload = vec![Command::COM_REGISTER_SLAVE as u8];
        payload.extend_from_slice(&server_id.to_le_bytes());
        payload.push(host.len() as u8);
        payload.extend_from_slice(host);
        payload.push(0); // user
        payload.push(0); // password
        payload.extend_from_slice(&0u16.to_le_bytes()); // port
        payload.extend_from_slice(&0u32.to_le_bytes()); // replication rank
        payload.extend_from_slice(&0u32.to_le_bytes()); // master id
        self.conn.send_command(&payload).await?;
        let packet = self.conn.read_packet().await?;
        if packet.first() == Some(&0xff) {
            return Err(self.dump_error());
        }
        Ok(())
    }

    async fn dump(&mut self, request: &DumpRequest) -> Result<()> {
        if let (Flavor::MySql, DumpStart::Gtid(set)) = (request.flavor, &request.start) {
            return self
                .conn
                .send_command(&mysql_dump_gtid(request, set)?)
                .await;
        }
        let (file, pos) = match &request.start {
            DumpStart::Position { file, pos } => (file.as_str(), *pos),
            DumpStart::Gtid(_) => ("", 4),
        };
        let pos = u32::try_from(pos).map_err(|_| {
            Error::usage(format!(
                "binlog position {pos} is beyond what the replication protocol can request"
            ))
        })?;
        // MySQL reads flag 2 as "through position"; ANNOTATE_ROWS is MariaDB's.
        let mut flags = match request.flavor {
            Flavor::MariaDb => DUMP_SEND_ANNOTATE_ROWS,
            Flavor::MySql => 0,
        };
        if request.non_blocking {
            flags |= DUMP_NON_BLOCK;
        }
        let mut payload = vec![Command::COM_BINLOG_DUMP as u8];
        payload.extend_from_slice(&pos.to_le_bytes());
        payload.extend_from_slice(&flags.to_le_bytes());
        payload.extend_from_slice(&request.replica_server_id.to_le_bytes());
        payload.extend_from_slice(file.as_bytes());
        self.conn.send_command(&payload).await
    }

    /// The next event, or the end of a non-blocking stream. A silent server (no event and no
    /// heartbeat for [`dead_link_limit`]) is a transient `Connect` error.
    pub async fn next(&mut self) -> Result<Received<'_>> {
        if !std::mem::take(&mut self.peeked) {
            self.conn.read_packet().await?;
        }
        let packet = self.conn.last_packet();
        match packet.first() {
            Some(0x00) if packet.len() > HEADER_LEN => Ok(Received::Event(&packet[1..])),
            Some(0xfe) if packet.len() < 9 => Ok(Received::End),
            Some(0xff) => Err(self.dump_error()),
            _ => Err(Error::integrity(format!(
                "{} sent a packet that is not a binlog event ({} bytes)",
                self.endpoint,
                packet.len()
            ))),
        }
    }

    /// Hands the stream to a reader task: see [`EventFeed`].
    pub fn into_feed(self, read_ahead_bytes: usize) -> EventFeed {
        EventFeed::start(self, read_ahead_bytes)
    }

    fn dump_error(&self) -> Error {
        let err = self.conn.parse_server_error();
        match err.code {
            1227 | 1045 => Error::new(
                ErrorKind::Auth,
                format!(
                    "{} refused the binlog stream: {} — grant it with \
                     `GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user>` (MariaDB \
                     also accepts BINLOG MONITOR / REPLICATION SLAVE ADMIN for the checks)",
                    self.endpoint, err.message
                ),
            ),
            1236 => Error::new(
                ErrorKind::Server,
                format!(
                    "{} cannot send the requested binlog: {} (error 1236). The binlogs the \
                     archive needs were purged, or the server is not of this replication \
                     topology",
                    self.endpoint, err.message
                ),
            ),
            code => Error::new(
                ErrorKind::Server,
                format!(
                    "{} ended the binlog stream with error {code}: {}",
                    self.endpoint, err.message
                ),
            )
            .transient(),
        }
    }
}

/// One item of an [`EventFeed`].
#[derive(Debug)]
pub enum Fed {
    /// A whole event; the permit holds its share of the read-ahead budget until dropped.
    Event(Vec<u8>, OwnedSemaphorePermit),
    /// The server has nothing more (only with `non_blocking`).
    End,
}

/// The events of a [`BinlogClient`], read ahead by a task of their own.
///
/// [`next`](EventFeed::next) is cancel-safe (it only receives from a channel), so a caller may
/// wait for it in a `select!` next to timers without ever losing part of a packet. The task
/// reads ahead at most `read_ahead_bytes` of events not yet dropped by the consumer (and always
/// at least one event, however large). It ends after the first error or the end of the stream,
/// which it hands on as the last item; dropping the feed stops it and closes the connection.
pub struct EventFeed {
    rx: mpsc::Receiver<Result<Fed>>,
    task: JoinHandle<()>,
}

impl EventFeed {
    fn start(mut client: BinlogClient, read_ahead_bytes: usize) -> EventFeed {
        let budget = read_ahead_bytes.clamp(1, u32::MAX as usize);
        let room = Arc::new(Semaphore::new(budget));
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            loop {
                let item = match client.next().await {
                    Ok(Received::Event(raw)) => {
                        let share = raw.len().clamp(1, budget) as u32;
                        let Ok(permit) = room.clone().acquire_many_owned(share).await else {
                            return;
                        };
                        Ok(Fed::Event(raw.to_vec(), permit))
                    }
                    Ok(Received::End) => Ok(Fed::End),
                    Err(e) => Err(e),
                };
                let last = !matches!(item, Ok(Fed::Event(..)));
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        EventFeed { rx, task }
    }

    /// The next event, the end of a non-blocking stream, or the error that ended the stream.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Fed> {
        match self.rx.recv().await {
            Some(item) => item,
            None => Err(Error::new(
                ErrorKind::Connect,
                "the binlog reader stopped after the end of the stream",
            )
            .transient()),
        }
    }
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// COM_BINLOG_DUMP_GTID asking for every transaction outside `set` (MySQL). An empty set asks
/// for everything from the oldest binlog.
fn mysql_dump_gtid(request: &DumpRequest, set: &GtidPos) -> Result<Vec<u8>> {
    if set.gtids().next().is_some() {
        return Err(Error::usage(format!(
            "the MySQL server was asked to resume from the MariaDB GTID position {set}: the \
             archive was written from a MariaDB server; stream a MySQL server into its own \
             repository"
        )));
    }
    let sids: Vec<Sid<'static>> = set
        .sources()
        .map(|(uuid, intervals)| {
            // The wire intervals are end-exclusive.
            let intervals = intervals
                .ranges()
                .iter()
                .map(|&(s, e)| GnoInterval::new(s, e.saturating_add(1)))
                .collect();
            Sid::new(*uuid.as_bytes()).with_intervals(intervals)
        })
        .collect();
    let mut flags = BinlogDumpFlags::empty();
    if request.non_blocking {
        flags |= BinlogDumpFlags::BINLOG_DUMP_NON_BLOCK;
    }
    let cmd = ComBinlogDumpGtid::new(request.replica_server_id)
        .with_pos(4)
        .with_sids(sids)
        .with_flags(flags);
    let mut payload = Vec::new();
    cmd.serialize(&mut payload);
    Ok(payload)
}

/// True for the dump error that means "the position or GTID you asked for is not in my binlogs".
pub fn is_missing_history(e: &Error) -> bool {
    e.kind() == ErrorKind::Server && e.message().contains("(error 1236)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_link_limit_is_three_heartbeats_plus_five_seconds() {
        for (heartbeat_ms, limit_ms) in
            [(2000, 11_000), (1000, 8000), (500, 6500), (30_000, 95_000)]
        {
            assert_eq!(
                dead_link_limit(Duration::from_millis(heartbeat_ms)),
                Duration::from_millis(limit_ms),
                "heartbeat {heartbeat_ms} ms"
            );
        }
    }
}
