//! Argument groups shared by several subcommands.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast::engine::logical::Filter;
use holdfast::repo::Repository;
use holdfast::source::conn::TlsMode;
use holdfast::source::{ConnectionConfig, ConnectionSpec};
use holdfast::storage::{self, RetryPolicy, Storage, StorageOptions};

pub use crate::keys::Keys;

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Print reports as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Never draw progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// Repository location: file:///path (or a plain path), s3://bucket/prefix?endpoint=…&region=…,
    /// oss://, gcs://, azblob://, sftp://. Credentials come from the environment
    /// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, …) or the store's credentials file, never the URL.
    #[arg(long, env = "HOLDFAST_REPO")]
    pub repo: String,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// How holdfast talks to a repository's storage: bandwidth, timeouts, retries, concurrency.
/// Shared by every command that opens a repository (`copy` applies them to both).
#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// Bandwidth limit for the repository, uploads and downloads together (e.g. 50MiB/s).
    #[arg(long, env = "HOLDFAST_MAX_RATE", value_parser = parse_rate, value_name = "RATE")]
    pub max_rate: Option<u64>,
    /// Time limit of one storage request; a stalled request is retried.
    #[arg(long, env = "HOLDFAST_STORAGE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub storage_timeout: std::time::Duration,
    /// Retries of a failed storage request (transient errors only, exponential backoff).
    #[arg(long, env = "HOLDFAST_STORAGE_RETRIES", default_value_t = 6)]
    pub storage_retries: usize,
    /// Storage requests in flight at once.
    #[arg(long, env = "HOLDFAST_STORAGE_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub storage_concurrency: u64,
}

impl StorageArgs {
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            retry: RetryPolicy {
                retries: self.storage_retries,
                ..RetryPolicy::default()
            },
            request_timeout: self.storage_timeout,
            max_rate: self.max_rate,
            max_concurrent: self.storage_concurrency as usize,
            credentials: None,
        }
    }

    /// Opens the storage at `url` with these options.
    pub fn open(&self, url: &str) -> Result<Arc<dyn Storage>> {
        Ok(storage::open(url, &self.options())?)
    }
}

impl RepoArgs {
    pub fn storage(&self) -> Result<Arc<dyn Storage>> {
        self.storage.open(&self.repo)
    }

    /// Opens the repository; an encrypted one is unlocked first (or the command fails with
    /// the key exit code before doing anything).
    pub async fn open(&self) -> Result<Repository> {
        let source = self.key.source("HOLDFAST_PASSPHRASE");
        Ok(Repository::open_with(self.storage()?, &source).await?)
    }
}

/// The key of an encrypted repository. The passphrase never comes from argv.
#[derive(Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// Encrypted repository: a file whose first line is the passphrase (or set
    /// HOLDFAST_PASSPHRASE; on a terminal holdfast asks).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Encrypted repository: an age identity file that opens a recipient key slot (repeatable).
    #[arg(long)]
    pub identity_file: Vec<PathBuf>,
}

impl KeyArgs {
    pub fn source(&self, env_var: &'static str) -> Keys {
        Keys {
            passphrase_file: self.passphrase_file.clone(),
            identity_files: self.identity_file.clone(),
            env_var,
            flag_prefix: "",
        }
    }
}

/// How to reach a server. The password never comes from argv: use an option file, a password
/// file, or the MYSQL_PWD / HOLDFAST_PASSWORD environment variables.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// Read only this MySQL option file (like the mysql client's --defaults-file).
    #[arg(long)]
    pub defaults_file: Option<PathBuf>,
    /// Read this option file after the standard ones.
    #[arg(long)]
    pub defaults_extra_file: Option<PathBuf>,
    /// A file whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Server host name or IP (overrides the URL and option files).
    #[arg(long)]
    pub host: Option<String>,
    /// Server TCP port (default 3306).
    #[arg(long)]
    pub port: Option<u16>,
    /// Unix socket of a local server, instead of TCP.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// User name to log in as (the password never comes from argv).
    #[arg(long)]
    pub user: Option<String>,
    /// TLS: disabled, preferred, required, verify-ca, verify-identity.
    #[arg(long, value_parser = parse_tls)]
    pub ssl_mode: Option<TlsMode>,
    /// TLS: the CA certificate file that signed the server's certificate.
    #[arg(long)]
    pub ssl_ca: Option<PathBuf>,
    /// TLS: a client certificate file (with --ssl-key).
    #[arg(long)]
    pub ssl_cert: Option<PathBuf>,
    /// TLS: the client certificate's private key file.
    #[arg(long)]
    pub ssl_key: Option<PathBuf>,
}

fn parse_tls(s: &str) -> Result<TlsMode, String> {
    match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "disabled" => Ok(TlsMode::Disabled),
        "preferred" => Ok(TlsMode::Preferred),
        "required" => Ok(TlsMode::Required),
        "verify-ca" => Ok(TlsMode::VerifyCa),
        "verify-identity" => Ok(TlsMode::VerifyIdentity),
        other => Err(format!(
            "unknown TLS mode `{other}`: use disabled, preferred, required, verify-ca or verify-identity"
        )),
    }
}

impl ServerArgs {
    pub fn resolve(&self, url: Option<&str>) -> Result<ConnectionConfig> {
        let spec = ConnectionSpec {
            url: url.map(str::to_string),
            host: self.host.clone(),
            port: self.port,
            socket: self.socket.clone(),
            user: self.user.clone(),
            defaults_file: self.defaults_file.clone(),
            defaults_extra_file: self.defaults_extra_file.clone(),
            password_file: self.password_file.clone(),
            tls: self.ssl_mode,
            ssl_ca: self.ssl_ca.clone(),
            ssl_cert: self.ssl_cert.clone(),
            ssl_key: self.ssl_key.clone(),
        };
        Ok(ConnectionConfig::resolve(&spec)?)
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only these databases (comma-separated, globs allowed).
    #[arg(long, value_delimiter = ',')]
    pub databases: Vec<String>,
    /// Skip these databases.
    #[arg(long, value_delimiter = ',')]
    pub exclude_databases: Vec<String>,
    /// Only these tables, as db.table (comma-separated, globs allowed).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Skip these tables, as db.table.
    #[arg(long, value_delimiter = ',')]
    pub exclude_tables: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            include_databases: self.databases.clone(),
            exclude_databases: self.exclude_databases.clone(),
            include_tables: self.tables.clone(),
            exclude_tables: self.exclude_tables.clone(),
        }
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

pub use holdfast::units::{parse_duration, parse_rate, parse_size};
