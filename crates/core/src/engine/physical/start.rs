//! Starting `mariadbd` / `mysqld` on a restored datadir (`holdfast restore --start`).
//!
//! The server runs detached from holdfast (own process group, output in `<datadir>/error.log`)
//! and keeps running after holdfast exits. Without a `--defaults-file` it starts with
//! `--no-defaults`, listening only on a Unix socket inside the datadir unless a port is given, so
//! it never collides with a server already configured on the machine.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::tool::find_binary;
use crate::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// An option file for the server (`--defaults-file`); default `--no-defaults`.
    pub defaults_file: Option<PathBuf>,
    /// Unix socket; default `<datadir>/mysqld.sock`.
    pub socket: Option<PathBuf>,
    /// TCP port on 127.0.0.1; default: no TCP.
    pub port: Option<u16>,
    /// More server options, appended last.
    pub extra_args: Vec<String>,
    /// How long to wait for the server to accept connections.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartedServer {
    pub pid: u32,
    pub socket: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub error_log: PathBuf,
}

pub async fn start_server(datadir: &Path, opts: &StartOptions) -> Result<StartedServer> {
    let binary = ["mariadbd", "mysqld"]
        .iter()
        .find_map(|n| find_binary(n))
        .ok_or_else(|| {
            Error::usage(
                "--start needs the server binary (mariadbd or mysqld), which is not installed; \
                 the datadir is restored, start it with your usual service manager",
            )
        })?;
    let socket = opts
        .socket
        .clone()
        .unwrap_or_else(|| datadir.join("mysqld.sock"));
    let error_log = datadir.join("error.log");
    let mut cmd = std::process::Command::new(&binary);
    match &opts.defaults_file {
        Some(f) => cmd.arg(format!("--defaults-file={}", f.display())),
        None => cmd.arg("--no-defaults"),
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg(format!("--user={}", owner_name(datadir)));
    }
    cmd.arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!(
            "--pid-file={}",
            datadir.join("mysqld.pid").display()
        ))
        .arg(format!("--log-error={}", error_log.display()));
    match opts.port {
        Some(port) => cmd
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1"),
        None => cmd.arg("--skip-networking"),
    };
    cmd.args(&opts.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| {
        Error::with_source(
            ErrorKind::Internal,
            format!("cannot start {}", binary.display()),
            e,
        )
    })?;
    let pid = child.id();
    let deadline = Instant::now() + opts.timeout.unwrap_or(Duration::from_secs(300));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&error_log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            return Err(Error::server(format!(
                "the server exited during startup ({status}); the datadir is restored. Last \
                 lines of {}:\n{}",
                error_log.display(),
                lines[lines.len().saturating_sub(15)..].join("\n")
            )));
        }
        if greets(&socket) {
            // Detached: reaped by init once holdfast exits.
            std::mem::forget(child);
            return Ok(StartedServer {
                pid,
                socket,
                port: opts.port,
                error_log,
            });
        }
        if Instant::now() > deadline {
            // Never leave a server behind that nobody was told is running.
            let stopped = match stop_pid(pid, Duration::from_secs(30)).await {
                Ok(()) => "it was stopped again".to_string(),
                Err(e) => format!("stopping it failed too: {e}"),
            };
            return Err(Error::server(format!(
                "the server (pid {pid}) did not accept connections on {} in time ({stopped}); \
                 see {}",
                socket.display(),
                error_log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a server [`start_server`] started (after a failure of the work it was started for):
/// SIGTERM, a wait of up to `timeout` for a clean shutdown, then SIGKILL to its process group.
/// Returns once the process is gone.
pub async fn stop_server(server: &StartedServer, timeout: Duration) -> Result<()> {
    stop_pid(server.pid, timeout).await
}

async fn stop_pid(pid: u32, timeout: Duration) -> Result<()> {
    let pid = pid as libc::pid_t;
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return if gone(pid) {
            Ok(())
        } else {
            Err(Error::internal(format!(
                "cannot signal the server (pid {pid})"
            )))
        };
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if gone(pid) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: as above; the server leads its own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if gone(pid) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::internal(format!(
        "the server (pid {pid}) is still running after SIGKILL"
    )))
}

/// Whether the process has exited; reaps it when it is our child (the server is started by
/// this process and not waited for, so it would otherwise stay a zombie until we exit).
fn gone(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: waitpid writes the status into our local.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => false,
        r if r == pid => true,
        // Not our child: ask whether it still exists.
        // SAFETY: signal 0 only checks that the process exists.
        _ => (unsafe { libc::kill(pid, 0) }) != 0,
    }
}

/// True once the server sends its protocol-10 handshake on the socket.
fn greets(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut header = [0u8; 5];
    s.read_exact(&mut header).is_ok() && header[4] == 10
}

/// The user name owning `path` (for `--user` when running as root); `mysql` if unknown.
fn owner_name(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        return "mysql".into();
    };
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into our buffers; `result` is null or points into `pwd`.
    let rc = unsafe {
        libc::getpwuid_r(
            meta.uid(),
            &mut pwd,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return "mysql".into();
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`.
    unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned()
}
