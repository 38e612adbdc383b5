//! `holdfast info [ID|latest]`: the repository (from the backups' summaries: no manifest is
//! read), or one backup in detail (its manifest, every table listed).

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{ceil_second, human_bytes, human_time, human_time_up, print_json, rfc3339};
use holdfast::drill::list_records;
use holdfast::drill::status::{status_of, statuses};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// A backup id or `latest`; without it, the repository is described.
    backup: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let Some(which) = args.backup else {
        let backups = repo.list_summaries().await?;
        let stored: u64 = backups.iter().map(|m| m.stored_bytes).sum();
        let window = holdfast::recovery::window(&repo).await?;
        let policy = holdfast::retention::load_policy(&repo).await?;
        let pins = holdfast::retention::pins(&repo).await?;
        let cfg = repo.config();
        if global.json {
            print_json(&json!({
                "repository": repo.storage().location(),
                "id": cfg.id,
                "format": cfg.format,
                "created": rfc3339(cfg.created),
                "created_by": cfg.created_by,
                "encrypted": repo.is_encrypted(),
                "key_id": cfg.encryption.as_ref().map(|e| &e.key_id),
                "backups": backups.len(),
                "stored_bytes": stored,
                "oldest": backups.first().map(|m| &m.id),
                "newest": backups.last().map(|m| &m.id),
                "recoverable_window": window,
                "retention_policy": policy,
                "pins": pins,
            }))?;
        } else {
            outln!("repository {}", repo.storage().location());
            outln!("  id        {}", cfg.id);
            outln!("  format    {}", cfg.format);
            outln!(
                "  created   {} by {}",
                human_time(cfg.created),
                cfg.created_by
            );
            match &cfg.encryption {
                Some(e) => outln!(
                    "  encrypted yes (age, data key {}, {} key slot(s))",
                    e.key_id,
                    e.slots.len()
                ),
                None => outln!("  encrypted no"),
            }
            outln!("  backups   {} ({})", backups.len(), human_bytes(stored));
            if let (Some(o), Some(n)) = (backups.first(), backups.last()) {
                outln!("  oldest    {}  newest {}", o.id, n.id);
            }
            match (&window.from_time, &window.to_time) {
                (Some(from), Some(to)) if ceil_second(*from) > *to => {
                    // No whole second lies between the backup's point and the archive's end, so
                    // no --to-time reaches it (a backup with no binlog archived after it).
                    outln!(
                        "  recoverable only at backup {}'s point ({}, GTID {}): no binlog is \
                         archived past it (restore the backup itself; `holdfast binlog stream` \
                         makes later points recoverable)",
                        window.from_backup.as_deref().unwrap_or("-"),
                        rfc3339(*from),
                        gtid_or_dash(&window.from_gtid)
                    );
                }
                (Some(from), Some(to)) => {
                    outln!(
                        "  recoverable from {} (backup {}, GTID {})",
                        human_time_up(*from),
                        window.from_backup.as_deref().unwrap_or("-"),
                        gtid_or_dash(&window.from_gtid)
                    );
                    outln!(
                        "              to   {} (GTID {})",
                        human_time(*to),
                        gtid_or_dash(&window.to_gtid)
                    );
                    if let Some(complete) = window.complete_as_of.filter(|c| c > to) {
                        outln!(
                            "              complete as of {} (the stream was caught up: a \
                             --to-time up to it recovers everything archived)",
                            human_time(complete)
                        );
                    }
                }
                _ => outln!("  recoverable nothing yet: no backup with a binlog position"),
            }
            if window.spans.len() > 1 || !window.holes.is_empty() {
                for span in &window.spans {
                    if ceil_second(span.from_time) > span.to_time {
                        outln!(
                            "  recoverable span at {} only (backup {}'s point, GTID {})",
                            rfc3339(span.from_time),
                            span.from_backup,
                            span.from_gtid
                        );
                        continue;
                    }
                    outln!(
                        "  recoverable span {} .. {} (from backup {}, GTID {} .. {})",
                        human_time_up(span.from_time),
                        human_time(span.to_time),
                        span.from_backup,
                        span.from_gtid,
                        span.to_gtid
                    );
                }
                for hole in &window.holes {
                    outln!(
                        "  HOLE after segment {} (GTID {}, {}) before segment {}{}: {}",
                        hole.after_seq,
                        hole.from_gtid,
                        hole.from_time.map(human_time).unwrap_or_else(|| "-".into()),
                        hole.before_seq,
                        if hole.new_run { ", a new run" } else { "" },
                        hole.reason
                    );
                }
            } else {
                for gap in &window.gaps {
                    outln!("  GAP: {gap}");
                }
            }
            match &policy {
                Some(p) => outln!("  retention {}", p.rules.to_flags()),
                None => outln!("  retention none stored (`holdfast policy set`)"),
            }
            for pin in &pins {
                outln!("  pin       {} {}", pin.backup, super::pin::describe(pin));
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let m = repo.resolve(&which).await?;
    let pin = holdfast::retention::load_pin(&repo, &m.id).await?;
    let drill = status_of(&statuses(&list_records(&repo).await?), &m.id);
    if global.json {
        // The manifest, with its scope spelled out (`scope` itself is absent from manifests
        // written before it was recorded).
        let mut value = serde_json::to_value(&m)?;
        value["partial"] = json!(m.is_partial());
        value["scope_description"] = json!(m.scope_description());
        value["pin"] = serde_json::to_value(&pin)?;
        value["drill"] = json!(drill);
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cp = &m.consistent_point;
    outln!("backup {}", m.id);
    outln!(
        "  engine            {} (holdfast {})",
        m.engine,
        m.tool_version
    );
    outln!(
        "  server            {} {} (server_id {}, host {})",
        m.server.flavor,
        m.server.version,
        m.server.server_id,
        m.server.hostname
    );
    outln!("  scope             {}", m.scope_description());
    outln!("  drill             {}", drill.describe());
    if m.is_partial() {
        outln!(
            "                    (restores what it holds; never the base of a point-in-time \
             recovery)"
        );
    }
    outln!(
        "  started/finished  {} / {}",
        human_time(m.started),
        human_time(m.finished)
    );
    outln!(
        "  consistent point  {} at {}",
        cp.describe(),
        human_time(cp.time)
    );
    outln!("  lock held         {} ms", m.lock_held_ms);
    if let Some(pin) = &pin {
        outln!("  pin               {}", super::pin::describe(pin));
    }
    outln!(
        "  size              {} raw, {} stored ({}), {} files",
        human_bytes(m.raw_bytes()),
        human_bytes(m.stored_bytes()),
        m.compression,
        m.files.len()
    );
    if let Some(p) = &m.physical {
        outln!(
            "  physical          {} by {} ({})",
            p.kind,
            p.tool,
            p.tool_version
        );
        if let Some(parent) = &p.parent {
            outln!("  parent            {parent}");
        }
        outln!(
            "  LSN               from {} to {} (last {})",
            p.from_lsn,
            p.to_lsn,
            p.last_lsn
        );
        outln!(
            "  locks             commits blocked {} ms, DDL blocked {} ms, longest wait {} ms",
            p.locks.commits_blocked_ms,
            p.locks.ddl_blocked_ms,
            p.locks.longest_wait_ms
        );
        if let Some(r) = &p.replica_of {
            outln!(
                "  replica of        {} ({}; lag {}s at start)",
                r.primary_host,
                r.raw,
                r.lag_seconds
            );
        }
        outln!("  tool log          {}", p.log_file);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "  users and grants  {}",
        if m.includes_users {
            "included"
        } else {
            "not included"
        }
    );
    outln!("  tables ({}):", m.tables.len());
    for t in &m.tables {
        outln!(
            "    `{}`.`{}`  {} rows in {} chunk(s){}",
            t.database,
            t.table,
            t.row_count,
            t.chunks.len(),
            if t.with_history { ", with history" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A GTID position as printed, `-` for none or an empty one.
fn gtid_or_dash(g: &Option<holdfast::binlog::gtid::GtidPos>) -> String {
    match g.as_ref().map(|g| g.to_string()) {
        Some(s) if !s.is_empty() => s,
        _ => "-".into(),
    }
}
