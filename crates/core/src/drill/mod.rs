//! Restore drills: restore a backup the way a recovery would, check the result with the
//! strongest checks available for its kind, and keep the evidence in the repository.
//!
//! - [`run_drill`]: one drill of one backup. Without a target it starts a [`Sandbox`]
//!   (throwaway server of the backup's flavor and major version, socket only, small buffer
//!   pool, background priority) and removes it afterwards, whatever happens.
//! - [`logical`] and [`physical`]: the two restore paths and their checks, as data
//!   ([`DrillCheck`]): a failed check is a result, not an error.
//! - [`pitr`]: [`run_pitr_drill`], a base restored and the archive replayed to a point, the
//!   server's GTID position against the one the archive predicts.
//! - [`chain`]: [`run_chain_drill`], the chain proof: base N−1 plus the archive up to base N's
//!   consistent point compared table by table with base N's manifest.
//! - [`status`]: pure functions over the records: each backup's drill status, the report
//!   (success rate, RTO mean and p95, coverage, failures), which backups to drill next.
//! - [`write_record`] / [`list_records`]: `drills/<id>.json`, written once like a manifest.
//!
//! An [`Error`] from [`run_drill`] means the drill could not be carried out (no server binary,
//! storage down, a target that is not empty): no record is written. A backup that does not
//! restore or does not check out is a [`DrillRecord`] with outcome `failed`, written.

pub mod chain;
pub mod logical;
pub mod physical;
pub mod pitr;
mod replay;
pub mod status;

pub use chain::run_chain_drill;
pub use pitr::{run_pitr_drill, PitrPoint};

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;

use crate::manifest::{
    decode_versioned, drill_format_for, BackupManifest, DrillCheck, DrillKind, DrillOutcome,
    DrillRange, DrillRecord, DrillServer, DRILL_FORMAT,
};
use crate::progress::Progress;
use crate::repo::{layout, Repository};
use crate::sandbox::{self, Sandbox, SandboxOptions, ServerInstall};
use crate::source::{ConnectionConfig, Flavor};
use crate::{Error, ErrorKind, Result};

/// Where drill records live.
pub const DRILLS_DIR: &str = "drills/";

pub fn record_path(id: &str) -> String {
    format!("{DRILLS_DIR}{id}.json")
}

/// How to run a drill.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// A server binary or base directory for the sandbox (default: `$PATH` and the usual
    /// directories).
    pub server_binary: Option<PathBuf>,
    /// The sandbox (default [`SandboxOptions::default`]).
    pub sandbox: SandboxOptions,
    /// Logical backups: restore into this server instead of a sandbox.
    pub target: Option<ConnectionConfig>,
    /// With `target`: replace databases that already exist there.
    pub drop_existing: bool,
    /// Parallel restore connections.
    pub workers: usize,
}

/// What one drill produced before its record is assembled.
pub(crate) struct Outcome {
    pub checks: Vec<DrillCheck>,
    pub rto_seconds: f64,
    pub check_seconds: f64,
    pub bytes: u64,
    pub rows: u64,
    pub server: DrillServer,
    /// PITR and chain drills: what was replayed.
    pub range: Option<DrillRange>,
}

/// Drills `manifest`'s backup and writes the record (see the module documentation).
pub async fn run_drill(
    repo: &Repository,
    manifest: &BackupManifest,
    opts: &DrillOptions,
    progress: Arc<dyn Progress>,
) -> Result<DrillRecord> {
    let started = OffsetDateTime::now_utc();
    let outcome = if manifest.is_physical() {
        if opts.target.is_some() {
            return Err(Error::usage(format!(
                "backup {} is physical: a drill restores it into a throwaway server's datadir; \
                 --target is for logical backups",
                manifest.id
            )));
        }
        let install = locate_install(manifest, opts)?;
        physical::drill(repo, manifest, install, opts, progress).await?
    } else {
        match &opts.target {
            Some(target) => {
                logical::drill_into(repo, manifest, target, opts, None, progress).await?
            }
            None => {
                let install = locate_install(manifest, opts)?;
                let mut sandbox = Sandbox::new(install, opts.sandbox.clone())?;
                progress.note("initialising the drill server");
                sandbox.initialize().await?;
                sandbox.start().await?;
                let target = sandbox.connection()?;
                let result =
                    logical::drill_into(repo, manifest, &target, opts, Some(&sandbox), progress)
                        .await;
                sandbox.stop(std::time::Duration::from_secs(60)).await;
                result?
            }
        }
    };
    let record = assemble(manifest, DrillKind::Backup, started, outcome);
    write_record(repo, &record).await?;
    Ok(record)
}

pub(crate) fn assemble(
    manifest: &BackupManifest,
    kind: DrillKind,
    started: OffsetDateTime,
    o: Outcome,
) -> DrillRecord {
    let failed = o.checks.iter().find(|c| !c.passed);
    DrillRecord {
        format: drill_format_for(kind),
        id: layout::new_backup_id(started),
        kind,
        backup_id: manifest.id.clone(),
        engine: manifest.engine.clone(),
        outcome: if failed.is_some() {
            DrillOutcome::Failed
        } else {
            DrillOutcome::Passed
        },
        reason: failed.map(|c| match &c.subject {
            Some(s) if !c.detail.contains(s.as_str()) => format!("{} {s}: {}", c.name, c.detail),
            _ => format!("{}: {}", c.name, c.detail),
        }),
        checks: o.checks,
        range: o.range,
        server: o.server,
        started,
        finished: OffsetDateTime::now_utc(),
        rto_seconds: o.rto_seconds,
        check_seconds: o.check_seconds,
        bytes_restored: o.bytes,
        rows_restored: o.rows,
        holdfast_version: env!("CARGO_PKG_VERSION").to_string(),
        host: crate::repo::lock::hostname(),
    }
}

/// The sandbox's server: of the backup's flavor, and of its major.minor version (a MariaDB
/// 10.11 backup is drilled on 10.11, where a real recovery would run).
pub(crate) fn locate_install(
    manifest: &BackupManifest,
    opts: &DrillOptions,
) -> Result<ServerInstall> {
    let flavor = match manifest.server.flavor.as_str() {
        "mysql" => Flavor::MySql,
        _ => Flavor::MariaDb,
    };
    let install = ServerInstall::locate(flavor, opts.server_binary.as_deref())?;
    let version = install.version()?;
    let want = sandbox::major_minor(&manifest.server.version);
    let have = sandbox::major_minor(&version);
    let have_flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    if have_flavor != flavor || (want != (0, 0) && want != have) {
        return Err(Error::usage(format!(
            "backup {} was taken from {} {}, but {} is {} {version}: a drill restores into the \
             same flavor and major version; give --server-binary PATH (a {} {}.{} server binary \
             or base directory)",
            manifest.id,
            sandbox::binaries::flavor_label(flavor),
            manifest.server.version,
            install.server.display(),
            sandbox::binaries::flavor_label(have_flavor),
            sandbox::binaries::flavor_label(flavor),
            want.0,
            want.1
        )));
    }
    Ok(install)
}

/// Writes a drill record once (`put_if_absent`, like a manifest); an existing record with
/// the same id is an internal error (ids carry a random part).
pub async fn write_record(repo: &Repository, record: &DrillRecord) -> Result<()> {
    let body = serde_json::to_vec_pretty(record).map_err(|e| Error::internal(e.to_string()))?;
    let written = repo
        .storage()
        .put_if_absent(&record_path(&record.id), Bytes::from(body))
        .await?;
    if !written {
        return Err(Error::internal(format!(
            "a drill record {} already exists",
            record_path(&record.id)
        )));
    }
    Ok(())
}

/// The archive's time range (its first and last event), `None` without an archive: what
/// [`status::archive_coverage`] measures against.
pub async fn archive_time_range(
    repo: &Repository,
) -> Result<Option<(OffsetDateTime, OffsetDateTime)>> {
    let segments = crate::binlog::archive::Archive::new(repo.storage().clone())
        .segments()
        .await?;
    let time = |s: u32| OffsetDateTime::from_unix_timestamp(i64::from(s)).ok();
    Ok(match (segments.first(), segments.last()) {
        (Some(a), Some(b)) => time(a.first_event_time).zip(time(b.last_event_time)),
        _ => None,
    })
}

/// Every drill record of the repository, oldest first.
pub async fn list_records(repo: &Repository) -> Result<Vec<DrillRecord>> {
    let mut paths: Vec<String> = repo
        .storage()
        .list(DRILLS_DIR)
        .await?
        .into_iter()
        .map(|o| o.path)
        .filter(|p| p.ends_with(".json"))
        .collect();
    paths.sort();
    let mut records = Vec::with_capacity(paths.len());
    for p in paths {
        let body = repo.storage().get(&p).await?;
        let record: DrillRecord =
            decode_versioned(&body, &format!("drill record {p}"), DRILL_FORMAT)?;
        records.push(record);
    }
    records.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    Ok(records)
}

/// A failed check.
pub(crate) fn failed(name: &str, subject: Option<String>, detail: impl Into<String>) -> DrillCheck {
    DrillCheck {
        name: name.into(),
        subject,
        passed: false,
        detail: detail.into(),
    }
}

/// A passed check.
pub(crate) fn passed(name: &str, subject: Option<String>, detail: impl Into<String>) -> DrillCheck {
    DrillCheck {
        name: name.into(),
        subject,
        passed: true,
        detail: detail.into(),
    }
}

/// Whether a restore error means the backup does not restore (a failed drill) rather than
/// that the drill could not run (storage, connection, a busy target: an error).
pub(crate) fn is_backup_failure(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Integrity | ErrorKind::Server | ErrorKind::NotFound
    )
}
