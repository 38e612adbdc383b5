//! A physical drill: the real physical restore (fetch, prepare, move back) into the sandbox's
//! datadir, the server started on it (crash recovery included), `CHECK TABLE` on every table,
//! and the restored data's binlog/GTID position against the manifest's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;

use super::{failed, is_backup_failure, passed, DrillOptions, Outcome};
use crate::engine::physical::{run_physical_restore, PhysicalRestoreOptions};
use crate::manifest::{BackupManifest, ConsistentPoint, DrillCheck, DrillServer};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::sandbox::{Sandbox, ServerInstall};
use crate::source::Flavor;
use crate::Result;

pub(crate) async fn drill(
    repo: &Repository,
    manifest: &BackupManifest,
    install: ServerInstall,
    opts: &DrillOptions,
    progress: Arc<dyn Progress>,
) -> Result<Outcome> {
    let flavor = install.flavor;
    let mut server = DrillServer {
        binary: install.server.display().to_string(),
        version: install.version().unwrap_or_default(),
        kind: "sandbox".into(),
        memory_bytes: Some(opts.sandbox.memory),
        peak_memory_bytes: None,
    };
    let mut sandbox = Sandbox::new(install, opts.sandbox.clone())?;
    let restore_opts = PhysicalRestoreOptions {
        datadir: sandbox.datadir().to_path_buf(),
        work_dir: Some(sandbox.dir().to_path_buf()),
        prepare_memory: None,
        start: None,
    };
    let started = Instant::now();
    let outcome = |checks, rto, check_seconds, bytes, server| Outcome {
        checks,
        rto_seconds: rto,
        check_seconds,
        bytes,
        rows: 0,
        server,
        range: None,
    };
    let report = match run_physical_restore(repo, manifest, &restore_opts, progress.clone()).await {
        Ok(r) => r,
        Err(e) if is_backup_failure(&e) => {
            let rto = started.elapsed().as_secs_f64();
            return Ok(outcome(
                vec![failed("restore", None, e.to_string())],
                rto,
                0.0,
                0,
                server,
            ));
        }
        Err(e) => return Err(e),
    };
    let mut checks = vec![passed(
        "restore",
        None,
        format!(
            "chain {} fetched ({} bytes), prepared and moved back in {:.1}s",
            report.chain.join(" -> "),
            report.bytes_fetched,
            report.seconds
        ),
    )];
    progress.note("starting the drill server on the restored datadir");
    let start_began = Instant::now();
    let start = sandbox.start().await;
    let rto = started.elapsed().as_secs_f64();
    if let Err(e) = start {
        checks.push(failed("server-start", None, e.to_string()));
        return Ok(outcome(checks, rto, 0.0, report.bytes_fetched, server));
    }
    checks.push(passed(
        "server-start",
        None,
        format!(
            "the server started on the restored datadir (crash recovery included) in {:.1}s",
            start_began.elapsed().as_secs_f64()
        ),
    ));
    let check_began = Instant::now();
    let mut conn = sandbox.connection()?.connect().await?;
    server.version = conn
        .query_first("SELECT @@version")
        .await?
        .unwrap_or(server.version);
    checks.push(check_tables(&mut conn).await?);
    checks.extend(check_position(&mut conn, &sandbox, flavor, &manifest.consistent_point).await?);
    server.peak_memory_bytes = sandbox.peak_memory_bytes();
    drop(conn);
    sandbox.stop(Duration::from_secs(60)).await;
    Ok(outcome(
        checks,
        rto,
        check_began.elapsed().as_secs_f64(),
        report.bytes_fetched,
        server,
    ))
}

/// `CHECK TABLE` on every table of the restored server (the system schema included).
async fn check_tables(conn: &mut Conn) -> Result<DrillCheck> {
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND TABLE_SCHEMA NOT IN \
             ('information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        )
        .await?;
    let mut bad = Vec::new();
    for (db, t) in &tables {
        let name = format!("`{}`.`{}`", db.replace('`', "``"), t.replace('`', "``"));
        let rows: Vec<(String, String, String, String)> =
            match conn.query(format!("CHECK TABLE {name}")).await {
                Ok(rows) => rows,
                Err(e) => {
                    bad.push(format!("{name}: {e}"));
                    continue;
                }
            };
        // The last row is the verdict (`status` / `OK`); earlier ones are warnings.
        let ok = rows
            .last()
            .is_some_and(|(_, _, kind, text)| kind == "status" && text == "OK");
        if !ok {
            let what: Vec<String> = rows
                .iter()
                .map(|(_, _, k, m)| format!("{k}: {m}"))
                .collect();
            bad.push(format!("{name}: {}", what.join("; ")));
        }
    }
    Ok(if bad.is_empty() {
        passed(
            "check-table",
            None,
            format!("CHECK TABLE: all {} tables OK", tables.len()),
        )
    } else {
        failed(
            "check-table",
            None,
            format!(
                "CHECK TABLE failed on {} of {}: {}",
                bad.len(),
                tables.len(),
                bad.join(" | ")
            ),
        )
    })
}

/// The restored data's position in the source's history against the manifest's consistent
/// point: MariaDB: the binlog position InnoDB recorded in the restored system tablespace
/// (printed at startup) and the GTID the backup tool wrote into the datadir; MySQL: the
/// server's `gtid_executed`.
async fn check_position(
    conn: &mut Conn,
    sandbox: &Sandbox,
    flavor: Flavor,
    point: &ConsistentPoint,
) -> Result<Vec<DrillCheck>> {
    if point.binlog_file.is_empty() && point.gtid_set.is_empty() {
        return Ok(vec![passed(
            "gtid-position",
            None,
            "the source's binary log was off: no position recorded, none to compare",
        )]);
    }
    let mut checks = Vec::new();
    match flavor {
        Flavor::MySql => {
            let executed: String = conn
                .query_first("SELECT @@global.gtid_executed")
                .await?
                .unwrap_or_default();
            checks.push(compare_gtid(
                &normalize(&executed),
                &normalize(&point.gtid_set),
                "gtid_executed",
            ));
        }
        Flavor::MariaDb => {
            let info = restored_position(sandbox.datadir());
            match info {
                Some((file, pos, gtid)) => {
                    checks.push(compare_gtid(
                        &gtid,
                        &point.gtid_set,
                        "the restored datadir's binlog info",
                    ));
                    if !point.binlog_file.is_empty()
                        && (file != point.binlog_file || pos != point.binlog_pos)
                    {
                        checks.push(failed(
                            "binlog-position",
                            None,
                            format!(
                                "the restored datadir is at {file}:{pos}, the manifest records {}:{}",
                                point.binlog_file, point.binlog_pos
                            ),
                        ));
                    }
                }
                None => checks.push(failed(
                    "gtid-position",
                    None,
                    "the restored datadir has no binlog info from the backup tool",
                )),
            }
            if let Some((file, pos)) = innodb_binlog_position(&sandbox.error_log_tail(400)) {
                let ok = file == point.binlog_file && pos == point.binlog_pos;
                let detail = format!(
                    "InnoDB's recorded binlog position {file}:{pos}{} the manifest's {}:{}",
                    if ok { " equals" } else { " differs from" },
                    point.binlog_file,
                    point.binlog_pos
                );
                checks.push(if ok {
                    passed("binlog-position", None, detail)
                } else {
                    failed("binlog-position", None, detail)
                });
            }
        }
    }
    Ok(checks)
}

fn compare_gtid(found: &str, want: &str, whence: &str) -> DrillCheck {
    if found == want {
        passed(
            "gtid-position",
            None,
            format!("{whence}: GTID {found}, as the manifest records"),
        )
    } else {
        failed(
            "gtid-position",
            None,
            format!("{whence}: GTID `{found}`, the manifest records `{want}`"),
        )
    }
}

fn normalize(gtid_set: &str) -> String {
    gtid_set.split_whitespace().collect::<String>()
}

/// The binlog position the backup tool recorded in the restored datadir: `binlog_pos` of
/// `xtrabackup_info` (`mariadb_backup_info` in newer MariaDB), else the `*_binlog_info` file.
fn restored_position(datadir: &std::path::Path) -> Option<(String, u64, String)> {
    let read = |name: &str| std::fs::read_to_string(datadir.join(name)).ok();
    let from_info = ["mariadb_backup_info", "xtrabackup_info"]
        .iter()
        .filter_map(|f| read(f))
        .find_map(|text| {
            let kv = crate::engine::physical::log::parse_key_values(&text);
            crate::engine::physical::log::parse_binlog_position(kv.get("binlog_pos")?)
        });
    from_info.or_else(|| {
        ["mariadb_backup_binlog_info", "xtrabackup_binlog_info"]
            .iter()
            .find_map(|f| read(f))
            .map(|t| parse_binlog_info(&t))
    })
}

/// `mysql-bin.000003\t1234\t0-1-13` → (file, position, GTID).
pub(crate) fn parse_binlog_info(text: &str) -> (String, u64, String) {
    let mut fields = text.split_whitespace();
    let file = fields.next().unwrap_or_default().to_string();
    let pos = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let gtid = fields.collect::<Vec<_>>().join("");
    (file, pos, gtid)
}

/// `InnoDB: Last binlog file './mysql-bin.000003', position 1234` from an error log.
pub(crate) fn innodb_binlog_position(log: &str) -> Option<(String, u64)> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Last binlog file '"))?;
    let rest = line.split("Last binlog file '").nth(1)?;
    let (file, rest) = rest.split_once('\'')?;
    let pos = rest
        .split("position ")
        .nth(1)?
        .trim()
        .trim_end_matches('.')
        .parse()
        .ok()?;
    let file = file.rsplit('/').next().unwrap_or(file).to_string();
    Some((file, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(
            parse_binlog_info("mysql-bin.000003\t1234\t0-1-13\n"),
            ("mysql-bin.000003".into(), 1234, "0-1-13".into())
        );
        assert_eq!(parse_binlog_info("mysql-bin.000001\t4\n").2, "");
        assert_eq!(
            parse_binlog_info("b.000002 99 0-1-5,1-2-7").2,
            "0-1-5,1-2-7"
        );
        let log = "2026 [Note] InnoDB: Last binlog file './mysql-bin.000003', position 1234\n";
        assert_eq!(
            innodb_binlog_position(log),
            Some(("mysql-bin.000003".into(), 1234))
        );
        assert_eq!(innodb_binlog_position("nothing here"), None);
    }
}
