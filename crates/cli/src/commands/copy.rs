//! `holdfast copy --from REPO --to REPO [IDS...|--all|--binlog-only]`: copy committed backups
//! and the binlog archive to another repository, incrementally and verified.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use holdfast::copy::{copy, CopySelection};
use holdfast::repo::Repository;
use holdfast::Error;

use crate::args::{GlobalArgs, Keys, StorageArgs};
use crate::output::outln;
use crate::output::{count, human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    /// The repository to copy from (a URL as for --repo).
    #[arg(long)]
    from: String,
    /// The repository to copy to (created beforehand with `holdfast init`).
    #[arg(long)]
    to: String,
    /// Backups to copy: ids or `latest`.
    #[arg(value_name = "ID", conflicts_with_all = ["all", "binlog_only"])]
    backups: Vec<String>,
    /// Copy every backup.
    #[arg(long, conflicts_with = "binlog_only")]
    all: bool,
    /// Copy only the binlog archive, no backups.
    #[arg(long, conflicts_with = "no_binlog")]
    binlog_only: bool,
    /// Do not copy the binlog archive (copied by default).
    #[arg(long)]
    no_binlog: bool,
    /// Storage options, applied to both repositories (each gets its own --max-rate budget).
    #[command(flatten)]
    storage: StorageArgs,
    /// Encrypted source: passphrase file (or HOLDFAST_FROM_PASSPHRASE).
    #[arg(long)]
    from_passphrase_file: Option<PathBuf>,
    /// Encrypted source: age identity file (repeatable).
    #[arg(long)]
    from_identity_file: Vec<PathBuf>,
    /// Encrypted destination: passphrase file (or HOLDFAST_TO_PASSPHRASE).
    #[arg(long)]
    to_passphrase_file: Option<PathBuf>,
    /// Encrypted destination: age identity file (repeatable).
    #[arg(long)]
    to_identity_file: Vec<PathBuf>,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    if args.backups.is_empty() && !args.all && !args.binlog_only {
        return Err(Error::usage(
            "nothing to copy: name the backups (ids or `latest`), or pass --all (every backup \
             and the binlog archive) or --binlog-only",
        )
        .into());
    }
    let from_keys = Keys {
        passphrase_file: args.from_passphrase_file.clone(),
        identity_files: args.from_identity_file.clone(),
        env_var: "HOLDFAST_FROM_PASSPHRASE",
        flag_prefix: "from-",
    };
    let to_keys = Keys {
        passphrase_file: args.to_passphrase_file.clone(),
        identity_files: args.to_identity_file.clone(),
        env_var: "HOLDFAST_TO_PASSPHRASE",
        flag_prefix: "to-",
    };
    // Both keys are checked before anything is read or written.
    let src = Repository::open_with(args.storage.open(&args.from)?, &from_keys).await?;
    let dst = Repository::open_with(args.storage.open(&args.to)?, &to_keys).await?;
    let selection = CopySelection {
        backups: args.backups,
        all: args.all,
        binlog: !args.no_binlog,
    };
    let report = copy(&src, &dst, &selection, progress(global)).await?;
    if global.json {
        print_json(&report)?;
    } else {
        outln!(
            "copied {} from {} to {} ({}, {}; {} kept from an earlier run) in {:.1}s",
            count(report.copied.len() as u64, "backup", None),
            report.from,
            report.to,
            count(report.files_copied as u64, "file", None),
            human_bytes(report.bytes_copied),
            count(report.files_kept as u64, "file", None),
            report.seconds
        );
        if !report.skipped.is_empty() {
            outln!(
                "already there: {} ({})",
                count(report.skipped.len() as u64, "backup", None),
                report.skipped.join(", ")
            );
        }
        if report.binlog_objects_copied + report.binlog_objects_skipped > 0 {
            outln!(
                "binlog archive: {} copied, {} already there",
                count(report.binlog_objects_copied as u64, "object", None),
                report.binlog_objects_skipped
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
