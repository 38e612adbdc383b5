//! Driver options and connecting, with `PREFERRED`'s TLS probe.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder};

use super::tls::{tls_unavailable, TlsMode, TLS_NOT_OFFERED, TLS_OFFERED};
use super::{
    ConnectionConfig, CONNECT_TIMEOUT, SESSION_NET_TIMEOUT_SECS, SESSION_WAIT_TIMEOUT_SECS,
};
use crate::Result;

impl ConnectionConfig {
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

    pub(super) fn build_opts(&self, tls: bool) -> Opts {
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

    pub(super) async fn attempt(&self, tls: bool) -> std::result::Result<Conn, Attempt> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.build_opts(tls))).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Attempt::Driver(e)),
            Err(_) => Err(Attempt::TimedOut),
        }
    }
}

/// Why one connection attempt failed.
pub(super) enum Attempt {
    TimedOut,
    Driver(mysql_async::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::conn::test_support::*;

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
