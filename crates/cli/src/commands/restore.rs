//! `holdfast restore [ID|latest]`: restore a logical backup into a server.

use std::process::ExitCode;

use anyhow::{bail, Result};
use holdfast::engine::logical::restore::{run_restore, RestoreOptions};

use crate::args::{default_threads, FilterArgs, GlobalArgs, RepoArgs, ServerArgs};
use crate::output::{human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The backup to restore: an id or `latest`.
    #[arg(default_value = "latest")]
    backup: String,
    /// The server to restore into: mysql://user@host:port/ or mysql://user@localhost/?socket=/path.
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
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let mut renames = Vec::new();
    for r in &args.rename_db {
        let Some((from, to)) = r.split_once(':') else {
            bail!(holdfast::Error::usage(format!(
                "--rename-db `{r}` must be OLD:NEW"
            )));
        };
        renames.push((from.to_string(), to.to_string()));
    }
    let repo = args.repo.open().await?;
    let manifest = repo.resolve(&args.backup).await?;
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
