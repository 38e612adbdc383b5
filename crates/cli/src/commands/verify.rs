//! `holdfast verify [ID|latest|--all]`: check files against manifests and the binlog archive's
//! segments against their index entries, and report the debris of interrupted runs
//! (uncommitted backups, incomplete uploads) without removing it.
//!
//! What is checked: no argument, the newest backup and the part of the archive that rolls it
//! forward to the archive's end; an id (or `latest` spelled out), that backup only; `--all`,
//! every backup and the whole archive.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::binlog::archive::Archive;
use holdfast::binlog::verify::{verify_archive, ArchiveReport, ArchiveScope};
use holdfast::recovery::base_candidate;
use holdfast::verify::verify_backup;

use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{describe_upload, human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// A backup id or `latest`: that backup only. Without it: the newest backup and the part
    /// of the binlog archive that rolls it forward to the archive's end.
    #[arg(conflicts_with = "all")]
    backup: Option<String>,
    /// Verify every backup and the whole binlog archive.
    #[arg(long)]
    all: bool,
    /// Also decompress data and re-derive row counts and fingerprints, and decode every event
    /// of every archived binlog segment checked.
    #[arg(long)]
    deep: bool,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    // One manifest in memory at a time: a backup of 100,000 tables has a manifest of tens of MB.
    let ids = if args.all {
        repo.backup_ids().await?
    } else {
        vec![
            repo.resolve_id(args.backup.as_deref().unwrap_or("latest"))
                .await?,
        ]
    };
    let mut reports = Vec::new();
    let mut newest = None;
    for id in &ids {
        let m = repo.load_manifest(id).await?;
        reports.push(verify_backup(&repo, &m, args.deep, progress(global)).await?);
        newest = Some(base_candidate(&m)?);
    }
    let scope = match (&args.backup, args.all, newest) {
        (_, true, _) => Some(ArchiveScope::All),
        (None, false, Some(base)) => Some(ArchiveScope::From(base)),
        _ => None,
    };
    let archive = match scope {
        Some(scope) => Some(
            verify_archive(
                &Archive::new(repo.storage().clone()),
                &scope,
                args.deep,
                progress(global),
            )
            .await?,
        ),
        None => None,
    };
    let ok = reports.iter().all(|r| r.ok()) && archive.as_ref().is_none_or(|a| a.ok());
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
            "binlog_archive": archive,
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
        if let Some(a) = &archive {
            print_archive(a);
        }
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: verification failed; the problems above name each file{}",
            if archive.as_ref().is_some_and(|a| !a.ok()) {
                " and segment (a recovery can reach any point before a damaged segment; copy \
                 the archive again from a second repository with `holdfast copy` to repair it)"
            } else {
                ""
            }
        );
        Ok(ExitCode::from(holdfast::ErrorKind::Integrity.exit_code()))
    }
}

fn print_archive(a: &ArchiveReport) {
    let range = match (a.first_seq, a.last_seq) {
        (Some(f), Some(l)) => format!("segments {f} to {l}"),
        _ => "no segments".to_string(),
    };
    let scope = match a.scope.as_str() {
        "all" => "whole archive".to_string(),
        other => other.to_string(),
    };
    if a.segments_total == 0 && a.ok() {
        outln!("binlog archive: empty");
    } else if a.ok() {
        outln!(
            "binlog archive ({scope}): OK ({range}, {} of {} segments, {}{})",
            a.segments,
            a.segments_total,
            human_bytes(a.bytes),
            if a.deep {
                format!(", {} events decoded", a.events)
            } else {
                String::new()
            }
        );
    } else {
        outln!(
            "binlog archive ({scope}, {range}): {} problem(s)",
            a.problems.len()
        );
        for p in &a.problems {
            outln!("  {:<10} {}  {}", p.kind, p.path, p.detail);
        }
    }
    for hole in &a.holes {
        outln!("  hole (recorded by the stream; no recovery crosses it): {hole}");
    }
}
