//! `holdfast notify test --config FILE`: sends a test message to every `[[notifier]]` of the
//! daemon's config (or the one named with `--name`) and prints, per channel, OK or why not.
//! One attempt each, all at once, with each channel's own timeout; no de-duplication or rate
//! limit (a test is always sent). Exits 0 only when every channel delivered, 23
//! (`notify-failed`) when one did not, 2 for a config that does not load or build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use holdfast_daemon::config::Config;
use holdfast_daemon::notify::{build_channel, Alert};
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::output::{outln, print_json};

/// A channel did not take the test message.
pub const NOTIFY_FAILED: u8 = 23;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Send a test message to each configured notifier; exit 0 only if all delivered.
    Test(TestArgs),
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// The daemon's config file (its `[[notifier]]` entries are used).
    #[arg(long)]
    config: PathBuf,
    /// Only the notifier with this name (default: all).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Serialize)]
struct ChannelResult {
    name: String,
    kind: String,
    ok: bool,
    error: Option<String>,
    elapsed_ms: u64,
}

pub async fn run(global: &GlobalArgs, command: Command) -> Result<ExitCode> {
    let Command::Test(args) = command;
    let usage = |m: String| holdfast::Error::usage(m);
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        usage(format!(
            "cannot read the config {}: {e}",
            args.config.display()
        ))
    })?;
    let config: Config =
        toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", args.config.display())))?;
    let notifiers: Vec<_> = config
        .notifier
        .iter()
        .filter(|n| args.name.as_deref().is_none_or(|want| n.name() == want))
        .collect();
    if notifiers.is_empty() {
        return Err(usage(match &args.name {
            Some(n) => format!("{} has no [[notifier]] named `{n}`", args.config.display()),
            None => format!(
                "{} has no [[notifier]] entries; add one (see docs/daemon.md, \"Alerts\")",
                args.config.display()
            ),
        })
        .into());
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (index, notifier) in notifiers.iter().enumerate() {
        let name = notifier.name().to_string();
        let kind = notifier.kind().to_string();
        let built = build_channel(notifier);
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = match built {
                Ok((_, channel)) => channel
                    .deliver(&Alert::test(&name))
                    .await
                    .map_err(|e| e.message),
                Err(e) => Err(format!("not usable: {}", e.message)),
            };
            let result = ChannelResult {
                name,
                kind,
                ok: outcome.is_ok(),
                error: outcome.err(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            };
            (index, result)
        });
    }
    let mut results: Vec<Option<ChannelResult>> = notifiers.iter().map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (index, result) = done.context("a notifier test task failed")?;
        results[index] = Some(result);
    }
    let results: Vec<ChannelResult> = results.into_iter().flatten().collect();
    let failed = results.iter().filter(|r| !r.ok).count();

    if global.json {
        print_json(&serde_json::json!({ "notifiers": results, "failed": failed }))?;
    } else {
        for r in &results {
            match &r.error {
                None => outln!("OK    {} ({}) in {} ms", r.name, r.kind, r.elapsed_ms),
                Some(e) => outln!("FAIL  {} ({}): {e}", r.name, r.kind),
            }
        }
    }
    if failed == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {failed} of {} notifiers did not take the test message",
            results.len()
        );
        Ok(ExitCode::from(NOTIFY_FAILED))
    }
}
