//! `holdfast pin ID` and `holdfast unpin ID`: keep a backup whatever the retention policy says,
//! until it is unpinned (or until `--until`). A pin is a small object, `pins/<id>.json`,
//! written under the exclusive lock so a running `expire` never misses it.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::manifest::PinRecord;
use holdfast::retention;
use time::OffsetDateTime;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{print_json, rfc3339};

#[derive(clap::Args)]
pub struct PinArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The backup id, or `latest`.
    backup: String,
    /// Why it is kept (shown by `list`, `info` and every `expire` plan).
    #[arg(long)]
    reason: Option<String>,
    /// The pin lapses at this time (YYYY-MM-DD, or a time as for `restore --to-time`; UTC
    /// unless a zone is given); without it, until `holdfast unpin`.
    #[arg(long, value_parser = parse_until)]
    until: Option<OffsetDateTime>,
}

#[derive(clap::Args)]
pub struct UnpinArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The backup id.
    backup: String,
}

fn parse_until(s: &str) -> Result<OffsetDateTime, String> {
    let t = s.trim();
    let text = if t.len() == 10 {
        format!("{t} 00:00:00")
    } else {
        t.to_string()
    };
    holdfast::recovery::plan::parse_time(&text).map_err(|e| e.to_string())
}

/// `pinned: before schema migration (until 2027-01-01T00:00:00Z)`.
pub fn describe(pin: &PinRecord) -> String {
    let mut s = format!(
        "pinned: {}",
        pin.reason.as_deref().unwrap_or("no reason given")
    );
    if let Some(u) = pin.until {
        s.push_str(&format!(" (until {})", rfc3339(u)));
    }
    s
}

pub async fn pin(global: &GlobalArgs, args: PinArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let lock = repo.lock("pin").await?;
    let done = retention::pin(&repo, &lock, &args.backup, args.reason, args.until).await;
    lock.release().await?;
    let record = done?;
    if global.json {
        print_json(&record)?;
    } else {
        outln!("backup {} {}", record.backup, describe(&record));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn unpin(global: &GlobalArgs, args: UnpinArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let lock = repo.lock("unpin").await?;
    let done = retention::unpin(&repo, &lock, &args.backup).await;
    lock.release().await?;
    let record = done?;
    if global.json {
        print_json(&serde_json::json!({ "unpinned": record }))?;
    } else {
        outln!(
            "backup {} is no longer pinned (was {})",
            record.backup,
            describe(&record)
        );
    }
    Ok(ExitCode::SUCCESS)
}
