//! Locating the MariaDB executables the test servers need.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Directories searched after `$PATH`: `mariadbd` lives in `/usr/sbin`, which non-root users
/// often do not have on their `PATH`.
const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/local/mysql/bin",
    "/usr/local/mysql/sbin",
];

/// The binaries every [`TestServer`](crate::TestServer) needs, with the Debian package providing each.
const REQUIRED: &[(&str, &str)] = &[
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("mariadb", "mariadb-client"),
];

/// Finds an executable by name on `$PATH` or in the usual sbin directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
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
        EXTRA_DIRS.join(", "),
        packages.join(" "),
    );
}
