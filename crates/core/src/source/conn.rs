//! Connection settings: where they come from, how they merge, and connecting.
//!
//! [`ConnectionSpec`] is what the user gave (flags, a URL, file paths); [`ConnectionConfig::resolve`]
//! merges it with MySQL option files and the environment into a [`ConnectionConfig`], which builds
//! driver options ([`ConnectionConfig::opts`]) and connects with classified errors
//! ([`ConnectionConfig::connect`]).
//!
//! Precedence, lowest to highest (a later source overrides an earlier one, setting by setting):
//! 1. option files, groups `[client]`, `[client-server]`, `[client-mariadb]`, `[mariadb-client]`
//!    and `[holdfast]`: `/etc/my.cnf`, `/etc/mysql/my.cnf`, `$MARIADB_HOME/my.cnf` (or
//!    `$MYSQL_HOME/my.cnf`), `~/.my.cnf` — or only the `--defaults-file` — then the
//!    `--defaults-extra-file`;
//! 2. the environment: `MYSQL_HOST`, `MYSQL_TCP_PORT`, `MYSQL_UNIX_PORT`, `MYSQL_PWD`, then
//!    `HOLDFAST_PASSWORD` (which wins over `MYSQL_PWD`); empty variables count as unset;
//! 3. the connection URL;
//! 4. explicit flags;
//! 5. for the password only, the `--password-file`.
//!
//! Defaults: host `localhost`, port 3306, user `$USER` (else `root`), TLS `PREFERRED`, or
//! `VERIFY_CA` when a CA is given without a mode (as the MySQL clients do).
//!
//! Transport: a host other than `localhost` means TCP. For `localhost`, a socket wins unless a port
//! was given at a higher precedence than the socket (then TCP to 127.0.0.1); with neither, the
//! first existing well-known socket (`/run/mysqld/mysqld.sock`, …) is used, else TCP to
//! 127.0.0.1:3306. A socket given at a higher precedence than a remote host wins over it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use percent_encoding::percent_decode_str;

use crate::{Error, ErrorKind, Result};

#[path = "option_file.rs"]
mod option_file;

use option_file::{OptionReader, RawOption};

/// The port when none is given.
pub const DEFAULT_PORT: u16 = 3306;

/// How long [`ConnectionConfig::connect`] waits for the handshake and authentication.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Session `wait_timeout` set on every connection: a worker may sit idle for hours while a large
/// table streams elsewhere, and the server default (8 hours) would drop it mid-backup.
pub const SESSION_WAIT_TIMEOUT_SECS: usize = 7 * 24 * 3600;

/// Session `net_read_timeout`/`net_write_timeout`: the server gives up on a client that does not
/// read (or send) for this long. The defaults (30 s/60 s) are too short when compression or a
/// slow object store applies back-pressure to a dump stream or to `LOAD DATA LOCAL INFILE`.
pub const SESSION_NET_TIMEOUT_SECS: u64 = 3600;

/// The option-file groups we read, in no particular order (the file order decides).
pub const OPTION_GROUPS: &[&str] = &[
    "client",
    "client-server",
    "client-mariadb",
    "mariadb-client",
    "holdfast",
];

/// System option files, read in this order before the user's `~/.my.cnf`.
const SYSTEM_OPTION_FILES: &[&str] = &["/etc/my.cnf", "/etc/mysql/my.cnf"];

/// Where servers put their socket by default (MariaDB/Debian, RHEL, upstream MySQL tarballs).
const DEFAULT_SOCKETS: &[&str] = &[
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/var/lib/mysql/mysql.sock",
    "/tmp/mysql.sock",
];

const URL_FORM: &str = "mysql://[user[:password]@]host[:port][/database]\
                        [?socket=/path/to.sock&ssl-mode=REQUIRED&ssl-ca=/path/ca.pem]";

/// What the user gave (CLI flags / config), before merging. Every field is optional; see the
/// module documentation for how they combine with option files and the environment.
#[derive(Clone, Default)]
pub struct ConnectionSpec {
    /// `mysql://user@host:port/db?socket=/path&ssl-mode=REQUIRED&ssl-ca=/x.pem` (`mariadb://` too).
    /// A password in the URL is accepted but discouraged: it shows up in `ps` and shell history.
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub user: Option<String>,
    /// `--defaults-file`: only this file is read (plus the `defaults_extra_file` if also given).
    pub defaults_file: Option<PathBuf>,
    /// `--defaults-extra-file`: read after the standard files.
    pub defaults_extra_file: Option<PathBuf>,
    /// A file whose first line is the password; beats every other password source.
    pub password_file: Option<PathBuf>,
    pub tls: Option<TlsMode>,
    pub ssl_ca: Option<PathBuf>,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
}

impl fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSpec")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("defaults_file", &self.defaults_file)
            .field("defaults_extra_file", &self.defaults_extra_file)
            .field("password_file", &self.password_file)
            .field("tls", &self.tls)
            .field("ssl_ca", &self.ssl_ca)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .finish()
    }
}

/// TLS requirements, with MySQL's `--ssl-mode` meanings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never TLS.
    Disabled,
    /// TLS over TCP when the server offers it, without verifying the certificate; plaintext
    /// otherwise. Socket connections stay plaintext (they never leave the machine).
    Preferred,
    /// TLS over TCP or fail; the certificate is not verified.
    Required,
    /// TLS with a certificate signed by `ssl_ca` (or a public root when no CA is given).
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host we connect to.
    VerifyIdentity,
}

impl TlsMode {
    /// The MySQL spelling: `DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disabled => "DISABLED",
            TlsMode::Preferred => "PREFERRED",
            TlsMode::Required => "REQUIRED",
            TlsMode::VerifyCa => "VERIFY_CA",
            TlsMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TlsMode {
    type Err = Error;

    /// Case-insensitive, `-` or `_`: `verify-ca`, `VERIFY_CA`, …
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disabled" => Ok(TlsMode::Disabled),
            "preferred" => Ok(TlsMode::Preferred),
            "required" => Ok(TlsMode::Required),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-identity" => Ok(TlsMode::VerifyIdentity),
            _ => Err(Error::usage(format!(
                "unknown ssl-mode `{s}`: use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
            ))),
        }
    }
}

const TLS_UNKNOWN: u8 = 0;
const TLS_OFFERED: u8 = 1;
const TLS_NOT_OFFERED: u8 = 2;

/// The merged result: where to connect, as whom, and how.
///
/// `socket` is `Some` exactly when connections go over the Unix socket (then `host` is
/// `localhost` and `port` is informational). The password is private: it never appears in
/// `Debug` or [`display`](Self::display); [`password`](Self::password) hands it out for child
/// processes.
#[derive(Clone)]
pub struct ConnectionConfig {
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    pub user: String,
    password: Option<String>,
    /// Where the password came from, for error messages ("MYSQL_PWD", "~/.my.cnf [client]").
    password_source: Option<String>,
    pub tls: TlsMode,
    pub ssl_ca: Option<PathBuf>,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    /// The default database of new connections (from the URL path or [`with_database`](Self::with_database)).
    pub database: Option<String>,
    /// For `PREFERRED`: whether the server offered TLS on the last [`connect`](Self::connect),
    /// shared by clones so that [`opts`](Self::opts) follows what was learnt.
    tls_probe: Arc<AtomicU8>,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_source", &self.password_source)
            .field("tls", &self.tls)
            .field("ssl_ca", &self.ssl_ca)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("database", &self.database)
            .finish()
    }
}

impl ConnectionConfig {
    /// Merges `spec` with the option files and the process environment (see the module docs).
    pub fn resolve(spec: &ConnectionSpec) -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        Self::resolve_with_env(spec, &env, home.as_deref())
    }

    /// [`resolve`](Self::resolve) with the environment and home directory injected. System option
    /// files (`/etc/my.cnf`, `/etc/mysql/my.cnf`) are still read unless `spec.defaults_file` is set.
    pub fn resolve_with_env(
        spec: &ConnectionSpec,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self> {
        let system: Vec<PathBuf> = SYSTEM_OPTION_FILES.iter().map(PathBuf::from).collect();
        let sockets: Vec<PathBuf> = DEFAULT_SOCKETS.iter().map(PathBuf::from).collect();
        resolve_inner(spec, env, home, &system, &sockets)
    }

    /// `root@127.0.0.1:3306` or `root@localhost (socket /run/mysqld/mysqld.sock)`; never the
    /// password.
    pub fn display(&self) -> String {
        format!("{}@{}", self.user, self.endpoint())
    }

    /// Where we connect, without the user: `db1:3306` or `localhost (socket /x.sock)`.
    pub fn endpoint(&self) -> String {
        match &self.socket {
            Some(socket) => format!("localhost (socket {})", socket.display()),
            None if self.host.contains(':') => format!("[{}]:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Whether a password is set (possibly empty).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The password, for handing to a child process (`MYSQL_PWD`, or a 0600 option file from
    /// [`client_option_file`](Self::client_option_file)). Never log it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Where the password came from, e.g. `MYSQL_PWD` or `~/.my.cnf [client]`.
    pub fn password_source(&self) -> Option<&str> {
        self.password_source.as_deref()
    }

    /// A copy with another default database (`None`: no default database).
    pub fn with_database(&self, db: Option<&str>) -> Self {
        let mut config = self.clone();
        config.database = db.map(str::to_string);
        config
    }

    /// A copy with another password; `source` says where it came from, for error messages
    /// (e.g. `"holdfast.toml"`).
    pub fn with_password(&self, password: Option<&str>, source: &str) -> Self {
        let mut config = self.clone();
        config.password = password.map(str::to_string);
        config.password_source = password.map(|_| source.to_string());
        config
    }

    /// Driver options: socket or TCP as resolved, TLS per [`tls`](Self::tls), statement cache
    /// off, `prefer_socket` off (we chose the transport; never let the driver hop to a local
    /// socket found in `@@socket`), TCP keepalive, and the session timeouts
    /// [`SESSION_WAIT_TIMEOUT_SECS`] / [`SESSION_NET_TIMEOUT_SECS`] as setup statements.
    ///
    /// No local-infile handler is installed: `LOAD DATA LOCAL INFILE` is allowed by the client
    /// capabilities, and the caller sets a handler per connection (`Conn::set_infile_handler`).
    ///
    /// For `PREFERRED` over TCP, TLS is requested only once a [`connect`](Self::connect) of this
    /// config (or a clone) has seen the server offer it; before that these options are plaintext.
    /// Prefer `connect`, which also applies the connect timeout and classifies errors.
    pub fn opts(&self) -> Opts {
        let tls = match self.tls {
            TlsMode::Preferred => self.tls_probe.load(Ordering::Relaxed) == TLS_OFFERED,
            mode => mode != TlsMode::Disabled,
        };
        self.build_opts(tls && self.socket.is_none())
    }

    /// Connects (within [`CONNECT_TIMEOUT`]) and authenticates. Errors are classified: a refused
    /// login is [`ErrorKind::Auth`] and says where the password came from; an unreachable server
    /// is [`ErrorKind::Connect`] (transient) naming the host and port or the socket.
    pub async fn connect(&self) -> Result<Conn> {
        let tcp = self.socket.is_none();
        if tcp && self.tls != TlsMode::Disabled {
            self.check_tls_files()?;
        }
        match self.tls {
            TlsMode::Preferred if tcp => {
                if self.tls_probe.load(Ordering::Relaxed) != TLS_NOT_OFFERED {
                    match self.attempt(true).await {
                        Ok(conn) => {
                            self.tls_probe.store(TLS_OFFERED, Ordering::Relaxed);
                            return Ok(conn);
                        }
                        Err(Attempt::Driver(e)) if tls_unavailable(&e) => {
                            tracing::debug!(
                                "{} does not offer usable TLS ({e}); continuing unencrypted as \
                                 ssl-mode=PREFERRED allows",
                                self.endpoint()
                            );
                            self.tls_probe.store(TLS_NOT_OFFERED, Ordering::Relaxed);
                        }
                        Err(e) => return Err(self.classify(e)),
                    }
                }
                self.attempt(false).await.map_err(|e| self.classify(e))
            }
            TlsMode::Disabled | TlsMode::Preferred => {
                self.attempt(false).await.map_err(|e| self.classify(e))
            }
            _ => self.attempt(tcp).await.map_err(|e| self.classify(e)),
        }
    }

    /// A `[client]` option-file body with these settings (user, password, host/port or socket,
    /// CA and client certificate; not the TLS mode, whose option name differs between MySQL and
    /// MariaDB clients), for `mariabackup --defaults-extra-file=…` and the like. It holds the
    /// password: write it with mode 0600 and remove it afterwards.
    pub fn client_option_file(&self) -> String {
        use option_file::quote;
        let mut out = String::from("[client]\n");
        out.push_str(&format!("user={}\n", quote(&self.user)));
        if let Some(password) = &self.password {
            out.push_str(&format!("password={}\n", quote(password)));
        }
        match &self.socket {
            Some(socket) => {
                out.push_str("host=localhost\n");
                out.push_str(&format!("socket={}\n", quote(&socket.to_string_lossy())));
            }
            None => {
                out.push_str(&format!("host={}\n", quote(&self.host)));
                out.push_str(&format!("port={}\n", self.port));
            }
        }
        for (key, path) in [
            ("ssl-ca", &self.ssl_ca),
            ("ssl-cert", &self.ssl_cert),
            ("ssl-key", &self.ssl_key),
        ] {
            if let Some(path) = path {
                out.push_str(&format!("{key}={}\n", quote(&path.to_string_lossy())));
            }
        }
        out
    }

    /// The driver reads these files while connecting and reports a missing one as a bare I/O
    /// error, which would read like an unreachable server; say what is wrong instead.
    fn check_tls_files(&self) -> Result<()> {
        let files = [
            ("ssl-ca", &self.ssl_ca),
            ("ssl-cert", &self.ssl_cert),
            ("ssl-key", &self.ssl_key),
        ];
        for (what, path) in files {
            if let Some(path) = path {
                if let Err(e) = std::fs::File::open(path) {
                    return Err(Error::with_source(
                        ErrorKind::Usage,
                        format!("cannot read the {what} file {}", path.display()),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    fn build_opts(&self, tls: bool) -> Opts {
        let mut builder = OptsBuilder::default()
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .db_name(self.database.clone())
            .prefer_socket(false)
            .stmt_cache_size(0)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .wait_timeout(Some(SESSION_WAIT_TIMEOUT_SECS))
            .setup(vec![format!(
                "SET SESSION wait_timeout = {SESSION_WAIT_TIMEOUT_SECS}, \
                 net_read_timeout = {SESSION_NET_TIMEOUT_SECS}, \
                 net_write_timeout = {SESSION_NET_TIMEOUT_SECS}"
            )])
            .connect_attribute("program_name", "holdfast");
        builder = match &self.socket {
            Some(socket) => builder
                .ip_or_hostname("localhost")
                .tcp_port(self.port)
                .socket(Some(socket.to_string_lossy().into_owned())),
            None => builder
                .ip_or_hostname(self.host.clone())
                .tcp_port(self.port),
        };
        if tls {
            builder = builder.ssl_opts(Some(self.ssl_opts()));
        }
        builder.into()
    }

    fn ssl_opts(&self) -> SslOpts {
        let mut ssl = SslOpts::default();
        if let (Some(cert), Some(key)) = (&self.ssl_cert, &self.ssl_key) {
            ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        let with_ca = |ssl: SslOpts| match &self.ssl_ca {
            Some(ca) => ssl
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true),
            None => ssl,
        };
        match self.tls {
            TlsMode::Disabled | TlsMode::Preferred | TlsMode::Required => ssl
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
            TlsMode::VerifyCa => with_ca(ssl).with_danger_skip_domain_validation(true),
            TlsMode::VerifyIdentity => with_ca(ssl),
        }
    }

    async fn attempt(&self, tls: bool) -> std::result::Result<Conn, Attempt> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.build_opts(tls))).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Attempt::Driver(e)),
            Err(_) => Err(Attempt::TimedOut),
        }
    }

    fn classify(&self, failure: Attempt) -> Error {
        match failure {
            Attempt::TimedOut => Error::new(
                ErrorKind::Connect,
                format!(
                    "timed out after {}s connecting to {}; check that the server is running and \
                     reachable there (host, port, firewall)",
                    CONNECT_TIMEOUT.as_secs(),
                    self.endpoint()
                ),
            )
            .transient(),
            Attempt::Driver(e) => self.classify_connect_error(e),
        }
    }

    /// Turns a driver error from connecting into an [`Error`] that says what to check.
    fn classify_connect_error(&self, e: mysql_async::Error) -> Error {
        use mysql_async::{DriverError, Error as E, IoError};
        let endpoint = self.endpoint();
        match &e {
            E::Server(se) => match se.code {
                // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
                1045 | 1698 => {
                    let password = match &self.password_source {
                        Some(source) if self.password.as_deref() != Some("") => {
                            format!("with the password from {source}")
                        }
                        _ => "without a password (give one in ~/.my.cnf [client], MYSQL_PWD, \
                              HOLDFAST_PASSWORD or a password file)"
                            .to_string(),
                    };
                    let mut msg = format!(
                        "the server at {endpoint} refused user '{}' {password}; check the user \
                         and password",
                        self.user
                    );
                    if self.socket.is_some() && se.code == 1698 {
                        msg.push_str(
                            ", or whether the account authenticates by unix_socket (then run as \
                             the matching OS user)",
                        );
                    }
                    Error::with_source(ErrorKind::Auth, msg, e)
                }
                // ER_DBACCESS_DENIED_ERROR
                1044 => Error::with_source(
                    ErrorKind::Auth,
                    format!(
                        "user '{}' may not use database `{}` on {endpoint}; grant access or \
                         connect without a default database",
                        self.user,
                        self.database.as_deref().unwrap_or("")
                    ),
                    e,
                ),
                // ER_HOST_NOT_PRIVILEGED
                1130 => Error::with_source(
                    ErrorKind::Auth,
                    format!(
                        "the server at {endpoint} does not let user '{}' connect from this host; \
                         create the account for this client's address",
                        self.user
                    ),
                    e,
                ),
                // ER_BAD_DB_ERROR
                1049 => Error::with_source(
                    ErrorKind::Usage,
                    format!(
                        "database `{}` does not exist on {endpoint}",
                        self.database.as_deref().unwrap_or("")
                    ),
                    e,
                ),
                // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS
                1040 | 1203 => Error::with_source(
                    ErrorKind::Connect,
                    format!("the server at {endpoint} has too many connections; retry later or raise max_connections"),
                    e,
                )
                .transient(),
                // ER_HOST_IS_BLOCKED
                1129 => Error::with_source(
                    ErrorKind::Connect,
                    format!(
                        "the server at {endpoint} blocks this host after too many failed \
                         connections; run FLUSH HOSTS on it"
                    ),
                    e,
                ),
                _ => crate::source::classify_mysql_error(e)
                    .context(format!("connecting to {endpoint}")),
            },
            _ if tls_failure(&e) && self.socket.is_none() && self.tls > TlsMode::Preferred => {
                let text = e.to_string();
                let hint = if text.contains("not valid for name") {
                    if self.tls == TlsMode::VerifyCa {
                        // mysql_async 0.37.1 ignores skip_domain_validation with rustls 0.23
                        // (blackbeam/mysql_async#404, fixed upstream by #408, not released).
                        "the certificate does not name this host, which VERIFY_CA should accept \
                         but this build cannot yet; connect by a name the certificate carries, \
                         or use ssl-mode=REQUIRED (encrypted, unverified)"
                            .to_string()
                    } else {
                        "the certificate does not name this host; connect by a name the \
                         certificate carries"
                            .to_string()
                    }
                } else if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
                    match &self.ssl_ca {
                        Some(ca) => format!(
                            "the certificate is not signed by the CA in {}; set ssl-ca to the \
                             CA that signed the server's certificate",
                            ca.display()
                        ),
                        None => "the certificate is not signed by a public CA; set ssl-ca to \
                                 the CA that signed the server's certificate"
                            .to_string(),
                    }
                } else {
                    "check ssl-mode, ssl-ca, ssl-cert and ssl-key".to_string()
                };
                Error::with_source(
                    ErrorKind::Connect,
                    format!("TLS with {endpoint} failed (ssl-mode={}): {hint}", self.tls),
                    e,
                )
            }
            E::Io(IoError::Io(io)) => {
                let what = match (&self.socket, io.kind()) {
                    (Some(socket), std::io::ErrorKind::NotFound) => format!(
                        "socket {} does not exist; check that the server is running and the \
                         socket path (socket=… in my.cnf, --socket), or connect over TCP with \
                         --host/--port",
                        socket.display()
                    ),
                    (Some(socket), std::io::ErrorKind::PermissionDenied) => format!(
                        "no permission to use socket {}; check the permissions of the socket \
                         and its directory",
                        socket.display()
                    ),
                    _ if io.to_string().contains("lookup address") => format!(
                        "cannot resolve the host name of {endpoint}; check the host"
                    ),
                    _ => format!(
                        "cannot connect to {endpoint}; check that the server is running and \
                         listening there (host, port or socket)"
                    ),
                };
                Error::with_source(ErrorKind::Connect, what, e).transient()
            }
            E::Driver(DriverError::NoClientSslFlagFromServer) => Error::with_source(
                ErrorKind::Connect,
                format!(
                    "the server at {endpoint} does not offer TLS, but ssl-mode={}; enable TLS on \
                     the server or choose ssl-mode=PREFERRED",
                    self.tls
                ),
                e,
            ),
            E::Driver(DriverError::UnknownAuthPlugin { name }) => Error::with_source(
                ErrorKind::Auth,
                format!(
                    "user '{}' on {endpoint} authenticates with the `{name}` plugin, which \
                     holdfast does not support; use mysql_native_password or \
                     caching_sha2_password for this account",
                    self.user
                ),
                e,
            ),
            E::Driver(DriverError::CleartextPluginDisabled) => Error::with_source(
                ErrorKind::Auth,
                format!(
                    "user '{}' on {endpoint} needs the cleartext password plugin (PAM/LDAP), \
                     which holdfast does not enable; use a native-password account",
                    self.user
                ),
                e,
            ),
            _ => crate::source::classify_mysql_error(e).context(format!("connecting to {endpoint}")),
        }
    }
}

/// Why one connection attempt failed.
enum Attempt {
    TimedOut,
    Driver(mysql_async::Error),
}

/// Whether `PREFERRED` may fall back to plaintext after this error: the server lacks TLS, or the
/// TLS handshake failed (an old server whose TLS rustls cannot speak). Falling back is no weaker
/// than what `PREFERRED` promises, since an active attacker can strip the TLS offer anyway.
fn tls_unavailable(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error as E};
    matches!(e, E::Driver(DriverError::NoClientSslFlagFromServer)) || tls_failure(e)
}

/// Whether the error comes from the TLS layer. tokio-rustls reports handshake and certificate
/// failures as `io::ErrorKind::InvalidData`, which the driver wraps as a plain I/O error; the
/// driver's own TLS setup errors (reading the CA or key) are `IoError::Tls`.
fn tls_failure(e: &mysql_async::Error) -> bool {
    use mysql_async::{Error as E, IoError};
    match e {
        E::Io(IoError::Tls(_)) => true,
        E::Io(IoError::Io(io)) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// Where a setting came from; the rank orders the precedence levels.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Default,
    File { path: PathBuf, group: String },
    Env(&'static str),
    Url,
    Flag,
    PasswordFile(PathBuf),
}

impl Origin {
    fn rank(&self) -> u8 {
        match self {
            Origin::Default => 0,
            Origin::File { .. } => 1,
            Origin::Env(_) => 2,
            Origin::Url => 3,
            Origin::Flag => 4,
            Origin::PasswordFile(_) => 5,
        }
    }

    fn describe(&self, home: Option<&Path>) -> String {
        match self {
            Origin::Default => "the defaults".to_string(),
            Origin::File { path, group } => format!("{} [{group}]", tilde(path, home)),
            Origin::Env(name) => (*name).to_string(),
            Origin::Url => "the connection URL".to_string(),
            Origin::Flag => "the command line".to_string(),
            Origin::PasswordFile(path) => format!("the password file {}", tilde(path, home)),
        }
    }
}

/// `/home/alice/.my.cnf` → `~/.my.cnf` when `home` is `/home/alice`.
fn tilde(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|home| path.strip_prefix(home).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

type Slot<T> = Option<(T, Origin)>;

/// Settings as they accumulate; sources are applied from lowest to highest precedence, so a
/// later `set` simply overwrites.
#[derive(Default)]
struct Layers {
    host: Slot<String>,
    port: Slot<u16>,
    socket: Slot<PathBuf>,
    user: Slot<String>,
    password: Slot<String>,
    tls: Slot<TlsMode>,
    ssl_ca: Slot<PathBuf>,
    ssl_cert: Slot<PathBuf>,
    ssl_key: Slot<PathBuf>,
    database: Slot<String>,
}

fn set<T>(slot: &mut Slot<T>, value: T, origin: &Origin) {
    *slot = Some((value, origin.clone()));
}

/// Sets a string setting unless the value is empty (an empty host or user means "not given").
fn set_nonempty(slot: &mut Slot<String>, value: &str, origin: &Origin) {
    if !value.is_empty() {
        set(slot, value.to_string(), origin);
    }
}

fn set_path(slot: &mut Slot<PathBuf>, value: &str, origin: &Origin) {
    if !value.is_empty() {
        set(slot, PathBuf::from(value), origin);
    }
}

fn parse_bool(value: Option<&str>) -> Option<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("1" | "on" | "true" | "yes") => Some(true),
        Some("0" | "off" | "false" | "no") => Some(false),
        _ => None,
    }
}

impl Layers {
    fn apply_option(&mut self, option: &RawOption) -> Result<()> {
        let origin = Origin::File {
            path: option.path.clone(),
            group: option.group.clone(),
        };
        let at = || format!("option file {}:{}", option.path.display(), option.line);
        let value = option.value.as_deref();
        match (option.key.as_str(), value) {
            ("host", Some(v)) => set_nonempty(&mut self.host, v, &origin),
            ("user", Some(v)) => set_nonempty(&mut self.user, v, &origin),
            ("socket", Some(v)) => set_path(&mut self.socket, v, &origin),
            ("password", Some(v)) => set(&mut self.password, v.to_string(), &origin),
            ("password", None) => tracing::debug!(
                "{}: a bare `password` asks for a prompt, which holdfast does not do; ignored",
                at()
            ),
            ("port", Some(v)) => match v.trim().parse::<u16>() {
                Ok(0) => {}
                Ok(port) => set(&mut self.port, port, &origin),
                Err(_) => {
                    return Err(Error::usage(format!(
                        "{}: port must be a number from 1 to 65535, not `{v}`",
                        at()
                    )))
                }
            },
            ("ssl-ca", Some(v)) => set_path(&mut self.ssl_ca, v, &origin),
            ("ssl-cert", Some(v)) => set_path(&mut self.ssl_cert, v, &origin),
            ("ssl-key", Some(v)) => set_path(&mut self.ssl_key, v, &origin),
            ("ssl-mode", Some(v)) => {
                let mode = v.parse::<TlsMode>().map_err(|e| e.context(at()))?;
                set(&mut self.tls, mode, &origin);
            }
            ("ssl" | "enable-ssl", v) => match parse_bool(v) {
                // `ssl` asks for TLS but does not undo a stricter verification asked for earlier.
                Some(true) => {
                    let mode = match self.tls.as_ref().map(|t| t.0) {
                        Some(m @ (TlsMode::VerifyCa | TlsMode::VerifyIdentity)) => m,
                        _ => TlsMode::Required,
                    };
                    set(&mut self.tls, mode, &origin);
                }
                Some(false) => set(&mut self.tls, TlsMode::Disabled, &origin),
                None => {
                    return Err(Error::usage(format!(
                        "{}: ssl must be 0 or 1, not `{}`",
                        at(),
                        v.unwrap_or("")
                    )))
                }
            },
            ("skip-ssl" | "disable-ssl", None) => set(&mut self.tls, TlsMode::Disabled, &origin),
            ("ssl-verify-server-cert", v) => match parse_bool(v) {
                Some(true) => set(&mut self.tls, TlsMode::VerifyIdentity, &origin),
                Some(false) => {}
                None => {
                    return Err(Error::usage(format!(
                        "{}: ssl-verify-server-cert must be 0 or 1, not `{}`",
                        at(),
                        v.unwrap_or("")
                    )))
                }
            },
            _ => {}
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(host) = get("MYSQL_HOST") {
            set(&mut self.host, host, &Origin::Env("MYSQL_HOST"));
        }
        if let Some(port) = get("MYSQL_TCP_PORT") {
            match port.trim().parse::<u16>() {
                Ok(0) => {}
                Ok(port) => set(&mut self.port, port, &Origin::Env("MYSQL_TCP_PORT")),
                Err(_) => {
                    return Err(Error::usage(format!(
                        "MYSQL_TCP_PORT must be a number from 1 to 65535, not `{port}`"
                    )))
                }
            }
        }
        if let Some(socket) = get("MYSQL_UNIX_PORT") {
            set(
                &mut self.socket,
                PathBuf::from(socket),
                &Origin::Env("MYSQL_UNIX_PORT"),
            );
        }
        for name in ["MYSQL_PWD", "HOLDFAST_PASSWORD"] {
            if let Some(password) = get(name) {
                set(&mut self.password, password, &Origin::Env(name));
            }
        }
        Ok(())
    }

    fn apply_url(&mut self, url: UrlParts) {
        let o = Origin::Url;
        if let Some(v) = url.user {
            set_nonempty(&mut self.user, &v, &o);
        }
        if let Some(v) = url.password {
            tracing::warn!(
                "the connection URL contains a password, which other users can see in the \
                 process list; prefer ~/.my.cnf, MYSQL_PWD or a password file"
            );
            set(&mut self.password, v, &o);
        }
        if let Some(v) = url.host {
            set_nonempty(&mut self.host, &v, &o);
        }
        if let Some(v) = url.port {
            set(&mut self.port, v, &o);
        }
        if let Some(v) = url.socket {
            set(&mut self.socket, v, &o);
        }
        if let Some(v) = url.database {
            set(&mut self.database, v, &o);
        }
        if let Some(v) = url.tls {
            set(&mut self.tls, v, &o);
        }
        for (slot, value) in [
            (&mut self.ssl_ca, url.ssl_ca),
            (&mut self.ssl_cert, url.ssl_cert),
            (&mut self.ssl_key, url.ssl_key),
        ] {
            if let Some(v) = value {
                set(slot, v, &o);
            }
        }
    }

    fn apply_flags(&mut self, spec: &ConnectionSpec) {
        let o = Origin::Flag;
        if let Some(v) = &spec.host {
            set_nonempty(&mut self.host, v, &o);
        }
        if let Some(v) = spec.port.filter(|p| *p != 0) {
            set(&mut self.port, v, &o);
        }
        if let Some(v) = &spec.socket {
            set(&mut self.socket, v.clone(), &o);
        }
        if let Some(v) = &spec.user {
            set_nonempty(&mut self.user, v, &o);
        }
        if let Some(v) = spec.tls {
            set(&mut self.tls, v, &o);
        }
        for (slot, value) in [
            (&mut self.ssl_ca, &spec.ssl_ca),
            (&mut self.ssl_cert, &spec.ssl_cert),
            (&mut self.ssl_key, &spec.ssl_key),
        ] {
            if let Some(v) = value {
                set(slot, v.clone(), &o);
            }
        }
    }

    fn apply_password_file(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::with_source(
                ErrorKind::Usage,
                format!("cannot read the password file {}", path.display()),
                e,
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::usage(format!(
                "the password file {} is not UTF-8 text",
                path.display()
            ))
        })?;
        let line = text.split('\n').next().unwrap_or("");
        let password = line.strip_suffix('\r').unwrap_or(line);
        if option_file::is_world_readable(path) {
            tracing::warn!(
                "the password file {} is readable by every user; fix with: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
        set(
            &mut self.password,
            password.to_string(),
            &Origin::PasswordFile(path.to_path_buf()),
        );
        Ok(())
    }
}

/// The option files to read, in order, and whether each must exist.
fn option_files(
    spec: &ConnectionSpec,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    system: &[PathBuf],
) -> Vec<(PathBuf, bool)> {
    let mut files = Vec::new();
    if let Some(file) = &spec.defaults_file {
        files.push((file.clone(), true));
    } else {
        files.extend(system.iter().map(|p| (p.clone(), false)));
        let server_home = env("MARIADB_HOME")
            .filter(|v| !v.is_empty())
            .or_else(|| env("MYSQL_HOME").filter(|v| !v.is_empty()));
        if let Some(dir) = server_home {
            files.push((Path::new(&dir).join("my.cnf"), false));
        }
        if let Some(home) = home {
            files.push((home.join(".my.cnf"), false));
        }
    }
    if let Some(file) = &spec.defaults_extra_file {
        files.push((file.clone(), true));
    }
    files
}

fn resolve_inner(
    spec: &ConnectionSpec,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    system_files: &[PathBuf],
    default_sockets: &[PathBuf],
) -> Result<ConnectionConfig> {
    let mut layers = Layers::default();

    let mut reader = OptionReader::new(OPTION_GROUPS);
    for (path, required) in option_files(spec, env, home, system_files) {
        reader.read(&path, required)?;
    }
    for option in &reader.options {
        layers.apply_option(option)?;
    }
    layers.apply_env(env)?;
    if let Some(url) = &spec.url {
        layers.apply_url(parse_url(url)?);
    }
    layers.apply_flags(spec);
    if let Some(path) = &spec.password_file {
        layers.apply_password_file(path)?;
    }

    let host = layers
        .host
        .unwrap_or_else(|| ("localhost".to_string(), Origin::Default));
    let (host, port, socket) = choose_transport(host, layers.port, layers.socket, default_sockets);

    let user = match layers.user {
        Some((user, _)) => user,
        None => ["USER", "LOGNAME"]
            .iter()
            .find_map(|name| env(name).filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "root".to_string()),
    };

    let ssl_ca = layers.ssl_ca.map(|s| s.0);
    let ssl_cert = layers.ssl_cert.map(|s| s.0);
    let ssl_key = layers.ssl_key.map(|s| s.0);
    if ssl_cert.is_some() != ssl_key.is_some() {
        return Err(Error::usage(
            "a client certificate needs both ssl-cert and ssl-key; only one of them is set",
        ));
    }
    let tls = match layers.tls {
        Some((mode, _)) => mode,
        None if ssl_ca.is_some() => TlsMode::VerifyCa,
        None => TlsMode::Preferred,
    };
    if socket.is_some() && tls > TlsMode::Preferred {
        tracing::debug!("ssl-mode={tls} does not apply to the socket connection (it stays local)");
    }

    let (password, password_source) = match layers.password {
        Some((password, origin)) => (Some(password), Some(origin.describe(home))),
        None => (None, None),
    };

    Ok(ConnectionConfig {
        host,
        port,
        socket,
        user,
        password,
        password_source,
        tls,
        ssl_ca,
        ssl_cert,
        ssl_key,
        database: layers.database.map(|d| d.0),
        tls_probe: Arc::new(AtomicU8::new(TLS_UNKNOWN)),
    })
}

fn is_localhost(host: &str) -> bool {
    host.is_empty() || host.eq_ignore_ascii_case("localhost")
}

/// Decides socket or TCP (see the module docs): returns host, port and the socket if any.
fn choose_transport(
    host: (String, Origin),
    port: Slot<u16>,
    socket: Slot<PathBuf>,
    default_sockets: &[PathBuf],
) -> (String, u16, Option<PathBuf>) {
    let port_value = port.as_ref().map_or(DEFAULT_PORT, |p| p.0);
    let local = |socket: PathBuf| ("localhost".to_string(), port_value, Some(socket));
    if !is_localhost(&host.0) {
        return match socket {
            Some((socket, origin)) if origin.rank() > host.1.rank() => local(socket),
            Some((socket, _)) => {
                tracing::debug!(
                    "not using socket {} because the host is {}",
                    socket.display(),
                    host.0
                );
                (host.0, port_value, None)
            }
            None => (host.0, port_value, None),
        };
    }
    match (socket, port) {
        (Some((socket, s)), Some((_, p))) if s.rank() >= p.rank() => local(socket),
        (Some((socket, _)), None) => local(socket),
        (_, Some((port, _))) => ("127.0.0.1".to_string(), port, None),
        (None, None) => match default_sockets.iter().find(|s| s.exists()) {
            Some(socket) => local(socket.clone()),
            None => ("127.0.0.1".to_string(), DEFAULT_PORT, None),
        },
    }
}

/// What a connection URL says; `None` for anything it leaves out.
#[derive(Debug, Default, PartialEq, Eq)]
struct UrlParts {
    user: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    socket: Option<PathBuf>,
    database: Option<String>,
    tls: Option<TlsMode>,
    ssl_ca: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
}

fn url_error(what: impl fmt::Display) -> Error {
    Error::usage(format!(
        "invalid connection URL: {what}; expected {URL_FORM}"
    ))
}

fn decode(s: &str, what: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            url_error(format!(
                "the {what} is not valid UTF-8 once percent-decoded"
            ))
        })
}

/// Parses `mysql://[user[:password]@]host[:port][/database][?params]` (also `mariadb://`).
/// The host may be a percent-encoded socket path (`mysql://root@%2Frun%2Fmysqld%2Fmysqld.sock`)
/// or left out (`mysql://root@/?socket=/x.sock`). Errors never echo the URL (it may hold a
/// password).
fn parse_url(input: &str) -> Result<UrlParts> {
    let input = input.trim();
    let Some((scheme, rest)) = input.split_once("://") else {
        return Err(url_error("it does not start with mysql://"));
    };
    if !scheme.eq_ignore_ascii_case("mysql") && !scheme.eq_ignore_ascii_case("mariadb") {
        return Err(url_error(format!("unsupported scheme `{scheme}`")));
    }
    // `user@` with no host: the url crate rejects an empty host after `@`; we read it as localhost.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let normalized = if rest[..authority_end].ends_with('@') {
        format!(
            "mysql://{}localhost{}",
            &rest[..authority_end],
            &rest[authority_end..]
        )
    } else {
        format!("mysql://{rest}")
    };
    let url = url::Url::parse(&normalized).map_err(url_error)?;
    if url.fragment().is_some() {
        return Err(url_error("a `#fragment` has no meaning here"));
    }

    let mut parts = UrlParts::default();
    if !url.username().is_empty() {
        parts.user = Some(decode(url.username(), "user")?);
    }
    // The url crate drops an empty password (`user:@host`); that still means "no password".
    let userinfo = rest[..authority_end].rsplit_once('@').map(|(info, _)| info);
    match url.password() {
        Some(password) => parts.password = Some(decode(password, "password")?),
        None if userinfo.is_some_and(|info| info.contains(':')) => {
            parts.password = Some(String::new())
        }
        None => {}
    }
    match url.host() {
        Some(url::Host::Domain(domain)) => {
            let host = decode(domain, "host")?;
            if host.starts_with('/') {
                parts.socket = Some(PathBuf::from(host));
                parts.host = Some("localhost".to_string());
            } else if !host.is_empty() {
                parts.host = Some(host);
            }
        }
        Some(url::Host::Ipv4(ip)) => parts.host = Some(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => parts.host = Some(ip.to_string()),
        None => {}
    }
    parts.port = url.port().filter(|p| *p != 0);

    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    if !path.is_empty() {
        let database = decode(path, "database")?;
        if database.contains('/') {
            return Err(url_error("the path must be a single database name"));
        }
        parts.database = Some(database);
    }

    // Parsed by hand: form decoding would turn `+` in a socket path into a space.
    for pair in url
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key, "parameter name")?
            .to_ascii_lowercase()
            .replace('_', "-");
        let value = decode(value, "parameter value")?;
        let path = || (!value.is_empty()).then(|| PathBuf::from(&value));
        match key.as_str() {
            "socket" => parts.socket = path(),
            "ssl-mode" | "sslmode" => {
                parts.tls = Some(
                    value
                        .parse::<TlsMode>()
                        .map_err(|e| url_error(e.message()))?,
                )
            }
            "ssl-ca" => parts.ssl_ca = path(),
            "ssl-cert" => parts.ssl_cert = path(),
            "ssl-key" => parts.ssl_key = path(),
            other => {
                return Err(url_error(format!(
                "unknown parameter `{other}` (known: socket, ssl-mode, ssl-ca, ssl-cert, ssl-key)"
            )))
            }
        }
    }
    Ok(parts)
}

/// The URL with any password replaced by `***`, for logs and `Debug`. Works on malformed input.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    type EnvPairs<'a> = &'a [(&'a str, &'a str)];

    /// A scratch machine: `etc/` system files, a `home/`, fake default sockets, an environment.
    struct Fixture {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
        sockets: Vec<PathBuf>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("home")).unwrap();
            Fixture {
                dir,
                env: HashMap::new(),
                sockets: Vec::new(),
            }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        /// Writes a file (mode 0600) under the fixture and returns its path.
        fn file(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.path(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            chmod(&path, 0o600);
            path
        }

        fn env(mut self, pairs: &[(&str, &str)]) -> Self {
            self.env = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self
        }

        /// Adds an existing default-socket candidate (after one that does not exist).
        fn with_default_socket(mut self) -> Self {
            let socket = self.file("run/mysqld.sock", "");
            self.sockets.push(socket);
            self
        }

        fn resolve(&self, spec: &ConnectionSpec) -> Result<ConnectionConfig> {
            let env = |name: &str| self.env.get(name).cloned();
            let system = vec![self.path("etc/my.cnf"), self.path("etc/mysql/my.cnf")];
            let mut sockets = vec![self.path("run/absent.sock")];
            sockets.extend(self.sockets.iter().cloned());
            resolve_inner(spec, &env, Some(&self.path("home")), &system, &sockets)
        }

        fn ok(&self, spec: &ConnectionSpec) -> ConnectionConfig {
            self.resolve(spec)
                .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
        }

        fn err(&self, spec: &ConnectionSpec) -> Error {
            match self.resolve(spec) {
                Ok(c) => panic!("{spec:?} resolved to {c:?}"),
                Err(e) => e,
            }
        }
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(not(unix))]
    fn chmod(_path: &Path, _mode: u32) {}

    fn url(u: &str) -> ConnectionSpec {
        ConnectionSpec {
            url: Some(u.to_string()),
            ..Default::default()
        }
    }

    /// `host:port` or `socket:<path>` — what a config connects to.
    fn target(c: &ConnectionConfig) -> String {
        match &c.socket {
            Some(s) => format!("socket:{}", s.display()),
            None => format!("{}:{}", c.host, c.port),
        }
    }

    #[test]
    fn defaults_without_any_source() {
        let fx = Fixture::new();
        let c = fx.ok(&ConnectionSpec::default());
        assert_eq!(target(&c), "127.0.0.1:3306");
        assert_eq!(c.user, "root");
        assert_eq!(c.password(), None);
        assert_eq!(c.password_source(), None);
        assert_eq!(c.tls, TlsMode::Preferred);
        assert_eq!(c.database, None);
        assert_eq!(c.display(), "root@127.0.0.1:3306");

        let fx = Fixture::new().env(&[("USER", "alice")]);
        assert_eq!(fx.ok(&ConnectionSpec::default()).user, "alice");
        let fx = Fixture::new().env(&[("USER", ""), ("LOGNAME", "bob")]);
        assert_eq!(fx.ok(&ConnectionSpec::default()).user, "bob");
    }

    #[test]
    fn localhost_uses_an_existing_default_socket() {
        let fx = Fixture::new().with_default_socket();
        let c = fx.ok(&ConnectionSpec::default());
        let socket = fx.path("run/mysqld.sock");
        assert_eq!(c.socket.as_deref(), Some(socket.as_path()));
        assert_eq!(c.host, "localhost");
        assert_eq!(
            c.display(),
            format!("root@localhost (socket {})", socket.display())
        );
    }

    /// Every layer sets some of user, host, port and password; each row stacks one more.
    #[test]
    fn precedence_from_option_files_to_password_file() {
        let fx = Fixture::new().with_default_socket();
        fx.file(
            "etc/my.cnf",
            "[client]\nuser=sys\nhost=syshost\nport=1111\npassword=syspw\n",
        );
        fx.file("etc/mysql/my.cnf", "[client]\nuser=sys2\n");
        fx.file("home/.my.cnf", "[client]\nuser=home\npassword=homepw\n");
        let extra = fx.file("extra.cnf", "[holdfast]\nuser=extra\nport=1112\n");
        let only = fx.file("only.cnf", "[client]\nuser=only\n");
        let pwfile = fx.file("pw.txt", "filepw\nsecond line\n");
        let pwfile_source = format!("the password file {}", pwfile.display());

        let base = ConnectionSpec::default();
        let extra_spec = ConnectionSpec {
            defaults_extra_file: Some(extra.clone()),
            ..base.clone()
        };
        let url_spec = ConnectionSpec {
            url: Some("mysql://urluser@urlhost:2222".into()),
            ..extra_spec.clone()
        };
        let flag_spec = ConnectionSpec {
            user: Some("flaguser".into()),
            port: Some(3333),
            ..url_spec.clone()
        };
        let pwfile_spec = ConnectionSpec {
            password_file: Some(pwfile.clone()),
            url: Some("mysql://urluser:urlpw@urlhost:2222".into()),
            ..flag_spec.clone()
        };
        let env1: &[(&str, &str)] = &[
            ("MYSQL_HOST", "envhost"),
            ("MYSQL_TCP_PORT", "1113"),
            ("MYSQL_PWD", "envpw"),
        ];
        let env2: &[(&str, &str)] = &[
            ("MYSQL_PWD", "envpw"),
            ("HOLDFAST_PASSWORD", "hfpw"),
            ("USER", "nobody"),
        ];

        // (what, spec, env, (user, target, password, password source))
        type Want<'a> = (&'a str, String, &'a str, &'a str);
        let rows: Vec<(&str, ConnectionSpec, EnvPairs, Want)> = vec![
            (
                "files: later files win, ~/.my.cnf last",
                base.clone(),
                &[],
                (
                    "home",
                    "syshost:1111".into(),
                    "homepw",
                    "~/.my.cnf [client]",
                ),
            ),
            (
                "the extra file after ~/.my.cnf",
                extra_spec.clone(),
                &[],
                (
                    "extra",
                    "syshost:1112".into(),
                    "homepw",
                    "~/.my.cnf [client]",
                ),
            ),
            (
                "environment over files",
                extra_spec.clone(),
                env1,
                ("extra", "envhost:1113".into(), "envpw", "MYSQL_PWD"),
            ),
            (
                "HOLDFAST_PASSWORD over MYSQL_PWD",
                extra_spec.clone(),
                env2,
                ("extra", "syshost:1112".into(), "hfpw", "HOLDFAST_PASSWORD"),
            ),
            (
                "URL over environment",
                url_spec.clone(),
                env1,
                ("urluser", "urlhost:2222".into(), "envpw", "MYSQL_PWD"),
            ),
            (
                "flags over URL",
                flag_spec.clone(),
                env1,
                ("flaguser", "urlhost:3333".into(), "envpw", "MYSQL_PWD"),
            ),
            (
                "password file over everything",
                pwfile_spec.clone(),
                env2,
                ("flaguser", "urlhost:3333".into(), "filepw", &pwfile_source),
            ),
            (
                "defaults-file replaces the standard files",
                ConnectionSpec {
                    defaults_file: Some(only.clone()),
                    ..base.clone()
                },
                &[],
                (
                    "only",
                    format!("socket:{}", fx.path("run/mysqld.sock").display()),
                    "",
                    "",
                ),
            ),
            (
                "defaults-file plus defaults-extra-file",
                ConnectionSpec {
                    defaults_file: Some(only.clone()),
                    defaults_extra_file: Some(extra.clone()),
                    ..base.clone()
                },
                &[],
                ("extra", "127.0.0.1:1112".into(), "", ""),
            ),
        ];
        let mut fx = fx;
        for (what, spec, env, (user, to, password, source)) in rows {
            fx = fx.env(env);
            let c = fx.ok(&spec);
            assert_eq!(c.user, user, "{what}");
            assert_eq!(target(&c), to, "{what}");
            assert_eq!(c.password().unwrap_or(""), password, "{what}");
            assert_eq!(c.password_source().unwrap_or(""), source, "{what}");
        }
    }

    #[test]
    fn groups_read_and_groups_ignored() {
        let fx = Fixture::new();
        let cases = [
            ("[client]\nuser=x\n", Some("x")),
            ("[client-server]\nuser=x\n", Some("x")),
            ("[client-mariadb]\nuser=x\n", Some("x")),
            ("[mariadb-client]\nuser=x\n", Some("x")),
            ("[holdfast]\nuser=x\n", Some("x")),
            ("[Client]\nuser=x\n", Some("x")),
            ("[mysql]\nuser=x\n", None),
            ("[mysqldump]\nuser=x\n", None),
            ("[mysqld]\nuser=x\n", None),
            // File order decides between groups, not the group.
            ("[holdfast]\nuser=a\n[client]\nuser=b\n", Some("b")),
            ("[client]\nuser=b\n[holdfast]\nuser=a\n", Some("a")),
        ];
        for (text, want) in cases {
            let file = fx.file("my.cnf", text);
            let c = fx.ok(&ConnectionSpec {
                defaults_file: Some(file),
                ..Default::default()
            });
            assert_eq!(c.user, want.unwrap_or("root"), "{text:?}");
        }
    }

    #[test]
    fn option_file_values_reach_the_config() {
        let fx = Fixture::new();
        let file = fx.file(
            "conf/my.cnf",
            "[client]\n\
             user = 'backup user'\n\
             password = \"p#ss w0rd\"  # trailing comment\n\
             host=db1.example\n\
             port = 3307\n\
             loose_ssl_ca=/etc/ca.pem\n\
             ssl_cert=/etc/cert.pem\n\
             ssl-key=/etc/key.pem\n\
             default-character-set=utf8mb4\n\
             !includedir conf.d\n",
        );
        fx.file(
            "conf/conf.d/zz.cnf",
            "[client-mariadb]\nssl-mode=verify_identity\n",
        );
        let c = fx.ok(&ConnectionSpec {
            defaults_file: Some(file.clone()),
            ..Default::default()
        });
        assert_eq!(c.user, "backup user");
        assert_eq!(c.password(), Some("p#ss w0rd"));
        assert_eq!(target(&c), "db1.example:3307");
        assert_eq!(c.ssl_ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(c.ssl_cert.as_deref(), Some(Path::new("/etc/cert.pem")));
        assert_eq!(c.ssl_key.as_deref(), Some(Path::new("/etc/key.pem")));
        assert_eq!(c.tls, TlsMode::VerifyIdentity);
        assert_eq!(
            c.password_source(),
            Some(format!("{} [client]", file.display()).as_str())
        );
    }

    #[test]
    fn server_home_option_file_is_read() {
        let fx = Fixture::new();
        let dir = fx.path("mariadb-home");
        fx.file("mariadb-home/my.cnf", "[client]\nuser=fromhome\n");
        fx.file("home/.my.cnf", "[client]\npassword=pw\n");
        let dir = dir.to_str().unwrap();
        let fx = fx.env(&[("MYSQL_HOME", dir)]);
        let c = fx.ok(&ConnectionSpec::default());
        assert_eq!((c.user.as_str(), c.password()), ("fromhome", Some("pw")));
        let fx = fx.env(&[("MARIADB_HOME", dir), ("MYSQL_HOME", "/nonexistent")]);
        assert_eq!(fx.ok(&ConnectionSpec::default()).user, "fromhome");
    }

    #[test]
    fn bad_values_are_usage_errors_naming_their_source() {
        let fx = Fixture::new();
        let bad_port = fx.file("a.cnf", "[client]\nport=http\n");
        let bad_mode = fx.file("b.cnf", "[client]\n\nssl-mode=sometimes\n");
        let bad_ssl = fx.file("c.cnf", "[client]\nssl=maybe\n");
        let cases: Vec<(ConnectionSpec, EnvPairs, String)> = vec![
            (
                ConnectionSpec {
                    defaults_file: Some(bad_port.clone()),
                    ..Default::default()
                },
                &[],
                format!("{}:2", bad_port.display()),
            ),
            (
                ConnectionSpec {
                    defaults_file: Some(bad_mode.clone()),
                    ..Default::default()
                },
                &[],
                format!("{}:3", bad_mode.display()),
            ),
            (
                ConnectionSpec {
                    defaults_file: Some(bad_ssl.clone()),
                    ..Default::default()
                },
                &[],
                format!("{}:2", bad_ssl.display()),
            ),
            (
                ConnectionSpec {
                    defaults_file: Some(fx.path("missing.cnf")),
                    ..Default::default()
                },
                &[],
                "missing.cnf".to_string(),
            ),
            (
                ConnectionSpec {
                    defaults_extra_file: Some(fx.path("missing-extra.cnf")),
                    ..Default::default()
                },
                &[],
                "missing-extra.cnf".to_string(),
            ),
            (
                ConnectionSpec {
                    password_file: Some(fx.path("nopw")),
                    ..Default::default()
                },
                &[],
                "password file".to_string(),
            ),
            (
                ConnectionSpec::default(),
                &[("MYSQL_TCP_PORT", "99999")],
                "MYSQL_TCP_PORT".into(),
            ),
            (
                ConnectionSpec {
                    ssl_cert: Some("/c.pem".into()),
                    ..Default::default()
                },
                &[],
                "ssl-key".into(),
            ),
        ];
        let mut fx = fx;
        for (spec, env, needle) in cases {
            fx = fx.env(env);
            let e = fx.err(&spec);
            assert_eq!(e.kind(), ErrorKind::Usage, "{spec:?}: {e}");
            assert!(
                e.to_string().contains(&needle),
                "{spec:?}: `{e}` lacks `{needle}`"
            );
        }
    }

    #[test]
    fn empty_environment_variables_count_as_unset() {
        let fx = Fixture::new().env(&[
            ("MYSQL_HOST", ""),
            ("MYSQL_TCP_PORT", ""),
            ("MYSQL_UNIX_PORT", ""),
            ("MYSQL_PWD", ""),
            ("HOLDFAST_PASSWORD", ""),
        ]);
        fx.file("home/.my.cnf", "[client]\npassword=kept\n");
        let c = fx.ok(&ConnectionSpec::default());
        assert_eq!(target(&c), "127.0.0.1:3306");
        assert_eq!(c.password(), Some("kept"));
    }

    #[test]
    fn password_file_takes_the_first_line_verbatim() {
        let fx = Fixture::new();
        let cases = [
            ("secret\n", "secret"),
            ("secret", "secret"),
            ("secret\r\nnext\n", "secret"),
            (" spaced \n", " spaced "),
            ("\n", ""),
            ("", ""),
        ];
        for (text, want) in cases {
            let file = fx.file("pw", text);
            let c = fx.ok(&ConnectionSpec {
                password_file: Some(file),
                ..Default::default()
            });
            assert_eq!(c.password(), Some(want), "{text:?}");
        }
    }

    /// Which transport wins when host, port and socket come from different levels.
    #[test]
    fn transport_choice() {
        let fx = Fixture::new().with_default_socket();
        let default_socket = format!("socket:{}", fx.path("run/mysqld.sock").display());
        let file_socket = fx.file("sock.cnf", "[client]\nsocket=/file.sock\n");
        let file_socket_port = fx.file("sockport.cnf", "[client]\nsocket=/file.sock\nport=3310\n");
        let file_remote = fx.file("remote.cnf", "[client]\nhost=db1\nsocket=/file.sock\n");
        let file_remote_only = fx.file("remote-only.cnf", "[client]\nhost=db1\n");
        let with_file = |file: &PathBuf, spec: ConnectionSpec| ConnectionSpec {
            defaults_file: Some(file.clone()),
            ..spec
        };
        let none: &[(&str, &str)] = &[];
        let cases: Vec<(&str, ConnectionSpec, EnvPairs, String)> = vec![
            (
                "nothing: default socket",
                ConnectionSpec::default(),
                none,
                default_socket.clone(),
            ),
            (
                "explicit localhost: default socket",
                ConnectionSpec {
                    host: Some("LOCALHOST".into()),
                    ..Default::default()
                },
                none,
                default_socket.clone(),
            ),
            (
                "a port alone means TCP",
                ConnectionSpec {
                    port: Some(3307),
                    ..Default::default()
                },
                none,
                "127.0.0.1:3307".into(),
            ),
            (
                "MYSQL_TCP_PORT means TCP",
                ConnectionSpec::default(),
                &[("MYSQL_TCP_PORT", "3308")],
                "127.0.0.1:3308".into(),
            ),
            (
                "file socket",
                with_file(&file_socket, ConnectionSpec::default()),
                none,
                "socket:/file.sock".into(),
            ),
            (
                "file socket and file port: socket (as the mysql client)",
                with_file(&file_socket_port, ConnectionSpec::default()),
                none,
                "socket:/file.sock".into(),
            ),
            (
                "flag port beats file socket",
                with_file(
                    &file_socket,
                    ConnectionSpec {
                        port: Some(3307),
                        ..Default::default()
                    },
                ),
                none,
                "127.0.0.1:3307".into(),
            ),
            (
                "URL port beats file socket",
                with_file(&file_socket, url("mysql://root@localhost:3309")),
                none,
                "127.0.0.1:3309".into(),
            ),
            (
                "URL without port keeps file socket",
                with_file(&file_socket, url("mysql://root@localhost")),
                none,
                "socket:/file.sock".into(),
            ),
            (
                "flag socket beats flag port",
                ConnectionSpec {
                    socket: Some("/flag.sock".into()),
                    port: Some(3307),
                    ..Default::default()
                },
                none,
                "socket:/flag.sock".into(),
            ),
            (
                "URL socket parameter",
                url("mysql://root@localhost/?socket=/url.sock"),
                none,
                "socket:/url.sock".into(),
            ),
            (
                "URL with no host and a socket",
                url("mysql://root@/db?socket=/url.sock"),
                none,
                "socket:/url.sock".into(),
            ),
            (
                "percent-encoded socket as the URL host",
                url("mysql://root@%2Frun%2Fx.sock/db"),
                none,
                "socket:/run/x.sock".into(),
            ),
            (
                "MYSQL_UNIX_PORT",
                ConnectionSpec::default(),
                &[("MYSQL_UNIX_PORT", "/env.sock")],
                "socket:/env.sock".into(),
            ),
            (
                "remote host and socket in the same file: TCP",
                with_file(&file_remote, ConnectionSpec::default()),
                none,
                "db1:3306".into(),
            ),
            (
                "flag host beats file socket",
                with_file(
                    &file_socket,
                    ConnectionSpec {
                        host: Some("db2".into()),
                        ..Default::default()
                    },
                ),
                none,
                "db2:3306".into(),
            ),
            (
                "flag socket beats file host",
                with_file(
                    &file_remote_only,
                    ConnectionSpec {
                        socket: Some("/flag.sock".into()),
                        ..Default::default()
                    },
                ),
                none,
                "socket:/flag.sock".into(),
            ),
            (
                "MYSQL_HOST and MYSQL_UNIX_PORT: the host wins a tie",
                ConnectionSpec::default(),
                &[("MYSQL_HOST", "db3"), ("MYSQL_UNIX_PORT", "/env.sock")],
                "db3:3306".into(),
            ),
            (
                "127.0.0.1 is TCP even with a socket",
                with_file(
                    &file_socket,
                    ConnectionSpec {
                        host: Some("127.0.0.1".into()),
                        ..Default::default()
                    },
                ),
                none,
                "127.0.0.1:3306".into(),
            ),
            (
                "IPv6 URL",
                url("mysql://root@[::1]:3307"),
                none,
                "::1:3307".into(),
            ),
        ];
        let mut fx = fx;
        for (what, spec, env, want) in cases {
            fx = fx.env(env);
            let c = fx.ok(&spec);
            assert_eq!(target(&c), want, "{what}");
            if c.socket.is_some() {
                assert_eq!(c.host, "localhost", "{what}");
            }
        }
    }

    #[test]
    fn no_default_socket_falls_back_to_tcp() {
        let fx = Fixture::new();
        let c = fx.ok(&ConnectionSpec {
            host: Some("localhost".into()),
            ..Default::default()
        });
        assert_eq!(target(&c), "127.0.0.1:3306");
    }

    #[test]
    fn url_forms() {
        let p = |s: &str| parse_url(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let cases: Vec<(&str, UrlParts)> = vec![
            ("mysql://db1", UrlParts { host: Some("db1".into()), ..Default::default() }),
            (
                "mysql://backup@db1:3307/shop",
                UrlParts {
                    user: Some("backup".into()),
                    host: Some("db1".into()),
                    port: Some(3307),
                    database: Some("shop".into()),
                    ..Default::default()
                },
            ),
            (
                "MariaDB://b%40ck%3Aup:p%40ss%2Fw%3Ard@DB1/my%20db",
                UrlParts {
                    user: Some("b@ck:up".into()),
                    password: Some("p@ss/w:rd".into()),
                    host: Some("DB1".into()),
                    database: Some("my db".into()),
                    ..Default::default()
                },
            ),
            (
                "mysql://u:@h",
                UrlParts {
                    user: Some("u".into()),
                    password: Some("".into()),
                    host: Some("h".into()),
                    ..Default::default()
                },
            ),
            (
                "mysql://10.0.0.5:3306/",
                UrlParts { host: Some("10.0.0.5".into()), port: Some(3306), ..Default::default() },
            ),
            (
                "mysql://[fe80::1]:3306",
                UrlParts { host: Some("fe80::1".into()), port: Some(3306), ..Default::default() },
            ),
            (
                "mysql://root@localhost?socket=/run/my+sql.sock&ssl_mode=required&SSL-CA=/ca%20dir/ca.pem&ssl-cert=/c&ssl-key=/k",
                UrlParts {
                    user: Some("root".into()),
                    host: Some("localhost".into()),
                    socket: Some("/run/my+sql.sock".into()),
                    tls: Some(TlsMode::Required),
                    ssl_ca: Some("/ca dir/ca.pem".into()),
                    ssl_cert: Some("/c".into()),
                    ssl_key: Some("/k".into()),
                    ..Default::default()
                },
            ),
            (
                "mysql:///?socket=%2Ftmp%2Fx.sock",
                UrlParts { socket: Some("/tmp/x.sock".into()), ..Default::default() },
            ),
            (
                "mysql://root@?sslmode=VERIFY_CA",
                UrlParts {
                    user: Some("root".into()),
                    host: Some("localhost".into()),
                    tls: Some(TlsMode::VerifyCa),
                    ..Default::default()
                },
            ),
            (
                "  mysql://h/  ",
                UrlParts { host: Some("h".into()), ..Default::default() },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(p(input), want, "{input}");
        }
    }

    #[test]
    fn malformed_urls_are_usage_errors_that_show_the_form_but_not_the_password() {
        let cases = [
            ("db1:3306", "mysql://"),
            ("backup@db1", "mysql://"),
            ("postgres://u@h", "scheme"),
            ("mysql://u:hunter2@h:99999", "port"),
            ("mysql://u:hunter2@h:abc", "port"),
            ("mysql://u:hunter2@h/a/b", "single database"),
            ("mysql://u:hunter2@h?prefer_socket=true", "prefer-socket"),
            ("mysql://u:hunter2@h?ssl-mode=sometimes", "ssl-mode"),
            ("mysql://u:hunter2@h#frag", "fragment"),
            ("mysql://u:hunter2@h/%FF", "UTF-8"),
            ("mysql://u:hunter2@[::1/", "invalid"),
        ];
        for (input, needle) in cases {
            let e = parse_url(input).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.kind(), ErrorKind::Usage, "{input}");
            assert!(text.contains(needle), "{input}: `{text}` lacks `{needle}`");
            assert!(text.contains(URL_FORM), "{input}: `{text}`");
            assert!(
                !text.contains("hunter2"),
                "{input}: `{text}` leaks the password"
            );
        }
        let fx = Fixture::new();
        assert_eq!(fx.err(&url("mysql:/x")).kind(), ErrorKind::Usage);
    }

    #[test]
    fn url_database_and_with_database() {
        let fx = Fixture::new();
        let c = fx.ok(&url("mysql://u@h/shop"));
        assert_eq!(c.database.as_deref(), Some("shop"));
        assert_eq!(c.opts().db_name(), Some("shop"));
        let other = c.with_database(Some("other"));
        assert_eq!(other.database.as_deref(), Some("other"));
        assert_eq!(
            c.database.as_deref(),
            Some("shop"),
            "the original is unchanged"
        );
        assert_eq!(c.with_database(None).opts().db_name(), None);
    }

    #[test]
    fn tls_mode_resolution() {
        let fx = Fixture::new();
        let counter = std::cell::Cell::new(0);
        let file = |text: &str| {
            counter.set(counter.get() + 1);
            fx.file(&format!("tls{}.cnf", counter.get()), text)
        };
        let cases: Vec<(&str, ConnectionSpec, TlsMode)> = vec![
            ("default", ConnectionSpec::default(), TlsMode::Preferred),
            (
                "a CA alone implies VERIFY_CA",
                ConnectionSpec {
                    ssl_ca: Some("/ca.pem".into()),
                    ..Default::default()
                },
                TlsMode::VerifyCa,
            ),
            (
                "an explicit mode beats the implication",
                ConnectionSpec {
                    ssl_ca: Some("/ca.pem".into()),
                    tls: Some(TlsMode::Required),
                    ..Default::default()
                },
                TlsMode::Required,
            ),
            (
                "ssl in a file",
                ConnectionSpec {
                    defaults_file: Some(file("[client]\nssl\n")),
                    ..Default::default()
                },
                TlsMode::Required,
            ),
            (
                "ssl=0",
                ConnectionSpec {
                    defaults_file: Some(file("[client]\nssl=0\n")),
                    ..Default::default()
                },
                TlsMode::Disabled,
            ),
            (
                "skip-ssl",
                ConnectionSpec {
                    defaults_file: Some(file("[client]\nskip-ssl\n")),
                    ..Default::default()
                },
                TlsMode::Disabled,
            ),
            (
                "ssl-verify-server-cert",
                ConnectionSpec {
                    defaults_file: Some(file("[client]\nssl-verify-server-cert\n")),
                    ..Default::default()
                },
                TlsMode::VerifyIdentity,
            ),
            (
                "ssl after a verify mode keeps the verification",
                ConnectionSpec {
                    defaults_file: Some(file("[client]\nssl-mode=VERIFY_CA\nssl=1\n")),
                    ..Default::default()
                },
                TlsMode::VerifyCa,
            ),
            (
                "URL over file",
                ConnectionSpec {
                    defaults_file: Some(file("[client]\nssl-mode=DISABLED\n")),
                    url: Some("mysql://h?ssl-mode=verify-identity".into()),
                    ..Default::default()
                },
                TlsMode::VerifyIdentity,
            ),
            (
                "flag over URL",
                ConnectionSpec {
                    url: Some("mysql://h?ssl-mode=REQUIRED".into()),
                    tls: Some(TlsMode::Disabled),
                    ..Default::default()
                },
                TlsMode::Disabled,
            ),
        ];
        for (what, spec, want) in cases {
            assert_eq!(fx.ok(&spec).tls, want, "{what}");
        }
    }

    #[test]
    fn tls_mode_strings() {
        for mode in [
            TlsMode::Disabled,
            TlsMode::Preferred,
            TlsMode::Required,
            TlsMode::VerifyCa,
            TlsMode::VerifyIdentity,
        ] {
            assert_eq!(mode.to_string().parse::<TlsMode>().unwrap(), mode);
            assert_eq!(
                mode.as_str()
                    .to_lowercase()
                    .replace('_', "-")
                    .parse::<TlsMode>()
                    .unwrap(),
                mode
            );
        }
        assert_eq!(
            "nope".parse::<TlsMode>().unwrap_err().kind(),
            ErrorKind::Usage
        );
    }

    fn tcp_config(tls: TlsMode) -> ConnectionConfig {
        let fx = Fixture::new();
        let mut c = fx.ok(&ConnectionSpec {
            host: Some("db1".into()),
            user: Some("backup".into()),
            tls: Some(tls),
            ..Default::default()
        });
        c = c.with_password(Some("pw"), "test");
        c
    }

    #[test]
    fn opts_carry_the_settings() {
        let c = tcp_config(TlsMode::Disabled).with_database(Some("shop"));
        let o = c.opts();
        assert_eq!((o.ip_or_hostname(), o.tcp_port()), ("db1", 3306));
        assert_eq!(o.socket(), None);
        assert_eq!(o.user(), Some("backup"));
        assert_eq!(o.pass(), Some("pw"));
        assert_eq!(o.db_name(), Some("shop"));
        assert!(
            !o.prefer_socket(),
            "the driver must not hop to a local socket"
        );
        assert_eq!(o.stmt_cache_size(), 0);
        assert!(o.ssl_opts().is_none());
        assert!(
            o.local_infile_handler().is_none(),
            "callers set a handler per connection"
        );
        assert_eq!(o.wait_timeout(), Some(SESSION_WAIT_TIMEOUT_SECS));
        assert_eq!(o.tcp_keepalive(), Some(Duration::from_secs(60)));
        let setup = o.setup().join(";");
        assert!(
            setup.contains("wait_timeout") && setup.contains("net_write_timeout"),
            "{setup}"
        );

        let fx = Fixture::new();
        let s = fx.ok(&ConnectionSpec {
            socket: Some("/s.sock".into()),
            tls: Some(TlsMode::VerifyIdentity),
            ..Default::default()
        });
        let o = s.opts();
        assert_eq!(o.socket(), Some("/s.sock"));
        assert!(!o.prefer_socket());
        assert!(o.ssl_opts().is_none(), "no TLS over a socket");
    }

    #[test]
    fn opts_tls_per_mode() {
        let none = tcp_config(TlsMode::Disabled).opts();
        assert!(none.ssl_opts().is_none());

        let required = tcp_config(TlsMode::Required).opts();
        let ssl = required.ssl_opts().expect("REQUIRED asks for TLS");
        assert!(ssl.accept_invalid_certs());

        let mut c = tcp_config(TlsMode::VerifyCa);
        c.ssl_ca = Some("/ca.pem".into());
        c.ssl_cert = Some("/cert.pem".into());
        c.ssl_key = Some("/key.pem".into());
        let o = c.opts();
        let ssl = o.ssl_opts().unwrap();
        assert!(!ssl.accept_invalid_certs());
        assert!(ssl.skip_domain_validation());
        assert!(ssl.disable_built_in_roots());
        assert_eq!(ssl.root_certs().len(), 1);
        assert!(ssl.client_identity().is_some());

        let o = tcp_config(TlsMode::VerifyIdentity).opts();
        let ssl = o.ssl_opts().unwrap();
        assert!(!ssl.accept_invalid_certs() && !ssl.skip_domain_validation());
        assert!(!ssl.disable_built_in_roots(), "no CA given: public roots");

        // PREFERRED follows what connect() learnt, shared between clones.
        let c = tcp_config(TlsMode::Preferred);
        assert!(c.opts().ssl_opts().is_none());
        let clone = c.with_database(Some("x"));
        c.tls_probe.store(TLS_OFFERED, Ordering::Relaxed);
        assert!(clone.opts().ssl_opts().unwrap().accept_invalid_certs());
        c.tls_probe.store(TLS_NOT_OFFERED, Ordering::Relaxed);
        assert!(clone.opts().ssl_opts().is_none());
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let fx = Fixture::new().env(&[("MYSQL_PWD", "s3cr3t-env")]);
        let c = fx.ok(&url("mysql://alice:s3cr3t-url@db1:3307/shop"));
        assert_eq!(c.password(), Some("s3cr3t-url"));
        let debug = format!("{c:?}");
        let pretty = format!("{c:#?}");
        for text in [&debug, &pretty, &c.display(), &c.endpoint()] {
            assert!(!text.contains("s3cr3t"), "{text}");
        }
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(c.display(), "alice@db1:3307");

        let none = Fixture::new().ok(&ConnectionSpec::default());
        assert!(format!("{none:?}").contains("password: None"));

        let spec = ConnectionSpec {
            url: Some("mysql://alice:s3cr3t@db1/x".into()),
            ..Default::default()
        };
        let debug = format!("{spec:?}");
        assert!(
            !debug.contains("s3cr3t") && debug.contains("alice:***@db1"),
            "{debug}"
        );
    }

    #[test]
    fn endpoint_forms() {
        let mut c = tcp_config(TlsMode::Disabled);
        assert_eq!(c.endpoint(), "db1:3306");
        c.host = "::1".into();
        assert_eq!(c.display(), "backup@[::1]:3306");
        c.socket = Some("/x.sock".into());
        assert_eq!(c.display(), "backup@localhost (socket /x.sock)");
    }

    #[test]
    fn redact_url_cases() {
        let cases = [
            ("mysql://u:p@h/db", "mysql://u:***@h/db"),
            ("mysql://u:p@ss@h", "mysql://u:***@h"),
            ("mysql://u@h", "mysql://u@h"),
            ("mysql://h:3306/db?x=a:b@c", "mysql://h:3306/db?x=a:b@c"),
            ("mysql://:p@h", "mysql://:***@h"),
            ("not a url", "not a url"),
            ("mysql://u:p@", "mysql://u:***@"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn with_password_sets_the_source() {
        let c = Fixture::new().ok(&ConnectionSpec::default());
        let c = c.with_password(Some("x"), "holdfast.toml");
        assert_eq!(
            (c.password(), c.password_source()),
            (Some("x"), Some("holdfast.toml"))
        );
        let c = c.with_password(None, "ignored");
        assert_eq!(
            (c.password(), c.password_source(), c.has_password()),
            (None, None, false)
        );
    }

    #[test]
    fn client_option_file_round_trips() {
        let fx = Fixture::new();
        let tricky = "p#ss \"w'rd\\ x";
        let configs = [
            tcp_config(TlsMode::Disabled).with_password(Some(tricky), "t"),
            fx.ok(&ConnectionSpec {
                socket: Some("/run/my sql.sock".into()),
                user: Some("a b".into()),
                ssl_ca: Some("/ca.pem".into()),
                ..Default::default()
            }),
        ];
        for c in configs {
            let text = c.client_option_file();
            let file = fx.file("rt.cnf", &text);
            let back = fx.ok(&ConnectionSpec {
                defaults_file: Some(file),
                ..Default::default()
            });
            assert_eq!(back.user, c.user, "{text}");
            assert_eq!(back.password(), c.password(), "{text}");
            assert_eq!(target(&back), target(&c), "{text}");
            assert_eq!(back.ssl_ca, c.ssl_ca, "{text}");
        }
    }

    /// An I/O error as tokio-rustls reports a TLS failure (or DNS a lookup failure).
    fn io_msg(message: &str) -> mysql_async::Error {
        let kind = if message.contains("lookup") {
            std::io::ErrorKind::Other
        } else {
            std::io::ErrorKind::InvalidData
        };
        mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(kind, message)))
    }

    fn server_error(code: u16, message: &str) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: message.to_string(),
            state: "28000".to_string(),
        })
    }

    #[test]
    fn connect_errors_are_classified() {
        let fx = Fixture::new().env(&[("MYSQL_PWD", "topsecret")]);
        fx.file("home/.my.cnf", "[client]\npassword=filesecret\n");
        let tcp = fx.ok(&ConnectionSpec {
            host: Some("db1".into()),
            user: Some("backup".into()),
            ..Default::default()
        });
        let from_file = Fixture::new();
        from_file.file("home/.my.cnf", "[client]\npassword=filesecret\n");
        let from_file = from_file.ok(&ConnectionSpec {
            host: Some("db1".into()),
            ..Default::default()
        });
        let no_password = Fixture::new().ok(&ConnectionSpec {
            socket: Some("/nope.sock".into()),
            ..Default::default()
        });
        let verify_ca = {
            let mut c = tcp.clone();
            c.tls = TlsMode::VerifyCa;
            c
        };
        let io =
            |kind| mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(kind)));
        let denied = "Access denied for user 'backup'@'10.0.0.1' (using password: YES)";
        let cases: Vec<(
            &ConnectionConfig,
            mysql_async::Error,
            ErrorKind,
            bool,
            &[&str],
        )> = vec![
            (
                &tcp,
                server_error(1045, denied),
                ErrorKind::Auth,
                false,
                &["from MYSQL_PWD", "db1:3306", "'backup'"],
            ),
            (
                &from_file,
                server_error(1045, denied),
                ErrorKind::Auth,
                false,
                &["from ~/.my.cnf [client]"],
            ),
            (
                &no_password,
                server_error(1698, "denied"),
                ErrorKind::Auth,
                false,
                &["without a password", "unix_socket"],
            ),
            (
                &tcp,
                server_error(1044, "db denied"),
                ErrorKind::Auth,
                false,
                &["database"],
            ),
            (
                &tcp,
                server_error(1130, "not allowed"),
                ErrorKind::Auth,
                false,
                &["this host"],
            ),
            (
                &tcp,
                server_error(1049, "Unknown database"),
                ErrorKind::Usage,
                false,
                &["does not exist"],
            ),
            (
                &tcp,
                server_error(1040, "Too many connections"),
                ErrorKind::Connect,
                true,
                &["too many"],
            ),
            (
                &tcp,
                server_error(1129, "blocked"),
                ErrorKind::Connect,
                false,
                &["FLUSH HOSTS"],
            ),
            (
                &tcp,
                server_error(1193, "Unknown system variable"),
                ErrorKind::Server,
                false,
                &["connecting to db1:3306"],
            ),
            (
                &tcp,
                io(std::io::ErrorKind::ConnectionRefused),
                ErrorKind::Connect,
                true,
                &["db1:3306", "server is running"],
            ),
            (
                &no_password,
                io(std::io::ErrorKind::NotFound),
                ErrorKind::Connect,
                true,
                &["socket /nope.sock does not exist", "server is running"],
            ),
            (
                &no_password,
                io(std::io::ErrorKind::PermissionDenied),
                ErrorKind::Connect,
                true,
                &["permission"],
            ),
            (
                &verify_ca,
                mysql_async::DriverError::NoClientSslFlagFromServer.into(),
                ErrorKind::Connect,
                false,
                &["does not offer TLS", "VERIFY_CA"],
            ),
            (
                &tcp,
                mysql_async::DriverError::UnknownAuthPlugin {
                    name: "client_ed25519".into(),
                }
                .into(),
                ErrorKind::Auth,
                false,
                &["client_ed25519"],
            ),
            (
                &verify_ca,
                io_msg("invalid peer certificate: certificate not valid for name \"db1\""),
                ErrorKind::Connect,
                false,
                &["TLS with db1:3306 failed (ssl-mode=VERIFY_CA)", "REQUIRED"],
            ),
            (
                &verify_ca,
                io_msg("invalid peer certificate: UnknownIssuer"),
                ErrorKind::Connect,
                false,
                &["not signed by a public CA", "ssl-ca"],
            ),
            (
                &tcp,
                io_msg("failed to lookup address information: Name or service not known"),
                ErrorKind::Connect,
                true,
                &["cannot resolve"],
            ),
            (
                &tcp,
                mysql_async::DriverError::ConnectionClosed.into(),
                ErrorKind::Connect,
                false,
                &["connecting to db1:3306"],
            ),
        ];
        for (config, error, kind, transient, needles) in cases {
            let shown = error.to_string();
            let e = config.classify_connect_error(error);
            let text = e.to_string();
            assert_eq!(e.kind(), kind, "{shown}: {text}");
            assert_eq!(e.is_transient(), transient, "{shown}: {text}");
            for needle in needles {
                assert!(text.contains(needle), "{shown}: `{text}` lacks `{needle}`");
            }
            assert!(!text.contains("secret"), "{text}");
        }
        let timeout = tcp.classify(Attempt::TimedOut);
        assert_eq!(timeout.kind(), ErrorKind::Connect);
        assert!(
            timeout.is_transient()
                && timeout
                    .message()
                    .contains("timed out after 10s connecting to db1:3306")
        );
    }

    #[test]
    fn tls_fallback_only_for_tls_unavailability() {
        assert!(tls_unavailable(
            &mysql_async::DriverError::NoClientSslFlagFromServer.into()
        ));
        assert!(tls_unavailable(&io_msg(
            "peer is incompatible: ProtocolVersion"
        )));
        assert!(!tls_unavailable(&server_error(1045, "denied")));
        assert!(!tls_unavailable(&mysql_async::Error::Io(
            mysql_async::IoError::Io(std::io::ErrorKind::ConnectionRefused.into())
        )));
    }

    #[tokio::test]
    async fn connect_reports_an_absent_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let c = Fixture::new().ok(&ConnectionSpec {
            socket: Some(socket.clone()),
            ..Default::default()
        });
        let e = c.connect().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
        assert!(e.is_transient());
        assert!(e.message().contains(&socket.display().to_string()), "{e}");
    }

    #[tokio::test]
    async fn connect_checks_tls_files_first() {
        let fx = Fixture::new();
        let ca = fx.file("ca.pem", "not really a certificate");
        let spec = ConnectionSpec {
            host: Some("db1.invalid".into()),
            ssl_ca: Some(ca),
            ssl_cert: Some(fx.path("missing-cert.pem")),
            ssl_key: Some(fx.path("missing-key.pem")),
            ..Default::default()
        };
        let e = fx.ok(&spec).connect().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        assert!(
            e.message().contains("ssl-cert file") && e.message().contains("missing-cert.pem"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn connect_reports_a_closed_port() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        for tls in [TlsMode::Preferred, TlsMode::Required] {
            let c = Fixture::new().ok(&ConnectionSpec {
                host: Some("127.0.0.1".into()),
                port: Some(port),
                tls: Some(tls),
                ..Default::default()
            });
            let e = c.connect().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
            assert!(e.message().contains(&format!("127.0.0.1:{port}")), "{e}");
            assert!(e.message().contains("server is running"), "{e}");
        }
    }
}
