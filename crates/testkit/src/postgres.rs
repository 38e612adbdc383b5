//! [`PgServer`]: one private PostgreSQL server per test, like [`TestServer`](crate::TestServer)
//! for MariaDB.
//!
//! The cluster is initialised once per test process (`initdb` into a cached template under the
//! temp directory) and copied per server, so a start costs about a second. The server listens on
//! a Unix socket in its own directory and on `127.0.0.1:PORT` (the testkit's port allocator),
//! with a superuser `holdfast` whose random password is needed over TCP (scram-sha-256) and not
//! over the socket (trust). PostgreSQL refuses to run as root: started by root, it runs as the
//! `postgres` user (the account apt's package creates), and its directory is chowned to it.
//! Dropping the server SIGKILLs it and removes its directory; the spawner's parent-death signal
//! kills it if the test process dies first.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::Rng;
use tempfile::TempDir;

use crate::{port, spawner};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;
const DIR_PREFIX: &str = "hfpg-";
/// The superuser `initdb` creates.
pub const PG_USER: &str = "holdfast";

/// The PostgreSQL server binaries: `$HOLDFAST_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else `$PATH`.
pub fn find_postgres() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HOLDFAST_PG_BINDIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return dir.join("postgres").is_file().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|d| d.join("postgres").is_file() && d.join("initdb").is_file())
}

/// Panics, naming the package to install, when PostgreSQL's server binaries are missing. Tests
/// that need PostgreSQL fail, never skip, without it.
pub fn require_postgres() -> PathBuf {
    find_postgres().unwrap_or_else(|| {
        panic!(
            "holdfast-testkit needs PostgreSQL's server binaries (initdb, postgres) for \
             PostgreSQL tests, but found none in $HOLDFAST_PG_BINDIR, /usr/lib/postgresql/*/bin \
             or $PATH.\nInstall them with:\n    apt-get install -y postgresql\n(CI installs them \
             in .ci/run; tests never skip silently without a server.)"
        )
    })
}

/// The account PostgreSQL runs as when we are root: `(uid, gid)` of `postgres`.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once (tests call
    // this from one thread at a time through the OnceLock or the start path; the fields are
    // copied before any other getpw* call of ours).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        panic!(
            "holdfast-testkit: running as root, PostgreSQL must run as another user, but there \
             is no `postgres` account (apt-get install -y postgresql creates it)"
        );
    }
    // SAFETY: pw is non-null and points to a valid passwd entry.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in path");
    // SAFETY: a valid C string; lchown does not follow symlinks.
    unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

/// Runs `cmd` as `postgres` when we are root (std also drops root's supplementary groups).
fn as_server_user(cmd: &mut Command) {
    if let Some((uid, gid)) = run_as() {
        cmd.uid(uid).gid(gid);
    }
}

/// Removes `hfpg-*` directories left by test processes killed before their destructors ran
/// (their servers died with them), and marks `dir` as ours.
fn sweep_and_mark(dir: &Path) {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        for entry in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                continue;
            }
            let owner = std::fs::read_to_string(entry.path().join("owner.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<libc::pid_t>().ok());
            // SAFETY: signal 0 only checks for existence.
            let dead = owner.is_some_and(|pid| {
                let rc = unsafe { libc::kill(pid, 0) };
                rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            });
            if dead {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let _ = std::fs::write(dir.join("owner.pid"), std::process::id().to_string());
}

static TEMPLATE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The initialised cluster every server copies, made once per test process; `(dir, password)`.
fn template() -> &'static (PathBuf, String) {
    static TEMPLATE: OnceLock<(PathBuf, String)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let bin = require_postgres();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}template-"))
            .tempdir()
            .expect("holdfast-testkit: cannot create the PostgreSQL template dir");
        sweep_and_mark(dir.path());
        // A static is never dropped: remove the template when the test process exits (a
        // process killed first leaves it to the next one's sweep).
        let dir = dir.keep();
        TEMPLATE_DIR.get_or_init(|| dir.clone());
        extern "C" fn remove_template() {
            if let Some(dir) = TEMPLATE_DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(remove_template) };
        let password: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let pwfile = dir.join("pwfile");
        let data = dir.join("data");
        std::fs::write(&pwfile, &password).expect("write pwfile");
        if let Some((uid, gid)) = run_as() {
            chown_tree(&dir, uid, gid);
        }
        let mut cmd = Command::new(bin.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .arg(format!("--username={PG_USER}"))
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("--auth-local=trust")
            .arg("--auth-host=scram-sha-256")
            .arg("--encoding=UTF8")
            .arg("--no-locale")
            .arg("--no-sync")
            .current_dir(&dir)
            .stdin(Stdio::null());
        as_server_user(&mut cmd);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("holdfast-testkit: cannot run initdb: {e}"));
        if !out.status.success() {
            panic!(
                "holdfast-testkit: initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_file(&pwfile);
        (dir, password)
    })
}

/// A throwaway PostgreSQL server. See the module docs.
pub struct PgServer {
    dir: Option<TempDir>,
    bin: PathBuf,
    port: u16,
    password: String,
    child: Option<Child>,
}

impl PgServer {
    /// Starts a server. Panics (with its log) if it cannot start within 60 s.
    pub fn start() -> PgServer {
        let bin = require_postgres();
        let (template_dir, password) = template();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("holdfast-testkit: cannot create a temp dir for PostgreSQL");
        sweep_and_mark(dir.path());
        let status = Command::new("cp")
            .arg("-a")
            .arg(template_dir.join("data"))
            .arg(dir.path().join("data"))
            .status()
            .expect("holdfast-testkit: cannot run cp");
        assert!(
            status.success(),
            "holdfast-testkit: copying the PostgreSQL template failed"
        );
        if let Some((uid, gid)) = run_as() {
            chown_tree(dir.path(), uid, gid);
        }
        let mut server = PgServer {
            dir: Some(dir),
            bin,
            port: 0,
            password: password.clone(),
            child: None,
        };
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = port::free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!(
            "holdfast-testkit: PostgreSQL could not start after {START_ATTEMPTS} attempts: {last}"
        )
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (needed over TCP).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://holdfast@127.0.0.1:PORT/postgres` (no password: pass it separately).
    pub fn url(&self) -> String {
        self.db_url("postgres")
    }

    /// The URL of database `name` on this server (no password).
    pub fn db_url(&self, name: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The directory holding the Unix socket (`.s.PGSQL.PORT`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir().to_path_buf()
    }

    /// The server's temp directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("exists until drop").path()
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default()
    }

    /// Runs `sql` with `psql` over the socket in database `postgres` (unaligned, tuples only)
    /// and returns its stdout. Panics with psql's stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-X")
            .arg("-q")
            .arg("-A")
            .arg("-t")
            .arg("-v")
            .arg("ON_ERROR_STOP=1")
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(PG_USER)
            .arg("-d")
            .arg("postgres")
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("holdfast-testkit: cannot run psql");
        if !out.status.success() {
            panic!(
                "holdfast-testkit: psql failed ({}):\n{}\nstatement:\n{sql}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates database `name` and returns its URL (no password).
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        self.db_url(name)
    }

    /// SIGKILLs the server (a crash). No-op when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let data = self.dir().join("data");
        let log_path = self.dir().join("postgres.log");
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("holdfast-testkit: cannot open the PostgreSQL log");
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        if let Some((uid, gid)) = run_as() {
            chown_tree(&log_path, uid, gid);
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Throwaway data: durability off for speed.
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .args(["-c", "shared_buffers=32MB"])
            .args(["-c", "logging_collector=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        as_server_user(&mut cmd);
        let child = spawner::spawn_tied_to_process(cmd)
            .unwrap_or_else(|e| panic!("holdfast-testkit: cannot spawn postgres: {e}"));
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let all = std::fs::read(&log_path).unwrap_or_default();
                let new =
                    String::from_utf8_lossy(&all[(offset as usize).min(all.len())..]).into_owned();
                return Err(format!(
                    "holdfast-testkit: postgres exited during startup ({status}); log:\n{new}"
                ));
            }
            // The 8th line of postmaster.pid is the server's status (PostgreSQL 10+).
            let ready = std::fs::read_to_string(data.join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().nth(7).map(|l| l.trim() == "ready"))
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill();
                panic!(
                    "holdfast-testkit: postgres did not become ready within {}s; log:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!(
                "holdfast-testkit: PostgreSQL on port {} during a panic; log tail:\n{}",
                self.port,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if std::env::var_os("HOLDFAST_TESTKIT_KEEP").is_some_and(|v| !v.is_empty() && v != "0") {
            if let Some(dir) = self.dir.take() {
                eprintln!("holdfast-testkit: keeping {}", dir.keep().display());
            }
        }
    }
}
