//! Why a connect failed, in words that say what to check.

use super::connect::Attempt;
use super::tls::{tls_failure, TlsMode};
use super::{ConnectionConfig, CONNECT_TIMEOUT};
use crate::{Error, ErrorKind};

impl ConnectionConfig {
    pub(super) fn classify(&self, failure: Attempt) -> Error {
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
    pub(super) fn classify_connect_error(&self, e: mysql_async::Error) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::conn::test_support::*;

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
}
