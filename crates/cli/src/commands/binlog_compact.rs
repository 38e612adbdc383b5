//! `holdfast binlog compact`: merge runs of small closed segments of the binlog archive into
//! larger ones (see `holdfast::binlog::compact` and docs/binlog-archive.md).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use holdfast::binlog::archive::Archive;
use holdfast::binlog::compact::{compact, CompactOptions, CompactPolicy, CompactStep};

use crate::args::{parse_duration, parse_size, GlobalArgs, RepoArgs};
use crate::output::{human_bytes, outln, print_json};

#[derive(clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Merge only segments archived at least this long ago (the archive's newest segment is
    /// never merged).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    older_than: Duration,
    /// Largest merged segment (uncompressed events).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_size: u64,
    /// Longest stretch of events (first to last event time) in one merged segment.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    max_span: Duration,
    /// Show what would be merged; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Test hook: `HOLDFAST_TEST_COMPACT_CRASH_AFTER=<step>` kills the process (SIGKILL, as
/// `kill -9` would) right after the first time a compaction completes that step
/// (`merged-data`, `merged-index`, `small-data`, `small-index`).
const CRASH_HOOK: &str = "HOLDFAST_TEST_COMPACT_CRASH_AFTER";

pub async fn run(global: &GlobalArgs, args: CompactArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let archive = Archive::new(repo.storage().clone());
    let after_step = std::env::var(CRASH_HOOK).ok().map(|step| {
        Arc::new(move |done: CompactStep| {
            if done.name() == step {
                eprintln!("{CRASH_HOOK}={step}: killing the process");
                // SAFETY: signalling our own process.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
        }) as holdfast::binlog::compact::StepHook
    });
    let options = CompactOptions {
        policy: CompactPolicy {
            older_than: args.older_than,
            max_bytes: args.max_size.max(1),
            max_span: args.max_span,
        },
        dry_run: args.dry_run,
        cancel: None,
        after_step,
    };
    let report = compact(&archive, &options).await?;
    if global.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    if report.leftovers_removed > 0 {
        outln!(
            "finished an interrupted compaction: removed {} covered segment(s)",
            report.leftovers_removed
        );
    }
    for r in &report.merged {
        let verb = if report.dry_run {
            "would merge"
        } else {
            "merged"
        };
        let size = if report.dry_run {
            human_bytes(r.stored_bytes_before)
        } else {
            format!(
                "{} -> {}",
                human_bytes(r.stored_bytes_before),
                human_bytes(r.stored_bytes_after)
            )
        };
        outln!(
            "{verb} segments {}-{} ({} segments, {} positions {} to {}, {size} stored)",
            r.first_seq,
            r.last_seq,
            r.segments,
            r.file,
            r.start_pos,
            r.end_pos
        );
    }
    outln!(
        "{}{} segments ({} objects) {} {} segments ({} objects){}",
        if report.dry_run { "dry run: " } else { "" },
        report.segments_before,
        report.objects_before,
        if report.dry_run {
            "would become"
        } else {
            "became"
        },
        report.segments_after,
        report.objects_after,
        if report.merged.is_empty() {
            format!(
                "; nothing to merge (segments archived less than {}s ago, and the newest one, are left alone)",
                report.older_than_seconds
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
