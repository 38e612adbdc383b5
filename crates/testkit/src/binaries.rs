//! Locating the server executables the test servers need: MariaDB's from the distro, MySQL's
//! from the directory `scripts/install-mysql.sh` unpacks it to.

use std::path::PathBuf;

/// The binaries every [`TestServer`](crate::TestServer) needs, with the Debian package providing each.
const REQUIRED: &[(&str, &str)] = &[
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("mariadb", "mariadb-client"),
];

/// Finds an executable by name on `$PATH` or in the usual sbin directories (core's sandbox
/// discovery, the one the product uses).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    holdfast::sandbox::find_binary(name)
}

/// Like [`find_binary`], but panics with [`require_binaries`]'s message when missing.
pub(crate) fn binary(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| {
        require_binaries();
        panic!("holdfast-testkit: `{name}` not found on PATH or in /usr/sbin")
    })
}

/// Panics with a clear message naming the apt packages to install when `mariadbd`,
/// `mariadb-install-db` or `mariadb` are missing. Tests that need a server must fail, not
/// skip silently, on a machine without MariaDB.
pub fn require_binaries() {
    let missing: Vec<(&str, &str)> = REQUIRED
        .iter()
        .copied()
        .filter(|(name, _)| find_binary(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    packages.dedup();
    panic!(
        "holdfast-testkit needs MariaDB binaries to run real-server tests, but {} not found \
         (searched $PATH and {}).\nInstall them with:\n    apt-get install -y {}\n\
         (CI installs them in .ci/run; tests never skip silently without a server.)",
        names.join(", "),
        holdfast::sandbox::binaries::EXTRA_DIRS.join(", "),
        packages.join(" "),
    );
}

/// Environment variable naming the MySQL 5.7 base directory (`bin/mysqld`, `share/mysql`).
pub const MYSQL_BASEDIR_ENV: &str = "HOLDFAST_MYSQL_BASEDIR";

/// Where `scripts/install-mysql.sh` installs MySQL 5.7 when `HOLDFAST_MYSQL_BASEDIR` is unset:
/// `~/.cache/holdfast/mysql-5.7.29`.
pub fn default_mysql_basedir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/holdfast/mysql-5.7.29")
}

/// The MySQL installation a [`TestServer`](crate::TestServer) of [`Flavor::MySql`] runs.
///
/// [`Flavor::MySql`]: crate::Flavor::MySql
#[derive(Debug, Clone)]
pub struct MysqlInstall {
    /// `--basedir`.
    pub basedir: PathBuf,
    /// The `mysqld` executable.
    pub mysqld: PathBuf,
    /// `--lc-messages-dir` (holds `english/errmsg.sys`).
    pub messages_dir: PathBuf,
}

/// Finds the MySQL installation in `HOLDFAST_MYSQL_BASEDIR` or the default directory. Accepts
/// the installed layout (`bin/mysqld`) and the npm package's (`mysqld` beside `share/`).
pub fn find_mysql() -> Option<MysqlInstall> {
    let basedir = std::env::var_os(MYSQL_BASEDIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_mysql_basedir);
    let mysqld = [basedir.join("bin/mysqld"), basedir.join("mysqld")]
        .into_iter()
        .find(|p| is_executable(p))?;
    let messages_dir = basedir.join("share/mysql");
    messages_dir
        .join("english/errmsg.sys")
        .is_file()
        .then_some(MysqlInstall {
            basedir,
            mysqld,
            messages_dir,
        })
}

/// Panics with a message naming `scripts/install-mysql.sh` when MySQL is not installed, and
/// with [`require_binaries`]'s message when the MariaDB client (used by `TestServer::sql`) is
/// missing. MySQL tests fail, never skip, on a machine without it.
pub fn require_mysql() -> MysqlInstall {
    if find_binary("mariadb").is_none() {
        require_binaries();
    }
    find_mysql().unwrap_or_else(|| {
        let dir = std::env::var_os(MYSQL_BASEDIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(default_mysql_basedir);
        panic!(
            "holdfast-testkit needs a MySQL 5.7 server for MySQL-flavor tests, but {} has no \
             bin/mysqld with share/mysql/english/errmsg.sys.\nInstall it with:\n    \
             bash scripts/install-mysql.sh\n(it installs into ${MYSQL_BASEDIR_ENV}, default {}; \
             CI runs it in .ci/run; tests never skip silently without a server.)",
            dir.display(),
            default_mysql_basedir().display(),
        )
    })
}

fn is_executable(path: &std::path::Path) -> bool {
    holdfast::sandbox::binaries::is_executable(path)
}
