//! TLS modes (MySQL's `--ssl-mode`) and the driver's TLS options for them.

use std::fmt;

use mysql_async::{ClientIdentity, SslOpts};

use super::ConnectionConfig;
use crate::{Error, ErrorKind, Result};

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

pub(super) const TLS_UNKNOWN: u8 = 0;
pub(super) const TLS_OFFERED: u8 = 1;
pub(super) const TLS_NOT_OFFERED: u8 = 2;

impl ConnectionConfig {
    /// The driver reads these files while connecting and reports a missing one as a bare I/O
    /// error, which would read like an unreachable server; say what is wrong instead.
    pub(super) fn check_tls_files(&self) -> Result<()> {
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

    pub(super) fn ssl_opts(&self) -> SslOpts {
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
}

/// Whether `PREFERRED` may fall back to plaintext after this error: the server lacks TLS, or the
/// TLS handshake failed (an old server whose TLS rustls cannot speak). Falling back is no weaker
/// than what `PREFERRED` promises, since an active attacker can strip the TLS offer anyway.
pub(super) fn tls_unavailable(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error as E};
    matches!(e, E::Driver(DriverError::NoClientSslFlagFromServer)) || tls_failure(e)
}

/// Whether the error comes from the TLS layer. tokio-rustls reports handshake and certificate
/// failures as `io::ErrorKind::InvalidData`, which the driver wraps as a plain I/O error; the
/// driver's own TLS setup errors (reading the CA or key) are `IoError::Tls`.
pub(super) fn tls_failure(e: &mysql_async::Error) -> bool {
    use mysql_async::{Error as E, IoError};
    match e {
        E::Io(IoError::Tls(_)) => true,
        E::Io(IoError::Io(io)) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::conn::test_support::*;
    use std::sync::atomic::Ordering;

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
}
