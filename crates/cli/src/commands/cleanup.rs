//! `holdfast cleanup`: remove the files of backups that never committed (an interrupted or
//! killed backup, an upload cut off by a network failure). Takes the exclusive lock, so a backup
//! in progress is never touched.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::{human_bytes, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// Only report what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let lock = repo.lock("cleanup").await?;
    let orphans = if args.dry_run {
        repo.orphans().await
    } else {
        repo.remove_orphans(&lock).await
    };
    lock.release().await?;
    let orphans = orphans?;
    if global.json {
        print_json(&json!({ "dry_run": args.dry_run, "orphans": orphans }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if orphans.is_empty() {
        println!("nothing to clean up in {}", repo.storage().location());
    }
    for o in &orphans {
        println!(
            "{} uncommitted backup {}: {} files, {}",
            if args.dry_run {
                "would remove"
            } else {
                "removed"
            },
            o.id,
            o.files,
            human_bytes(o.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
