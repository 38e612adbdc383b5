//! `holdfast policy set|show|clear`: the retention policy stored in the repository
//! (`policy.json`), which `holdfast expire` without rule flags and `holdfast backup --expire`
//! apply.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::retention;
use serde_json::json;

use super::expire::PolicyArgs;
use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{print_json, rfc3339};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Store a retention policy (replacing the stored one); validated first.
    Set(SetArgs),
    /// Show the stored policy.
    Show(RepoOnly),
    /// Remove the stored policy (nothing is expired without one).
    Clear(RepoOnly),
}

#[derive(clap::Args)]
pub struct SetArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(clap::Args)]
pub struct RepoOnly {
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(global: &GlobalArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Set(a) => {
            let repo = a.repo.open().await?;
            let lock = repo.lock("policy set").await?;
            let stored = retention::store_policy(&repo, &lock, a.policy.spec()).await;
            lock.release().await?;
            let stored = stored?;
            if global.json {
                print_json(&json!({ "policy": stored }))?;
            } else {
                outln!("stored retention policy: {}", stored.rules.to_flags());
                outln!("`holdfast expire --dry-run` shows what it would remove");
            }
        }
        Command::Show(a) => {
            let repo = a.repo.open().await?;
            let stored = retention::load_policy(&repo).await?;
            if global.json {
                print_json(&json!({ "policy": stored }))?;
            } else {
                match stored {
                    Some(p) => {
                        outln!("retention policy: {}", p.rules.to_flags());
                        outln!("set {} by {}", rfc3339(p.set), p.set_by);
                        if p.rules.timezone.is_none() {
                            outln!("time zone: the local one of whoever applies it");
                        }
                    }
                    None => outln!(
                        "no retention policy stored in {}; `holdfast policy set` stores one",
                        repo.storage().location()
                    ),
                }
            }
        }
        Command::Clear(a) => {
            let repo = a.repo.open().await?;
            let lock = repo.lock("policy clear").await?;
            let cleared = retention::clear_policy(&repo, &lock).await;
            lock.release().await?;
            let cleared = cleared?;
            if global.json {
                print_json(&json!({ "cleared": cleared }))?;
            } else if cleared {
                outln!("removed the stored retention policy");
            } else {
                outln!("no retention policy was stored");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
