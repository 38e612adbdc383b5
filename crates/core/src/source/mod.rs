//! The database server we back up from or restore into.
//!
//! - [`conn`]: resolving connection settings from a URL, option files (`~/.my.cnf`,
//!   `--defaults-file`), environment and flags, and connecting (TCP, socket, TLS).
//! - [`server`]: flavor and version detection, server identity.
//! - [`snapshot`]: the consistent snapshot shared by N dump workers, aligned under a lock held
//!   only for milliseconds, with a watchdog.
//! - [`privileges`]: what each command needs, checked up front with the GRANT to run.
//! - [`wire`]: the raw-protocol connection; [`bulk`]: MariaDB's `COM_STMT_BULK_EXECUTE` command.

pub mod bulk;
pub mod conn;
pub mod privileges;
pub mod server;
pub mod snapshot;
pub mod wire;

pub use conn::{ConnectionConfig, ConnectionSpec};
pub use server::{Flavor, ServerIdentity};
pub use snapshot::MYSQL_CONNECTION_COLLATION;

use crate::{Error, ErrorKind};

/// Maps a driver error to our kinds: access denied is `Auth`, I/O and protocol failures before
/// the handshake are `Connect`, everything else the server said is `Server`.
pub fn classify_mysql_error(e: mysql_async::Error) -> Error {
    use mysql_async::Error as E;
    match &e {
        E::Server(se) => {
            let kind = match se.code {
                // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR,
                // ER_COLUMNACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR,
                // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
                1045 | 1044 | 1142 | 1143 | 1227 | 1698 => ErrorKind::Auth,
                // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK are worth retrying
                _ => ErrorKind::Server,
            };
            let transient = matches!(se.code, 1205 | 1213);
            let msg = match kind {
                ErrorKind::Auth => format!(
                    "the server refused access (error {}: {}); check the user, the password \
                     (option file, MYSQL_PWD or HOLDFAST_PASSWORD) and the grants",
                    se.code, se.message
                ),
                _ => format!("server error {} ({}): {}", se.code, se.state, se.message),
            };
            let err = Error::new(kind, msg);
            if transient {
                err.transient()
            } else {
                err
            }
        }
        E::Io(_) => Error::with_source(
            ErrorKind::Connect,
            "cannot talk to the server; check that it is running and the host, port or socket",
            e,
        )
        .transient(),
        E::Driver(_) | E::Other(_) | E::Url(_) => {
            Error::with_source(ErrorKind::Connect, "database connection failed", e)
        }
    }
}
