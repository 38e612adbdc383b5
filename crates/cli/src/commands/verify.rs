//! `holdfast verify [ID|latest|--all]`: check files against manifests.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::verify::verify_backup;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::{human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// A backup id or `latest`.
    #[arg(default_value = "latest", conflicts_with = "all")]
    backup: String,
    /// Verify every backup.
    #[arg(long)]
    all: bool,
    /// Also decompress data and re-derive row counts and fingerprints.
    #[arg(long)]
    deep: bool,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let manifests = if args.all {
        repo.list_backups().await?
    } else {
        vec![repo.resolve(&args.backup).await?]
    };
    let mut reports = Vec::new();
    for m in &manifests {
        reports.push(verify_backup(&repo, m, args.deep, progress(global)).await?);
    }
    let ok = reports.iter().all(|r| r.ok());
    if global.json {
        print_json(&reports)?;
    } else {
        for r in &reports {
            if r.chain.len() > 1 {
                println!("backup {}: chain {}", r.backup_id, r.chain.join(" -> "));
            }
            if r.ok() {
                println!(
                    "backup {}: OK ({} files, {}{})",
                    r.backup_id,
                    r.files,
                    human_bytes(r.bytes),
                    if r.deep {
                        ", rows and fingerprints re-derived"
                    } else {
                        ""
                    }
                );
            } else {
                println!("backup {}: {} problem(s)", r.backup_id, r.problems.len());
                for p in &r.problems {
                    println!("  {:<8} {}  {}", p.kind, p.path, p.detail);
                }
            }
        }
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: verification failed; the problems above name each file");
        Ok(ExitCode::from(holdfast::ErrorKind::Integrity.exit_code()))
    }
}
