//! `holdfast expire`: apply a retention policy (flags, or the one stored with `holdfast policy
//! set`). `--dry-run` prints the plan, made from the backups' summaries, and changes nothing;
//! otherwise the plan is made from the manifests (a few at a time) and carried out under the
//! exclusive lock (see `holdfast::retention` for the order of deletion).

use std::process::ExitCode;

use anyhow::Result;
use holdfast::manifest::PolicySpec;
use holdfast::progress::Progress;
use holdfast::repo::{RepoLock, Repository};
use holdfast::retention::{self, ExpireReport, Plan, Policy, SummaryMismatch};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{human_bytes, human_time, print_json, progress, rfc3339, unix_time};

/// The rules of a retention policy, shared by `expire` and `policy set`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Keep the newest N backups, whatever their engine (an incremental keeps its chain).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N hours that have backups.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the last N days that have backups.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have backups.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have backups.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every backup finished within DURATION of the newest backup (14d, 36h, 2w, 6mo, 1y).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every second of the last DURATION restorable: the newest complete backup at or
    /// before its start, and every binlog segment from that backup's point on.
    #[arg(long, value_name = "DURATION")]
    pub recovery_window: Option<String>,
    /// Always keep the newest N backups (default 1; 0 is refused).
    #[arg(long, value_name = "N")]
    pub min_keep: Option<u32>,
    /// IANA time zone of the hourly/daily/weekly/monthly/yearly buckets and of calendar
    /// durations (default: the local zone).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
}

impl PolicyArgs {
    pub fn spec(&self) -> PolicySpec {
        PolicySpec {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.clone(),
            recovery_window: self.recovery_window.clone(),
            min_keep: self.min_keep,
            timezone: self.timezone.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print the plan (every backup and binlog range, kept or removed, and why); change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// A plan and, unless it was a dry run, what carrying it out removed.
pub struct Outcome {
    pub spec: PolicySpec,
    pub plan: Plan,
    pub report: Option<ExpireReport>,
    /// Backups whose summary did not describe their manifest (the plan used the manifest).
    pub summary_mismatches: Vec<SummaryMismatch>,
}

/// The policy to apply: the rule flags when any is given, else the stored policy (with
/// `--min-keep` / `--timezone` from the flags over it); neither is a usage error.
pub async fn resolve_policy(repo: &Repository, flags: &PolicySpec) -> Result<(PolicySpec, Policy)> {
    let spec = if flags.has_rule() {
        flags.clone()
    } else {
        match retention::load_policy(repo).await? {
            Some(stored) => flags.clone().or(&stored.rules),
            None => flags.clone(),
        }
    };
    let policy = Policy::from_spec(&spec)?;
    Ok((spec, policy))
}

/// Plans (and unless `dry_run`, carries out) `policy` on `repo`.
pub async fn expire(
    repo: &Repository,
    spec: PolicySpec,
    policy: &Policy,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let now = OffsetDateTime::now_utc();
    if dry_run {
        let (plan, _) = retention::plan(repo, policy, now).await?;
        return Ok(Outcome {
            spec,
            plan,
            report: None,
            summary_mismatches: Vec::new(),
        });
    }
    let lock = repo.lock("expire").await?;
    // A compaction (the command, or a running stream's own) rewrites segments and removes what
    // no entry references: it must not run while expire removes entries and their objects.
    let compaction = match RepoLock::acquire_named(
        repo.storage().clone(),
        holdfast::binlog::compact::COMPACT_LOCK,
        "expire",
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            lock.release().await?;
            return Err(e.into());
        }
    };
    let done = async {
        let debris = retention::remove_expire_debris(repo, &lock).await?;
        if !debris.is_empty() {
            progress.note(&format!(
                "removed debris of an interrupted expire: {} binlog object(s), {} pin(s)",
                debris.segment_objects.len(),
                debris.pins.len()
            ));
        }
        // From the manifests, not the summaries the dry run reads: a damaged summary must not
        // decide a deletion.
        let (plan, segments, mismatches) = retention::plan_checked(repo, policy, now).await?;
        let report = retention::execute(repo, &lock, &plan, &segments, progress).await?;
        Ok::<_, holdfast::Error>((plan, report, mismatches))
    }
    .await;
    let released = compaction.release().await;
    lock.release().await?;
    released?;
    let (plan, report, summary_mismatches) = done?;
    Ok(Outcome {
        spec,
        plan,
        report: Some(report),
        summary_mismatches,
    })
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let (spec, policy) = resolve_policy(&repo, &args.policy.spec()).await?;
    let progress = progress(global);
    let outcome = expire(&repo, spec, &policy, args.dry_run, &*progress).await?;
    if global.json {
        print_json(&to_json(&outcome))?;
    } else {
        print_text(&outcome);
    }
    Ok(ExitCode::SUCCESS)
}

/// The outcome as the JSON report of `expire --json` (also embedded by `backup --expire`).
pub fn to_json(o: &Outcome) -> Value {
    let p = &o.plan;
    json!({
        "dry_run": o.report.is_none(),
        "policy": o.spec,
        "timezone": p.timezone,
        "now": rfc3339(p.now),
        "backups": p.backups,
        "binlog": p.segments,
        "warnings": p.warnings,
        "backups_removed": p.removed_backups().count(),
        "backup_bytes_freed": p.backup_bytes_freed(),
        "segments_removed": p.removed_ranges().map(|r| r.segments).sum::<usize>(),
        "segment_bytes_freed": p.segment_bytes_freed(),
        "seconds": o.report.as_ref().map(|r| r.seconds),
        "summary_mismatches": o.summary_mismatches,
    })
}

/// The plan as a table, then the binlog ranges, what was (or would be) freed and warnings.
pub fn print_text(o: &Outcome) {
    let p = &o.plan;
    outln!(
        "policy {} (time zone {}; now {})",
        o.spec.to_flags(),
        p.timezone,
        human_time(p.now)
    );
    if p.backups.is_empty() {
        outln!("no backups");
    } else {
        outln!(
            "{:<24} {:<20} {:<9} {:>10} {:<6}  REASONS",
            "BACKUP",
            "FINISHED",
            "KIND",
            "SIZE",
            "ACTION"
        );
    }
    for b in &p.backups {
        let kind = match (b.engine.as_str(), b.kind) {
            ("physical", retention::Kind::Incremental) => "phys-inc",
            (e, _) => e,
        };
        outln!(
            "{:<24} {:<20} {:<9} {:>10} {:<6}  {}",
            b.id,
            human_time(b.finished),
            kind,
            human_bytes(b.bytes),
            if b.keep { "keep" } else { "remove" },
            b.reasons.join("; ")
        );
    }
    if !p.segments.is_empty() {
        outln!("");
        outln!(
            "{:<17} {:<20} {:<20} {:>8} {:>10} {:<6}  REASONS",
            "BINLOG SEGMENTS",
            "FIRST EVENT",
            "LAST EVENT",
            "COUNT",
            "SIZE",
            "ACTION"
        );
        for r in &p.segments {
            outln!(
                "{:<17} {:<20} {:<20} {:>8} {:>10} {:<6}  {}",
                if r.first_seq == r.last_seq {
                    r.first_seq.to_string()
                } else {
                    format!("{}-{}", r.first_seq, r.last_seq)
                },
                unix_time(r.first_event_time),
                unix_time(r.last_event_time),
                r.segments,
                human_bytes(r.bytes),
                if r.keep { "keep" } else { "remove" },
                r.reasons.join("; ")
            );
        }
    }
    let verb = if o.report.is_some() {
        "removed"
    } else {
        "would remove"
    };
    outln!("");
    outln!(
        "{verb} {} backup(s) ({}) and {} binlog segment(s) ({}){}",
        p.removed_backups().count(),
        human_bytes(p.backup_bytes_freed()),
        p.removed_ranges().map(|r| r.segments).sum::<usize>(),
        human_bytes(p.segment_bytes_freed()),
        if o.report.is_none() {
            "; dry run, nothing changed"
        } else {
            ""
        }
    );
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    for m in &o.summary_mismatches {
        eprintln!(
            "warning: the summary of backup {} {}; planned from its manifest instead (`holdfast \
             verify {}` reports it)",
            m.backup,
            m.summary.describe(),
            m.backup
        );
    }
}
