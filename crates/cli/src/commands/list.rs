//! `holdfast list`: the committed backups, oldest first.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{human_bytes, print_json, rfc3339};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let backups = repo.list_backups().await?;
    let pins = holdfast::retention::pins(&repo).await?;
    let pin_of = |id: &str| pins.iter().find(|p| p.backup == id);
    if global.json {
        let rows: Vec<_> = backups
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "engine": m.engine,
                    "started": rfc3339(m.started),
                    "finished": rfc3339(m.finished),
                    "server": m.server,
                    "tables": m.tables.len(),
                    "rows": m.total_rows(),
                    "raw_bytes": m.raw_bytes(),
                    "stored_bytes": m.stored_bytes(),
                    "consistent_point": m.consistent_point,
                    "physical": m.physical,
                    "pin": pin_of(&m.id),
                })
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if backups.is_empty() {
        outln!("no backups in {}", repo.storage().location());
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<24} {:<8} {:<21} {:>7} {:>12} {:>10}  consistent point",
        "ID",
        "ENGINE",
        "FINISHED",
        "TABLES",
        "ROWS",
        "SIZE"
    );
    for m in &backups {
        let mut point = m.consistent_point.describe();
        let (engine, tables, rows) = match &m.physical {
            Some(p) => {
                if let Some(parent) = &p.parent {
                    point = format!("{point}; on top of {parent}");
                }
                let kind = if p.parent.is_some() {
                    "phys-inc"
                } else {
                    "physical"
                };
                (kind.to_string(), "-".to_string(), "-".to_string())
            }
            None => (
                m.engine.clone(),
                m.tables.len().to_string(),
                m.total_rows().to_string(),
            ),
        };
        if let Some(pin) = pin_of(&m.id) {
            point = format!("{point}; {}", super::pin::describe(pin));
        }
        outln!(
            "{:<24} {:<8} {:<21} {:>7} {:>12} {:>10}  {}",
            m.id,
            engine,
            rfc3339(m.finished),
            tables,
            rows,
            human_bytes(m.stored_bytes()),
            point
        );
    }
    Ok(ExitCode::SUCCESS)
}
