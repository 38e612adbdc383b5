//! Test fixtures shared by the connection modules' tests.

pub(super) use std::path::{Path, PathBuf};

pub(super) use std::collections::HashMap;

use super::layers::resolve_inner;
pub(super) use super::{ConnectionConfig, ConnectionSpec, TlsMode};
pub(super) use crate::{Error, ErrorKind, Result};

pub(super) type EnvPairs<'a> = &'a [(&'a str, &'a str)];

/// A scratch machine: `etc/` system files, a `home/`, fake default sockets, an environment.
pub(super) struct Fixture {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    sockets: Vec<PathBuf>,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Fixture {
            dir,
            env: HashMap::new(),
            sockets: Vec::new(),
        }
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (mode 0600) under the fixture and returns its path.
    pub(super) fn file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        chmod(&path, 0o600);
        path
    }

    pub(super) fn env(mut self, pairs: &[(&str, &str)]) -> Self {
        self.env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// Adds an existing default-socket candidate (after one that does not exist).
    pub(super) fn with_default_socket(mut self) -> Self {
        let socket = self.file("run/mysqld.sock", "");
        self.sockets.push(socket);
        self
    }

    pub(super) fn resolve(&self, spec: &ConnectionSpec) -> Result<ConnectionConfig> {
        let env = |name: &str| self.env.get(name).cloned();
        let system = vec![self.path("etc/my.cnf"), self.path("etc/mysql/my.cnf")];
        let mut sockets = vec![self.path("run/absent.sock")];
        sockets.extend(self.sockets.iter().cloned());
        resolve_inner(spec, &env, Some(&self.path("home")), &system, &sockets)
    }

    pub(super) fn ok(&self, spec: &ConnectionSpec) -> ConnectionConfig {
        self.resolve(spec)
            .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
    }

    pub(super) fn err(&self, spec: &ConnectionSpec) -> Error {
        match self.resolve(spec) {
            Ok(c) => panic!("{spec:?} resolved to {c:?}"),
            Err(e) => e,
        }
    }
}

#[cfg(unix)]
pub(super) fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
pub(super) fn chmod(_path: &Path, _mode: u32) {}

pub(super) fn url(u: &str) -> ConnectionSpec {
    ConnectionSpec {
        url: Some(u.to_string()),
        ..Default::default()
    }
}

/// `host:port` or `socket:<path>` — what a config connects to.
pub(super) fn target(c: &ConnectionConfig) -> String {
    match &c.socket {
        Some(s) => format!("socket:{}", s.display()),
        None => format!("{}:{}", c.host, c.port),
    }
}

pub(super) fn tcp_config(tls: TlsMode) -> ConnectionConfig {
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

/// An I/O error as tokio-rustls reports a TLS failure (or DNS a lookup failure).
pub(super) fn io_msg(message: &str) -> mysql_async::Error {
    let kind = if message.contains("lookup") {
        std::io::ErrorKind::Other
    } else {
        std::io::ErrorKind::InvalidData
    };
    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(kind, message)))
}

pub(super) fn server_error(code: u16, message: &str) -> mysql_async::Error {
    mysql_async::Error::Server(mysql_async::ServerError {
        code,
        message: message.to_string(),
        state: "28000".to_string(),
    })
}
