//! The external tools of the physical engine: finding `mariabackup` / `xtrabackup` and their
//! stream extractors, checking they fit the server, and handing them credentials without argv.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::source::{ConnectionConfig, Flavor, ServerIdentity};
use crate::{Error, ErrorKind, Result};

/// Directories searched after `$PATH` (`mariadbd` lives in `/usr/sbin`).
const EXTRA_DIRS: &[&str] = &["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"];

/// Which family of tools a backup was taken with; restores use the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `mariabackup` + `mbstream`, for MariaDB.
    MariaBackup,
    /// Percona `xtrabackup` + `xbstream`, for MySQL (same major.minor as the server).
    XtraBackup,
}

impl ToolKind {
    pub fn for_flavor(flavor: Flavor) -> ToolKind {
        match flavor {
            Flavor::MariaDb => ToolKind::MariaBackup,
            Flavor::MySql => ToolKind::XtraBackup,
        }
    }

    pub fn from_name(name: &str) -> Result<ToolKind> {
        match name {
            "mariabackup" => Ok(ToolKind::MariaBackup),
            "xtrabackup" => Ok(ToolKind::XtraBackup),
            other => Err(Error::new(
                ErrorKind::RepoInvalid,
                format!("the manifest names an unknown physical backup tool `{other}`"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ToolKind::MariaBackup => "mariabackup",
            ToolKind::XtraBackup => "xtrabackup",
        }
    }

    fn binaries(self) -> (&'static [&'static str], &'static str) {
        match self {
            // Newer MariaDB packages also ship it as `mariadb-backup`.
            ToolKind::MariaBackup => (&["mariabackup", "mariadb-backup"], "mbstream"),
            ToolKind::XtraBackup => (&["xtrabackup"], "xbstream"),
        }
    }
}

/// A located backup tool and its stream extractor.
#[derive(Debug, Clone)]
pub struct BackupTool {
    pub kind: ToolKind,
    pub path: PathBuf,
    pub extractor: PathBuf,
    /// First line of `--version`.
    pub version: String,
}

impl BackupTool {
    /// The tool that can back up `server`; a clear error naming what to install otherwise.
    pub async fn for_server(server: &ServerIdentity) -> Result<BackupTool> {
        let kind = ToolKind::for_flavor(server.flavor);
        let tool = BackupTool::locate(kind, &install_hint(server)).await?;
        if kind == ToolKind::XtraBackup {
            let (major, minor) = server.major_minor();
            let want = format!("{major}.{minor}.");
            if !tool.version.contains(&format!(" {want}")) {
                return Err(Error::usage(format!(
                    "{} is `{}`, but the server is MySQL {}: physical backups need the \
                     xtrabackup of the same major version; {}",
                    tool.path.display(),
                    tool.version,
                    server.version,
                    install_hint(server)
                )));
            }
        }
        Ok(tool)
    }

    /// Finds the tool family `kind`; `hint` says what to install when it is missing.
    pub async fn locate(kind: ToolKind, hint: &str) -> Result<BackupTool> {
        let (names, extractor) = kind.binaries();
        let path = names.iter().find_map(|n| find_binary(n)).ok_or_else(|| {
            Error::usage(format!(
                "`{}` is not installed (searched $PATH and {}); {hint}",
                names[0],
                EXTRA_DIRS.join(", ")
            ))
        })?;
        let extractor = find_binary(extractor).ok_or_else(|| {
            Error::usage(format!(
                "`{extractor}` (which unpacks {} streams) is not installed; {hint}",
                kind.name()
            ))
        })?;
        let out = tokio::process::Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Usage,
                    format!("cannot run {}", path.display()),
                    e,
                )
            })?;
        let text = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .into_owned();
        let version = text
            .lines()
            .find(|l| l.contains("based on") || l.contains("Ver") || l.contains("version"))
            .unwrap_or_else(|| text.lines().next().unwrap_or(""))
            .trim()
            .to_string();
        Ok(BackupTool {
            kind,
            path,
            extractor,
            version,
        })
    }
}

fn install_hint(server: &ServerIdentity) -> String {
    match server.flavor {
        Flavor::MariaDb => {
            "install the MariaDB backup tool of the server's version (Debian/Ubuntu: \
             `apt-get install mariadb-backup`; RPM: `MariaDB-backup`)"
                .to_string()
        }
        Flavor::MySql => {
            let (major, minor) = server.major_minor();
            let package = if major == 8 && minor == 0 {
                "percona-xtrabackup-80".to_string()
            } else {
                format!("percona-xtrabackup-{major}{minor}")
            };
            format!(
                "install Percona XtraBackup {major}.{minor} for this MySQL {major}.{minor} server \
                 (package `{package}` from the Percona repository)"
            )
        }
    }
}

/// Finds an executable on `$PATH` or in the usual sbin/bin directories.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|c| {
            c.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A private scratch directory (mode 0700) holding the tool's option file (mode 0600, with the
/// password) and its small side outputs; removed with everything in it on drop.
pub struct PrivateDir {
    dir: tempfile::TempDir,
}

impl PrivateDir {
    pub fn new() -> Result<PrivateDir> {
        let dir = tempfile::Builder::new()
            .prefix("holdfast-")
            .tempdir()
            .map_err(|e| Error::with_source(ErrorKind::Internal, "cannot create a temp dir", e))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::with_source(ErrorKind::Internal, "cannot protect a temp dir", e))?;
        Ok(PrivateDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `source`'s client settings (with the password) to a 0600 option file for
    /// `--defaults-extra-file`, and returns its path.
    pub fn write_option_file(&self, source: &ConnectionConfig) -> Result<PathBuf> {
        let path = self.dir.path().join("client.cnf");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::with_source(ErrorKind::Internal, "cannot write the option file", e)
            })?;
        file.write_all(source.client_option_file().as_bytes())
            .map_err(|e| {
                Error::with_source(ErrorKind::Internal, "cannot write the option file", e)
            })?;
        Ok(path)
    }
}
