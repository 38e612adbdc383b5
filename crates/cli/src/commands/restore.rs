//! `holdfast restore [ID|latest]`: restore a logical backup into a server; with `--to-time`,
//! `--to-gtid`, `--before-gtid` or `--latest`, a point-in-time recovery (the newest suitable
//! backup, then the binlog archive replayed up to the target).

use std::process::ExitCode;

use anyhow::{bail, Result};
use holdfast::binlog::gtid::Gtid;
use holdfast::engine::logical::restore::{run_restore, RestoreOptions};
use holdfast::recovery::plan::parse_time;
use holdfast::recovery::{recover, ReplayOptions, ReplayPath, Target};

use crate::args::{default_threads, FilterArgs, GlobalArgs, RepoArgs, ServerArgs};
use crate::output::{human_bytes, print_json, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// The backup to restore: an id or `latest`.
    #[arg(default_value = "latest")]
    backup: String,
    /// The server to restore into: mysql://user@host:port/ or mysql://user@localhost/?socket=/path.
    #[arg(long, env = "HOLDFAST_TARGET")]
    target: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Parallel load connections (default: CPU count).
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Replace databases (or, with --tables, tables) that already exist on the target.
    #[arg(long)]
    drop_existing: bool,
    /// Restore database OLD under the name NEW (repeatable): --rename-db shop:shop_copy.
    #[arg(long = "rename-db", value_name = "OLD:NEW")]
    rename_db: Vec<String>,
    /// Write the restore into the target's binary log (off by default).
    #[arg(long)]
    keep_binlog: bool,
    /// Recompute every table's content fingerprint on the target and compare with the backup.
    #[arg(long)]
    verify: bool,
    /// Do not restore users and grants even if the backup has them.
    #[arg(long)]
    no_users: bool,
    /// Point-in-time recovery to this time: every transaction committed at or before it
    /// (`YYYY-MM-DD HH:MM:SS` in UTC, or RFC 3339 with a zone).
    #[arg(long, group = "pitr")]
    to_time: Option<String>,
    /// Point-in-time recovery up to and including this MariaDB GTID (domain-server-seq).
    #[arg(long, group = "pitr")]
    to_gtid: Option<String>,
    /// Point-in-time recovery to just before this GTID (undo an accidental transaction).
    #[arg(long, group = "pitr")]
    before_gtid: Option<String>,
    /// Point-in-time recovery to the end of the binlog archive.
    #[arg(long, group = "pitr")]
    latest: bool,
    /// How a point-in-time recovery replays the archive: `portable` (SQL over one session, any
    /// account that can write the data) or `fast` (the target's own parallel replication, fed
    /// by holdfast as its primary on 127.0.0.1; needs REPLICATION SLAVE ADMIN or SUPER).
    #[arg(long, value_name = "PATH", default_value = "portable")]
    replay: ReplayPath,
    /// With --replay fast: the target's slave_parallel_threads during the replay (0 keeps
    /// the server's setting).
    #[arg(long, value_name = "N", default_value_t = 4)]
    replay_threads: u64,
}

impl Args {
    fn recovery_target(&self) -> Result<Option<Target>> {
        let gtid = |s: &str| s.parse::<Gtid>();
        Ok(
            match (&self.to_time, &self.to_gtid, &self.before_gtid, self.latest) {
                (Some(t), ..) => Some(Target::Time(parse_time(t)?)),
                (_, Some(g), ..) => Some(Target::Gtid(gtid(g)?)),
                (_, _, Some(g), _) => Some(Target::BeforeGtid(gtid(g)?)),
                (.., true) => Some(Target::Latest),
                _ => None,
            },
        )
    }
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let mut renames = Vec::new();
    for r in &args.rename_db {
        let Some((from, to)) = r.split_once(':') else {
            bail!(holdfast::Error::usage(format!(
                "--rename-db `{r}` must be OLD:NEW"
            )));
        };
        renames.push((from.to_string(), to.to_string()));
    }
    let recovery = args.recovery_target()?;
    if recovery.is_some() && args.backup != "latest" {
        bail!(holdfast::Error::usage(
            "a point-in-time recovery chooses its base backup itself; do not name a backup \
             together with --to-time/--to-gtid/--before-gtid/--latest"
        ));
    }
    let repo = args.repo.open().await?;
    let target = args.server.resolve(args.target.as_deref())?;
    let opts = RestoreOptions {
        workers: args.threads.max(1),
        filter: args.filter.filter(),
        renames,
        drop_existing: args.drop_existing,
        keep_binlog: args.keep_binlog,
        verify: args.verify,
        users: !args.no_users,
    };
    if let Some(point) = recovery {
        let replay = ReplayOptions {
            path: args.replay,
            parallel_threads: args.replay_threads,
        };
        let report = recover(&repo, &target, point, &opts, &replay, progress(global)).await?;
        if global.json {
            print_json(&report)?;
        } else {
            println!(
                "restored backup {} into {} and replayed {} archived segments ({} transactions) \
                 up to {}; the server is at GTID {} (set as gtid_slave_pos) in {:.1}s",
                report.base.backup_id,
                report.base.target,
                report.segments_replayed,
                report
                    .replay
                    .as_ref()
                    .map(|r| r.transactions_applied)
                    .or(report.fast.as_ref().map(|f| f.transactions_applied))
                    .unwrap_or(0),
                report.target,
                report.gtid_position,
                report.seconds
            );
            if let Some(incomplete) = report.replay.as_ref().and_then(|r| r.incomplete.as_ref()) {
                println!(
                    "note: the archive ends inside transaction {}; it was not applied",
                    incomplete.gtid
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let manifest = repo.resolve(&args.backup).await?;
    let report = run_restore(&repo, &manifest, &target, &opts, progress(global)).await?;
    if global.json {
        print_json(&report)?;
    } else {
        println!(
            "restored backup {} into {}: {} tables, {} rows, {} in {:.1}s",
            report.backup_id,
            report.target,
            report.tables.len(),
            report.rows,
            human_bytes(report.bytes_loaded),
            report.seconds
        );
        println!(
            "row counts match the backup{}",
            if report.verified {
                "; content fingerprints verified"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
