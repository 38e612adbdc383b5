//! What point-in-time drills and chain proofs share: a sandbox able to take replayed GTIDs, a
//! logical base restored into it, the planned stretch of the archive replayed on top (the same
//! functions `restore --to-…` runs), and the server's own GTID position read back.
//!
//! The position is read from the server, not taken from the replay's report: MariaDB replays
//! through the server's own replication (`--replay fast`), which advances `gtid_slave_pos` one
//! applied transaction at a time; MySQL records every replayed transaction in `gtid_executed`.

use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::*;

use super::{failed, locate_install, DrillOptions};
use crate::binlog::gtid::GtidPos;
use crate::engine::logical::restore::{run_restore, RestoreOptions};
use crate::manifest::{BackupManifest, DrillCheck, DrillServer, SegmentIndex};
use crate::progress::Progress;
use crate::recovery::{mysql_gtid, replay_planned, RecoveryPlan, ReplayOptions, ReplayPath};
use crate::repo::Repository;
use crate::sandbox::Sandbox;
use crate::source::{ConnectionConfig, Flavor};
use crate::{Error, ErrorKind, Result};

/// A started sandbox of `base`'s flavor and version. MySQL runs with GTIDs on (no binary log
/// needed since 5.7), so each replayed transaction keeps its GTID as a recovery would.
pub(crate) async fn start_sandbox(
    base: &BackupManifest,
    opts: &DrillOptions,
    progress: &Arc<dyn Progress>,
) -> Result<Sandbox> {
    let install = locate_install(base, opts)?;
    let mut sandbox_opts = opts.sandbox.clone();
    if install.flavor == Flavor::MySql {
        sandbox_opts.extra_args.extend([
            "--gtid-mode=ON".to_string(),
            "--enforce-gtid-consistency=ON".to_string(),
            format!(
                "--server-id={}",
                4_000_000_000u32 + rand::random::<u16>() as u32
            ),
        ]);
    }
    let mut sandbox = Sandbox::new(install, sandbox_opts)?;
    progress.note("initialising the drill server");
    sandbox.initialize().await?;
    sandbox.start().await?;
    Ok(sandbox)
}

/// The sandbox's server for the record.
pub(crate) fn sandbox_server(
    sandbox: &Sandbox,
    opts: &DrillOptions,
    version: String,
) -> DrillServer {
    DrillServer {
        binary: sandbox.install().server.display().to_string(),
        version,
        kind: "sandbox".into(),
        memory_bytes: Some(opts.sandbox.memory),
        peak_memory_bytes: sandbox.peak_memory_bytes(),
    }
}

/// What the restore and the replay did.
pub(crate) struct Replayed {
    /// From the start of the restore to the end of the replay.
    pub rto_seconds: f64,
    pub rows: u64,
    pub bytes: u64,
    pub transactions: u64,
    /// The server's own GTID position after the replay.
    pub reached: GtidPos,
}

/// Restores `base` (logical) into `target` and replays `plan` on top. A restore or replay that
/// fails because of what the repository holds is a failed check (`restore` / `replay`); the
/// drill being unable to run is an error.
pub(crate) async fn restore_and_replay(
    repo: &Repository,
    base: &BackupManifest,
    plan: &RecoveryPlan,
    segments: &[SegmentIndex],
    target: &ConnectionConfig,
    opts: &DrillOptions,
    progress: Arc<dyn Progress>,
) -> Result<std::result::Result<Replayed, (DrillCheck, f64)>> {
    let flavor = mysql_gtid::target_flavor(target).await?;
    let restore_opts = RestoreOptions {
        workers: opts.workers.max(1),
        verify: false,
        users: base.includes_users,
        ..RestoreOptions::default()
    };
    let started = Instant::now();
    if flavor == Flavor::MySql {
        mysql_gtid::check_target(target, &plan.start).await?;
    }
    let restored = match run_restore(repo, base, target, &restore_opts, progress.clone()).await {
        Ok(r) => r,
        Err(e) if super::is_backup_failure(&e) => {
            let check = failed("restore", None, format!("base backup {}: {e}", base.id));
            return Ok(Err((check, started.elapsed().as_secs_f64())));
        }
        Err(e) => return Err(e),
    };
    if flavor == Flavor::MySql {
        mysql_gtid::align_to_base(target, &plan.start).await?;
    }
    let replay_opts = ReplayOptions {
        path: match flavor {
            Flavor::MariaDb => ReplayPath::Fast,
            Flavor::MySql => ReplayPath::Portable,
        },
        parallel_threads: 0,
        keep_binlog: false,
    };
    let report = match replay_planned(repo, target, plan, segments, &replay_opts, progress).await {
        Ok(r) => r,
        Err(e) if is_archive_failure(&e) => {
            let check = failed("replay", None, e.to_string());
            return Ok(Err((check, started.elapsed().as_secs_f64())));
        }
        Err(e) => return Err(e),
    };
    let rto_seconds = started.elapsed().as_secs_f64();
    let transactions = report
        .replay
        .as_ref()
        .map(|r| r.transactions_applied)
        .or(report.fast.as_ref().map(|f| f.transactions_applied))
        .unwrap_or(0);
    let reached = server_position(target, flavor).await?;
    Ok(Ok(Replayed {
        rto_seconds,
        rows: restored.rows,
        bytes: restored.bytes_loaded,
        transactions,
        reached,
    }))
}

/// The server's own GTID position: MariaDB `gtid_slave_pos`, MySQL `gtid_executed`.
async fn server_position(target: &ConnectionConfig, flavor: Flavor) -> Result<GtidPos> {
    let mut conn = target.connect().await?;
    let sql = match flavor {
        Flavor::MariaDb => "SELECT @@global.gtid_slave_pos",
        Flavor::MySql => "SELECT @@global.gtid_executed",
    };
    let text: Option<String> = conn.query_first(sql).await?;
    let text: String = text.unwrap_or_default().split_whitespace().collect();
    text.parse().map_err(|e: Error| {
        Error::new(
            ErrorKind::Server,
            format!("the drill server reports an unreadable GTID position `{text}`: {e}"),
        )
    })
}

/// Whether a planning or replay error is about what the archive holds (a failed drill) rather
/// than the drill being unable to run.
pub(crate) fn is_archive_failure(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Integrity | ErrorKind::Server | ErrorKind::NotFound | ErrorKind::NotRecoverable
    )
}
