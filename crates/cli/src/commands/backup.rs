//! `holdfast backup`: a logical or physical backup of a running server.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use holdfast::engine::logical::backup::{run_backup, BackupOptions};
use holdfast::engine::physical::{run_physical_backup, PhysicalBackupOptions};
use holdfast::manifest::BackupManifest;
use serde_json::json;

use super::expire;
use crate::args::{
    default_threads, parse_duration, parse_size, FilterArgs, GlobalArgs, RepoArgs, ServerArgs,
};
use crate::output::outln;
use crate::output::{count, human_bytes, print_json, progress};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Rows as TSV through N connections in one snapshot (any server, any subset).
    Logical,
    /// The server's files via mariabackup / xtrabackup (whole server, full or incremental).
    Physical,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The server to back up: mysql://user@host:port/ or mysql://user@localhost/?socket=/path.
    #[arg(long, env = "HOLDFAST_SOURCE")]
    source: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// logical (default) or physical.
    #[arg(long, value_enum, default_value = "logical")]
    engine: Engine,
    /// Physical only: copy only pages changed since the parent backup.
    #[arg(long)]
    incremental: bool,
    /// Physical incrementals: the parent backup (default: the newest physical backup).
    #[arg(long, requires = "incremental")]
    parent: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Parallel dump connections / compression threads (default: CPU count).
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
    /// Give up, releasing everything, if a server lock is waited for or held longer than this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lock_timeout: std::time::Duration,
    /// Logical: fail (exit 10) when the server sends nothing for this long while a dump
    /// connection waits for rows (a hung server or network), instead of hanging.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    stall_timeout: std::time::Duration,
    /// Physical, from a replica: the most replication lag a backup starts with.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    max_replica_lag: std::time::Duration,
    /// Physical, from a replica: how long to wait for the lag to come down before refusing.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    replica_lag_wait: std::time::Duration,
    /// After a successful backup, apply the retention policy stored with `holdfast policy set`.
    #[arg(long)]
    expire: bool,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    if args.engine == Engine::Logical && args.incremental {
        bail!(holdfast::Error::usage(
            "--incremental needs --engine physical (logical backups are always full)"
        ));
    }
    if args.engine == Engine::Physical {
        let f = &args.filter;
        let filtered = !f.databases.is_empty()
            || !f.exclude_databases.is_empty()
            || !f.tables.is_empty()
            || !f.exclude_tables.is_empty();
        if filtered || args.users {
            bail!(holdfast::Error::usage(
                "a physical backup copies the whole server (users and grants included); \
                 --databases, --tables, their --exclude-* forms and --users apply to \
                 --engine logical"
            ));
        }
    }
    let repo = args.repo.open().await?;
    let source = args.server.resolve(args.source.as_deref())?;
    // Checked before the backup: a missing or invalid stored policy fails nothing half-done.
    let expire_policy = if args.expire {
        if holdfast::retention::load_policy(&repo).await?.is_none() {
            bail!(holdfast::Error::usage(format!(
                "--expire applies the stored retention policy, and {} has none; store one \
                 with `holdfast policy set` (or run `holdfast expire` with rule flags)",
                repo.storage().location()
            )));
        }
        Some(expire::resolve_policy(&repo, &Default::default()).await?)
    } else {
        None
    };
    let started = Instant::now();
    let manifest = match args.engine {
        Engine::Logical => {
            let opts = BackupOptions {
                workers: args.threads.max(1),
                chunk_bytes: args.chunk_size,
                compression_level: args.compress_level,
                filter: args.filter.filter(),
                with_users: args.users,
                lock_timeout: args.lock_timeout,
                stall_timeout: Some(args.stall_timeout),
                ..Default::default()
            };
            run_backup(&repo, &source, &opts, progress(global)).await?
        }
        Engine::Physical => {
            let opts = PhysicalBackupOptions {
                incremental: args.incremental,
                parent: args.parent.clone(),
                compression_level: args.compress_level,
                threads: args.threads.max(1),
                lock_timeout: args.lock_timeout,
                max_replica_lag: args.max_replica_lag,
                replica_lag_wait: args.replica_lag_wait,
            };
            run_physical_backup(&repo, &source, &opts, progress(global)).await?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let expired = match expire_policy {
        Some((spec, policy)) => {
            let progress = progress(global);
            Some(expire::expire(&repo, spec, &policy, false, &*progress).await?)
        }
        None => None,
    };
    report(
        global,
        &manifest,
        &source.display(),
        seconds,
        expired.as_ref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn report(
    global: &GlobalArgs,
    m: &BackupManifest,
    source: &str,
    seconds: f64,
    expired: Option<&expire::Outcome>,
) -> Result<()> {
    let cp = &m.consistent_point;
    let mib_per_s = m.raw_bytes() as f64 / 1048576.0 / seconds.max(1e-9);
    if global.json {
        let mut v = json!({
            "id": m.id,
            "engine": m.engine,
            "source": source,
            "tables": m.tables.len(),
            "rows": m.total_rows(),
            "raw_bytes": m.raw_bytes(),
            "stored_bytes": m.stored_bytes(),
            "files": m.files.len(),
            "seconds": seconds,
            "throughput_mib_s": mib_per_s,
            "lock_held_ms": m.lock_held_ms,
            "consistent_point": cp,
        });
        if let Some(p) = &m.physical {
            v["physical"] = serde_json::to_value(p)?;
        }
        if let Some(o) = expired {
            v["expire"] = expire::to_json(o);
        }
        return print_json(&v);
    }
    match &m.physical {
        Some(p) => {
            outln!(
                "physical {} backup {} done{}: {} copied -> {} stored in {:.1}s ({:.0} MiB/s)",
                p.kind,
                m.id,
                p.parent
                    .as_ref()
                    .map(|id| format!(" (on top of {id})"))
                    .unwrap_or_default(),
                human_bytes(m.raw_bytes()),
                human_bytes(m.stored_bytes()),
                seconds,
                mib_per_s
            );
            outln!(
                "LSN {} -> {}; commits blocked {} ms, DDL blocked {} ms, longest lock wait {} ms",
                p.from_lsn,
                p.to_lsn,
                p.locks.commits_blocked_ms,
                p.locks.ddl_blocked_ms,
                p.locks.longest_wait_ms
            );
            if let Some(r) = &p.replica_of {
                outln!("taken from a replica of {}: {}", r.primary_host, r.raw);
            }
        }
        None => outln!(
            "backup {} done: {}, {}, {} raw -> {} stored in {:.1}s (lock held {} ms)",
            m.id,
            count(m.tables.len() as u64, "table", None),
            count(m.total_rows(), "row", None),
            human_bytes(m.raw_bytes()),
            human_bytes(m.stored_bytes()),
            seconds,
            m.lock_held_ms
        ),
    }
    outln!("consistent at {}", cp.describe());
    if let Some(o) = expired {
        outln!("");
        expire::print_text(o);
    }
    Ok(())
}
