//! Finding a server installation: `mariadbd` / `mysqld`, the datadir initialiser, and where a
//! tarball install keeps its messages. Used by drills and by the test kit.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::source::Flavor;
use crate::{Error, ErrorKind, Result};

/// Directories searched after `$PATH`: `mariadbd` lives in `/usr/sbin`, which non-root users
/// often do not have on their `PATH`.
pub const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/local/mysql/bin",
    "/usr/local/mysql/sbin",
];

/// Finds an executable by name on `$PATH` or in [`EXTRA_DIRS`].
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A server installation a sandbox can run.
#[derive(Debug, Clone)]
pub struct ServerInstall {
    pub flavor: Flavor,
    /// `mariadbd` or `mysqld`.
    pub server: PathBuf,
    /// `--basedir` (tarball installs; `None` for a distro install).
    pub basedir: Option<PathBuf>,
    /// `--lc-messages-dir` (holds `english/errmsg.sys`) when it is not where the server looks.
    pub messages_dir: Option<PathBuf>,
    /// MariaDB's `mariadb-install-db` (MySQL initialises with `mysqld --initialize-insecure`).
    pub install_db: Option<PathBuf>,
}

impl ServerInstall {
    /// Finds the installation of `flavor`: `explicit` (a server binary, or a base directory with
    /// `bin/mysqld` / `bin/mariadbd` / `sbin/mariadbd`) when given, else `$PATH` and the usual
    /// directories. Usage error (with what to do) when none is found.
    pub fn locate(flavor: Flavor, explicit: Option<&Path>) -> Result<ServerInstall> {
        let names: &[&str] = match flavor {
            Flavor::MariaDb => &["mariadbd", "mysqld"],
            Flavor::MySql => &["mysqld"],
        };
        let server = match explicit {
            Some(p) if p.is_dir() => ["bin", "sbin", "libexec", ""]
                .iter()
                .flat_map(|sub| names.iter().map(move |n| p.join(sub).join(n)))
                .find(|c| is_executable(c))
                .ok_or_else(|| {
                    Error::usage(format!(
                        "{} holds no {} (looked in bin/, sbin/, libexec/ and the directory \
                         itself); give the server binary or its base directory",
                        p.display(),
                        names.join(" or ")
                    ))
                })?,
            Some(p) if is_executable(p) => p.to_path_buf(),
            Some(p) => {
                return Err(Error::usage(format!(
                    "--server-binary {} is not an executable file",
                    p.display()
                )))
            }
            None => names.iter().find_map(|n| find_binary(n)).ok_or_else(|| {
                Error::new(
                    ErrorKind::Usage,
                    format!(
                        "no {} server binary found on PATH or in {}: install the server \
                         ({}) or give --server-binary PATH (a binary or a base directory)",
                        flavor_label(flavor),
                        EXTRA_DIRS.join(", "),
                        match flavor {
                            Flavor::MariaDb => "apt-get install mariadb-server",
                            Flavor::MySql => "a MySQL tarball or package",
                        }
                    ),
                )
            })?,
        };
        Ok(ServerInstall::from_server(flavor, server))
    }

    /// The installation around a known server binary: a base directory is assumed when the
    /// binary sits in `<base>/bin` with `<base>/share` beside it.
    pub fn from_server(flavor: Flavor, server: PathBuf) -> ServerInstall {
        let dir = server.parent().map(Path::to_path_buf).unwrap_or_default();
        // A tarball keeps its messages in `<base>/share[/mysql]`, with the server in `<base>/bin`
        // (or beside `share/`); a distro install (`/usr`) needs no base directory.
        let messages = |base: &Path| {
            [base.join("share/mysql"), base.join("share")]
                .into_iter()
                .find(|d| d.join("english/errmsg.sys").is_file())
        };
        let found = [Some(dir.as_path()), dir.parent()]
            .into_iter()
            .flatten()
            .find_map(|b| messages(b).map(|m| (b.to_path_buf(), m)));
        let (base, messages_dir) = match found {
            Some((base, _)) if base == Path::new("/usr") => (None, None),
            Some((base, m)) => (Some(base), Some(m)),
            None => (None, None),
        };
        let install_db = match flavor {
            Flavor::MySql => None,
            Flavor::MariaDb => {
                let beside = ["mariadb-install-db", "mysql_install_db"]
                    .iter()
                    .flat_map(|n| {
                        [dir.join(n)]
                            .into_iter()
                            .chain(dir.parent().map(|p| p.join("bin").join(n)))
                            .chain(dir.parent().map(|p| p.join("scripts").join(n)))
                    })
                    .find(|c| is_executable(c));
                beside.or_else(|| find_binary("mariadb-install-db"))
            }
        };
        ServerInstall {
            flavor,
            server,
            basedir: base,
            messages_dir,
            install_db,
        }
    }

    /// The server's version as it reports it (`10.11.6-MariaDB-0+deb12u1`, `5.7.29`).
    pub fn version(&self) -> Result<String> {
        let mut cmd = Command::new(&self.server);
        cmd.arg("--no-defaults");
        if let Some(dir) = &self.messages_dir {
            cmd.arg(format!("--lc-messages-dir={}", dir.display()));
        }
        let out = cmd.arg("--version").output().map_err(|e| {
            Error::with_source(
                ErrorKind::Usage,
                format!("cannot run {} --version", self.server.display()),
                e,
            )
        })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        parse_version(&text).ok_or_else(|| {
            Error::usage(format!(
                "{} --version printed no version (`{}`): is it a MariaDB or MySQL server?",
                self.server.display(),
                text.trim()
            ))
        })
    }

    /// A command running the server with `--no-defaults` (nothing from `/etc/mysql`), the base
    /// and messages directories, and `--user` when run as root.
    pub fn server_command(&self) -> Command {
        let mut cmd = Command::new(&self.server);
        cmd.arg("--no-defaults");
        if let Some(base) = &self.basedir {
            cmd.arg(format!("--basedir={}", base.display()));
        }
        if let Some(dir) = &self.messages_dir {
            cmd.arg(format!("--lc-messages-dir={}", dir.display()));
        }
        if let Some(user) = run_as_user() {
            cmd.arg(format!("--user={user}"));
        }
        cmd
    }

    /// A command initialising an empty `datadir` with a root account without password:
    /// `mariadb-install-db` (no test database) or `mysqld --initialize-insecure`. `init_file`
    /// is SQL MySQL runs after initialising (MariaDB ignores it). The caller adds output
    /// redirection and options that fix on-disk formats.
    pub fn init_command(&self, datadir: &Path, init_file: Option<&Path>) -> Result<Command> {
        let mut cmd = match self.flavor {
            Flavor::MariaDb => {
                let installer = self.install_db.as_ref().ok_or_else(|| {
                    Error::usage(format!(
                        "mariadb-install-db (which initialises a datadir) is not beside {} nor \
                         on PATH: install mariadb-server",
                        self.server.display()
                    ))
                })?;
                let mut cmd = Command::new(installer);
                cmd.arg("--no-defaults")
                    .arg(format!("--datadir={}", datadir.display()))
                    .arg("--auth-root-authentication-method=normal")
                    .arg("--skip-test-db");
                if let Some(base) = &self.basedir {
                    cmd.arg(format!("--basedir={}", base.display()));
                }
                if let Some(user) = run_as_user() {
                    cmd.arg(format!("--user={user}"));
                }
                cmd
            }
            Flavor::MySql => {
                let mut cmd = self.server_command();
                cmd.arg("--initialize-insecure")
                    .arg(format!("--datadir={}", datadir.display()))
                    .arg("--explicit-defaults-for-timestamp");
                if let Some(f) = init_file {
                    cmd.arg(format!("--init-file={}", f.display()));
                }
                cmd
            }
        };
        cmd.stdin(std::process::Stdio::null());
        Ok(cmd)
    }
}

/// `--user` for the server and its initialiser: needed when running as root (they refuse to
/// run as root otherwise), pointless for anyone else.
pub fn run_as_user() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then_some("root")
}

pub fn flavor_label(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "MariaDB",
        Flavor::MySql => "MySQL",
    }
}

/// The version from `mariadbd --version` / `mysqld --version` output.
pub fn parse_version(text: &str) -> Option<String> {
    let after = text.split("Ver ").nth(1)?;
    let v = after.split_whitespace().next()?;
    v.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// `major.minor` of a version string (`10.11.6-MariaDB` → (10, 11)).
pub fn major_minor(version: &str) -> (u32, u32) {
    let mut it = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        for (text, want) in [
            (
                "/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64",
                Some("10.11.6-MariaDB-0+deb12u1"),
            ),
            (
                "mysqld  Ver 5.7.29 for linux-glibc2.12 on x86_64 (MySQL Community Server (GPL))",
                Some("5.7.29"),
            ),
            ("garbage", None),
            ("x Ver abc", None),
        ] {
            assert_eq!(parse_version(text).as_deref(), want, "{text}");
        }
        assert_eq!(major_minor("10.11.6-MariaDB"), (10, 11));
        assert_eq!(major_minor("5.7.29-log"), (5, 7));
    }
}
