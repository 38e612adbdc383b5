//! The daemon's configuration file (TOML), as written by the user. Every section rejects unknown
//! keys, so a typo is an error rather than a silently ignored setting. Passwords and passphrases
//! are never values here: only where to find them (an option file, a password file, the name of
//! an environment variable).
//!
//! ```toml
//! [daemon]
//! listen = "127.0.0.1:9187"
//! state = "/var/lib/holdfast/state.db"      # or "postgres://holdfast@db/holdfast"
//!
//! [[repository]]
//! name = "main"
//! url = "s3://backups/holdfast?endpoint=https://s3.example.com&region=eu-1"
//! passphrase_file = "/etc/holdfast/main.pass"
//!
//! [[server]]
//! name = "db1"
//! source = "mysql://backup@db1.example.com:3306/"
//! defaults_file = "/etc/holdfast/db1.cnf"
//! repository = "main"
//! binlog = true
//!
//! [[server.schedule]]
//! job = "backup"
//! cron = "0 0 2 * * *"
//! timezone = "Europe/Berlin"
//! ```
//!
//! [`load`] reads, parses and validates a file ([`Config::validate`]: every value parses, every
//! reference resolves, every secret source exists) and reports every problem with its key path
//! ([`ConfigError`]); after that the typed accessors cannot fail. [`credentials`] turns a server
//! or repository into what a child `holdfast` process needs. The keys are documented in
//! docs/daemon.md ("Configuration") and shown in contrib/holdfast.toml.

mod credentials;
mod error;
mod notifier;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use credentials::{ChildCredentials, RepoRole, ResolvedServer, CHILD_ENV_REMOVE};
pub use error::{ConfigError, Problem};
pub use notifier::{
    AlertmanagerConfig, DeliveryKeys, DingtalkConfig, EmailConfig, FeishuConfig, NotifierConfig,
    SlackConfig, WebhookConfig, WecomConfig,
};
pub use validate::{Env, MAX_NAME_LEN, NOTIFIER_KINDS};

use crate::scheduler::{parse_timezone, Schedule};

use crate::jobs::queue::Limits;
use crate::jobs::{JobKind, JobSpec, Trigger};
use crate::time::Millis;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonSection,
    #[serde(default)]
    pub repository: Vec<RepositoryConfig>,
    #[serde(default)]
    pub server: Vec<ServerConfig>,
    /// Where alerts go (see [`NotifierConfig`]).
    #[serde(default)]
    pub notifier: Vec<NotifierConfig>,
    #[serde(default)]
    pub alerts: AlertsSection,
}

/// `[daemon]`: the daemon itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// Address of `/metrics`, `/healthz`, `/readyz`, the API and the console. With `tls_cert`
    /// and `tls_key` the listener speaks HTTPS; without, plain HTTP is allowed on loopback only
    /// unless `allow_plain_http` says otherwise.
    pub listen: String,
    /// Allow plain HTTP (no `tls_cert`) on a non-loopback address, where logins, session cookies
    /// and tokens would travel in clear. Default false; logged as a warning when used.
    pub allow_plain_http: bool,
    /// The server certificate chain (PEM, leaf first) for HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), mode 0600.
    pub tls_key: Option<PathBuf>,
    /// The job store: a SQLite file path (`sqlite://…` or a plain path) or `postgres://…`.
    pub state: String,
    /// For a PostgreSQL store: the file whose first line is the store's password (or set
    /// `HOLDFAST_STATE_PASSWORD`).
    pub state_password_file: Option<PathBuf>,
    /// This daemon's name in the store (leases, transitions). Default: host name and pid.
    pub worker_id: Option<String>,
    /// Jobs running on this daemon at once.
    pub max_jobs: usize,
    /// Server-loading jobs (backups) running on one database host at once, across daemons.
    pub max_jobs_per_host: usize,
    /// A running job's lease; a daemon heartbeats every third of it.
    pub lease: String,
    /// On SIGTERM: how long running jobs may go on before they are cancelled.
    pub shutdown_grace: String,
    /// The time zone of schedules that name none (IANA name).
    pub timezone: String,
    /// CPU niceness (0–19) of heavy jobs (backups, drills, copies).
    pub nice: i32,
    /// I/O class of heavy jobs: "idle", "best-effort" or "none".
    pub ionice: String,
    /// cgroup v2 `cpu.max` for heavy jobs (e.g. "50000 100000" = half a core) where the daemon
    /// may create cgroups; unset = no cgroup.
    pub cpu_max: Option<String>,
    /// cgroup v2 `io.max` line for heavy jobs (e.g. "8:0 wbps=52428800").
    pub io_max: Option<String>,
    /// The `holdfast` binary jobs run (default: the daemon's own executable).
    pub holdfast_binary: Option<PathBuf>,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            listen: "127.0.0.1:9187".into(),
            allow_plain_http: false,
            tls_cert: None,
            tls_key: None,
            state: "/var/lib/holdfast/state.db".into(),
            state_password_file: None,
            worker_id: None,
            max_jobs: 2,
            max_jobs_per_host: 1,
            lease: "60s".into(),
            shutdown_grace: "5m".into(),
            timezone: "UTC".into(),
            nice: 10,
            ionice: "idle".into(),
            cpu_max: None,
            io_max: None,
            holdfast_binary: None,
        }
    }
}

/// `[[repository]]`: where backups go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub name: String,
    /// As `--repo` (file://, s3://, …). Object-store secrets come from the environment or the
    /// store's own credential files, never from this URL.
    pub url: String,
    /// Encrypted repository: a file whose first line is the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Encrypted repository: the environment variable holding the passphrase.
    pub passphrase_env: Option<String>,
    /// Encrypted repository: age identity files.
    #[serde(default)]
    pub identity_file: Vec<PathBuf>,
    /// Bandwidth limit for jobs writing here (as `--max-rate`, e.g. "50MB").
    pub max_rate: Option<String>,
    /// Alert when the repository grows beyond this share of `size_limit` (e.g. "2TB").
    pub size_limit: Option<String>,
}

/// `[[server]]`: a database server and what to do with it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub name: String,
    /// As `--source`, without a password (mysql://user@host:port/ or a socket URL).
    pub source: String,
    /// MySQL option file with the credentials (`[client]`), like `--defaults-file`.
    pub defaults_file: Option<PathBuf>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The environment variable (of the daemon) holding the password.
    pub password_env: Option<String>,
    /// The repository's name.
    pub repository: String,
    /// Archive the binlog continuously (a supervised `binlog stream`).
    #[serde(default)]
    pub binlog: bool,
    #[serde(default)]
    pub schedule: Vec<ScheduleConfig>,
}

/// `[[server.schedule]]`: one job on a cron schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub job: JobKind,
    /// Cron with seconds: `sec min hour day-of-month month day-of-week`.
    pub cron: String,
    /// IANA time zone (default: `[daemon] timezone`).
    pub timezone: Option<String>,
    /// Higher runs first (default by job: backups 100 … drills 20).
    pub priority: Option<i32>,
    /// An attempt running longer is stopped and the job ends timed-out (e.g. "6h").
    pub timeout: Option<String>,
    /// Attempts in all for transient failures (default 3).
    pub attempts: Option<u32>,
    /// First retry delay (default "30s"), doubling up to `backoff_cap` (default "15m").
    pub backoff: Option<String>,
    pub backoff_cap: Option<String>,
    /// Only start inside this local-time window, e.g. "01:00-05:00" (may cross midnight).
    pub window: Option<String>,
    /// `copy`: the target repository's name.
    pub to: Option<String>,
}

/// `[alerts]`: thresholds of the events that are not job outcomes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// Archive lag beyond this raises an alert (e.g. "5m").
    pub archive_lag: String,
    /// Repository size beyond this share of its `size_limit` raises an alert.
    pub size_warn_ratio: f64,
    /// An incident still open is notified again after this long (e.g. "4h"); "0s" never.
    pub repeat_interval: String,
}

impl Default for AlertsSection {
    fn default() -> Self {
        AlertsSection {
            archive_lag: "5m".into(),
            size_warn_ratio: 0.9,
            repeat_interval: "4h".into(),
        }
    }
}

/// Parses a duration like "30s", "15m", "6h", "2d" or "500ms" into milliseconds
/// ([`holdfast::units::parse_duration`]).
pub fn parse_duration_ms(text: &str) -> Result<Millis, String> {
    holdfast::units::parse_duration(text).map(crate::time::millis)
}

/// Reads, parses and validates the config file at `path` (with the process environment).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    load_with_env(path, &env)
}

/// [`load`] with the environment injected (tests; `--check-config` uses the real one).
pub fn load_with_env(path: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let config = Config::parse(&text, path)?;
    config.validate_with_env(path, env)?;
    Ok(config)
}

/// Where the job store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateLocation {
    /// An SQLite file (`state = "/var/lib/holdfast/state.db"` or `sqlite:///…`).
    Sqlite(PathBuf),
    /// A PostgreSQL URL without a password (`postgres://holdfast@db/holdfast`).
    Postgres(String),
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    validate::parse_listen(text)
}

impl DaemonSection {
    /// The address to serve on (validated: loopback unless `allow_plain_http`).
    pub fn listen_addr(&self) -> SocketAddr {
        parse_listen(&self.listen).unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9187)))
    }

    /// The job store.
    pub fn state(&self) -> StateLocation {
        let s = self.state.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            StateLocation::Postgres(s.to_string())
        } else {
            let path = s.strip_prefix("sqlite://").unwrap_or(s);
            StateLocation::Sqlite(PathBuf::from(path))
        }
    }

    /// The default time zone of schedules.
    pub fn timezone(&self) -> chrono_tz::Tz {
        parse_timezone(&self.timezone).unwrap_or(chrono_tz::UTC)
    }

    /// A running job's lease in milliseconds (validated: at least 3 s).
    pub fn lease_ms(&self) -> Millis {
        parse_duration_ms(&self.lease).unwrap_or(60_000)
    }

    pub fn shutdown_grace_ms(&self) -> Millis {
        parse_duration_ms(&self.shutdown_grace).unwrap_or(300_000)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            global: self.max_jobs.max(1),
            per_host: self.max_jobs_per_host.max(1),
        }
    }
}

impl Config {
    /// Parses TOML text; `file` is named in errors. A value of the wrong type or an unknown key
    /// is an error naming its key path (`server[1].schedule[0].job`) and line.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::Syntax {
                file: file.to_path_buf(),
                line,
                key,
                message: inner.message().trim().to_string(),
            }
        })
    }

    /// Checks everything (see the module docs) with the process environment; every problem is
    /// reported, each with its key path. `file` is named in the error.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        self.validate_with_env(file, &env)
    }

    /// [`validate`](Self::validate) with the environment injected.
    pub fn validate_with_env(&self, file: &Path, env: Env<'_>) -> Result<(), ConfigError> {
        validate::validate(self, file, env)
    }

    /// Every schedule of every server, parsed, in config order: `(server index, schedule index,
    /// schedule)`. Panics on an invalid schedule: call after [`validate`](Self::validate).
    pub fn schedules(&self) -> Vec<(usize, usize, Schedule)> {
        let mut out = Vec::new();
        for (i, server) in self.server.iter().enumerate() {
            for j in 0..server.schedule.len() {
                out.push((i, j, self.schedule(server, j)));
            }
        }
        out
    }

    /// One server's schedule, parsed. Panics on an invalid schedule: call after validation.
    pub fn schedule(&self, server: &ServerConfig, index: usize) -> Schedule {
        let sc = &server.schedule[index];
        let tz = sc.timezone.as_deref().unwrap_or(&self.daemon.timezone);
        Schedule::parse(
            schedule_key(server, index),
            &sc.cron,
            tz,
            sc.window.as_deref(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "schedule {} not validated: {e}",
                schedule_key(server, index)
            )
        })
    }

    /// A server's connection and child credentials, resolved with the process environment.
    pub fn resolve_server(&self, server: &ServerConfig) -> holdfast::Result<ResolvedServer> {
        let env = |name: &str| std::env::var(name).ok();
        credentials::resolve_server(server, &env)
    }

    /// [`resolve_server`](Self::resolve_server) with the environment injected.
    pub fn resolve_server_with_env(
        &self,
        server: &ServerConfig,
        env: Env<'_>,
    ) -> holdfast::Result<ResolvedServer> {
        credentials::resolve_server(server, env)
    }

    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.server.iter().find(|s| s.name == name)
    }

    pub fn repository(&self, name: &str) -> Option<&RepositoryConfig> {
        self.repository.iter().find(|r| r.name == name)
    }

    /// The job a server's schedule queues (`index` into its `schedule` list).
    pub fn scheduled_job(
        &self,
        server: &ServerConfig,
        index: usize,
        trigger: Trigger,
        planned_at: Millis,
    ) -> JobSpec {
        let schedule = &server.schedule[index];
        let ms = |v: &Option<String>, default: Millis| {
            v.as_deref()
                .and_then(|s| parse_duration_ms(s).ok())
                .unwrap_or(default)
        };
        JobSpec {
            server: server.name.clone(),
            host: server.host(),
            repository: server.repository.clone(),
            kind: schedule.job,
            priority: schedule.priority.unwrap_or(schedule.job.default_priority()),
            timeout_ms: ms(&schedule.timeout, 6 * 3_600_000),
            max_attempts: schedule.attempts.unwrap_or(3).max(1),
            backoff_base_ms: ms(&schedule.backoff, 30_000),
            backoff_cap_ms: ms(&schedule.backoff_cap, 900_000),
            schedule: Some(schedule_key(server, index)),
            planned_at: Some(planned_at),
            trigger,
            requested_by: None,
        }
    }

    /// A job someone asked for now (CLI or API), with the defaults of schedules.
    pub fn manual_job(&self, server: &ServerConfig, kind: JobKind, requested_by: &str) -> JobSpec {
        JobSpec {
            server: server.name.clone(),
            host: server.host(),
            repository: server.repository.clone(),
            kind,
            priority: kind.default_priority(),
            timeout_ms: 6 * 3_600_000,
            max_attempts: 3,
            backoff_base_ms: 30_000,
            backoff_cap_ms: 900_000,
            schedule: None,
            planned_at: None,
            trigger: Trigger::Manual,
            requested_by: Some(requested_by.to_string()),
        }
    }
}

/// A schedule's stable key in the store: `<server>/<index>:<job>`.
pub fn schedule_key(server: &ServerConfig, index: usize) -> String {
    format!("{}/{}:{}", server.name, index, server.schedule[index].job)
}

impl ServerConfig {
    /// The database host, for the per-host limit: the source URL's host (`localhost` for a
    /// socket).
    pub fn host(&self) -> String {
        url_host(&self.source).unwrap_or_else(|| "localhost".into())
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    if host.len() >= 3 && host[..3].eq_ignore_ascii_case("%2f") {
        // A percent-encoded socket path.
        return Some("localhost".into());
    }
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests;
