//! `holdfast restore [ID|latest]`: a logical backup into a running server (`--target`), or a
//! physical backup and its incremental chain into an empty datadir (`--datadir`). The engine
//! comes from the backup's manifest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use holdfast::engine::logical::restore::{run_restore, RestoreOptions};
use holdfast::engine::physical::{run_physical_restore, PhysicalRestoreOptions, StartOptions};
use holdfast::manifest::BackupManifest;
use holdfast::repo::Repository;

use crate::args::{default_threads, FilterArgs, GlobalArgs, RepoArgs, ServerArgs};
use crate::output::{human_bytes, print_json, progress};

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
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
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
    let opts = RestoreOptions {
        workers: args.threads.max(1),
        filter: args.filter.filter(),
        renames,
        drop_existing: args.drop_existing,
        keep_binlog: args.keep_binlog,
        verify: args.verify,
        users: !args.no_users,
    };
    let report = run_restore(&repo, &manifest, &target, &opts, progress(global)).await?;
    if global.json {
        print_json(&report)?;
    } else {
        println!(
            "restored backup {} into {}: {} tables, {} rows, {} in {:.1}s",
            report.backup_id,
            report.target,
            report.tables.len(),
            report.rows,
            human_bytes(report.bytes_loaded),
            report.seconds
        );
        println!(
            "row counts match the backup{}",
            if report.verified {
                "; content fingerprints verified"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
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
    println!(
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
        println!("chain applied: {}", report.chain.join(" -> "));
    }
    println!("consistent at {}", report.consistent_point.describe());
    if let Some(s) = &report.server {
        println!(
            "server started (pid {}), socket {}{}",
            s.pid,
            s.socket.display(),
            s.port.map(|p| format!(", port {p}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
