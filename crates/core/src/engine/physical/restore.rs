//! Restoring a physical backup (and its incremental chain) into an empty datadir.
//!
//! 1. Resolve the chain (full first); refuse a broken one before touching anything.
//! 2. Preflight: the datadir must be empty or absent (its parent must exist).
//! 3. Fetch: each backup's stream is read from the repository, checked against its SHA-256,
//!    decompressed and piped into `mbstream -x` / `xbstream -x` in a work directory beside the
//!    datadir (same filesystem, so moving back is a rename). A corrupt file stops the restore
//!    before anything is prepared.
//! 4. Prepare the full backup, then apply each incremental in order.
//! 5. Move back into the datadir and give the files the datadir's owner (when run as root).
//! 6. On any failure the work directory is removed and the datadir emptied again (removed if
//!    this restore created it): nothing half-restored is left to be started by mistake.
//!
//! The report carries the backup's consistent point (binlog file/position and GTID, from the
//! manifest), from which point-in-time recovery continues; the datadir also keeps the tool's
//! `xtrabackup_info`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::chain::{physical_info, resolve_chain};
use super::start::{start_server, StartOptions, StartedServer};
use super::tool::{BackupTool, ToolKind};
use crate::manifest::{BackupManifest, ConsistentPoint};
use crate::pipeline::{decompress_stream, read_verified};
use crate::progress::Progress;
use crate::repo::{layout, Repository};
use crate::storage::ByteStream;
use crate::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Default)]
pub struct PhysicalRestoreOptions {
    /// The datadir to restore into: empty or absent.
    pub datadir: PathBuf,
    /// Where streams are unpacked and prepared; default: a hidden directory beside the datadir.
    pub work_dir: Option<PathBuf>,
    /// `--use-memory` for prepare (e.g. `1G`); default: the tool's.
    pub prepare_memory: Option<String>,
    /// Start a server on the restored datadir.
    pub start: Option<StartOptions>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhysicalRestoreReport {
    pub backup_id: String,
    /// The backups applied, full first.
    pub chain: Vec<String>,
    pub datadir: PathBuf,
    /// Where the restored data stands in the source's history; PITR continues from here.
    pub consistent_point: ConsistentPoint,
    /// Compressed bytes read from the repository.
    #[serde(rename = "fetched_bytes")]
    pub bytes_fetched: u64,
    pub fetch_seconds: f64,
    pub prepare_seconds: f64,
    pub move_back_seconds: f64,
    pub seconds: f64,
    /// Set when `start` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<StartedServer>,
}

pub async fn run_physical_restore(
    repo: &Repository,
    manifest: &BackupManifest,
    opts: &PhysicalRestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<PhysicalRestoreReport> {
    let started = Instant::now();
    let info = physical_info(manifest)?;
    let kind = ToolKind::from_name(&info.tool)?;
    let tool = BackupTool::locate(
        kind,
        &format!("it is needed to restore {} backups", kind.name()),
    )
    .await?;
    let chain = resolve_chain(repo, manifest).await?;
    let datadir = absolute(&opts.datadir)?;
    let created = preflight(&datadir)?;
    let work = match &opts.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix(".holdfast-restore-")
            .tempdir_in(dir),
        None => tempfile::Builder::new()
            .prefix(".holdfast-restore-")
            .tempdir_in(datadir.parent().expect("absolute datadir has a parent")),
    }
    .map_err(|e| Error::with_source(ErrorKind::Usage, "cannot create the work directory", e))?;

    let result = restore_into(repo, &chain, &tool, &datadir, work.path(), opts, &progress).await;
    drop(work);
    let (bytes_fetched, fetch, prepare, move_back) = match result {
        Ok(v) => v,
        Err(e) => {
            undo(&datadir, created);
            return Err(e);
        }
    };
    let server = match &opts.start {
        Some(start) => {
            progress.note("starting the server on the restored datadir");
            Some(start_server(&datadir, start).await?)
        }
        None => None,
    };
    Ok(PhysicalRestoreReport {
        backup_id: manifest.id.clone(),
        chain: chain.iter().map(|m| m.id.clone()).collect(),
        datadir,
        consistent_point: manifest.consistent_point.clone(),
        bytes_fetched,
        fetch_seconds: fetch,
        prepare_seconds: prepare,
        move_back_seconds: move_back,
        seconds: started.elapsed().as_secs_f64(),
        server,
    })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Usage,
            format!("invalid datadir `{}`", path.display()),
            e,
        )
    })
}

/// Refuses a non-empty datadir; creates a missing one. Returns whether it was created.
fn preflight(datadir: &Path) -> Result<bool> {
    match std::fs::read_dir(datadir) {
        Ok(mut entries) => {
            if let Some(Ok(first)) = entries.next() {
                return Err(Error::new(
                    ErrorKind::TargetNotEmpty,
                    format!(
                        "the datadir {} is not empty (it has `{}`); restore into an empty or new \
                         directory, nothing was changed",
                        datadir.display(),
                        first.file_name().to_string_lossy()
                    ),
                ));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(datadir).map_err(|e| {
                Error::with_source(
                    ErrorKind::Usage,
                    format!(
                        "cannot create the datadir {} (does its parent exist?)",
                        datadir.display()
                    ),
                    e,
                )
            })?;
            Ok(true)
        }
        Err(e) => Err(Error::with_source(
            ErrorKind::Usage,
            format!("cannot read the datadir {}", datadir.display()),
            e,
        )),
    }
}

/// Empties (or removes, if we created it) the datadir after a failed restore.
fn undo(datadir: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(datadir);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(datadir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

async fn restore_into(
    repo: &Repository,
    chain: &[BackupManifest],
    tool: &BackupTool,
    datadir: &Path,
    work: &Path,
    opts: &PhysicalRestoreOptions,
    progress: &Arc<dyn Progress>,
) -> Result<(u64, f64, f64, f64)> {
    let total: u64 = chain.iter().filter_map(stream_size).sum();
    progress.phase("fetch", total, "bytes");
    let t = Instant::now();
    let mut dirs = Vec::with_capacity(chain.len());
    let mut fetched = 0;
    for (i, m) in chain.iter().enumerate() {
        let dir = work.join(format!("{i:03}-{}", m.id));
        std::fs::create_dir(&dir).map_err(|e| {
            Error::with_source(ErrorKind::Storage, "cannot create the work directory", e)
        })?;
        fetched += fetch_stream(repo, m, tool, &dir, progress).await?;
        dirs.push(dir);
    }
    let fetch_seconds = t.elapsed().as_secs_f64();

    progress.phase("prepare", chain.len() as u64, "backups");
    let t = Instant::now();
    let base = &dirs[0];
    for (i, dir) in dirs.iter().enumerate() {
        let incremental = (i > 0).then_some(dir.as_path());
        // xtrabackup must keep uncommitted transactions until the last incremental is in;
        // mariabackup (10.2+) handles that itself.
        let apply_log_only = tool.kind == ToolKind::XtraBackup && i + 1 < dirs.len();
        prepare(tool, base, incremental, apply_log_only, opts, work).await?;
        progress.advance(1);
    }
    let prepare_seconds = t.elapsed().as_secs_f64();

    progress.phase("move-back", 0, "files");
    let t = Instant::now();
    let mut cmd = Command::new(&tool.path);
    cmd.arg("--no-defaults")
        .arg("--move-back")
        .arg(format!("--target-dir={}", base.display()))
        .arg(format!("--datadir={}", datadir.display()));
    run_tool(cmd, "move-back", &work.join("move-back.log")).await?;
    fix_ownership(datadir)?;
    Ok((
        fetched,
        fetch_seconds,
        prepare_seconds,
        t.elapsed().as_secs_f64(),
    ))
}

fn stream_size(m: &BackupManifest) -> Option<u64> {
    let p = m.physical.as_ref()?;
    m.files
        .iter()
        .find(|f| f.path == p.stream_file)
        .map(|f| f.size)
}

/// Streams one backup's xbstream from the repository into `<extractor> -x -C dir`.
async fn fetch_stream(
    repo: &Repository,
    m: &BackupManifest,
    tool: &BackupTool,
    dir: &Path,
    progress: &Arc<dyn Progress>,
) -> Result<u64> {
    let info = physical_info(m)?;
    let entry = m
        .files
        .iter()
        .find(|f| f.path == info.stream_file)
        .ok_or_else(|| {
            Error::integrity(format!(
                "backup {}: its stream `{}` is not listed among its files",
                m.id, info.stream_file
            ))
        })?;
    let path = layout::backup_file(&m.id, &entry.path);
    let mut child = Command::new(&tool.extractor)
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Internal,
                format!("cannot start {}", tool.extractor.display()),
                e,
            )
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stderr = child.stderr.take().expect("piped stderr");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let mut r = stderr;
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s).await;
        s
    });
    let mut pipe_broke = false;
    let fed = async {
        // Three stages overlap: read + SHA-256, decompression, and the pipe into the extractor.
        let verified = read_verified(&**repo.storage(), &path, entry).await?;
        let p = progress.clone();
        let counted = verified.inspect(move |c| {
            if let Ok(b) = c {
                p.advance(b.len() as u64);
            }
        });
        let mut raw = prefetch(decompress_stream(prefetch(counted.boxed()), &path)?);
        while let Some(chunk) = raw.next().await {
            let chunk = chunk?;
            stdin.write_all(&chunk).await.map_err(|e| {
                pipe_broke = true;
                Error::with_source(
                    ErrorKind::Internal,
                    format!("{} stopped reading the stream", tool.extractor.display()),
                    e,
                )
            })?;
        }
        stdin.shutdown().await.ok();
        drop(stdin);
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = fed {
        // A broken pipe means the extractor quit on its own: its exit status and its own words
        // (a full disk, a bad stream) are the reason, not the pipe.
        let exited = pipe_broke
            && tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
                .await
                .is_ok();
        if !exited {
            let _ = child.start_kill();
        }
        let status = child.wait().await.ok();
        let stderr = err_task.await.unwrap_or_default();
        let said = stderr.trim();
        let e = match status {
            Some(status) if exited && !said.is_empty() => Error::new(
                ErrorKind::Internal,
                format!(
                    "{} quit while unpacking the stream ({status}): {said}",
                    tool.extractor.display()
                ),
            ),
            _ => e,
        };
        return Err(e.context(format!("restoring backup {}", m.id)));
    }
    let status = child
        .wait()
        .await
        .map_err(|e| Error::with_source(ErrorKind::Internal, "waiting for the extractor", e))?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        return Err(Error::integrity(format!(
            "{} could not unpack the stream of backup {} ({status}): {}",
            tool.extractor.display(),
            m.id,
            stderr.trim()
        )));
    }
    Ok(entry.size)
}

/// Runs `stream` ahead on its own task, a few items deep, so its work overlaps the consumer's.
fn prefetch(mut stream: ByteStream) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

async fn prepare(
    tool: &BackupTool,
    base: &Path,
    incremental: Option<&Path>,
    apply_log_only: bool,
    opts: &PhysicalRestoreOptions,
    work: &Path,
) -> Result<()> {
    let mut cmd = Command::new(&tool.path);
    cmd.arg("--no-defaults")
        .arg("--prepare")
        .arg(format!("--target-dir={}", base.display()));
    if let Some(inc) = incremental {
        cmd.arg(format!("--incremental-dir={}", inc.display()));
    }
    if apply_log_only {
        cmd.arg("--apply-log-only");
    }
    if let Some(mem) = &opts.prepare_memory {
        cmd.arg(format!("--use-memory={mem}"));
    }
    let name = match incremental {
        Some(inc) => format!(
            "prepare-{}",
            inc.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => "prepare-base".to_string(),
    };
    run_tool(cmd, &name, &work.join(format!("{name}.log"))).await
}

/// Runs a tool step with its output in `log`; on failure the error carries the log's tail.
async fn run_tool(mut cmd: Command, step: &str, log: &Path) -> Result<()> {
    let file = std::fs::File::create(log)
        .map_err(|e| Error::with_source(ErrorKind::Storage, "cannot write a log file", e))?;
    let file2 = file
        .try_clone()
        .map_err(|e| Error::with_source(ErrorKind::Storage, "cannot write a log file", e))?;
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .kill_on_drop(true);
    let status = cmd
        .status()
        .await
        .map_err(|e| Error::with_source(ErrorKind::Internal, format!("cannot run {step}"), e))?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if !status.success() || !text.contains("completed OK!") {
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        return Err(Error::new(
            ErrorKind::Integrity,
            format!("{step} failed ({status}); the datadir was left empty. Last lines:\n{tail}"),
        ));
    }
    Ok(())
}

/// When run as root, gives every restored file the owner of the datadir itself (as an admin
/// prepares it, e.g. `mysql:mysql`), or of its parent when this restore created it.
fn fix_ownership(datadir: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let meta = std::fs::metadata(datadir)
        .and_then(|m| {
            if m.uid() == 0 {
                std::fs::metadata(datadir.parent().unwrap_or(datadir))
            } else {
                Ok(m)
            }
        })
        .map_err(|e| Error::with_source(ErrorKind::Storage, "cannot stat the datadir", e))?;
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    chown_tree(datadir, uid, gid)
        .map_err(|e| Error::with_source(ErrorKind::Storage, "cannot chown the datadir", e))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}
