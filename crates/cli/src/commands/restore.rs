//! `holdfast restore [ID|latest]`: a logical backup into a running server (`--target`), or a
//! physical backup and its incremental chain into an empty datadir (`--datadir`); the engine comes
//! from the backup's manifest. With `--to-time`, `--to-gtid`, `--before-gtid` or `--latest`, a
//! point-in-time recovery: the newest complete backup at or before the target (of the engine the
//! recovery restores into: logical into `--target`, physical into `--datadir`; or the one named
//! with `--base`), then the binlog archive replayed up to the target.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use holdfast::binlog::gtid::Gtid;
use holdfast::engine::logical::restore::{run_restore, RestoreOptions, RestoreReport};
use holdfast::engine::physical::start::stop_server;
use holdfast::engine::physical::{run_physical_restore, PhysicalRestoreOptions, StartOptions};
use holdfast::manifest::BackupManifest;
use holdfast::recovery::plan::parse_time;
use holdfast::recovery::{
    check_planned_segments, plan_for, recover, replay_planned, BaseEngine, BaseRule, Planned,
    ReplayOptions, ReplayPath, Target,
};
use holdfast::repo::Repository;

use crate::args::{default_threads, FilterArgs, GlobalArgs, RepoArgs, ServerArgs};
use crate::output::outln;
use crate::output::{count, human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The backup to restore: an id or `latest`.
    #[arg(default_value = "latest")]
    backup: String,
    /// Logical backups: the server to restore into: mysql://user@host:port/ or
    /// mysql://user@localhost/?socket=/path.
    #[arg(long, env = "HOLDFAST_TARGET")]
    target: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Parallel load connections (default: CPU count).
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Replace databases (or, with --tables, tables) that already exist on the target.
    #[arg(long)]
    drop_existing: bool,
    /// Restore database OLD under the name NEW (repeatable): --rename-db shop:shop_copy.
    #[arg(long = "rename-db", value_name = "OLD:NEW")]
    rename_db: Vec<String>,
    /// Write the restore into the target's binary log (off by default).
    #[arg(long)]
    keep_binlog: bool,
    /// Recompute every table's content fingerprint on the target and compare with the backup.
    #[arg(long)]
    verify: bool,
    /// Do not restore users and grants even if the backup has them.
    #[arg(long)]
    no_users: bool,
    /// Point-in-time recovery to this time: every transaction committed at or before it
    /// (`YYYY-MM-DD HH:MM:SS` in UTC, or RFC 3339 with a zone).
    #[arg(long, group = "pitr")]
    to_time: Option<String>,
    /// Point-in-time recovery up to and including this MariaDB GTID (domain-server-seq).
    #[arg(long, group = "pitr")]
    to_gtid: Option<String>,
    /// Point-in-time recovery to just before this GTID (undo an accidental transaction).
    #[arg(long, group = "pitr")]
    before_gtid: Option<String>,
    /// Point-in-time recovery to the end of the binlog archive.
    #[arg(long, group = "pitr")]
    latest: bool,
    /// Point-in-time recovery: start from this backup (complete, at or before the target)
    /// instead of the newest one that qualifies.
    #[arg(long, value_name = "ID", requires = "pitr")]
    base: Option<String>,
    /// Point-in-time recovery: the engine of the base backup (default: logical with --target,
    /// physical with --datadir).
    #[arg(long, value_enum, requires = "pitr")]
    engine: Option<EngineArg>,
    /// Physical backups: the datadir to restore into (empty or absent).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Physical: where streams are unpacked and prepared (default: beside the datadir, same
    /// filesystem).
    #[arg(long, requires = "datadir")]
    work_dir: Option<PathBuf>,
    /// Physical: memory for the prepare step (the tool's --use-memory, e.g. 1G).
    #[arg(long, requires = "datadir")]
    prepare_memory: Option<String>,
    /// Physical: start a server on the restored datadir (socket <datadir>/mysqld.sock).
    #[arg(long, requires = "datadir")]
    start: bool,
    /// With --start: also listen on this TCP port on 127.0.0.1.
    #[arg(long, requires = "start")]
    start_port: Option<u16>,
    /// With --start: the server's option file (default: --no-defaults).
    #[arg(long, requires = "start")]
    start_defaults_file: Option<PathBuf>,
    /// How a point-in-time recovery replays the archive: `portable` (SQL over one session, any
    /// account that can write the data) or `fast` (the target's own parallel replication, fed
    /// by holdfast as its primary on 127.0.0.1; needs REPLICATION SLAVE ADMIN or SUPER).
    #[arg(long, value_name = "PATH", default_value = "portable")]
    replay: ReplayPath,
    /// With --replay fast: the target's slave_parallel_threads during the replay (0 keeps
    /// the server's setting).
    #[arg(long, value_name = "N", default_value_t = 4)]
    replay_threads: u64,
}

/// `--engine` of a point-in-time recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// A logical backup, restored into the running server given by --target.
    Logical,
    /// A physical backup, restored into --datadir with a server started on it.
    Physical,
}

impl Args {
    /// Which backups a point-in-time recovery may start from: the named one, of the engine
    /// asked for, or implied by where the base goes (`--datadir`: physical; otherwise a
    /// running server: logical).
    fn base_rule(&self) -> Result<BaseRule> {
        let (engine, reason) = match (self.engine, &self.datadir) {
            (Some(EngineArg::Logical), Some(_)) => bail!(holdfast::Error::usage(
                "--engine logical restores the base into a running server (--target URL); \
                 --datadir is for a physical base: drop one of them"
            )),
            (Some(EngineArg::Physical), None) => bail!(holdfast::Error::usage(
                "--engine physical restores the base into an empty datadir: give --datadir DIR \
                 (a server is started on it to replay the archive)"
            )),
            (Some(EngineArg::Logical), None) => (BaseEngine::Logical, "--engine logical"),
            (Some(EngineArg::Physical), Some(_)) => (BaseEngine::Physical, "--engine physical"),
            (None, Some(_)) => (BaseEngine::Physical, "--datadir takes a physical base"),
            // Without --datadir the base goes into a running server (--target, or the
            // connection flags and option files).
            (None, None) => (BaseEngine::Logical, "--target takes a logical base"),
        };
        Ok(BaseRule {
            named: self.base.clone(),
            engine: Some(engine),
            engine_reason: reason.to_string(),
        })
    }

    fn recovery_target(&self) -> Result<Option<Target>> {
        let gtid = |s: &str| s.parse::<Gtid>();
        Ok(
            match (&self.to_time, &self.to_gtid, &self.before_gtid, self.latest) {
                (Some(t), ..) => Some(Target::Time(parse_time(t)?)),
                (_, Some(g), ..) => Some(Target::Gtid(gtid(g)?)),
                (_, _, Some(g), _) => Some(Target::BeforeGtid(gtid(g)?)),
                (.., true) => Some(Target::Latest),
                _ => None,
            },
        )
    }
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    if let Some(point) = args.recovery_target()? {
        if args.backup != "latest" {
            bail!(holdfast::Error::usage(format!(
                "a point-in-time recovery chooses its base backup itself: to start from backup \
                 {} name it with --base {} (it must be complete and at or before the target)",
                args.backup, args.backup
            )));
        }
        return point_in_time(global, args, point).await;
    }
    let repo = args.repo.open().await?;
    let manifest = repo.resolve(&args.backup).await?;
    if manifest.is_physical() {
        return physical(global, &repo, &manifest, args).await;
    }
    if args.datadir.is_some() {
        bail!(holdfast::Error::usage(format!(
            "backup {} is a logical backup: restore it into a running server with --target \
             (--datadir is for physical backups)",
            manifest.id
        )));
    }
    let mut renames = Vec::new();
    for r in &args.rename_db {
        let Some((from, to)) = r.split_once(':') else {
            bail!(holdfast::Error::usage(format!(
                "--rename-db `{r}` must be OLD:NEW"
            )));
        };
        renames.push((from.to_string(), to.to_string()));
    }
    let target = args.server.resolve(args.target.as_deref())?;
    let opts = args.logical_options(renames);
    let report = run_restore(&repo, &manifest, &target, &opts, progress(global)).await?;
    if global.json {
        print_json(&report)?;
    } else {
        outln!(
            "restored backup {} into {}: {}, {}, {} in {:.1}s",
            report.backup_id,
            report.target,
            count(report.tables.len() as u64, "table", None),
            count(report.rows, "row", None),
            human_bytes(report.bytes_loaded),
            report.seconds
        );
        outln!(
            "row counts match the backup{}",
            if report.verified {
                "; content fingerprints verified"
            } else {
                ""
            }
        );
        print_notes(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The notes of a logical restore: empty databases it replaced, things restored only partly.
fn print_notes(report: &RestoreReport) {
    if !report.replaced_empty_databases.is_empty() {
        outln!(
            "note: replaced the target's empty database(s) {} (no tables, views, routines or events)",
            report
                .replaced_empty_databases
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for w in &report.warnings {
        outln!("warning: {w}");
    }
}

/// `--to-time/--to-gtid/--before-gtid/--latest`: restore the planned base (logical into
/// `--target`, physical into `--datadir` with a server started on it), then replay the archive.
async fn point_in_time(global: &GlobalArgs, args: Args, point: Target) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let replay = ReplayOptions {
        path: args.replay,
        parallel_threads: args.replay_threads,
        keep_binlog: args.keep_binlog,
    };
    let rule = args.base_rule()?;
    // The base's manifest, checked against the summary the plan was made from.
    let planned = plan_for(&repo, point, &rule).await?;
    let report = if planned.base.is_physical() {
        let Planned {
            plan,
            segments,
            base: manifest,
        } = planned;
        let Some(datadir) = args.datadir.clone() else {
            bail!(holdfast::Error::usage(format!(
                "the base for this recovery is physical backup {}: give --datadir DIR (a server \
                 is started on it to replay the archive)",
                manifest.id
            )));
        };
        let opts = PhysicalRestoreOptions {
            datadir,
            work_dir: args.work_dir.clone(),
            prepare_memory: args.prepare_memory.clone(),
            start: Some(StartOptions {
                defaults_file: args.start_defaults_file.clone(),
                port: args.start_port,
                ..Default::default()
            }),
        };
        // The datadir is written only once every segment the replay needs has checked out.
        check_planned_segments(&repo, &plan, &segments, progress(global)).await?;
        let base = run_physical_restore(&repo, &manifest, &opts, progress(global)).await?;
        let server = base
            .server
            .clone()
            .ok_or_else(|| holdfast::Error::internal("the restored server was not started"))?;
        let socket = server.socket.clone();
        let url = format!("mysql://root@localhost/?socket={}", socket.display());
        let replayed = match args.server.resolve(Some(&url)) {
            Ok(target) => {
                replay_planned(&repo, &target, &plan, &segments, &replay, progress(global))
                    .await
                    .map_err(anyhow::Error::from)
            }
            Err(e) => Err(e),
        };
        let report = match replayed {
            Ok(report) => report,
            Err(e) => {
                // Leave no server running on a half-recovered datadir.
                match stop_server(&server, Duration::from_secs(120)).await {
                    Ok(()) => eprintln!(
                        "note: the recovery failed, so the server holdfast started on {} (pid {}) \
                         was stopped; the datadir holds backup {} and part of the replay (its log: \
                         {}): empty it before restoring into it again",
                        base.datadir.display(),
                        server.pid,
                        base.backup_id,
                        server.error_log.display()
                    ),
                    Err(stop) => eprintln!(
                        "warning: the recovery failed and the server holdfast started on {} \
                         (pid {}) could not be stopped: {stop}; stop it yourself",
                        base.datadir.display(),
                        server.pid
                    ),
                }
                return Err(e);
            }
        };
        if global.json {
            let mut value = serde_json::to_value(&report)?;
            value["physical_restore"] = serde_json::to_value(&base)?;
            print_json(&value)?;
            return Ok(ExitCode::SUCCESS);
        }
        outln!(
            "restored physical backup {} into {}; server running (pid {}, socket {})",
            base.backup_id,
            base.datadir.display(),
            base.server.as_ref().map_or(0, |s| s.pid),
            socket.display()
        );
        report
    } else {
        if args.datadir.is_some() {
            bail!(holdfast::Error::usage(format!(
                "the base for this recovery is logical backup {}: restore it into a running \
                 server with --target (--datadir is for physical backups)",
                planned.base.id
            )));
        }
        let target = args.server.resolve(args.target.as_deref())?;
        let opts = args.logical_options(Vec::new());
        recover(&repo, &target, planned, &opts, &replay, progress(global)).await?
    };
    if global.json {
        print_json(&report)?;
    } else {
        outln!(
            "restored backup {} and replayed {} archived segments ({} transactions) up to {}; the \
             server is at GTID {} (set as gtid_slave_pos) in {:.1}s",
            report.base_backup,
            report.segments_replayed,
            report
                .replay
                .as_ref()
                .map(|r| r.transactions_applied)
                .or(report.fast.as_ref().map(|f| f.transactions_applied))
                .unwrap_or(0),
            report.target,
            report.gtid_position,
            report.seconds
        );
        if let Some(base) = &report.base {
            print_notes(base);
        }
        for why in &report.bases_passed_over {
            outln!("note: a newer backup was not used as the base: {why}");
        }
        if let Some(incomplete) = report.replay.as_ref().and_then(|r| r.incomplete.as_ref()) {
            outln!(
                "note: the archive ends inside transaction {}; it was not applied",
                incomplete.gtid
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Args {
    fn logical_options(&self, renames: Vec<(String, String)>) -> RestoreOptions {
        RestoreOptions {
            workers: self.threads.max(1),
            filter: self.filter.filter(),
            renames,
            drop_existing: self.drop_existing,
            keep_binlog: self.keep_binlog,
            verify: self.verify,
            users: !self.no_users,
        }
    }
}

async fn physical(
    global: &GlobalArgs,
    repo: &Repository,
    manifest: &BackupManifest,
    args: Args,
) -> Result<ExitCode> {
    let Some(datadir) = args.datadir else {
        bail!(holdfast::Error::usage(format!(
            "backup {} is a physical backup: restore it into an empty datadir with --datadir DIR \
             (then start a server on it, or add --start)",
            manifest.id
        )));
    };
    let f = &args.filter;
    let logical_only = args.target.is_some()
        || !f.databases.is_empty()
        || !f.exclude_databases.is_empty()
        || !f.tables.is_empty()
        || !f.exclude_tables.is_empty()
        || !args.rename_db.is_empty()
        || args.drop_existing
        || args.verify
        || args.no_users;
    if logical_only {
        bail!(holdfast::Error::usage(format!(
            "backup {} is a physical backup, restored whole into --datadir: --target, filters, \
             --rename-db, --drop-existing, --verify and --no-users apply to logical backups",
            manifest.id
        )));
    }
    let opts = PhysicalRestoreOptions {
        datadir,
        work_dir: args.work_dir,
        prepare_memory: args.prepare_memory,
        start: args.start.then(|| StartOptions {
            defaults_file: args.start_defaults_file,
            port: args.start_port,
            ..Default::default()
        }),
    };
    let report = run_physical_restore(repo, manifest, &opts, progress(global)).await?;
    if global.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "restored physical backup {} into {} in {:.1}s (fetch {:.1}s, prepare {:.1}s, move back \
         {:.1}s; {} read)",
        report.backup_id,
        report.datadir.display(),
        report.seconds,
        report.fetch_seconds,
        report.prepare_seconds,
        report.move_back_seconds,
        human_bytes(report.bytes_fetched)
    );
    if report.chain.len() > 1 {
        outln!("chain applied: {}", report.chain.join(" -> "));
    }
    outln!("consistent at {}", report.consistent_point.describe());
    if let Some(s) = &report.server {
        outln!(
            "server started (pid {}), socket {}{}",
            s.pid,
            s.socket.display(),
            s.port.map(|p| format!(", port {p}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
