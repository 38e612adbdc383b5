//! A logical drill: the real restore (`run_restore`) into the sandbox or a given empty target,
//! then, on the restored server, every table's row count and content fingerprint against the
//! manifest and every schema object of the backup present.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::*;
use mysql_async::Conn;

use super::{failed, is_backup_failure, passed, DrillOptions, Outcome};
use crate::engine::logical::backup::{fingerprint_table, plan_table};
use crate::engine::logical::restore::{load_schema, run_restore, RestoreOptions};
use crate::manifest::{BackupManifest, DrillCheck, DrillServer, SchemaDump, TableData, TableKind};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::sandbox::Sandbox;
use crate::source::ConnectionConfig;
use crate::Result;

pub(crate) async fn drill_into(
    repo: &Repository,
    manifest: &BackupManifest,
    target: &ConnectionConfig,
    opts: &DrillOptions,
    sandbox: Option<&Sandbox>,
    progress: Arc<dyn Progress>,
) -> Result<Outcome> {
    let restore_opts = RestoreOptions {
        workers: opts.workers.max(1),
        drop_existing: opts.drop_existing,
        // The drill recomputes every fingerprint itself, as a check per table.
        verify: false,
        users: manifest.includes_users,
        ..RestoreOptions::default()
    };
    let started = Instant::now();
    let restored = run_restore(repo, manifest, target, &restore_opts, progress.clone()).await;
    let rto_seconds = started.elapsed().as_secs_f64();
    let mut conn = target.connect().await?;
    let version: String = conn
        .query_first("SELECT @@version")
        .await?
        .unwrap_or_default();
    let server = DrillServer {
        binary: sandbox.map_or_else(String::new, |s| s.install().server.display().to_string()),
        version,
        kind: if sandbox.is_some() {
            "sandbox"
        } else {
            "target"
        }
        .into(),
        memory_bytes: sandbox.map(|_| opts.sandbox.memory),
        peak_memory_bytes: None,
    };
    let report = match restored {
        Ok(r) => r,
        Err(e) if is_backup_failure(&e) => {
            return Ok(Outcome {
                checks: vec![failed("restore", None, e.to_string())],
                rto_seconds,
                check_seconds: 0.0,
                bytes: 0,
                rows: 0,
                server,
                range: None,
            })
        }
        Err(e) => return Err(e),
    };
    let mut checks = vec![passed(
        "restore",
        None,
        format!(
            "{} tables, {} rows, {} bytes loaded in {:.1}s",
            report.tables.len(),
            report.rows,
            report.bytes_loaded,
            report.seconds
        ),
    )];
    let check_started = Instant::now();
    progress.phase("check", manifest.tables.len() as u64, "tables");
    for table in &manifest.tables {
        checks.push(check_table(&mut conn, table).await?);
        progress.advance(1);
    }
    let schema = load_schema(repo, manifest).await?;
    checks.extend(check_schema(&mut conn, &schema, manifest.includes_users).await?);
    let peak = sandbox.and_then(|s| s.peak_memory_bytes());
    Ok(Outcome {
        checks,
        rto_seconds,
        check_seconds: check_started.elapsed().as_secs_f64(),
        bytes: report.bytes_loaded,
        rows: report.rows,
        server: DrillServer {
            peak_memory_bytes: peak,
            ..server
        },
        range: None,
    })
}

/// One table: its columns, row count and content fingerprint against the manifest's.
pub(crate) async fn check_table(conn: &mut Conn, data: &TableData) -> Result<DrillCheck> {
    let name = format!("`{}`.`{}`", data.database, data.table);
    let plan = match plan_table(
        conn,
        &data.database,
        &data.table,
        data.with_history,
        u64::MAX,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            return Ok(failed(
                "table",
                Some(name.clone()),
                format!("{name} cannot be read: {e}"),
            ))
        }
    };
    if plan.columns != data.columns {
        return Ok(failed(
            "table",
            Some(name.clone()),
            format!(
                "{name}: restored columns {:?} differ from the backup's {:?}",
                plan.columns, data.columns
            ),
        ));
    }
    let rows: u64 = conn.query_first(plan.count_query()).await?.unwrap_or(0);
    let fp = fingerprint_table(conn, &plan).await?;
    let want = &data.fingerprint;
    if rows != data.row_count || fp != *want {
        return Ok(failed(
            "table",
            Some(name.clone()),
            format!(
                "{name} holds {rows} rows (fingerprint {} rows {:032x}) after the restore; the \
                 manifest records {} rows (fingerprint {} rows {:032x}): the backup's data is \
                 not what was backed up",
                fp.rows, fp.sum, data.row_count, want.rows, want.sum
            ),
        ));
    }
    Ok(passed(
        "table",
        Some(name),
        format!("{rows} rows, fingerprint {:032x} as recorded", fp.sum),
    ))
}

/// Every schema object of the backup, by kind: present on the restored server?
pub(crate) async fn check_schema(
    conn: &mut Conn,
    schema: &SchemaDump,
    users: bool,
) -> Result<Vec<DrillCheck>> {
    let tables: BTreeSet<(String, String, String)> = conn
        .query("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES")
        .await?
        .into_iter()
        .collect();
    let has = |db: &str, name: &str, kinds: &[&str]| {
        kinds
            .iter()
            .any(|k| tables.contains(&(db.to_string(), name.to_string(), k.to_string())))
    };
    let routines: BTreeSet<(String, String)> = conn
        .query("SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES")
        .await?
        .into_iter()
        .collect();
    let triggers: BTreeSet<(String, String)> = conn
        .query("SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS")
        .await?
        .into_iter()
        .collect();
    let events: BTreeSet<(String, String)> = conn
        .query("SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS")
        .await?
        .into_iter()
        .collect();
    let pair = |db: &str, n: &str| (db.to_string(), n.to_string());
    let q = |db: &str, n: &str| format!("`{db}`.`{n}`");
    let mut expected: Vec<(&str, String, bool)> = Vec::new();
    for db in &schema.databases {
        for t in &db.tables {
            let (kind, ok) = match t.kind {
                TableKind::Sequence => ("sequences", has(&db.name, &t.name, &["SEQUENCE"])),
                _ => (
                    "tables",
                    has(&db.name, &t.name, &["BASE TABLE", "SYSTEM VERSIONED"]),
                ),
            };
            expected.push((kind, q(&db.name, &t.name), ok));
        }
        for v in &db.views {
            expected.push((
                "views",
                q(&db.name, &v.name),
                has(&db.name, &v.name, &["VIEW"]),
            ));
        }
        for r in &db.routines {
            let ok = routines.contains(&pair(&db.name, &r.name));
            expected.push(("routines", q(&db.name, &r.name), ok));
        }
        for t in &db.triggers {
            let ok = triggers.contains(&pair(&db.name, &t.name));
            expected.push(("triggers", q(&db.name, &t.name), ok));
        }
        for e in &db.events {
            let ok = events.contains(&pair(&db.name, &e.name));
            expected.push(("events", q(&db.name, &e.name), ok));
        }
    }
    if users && !schema.users.is_empty() {
        let accounts: BTreeSet<(String, String)> = conn
            .query(
                "SELECT CONVERT(User USING utf8mb4), CONVERT(Host USING utf8mb4) FROM mysql.user",
            )
            .await?
            .into_iter()
            .collect();
        for u in &schema.users {
            let ok = accounts.contains(&(u.user.clone(), u.host.clone()));
            expected.push(("users", format!("'{}'@'{}'", u.user, u.host), ok));
        }
    }
    let mut checks = Vec::new();
    for kind in [
        "tables",
        "sequences",
        "views",
        "routines",
        "triggers",
        "events",
        "users",
    ] {
        let of_kind: Vec<&(&str, String, bool)> =
            expected.iter().filter(|(k, _, _)| *k == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let missing: Vec<&str> = of_kind
            .iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(_, n, _)| n.as_str())
            .collect();
        checks.push(if missing.is_empty() {
            passed(kind, None, format!("all {} present", of_kind.len()))
        } else {
            failed(
                kind,
                None,
                format!(
                    "{} of {} missing after the restore: {}",
                    missing.len(),
                    of_kind.len(),
                    missing.join(", ")
                ),
            )
        });
    }
    Ok(checks)
}
