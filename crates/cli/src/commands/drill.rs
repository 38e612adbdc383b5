//! `holdfast drill [ID|latest]`: restore a backup into a throwaway server (or an empty
//! `--target`), check it, and record the evidence in `drills/<id>.json`; `--all-unverified` /
//! `--sample N` drill the backups without a passing drill, oldest first; `--pitr TIME|random`
//! drills a point-in-time recovery, `--chain [ID]` proves the archive between a backup and the
//! one before it. `holdfast drill report` summarises the records. A failed drill exits 22 (`drill-failed`): the tool worked,
//! the backup did not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use holdfast::drill::status::{report, select_unverified};
use holdfast::drill::{
    archive_time_range, list_records, run_chain_drill, run_drill, run_pitr_drill, DrillOptions,
    PitrPoint,
};
use holdfast::manifest::DrillRecord;
use holdfast::recovery::plan::parse_time;
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
    /// Drill a point-in-time recovery to TIME (RFC 3339 or `YYYY-MM-DD HH:MM:SS` UTC) or to a
    /// random second of the recoverable window: the base restored, the archive replayed, the
    /// server's GTID position checked against the archive's.
    #[arg(long, value_name = "TIME|random", conflicts_with_all = ["backup", "all_unverified", "sample", "chain", "target"])]
    pitr: Option<String>,
    /// The chain proof: restore the backup before ID (default: the newest logical backup),
    /// replay the archive to ID's consistent point and compare every table with ID's manifest.
    #[arg(long, conflicts_with_all = ["all_unverified", "sample", "target"])]
    chain: bool,
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
    if let Some(point) = &args.pitr {
        let point = if point == "random" {
            PitrPoint::Random
        } else {
            PitrPoint::Time(parse_time(point).map_err(|e| e.context("--pitr"))?)
        };
        let record = run_pitr_drill(&repo, point, &opts, progress(global)).await?;
        return finish_one(global, record);
    }
    if args.chain {
        let n = match args.backup.as_deref() {
            Some(which) => repo.resolve(which).await?,
            None => newest_logical(&repo).await?,
        };
        let record = run_chain_drill(&repo, &n, &opts, progress(global)).await?;
        return finish_one(global, record);
    }
    let many = args.all_unverified || args.sample.is_some();
    let ids = if many {
        let ids = repo.backup_ids().await?;
        let records = list_records(&repo).await?;
        select_unverified(&ids, &records, args.sample)
    } else {
        vec![
            repo.resolve_id(args.backup.as_deref().unwrap_or("latest"))
                .await?,
        ]
    };
    let mut records = Vec::new();
    // One manifest in memory at a time.
    for id in &ids {
        let manifest = repo.load_manifest(id).await?;
        let record = run_drill(&repo, &manifest, &opts, progress(global)).await?;
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

/// The newest complete logical backup (what `--chain` proves by default), chosen from the
/// summaries; its manifest is loaded (the proof checks every table it lists).
async fn newest_logical(
    repo: &holdfast::repo::Repository,
) -> Result<holdfast::manifest::BackupManifest> {
    let backups = repo.list_summaries().await?;
    match backups
        .into_iter()
        .rfind(|b| !b.is_physical() && !b.is_partial())
    {
        Some(b) => Ok(repo.load_manifest(&b.id).await?),
        None => bail!(holdfast::Error::usage(
            "the repository has no complete logical backup: the chain proof compares one \
             with the backup before it plus the archive"
        )),
    }
}

fn finish_one(global: &GlobalArgs, record: DrillRecord) -> Result<ExitCode> {
    if global.json {
        print_json(&record)?;
    } else {
        print_record(&record);
    }
    Ok(if record.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DRILL_FAILED)
    })
}

fn print_record(r: &DrillRecord) {
    let verdict = if r.passed() { "PASSED" } else { "FAILED" };
    let what = match (&r.kind, &r.range) {
        (holdfast::manifest::DrillKind::Pitr, Some(g)) => format!(
            "point-in-time drill to {} from {} backup {}",
            g.target, r.engine, r.backup_id
        ),
        (holdfast::manifest::DrillKind::Chain, Some(g)) => format!(
            "chain proof from backup {} to {} backup {}",
            g.base_backup, r.engine, r.backup_id
        ),
        _ => format!("{} backup {}", r.engine, r.backup_id),
    };
    outln!(
        "drill {} of {what}: {verdict} (RTO {:.1}s, checks {:.1}s; {}, {} restored)",
        r.id,
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
    if let Some(g) = &r.range {
        outln!(
            "replayed {} segments, {} transactions: GTID {} -> {} (expected {})",
            g.segments,
            g.transactions,
            g.from_gtid,
            if g.reached_gtid.is_empty() {
                "-"
            } else {
                &g.reached_gtid
            },
            g.expected_gtid
        );
    }
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
    let archive = archive_time_range(&repo).await?;
    let r = report(&records, &ids, archive, since, args.failures);
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
    match &r.archive {
        Some(a) => outln!(
            "archive coverage: {} of the archive ({} to {}) replayed by {} point-in-time \
             drills and {} chain proofs",
            pct(r.archive_coverage),
            human_time(a.from),
            human_time(a.to),
            a.pitr_drills,
            a.chain_drills
        ),
        None => outln!("archive coverage: - (no archive)"),
    }
    for f in &r.failures {
        outln!(
            "failed {} {} backup {} ({}): {}",
            human_time(f.at),
            match f.kind {
                holdfast::manifest::DrillKind::Backup => "drill of",
                holdfast::manifest::DrillKind::Pitr => "point-in-time drill from",
                holdfast::manifest::DrillKind::Chain => "chain proof to",
            },
            f.backup_id,
            f.drill_id,
            f.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
