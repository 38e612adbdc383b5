//! `holdfast drill [ID|latest]`: restore a backup into a throwaway server (or an empty
//! `--target`), check it, and record the evidence in `drills/<id>.json`; `--all-unverified` /
//! `--sample N` drill the backups without a passing drill, oldest first. `holdfast drill
//! report` summarises the records. A failed drill exits 22 (`drill-failed`): the tool worked,
//! the backup did not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use holdfast::drill::status::{report, select_unverified};
use holdfast::drill::{list_records, run_drill, DrillOptions};
use holdfast::manifest::DrillRecord;
use holdfast::sandbox::{parse_size, SandboxOptions, DEFAULT_MEMORY};
use time::OffsetDateTime;

use crate::args::{default_threads, parse_duration, GlobalArgs, RepoArgs, ServerArgs};
use crate::output::{count, human_bytes, human_time, outln, print_json, print_json_list, progress};

/// The exit code of a drill whose backup failed a check (docs/exit-codes.md).
pub const DRILL_FAILED: u8 = 22;

/// The positional word that asks for the report instead of a drill (backup ids look like
/// `20261121T040000Z-1a2b`, never like this).
const REPORT: &str = "report";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The backup to drill: an id or `latest` (default); or `report`: the drill report.
    #[arg(value_name = "ID|latest|report")]
    backup: Option<String>,
    /// `report`: only drills finished within this long before now (e.g. 30d, 12h).
    #[arg(long, value_name = "DUR")]
    since: Option<String>,
    /// `report`: how many of the newest failures to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    failures: usize,
    /// Drill every backup without a passing drill (never drilled first, then failed; oldest
    /// first).
    #[arg(long, conflicts_with = "backup")]
    all_unverified: bool,
    /// Like --all-unverified, but at most N backups.
    #[arg(long, value_name = "N", conflicts_with_all = ["backup", "all_unverified"])]
    sample: Option<usize>,
    /// Logical backups: restore into this (empty) server instead of a throwaway one:
    /// mysql://user@host:port/ or mysql://user@localhost/?socket=/path.
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// With --target: replace databases that already exist there.
    #[arg(long, requires = "target")]
    drop_existing: bool,
    /// The throwaway server: a mariadbd/mysqld binary or a base directory (default: PATH,
    /// /usr/sbin, …); it must match the backup's flavor and major version.
    #[arg(long, value_name = "PATH", conflicts_with = "target")]
    server_binary: Option<PathBuf>,
    /// The throwaway server's buffer pool (e.g. 256M, 1G).
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MEMORY, conflicts_with = "target")]
    drill_memory: String,
    /// Run the throwaway server at normal CPU and I/O priority (default: nice 10, lowest
    /// best-effort I/O class).
    #[arg(long, conflicts_with = "target")]
    no_nice: bool,
    /// Parallel restore connections (default: CPU count).
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    if args.backup.as_deref() == Some(REPORT) {
        return run_report(global, args).await;
    }
    if args.since.is_some() {
        bail!(holdfast::Error::usage(
            "--since belongs to `holdfast drill report`"
        ));
    }
    let repo = args.repo.open().await?;
    let opts = DrillOptions {
        server_binary: args.server_binary.clone(),
        sandbox: SandboxOptions {
            memory: parse_size(&args.drill_memory).map_err(|e| e.context("--drill-memory"))?,
            background: !args.no_nice,
            ..SandboxOptions::default()
        },
        target: match &args.target {
            Some(url) => Some(args.server.resolve(Some(url))?),
            None => None,
        },
        drop_existing: args.drop_existing,
        workers: args.threads.max(1),
    };
    let many = args.all_unverified || args.sample.is_some();
    let manifests = if many {
        let ids = repo.backup_ids().await?;
        let records = list_records(&repo).await?;
        let chosen = select_unverified(&ids, &records, args.sample);
        let mut out = Vec::new();
        for id in chosen {
            out.push(repo.load_manifest(&id).await?);
        }
        out
    } else {
        vec![
            repo.resolve(args.backup.as_deref().unwrap_or("latest"))
                .await?,
        ]
    };
    let mut records = Vec::new();
    for manifest in &manifests {
        let record = run_drill(&repo, manifest, &opts, progress(global)).await?;
        if !global.json {
            print_record(&record);
        }
        records.push(record);
    }
    if global.json {
        if many {
            print_json_list("drills", &records)?;
        } else if let Some(r) = records.first() {
            print_json(r)?;
        }
    } else if many && records.is_empty() {
        outln!("every backup has a passing drill: nothing to do");
    }
    Ok(if records.iter().all(DrillRecord::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DRILL_FAILED)
    })
}

fn print_record(r: &DrillRecord) {
    let verdict = if r.passed() { "PASSED" } else { "FAILED" };
    outln!(
        "drill {} of {} backup {}: {verdict} (RTO {:.1}s, checks {:.1}s; {}, {} restored)",
        r.id,
        r.engine,
        r.backup_id,
        r.rto_seconds,
        r.check_seconds,
        count(r.rows_restored, "row", None),
        human_bytes(r.bytes_restored)
    );
    outln!(
        "server: {} {}{}",
        r.server.kind,
        r.server.version,
        r.server
            .peak_memory_bytes
            .map(|b| format!(", peak memory {}", human_bytes(b)))
            .unwrap_or_default()
    );
    let passed = r.checks.iter().filter(|c| c.passed).count();
    outln!("{passed} of {} checks passed", r.checks.len());
    for c in r.checks.iter().filter(|c| !c.passed) {
        outln!("  FAILED {}: {}", c.name, c.detail);
    }
}

async fn run_report(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let since = match &args.since {
        Some(d) => {
            let dur =
                parse_duration(d).map_err(|e| holdfast::Error::usage(format!("--since: {e}")))?;
            Some(OffsetDateTime::now_utc() - dur)
        }
        None => None,
    };
    let ids = repo.backup_ids().await?;
    let records = list_records(&repo).await?;
    let r = report(&records, &ids, since, args.failures);
    if global.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}s"));
    outln!(
        "drills{}: {} ({} passed, {} failed), success rate {}",
        since
            .map(|s| format!(" since {}", human_time(s)))
            .unwrap_or_default(),
        r.drills,
        r.passed,
        r.failed,
        pct(r.success_rate)
    );
    outln!(
        "RTO: mean {}, p95 {}; trend (oldest first): {}",
        secs(r.rto_mean_seconds),
        secs(r.rto_p95_seconds),
        if r.rto_trend_seconds.is_empty() {
            "-".to_string()
        } else {
            r.rto_trend_seconds
                .iter()
                .map(|s| format!("{s:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
    outln!(
        "coverage: {} of {} backups verified ({})",
        r.backups_verified,
        r.backups,
        pct(r.coverage)
    );
    for f in &r.failures {
        outln!(
            "failed {} backup {} ({}): {}",
            human_time(f.at),
            f.backup_id,
            f.drill_id,
            f.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
