//! `holdfast init`: create an empty repository.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::repo::Repository;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::print_json;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let storage = args.repo.storage()?;
    let repo = Repository::init(storage.clone()).await?;
    if global.json {
        print_json(
            &json!({ "repository": storage.location(), "id": repo.config().id, "format": repo.config().format }),
        )?;
    } else {
        println!(
            "created repository {} (id {}, format {})",
            storage.location(),
            repo.config().id,
            repo.config().format
        );
    }
    Ok(ExitCode::SUCCESS)
}
