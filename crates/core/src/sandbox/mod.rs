//! Throwaway servers: start, size, watch and remove a private `mariadbd` / `mysqld`.
//!
//! A [`Sandbox`] owns a temp directory (`$TMPDIR/holdfast-sandbox-XXXXXX/`: `data/`, `tmp/`,
//! `mysqld.sock`, `error.log`, `mysqld.pid`, `owner.pid`) and the server process running in it.
//! The server listens on its Unix socket only (`--skip-networking`), reads no option file
//! (`--no-defaults`), runs with a small buffer pool ([`SandboxOptions::memory`]) and, unless
//! told otherwise, at a background CPU and I/O priority. Dropping the sandbox SIGKILLs the
//! server, waits for it and removes the directory, on every path: an error, a panic, or a
//! Ctrl-C that drops the future owning it. If the whole process is killed, the kernel kills the
//! server with it ([`spawn`]) and the next sandbox sweeps the directory.
//!
//! - [`binaries`]: finding an installation ([`ServerInstall`]): `$PATH`, a binary, a base dir.
//! - [`spawn`]: forking servers tied to the life of this process.
//! - [`probe`]: readiness without traces.
//!
//! Used by `holdfast drill` and by the test kit (which adds TCP, binlogs and templates on top).

pub mod binaries;
pub mod probe;
pub mod spawn;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use binaries::{find_binary, major_minor, ServerInstall};
pub use probe::handshake_received;
pub use spawn::{spawn_tied_to_process, Priority};

use crate::source::{ConnectionConfig, ConnectionSpec, Flavor};
use crate::{Error, ErrorKind, Result};

const DIR_PREFIX: &str = "holdfast-sandbox-";
/// The default buffer pool of a sandbox (`--drill-memory`).
pub const DEFAULT_MEMORY: &str = "256M";
const MIN_MEMORY: u64 = 16 << 20;

/// How a sandbox server runs.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// `innodb_buffer_pool_size` in bytes.
    pub memory: u64,
    /// Nice 10 and the lowest best-effort I/O priority.
    pub background: bool,
    /// More server options, appended last.
    pub extra_args: Vec<String>,
    /// How long startup (crash recovery included) may take.
    pub ready_timeout: Duration,
    /// Where the sandbox directory is created (default: the system temp dir).
    pub parent_dir: Option<PathBuf>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            memory: parse_size(DEFAULT_MEMORY).expect("valid default"),
            background: true,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(600),
            parent_dir: None,
        }
    }
}

/// `256M`, `1G`, `512K` or plain bytes (binary units), at least 16M.
pub fn parse_size(text: &str) -> Result<u64> {
    match crate::units::parse_size(text) {
        Ok(b) if b >= MIN_MEMORY => Ok(b),
        Ok(_) => Err(Error::usage(format!(
            "memory `{text}` is too small: a sandbox server needs at least 16M"
        ))),
        Err(_) => Err(Error::usage(format!(
            "`{text}` is not a size: write it like 256M or 1G"
        ))),
    }
}

/// A throwaway server (see the module documentation).
pub struct Sandbox {
    install: ServerInstall,
    opts: SandboxOptions,
    dir: Option<TempDir>,
    datadir: PathBuf,
    socket: PathBuf,
    error_log: PathBuf,
    child: Option<Child>,
}

impl Sandbox {
    /// Creates the sandbox directory; no datadir and no server yet.
    pub fn new(install: ServerInstall, opts: SandboxOptions) -> Result<Sandbox> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_leftovers);
        let parent = opts.parent_dir.clone().unwrap_or_else(std::env::temp_dir);
        let mut dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Usage,
                    format!("cannot create a sandbox directory in {}", parent.display()),
                    e,
                )
            })?;
        if dir.path().join("mysqld.sock").as_os_str().len() >= 100 {
            // sun_path is 108 bytes: a long temp dir would not fit the socket.
            dir = tempfile::Builder::new()
                .prefix(DIR_PREFIX)
                .tempdir_in("/tmp")
                .map_err(|e| {
                    Error::with_source(ErrorKind::Usage, "cannot create a dir in /tmp", e)
                })?;
        }
        let path = dir.path().to_path_buf();
        let io = |e| Error::with_source(ErrorKind::Internal, "cannot prepare the sandbox", e);
        std::fs::write(path.join("owner.pid"), std::process::id().to_string()).map_err(io)?;
        std::fs::create_dir(path.join("tmp")).map_err(io)?;
        // An empty option file: the sandbox's connections read no ~/.my.cnf or /etc/mysql.
        std::fs::write(path.join("client.cnf"), "").map_err(io)?;
        Ok(Sandbox {
            install,
            opts,
            datadir: path.join("data"),
            socket: path.join("mysqld.sock"),
            error_log: path.join("error.log"),
            dir: Some(dir),
            child: None,
        })
    }

    /// The sandbox directory (removed with the sandbox).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).expect("until drop")
    }

    /// `<dir>/data`: created by [`initialize`](Self::initialize), or restored into by a caller.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn install(&self) -> &ServerInstall {
        &self.install
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Initialises an empty datadir with a password-less root account reachable over the
    /// socket only (the server never listens on TCP).
    pub async fn initialize(&mut self) -> Result<()> {
        let log_path = self.dir().join("initialize.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::with_source(ErrorKind::Internal, "cannot create a log", e))?;
        let mut cmd = self.install.init_command(&self.datadir, None)?;
        cmd.arg(format!("--innodb-buffer-pool-size={}", self.opts.memory));
        if self.install.flavor == Flavor::MySql {
            cmd.arg(format!("--log-error={}", log_path.display()));
        }
        cmd.stdout(
            log.try_clone()
                .map_err(|e| Error::with_source(ErrorKind::Internal, "dup", e))?,
        )
        .stderr(log);
        let what = format!("{}", self.install.server.display());
        // Its own process group, killed whole if this future is dropped (Ctrl-C): the
        // installer is a script running the server in bootstrap mode.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| {
            Error::with_source(
                ErrorKind::Server,
                format!("cannot initialise a datadir for {what}"),
                e,
            )
        })?;
        let mut guard = GroupGuard(Some(child));
        let status = loop {
            match guard.0.as_mut().expect("running").try_wait() {
                Ok(Some(status)) => {
                    guard.0 = None;
                    break status;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => {
                    return Err(Error::with_source(
                        ErrorKind::Internal,
                        "waiting for the initialiser",
                        e,
                    ))
                }
            }
        };
        if !status.success() {
            return Err(Error::server(format!(
                "initialising a datadir for {what} failed ({status}):\n{}",
                tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 20)
            )));
        }
        if self.install.flavor == Flavor::MySql {
            // Each server makes its own server_uuid on first start.
            let _ = std::fs::remove_file(self.datadir.join("auto.cnf"));
        }
        Ok(())
    }

    /// Starts the server on [`datadir`](Self::datadir) and waits until it accepts
    /// connections (crash recovery included), up to the ready timeout. On failure the server
    /// is gone and the error carries the error log's last lines.
    pub async fn start(&mut self) -> Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let log_offset = std::fs::metadata(&self.error_log)
            .map(|m| m.len())
            .unwrap_or(0);
        let mut cmd = self.install.server_command();
        cmd.arg(format!("--datadir={}", self.datadir.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--skip-networking")
            .arg(format!(
                "--pid-file={}",
                self.dir().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", self.error_log.display()))
            .arg(format!("--tmpdir={}", self.dir().join("tmp").display()))
            .arg(format!("--innodb-buffer-pool-size={}", self.opts.memory))
            .arg("--innodb-buffer-pool-load-at-startup=OFF")
            .arg("--innodb-buffer-pool-dump-at-shutdown=OFF")
            .arg("--skip-log-bin")
            .arg("--skip-name-resolve")
            .arg("--max-allowed-packet=1G")
            .arg("--local-infile=1")
            .arg("--secure-file-priv=")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_general_ci")
            .arg("--skip-slave-start");
        if self.install.flavor == Flavor::MySql {
            cmd.arg("--explicit-defaults-for-timestamp")
                .arg("--performance-schema=OFF");
        }
        cmd.args(&self.opts.extra_args);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.error_log)
            .map_err(|e| Error::with_source(ErrorKind::Internal, "cannot open the error log", e))?;
        cmd.stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| Error::with_source(ErrorKind::Internal, "dup", e))?,
            )
            .stderr(log);
        let priority = Priority {
            background: self.opts.background,
        };
        let child = spawn_tied_to_process(cmd, priority).map_err(|e| {
            Error::with_source(
                ErrorKind::Server,
                format!("cannot start {}", self.install.server.display()),
                e,
            )
        })?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(Error::server(format!(
                    "{} exited during startup ({status}); its error log ends:\n{}",
                    self.install.server.display(),
                    tail(&self.error_log_since(log_offset), 20)
                )));
            }
            let socket = self.socket.clone();
            if tokio::task::spawn_blocking(move || handshake_received(&socket))
                .await
                .unwrap_or(false)
            {
                return Ok(());
            }
            if started.elapsed() > self.opts.ready_timeout {
                self.kill();
                return Err(Error::server(format!(
                    "{} did not accept connections within {}s; its error log ends:\n{}",
                    self.install.server.display(),
                    self.opts.ready_timeout.as_secs(),
                    tail(&self.error_log_since(log_offset), 20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Root over the Unix socket, reading no option file and no environment.
    pub fn connection(&self) -> Result<ConnectionConfig> {
        let spec = ConnectionSpec {
            url: Some(format!(
                "mysql://root@localhost/?socket={}",
                self.socket.display()
            )),
            defaults_file: Some(self.dir().join("client.cnf")),
            ..Default::default()
        };
        ConnectionConfig::resolve_with_env(&spec, &|_| None, None)
    }

    /// Peak resident memory of the server so far (`VmHWM`), while it runs.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// The error log's last `lines` lines.
    pub fn error_log_tail(&self, lines: usize) -> String {
        tail(&self.error_log_since(0), lines)
    }

    /// Shuts the server down cleanly (SIGTERM; SIGKILL after `timeout`) and waits for it.
    pub async fn stop(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILLs the server and waits for it; no-op when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn error_log_since(&self, offset: u64) -> String {
        let all = std::fs::read(&self.error_log).unwrap_or_default();
        let start = (offset as usize).min(all.len());
        String::from_utf8_lossy(&all[start..]).into_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
        // The TempDir removes the directory, datadir included.
    }
}

/// A child leading its own process group, SIGKILLed as a group (and reaped) when dropped
/// while still running.
struct GroupGuard(Option<Child>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SAFETY: kill has no memory preconditions; the child leads its own group.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes sandbox directories of processes that were killed before their destructors ran
/// (their servers died with them, see [`spawn`]).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let pid = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        };
        let Some(owner) = pid("owner.pid") else {
            continue;
        };
        if !pid_alive(owner) && !pid("mysqld.pid").is_some_and(pid_alive) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, want) in [
            ("256M", Some(256u64 << 20)),
            ("1G", Some(1 << 30)),
            ("1g", Some(1 << 30)),
            ("65536K", Some(64 << 20)),
            ("16777216", Some(16 << 20)),
            ("1M", None),
            ("", None),
            ("12Q", None),
            ("M", None),
            ("-5M", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text}");
        }
    }
}
