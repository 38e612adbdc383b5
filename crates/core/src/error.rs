//! The error type of the domain library.
//!
//! Every error carries an [`ErrorKind`], which is what callers branch on: the CLI maps each kind to
//! a documented exit code, retry decorators ask [`Error::is_transient`]. The message says what went
//! wrong and, where we know it, what to do about it.

use std::fmt;

/// What class of failure happened; stable, because exit codes are derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad arguments or configuration (a malformed URL, an unknown option).
    Usage,
    /// The repository does not exist at the given location.
    RepoMissing,
    /// The repository exists but cannot be used: newer format, unreadable, not a repository.
    RepoInvalid,
    /// Another process holds the repository lock.
    Locked,
    /// The repository is encrypted and no key was given, or the key given does not open it.
    Key,
    /// The storage failed: permission denied, full disk, I/O error.
    Storage,
    /// A requested object (backup id, file) does not exist.
    NotFound,
    /// Could not reach the database server.
    Connect,
    /// The server rejected our credentials or lacks a privilege we need.
    Auth,
    /// The server returned an error or behaved unexpectedly during work.
    Server,
    /// Data failed an integrity check: checksum mismatch, truncated file, row count mismatch.
    Integrity,
    /// The restore target is not in a state we may write to (non-empty, wrong version).
    TargetNotEmpty,
    /// A lock could not be obtained on the server in time; nothing was changed.
    LockTimeout,
    /// The recovery target is outside what the backups and the binlog archive can reach.
    NotRecoverable,
    /// `holdfast status`: the repository is not covered (a stale backup, a dead streamer, a
    /// lagging archive, a hole); the report names each problem.
    NotCovered,
    /// Interrupted by the user.
    Interrupted,
    /// A bug or an unexpected state in holdfast itself.
    Internal,
}

impl ErrorKind {
    /// The process exit code for this kind; documented in docs/exit-codes.md.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::Usage => 2,
            ErrorKind::RepoMissing => 3,
            ErrorKind::RepoInvalid => 4,
            ErrorKind::Locked => 5,
            ErrorKind::Key => 8,
            ErrorKind::Storage => 6,
            ErrorKind::NotFound => 7,
            ErrorKind::Connect => 10,
            ErrorKind::Auth => 11,
            ErrorKind::Server => 12,
            ErrorKind::LockTimeout => 13,
            ErrorKind::TargetNotEmpty => 14,
            ErrorKind::NotRecoverable => 15,
            ErrorKind::Integrity => 20,
            ErrorKind::NotCovered => 21,
            ErrorKind::Interrupted => 130,
        }
    }
}

/// An error of the domain library: a kind, a message for a human, and an optional cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    transient: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            transient: false,
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            transient: false,
            source: Some(Box::new(source)),
        }
    }

    /// Marks the error as worth retrying (a timeout, a dropped connection).
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// Prefixes the message with what we were doing, keeping the kind.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    pub fn integrity(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Integrity, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Server, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds context to results of this crate.
pub trait ResultExt<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

impl From<mysql_async::Error> for Error {
    fn from(e: mysql_async::Error) -> Self {
        crate::source::classify_mysql_error(e)
    }
}
