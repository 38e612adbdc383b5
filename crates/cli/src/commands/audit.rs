//! `holdfast audit verify|export --config FILE`: the daemon's hash-chained audit log.
//! `verify` walks the whole chain and exits 0 when it holds, 24 (`audit-broken`) naming the
//! first entry that does not (removed, altered, reordered); `export` prints entries as JSON
//! lines, oldest first (for ELK, Loki, or an append-only archive that makes the chain's
//! evidence independent of the store).

use std::process::ExitCode;

use anyhow::Result;
use holdfast::Error;
use holdfast_daemon::audit;
use holdfast_daemon::store::AuditQuery;

use crate::args::GlobalArgs;
use crate::output::{outln, print_json};
use crate::state;

/// The chain does not verify.
pub const AUDIT_BROKEN: u8 = 24;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify the hash chain; exit 0 when it holds, 24 naming the first bad entry.
    Verify(super::user::ConfigArg),
    /// Print the entries as JSON lines, oldest first.
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Only entries at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub config: super::user::ConfigArg,
}

pub async fn run(global: &GlobalArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Verify(c) => {
            let store = state::open(&c.config).await?;
            let report = audit::verify_store(store.as_ref())
                .await
                .map_err(state::store_error)?;
            if global.json {
                print_json(&serde_json::json!({
                    "valid": report.broken.is_none(),
                    "entries": report.entries,
                    "head": report.head,
                    "first_bad_seq": report.broken.as_ref().map(|b| b.seq),
                    "problem": report.broken.as_ref().map(|b| b.to_string()),
                }))?;
            }
            match &report.broken {
                None => {
                    if !global.json {
                        outln!(
                            "audit log verifies: {} entries, head {}",
                            report.entries,
                            report.head.map_or("none".into(), |h| h.to_string())
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    eprintln!(
                        "error: the audit log does not verify at entry {}: {b} ({} entries \
                         verified before it)",
                        b.seq, report.entries
                    );
                    Ok(ExitCode::from(AUDIT_BROKEN))
                }
            }
        }
        Command::Export(a) => {
            let since = a
                .since
                .as_deref()
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| t.timestamp_millis())
                        .map_err(|_| {
                            Error::usage(format!(
                                "--since {s:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z"
                            ))
                        })
                })
                .transpose()?;
            let store = state::open(&a.config.config).await?;
            let mut after = None;
            loop {
                let page = store
                    .audit(&AuditQuery {
                        since,
                        after_seq: after,
                        limit: 1000,
                        newest_first: false,
                        before_seq: None,
                    })
                    .await
                    .map_err(state::store_error)?;
                let Some(last) = page.last() else { break };
                after = Some(last.seq);
                for r in &page {
                    outln!("{}", audit::to_json(r));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
