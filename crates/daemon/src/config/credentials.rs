//! Credentials for the jobs: what a child `holdfast` process needs to reach a server or a
//! repository, as flags that name files and environment variables that carry secrets — never a
//! secret in argv.
//!
//! A server's connection is resolved like the CLI's (`holdfast::source::conn`: URL, option
//! files, password file), except that the daemon's own `MYSQL_PWD`, `HOLDFAST_PASSWORD`,
//! `MYSQL_HOST`, … do not apply to every server: a server's password comes from its
//! `password_file`, its `defaults_file` or the variable its `password_env` names. Children get
//! the same: those variables are removed from their environment ([`CHILD_ENV_REMOVE`]) and only
//! the configured ones set.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use holdfast::source::{ConnectionConfig, ConnectionSpec};

use super::validate::Env;
use super::{RepositoryConfig, ServerConfig};

/// The daemon's variables that would otherwise reach every server or repository.
pub const CHILD_ENV_REMOVE: &[&str] = &[
    "MYSQL_PWD",
    "MYSQL_HOST",
    "MYSQL_TCP_PORT",
    "MYSQL_UNIX_PORT",
    "HOLDFAST_PASSWORD",
    "HOLDFAST_SOURCE",
    "HOLDFAST_REPO",
    "HOLDFAST_PASSPHRASE",
    "HOLDFAST_FROM_PASSPHRASE",
    "HOLDFAST_TO_PASSPHRASE",
];

/// The variables a server's connection ignores from the daemon's environment.
const CONNECTION_ENV_HIDDEN: &[&str] = &[
    "MYSQL_PWD",
    "MYSQL_HOST",
    "MYSQL_TCP_PORT",
    "MYSQL_UNIX_PORT",
    "HOLDFAST_PASSWORD",
];

/// Flags and environment for a child process. `Debug` never shows the values of `env`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChildCredentials {
    /// Flags: `--source URL`, `--defaults-file F`, `--password-file F`, `--repo URL`, … (no
    /// secrets: URLs without passwords, file paths).
    pub args: Vec<OsString>,
    /// Variables to set, e.g. `HOLDFAST_PASSWORD` (the value is a secret).
    pub env: Vec<(String, String)>,
}

impl ChildCredentials {
    /// Adds another set (a server's and its repository's).
    pub fn extend(&mut self, other: ChildCredentials) {
        self.args.extend(other.args);
        self.env.extend(other.env);
    }

    /// Applies to a command: removes [`CHILD_ENV_REMOVE`], then sets `env`, then adds `args`.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for name in CHILD_ENV_REMOVE {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.args);
    }

    /// [`apply`](Self::apply) for a `std::process::Command`.
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        for name in CHILD_ENV_REMOVE {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.args);
    }
}

impl fmt::Debug for ChildCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, _)| format!("{k}=<redacted>"))
            .collect();
        f.debug_struct("ChildCredentials")
            .field("args", &self.args)
            .field("env", &env)
            .finish()
    }
}

/// A server with its connection resolved and what a child needs to reach it.
#[derive(Clone, Debug)]
pub struct ResolvedServer {
    pub name: String,
    /// The merged settings (host, port or socket, user, TLS, password and where it came from).
    pub connection: ConnectionConfig,
    /// For a child `holdfast` command that connects to the server.
    pub child: ChildCredentials,
}

/// Which flags a repository is given with: `--repo` for most commands, `--from`/`--to` for copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoRole {
    Main,
    From,
    To,
}

pub(super) fn resolve_connection(
    server: &ServerConfig,
    env: Env<'_>,
) -> holdfast::Result<ConnectionConfig> {
    let spec = ConnectionSpec {
        url: Some(server.source.trim().to_string()),
        defaults_file: server.defaults_file.clone(),
        password_file: server.password_file.clone(),
        ..Default::default()
    };
    let filtered = |name: &str| {
        if CONNECTION_ENV_HIDDEN.contains(&name) {
            None
        } else {
            env(name)
        }
    };
    let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let mut connection = ConnectionConfig::resolve_with_env(&spec, &filtered, home.as_deref())?;
    if let Some(var) = &server.password_env {
        if let Some(password) = env(var).filter(|p| !p.is_empty()) {
            connection = connection.with_password(Some(&password), &format!("${var}"));
        }
    }
    Ok(connection)
}

pub(super) fn resolve_server(
    server: &ServerConfig,
    env: Env<'_>,
) -> holdfast::Result<ResolvedServer> {
    let connection = resolve_connection(server, env)?;
    let mut child = ChildCredentials::default();
    child.args.push("--source".into());
    child.args.push(server.source.trim().into());
    if let Some(f) = &server.defaults_file {
        child.args.push("--defaults-file".into());
        child.args.push(f.into());
    }
    if let Some(f) = &server.password_file {
        child.args.push("--password-file".into());
        child.args.push(f.into());
    }
    if let Some(var) = &server.password_env {
        if let Some(password) = env(var).filter(|p| !p.is_empty()) {
            child.env.push(("HOLDFAST_PASSWORD".into(), password));
        }
    }
    Ok(ResolvedServer {
        name: server.name.clone(),
        connection,
        child,
    })
}

impl RepositoryConfig {
    /// Flags and environment for a child using this repository in `role`: the URL, the
    /// passphrase file or variable, identity files, and `--max-rate`.
    pub fn child_credentials(&self, role: RepoRole, env: Env<'_>) -> ChildCredentials {
        let (url_flag, prefix, pass_var) = match role {
            RepoRole::Main => ("--repo", "--", "HOLDFAST_PASSPHRASE"),
            RepoRole::From => ("--from", "--from-", "HOLDFAST_FROM_PASSPHRASE"),
            RepoRole::To => ("--to", "--to-", "HOLDFAST_TO_PASSPHRASE"),
        };
        let mut c = ChildCredentials::default();
        c.args.push(url_flag.into());
        c.args.push(self.url.trim().into());
        if let Some(f) = &self.passphrase_file {
            c.args.push(format!("{prefix}passphrase-file").into());
            c.args.push(f.into());
        }
        for f in &self.identity_file {
            c.args.push(format!("{prefix}identity-file").into());
            c.args.push(f.into());
        }
        if let Some(var) = &self.passphrase_env {
            if let Some(passphrase) = env(var).filter(|p| !p.is_empty()) {
                c.env.push((pass_var.into(), passphrase));
            }
        }
        if role == RepoRole::Main {
            if let Some(rate) = &self.max_rate {
                c.args.push("--max-rate".into());
                c.args.push(rate.into());
            }
        }
        c
    }
}
