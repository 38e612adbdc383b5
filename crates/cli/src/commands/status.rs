//! `holdfast status`: are we covered? Per server the newest complete backup, the binlog
//! archive and its streamer, the recoverable window with its holes; problems first. Exit 0
//! when covered, 21 (`not-covered`) when not: a Nagios/cron check. The judgement is
//! `holdfast::status::assess` (docs/status.md).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use holdfast::repo::Repository;
use holdfast::status::{
    assess, gather, gather_without_key, human_duration, state_name, BackupSummary, Coverage,
    Streamer, Thresholds,
};
use holdfast::{Error, ErrorKind};
use time::OffsetDateTime;

use crate::args::{parse_duration, GlobalArgs, RepoArgs};
use crate::output::{human_time, human_time_up, outln, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// Not covered when a server's newest complete backup is older than this.
    #[arg(long, default_value = "26h", value_parser = parse_duration)]
    max_backup_age: Duration,
    /// Not covered when the binlog archive is complete only as of longer ago than this.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    max_archive_lag: Duration,
    /// Backups only: a repository without a binlog archive is not a problem.
    #[arg(long)]
    no_archive: bool,
    /// Encrypted repository, no key: judge only what the storage listing shows (backup ids
    /// and ages, segment count, whether a stream record exists) and name what was not checked.
    #[arg(long)]
    no_key: bool,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let thresholds = Thresholds {
        max_backup_age: args.max_backup_age,
        max_archive_lag: args.max_archive_lag,
        require_archive: !args.no_archive,
    };
    let storage = args.repo.storage()?;
    let config = Repository::read_config(&*storage).await?;
    let inputs = if args.no_key && config.encryption.is_some() {
        gather_without_key(&*storage, &config.id).await?
    } else {
        let repo = args.repo.open().await.map_err(|e| {
            match e.chain().find_map(|c| c.downcast_ref::<Error>()) {
                Some(h) if h.kind() == ErrorKind::Key => Error::new(
                    ErrorKind::Key,
                    format!(
                        "{}; or run `holdfast status --no-key` to check only what is readable \
                         without it (backup ages; see docs/status.md)",
                        h.message()
                    ),
                )
                .into(),
                _ => e,
            }
        })?;
        gather(&repo).await?
    };
    let coverage = assess(&inputs, &thresholds, OffsetDateTime::now_utc());
    if global.json {
        print_json(&coverage)?;
    } else {
        print_report(&coverage);
    }
    if coverage.covered {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: not covered: {} problem(s), listed first above",
            coverage.problems.len()
        );
        Ok(ExitCode::from(ErrorKind::NotCovered.exit_code()))
    }
}

fn print_report(c: &Coverage) {
    if c.covered {
        outln!(
            "covered (backups newer than {}, archive within {}{})",
            human_duration(Duration::from_secs(c.max_backup_age_seconds)),
            human_duration(Duration::from_secs(c.max_archive_lag_seconds)),
            if c.unchecked.is_empty() {
                ""
            } else {
                "; some checks were not made"
            }
        );
    } else {
        outln!("NOT COVERED: {} problem(s)", c.problems.len());
    }
    for p in &c.problems {
        match &p.server {
            Some(s) => outln!("  problem  {s}: {}", p.message),
            None => outln!("  problem  {}", p.message),
        }
    }
    for p in &c.warnings {
        match &p.server {
            Some(s) => outln!("  warning  {s}: {}", p.message),
            None => outln!("  warning  {}", p.message),
        }
    }
    for u in &c.unchecked {
        outln!("  not checked  {u}");
    }
    for s in &c.servers {
        outln!(
            "server {}{}",
            s.name,
            if s.archived {
                " (its binlog is archived)"
            } else {
                ""
            }
        );
        match &s.newest_complete {
            Some(b) => outln!("  newest complete backup  {}", describe_backup(b)),
            None => outln!("  newest complete backup  none"),
        }
        if let Some(b) = &s.newest {
            outln!("  newest backup           {}", describe_backup(b));
        }
        outln!("  backups                 {}", s.backups);
    }
    let a = &c.archive;
    outln!("binlog archive");
    let streamer = match a.streamer {
        Streamer::Alive => "alive",
        Streamer::NotSeen => "NOT SEEN",
        Streamer::Stopped => "STOPPED",
        Streamer::None => "none (no stream record in this repository)",
        Streamer::Copied => "none here (the stream record was copied from another repository)",
        Streamer::Unknown => "unknown (the stream record is encrypted)",
    };
    match (a.state, a.record_written) {
        (Some(state), Some(written)) => outln!(
            "  streamer       {streamer}: {} (record written {}, {} ago; every {}s; pid {} on {}, \
             reading {})",
            state_name(state),
            human_time(written),
            human_duration(Duration::from_secs(a.record_age_seconds.unwrap_or(0))),
            a.interval_seconds.unwrap_or(0),
            a.streamer_pid.unwrap_or(0),
            a.streamer_host.as_deref().unwrap_or("-"),
            a.source.as_deref().unwrap_or("-")
        ),
        _ => outln!("  streamer       {streamer}"),
    }
    if let Some(e) = &a.last_error {
        outln!("  last error     {e}");
    }
    match a.complete_as_of {
        Some(t) => outln!(
            "  complete as of {} (lag {})",
            human_time(t),
            human_duration(Duration::from_secs(a.lag_seconds.unwrap_or(0)))
        ),
        None => outln!("  complete as of -"),
    }
    if let Some(t) = a.last_event_time {
        outln!("  last event     {}", human_time(t));
    }
    if let Some(t) = a.caught_up_as_of {
        outln!("  caught up at   {}", human_time(t));
    }
    if let Some(g) = &a.gtid_state {
        outln!("  GTID position  {g}");
    }
    outln!(
        "  segments       {}{}",
        a.segments,
        a.last_seq
            .map(|s| format!(" (newest {s})"))
            .unwrap_or_default()
    );
    let Some(w) = &c.window else {
        return;
    };
    match (w.from_time, w.to_time) {
        (Some(from), Some(to)) => outln!(
            "recoverable from {} (backup {}) to {}",
            human_time_up(from),
            w.from_backup.as_deref().unwrap_or("-"),
            human_time(to)
        ),
        _ => outln!("recoverable nothing yet: no complete backup with a binlog position"),
    }
    if w.spans.len() > 1 {
        for span in &w.spans {
            outln!(
                "  span {} .. {} (from backup {})",
                human_time_up(span.from_time),
                human_time(span.to_time),
                span.from_backup
            );
        }
    }
    for hole in &w.holes {
        outln!(
            "  hole after segment {} (GTID {}) before segment {}{}",
            hole.after_seq,
            hole.from_gtid,
            hole.before_seq,
            if hole.new_run { ", a new run" } else { "" }
        );
    }
}

fn describe_backup(b: &BackupSummary) -> String {
    let mut text = format!(
        "{} ({}{}, {} old, {})",
        b.id,
        b.engine.as_deref().unwrap_or("engine unknown"),
        if b.partial == Some(true) {
            ", partial"
        } else {
            ""
        },
        human_duration(Duration::from_secs(b.age_seconds)),
        human_time(b.time)
    );
    text.push_str(&match b.verified {
        Some(t) => format!("; verified {}", human_time(t)),
        None => "; verified: not recorded".to_string(),
    });
    text.push_str(&match b.drilled {
        Some(t) => format!("; drilled {}", human_time(t)),
        None => "; drilled: never".to_string(),
    });
    text
}
