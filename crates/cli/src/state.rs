//! Opening the daemon's store from its config, for the commands that manage what lives there
//! (`user`, `token`, `audit`). The config is parsed, not fully validated: managing users must
//! work from a shell that lacks, say, a notifier's secret variable.

use std::path::Path;
use std::sync::Arc;

use holdfast::{Error, ErrorKind};
use holdfast_daemon::config::Config;
use holdfast_daemon::store::AccessStore;

/// The config at `path`, parsed.
pub fn config(path: &Path) -> holdfast::Result<Config> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read the config {}: {e}", path.display())))?;
    Config::parse(&text, path).map_err(|e| Error::usage(e.to_string()))
}

/// The access side of the daemon's store named by the config at `path`.
pub async fn open(path: &Path) -> holdfast::Result<Arc<dyn AccessStore>> {
    let config = config(path)?;
    let password = holdfast_daemon::daemon::store_password(&config).map_err(Error::usage)?;
    holdfast_daemon::store::open_access(&config.daemon.state, password)
        .await
        .map_err(|e| Error::new(ErrorKind::Storage, e.to_string()))
}

/// Who is acting, for the audit log: `cli:USER`.
pub fn actor() -> String {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid cannot fail.
            format!("uid {}", unsafe { libc::getuid() })
        });
    format!("cli:{name}")
}

/// A management error as the CLI's: invalid input and conflicts are usage (2), a missing user
/// or token not-found (7), the store storage (6).
pub fn manage_error(e: holdfast_daemon::auth::manage::ManageError) -> Error {
    use holdfast_daemon::auth::manage::ManageError as M;
    match e {
        M::Invalid(m) | M::Conflict(m) => Error::usage(m),
        M::Password(p) => Error::usage(p.to_string()),
        M::NotFound(m) => Error::new(ErrorKind::NotFound, m),
        M::Store(s) => Error::new(ErrorKind::Storage, s.to_string()),
    }
}

/// A store error as the CLI's (6).
pub fn store_error(e: holdfast_daemon::store::StoreError) -> Error {
    Error::new(ErrorKind::Storage, e.to_string())
}

/// Appends an event done from the CLI to the audit log.
pub async fn audit(
    store: &Arc<dyn AccessStore>,
    action: &str,
    target: &str,
    detail: String,
) -> holdfast::Result<()> {
    let event = holdfast_daemon::audit::Event::new(actor(), "local", action, target).detail(detail);
    holdfast_daemon::audit::record(store.as_ref(), event)
        .await
        .map(|_| ())
        .map_err(store_error)
}
