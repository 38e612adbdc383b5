//! Test support for holdfast: real, throwaway MariaDB and MySQL servers and data generators.
//!
//! - [`TestServer`] starts a private `mariadbd` (own temp directory, datadir, Unix socket and
//!   TCP port on 127.0.0.1) and kills it and removes everything on `Drop`. One server per test:
//!   tests never share server state. Servers start from a cached, freshly initialised datadir
//!   template (see `template.rs`), so a start costs about a second instead of running
//!   `mariadb-install-db` every time. With [`Flavor::MySql`] in [`ServerOptions`] it runs a
//!   MySQL 5.7 `mysqld` instead, with GTIDs on.
//! - [`require_binaries`] fails loudly (never skips) when the MariaDB binaries are missing;
//!   [`require_mysql`] likewise when MySQL is (`scripts/install-mysql.sh` installs it).
//! - [`GarageServer`] starts a private single-node Garage (an S3-compatible object store) with
//!   one bucket and key, for storage tests; it panics, never skips, when `garage` is missing.
//! - [`PgServer`] starts a private PostgreSQL (apt's `postgresql`; as the `postgres` user when
//!   run by root) for the daemon's job store tests; it panics, never skips, when missing.
//! - [`corrupt`]: a seeded [`Corrupter`] that flips bits in, truncates, deletes or swaps
//!   objects of a local repository, and puts them back.
//! - [`HttpReceiver`] and [`SmtpReceiver`] are real HTTP and SMTP servers on loopback that
//!   record what they receive (alert webhooks, e-mail); the HTTP one answers from a script
//!   (e.g. 500 twice, then 200), the SMTP one speaks STARTTLS or TLS with a throwaway CA.
//! - [`Browser`] drives a real headless Chromium through Debian's `chromedriver` (WebDriver,
//!   [`fantoccini`]) for the console's browser tests: fresh profile, offline-safe flags, PNG
//!   screenshots; it fails, never skips, when Chromium is missing.
//! - [`data`] creates small datasets and concurrent writers whose invariants tests can check.
//!
//! - [`FaultProxy`] is a TCP proxy that cuts, resets, stalls or slows connections on purpose
//!   (between holdfast and a server or the S3 store); [`run_killed`] runs a command and
//!   SIGKILLs it at a chosen time or progress marker, [`KillPoints`] draws those from a seed.
//!
//! Set `HOLDFAST_TESTKIT_KEEP=1` to keep a server's directory after the test for inspection
//! (the path is printed on drop).

mod binaries;
pub mod browser;
pub mod corrupt;
mod crash;
pub mod data;
mod fault_proxy;
mod flavor;
mod garage;
pub mod http_receiver;
mod port;
mod postgres;
mod server;
pub mod smtp_receiver;
mod spawner;
mod template;

pub use binaries::{
    default_mysql_basedir, find_binary, find_mysql, require_binaries, require_mysql, MysqlInstall,
    MYSQL_BASEDIR_ENV,
};
pub use browser::{require_browser, Browser, BrowserOptions};
pub use corrupt::{Corrupter, Damage, DamageKind, Injection};
pub use crash::{run_killed, CrashRun, KillAt, KillPoints};
pub use fault_proxy::{Direction, Fault, FaultProxy};
pub use flavor::Flavor;
pub use garage::{require_garage, GarageServer, GARAGE_REGION};
pub use http_receiver::{HttpReceiver, RecordedRequest, Reply};
pub use port::free_port;
pub use postgres::{find_postgres, require_postgres, PgServer, PG_USER};
pub use server::{ServerOptions, TestServer};
pub use smtp_receiver::{ReceivedMail, SmtpOptions, SmtpReceiver, SmtpTls};
