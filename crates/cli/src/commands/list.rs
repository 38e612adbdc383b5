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
                    "partial": m.is_partial(),
                    "scope": m.scope,
                    "scope_description": m.scope_description(),
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
    let scopes: Vec<String> = backups.iter().map(|m| m.scope_description()).collect();
    let width = scopes
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    outln!(
        "{:<24} {:<8} {:<21} {:>7} {:>12} {:>10}  {:<width$}  consistent point",
        "ID",
        "ENGINE",
        "FINISHED",
        "TABLES",
        "ROWS",
        "SIZE",
        "SCOPE"
    );
    for (m, scope) in backups.iter().zip(&scopes) {
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
        outln!(
            "{:<24} {:<8} {:<21} {:>7} {:>12} {:>10}  {:<width$}  {}",
            m.id,
            engine,
            rfc3339(m.finished),
            tables,
            rows,
            human_bytes(m.stored_bytes()),
            scope,
            point
        );
    }
    Ok(ExitCode::SUCCESS)
}
