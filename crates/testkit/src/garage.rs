//! [`GarageServer`]: a private Garage (S3-compatible object store) per test.
//!
//! Garage runs as a single node (`garage server --single-node --default-bucket`) in its own temp
//! directory, on free ports of 127.0.0.1, with a random access key, secret and RPC secret, and
//! one bucket. It is killed on drop. The binary comes from `cargo install --locked garage`
//! (scripts/test.sh and .ci/run install it); when it is missing, starting a server panics, so a
//! storage suite that needs it fails instead of skipping.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use tempfile::TempDir;

use crate::{binaries, port, spawner};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const GARAGE_REGION: &str = "garage";
const BUCKET: &str = "holdfast-test";

/// A running single-node Garage with one bucket and one key that may read and write it.
pub struct GarageServer {
    dir: TempDir,
    config: PathBuf,
    binary: PathBuf,
    s3_port: u16,
    access_key_id: String,
    secret_access_key: String,
    child: Option<Child>,
}

impl GarageServer {
    /// Starts a server and waits until its S3 API accepts connections (the bucket and key exist
    /// by then). Panics with the log tail if it cannot, or if `garage` is not installed.
    pub fn start() -> GarageServer {
        let binary = require_garage();
        let dir = tempfile::Builder::new()
            .prefix("hfg-")
            .tempdir()
            .expect("holdfast-testkit: cannot create a temp dir for garage");
        let mut rng = rand::thread_rng();
        let hex = |n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
            (0..n).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
        };
        let access_key_id = format!("GK{}", hex(12, &mut rng));
        let secret_access_key = hex(32, &mut rng);
        let rpc_secret = hex(32, &mut rng);
        let s3_port = port::free_port();
        let mut rpc_port = port::free_port();
        while rpc_port == s3_port {
            rpc_port = port::free_port();
        }
        let config = dir.path().join("garage.toml");
        let root = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{root}/meta\"\n\
                 data_dir = \"{root}/data\"\n\
                 db_engine = \"sqlite\"\n\
                 metadata_fsync = true\n\
                 data_fsync = true\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{rpc_secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"{GARAGE_REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n"
            ),
        )
        .expect("holdfast-testkit: cannot write garage.toml");
        let mut server = GarageServer {
            dir,
            config,
            binary,
            s3_port,
            access_key_id,
            secret_access_key,
            child: None,
        };
        server.spawn_and_wait();
        server
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn region(&self) -> &str {
        GARAGE_REGION
    }

    pub fn bucket(&self) -> &str {
        BUCKET
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// A holdfast repository URL for `prefix` in this server's bucket.
    pub fn repo_url(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{}?endpoint={}&region={}",
            BUCKET,
            prefix,
            self.endpoint(),
            GARAGE_REGION
        )
    }

    /// The credentials as the environment variables S3 clients read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", GARAGE_REGION.to_string()),
        ]
    }

    /// The server's temp directory (config, metadata, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILLs the server (a crash or a network outage, for fault tests). Data already
    /// acknowledged survives; [`restart`](Self::restart) brings it back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same directory, port and keys.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait();
    }

    /// The server's log (stdout and stderr).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    fn spawn_and_wait(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("holdfast-testkit: cannot open the garage log");
        let started = Instant::now();
        loop {
            let mut cmd = Command::new(&self.binary);
            cmd.arg("-c")
                .arg(&self.config)
                .args(["server", "--single-node", "--default-bucket"])
                .env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key_id)
                .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_access_key)
                .env("GARAGE_DEFAULT_BUCKET", BUCKET)
                .env("RUST_LOG", "garage=info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup garage log"))
                .stderr(log.try_clone().expect("dup garage log"));
            let child = spawner::spawn_tied_to_process(cmd)
                .unwrap_or_else(|e| panic!("holdfast-testkit: cannot spawn garage: {e}"));
            self.child = Some(child);
            loop {
                let child = self.child.as_mut().expect("just spawned");
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = self.log();
                    // The port may still be held by the previous instance for a moment.
                    if log.contains("Address already in use") && started.elapsed() < READY_TIMEOUT {
                        std::thread::sleep(Duration::from_millis(250));
                        break;
                    }
                    panic!(
                        "holdfast-testkit: garage exited during startup ({status}); log tail:\n{}",
                        tail(&log, 30)
                    );
                }
                if TcpStream::connect_timeout(
                    &(Ipv4Addr::LOCALHOST, self.s3_port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
                {
                    return;
                }
                if started.elapsed() > READY_TIMEOUT {
                    self.kill();
                    panic!(
                        "holdfast-testkit: garage did not open its S3 port within {}s; log tail:\n{}",
                        READY_TIMEOUT.as_secs(),
                        tail(&self.log(), 30)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "holdfast-testkit: garage on port {} during a panic; log tail:\n{}",
                self.s3_port,
                tail(&self.log(), 15)
            );
        }
    }
}

/// The `garage` binary, or a panic saying how to install it. Tests that need an S3 server fail
/// on a machine without it; they never skip.
pub fn require_garage() -> PathBuf {
    if let Some(p) = binaries::find_binary("garage") {
        return p;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(p) = cargo_home.map(|h| h.join("bin").join("garage")) {
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "holdfast-testkit needs the `garage` binary (an S3-compatible server) for object-storage \
         tests, but it is not on PATH or in ~/.cargo/bin.\nInstall it with:\n    \
         cargo install --locked garage\n(scripts/test.sh and .ci/run install it; a skipped \
         storage backend fails the suite.)"
    );
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
