//! A raw MySQL-protocol connection, for what the driver cannot do: a replication stream that
//! hands over every event's exact bytes (MariaDB needs session variables and event types the
//! driver's binlog stream does not handle), and reading result rows without building a value
//! per column.
//!
//! It speaks the client side of the protocol with `mysql_common`'s packet types: handshake,
//! TLS upgrade (`tokio-rustls` with ring), authentication (`mysql_native_password`,
//! `caching_sha2_password`, clear password over TLS or the socket, with auth switches),
//! text queries and commands. Connection settings come from the same [`ConnectionConfig`] as
//! the driver's connections, so credentials, sockets and TLS modes behave the same.

use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mysql_common::constants::{CapabilityFlags, Command, MariadbCapabilities};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ErrPacket, HandshakePacket, HandshakeResponse, SslRequest,
};
use mysql_common::proto::MySerialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::source::conn::{ConnectionConfig, TlsMode, CONNECT_TIMEOUT};
use crate::{Error, ErrorKind, Result};

const MAX_PACKET: usize = 0xff_ffff;
const MAX_ALLOWED_PACKET: u32 = 1 << 30;
/// `utf8mb4_general_ci`: the handshake collation; sessions set what they need afterwards.
const HANDSHAKE_COLLATION: u8 = 45;

trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// One authenticated connection speaking the raw protocol.
pub struct WireConn {
    io: BufReader<Box<dyn Transport>>,
    seq: u8,
    capabilities: CapabilityFlags,
    server_version: String,
    connection_id: u32,
    packet: Vec<u8>,
    /// Rows of the current result set are still to be read.
    pending_rows: bool,
    /// MariaDB's array binding (`COM_STMT_BULK_EXECUTE`) was negotiated.
    bulk_operations: bool,
    /// Bytes at the front of the read buffer lent out as the last row by
    /// [`next_row`](WireConn::next_row); consumed before the next read.
    lent: usize,
    endpoint: String,
    /// Longest silence a read waits through (see [`set_read_timeout`](Self::set_read_timeout)).
    read_timeout: Option<Duration>,
    /// What the error of a read that ran out of patience advises (names the setting).
    stall_advice: &'static str,
}

/// The advice of a stalled read by default: the dump's setting.
const STALL_ADVICE: &str = "raise --stall-timeout if the server is merely slow";

/// A prepared statement: its id and how many parameters and result columns it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub id: u32,
    pub params: u16,
    pub columns: u16,
}

/// What an OK packet reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub warnings: u16,
}

/// A server error (`ERR` packet), with its code kept for callers that react to specific codes.
#[derive(Debug, Clone)]
pub struct ServerErr {
    pub code: u16,
    pub message: String,
}

impl WireConn {
    /// Connects and authenticates like [`ConnectionConfig::connect`], within the connect
    /// timeout. Errors are classified the same way (unreachable: `Connect`; refused: `Auth`).
    pub async fn connect(config: &ConnectionConfig) -> Result<WireConn> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::establish(config)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Connect,
                format!(
                    "timed out after {}s connecting to {}",
                    CONNECT_TIMEOUT.as_secs(),
                    config.endpoint()
                ),
            )
            .transient()),
        }
    }

    async fn establish(config: &ConnectionConfig) -> Result<WireConn> {
        let endpoint = config.endpoint();
        let unreachable = |e: std::io::Error| {
            Error::with_source(
                ErrorKind::Connect,
                format!("cannot reach the server at {endpoint}: {e}"),
                e,
            )
            .transient()
        };
        let transport: Box<dyn Transport> = match &config.socket {
            Some(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?,
            ),
            None => {
                let tcp = tokio::net::TcpStream::connect((config.host.as_str(), config.port))
                    .await
                    .map_err(unreachable)?;
                tcp.set_nodelay(true).ok();
                Box::new(tcp)
            }
        };
        let mut conn = WireConn {
            io: BufReader::with_capacity(256 * 1024, transport),
            seq: 0,
            capabilities: CapabilityFlags::empty(),
            server_version: String::new(),
            connection_id: 0,
            packet: Vec::new(),
            pending_rows: false,
            bulk_operations: false,
            lent: 0,
            read_timeout: None,
            stall_advice: STALL_ADVICE,
            endpoint: config.endpoint(),
        };
        conn.handshake(config).await?;
        Ok(conn)
    }

    async fn handshake(&mut self, config: &ConnectionConfig) -> Result<()> {
        self.read_packet().await?;
        if self.packet.first() == Some(&0xff) {
            return Err(self.err_packet_error(config));
        }
        let handshake: HandshakePacket<'_> = ParseBuf(&self.packet)
            .parse(())
            .map_err(|e| self.protocol_error(format!("unreadable server greeting: {e}")))?;
        let server_caps = handshake.capabilities();
        let version = handshake.server_version_parsed().unwrap_or((5, 5, 0));
        self.server_version = String::from_utf8_lossy(handshake.server_version_ref()).into_owned();
        self.connection_id = handshake.connection_id();
        let nonce = handshake.nonce();
        let handshake_ext = handshake.mariadb_ext_capabilities();
        let plugin = handshake
            .auth_plugin()
            .map(|p| p.into_owned())
            .unwrap_or(AuthPlugin::MysqlNativePassword);

        let mut caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_DEPRECATE_EOF;
        caps &= server_caps | CapabilityFlags::CLIENT_PLUGIN_AUTH;

        let tcp = config.socket.is_none();
        let offers_tls = server_caps.contains(CapabilityFlags::CLIENT_SSL);
        let want_tls = tcp
            && match config.tls {
                TlsMode::Disabled => false,
                TlsMode::Preferred => offers_tls,
                _ => true,
            };
        if want_tls {
            if !offers_tls {
                return Err(Error::new(
                    ErrorKind::Connect,
                    format!(
                        "{} does not offer TLS, but ssl-mode={} requires it",
                        self.endpoint, config.tls
                    ),
                ));
            }
            caps |= CapabilityFlags::CLIENT_SSL;
            let request = SslRequest::new(caps, MAX_ALLOWED_PACKET, HANDSHAKE_COLLATION);
            let mut buf = Vec::new();
            request.serialize(&mut buf);
            self.write_packet(&buf).await?;
            self.upgrade_tls(config).await?;
        }
        self.capabilities = caps;
        let secure = !tcp || want_tls;

        let password = config.password();
        let data = auth_data(&plugin, password, &nonce, secure)?;
        // MariaDB reads its extended capabilities only from a client that does not claim to be
        // plain MySQL (CLIENT_LONG_PASSWORD, which MariaDB's greeting leaves out).
        let ext = if caps.contains(CapabilityFlags::CLIENT_LONG_PASSWORD) {
            MariadbCapabilities::empty()
        } else {
            handshake_ext & MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS
        };
        self.bulk_operations = !ext.is_empty();
        let response = HandshakeResponse::new(
            data.as_deref(),
            version,
            Some(config.user.as_bytes()),
            None::<&[u8]>,
            Some(plugin.clone()),
            caps,
            None,
            MAX_ALLOWED_PACKET,
        )
        .with_mariadb_ext_capabilities(ext);
        let mut buf = Vec::new();
        response.serialize(&mut buf);
        self.write_packet(&buf).await?;
        self.finish_auth(config, plugin, secure).await
    }

    async fn finish_auth(
        &mut self,
        config: &ConnectionConfig,
        mut plugin: AuthPlugin<'static>,
        secure: bool,
    ) -> Result<()> {
        let password = config.password();
        for _ in 0..4 {
            self.read_packet().await?;
            match self.packet.first().copied() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(self.err_packet_error(config)),
                Some(0xfe) => {
                    let switch: AuthSwitchRequest<'_> =
                        ParseBuf(&self.packet).parse(()).map_err(|e| {
                            self.protocol_error(format!("unreadable auth switch request: {e}"))
                        })?;
                    plugin = switch.auth_plugin().into_owned();
                    let nonce = switch.plugin_data().to_vec();
                    let data = auth_data(&plugin, password, &nonce, secure)?.unwrap_or_default();
                    self.write_packet(&data).await?;
                }
                Some(0x01) if matches!(plugin, AuthPlugin::CachingSha2Password) => {
                    match self.packet.get(1) {
                        // Fast authentication succeeded; the OK packet follows.
                        Some(3) => continue,
                        // Full authentication: the password in clear over a secure channel.
                        Some(4) if secure => {
                            let mut clear = password.unwrap_or("").as_bytes().to_vec();
                            clear.push(0);
                            self.write_packet(&clear).await?;
                        }
                        _ => {
                            return Err(Error::new(
                                ErrorKind::Auth,
                                format!(
                                    "{} asks for caching_sha2_password full authentication, \
                                     which holdfast's replication connection does only over TLS \
                                     or the Unix socket: use --ssl-mode=REQUIRED or --socket",
                                    self.endpoint
                                ),
                            ))
                        }
                    }
                }
                _ => return Err(self.protocol_error("unexpected packet during authentication")),
            }
        }
        Err(self.protocol_error("authentication did not finish"))
    }

    async fn upgrade_tls(&mut self, config: &ConnectionConfig) -> Result<()> {
        let tls_config = tls::client_config(config)?;
        let name = rustls::pki_types::ServerName::try_from(config.host.clone()).map_err(|_| {
            Error::usage(format!("`{}` is not a valid TLS server name", config.host))
        })?;
        let placeholder: Box<dyn Transport> = Box::new(tokio::io::duplex(1).0);
        let inner = std::mem::replace(&mut self.io, BufReader::new(placeholder)).into_inner();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
            .connect(name, inner)
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Connect,
                    format!("TLS handshake with {} failed: {e}", self.endpoint),
                    e,
                )
            })?;
        self.io = BufReader::with_capacity(256 * 1024, Box::new(stream));
        Ok(())
    }

    /// The server's version string from its greeting.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The server's id for this connection (for `KILL`).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// Runs a statement that returns no rows (or whose rows are discarded).
    pub async fn execute(&mut self, sql: &str) -> Result<()> {
        self.query(sql).await?;
        while self.next_row().await?.is_some() {}
        Ok(())
    }

    /// Runs a query and returns its rows as text values (`None` for NULL). For small results.
    pub async fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.query(sql).await?;
        let mut rows = Vec::new();
        while let Some(row) = self.next_row().await? {
            let mut values = Vec::new();
            let mut buf = row;
            while !buf.is_empty() {
                let (value, rest) = split_lenenc_value(buf)
                    .ok_or_else(|| Error::server("malformed row in a query result"))?;
                values.push(value.map(|v| String::from_utf8_lossy(v).into_owned()));
                buf = rest;
            }
            rows.push(values);
        }
        Ok(rows)
    }

    /// Sends a text query and reads its result header. Returns the column count (0 for a
    /// statement without a result set); then call [`next_row`](Self::next_row) until `None`.
    pub async fn query(&mut self, sql: &str) -> Result<usize> {
        self.send_sql(Command::COM_QUERY, sql).await?;
        self.read_packet().await?;
        match self.packet.first().copied() {
            Some(0x00) => {
                self.pending_rows = false;
                Ok(0)
            }
            Some(0xff) => Err(self.server_error_here()),
            Some(0xfb) => Err(Error::server(
                "the server asked for a LOCAL INFILE on the raw connection",
            )),
            _ => {
                let columns = read_lenenc_int(&self.packet)
                    .ok_or_else(|| self.protocol_error("malformed result set header"))?
                    as usize;
                for _ in 0..columns {
                    self.read_packet().await?;
                }
                if !self
                    .capabilities
                    .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
                {
                    self.read_packet().await?;
                }
                self.pending_rows = true;
                Ok(columns)
            }
        }
    }

    /// The next row of the current result set as its raw payload (length-encoded values, 0xfb
    /// for NULL), or `None` at the end. The slice is valid until the next call. A row that lies
    /// whole in the read buffer is lent from there without a copy (and is then not the
    /// [`last_packet`](Self::last_packet)).
    pub async fn next_row(&mut self) -> Result<Option<&[u8]>> {
        if !self.pending_rows {
            return Ok(None);
        }
        self.release();
        let buffered = self.io.buffer();
        if let [a, b, c, seq, rest @ ..] = buffered {
            let len = u32::from_le_bytes([*a, *b, *c, 0]) as usize;
            let first = rest.first().copied();
            if len < MAX_PACKET && rest.len() >= len && !matches!(first, Some(0xfe | 0xff)) {
                self.seq = seq.wrapping_add(1);
                self.lent = 4 + len;
                return Ok(Some(&self.io.buffer()[4..4 + len]));
            }
        }
        self.read_packet().await?;
        match self.packet.first().copied() {
            Some(0xfe) if self.packet.len() < MAX_PACKET => {
                self.pending_rows = false;
                Ok(None)
            }
            Some(0xff) => {
                self.pending_rows = false;
                Err(self.server_error_here())
            }
            _ => Ok(Some(&self.packet)),
        }
    }

    /// Whether the server accepted MariaDB's array binding (`COM_STMT_BULK_EXECUTE`) for this
    /// connection.
    pub fn supports_bulk(&self) -> bool {
        self.bulk_operations
    }

    /// Prepares a statement (`COM_STMT_PREPARE`) and reads its definitions, which are
    /// discarded: the caller knows its parameters. Close it with
    /// [`close_statement`](Self::close_statement) when done; the server frees it with the
    /// connection otherwise.
    pub async fn prepare(&mut self, sql: &str) -> Result<Prepared> {
        self.send_sql(Command::COM_STMT_PREPARE, sql).await?;
        self.read_packet().await?;
        match self.packet.first().copied() {
            Some(0x00) if self.packet.len() >= 12 => {}
            Some(0xff) => return Err(self.server_error_here()),
            _ => return Err(self.protocol_error("malformed prepare response")),
        }
        let p = &self.packet;
        let prepared = Prepared {
            id: u32::from_le_bytes([p[1], p[2], p[3], p[4]]),
            columns: u16::from_le_bytes([p[5], p[6]]),
            params: u16::from_le_bytes([p[7], p[8]]),
        };
        let eof = !self
            .capabilities
            .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF);
        for count in [prepared.params, prepared.columns] {
            if count > 0 {
                for _ in 0..count {
                    self.read_packet().await?;
                }
                if eof {
                    self.read_packet().await?;
                }
            }
        }
        Ok(prepared)
    }

    /// Frees a prepared statement (`COM_STMT_CLOSE`; the server sends no reply).
    pub async fn close_statement(&mut self, id: u32) -> Result<()> {
        let mut payload = vec![Command::COM_STMT_CLOSE as u8];
        payload.extend_from_slice(&id.to_le_bytes());
        self.send_command(&payload).await
    }

    /// Sends one `COM_STMT_BULK_EXECUTE` command (built by
    /// [`BulkBatch`](crate::source::bulk::BulkBatch)) without waiting for its answer, so the
    /// caller can prepare the next one while the server executes it;
    /// [`bulk_result`](Self::bulk_result) must be read before anything else is sent. Requires
    /// [`supports_bulk`](Self::supports_bulk).
    pub async fn bulk_send(&mut self, command: &[u8]) -> Result<()> {
        if !self.bulk_operations {
            return Err(Error::internal(
                "COM_STMT_BULK_EXECUTE on a connection that did not negotiate it",
            ));
        }
        self.send_command(command).await
    }

    /// Reads the answer to the command sent by [`bulk_send`](Self::bulk_send).
    pub async fn bulk_result(&mut self) -> Result<OkInfo> {
        self.read_ok().await
    }

    /// Reads an OK packet (or turns an ERR packet into an error).
    async fn read_ok(&mut self) -> Result<OkInfo> {
        self.read_packet().await?;
        match self.packet.first().copied() {
            Some(0x00) => parse_ok(&self.packet[1..])
                .ok_or_else(|| self.protocol_error("malformed OK packet")),
            Some(0xff) => Err(self.server_error_here()),
            _ => Err(self.protocol_error("expected an OK packet")),
        }
    }

    /// Sends a command whose argument is SQL text (`COM_QUERY`, `COM_STMT_PREPARE`).
    async fn send_sql(&mut self, command: Command, sql: &str) -> Result<()> {
        let mut payload = Vec::with_capacity(sql.len() + 1);
        payload.push(command as u8);
        payload.extend_from_slice(sql.as_bytes());
        self.send_command(&payload).await
    }

    /// Sends a command packet (the first byte is the command), starting a new sequence.
    pub async fn send_command(&mut self, payload: &[u8]) -> Result<()> {
        self.seq = 0;
        self.write_packet(payload).await
    }

    /// A server that sends nothing for `timeout` while a read waits (a hung server, a route
    /// that drops packets without closing) fails the read with a transient `Connect` error
    /// instead of waiting forever; the connection is unusable afterwards. `None` (the
    /// default) waits as long as TCP does. Only silence counts: the time spent waiting for the
    /// next bytes inside a read, so a caller that stops reading (back-pressure) never trips
    /// it, nor does a large packet that keeps arriving over a slow link.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.set_silence_limit(timeout, STALL_ADVICE);
    }

    /// [`set_read_timeout`](Self::set_read_timeout), with the advice its error gives (which
    /// setting decides the limit).
    pub fn set_silence_limit(&mut self, timeout: Option<Duration>, advice: &'static str) {
        self.read_timeout = timeout;
        self.stall_advice = advice;
    }

    /// Reads the next whole packet payload (joining packets of 16 MiB and more).
    pub async fn read_packet(&mut self) -> Result<&[u8]> {
        self.release();
        self.packet.clear();
        loop {
            let mut header = [0u8; 4];
            let limit = self.read_timeout;
            read_exact_within(&mut self.io, &mut header, limit)
                .await
                .map_err(|e| self.read_error(e, limit))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            self.seq = header[3].wrapping_add(1);
            let start = self.packet.len();
            self.packet.resize(start + len, 0);
            read_exact_within(&mut self.io, &mut self.packet[start..], limit)
                .await
                .map_err(|e| self.read_error(e, limit))?;
            if len < MAX_PACKET {
                return Ok(&self.packet);
            }
        }
    }

    /// Gives back the buffer bytes of a row lent by [`next_row`](Self::next_row).
    fn release(&mut self) {
        if self.lent > 0 {
            self.io.consume(self.lent);
            self.lent = 0;
        }
    }

    /// The packet most recently read.
    pub fn last_packet(&self) -> &[u8] {
        &self.packet
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<()> {
        // Headers and payload pieces go out in vectored writes: a bulk command of megabytes is
        // not copied just to put 4 bytes in front of it.
        let pieces: Vec<&[u8]> = payload.chunks(MAX_PACKET).collect();
        let mut headers: Vec<[u8; 4]> = Vec::with_capacity(pieces.len() + 1);
        for piece in &pieces {
            let len = (piece.len() as u32).to_le_bytes();
            headers.push([len[0], len[1], len[2], self.seq]);
            self.seq = self.seq.wrapping_add(1);
        }
        // An empty payload, or one ending with a full-size piece, ends with an empty packet.
        if pieces.last().is_none_or(|p| p.len() == MAX_PACKET) {
            headers.push([0, 0, 0, self.seq]);
            self.seq = self.seq.wrapping_add(1);
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * headers.len());
        for (i, header) in headers.iter().enumerate() {
            slices.push(IoSlice::new(header));
            if let Some(piece) = pieces.get(i) {
                slices.push(IoSlice::new(piece));
            }
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let written = self
                .io
                .get_mut()
                .write_vectored(rest)
                .await
                .map_err(|e| self.io_error(e))?;
            if written == 0 {
                let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err(self.io_error(e));
            }
            IoSlice::advance_slices(&mut rest, written);
        }
        self.io
            .get_mut()
            .flush()
            .await
            .map_err(|e| self.io_error(e))
    }

    /// Parses the current packet as an `ERR` packet.
    pub fn parse_server_error(&self) -> ServerErr {
        parse_err(&self.packet, self.capabilities)
    }

    fn server_error_here(&self) -> Error {
        let err = self.parse_server_error();
        // Access denied to a database, table, column or privileged statement, as the driver's
        // errors are classified (`classify_mysql_error`).
        let kind = match err.code {
            1044 | 1045 | 1142 | 1143 | 1227 | 1698 => ErrorKind::Auth,
            _ => ErrorKind::Server,
        };
        Error::new(
            kind,
            format!(
                "{} returned error {}: {}",
                self.endpoint, err.code, err.message
            ),
        )
    }

    fn err_packet_error(&self, config: &ConnectionConfig) -> Error {
        let err = parse_err(&self.packet, self.capabilities);
        let kind = match err.code {
            1045 | 1044 | 1698 | 1251 => ErrorKind::Auth,
            1040 | 1203 => ErrorKind::Connect,
            _ => ErrorKind::Server,
        };
        let mut message = format!(
            "{} refused {}: {} (error {})",
            self.endpoint, config.user, err.message, err.code
        );
        if kind == ErrorKind::Auth {
            match config.password_source() {
                Some(source) => message.push_str(&format!("; the password came from {source}")),
                None => message.push_str("; no password was given"),
            }
        }
        Error::new(kind, message)
    }

    /// A failed read: the stall limit when it was the timer, else the I/O error.
    fn read_error(&self, e: std::io::Error, limit: Option<Duration>) -> Error {
        match (e.kind(), limit) {
            (std::io::ErrorKind::TimedOut, Some(limit)) => Error::new(
                ErrorKind::Connect,
                format!(
                    "{} sent nothing for {}s while a result was being read: the server or the \
                     network is stalled ({})",
                    self.endpoint,
                    limit.as_secs(),
                    self.stall_advice
                ),
            )
            .transient(),
            _ => self.io_error(e),
        }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::with_source(
            ErrorKind::Connect,
            format!("connection to {} lost: {e}", self.endpoint),
            e,
        )
        .transient()
    }

    fn protocol_error(&self, what: impl Into<String>) -> Error {
        Error::server(format!("{}: {}", self.endpoint, what.into()))
    }
}

fn auth_data(
    plugin: &AuthPlugin<'_>,
    password: Option<&str>,
    nonce: &[u8],
    secure: bool,
) -> Result<Option<Vec<u8>>> {
    let password = password.filter(|p| !p.is_empty());
    match plugin {
        AuthPlugin::MysqlClearPassword if !secure => Err(Error::new(
            ErrorKind::Auth,
            "the server asks for the password in clear text over an unencrypted connection; \
             use TLS (--ssl-mode=REQUIRED) or the Unix socket",
        )),
        AuthPlugin::MysqlClearPassword => Ok(password.map(|p| {
            let mut v = p.as_bytes().to_vec();
            v.push(0);
            v
        })),
        AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password => {
            let nonce = match nonce {
                [head @ .., 0] => head,
                all => all,
            };
            Ok(plugin.gen_data(password, nonce).map(|data| {
                let mut buf = Vec::new();
                data.serialize(&mut buf);
                buf
            }))
        }
        // Plugins that authenticate by the peer (unix_socket) need no data from us.
        AuthPlugin::Other(name) if name.as_ref() == b"unix_socket" => Ok(None),
        other => Err(Error::new(
            ErrorKind::Auth,
            format!(
                "the account uses the authentication plugin `{}`, which holdfast's raw \
                 connection does not speak; use mysql_native_password or unix_socket for the \
                 backup user",
                String::from_utf8_lossy(other.as_bytes())
            ),
        )),
    }
}

fn parse_err(packet: &[u8], caps: CapabilityFlags) -> ServerErr {
    match ParseBuf(packet).parse::<ErrPacket<'_>>(caps) {
        Ok(ErrPacket::Error(e)) => ServerErr {
            code: e.error_code(),
            message: e.message_str().into_owned(),
        },
        _ => ServerErr {
            code: 0,
            message: "unreadable error packet".into(),
        },
    }
}

/// Parses an OK packet's body after its 0x00 header: affected rows, last insert id, status,
/// warnings.
fn parse_ok(body: &[u8]) -> Option<OkInfo> {
    let (affected_rows, rest) = split_lenenc_int(body)?;
    let (_, rest) = split_lenenc_int(rest)?;
    let warnings = rest
        .get(2..4)
        .map_or(0, |w| u16::from_le_bytes([w[0], w[1]]));
    Some(OkInfo {
        affected_rows,
        warnings,
    })
}

/// Reads a length-encoded integer at the start of `buf`.
pub fn read_lenenc_int(buf: &[u8]) -> Option<u64> {
    split_lenenc_int(buf).map(|(v, _)| v)
}

fn split_lenenc_int(buf: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = buf.split_first()?;
    let width = match first {
        0..=0xfa => return Some((first as u64, rest)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(bytes);
    Some((u64::from_le_bytes(v), &rest[width..]))
}

/// Splits one text-protocol value (`None` for NULL) off the front of a row payload.
pub fn split_lenenc_value(buf: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    if buf.first() == Some(&0xfb) {
        return Some((None, &buf[1..]));
    }
    let (len, rest) = split_lenenc_int(buf)?;
    let len = usize::try_from(len).ok()?;
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((Some(value), rest))
}

/// TLS client settings from the connection's ssl-mode and files.
mod tls {
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

    pub(super) fn client_config(config: &ConnectionConfig) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match config.tls {
            TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
                let roots = Arc::new(roots(config.ssl_ca.as_deref())?);
                let webpki =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| Error::usage(format!("TLS certificate authority: {e}")))?;
                Arc::new(Verify {
                    inner: webpki,
                    check_name: config.tls == TlsMode::VerifyIdentity,
                })
            }
            _ => Arc::new(AcceptAny(provider)),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match (&config.ssl_cert, &config.ssl_key) {
            (Some(cert), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| pem_error("ssl-cert", cert, e))?;
                let key =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("ssl-key", key, e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::usage(format!("TLS client certificate: {e}")))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    fn pem_error(what: &str, path: &Path, e: rustls::pki_types::pem::Error) -> Error {
        Error::usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    }

    fn roots(ca: Option<&Path>) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match ca {
            Some(path) => {
                for cert in
                    CertificateDer::pem_file_iter(path).map_err(|e| pem_error("ssl-ca", path, e))?
                {
                    let cert = cert.map_err(|e| pem_error("ssl-ca", path, e))?;
                    roots
                        .add(cert)
                        .map_err(|e| Error::usage(format!("ssl-ca {}: {e}", path.display())))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(roots)
    }

    /// ssl-mode REQUIRED/PREFERRED: encrypted, certificate not checked (MySQL's meaning).
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// VERIFY_CA checks the chain only; VERIFY_IDENTITY also the host name.
    #[derive(Debug)]
    struct Verify {
        inner: Arc<rustls::client::WebPkiServerVerifier>,
        check_name: bool,
    }

    impl ServerCertVerifier for Verify {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) if !self.check_name => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }
}

/// Fills `buf` from `io`, failing with `io::ErrorKind::TimedOut` when no byte comes for
/// `limit` (none: waits as long as TCP does). The limit is on each wait for more bytes, not on
/// the whole read: a packet that keeps arriving, however slowly, is not a stall.
async fn read_exact_within<R: tokio::io::AsyncBufRead + Unpin>(
    io: &mut R,
    buf: &mut [u8],
    limit: Option<Duration>,
) -> std::io::Result<()> {
    if limit.is_none() {
        io.read_exact(buf).await?;
        return Ok(());
    }
    let mut filled = 0;
    while filled < buf.len() {
        let available = within(limit, io.fill_buf()).await?;
        if available.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "early eof",
            ));
        }
        let n = available.len().min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&available[..n]);
        io.consume(n);
        filled += n;
    }
    Ok(())
}

/// `fut` limited to `limit` (none: unlimited); running out is an `io::ErrorKind::TimedOut`.
async fn within<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    match limit {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read limit is on silence: bytes that keep trickling in (every 60 ms, 600 ms in all
    /// against a limit of 200 ms) fill the buffer; a pause longer than the limit fails.
    #[tokio::test]
    async fn read_limit_counts_silence_not_the_whole_read() {
        let limit = Some(Duration::from_millis(200));
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut rx = BufReader::new(rx);
        let writer = tokio::spawn(async move {
            for i in 0..10u8 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                tx.write_all(&[i]).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(600)).await;
            tx.write_all(&[99]).await.unwrap();
        });
        let started = std::time::Instant::now();
        let mut buf = [0u8; 10];
        read_exact_within(&mut rx, &mut buf, limit).await.unwrap();
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(started.elapsed() > Duration::from_millis(500));
        let e = read_exact_within(&mut rx, &mut buf[..1], limit)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        writer.abort();
    }

    #[test]
    fn lenenc_values_split_and_reject_truncation() {
        let row = [3, b'a', b'b', b'c', 0xfb, 0xfc, 2, 0, b'x', b'y'];
        let (a, rest) = split_lenenc_value(&row).unwrap();
        assert_eq!(a, Some(&b"abc"[..]));
        let (b, rest) = split_lenenc_value(rest).unwrap();
        assert_eq!(b, None);
        let (c, rest) = split_lenenc_value(rest).unwrap();
        assert_eq!(c, Some(&b"xy"[..]));
        assert!(rest.is_empty());
        assert!(split_lenenc_value(&[5, b'a']).is_none());
        assert!(split_lenenc_value(&[0xfc, 1]).is_none());
        assert!(split_lenenc_value(&[0xff]).is_none());
    }

    #[test]
    fn ok_packets_give_affected_rows_and_warnings() {
        // affected 300 (0xfc 0x2c 0x01), insert id 0, status 2, warnings 3.
        let body = [0xfc, 0x2c, 0x01, 0, 2, 0, 3, 0];
        assert_eq!(
            parse_ok(&body),
            Some(OkInfo {
                affected_rows: 300,
                warnings: 3
            })
        );
        assert_eq!(parse_ok(&[0xfc, 1]), None);
    }
}
