//! `holdfast backup`: a logical backup of a running server.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use holdfast::engine::logical::backup::{run_backup, BackupOptions};
use serde_json::json;

use crate::args::{
    default_threads, parse_duration, parse_size, FilterArgs, GlobalArgs, RepoArgs, ServerArgs,
};
use crate::output::{human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The server to back up: mysql://user@host:port/ or mysql://user@localhost/?socket=/path.
    #[arg(long, env = "HOLDFAST_SOURCE")]
    source: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Parallel dump connections (default: CPU count).
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Target chunk size (server's estimate of table bytes).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    chunk_size: u64,
    /// zstd level (1 fastest .. 19 smallest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(-7..=19))]
    compress_level: i32,
    /// Also back up user accounts and grants.
    #[arg(long)]
    users: bool,
    /// Give up, releasing everything, if aligning the snapshot takes longer than this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lock_timeout: std::time::Duration,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let source = args.server.resolve(args.source.as_deref())?;
    let opts = BackupOptions {
        workers: args.threads.max(1),
        chunk_bytes: args.chunk_size,
        compression_level: args.compress_level,
        filter: args.filter.filter(),
        with_users: args.users,
        lock_timeout: args.lock_timeout,
    };
    let started = Instant::now();
    let manifest = run_backup(&repo, &source, &opts, progress(global)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cp = &manifest.consistent_point;
    if global.json {
        print_json(&json!({
            "id": manifest.id,
            "engine": manifest.engine,
            "source": source.display(),
            "tables": manifest.tables.len(),
            "rows": manifest.total_rows(),
            "raw_bytes": manifest.raw_bytes(),
            "stored_bytes": manifest.stored_bytes(),
            "files": manifest.files.len(),
            "seconds": seconds,
            "lock_held_ms": manifest.lock_held_ms,
            "consistent_point": cp,
        }))?;
    } else {
        println!(
            "backup {} done: {} tables, {} rows, {} raw -> {} stored in {:.1}s (lock held {} ms)",
            manifest.id,
            manifest.tables.len(),
            manifest.total_rows(),
            human_bytes(manifest.raw_bytes()),
            human_bytes(manifest.stored_bytes()),
            seconds,
            manifest.lock_held_ms
        );
        println!("consistent at {}", cp.describe());
    }
    Ok(ExitCode::SUCCESS)
}
