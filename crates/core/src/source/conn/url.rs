//! Connection URLs: `mysql://[user[:password]@]host[:port][/database][?params]`.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use super::tls::TlsMode;
use crate::{Error, Result};

pub(super) const URL_FORM: &str = "mysql://[user[:password]@]host[:port][/database]\
                        [?socket=/path/to.sock&ssl-mode=REQUIRED&ssl-ca=/path/ca.pem]";

/// What a connection URL says; `None` for anything it leaves out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct UrlParts {
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) socket: Option<PathBuf>,
    pub(super) database: Option<String>,
    pub(super) tls: Option<TlsMode>,
    pub(super) ssl_ca: Option<PathBuf>,
    pub(super) ssl_cert: Option<PathBuf>,
    pub(super) ssl_key: Option<PathBuf>,
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
pub(super) fn parse_url(input: &str) -> Result<UrlParts> {
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
    use crate::source::conn::test_support::*;

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
}
