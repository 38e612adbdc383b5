//! Merging the sources of connection settings by precedence, and choosing the transport.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU8;
use std::sync::Arc;

use super::option_file::{self, OptionReader, RawOption};
use super::tls::{TlsMode, TLS_UNKNOWN};
use super::url::{parse_url, UrlParts};
use super::{ConnectionConfig, ConnectionSpec, DEFAULT_PORT, OPTION_GROUPS};
use crate::{Error, ErrorKind, Result};

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

pub(super) fn resolve_inner(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::conn::test_support::*;

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
}
