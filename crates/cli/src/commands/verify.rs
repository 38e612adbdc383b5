//! `holdfast verify [ID|latest|--all]`: check files against manifests, and report the debris of
//! interrupted runs (uncommitted backups, incomplete uploads) without removing it.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::verify::verify_backup;

use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{describe_upload, human_bytes, print_json, progress};

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
    // Debris of interrupted backups is not corruption, but it takes space: say so.
    let orphans = repo.orphans().await?;
    if !orphans.is_empty() {
        let bytes: u64 = orphans.iter().map(|o| o.bytes).sum();
        let ids: Vec<&str> = orphans.iter().map(|o| o.id.as_str()).collect();
        eprintln!(
            "note: {} uncommitted backup(s) ({}, {} files, {}) left by interrupted runs or in \
             progress; `holdfast cleanup` removes them",
            orphans.len(),
            ids.join(", "),
            orphans.iter().map(|o| o.files).sum::<usize>(),
            human_bytes(bytes)
        );
    }
    // Orphaned parts: invisible to listings, but they take (billed) space.
    let uploads = match repo.incomplete_uploads().await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("note: could not list incomplete uploads: {e}");
            None
        }
    };
    if let Some(uploads) = uploads.as_ref().filter(|u| !u.is_empty()) {
        let bytes: u64 = uploads.iter().map(|u| u.upload.bytes).sum();
        eprintln!(
            "note: {} incomplete upload(s) ({}) hold orphaned parts, left by interrupted runs or \
             being written right now:",
            uploads.len(),
            human_bytes(bytes)
        );
        for u in uploads {
            match &u.kept_because {
                None => eprintln!("  {}", describe_upload(u)),
                Some(why) => eprintln!("  {}; {why}", describe_upload(u)),
            }
        }
        eprintln!(
            "`holdfast cleanup` aborts those started more than 5 minutes ago (`--any-age`: \
             any age, when no backup is running)"
        );
    }
    if global.json {
        print_json(&json!({
            "backups": reports,
            "uncommitted": orphans,
            "incomplete_uploads": uploads,
        }))?;
    } else {
        for r in &reports {
            if r.chain.len() > 1 {
                outln!("backup {}: chain {}", r.backup_id, r.chain.join(" -> "));
            }
            if r.ok() {
                outln!(
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
                outln!("backup {}: {} problem(s)", r.backup_id, r.problems.len());
                for p in &r.problems {
                    outln!("  {:<8} {}  {}", p.kind, p.path, p.detail);
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
