//! The physical backup job.
//!
//! 1. Lock the repository and remove debris of crashed runs.
//! 2. Pick the tool for the server (`mariabackup` for MariaDB, `xtrabackup` of the same major
//!    version for MySQL); for an incremental, the parent (newest physical backup, or the one
//!    asked for) and its chain, whose manifests and file sizes must be intact.
//! 3. On a replica, wait while it lags more than allowed; the tool pauses the SQL thread only
//!    around its final lock (`--safe-slave-backup`) and records the primary's coordinates.
//! 4. Run the tool with `--stream=xbstream` and credentials in a 0600 option file. Its stdout is
//!    cut into frames compressed on every core, hashed and uploaded as one object: nothing is
//!    staged on local disk. Its log is followed line by line to time its locks; a watchdog
//!    kills it (releasing every lock) if it waits for a lock, or blocks commits, longer than
//!    `--lock-timeout`.
//! 5. Read LSNs from `--extra-lsndir` and the binlog position/GTID from `xtrabackup_info`,
//!    store the tool's log beside the stream, and commit the manifest.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::chain::{physical_info, resolve_chain};
use super::log::{
    parse_binlog_position, parse_key_values, parse_primary_position, redact_secrets, LockWatcher,
};
use super::replica::wait_for_lag;
use super::tool::{BackupTool, PrivateDir, ToolKind};
use crate::manifest::{
    BackupManifest, BackupScope, ConsistentPoint, FileEntry, PhysicalInfo, PrimaryPosition,
    MANIFEST_FORMAT,
};
use crate::pipeline::{HashingSink, ParallelZstdSink, ZstdSink};
use crate::progress::Progress;
use crate::repo::{layout, RepoLock, Repository};
use crate::source::privileges::{self, Role, RoleOptions};
use crate::source::{ConnectionConfig, ServerIdentity};
use crate::{Error, ErrorKind, Result};

/// Path of the compressed xbstream inside a backup directory.
pub const STREAM_FILE: &str = "stream.xbstream.zst";

#[derive(Debug, Clone)]
pub struct PhysicalBackupOptions {
    /// Copy only pages changed since the parent's `to_lsn`.
    pub incremental: bool,
    /// The parent of an incremental; default: the newest physical backup of the same server.
    pub parent: Option<String>,
    pub compression_level: i32,
    /// Frames compressed at once (the tool copies with its default single thread, leaving the
    /// cores to compression).
    pub threads: usize,
    /// Longest the tool may wait for a lock stage, or block commits, before it is stopped.
    pub lock_timeout: Duration,
    /// On a replica: the most lag a backup starts with.
    pub max_replica_lag: Duration,
    /// On a replica: how long to wait for the lag to come down before refusing.
    pub replica_lag_wait: Duration,
}

impl Default for PhysicalBackupOptions {
    fn default() -> Self {
        PhysicalBackupOptions {
            incremental: false,
            parent: None,
            compression_level: 1,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            lock_timeout: Duration::from_secs(10),
            max_replica_lag: Duration::from_secs(300),
            replica_lag_wait: Duration::from_secs(600),
        }
    }
}

/// Runs a physical backup into `repo` and returns the committed manifest.
pub async fn run_physical_backup(
    repo: &Repository,
    source: &ConnectionConfig,
    opts: &PhysicalBackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupManifest> {
    if opts.parent.is_some() && !opts.incremental {
        return Err(Error::usage(
            "--parent names the base of an incremental backup; add --incremental",
        ));
    }
    let lock = repo.lock_for_backup(&*progress).await?;
    let result = backup_locked(repo, &lock, source, opts, progress).await;
    let released = lock.release().await;
    let manifest = result?;
    released?;
    Ok(manifest)
}

async fn backup_locked(
    repo: &Repository,
    lock: &RepoLock,
    source: &ConnectionConfig,
    opts: &PhysicalBackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupManifest> {
    let mut conn = source.connect().await?;
    let identity = ServerIdentity::read(&mut conn).await?;
    privileges::check(
        &mut conn,
        &identity,
        Role::PhysicalBackup,
        RoleOptions::default(),
    )
    .await?;
    let tool = BackupTool::for_server(&identity).await?;
    let parent = if opts.incremental {
        Some(choose_parent(repo, &identity, opts.parent.as_deref(), tool.kind).await?)
    } else {
        None
    };
    if !identity.log_bin {
        progress.note(
            "warning: binary log is off on the source; point-in-time recovery will not be possible",
        );
    }
    let replica = wait_for_lag(
        &mut conn,
        identity.flavor,
        opts.max_replica_lag,
        opts.replica_lag_wait,
        &*progress,
    )
    .await?;
    let estimate = if parent.is_none() {
        estimate_bytes(&mut conn).await.unwrap_or(0)
    } else {
        0
    };
    drop(conn);

    let started = time::OffsetDateTime::now_utc();
    let id = repo.new_backup_id(started).await?;
    let storage = repo.storage().clone();
    let scratch = PrivateDir::new()?;
    let outcome = async {
        let run = ToolRun {
            tool: &tool,
            scratch: &scratch,
            source,
            from_lsn: parent.as_ref().map(|p| p.to_lsn),
            replica: replica.is_some(),
            opts,
        };
        progress.phase("copy", estimate, "bytes");
        let streamed = run.stream_into(repo, &id, &*progress).await?;
        let log_entry = store_log(repo, &id, tool.kind, &streamed.log).await?;
        Ok::<_, Error>((streamed, log_entry))
    }
    .await;
    let (streamed, log_entry) = match outcome {
        Ok(v) => v,
        Err(e) => {
            // Best effort: the next backup removes whatever remains.
            let _ = storage.delete_prefix(&layout::backup_dir(&id)).await;
            return Err(e);
        }
    };

    let result = build_manifest(
        &id,
        started,
        &identity,
        &tool,
        parent.as_ref(),
        streamed,
        log_entry,
        replica.and_then(|r| r.lag_seconds),
    );
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = storage.delete_prefix(&layout::backup_dir(&id)).await;
            return Err(e);
        }
    };
    repo.commit(lock, &manifest).await?;
    Ok(manifest)
}

/// The parent of an incremental: what it continues from.
struct Parent {
    id: String,
    to_lsn: u64,
}

async fn choose_parent(
    repo: &Repository,
    server: &ServerIdentity,
    wanted: Option<&str>,
    tool: ToolKind,
) -> Result<Parent> {
    let parent = match wanted {
        Some(id) => repo.resolve(id).await?,
        None => {
            // Chosen from the summaries; the chosen one's manifest is what the checks below
            // and the incremental's LSNs use.
            let backups = repo.list_summaries().await?;
            let newest = backups
                .into_iter()
                .rev()
                .find(|s| s.is_physical() && s.physical.is_some());
            let newest = newest.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{} has no physical backup for an incremental to build on; take a full \
                         one first with `holdfast backup --engine physical`",
                        repo.storage().location()
                    ),
                )
            })?;
            repo.load_manifest(&newest.id).await?
        }
    };
    let info = physical_info(&parent)?;
    if info.tool != tool.name() {
        return Err(Error::usage(format!(
            "backup {} was taken with {}; an incremental of this server needs a {} parent",
            parent.id,
            info.tool,
            tool.name()
        )));
    }
    if parent.server.server_id != server.server_id || parent.server.hostname != server.hostname {
        return Err(Error::usage(format!(
            "the newest physical backup {} is of server {} (server_id {}), not of this one ({}, \
             server_id {}); name the parent with --parent or take a full backup",
            parent.id,
            parent.server.hostname,
            parent.server.server_id,
            server.hostname,
            server.server_id
        )));
    }
    // Every backup of the chain must be there, linked, with its files at their recorded sizes.
    let chain = resolve_chain(repo, &parent).await.map_err(|e| {
        e.context(format!(
            "cannot take an incremental on top of {}",
            parent.id
        ))
    })?;
    for m in &chain {
        for f in &m.files {
            let path = layout::backup_file(&m.id, &f.path);
            let size = repo.storage().stat(&path).await?.map(|o| o.size);
            if size != Some(f.size) {
                let what = match size {
                    None => "is missing".to_string(),
                    Some(s) => format!("has {s} bytes, the manifest says {}", f.size),
                };
                return Err(Error::integrity(format!(
                    "cannot take an incremental on top of {}: `{path}` {what}; the chain is \
                     damaged (see `holdfast verify {}`); take a full backup instead",
                    parent.id, parent.id
                )));
            }
        }
    }
    Ok(Parent {
        id: parent.id.clone(),
        to_lsn: info.to_lsn,
    })
}

/// The server's estimate of its InnoDB data, for the progress bar (0 if unknown).
async fn estimate_bytes(conn: &mut mysql_async::Conn) -> Result<u64> {
    use mysql_async::prelude::Queryable;
    let v: Option<Option<u64>> = conn
        .query_first(
            "SELECT CAST(SUM(DATA_LENGTH + INDEX_LENGTH) AS UNSIGNED) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema', 'sys')",
        )
        .await?;
    Ok(v.flatten().unwrap_or(0))
}

/// What one run of the tool produced.
struct Streamed {
    stream: FileEntry,
    stream_bytes: u64,
    log: Vec<u8>,
    watcher: LockWatcher,
    lsn_dir: PathBuf,
}

struct ToolRun<'a> {
    tool: &'a BackupTool,
    scratch: &'a PrivateDir,
    source: &'a ConnectionConfig,
    from_lsn: Option<u64>,
    replica: bool,
    opts: &'a PhysicalBackupOptions,
}

impl ToolRun<'_> {
    fn command(&self) -> Result<(Command, PathBuf)> {
        let option_file = self.scratch.write_option_file(self.source)?;
        let target = self.scratch.path().join("target");
        let lsn_dir = self.scratch.path().join("lsn");
        for d in [&target, &lsn_dir] {
            std::fs::create_dir_all(d).map_err(|e| {
                Error::with_source(ErrorKind::Internal, "cannot create a temp dir", e)
            })?;
        }
        let mut cmd = Command::new(&self.tool.path);
        // --defaults-extra-file must come first; it holds the password, never argv.
        cmd.arg(format!("--defaults-extra-file={}", option_file.display()))
            .arg("--backup")
            .arg("--stream=xbstream")
            .arg(format!("--target-dir={}", target.display()))
            .arg(format!("--extra-lsndir={}", lsn_dir.display()))
            .arg(format!(
                "--ftwrl-wait-timeout={}",
                self.opts.lock_timeout.as_secs().max(1)
            ));
        if let Some(lsn) = self.from_lsn {
            cmd.arg(format!("--incremental-lsn={lsn}"));
        }
        if self.replica {
            cmd.arg("--slave-info")
                .arg("--safe-slave-backup")
                .arg(format!(
                    "--safe-slave-backup-timeout={}",
                    self.opts.lock_timeout.as_secs().max(1)
                ));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill the tool if holdfast
        // dies (kill -9), so no orphan keeps holding server locks.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Ok((cmd, lsn_dir))
    }

    async fn stream_into(
        &self,
        repo: &Repository,
        id: &str,
        progress: &dyn Progress,
    ) -> Result<Streamed> {
        let (mut cmd, lsn_dir) = self.command()?;
        let mut child = cmd.spawn().map_err(|e| {
            Error::with_source(
                ErrorKind::Internal,
                format!("cannot start {}", self.tool.path.display()),
                e,
            )
        })?;
        let watcher = Arc::new(Mutex::new(LockWatcher::default()));
        let stalled = Arc::new(Mutex::new(None::<String>));
        let log_task = tokio::spawn(read_log(
            child.stderr.take().expect("piped stderr"),
            watcher.clone(),
        ));
        let watchdog = tokio::spawn(watch_locks(
            child.id(),
            watcher.clone(),
            stalled.clone(),
            self.opts.lock_timeout,
        ));
        let pumped = pump(&mut child, repo, id, self.opts, progress).await;
        if pumped.is_err() {
            let _ = child.start_kill();
        }
        let status = child.wait().await;
        watchdog.abort();
        let log = log_task
            .await
            .map_err(|e| Error::internal(format!("log reader failed: {e}")))?;
        let watcher = std::mem::take(&mut *watcher.lock().expect("watcher lock"));
        if let Some(why) = stalled.lock().expect("stall lock").take() {
            return Err(Error::new(
                ErrorKind::LockTimeout,
                format!(
                    "physical backup aborted: {why}, more than --lock-timeout {:.0}s; {} was \
                     stopped, which released its locks on the server, and nothing was \
                     committed; retry later or raise --lock-timeout",
                    self.opts.lock_timeout.as_secs_f64(),
                    self.tool.kind.name()
                ),
            ));
        }
        let (stream, stream_bytes) = pumped?;
        let status = status.map_err(|e| {
            Error::with_source(ErrorKind::Internal, "waiting for the backup tool", e)
        })?;
        if !status.success() || !watcher.completed_ok {
            return Err(tool_failed(self.tool, &status.to_string(), &log));
        }
        Ok(Streamed {
            stream,
            stream_bytes,
            log,
            watcher,
            lsn_dir,
        })
    }
}

/// Reads the tool's stdout in frames straight into the repository.
async fn pump(
    child: &mut Child,
    repo: &Repository,
    id: &str,
    opts: &PhysicalBackupOptions,
    progress: &dyn Progress,
) -> Result<(FileEntry, u64)> {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let storage = repo.storage();
    let sink = HashingSink::create(
        &**storage,
        &layout::backup_file(id, STREAM_FILE),
        STREAM_FILE,
    )
    .await?;
    let mut sink = ParallelZstdSink::new(sink, opts.compression_level, opts.threads);
    let frame = sink.frame_size();
    let started = Instant::now();
    let mut last_log = Instant::now();
    let result = async {
        loop {
            let mut buf = Vec::with_capacity(frame);
            let n = (&mut stdout)
                .take(frame as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| {
                    Error::with_source(ErrorKind::Internal, "reading the backup stream", e)
                })?;
            if n == 0 {
                break;
            }
            progress.advance(n as u64);
            sink.write_owned(buf).await?;
            if last_log.elapsed() >= Duration::from_secs(5) {
                last_log = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    bytes = sink.raw_size(),
                    mib_per_s = sink.raw_size() as f64 / 1048576.0 / secs,
                    "streaming"
                );
            }
            if n < frame {
                break;
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    match result {
        Ok(()) => {
            let raw = sink.raw_size();
            Ok((sink.finish().await?, raw))
        }
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

async fn read_log(
    stderr: tokio::process::ChildStderr,
    watcher: Arc<Mutex<LockWatcher>>,
) -> Vec<u8> {
    let mut reader = BufReader::new(stderr);
    let mut log = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let now = Instant::now();
                let raw = String::from_utf8_lossy(&line);
                // Before anything sees the line: it may show a password hash.
                let text = redact_secrets(&raw);
                tracing::debug!(target: "holdfast::physical::tool", "{}", text.trim_end());
                watcher.lock().expect("watcher lock").feed(&text, now);
                log.extend_from_slice(text.as_bytes());
            }
        }
    }
    log
}

/// Kills the tool (releasing its server locks) if it stalls on a lock; see [`LockWatcher::stalled`].
async fn watch_locks(
    pid: Option<u32>,
    watcher: Arc<Mutex<LockWatcher>>,
    stalled: Arc<Mutex<Option<String>>>,
    limit: Duration,
) {
    let Some(pid) = pid else { return };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let why = watcher
            .lock()
            .expect("watcher lock")
            .stalled(Instant::now(), limit);
        if let Some(why) = why {
            tracing::warn!("stopping the backup tool: {why}");
            *stalled.lock().expect("stall lock") = Some(why);
            // SAFETY: signalling our own child, which has not been reaped (we hold its Child).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            return;
        }
    }
}

fn tool_failed(tool: &BackupTool, status: &str, log: &[u8]) -> Error {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    let lowered = text.to_ascii_lowercase();
    let kind =
        if lowered.contains("access denied") || lowered.contains("missing required privilege") {
            ErrorKind::Auth
        } else if lowered.contains("can't connect") || lowered.contains("failed to connect") {
            ErrorKind::Connect
        } else {
            ErrorKind::Server
        };
    Error::new(
        kind,
        format!(
            "{} failed ({status}); nothing was committed. Last lines of its log:\n{tail}",
            tool.kind.name()
        ),
    )
}

async fn store_log(repo: &Repository, id: &str, kind: ToolKind, log: &[u8]) -> Result<FileEntry> {
    let name = log_file_name(kind);
    let sink =
        HashingSink::create(&**repo.storage(), &layout::backup_file(id, &name), &name).await?;
    let mut z = ZstdSink::new(sink, 3)?;
    z.write(log).await?;
    z.finish().await
}

pub fn log_file_name(kind: ToolKind) -> String {
    format!("{}.log.zst", kind.name())
}

#[allow(clippy::too_many_arguments)]
fn build_manifest(
    id: &str,
    started: time::OffsetDateTime,
    identity: &ServerIdentity,
    tool: &BackupTool,
    parent: Option<&Parent>,
    streamed: Streamed,
    log_entry: FileEntry,
    replica_lag: Option<u64>,
) -> Result<BackupManifest> {
    let checkpoints = read_side_file(&streamed.lsn_dir, "xtrabackup_checkpoints")?;
    let info = read_side_file(&streamed.lsn_dir, "xtrabackup_info").unwrap_or_default();
    let lsn = |key: &str| -> Result<u64> {
        checkpoints
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Error::server(format!(
                    "{} wrote no `{key}` in xtrabackup_checkpoints",
                    tool.kind.name()
                ))
            })
    };
    let (from_lsn, to_lsn, last_lsn) = (lsn("from_lsn")?, lsn("to_lsn")?, lsn("last_lsn")?);
    if let Some(p) = parent {
        if from_lsn != p.to_lsn {
            return Err(Error::server(format!(
                "{} copied from LSN {from_lsn}, not from the parent's LSN {}",
                tool.kind.name(),
                p.to_lsn
            )));
        }
    }
    let log_text = String::from_utf8_lossy(&streamed.log);
    let binlog = info
        .get("binlog_pos")
        .and_then(|v| parse_binlog_position(v))
        .or_else(|| {
            log_text
                .find("MySQL binlog position:")
                .and_then(|i| parse_binlog_position(&log_text[i..]))
        });
    let finished = time::OffsetDateTime::now_utc();
    let consistent_point = match binlog {
        Some((file, pos, gtid)) => ConsistentPoint {
            binlog_file: file,
            binlog_pos: pos,
            gtid_set: gtid,
            time: streamed.watcher.commits_blocked_at.unwrap_or(finished),
        },
        None => ConsistentPoint {
            time: streamed.watcher.commits_blocked_at.unwrap_or(finished),
            ..Default::default()
        },
    };
    let replica_of = parse_primary_position(&log_text).map(|p| PrimaryPosition {
        lag_seconds: replica_lag.unwrap_or(0),
        ..p
    });
    let locks = streamed.watcher.times;
    Ok(BackupManifest {
        format: MANIFEST_FORMAT,
        id: id.to_string(),
        engine: "physical".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        server: identity.info(),
        started,
        finished,
        consistent_point,
        lock_held_ms: locks.commits_blocked_ms,
        compression: "zstd".into(),
        schema_file: String::new(),
        tables: Vec::new(),
        files: vec![streamed.stream.clone(), log_entry.clone()],
        includes_users: true,
        physical: Some(PhysicalInfo {
            tool: tool.kind.name().into(),
            tool_version: tool.version.clone(),
            kind: if parent.is_some() {
                "incremental"
            } else {
                "full"
            }
            .into(),
            parent: parent.map(|p| p.id.clone()),
            from_lsn,
            to_lsn,
            last_lsn,
            stream_file: streamed.stream.path.clone(),
            stream_bytes: streamed.stream_bytes,
            log_file: log_entry.path,
            locks,
            replica_of,
        }),
        scope: Some(BackupScope::complete()),
    })
}

fn read_side_file(dir: &Path, name: &str) -> Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join(name)).map_err(|e| {
        Error::with_source(
            ErrorKind::Server,
            format!("the backup tool wrote no {name}"),
            e,
        )
    })?;
    Ok(parse_key_values(&text))
}
