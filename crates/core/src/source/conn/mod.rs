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
//!
//! The parts: `layers` merges the sources (option files read by `option_file`, the environment,
//! the URL parsed by `url`, flags, a password file) and chooses the transport; `tls` holds the
//! TLS modes and the driver's TLS options; `connect` builds driver options and connects;
//! `classify` turns a failed connect into an error that says what to check.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::Duration;

use crate::Result;

mod classify;
mod connect;
mod layers;
mod option_file;
#[cfg(test)]
mod test_support;
mod tls;
mod url;

pub use tls::TlsMode;
pub use url::redact_url;

use layers::resolve_inner;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::conn::test_support::*;

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
}
