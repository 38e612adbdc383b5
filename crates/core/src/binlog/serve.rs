//! A minimal MariaDB primary that serves the archive to one replica: the fast replay path.
//!
//! [`ReplayPrimary::start`] listens on an ephemeral port of 127.0.0.1 and accepts one account
//! (a random one-time password, checked with `mysql_native_password`). It speaks just enough of
//! the server side of the protocol for a MariaDB replica's IO thread: the greeting and login,
//! the queries the IO thread sends while connecting (answered from [`answer_query`]: OK for
//! `SET`, small text result sets for the few `SELECT`/`SHOW`s, an error naming anything else),
//! `COM_REGISTER_SLAVE`, and `COM_BINLOG_DUMP` in GTID mode.
//!
//! The dump sends, per planned piece, an artificial ROTATE to the piece's file, the file's format
//! description, then the archived events exactly as stored. Transactions the replica already has
//! (its `@slave_connect_state`) are not sent, and neither is anything past its
//! `@slave_until_gtid`. When everything is sent it keeps the link alive with heartbeats until
//! the replica disconnects or the primary is shut down. A replica that reconnects (its IO thread
//! retries after an error) is served again from its new connect state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_common::constants::{CapabilityFlags, ColumnType, Command, StatusFlags};
use mysql_common::packets::{Column, HandshakePacket};
use mysql_common::proto::MySerialize;
use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::binlog::archive::Archive;
use crate::binlog::event::{
    kind, reseal_checksum, Boundary, ChecksumAlg, EventReader, GroupTracker, Rotate,
    FLAG_ARTIFICIAL, FLAG_BINLOG_IN_USE, HEADER_LEN,
};
use crate::binlog::gtid::{Gtid, GtidPos, MariaGtid};
use crate::manifest::SegmentIndex;
use crate::source::bulk::put_lenenc_int;
use crate::{Error, ErrorKind, Result};

/// The version in the greeting: MariaDB replicas read the leading `5.5.5-` as "5.x or later"
/// and the rest as a MariaDB primary (GTID-capable).
const SERVER_VERSION: &str = "5.5.5-10.11.0-MariaDB-holdfast-replay";
/// The account the replica logs in with.
pub const REPLAY_USER: &str = "holdfast_replay";
const MAX_PACKET: usize = 0xff_ffff;
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// GTID_LIST flag (in the count's top bits): the replica's `@slave_until_gtid` is reached.
const GTID_LIST_UNTIL_REACHED: u32 = 1 << 28;

/// What the primary serves: the planned pieces of the archive, in order.
#[derive(Debug, Clone)]
pub struct ServePlan {
    pub archive: Archive,
    /// Each piece starts with a header segment (magic and format description).
    pub pieces: Vec<Vec<SegmentIndex>>,
    /// Our `server_id`, reported to the replica; must differ from the replica's.
    pub server_id: u32,
}

/// Counters of a running primary, for progress and reports.
#[derive(Debug, Default)]
pub struct ServeStats {
    pub connections: AtomicU64,
    pub dumps: AtomicU64,
    pub events_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
}

/// A running replay primary. Dropping it without [`shutdown`](Self::shutdown) aborts it.
pub struct ReplayPrimary {
    addr: SocketAddr,
    password: String,
    stats: Arc<ServeStats>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<()>>>,
}

impl ReplayPrimary {
    /// Listens on 127.0.0.1 (an ephemeral port) and serves replicas until shut down.
    pub async fn start(plan: ServePlan) -> Result<ReplayPrimary> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            Error::with_source(
                ErrorKind::Internal,
                "cannot listen on 127.0.0.1 for the replay primary",
                e,
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::with_source(ErrorKind::Internal, "replay primary address", e))?;
        let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        let stats = Arc::new(ServeStats::default());
        let (stop, stopped) = watch::channel(false);
        let session = Arc::new(Shared {
            plan,
            password: password.clone(),
            stats: stats.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, session, stopped));
        Ok(ReplayPrimary {
            addr,
            password,
            stats,
            stop,
            task: Some(task),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The one-time password of [`REPLAY_USER`].
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }

    /// An error that ended the primary (reading the archive failed), if it has ended.
    pub async fn failure(&mut self) -> Option<Error> {
        let finished = self.task.as_ref().is_some_and(|t| t.is_finished());
        if !finished {
            return None;
        }
        match self.task.take()?.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(Error::internal(format!("the replay primary failed: {e}"))),
        }
    }

    /// Stops serving and closes every connection.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::internal(format!("the replay primary failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for ReplayPrimary {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Shared {
    plan: ServePlan,
    password: String,
    stats: Arc<ServeStats>,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    let mut connection_id = 1u32;
    loop {
        let socket = tokio::select! {
            _ = stopped.changed() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!("replay primary: accept failed: {e}");
                    continue;
                }
            },
        };
        socket.set_nodelay(true).ok();
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let mut conn = ServerConn::new(socket, connection_id);
        connection_id += 1;
        // One replica at a time: it reconnects only after its previous link ended.
        let served = tokio::select! {
            _ = stopped.changed() => return Ok(()),
            served = conn.serve(&shared) => served,
        };
        match served {
            Ok(()) => {}
            // The archive could not be read: the replay cannot go on.
            Err(e) if e.kind() != ErrorKind::Connect => return Err(e),
            Err(e) => tracing::warn!("replay primary: replica link ended: {e}"),
        }
    }
}

/// The server side of one connection.
struct ServerConn {
    io: BufReader<TcpStream>,
    seq: u8,
    connection_id: u32,
    vars: HashMap<String, String>,
}

/// What the replica asked the dump to do, from its session variables.
struct DumpSession {
    connect_state: GtidPos,
    until: Option<GtidPos>,
    heartbeat: Duration,
}

impl ServerConn {
    fn new(socket: TcpStream, connection_id: u32) -> ServerConn {
        ServerConn {
            io: BufReader::with_capacity(64 * 1024, socket),
            seq: 0,
            connection_id,
            vars: HashMap::new(),
        }
    }

    async fn serve(&mut self, shared: &Shared) -> Result<()> {
        if !self.login(&shared.password).await? {
            return Ok(());
        }
        loop {
            let packet = match self.read_packet().await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let Some((&command, body)) = packet.split_first() else {
                return Ok(());
            };
            match command {
                c if c == Command::COM_QUERY as u8 => {
                    let sql = String::from_utf8_lossy(body).into_owned();
                    self.query(&sql, shared).await?;
                }
                c if c == Command::COM_REGISTER_SLAVE as u8 || c == Command::COM_PING as u8 => {
                    self.send_ok().await?
                }
                c if c == Command::COM_QUIT as u8 => return Ok(()),
                c if c == Command::COM_BINLOG_DUMP as u8 => {
                    let session = self.dump_session()?;
                    shared.stats.dumps.fetch_add(1, Ordering::Relaxed);
                    return self.dump(shared, session).await;
                }
                other => {
                    self.send_err(
                        1047,
                        "08S01",
                        &format!("holdfast's replay primary does not support command {other}"),
                    )
                    .await?
                }
            }
        }
    }

    /// Greets, checks the login; false when the replica was refused.
    async fn login(&mut self, password: &str) -> Result<bool> {
        let nonce: [u8; 20] = std::array::from_fn(|_| rand::thread_rng().gen_range(1..=127u8));
        let mut part2 = nonce[8..].to_vec();
        part2.push(0);
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        let greeting = HandshakePacket::new(
            10,
            SERVER_VERSION.as_bytes(),
            self.connection_id,
            nonce[..8].try_into().expect("8 bytes"),
            Some(part2),
            caps,
            45,
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            Some(&b"mysql_native_password"[..]),
        );
        let mut buf = Vec::new();
        greeting.serialize(&mut buf);
        self.seq = 0;
        self.write_packet(&buf).await?;
        let packet = self.read_packet().await?;
        let (user, scramble) = parse_login(&packet)
            .ok_or_else(|| link_error("unreadable login from the replica".to_string()))?;
        let expected = mysql_common::scramble::scramble_native(&nonce, password.as_bytes());
        let accepted =
            user == REPLAY_USER.as_bytes() && expected.is_some_and(|e| scramble == e.as_slice());
        if accepted {
            self.send_ok().await?;
        } else {
            let user = String::from_utf8_lossy(user).into_owned();
            self.send_err(
                1045,
                "28000",
                &format!("Access denied for user '{user}' to holdfast's replay primary"),
            )
            .await?;
        }
        Ok(accepted)
    }

    async fn query(&mut self, sql: &str, shared: &Shared) -> Result<()> {
        let checksum = first_checksum(&shared.plan);
        match answer_query(sql, &mut self.vars, shared.plan.server_id, checksum) {
            Answer::Ok => self.send_ok().await,
            Answer::Rows { columns, rows } => self.send_rows(&columns, &rows).await,
            Answer::Unknown => {
                self.send_err(
                    1105,
                    "HY000",
                    &format!("holdfast's replay primary does not answer `{sql}`"),
                )
                .await
            }
        }
    }

    fn dump_session(&self) -> Result<DumpSession> {
        let parse = |name: &str| -> Result<Option<GtidPos>> {
            match self.vars.get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v.parse::<GtidPos>().map(Some).map_err(|e| {
                    Error::usage(format!("the replica sent an unreadable @{name} `{v}`: {e}"))
                }),
            }
        };
        let heartbeat = self
            .vars
            .get("master_heartbeat_period")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ns| ns > 0)
            .map_or(DEFAULT_HEARTBEAT, Duration::from_nanos)
            .min(DEFAULT_HEARTBEAT);
        Ok(DumpSession {
            connect_state: parse("slave_connect_state")?.unwrap_or_default(),
            until: parse("slave_until_gtid")?,
            heartbeat,
        })
    }

    /// Streams the planned pieces, then heartbeats until the replica goes away.
    async fn dump(&mut self, shared: &Shared, session: DumpSession) -> Result<()> {
        let plan = &shared.plan;
        let announced =
            match self.vars.get("master_binlog_checksum") {
                Some(v) if v.eq_ignore_ascii_case("CRC32") => ChecksumAlg::Crc32,
                Some(_) => ChecksumAlg::Off,
                None => return self
                    .send_err(
                        1236,
                        "HY000",
                        "the replica did not declare checksum support (@master_binlog_checksum)",
                    )
                    .await,
            };
        let mut cursor = Cursor {
            sent: session.connect_state.clone(),
            until: session.until.clone(),
            file: String::new(),
            pos: 4,
            checksum: announced,
            until_signalled: false,
        };
        'pieces: for piece in &plan.pieces {
            let mut tracker = GroupTracker::default();
            let mut skipping = false;
            let mut open: Option<Gtid> = None;
            for (i, segment) in piece.iter().enumerate() {
                let raw = plan.archive.read_segment(segment).await?;
                let events = if i == 0 {
                    EventReader::file(&raw)?
                } else {
                    EventReader::events(&raw, cursor.checksum)
                };
                for event in events {
                    let event = event?;
                    let boundary = tracker.observe(&event)?;
                    if event.header.type_code == kind::FORMAT_DESCRIPTION {
                        self.send_piece_start(plan, segment, &mut cursor, announced, event.raw())
                            .await?;
                        cursor.checksum = event.checksum_alg();
                        continue;
                    }
                    match boundary {
                        Boundary::Begins(g) => {
                            if cursor.until_reached() {
                                self.send_until_reached(plan, &mut cursor).await?;
                                break 'pieces;
                            }
                            skipping = cursor.sent.contains(&g.gtid) || cursor.past_until(&g.gtid);
                            open = Some(g.gtid);
                        }
                        // The fast path serves MariaDB archives only (checked when planning).
                        Boundary::BeginsAnonymous | Boundary::Ends | Boundary::None => {}
                    }
                    if !skipping {
                        self.send_event(event.raw(), &mut cursor, &shared.stats)
                            .await?;
                    }
                    if boundary == Boundary::Ends {
                        if let (Some(g), false) = (open.take(), skipping) {
                            cursor.sent.advance(g);
                        }
                        skipping = false;
                    }
                }
            }
            if tracker.in_group() {
                // The archive ends inside a transaction: the replica must not wait for its end.
                break;
            }
        }
        if cursor.until.is_some() && cursor.until_reached() && !cursor.until_signalled {
            self.send_until_reached(plan, &mut cursor).await?;
        }
        self.io.get_mut().flush().await.map_err(io_error)?;
        self.idle(session.heartbeat, &mut cursor).await
    }

    /// Tells the replica its UNTIL position is reached, as a MariaDB primary does: an
    /// artificial GTID_LIST event with the "until reached" flag, which stops its SQL thread.
    async fn send_until_reached(&mut self, plan: &ServePlan, cursor: &mut Cursor) -> Result<()> {
        let gtids: Vec<MariaGtid> = cursor.sent.gtids().copied().collect();
        let mut body = ((gtids.len() as u32) | GTID_LIST_UNTIL_REACHED)
            .to_le_bytes()
            .to_vec();
        for g in &gtids {
            body.extend_from_slice(&g.domain.to_le_bytes());
            body.extend_from_slice(&g.server.to_le_bytes());
            body.extend_from_slice(&g.seq.to_le_bytes());
        }
        let event = artificial_event(kind::GTID_LIST, plan.server_id, 0, &body, cursor.checksum);
        cursor.until_signalled = true;
        self.send_packet_event(&event).await
    }

    /// An artificial ROTATE to the piece's file, then the file's format description.
    async fn send_piece_start(
        &mut self,
        plan: &ServePlan,
        segment: &SegmentIndex,
        cursor: &mut Cursor,
        announced: ChecksumAlg,
        fde: &[u8],
    ) -> Result<()> {
        let mid_file = segment.start_pos > 4;
        let position = if mid_file { segment.start_pos } else { 4 };
        let mut body = position.to_le_bytes().to_vec();
        body.extend_from_slice(segment.source.file.as_bytes());
        let rotate = artificial_event(kind::ROTATE, plan.server_id, 0, &body, announced);
        self.send_packet_event(&rotate).await?;
        cursor.file = segment.source.file.clone();
        cursor.pos = position;
        let mut fde = fde.to_vec();
        let flags = u16::from_le_bytes([fde[17], fde[18]]) & !FLAG_BINLOG_IN_USE;
        fde[17..19].copy_from_slice(&flags.to_le_bytes());
        if mid_file {
            // Like a primary starting mid-file: the replica must not take the format
            // description's position as its read position.
            fde[13..17].copy_from_slice(&0u32.to_le_bytes());
        }
        let fde_checksum = crate::binlog::event::Event::parse(&fde, ChecksumAlg::Off)
            .map(|e| e.checksum_alg())
            .unwrap_or(ChecksumAlg::Off);
        if fde_checksum == ChecksumAlg::Crc32 {
            reseal_checksum(&mut fde);
        }
        self.send_packet_event(&fde).await
    }

    async fn send_event(
        &mut self,
        raw: &[u8],
        cursor: &mut Cursor,
        stats: &ServeStats,
    ) -> Result<()> {
        let header_pos = u32::from_le_bytes([raw[13], raw[14], raw[15], raw[16]]);
        if raw[4] == kind::ROTATE {
            if let Ok(event) = crate::binlog::event::Event::parse(raw, cursor.checksum) {
                if let Ok(rotate) = Rotate::parse(&event) {
                    cursor.file = rotate.next_file.clone();
                    cursor.pos = rotate.position;
                }
            }
        } else if header_pos != 0 {
            cursor.pos = u64::from(header_pos);
        }
        self.send_packet_event(raw).await?;
        stats.events_sent.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes_sent
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Sends heartbeats until the replica disconnects.
    async fn idle(&mut self, period: Duration, cursor: &mut Cursor) -> Result<()> {
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        let mut scratch = [0u8; 256];
        loop {
            tokio::select! {
                read = self.io.read(&mut scratch) => match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                },
                _ = ticker.tick() => {
                    let pos = u32::try_from(cursor.pos).unwrap_or(u32::MAX);
                    let beat = artificial_event(
                        kind::HEARTBEAT,
                        0,
                        pos,
                        cursor.file.as_bytes(),
                        cursor.checksum,
                    );
                    if self.send_packet_event(&beat).await.is_err() {
                        return Ok(());
                    }
                    if self.io.get_mut().flush().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn send_packet_event(&mut self, raw: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(raw.len() + 1);
        payload.push(0);
        payload.extend_from_slice(raw);
        self.write_packet_buffered(&payload).await
    }

    async fn send_ok(&mut self) -> Result<()> {
        self.write_packet(&[0, 0, 0, 2, 0, 0, 0]).await
    }

    async fn send_err(&mut self, code: u16, state: &str, message: &str) -> Result<()> {
        let mut payload = vec![0xff];
        payload.extend_from_slice(&code.to_le_bytes());
        payload.push(b'#');
        payload.extend_from_slice(&state.as_bytes()[..5]);
        payload.extend_from_slice(message.as_bytes());
        self.write_packet(&payload).await
    }

    async fn send_rows(&mut self, columns: &[&str], rows: &[Vec<Option<String>>]) -> Result<()> {
        let eof = [0xfe, 0, 0, 2, 0];
        self.write_packet_buffered(&[columns.len() as u8]).await?;
        for name in columns {
            let mut buf = Vec::new();
            Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
                .with_name(name.as_bytes())
                .with_org_name(name.as_bytes())
                .with_character_set(33)
                .with_column_length(1024)
                .serialize(&mut buf);
            self.write_packet_buffered(&buf).await?;
        }
        self.write_packet_buffered(&eof).await?;
        for row in rows {
            let mut buf = Vec::new();
            for value in row {
                match value {
                    None => buf.push(0xfb),
                    Some(v) => {
                        put_lenenc_int(&mut buf, v.len() as u64);
                        buf.extend_from_slice(v.as_bytes());
                    }
                }
            }
            self.write_packet_buffered(&buf).await?;
        }
        self.write_packet(&eof).await
    }

    async fn read_packet(&mut self) -> Result<Vec<u8>> {
        let mut packet = Vec::new();
        loop {
            let mut header = [0u8; 4];
            self.io.read_exact(&mut header).await.map_err(io_error)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            self.seq = header[3].wrapping_add(1);
            let start = packet.len();
            packet.resize(start + len, 0);
            self.io
                .read_exact(&mut packet[start..])
                .await
                .map_err(io_error)?;
            if len < MAX_PACKET {
                return Ok(packet);
            }
        }
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<()> {
        self.write_packet_buffered(payload).await?;
        self.io.get_mut().flush().await.map_err(io_error)
    }

    /// Frames `payload` into packets (split at 16 MiB) without flushing.
    async fn write_packet_buffered(&mut self, payload: &[u8]) -> Result<()> {
        let mut rest = payload;
        loop {
            let chunk = &rest[..rest.len().min(MAX_PACKET)];
            let len = (chunk.len() as u32).to_le_bytes();
            let io = self.io.get_mut();
            io.write_all(&[len[0], len[1], len[2], self.seq])
                .await
                .map_err(io_error)?;
            io.write_all(chunk).await.map_err(io_error)?;
            self.seq = self.seq.wrapping_add(1);
            rest = &rest[chunk.len()..];
            if chunk.len() < MAX_PACKET {
                return Ok(());
            }
        }
    }
}

/// Where the dump is, as the replica sees it.
struct Cursor {
    /// The replica's connect state advanced by every transaction sent.
    sent: GtidPos,
    until: Option<GtidPos>,
    /// The primary's file and position as the replica tracks them (for heartbeats).
    file: String,
    pos: u64,
    /// Checksum algorithm of the current file's events.
    checksum: ChecksumAlg,
    until_signalled: bool,
}

impl Cursor {
    /// Every domain of the replica's UNTIL position has been sent up to it.
    fn until_reached(&self) -> bool {
        self.until.as_ref().is_some_and(|until| {
            until
                .gtids()
                .all(|u| self.sent.get(u.domain).is_some_and(|s| s.seq >= u.seq))
        })
    }

    /// The transaction lies beyond the replica's UNTIL position (a domain it does not name, or
    /// after its GTID in that domain).
    fn past_until(&self, gtid: &Gtid) -> bool {
        // The fast path serves MariaDB archives only; a MySQL GTID is never sent.
        let Some(g) = gtid.as_maria() else {
            return true;
        };
        self.until
            .as_ref()
            .is_some_and(|until| until.get(g.domain).is_none_or(|u| g.seq > u.seq))
    }
}

/// Builds an artificial event (fake rotate, heartbeat) with a CRC32 trailer when `checksum`
/// says so.
fn artificial_event(
    type_code: u8,
    server_id: u32,
    log_pos: u32,
    body: &[u8],
    checksum: ChecksumAlg,
) -> Vec<u8> {
    let trailer = if checksum == ChecksumAlg::Crc32 { 4 } else { 0 };
    let size = (HEADER_LEN + body.len() + trailer) as u32;
    let mut raw = Vec::with_capacity(size as usize);
    raw.extend_from_slice(&0u32.to_le_bytes());
    raw.push(type_code);
    raw.extend_from_slice(&server_id.to_le_bytes());
    raw.extend_from_slice(&size.to_le_bytes());
    raw.extend_from_slice(&log_pos.to_le_bytes());
    raw.extend_from_slice(&FLAG_ARTIFICIAL.to_le_bytes());
    raw.extend_from_slice(body);
    if trailer > 0 {
        raw.extend_from_slice(&[0; 4]);
        reseal_checksum(&mut raw);
    }
    raw
}

/// The checksum algorithm of the first piece, announced as the primary's `binlog_checksum`.
fn first_checksum(plan: &ServePlan) -> ChecksumAlg {
    plan.pieces
        .first()
        .and_then(|p| p.first())
        .map_or(ChecksumAlg::Crc32, |s| s.checksum)
}

/// How the primary answers one query.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Ok,
    Rows {
        columns: Vec<&'static str>,
        rows: Vec<Vec<Option<String>>>,
    },
    Unknown,
}

/// Answers the queries a MariaDB replica's IO thread sends while connecting; `SET @var = …`
/// is remembered in `vars` (names lower-case, values unquoted).
pub fn answer_query(
    sql: &str,
    vars: &mut HashMap<String, String>,
    server_id: u32,
    checksum: ChecksumAlg,
) -> Answer {
    let normalized = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = normalized.to_ascii_lowercase();
    let checksum_name = match checksum {
        ChecksumAlg::Crc32 => "CRC32",
        ChecksumAlg::Off => "NONE",
    };
    let one = |column: &'static str, value: String| Answer::Rows {
        columns: vec![column],
        rows: vec![vec![Some(value)]],
    };
    if let Some(assignments) = lower.strip_prefix("set ") {
        let original = &normalized[4..];
        let mut offset = 0;
        for part in split_assignments(assignments) {
            let raw = &original[offset..offset + part.len()];
            offset += part.len() + 1;
            let Some((name, value)) = raw.split_once('=') else {
                return Answer::Unknown;
            };
            let name = name.trim().to_ascii_lowercase();
            let Some(name) = name.strip_prefix('@').filter(|n| !n.starts_with('@')) else {
                // Session or global system variables: accepted, nothing here depends on them.
                continue;
            };
            let value = value.trim();
            let value = if value.eq_ignore_ascii_case("@@global.binlog_checksum") {
                checksum_name.to_string()
            } else {
                unquote(value)
            };
            vars.insert(name.to_string(), value);
        }
        return Answer::Ok;
    }
    match lower.trim_end_matches(';') {
        "select unix_timestamp()" => one(
            "UNIX_TIMESTAMP()",
            time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
        ),
        "show variables like 'server_id'" => Answer::Rows {
            columns: vec!["Variable_name", "Value"],
            rows: vec![vec![Some("server_id".into()), Some(server_id.to_string())]],
        },
        "select @@global.server_id" => one("@@GLOBAL.SERVER_ID", server_id.to_string()),
        "select @@global.gtid_domain_id" => one("@@GLOBAL.gtid_domain_id", "0".into()),
        "select @@global.binlog_checksum" => one("@@global.binlog_checksum", checksum_name.into()),
        q => match q.strip_prefix("select @").filter(|v| !v.starts_with('@')) {
            Some(var) => Answer::Rows {
                columns: vec!["value"],
                rows: vec![vec![vars.get(var).cloned()]],
            },
            None => Answer::Unknown,
        },
    }
}

/// Splits `a = 1, b = 'x,y'` at the commas outside quotes.
fn split_assignments(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'\'' || bytes[0] == b'"')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        value[1..value.len() - 1].to_string()
    } else {
        value.to_string()
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::with_source(ErrorKind::Connect, format!("replica link: {e}"), e).transient()
}

fn link_error(message: String) -> Error {
    Error::new(ErrorKind::Connect, message)
}

/// The user name and auth response of a protocol-41 login packet.
fn parse_login(packet: &[u8]) -> Option<(&[u8], &[u8])> {
    let caps = u32::from_le_bytes(packet.get(..4)?.try_into().ok()?);
    let rest = packet.get(32..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let (user, rest) = (&rest[..nul], &rest[nul + 1..]);
    let auth = if caps & CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA.bits() != 0 {
        let (&len, rest) = rest.split_first()?;
        rest.get(..usize::from(len).min(250))?
    } else if caps & CapabilityFlags::CLIENT_SECURE_CONNECTION.bits() != 0 {
        let (&len, rest) = rest.split_first()?;
        rest.get(..usize::from(len))?
    } else {
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };
    Some((user, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_connect_queries_are_answered() {
        let mut vars = HashMap::new();
        let ask = |sql: &str, vars: &mut HashMap<String, String>| {
            answer_query(sql, vars, 77, ChecksumAlg::Crc32)
        };
        assert_eq!(
            ask(
                "SET @master_binlog_checksum= @@global.binlog_checksum",
                &mut vars
            ),
            Answer::Ok
        );
        assert_eq!(
            ask("SELECT @master_binlog_checksum", &mut vars),
            Answer::Rows {
                columns: vec!["value"],
                rows: vec![vec![Some("CRC32".into())]]
            }
        );
        assert_eq!(
            ask("SET @slave_connect_state='0-1-5,1-2-7'", &mut vars),
            Answer::Ok
        );
        assert_eq!(vars["slave_connect_state"], "0-1-5,1-2-7");
        assert_eq!(
            ask("SET @a = 1, @b = 'x,y', SESSION sql_mode = ''", &mut vars),
            Answer::Ok
        );
        assert_eq!(vars["b"], "x,y");
        assert_eq!(
            ask("SHOW VARIABLES LIKE 'SERVER_ID'", &mut vars),
            Answer::Rows {
                columns: vec!["Variable_name", "Value"],
                rows: vec![vec![Some("server_id".into()), Some("77".into())]]
            }
        );
        assert!(matches!(
            ask("SELECT UNIX_TIMESTAMP()", &mut vars),
            Answer::Rows { .. }
        ));
        assert_eq!(ask("DROP DATABASE x", &mut vars), Answer::Unknown);
        assert_eq!(ask("SELECT @@global.version", &mut vars), Answer::Unknown);
    }

    #[test]
    fn until_is_per_domain() {
        let cursor = Cursor {
            sent: "0-1-5".parse().unwrap(),
            until: Some("0-1-7,1-1-3".parse().unwrap()),
            file: String::new(),
            pos: 4,
            checksum: ChecksumAlg::Off,
            until_signalled: false,
        };
        assert!(!cursor.until_reached());
        assert!(!cursor.past_until(&"0-1-7".parse().unwrap()));
        assert!(cursor.past_until(&"0-1-8".parse().unwrap()));
        assert!(cursor.past_until(&"2-1-1".parse().unwrap()));
        let reached = Cursor {
            sent: "0-1-7,1-1-3".parse().unwrap(),
            ..cursor
        };
        assert!(reached.until_reached());
    }
}
