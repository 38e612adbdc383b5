//! `holdfast list`: the committed backups, oldest first, from their summaries (no manifest is
//! read unless a backup has no summary), so it costs the same whatever the number of tables.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use holdfast::drill::list_records;
use holdfast::drill::status::{status_of, statuses, DrillStatus};

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{human_bytes, print_json_list, rfc3339, table_time};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let backups = repo.list_summaries().await?;
    let pins = holdfast::retention::pins(&repo).await?;
    let pin_of = |id: &str| pins.iter().find(|p| p.backup == id);
    let drills = statuses(&list_records(&repo).await?);
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
                    "tables": m.table_count,
                    "rows": m.rows,
                    "raw_bytes": m.raw_bytes,
                    "stored_bytes": m.stored_bytes,
                    "consistent_point": m.consistent_point,
                    "physical": m.physical,
                    "partial": m.is_partial(),
                    "scope": m.scope,
                    "scope_description": m.scope_description(),
                    "pin": pin_of(&m.id),
                    "drill": status_of(&drills, &m.id),
                })
            })
            .collect();
        print_json_list("backups", &rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if backups.is_empty() {
        outln!("no backups in {}", repo.storage().location());
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Vec::new();
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
                m.table_count.to_string(),
                m.rows.to_string(),
            ),
        };
        if let Some(pin) = pin_of(&m.id) {
            point = format!("{point}; {}", super::pin::describe(pin));
        }
        table.push([
            m.id.clone(),
            engine,
            table_time(m.finished),
            tables,
            rows,
            human_bytes(m.stored_bytes),
            m.scope_description(),
            short_status(&status_of(&drills, &m.id)),
            point,
        ]);
    }
    let header = [
        "ID",
        "ENGINE",
        "FINISHED (UTC)",
        "TABLES",
        "ROWS",
        "SIZE",
        "SCOPE",
        "DRILL",
        "CONSISTENT POINT",
    ]
    .map(String::from);
    for line in aligned(&header, &table) {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `unverified`, `verified 2026-11-21`, `failed 2026-11-21` (`info` gives the reason).
fn short_status(status: &DrillStatus) -> String {
    let text = status.describe();
    match status {
        DrillStatus::Failed { .. } => text.split(':').next().unwrap_or(&text).to_string(),
        _ => text,
    }
}

/// The rows under the header, each column as wide as its widest cell; text columns to the
/// left, numbers (TABLES, ROWS, SIZE) to the right, the last column unpadded.
fn aligned<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> Vec<String> {
    const RIGHT: [usize; 3] = [3, 4, 5];
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                if i == N - 1 {
                    line.push_str(cell);
                } else if RIGHT.contains(&i) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let header = [
            "ID",
            "ENGINE",
            "FINISHED (UTC)",
            "TABLES",
            "ROWS",
            "SIZE",
            "POINT",
        ]
        .map(String::from);
        let rows = [
            [
                "a",
                "logical",
                "2026-11-21 04:05:06",
                "1",
                "12345",
                "1.0 KiB",
                "x",
            ]
            .map(String::from),
            [
                "bb",
                "phys-inc",
                "2026-11-21 04:05:07",
                "-",
                "-",
                "12 B",
                "y",
            ]
            .map(String::from),
        ];
        let lines = aligned(&header, &rows);
        // Every column starts at the same offset on every line.
        let at = |l: &str, s: &str| l.find(s).unwrap();
        assert_eq!(at(&lines[1], "2026"), at(&lines[2], "2026"));
        assert_eq!(at(&lines[0], "FINISHED"), at(&lines[1], "2026"));
        assert_eq!(lines[1].find(" x").unwrap(), lines[2].find(" y").unwrap());
        assert!(lines[1].contains("  12345  "), "{lines:?}");
    }
}
