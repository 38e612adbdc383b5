//! [`TestServer`]: one private `mariadbd` (or MySQL 5.7 `mysqld`) per test.
//!
//! Layout of a server's temp directory (`$TMPDIR/hft-XXXXXX/`): `data/` (the datadir, copied
//! from the template), `tmp/` (the server's `--tmpdir`), `mysqld.sock`, `error.log` (also
//! receives the server's stdout/stderr), `mariadbd.pid` (the server's pid file, whatever the
//! flavor) and `owner.pid` (the test process, used to sweep directories left behind by killed
//! test runs).

use crate::binaries::{binary, require_binaries, require_mysql};
use crate::{port, spawner, template, Flavor};
use holdfast::sandbox::handshake_received;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;
const DIR_PREFIX: &str = "hft-";

/// How to start a [`TestServer`]. `extra_args` are appended last, so they override the
/// defaults (for example `--binlog-format=MIXED` or `--gtid-strict-mode=ON`).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// MariaDB (the default) or MySQL 5.7.
    pub flavor: Flavor,
    /// `--server-id`; give replicas and primaries in one test different ids.
    pub server_id: u32,
    /// `--log-bin=mysql-bin` when true, `--skip-log-bin` otherwise.
    pub binlog: bool,
    /// `--binlog-format`.
    pub binlog_format: String,
    /// More `mariadbd`/`mysqld` options, appended after all defaults.
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            flavor: Flavor::MariaDb,
            server_id: 1,
            binlog: true,
            binlog_format: "ROW".to_string(),
            extra_args: Vec::new(),
        }
    }
}

/// A throwaway `mariadbd` (or `mysqld`) listening on its own Unix socket and on
/// `127.0.0.1:port`, with `root` and an empty password. Dropping it SIGKILLs the server, waits
/// for it, and removes its directory (datadir included).
///
/// Defaults besides the options in [`ServerOptions`]: `--no-defaults` (no `/etc/mysql`),
/// 128M buffer pool, 64M redo log, `--skip-name-resolve`, `--max-allowed-packet=1G`,
/// `--local-infile=1`, `--secure-file-priv=""`, utf8mb4 server charset (as Debian configures
/// it), binlog base name `mysql-bin`.
///
/// A [`Flavor::MySql`] server (MySQL 5.7, see [`require_mysql`](crate::require_mysql)) also
/// runs with `gtid_mode=ON`, `enforce_gtid_consistency=ON`, `log_slave_updates=ON`,
/// `binlog_checksum=CRC32`, `explicit_defaults_for_timestamp` and the performance schema off
/// (as in MariaDB); each server has its own `server_uuid`.
pub struct TestServer {
    opts: ServerOptions,
    dir: Option<TempDir>,
    /// Only when `dir`'s path is too long for a Unix socket path.
    socket_dir: Option<TempDir>,
    datadir: PathBuf,
    socket: PathBuf,
    error_log: PathBuf,
    pid_file: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Set when a panic message already carries the error log, so `Drop` need not repeat it.
    log_reported: bool,
}

enum StartError {
    AddrInUse,
    Failed(String),
}

impl TestServer {
    /// Starts a server with [`ServerOptions::default`]. Panics (with the error log) if it
    /// cannot start within 60 s.
    pub fn start() -> TestServer {
        TestServer::start_with(ServerOptions::default())
    }

    /// Starts a server with `opts`. Panics (with the error log) if it cannot start within 60 s.
    pub fn start_with(opts: ServerOptions) -> TestServer {
        let mut server = TestServer::unstarted(opts, None);
        let init_args = template::init_args(&server.opts.extra_args);
        let flavor = server.opts.flavor;
        let mut last_error = String::new();
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                // A failed start may have created binlogs or touched InnoDB files: start over
                // from a clean copy so tests always see a pristine server.
                let _ = std::fs::remove_dir_all(&server.datadir);
            }
            template::copy_fresh_datadir(&server.datadir, flavor, &init_args);
            server.port = port::free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::AddrInUse) => {
                    last_error = format!("port {} was already in use", server.port);
                }
                Err(StartError::Failed(msg)) => {
                    server.log_reported = true;
                    panic!("{msg}")
                }
            }
        }
        panic!(
            "holdfast-testkit: {} could not start after {START_ATTEMPTS} attempts; \
             last: {last_error}",
            flavor.server_binary()
        );
    }

    /// Starts a server on an existing datadir (a restored physical backup, say), used in place:
    /// it is not copied and not removed on drop (the caller owns it). Socket, logs and tmpdir
    /// live in the server's own temp directory as usual. Panics (with the error log) if the
    /// server cannot start within 60 s.
    pub fn start_on_datadir(datadir: &Path, opts: ServerOptions) -> TestServer {
        let mut server = TestServer::unstarted(opts, Some(datadir.to_path_buf()));
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = port::free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::AddrInUse) => {
                    last_error = format!("port {} was already in use", server.port);
                }
                Err(StartError::Failed(msg)) => {
                    server.log_reported = true;
                    panic!("{msg}")
                }
            }
        }
        panic!(
            "holdfast-testkit: {} could not start on {} after {START_ATTEMPTS} attempts; \
             last: {last_error}",
            server.opts.flavor.server_binary(),
            datadir.display()
        );
    }

    fn unstarted(opts: ServerOptions, datadir: Option<PathBuf>) -> TestServer {
        match opts.flavor {
            Flavor::MariaDb => require_binaries(),
            Flavor::MySql => {
                require_mysql();
            }
        }
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_leftovers);

        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(std::env::temp_dir())
            .expect("holdfast-testkit: cannot create a temp dir for the server");
        let _ = std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string());
        let mut socket_dir = None;
        let mut socket = dir.path().join("mysqld.sock");
        if socket.as_os_str().len() >= 100 {
            // sun_path is 108 bytes; a long $TMPDIR would not fit.
            let short = tempfile::Builder::new()
                .prefix(DIR_PREFIX)
                .tempdir_in("/tmp")
                .expect("holdfast-testkit: cannot create a socket dir in /tmp");
            socket = short.path().join("mysqld.sock");
            socket_dir = Some(short);
        }
        TestServer {
            datadir: datadir.unwrap_or_else(|| dir.path().join("data")),
            error_log: dir.path().join("error.log"),
            pid_file: dir.path().join("mariadbd.pid"),
            socket,
            socket_dir,
            dir: Some(dir),
            port: 0,
            child: None,
            log_reported: false,
            opts,
        }
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP port on 127.0.0.1. It stays the same across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The datadir.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The server's temp directory (parent of the datadir, socket and logs); a handy place for
    /// a test's other scratch files, removed with the server. For a server started with
    /// [`start_on_datadir`](Self::start_on_datadir) it does not hold the datadir.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .expect("the server's directory exists until drop")
    }

    /// The options the server runs with.
    pub fn options(&self) -> &ServerOptions {
        &self.opts
    }

    /// Options for the next [`restart`](Self::restart), e.g. to add `--read-only`.
    pub fn options_mut(&mut self) -> &mut ServerOptions {
        &mut self.opts
    }

    /// `mysql://root@127.0.0.1:PORT/` (root, empty password, over TCP).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    /// `mysql://root@localhost/?socket=/path/to/mysqld.sock`.
    pub fn socket_url(&self) -> String {
        format!("mysql://root@localhost/?socket={}", self.socket.display())
    }

    /// The server's flavor.
    pub fn flavor(&self) -> Flavor {
        self.opts.flavor
    }

    /// The `mariadbd` (or `mysqld`) process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the server process is running (it may have crashed or been killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// A root connection over TCP. Panics with the reason (and the error log) on failure.
    pub async fn conn(&self) -> mysql_async::Conn {
        match mysql_async::Conn::from_url(self.url()).await {
            Ok(conn) => conn,
            Err(e) => panic!(
                "holdfast-testkit: cannot connect to {}: {e}\nerror log tail:\n{}",
                self.url(),
                self.error_log_tail(20)
            ),
        }
    }

    /// Runs `sql` (one or more `;`-separated statements) with the `mariadb` client in batch
    /// mode without column names (`-N -B`) over the socket and returns its stdout. Panics with
    /// the client's stderr on failure.
    pub fn sql(&self, sql: &str) -> String {
        let mut child = Command::new(binary("mariadb"))
            .arg("--no-defaults")
            .arg("-N")
            .arg("-B")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--user=root")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("holdfast-testkit: cannot run the mariadb client");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = sql.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child
            .wait_with_output()
            .expect("holdfast-testkit: mariadb client failed to run");
        let _ = writer.join();
        if !out.status.success() {
            panic!(
                "holdfast-testkit: SQL failed ({}):\n{}\nstatement(s):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end(),
                sql
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILLs the server and waits for it to exit: a crash, for fault tests. No-op when it is
    /// not running. [`restart`](Self::restart) brings it back (with crash recovery).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Shuts the server down cleanly (SIGTERM, then SIGKILL after 60 s) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same datadir, port and socket and waits until it accepts
    /// connections. A running server is first stopped cleanly; call [`kill`](Self::kill) first
    /// to simulate a crash. Uses the current [`options_mut`](Self::options_mut).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::AddrInUse) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(StartError::AddrInUse) => panic!(
                    "holdfast-testkit: cannot restart {}: port {} is taken by another process",
                    self.opts.flavor.server_binary(),
                    self.port
                ),
                Err(StartError::Failed(msg)) => {
                    self.log_reported = true;
                    panic!("{msg}")
                }
            }
        }
    }

    /// The whole error log (it also holds the server's stdout/stderr).
    pub fn error_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.error_log).unwrap_or_default()).into_owned()
    }

    /// The path of the error log.
    pub fn error_log_path(&self) -> &Path {
        &self.error_log
    }

    /// The server's own `--tmpdir` (internal temporary tables, filesort files), so nothing of
    /// it lands in the shared /tmp and it all goes away with the server.
    fn tmpdir(&self) -> PathBuf {
        self.dir().join("tmp")
    }

    fn error_log_tail(&self, lines: usize) -> String {
        tail(&self.error_log(), lines)
    }

    fn command(&self) -> Command {
        let mut cmd = match self.opts.flavor {
            Flavor::MariaDb => {
                let mut cmd = Command::new(binary("mariadbd"));
                cmd.arg("--no-defaults");
                cmd
            }
            Flavor::MySql => {
                let mysql = require_mysql();
                let mut cmd = Command::new(&mysql.mysqld);
                cmd.arg("--no-defaults")
                    .arg(format!("--basedir={}", mysql.basedir.display()))
                    .arg(format!(
                        "--lc-messages-dir={}",
                        mysql.messages_dir.display()
                    ));
                cmd
            }
        };
        if let Some(user) = run_as_user() {
            cmd.arg(format!("--user={user}"));
        }
        cmd.arg(format!("--datadir={}", self.datadir.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--server-id={}", self.opts.server_id));
        if self.opts.binlog {
            cmd.arg("--log-bin=mysql-bin");
        } else {
            cmd.arg("--skip-log-bin");
        }
        cmd.arg(format!("--binlog-format={}", self.opts.binlog_format))
            .arg(format!("--log-error={}", self.error_log.display()))
            .arg(format!("--pid-file={}", self.pid_file.display()))
            .arg(format!("--tmpdir={}", self.tmpdir().display()))
            .arg("--innodb-buffer-pool-size=128M")
            .arg("--innodb-log-file-size=64M")
            .arg("--innodb-buffer-pool-load-at-startup=OFF")
            .arg("--innodb-buffer-pool-dump-at-shutdown=OFF")
            .arg("--skip-name-resolve")
            .arg("--max-allowed-packet=1G")
            .arg("--local-infile=1")
            .arg("--secure-file-priv=")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_general_ci");
        if self.opts.flavor == Flavor::MySql {
            cmd.arg("--explicit-defaults-for-timestamp")
                .arg("--gtid-mode=ON")
                .arg("--enforce-gtid-consistency=ON")
                .arg("--log-slave-updates=ON")
                .arg("--binlog-checksum=CRC32")
                .arg("--performance-schema=OFF");
        }
        cmd.args(&self.opts.extra_args);
        cmd
    }

    /// Spawns the server on the current port and waits until it accepts connections.
    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let _ = std::fs::remove_file(&self.socket);
        std::fs::create_dir_all(self.tmpdir()).expect("holdfast-testkit: cannot create tmpdir");
        let log_offset = std::fs::metadata(&self.error_log)
            .map(|m| m.len())
            .unwrap_or(0);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.error_log)
            .expect("holdfast-testkit: cannot open the error log");
        let mut cmd = self.command();
        let cmdline = format!("{cmd:?}");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup error log"))
            .stderr(log);
        let child = spawner::spawn_tied_to_process(cmd).unwrap_or_else(|e| {
            panic!(
                "holdfast-testkit: cannot spawn {}: {e}",
                self.opts.flavor.server_binary()
            )
        });
        self.child = Some(child);

        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let new_log = self.error_log_since(log_offset);
                if new_log.contains("Address already in use") || new_log.contains("error: 98") {
                    return Err(StartError::AddrInUse);
                }
                return Err(StartError::Failed(format!(
                    "holdfast-testkit: {} exited during startup ({status}).\n\
                     command: {cmdline}\nerrors:\n{}\nerror log tail:\n{}",
                    self.opts.flavor.server_binary(),
                    error_lines(&new_log),
                    tail(&new_log, 40)
                )));
            }
            if handshake_received(&self.socket) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill();
                return Err(StartError::Failed(format!(
                    "holdfast-testkit: {} did not accept connections within {}s.\n\
                     command: {cmdline}\nerror log tail:\n{}",
                    self.opts.flavor.server_binary(),
                    READY_TIMEOUT.as_secs(),
                    tail(&self.error_log_since(log_offset), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn error_log_since(&self, offset: u64) -> String {
        let all = std::fs::read(&self.error_log).unwrap_or_default();
        let start = (offset as usize).min(all.len());
        String::from_utf8_lossy(&all[start..]).into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && !self.log_reported {
            eprintln!(
                "holdfast-testkit: server on port {} ({}) during a panic; error log tail:\n{}",
                self.port,
                self.datadir.display(),
                self.error_log_tail(15)
            );
        }
        if std::env::var_os("HOLDFAST_TESTKIT_KEEP").is_some_and(|v| !v.is_empty() && v != "0") {
            if let Some(dir) = self.dir.take() {
                eprintln!("holdfast-testkit: keeping {}", dir.keep().display());
            }
            if let Some(dir) = self.socket_dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// `--user` for `mariadbd`/`mariadb-install-db` when running as root (core's rule).
pub(crate) fn run_as_user() -> Option<&'static str> {
    holdfast::sandbox::binaries::run_as_user()
}

/// The `[ERROR]` lines of a log (MySQL follows a startup error with dozens of shutdown notes,
/// which would push it out of the tail).
fn error_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("[ERROR]"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes server directories left by test processes that were killed before their
/// destructors ran (their servers died with them: see `spawner`).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let Some(owner) = std::fs::read_to_string(dir.join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let server_pid = std::fs::read_to_string(dir.join("mariadbd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok());
        if !pid_alive(owner) && !server_pid.is_some_and(pid_alive) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
