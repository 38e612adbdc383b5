//! The logical restore job.
//!
//! 1. Read the schema file and decide the scope (database/table filters, renames).
//! 2. Preflight the target: existing databases or tables in scope are refused unless
//!    `drop_existing`; nothing is touched before every check passes.
//! 3. Create databases and tables, holding back secondary indexes and foreign keys.
//! 4. Load every table's rows, in parallel; as soon as a table's rows are in, build its
//!    held-back indexes while the other loaders go on ([`load`](super::load)).
//! 5. Foreign keys; then views, routines, triggers, events and users.
//! 6. Check each table's row count against the manifest, and with `verify`, its fingerprint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::try_join_all;
use mysql_async::prelude::*;
use mysql_async::Conn;
use serde::Serialize;

use super::ddl::{quote_ident, quote_string, SplitCreate};
use super::filter::Filter;
use super::load::{check_tables, load_tables, map_parallel, LoadTable, Worker};
use super::schema;
use crate::manifest::{BackupManifest, DatabaseSchema, SchemaDump, TableData, TableSchema};
use crate::pipeline::{read_all_verified, Decompressor};
use crate::progress::Progress;
use crate::repo::{layout, Repository};
use crate::source::privileges::{self, Role, RoleOptions};
use crate::source::{ConnectionConfig, Flavor, ServerIdentity, MYSQL_CONNECTION_COLLATION};
use crate::{Error, ErrorKind, Result};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub workers: usize,
    pub filter: Filter,
    /// `(from, to)` database renames.
    pub renames: Vec<(String, String)>,
    pub drop_existing: bool,
    /// Write the restore to the target's binary log (off by default: faster, and replicas of the
    /// target do not replay a bulk load).
    pub keep_binlog: bool,
    /// Recompute every table's fingerprint on the target and compare.
    pub verify: bool,
    /// Restore users and grants when the backup has them.
    pub users: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            filter: Filter::default(),
            renames: Vec::new(),
            drop_existing: false,
            keep_binlog: false,
            verify: false,
            users: true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub database: String,
    pub table: String,
    pub rows: u64,
    /// `Some(true)` when the fingerprint was recomputed and matched.
    pub fingerprint_verified: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup_id: String,
    pub target: String,
    pub databases: Vec<String>,
    pub tables: Vec<TableReport>,
    pub rows: u64,
    #[serde(rename = "loaded_bytes")]
    pub bytes_loaded: u64,
    pub seconds: f64,
    pub verified: bool,
    /// Things restored only partly (a grant on an object that no longer exists).
    pub warnings: Vec<String>,
    /// Databases the target already had but that held nothing (no table, view, routine or
    /// event, like a fresh server's `test`): replaced without `--drop-existing`.
    pub replaced_empty_databases: Vec<String>,
}

/// One table in scope.
struct Item<'a> {
    target_db: String,
    schema: &'a TableSchema,
    data: Option<&'a TableData>,
}

pub async fn load_schema(repo: &Repository, manifest: &BackupManifest) -> Result<SchemaDump> {
    let entry = manifest
        .files
        .iter()
        .find(|f| f.path == manifest.schema_file)
        .ok_or_else(|| Error::integrity("the manifest does not list its schema file"))?;
    let path = layout::backup_file(&manifest.id, &entry.path);
    let compressed = read_all_verified(&**repo.storage(), &path, entry).await?;
    let mut raw = Vec::new();
    let mut dec = Decompressor::new(&path)?;
    dec.feed(&compressed, |b| raw.extend_from_slice(b))?;
    dec.finish()?;
    crate::manifest::decode_versioned(
        &raw,
        &format!("schema of backup {}", manifest.id),
        crate::manifest::SCHEMA_FORMAT,
    )
}

pub async fn run_restore(
    repo: &Repository,
    manifest: &BackupManifest,
    target: &ConnectionConfig,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    opts.filter.validate()?;
    let started = Instant::now();
    let schema = load_schema(repo, manifest).await?;
    let scope = Scope::new(&schema, manifest, opts)?;

    let mut admin = target.connect().await?;
    let identity = ServerIdentity::read(&mut admin).await?;
    check_same_flavor(manifest, &identity)?;
    privileges::check(
        &mut admin,
        &identity,
        Role::Restore,
        RoleOptions {
            keep_binlog: opts.keep_binlog,
        },
    )
    .await?;
    let Preflight {
        fresh: fresh_dbs,
        replaced_empty,
    } = preflight(&mut admin, &scope, opts.drop_existing).await?;

    // From here on the target changes; on failure, what this run created is removed again so the
    // target is left as it was (less anything `--drop-existing` replaced).
    let applied = apply(
        &scope, &schema, repo, manifest, target, &identity, admin, &fresh_dbs, opts, &progress,
    )
    .await;
    let (tables, bytes_loaded, warnings) = match applied {
        Ok(done) => done,
        Err(e) => {
            let removed = remove_partial(target, &fresh_dbs, &scope).await;
            return Err(e.context(match removed {
                Ok(()) => {
                    "restore failed; what it had created on the target was removed".to_string()
                }
                Err(c) => {
                    format!("restore failed, and removing its partial work also failed ({c})")
                }
            }));
        }
    };
    Ok(RestoreReport {
        backup_id: manifest.id.clone(),
        target: target.display(),
        databases: scope
            .dbs
            .iter()
            .map(|d| scope.target_name(&d.name))
            .collect(),
        rows: tables.iter().map(|t| t.rows).sum(),
        tables,
        bytes_loaded,
        seconds: started.elapsed().as_secs_f64(),
        verified: opts.verify,
        warnings,
        replaced_empty_databases: replaced_empty,
    })
}

/// What a restore covers: databases and tables passing the filters, with their target names.
struct Scope<'a> {
    dbs: Vec<&'a DatabaseSchema>,
    items: Vec<Item<'a>>,
    renames: &'a [(String, String)],
    /// Table filters are in use: existing databases are kept, only tables are created.
    table_mode: bool,
    filter: &'a Filter,
}

impl<'a> Scope<'a> {
    fn new(
        schema: &'a SchemaDump,
        manifest: &'a BackupManifest,
        opts: &'a RestoreOptions,
    ) -> Result<Self> {
        for (from, _) in &opts.renames {
            if !schema.databases.iter().any(|d| &d.name == from) {
                return Err(Error::usage(format!(
                    "--rename-db: the backup has no database `{from}`"
                )));
            }
        }
        let dbs: Vec<&DatabaseSchema> = schema
            .databases
            .iter()
            .filter(|d| opts.filter.database(&d.name))
            .collect();
        if dbs.is_empty() {
            return Err(Error::usage(
                "nothing to restore: the filters match no database of the backup",
            ));
        }
        let mut scope = Scope {
            dbs,
            items: Vec::new(),
            renames: &opts.renames,
            table_mode: !opts.filter.include_tables.is_empty()
                || !opts.filter.exclude_tables.is_empty(),
            filter: &opts.filter,
        };
        // By name: a linear search per table is quadratic, minutes at 100,000 tables.
        let by_name: HashMap<(&str, &str), &TableData> = manifest
            .tables
            .iter()
            .map(|d| ((d.database.as_str(), d.table.as_str()), d))
            .collect();
        for db in scope.dbs.clone() {
            for t in db
                .tables
                .iter()
                .filter(|t| opts.filter.table(&db.name, &t.name))
            {
                let data = by_name.get(&(db.name.as_str(), t.name.as_str())).copied();
                scope.items.push(Item {
                    target_db: scope.target_name(&db.name),
                    schema: t,
                    data,
                });
            }
        }
        Ok(scope)
    }

    fn target_name(&self, db: &str) -> String {
        self.renames
            .iter()
            .find(|(f, _)| f == db)
            .map_or_else(|| db.to_string(), |(_, t)| t.clone())
    }
}

/// Logs how long a restore phase took.
struct PhaseTimer(Instant);

impl PhaseTimer {
    fn start() -> Self {
        PhaseTimer(Instant::now())
    }

    fn done(self, what: &str) {
        tracing::info!(seconds = self.0.elapsed().as_secs_f64(), "{what}");
    }
}

/// Everything a restore changes on the target, in order.
#[allow(clippy::too_many_arguments)]
async fn apply(
    scope: &Scope<'_>,
    schema: &SchemaDump,
    repo: &Repository,
    manifest: &BackupManifest,
    target: &ConnectionConfig,
    identity: &ServerIdentity,
    mut admin: Conn,
    fresh_dbs: &[String],
    opts: &RestoreOptions,
    progress: &Arc<dyn Progress>,
) -> Result<(Vec<TableReport>, u64, Vec<String>)> {
    let statements = session_setup(identity, opts.keep_binlog);
    let bulk = identity.flavor == Flavor::MariaDb;
    let mut workers: Vec<Worker> =
        try_join_all((0..opts.workers.max(1)).map(|_| Worker::connect(target, &statements, bulk)))
            .await
            .map_err(setup_error)?;
    let setup = statements.join("; ");
    admin
        .query_drop(&setup)
        .await
        .map_err(|e| setup_error(e.into()))?;
    // Definitions are text: the admin connection speaks utf8mb4, unlike the binary row loaders.
    admin.query_drop("SET NAMES utf8mb4").await?;

    // Databases, then tables without their secondary indexes and foreign keys.
    let phase = PhaseTimer::start();
    progress.phase("create", scope.items.len() as u64, "tables");
    for db in &scope.dbs {
        let name = scope.target_name(&db.name);
        // An existing database (table mode) is left exactly as it is.
        if fresh_dbs.contains(&name) {
            schema::create_database(&mut admin, db, &name).await?;
        }
    }
    let deferred = create_tables(&mut workers, &scope.items, progress).await?;
    phase.done("tables created");

    // Rows; each table's held-back indexes built as soon as its rows are in.
    let phase = PhaseTimer::start();
    let json = json_columns(&mut admin, identity, &scope.items).await?;
    let tables: Vec<LoadTable> = scope
        .items
        .iter()
        .zip(&deferred)
        .zip(&json)
        .map(|((it, split), json)| LoadTable {
            db: &it.target_db,
            name: &it.schema.name,
            data: it.data,
            json,
            indexes: indexes_only(split),
        })
        .collect();
    let bytes_loaded = load_tables(
        repo.storage(),
        &manifest.id,
        &manifest.files,
        &tables,
        &mut workers,
        progress.clone(),
    )
    .await?;
    phase.done("rows loaded and secondary indexes built");

    // Foreign keys last: they may rely on indexes of other tables.
    let phase = PhaseTimer::start();
    for (it, d) in scope.items.iter().zip(&deferred) {
        if !d.foreign_keys.is_empty() {
            let fks = SplitCreate {
                foreign_keys: d.foreign_keys.clone(),
                ..SplitCreate::default()
            };
            schema::add_deferred(&mut admin, &it.target_db, &it.schema.name, &fks).await?;
        }
    }
    // Everything that is not rows (sequence values were set when the sequences were created).
    // Routines come before views, which may call them; triggers after the rows, so they do not
    // fire during the load.
    for db in &scope.dbs {
        let target_db = scope.target_name(&db.name);
        if !scope.table_mode {
            schema::create_routines(&mut admin, &target_db, &db.routines).await?;
            schema::create_views(&mut admin, &target_db, &db.views).await?;
            schema::create_events(&mut admin, &target_db, &db.events).await?;
        }
        let triggers: Vec<_> = db
            .triggers
            .iter()
            .filter(|t| scope.filter.table(&db.name, &t.table))
            .cloned()
            .collect();
        schema::create_triggers(&mut admin, &target_db, &triggers).await?;
    }
    let mut warnings = Vec::new();
    if opts.users && !scope.table_mode && !schema.users.is_empty() {
        for skipped in schema::restore_users(&mut admin, &schema.users).await? {
            progress.note(&format!("warning: grant not restored: {skipped}"));
            warnings.push(format!("grant not restored: {skipped}"));
        }
    }
    phase.done("foreign keys, views, routines, triggers, events and users created");

    // Proof.
    let phase = PhaseTimer::start();
    let checks = check_tables(&mut workers, &tables, opts.verify, progress.clone()).await?;
    phase.done(if opts.verify {
        "row counts and fingerprints checked"
    } else {
        "row counts checked"
    });
    let mut reports: Vec<TableReport> = checks
        .into_iter()
        .map(|c| TableReport {
            database: tables[c.table].db.to_string(),
            table: tables[c.table].name.to_string(),
            rows: c.rows,
            fingerprint_verified: c.fingerprint_verified,
        })
        .collect();
    reports.sort_by(|a, b| (&a.database, &a.table).cmp(&(&b.database, &b.table)));
    Ok((reports, bytes_loaded, warnings))
}

/// Rows (TSV bytes) from which a table's secondary indexes are built after its rows are loaded;
/// a smaller table gets them in its `CREATE TABLE`. Sorted index builds pay off for big tables;
/// for a small one the `ALTER TABLE ... ADD KEY` costs more than it saves (10,000 tables of
/// 1-40 rows: about a third of the restore).
const DEFER_INDEXES_FROM_BYTES: u64 = 4 << 20;

/// Whether a table's secondary indexes are built after its rows (see
/// [`DEFER_INDEXES_FROM_BYTES`]).
fn defer_indexes(data: Option<&TableData>) -> bool {
    data.is_some_and(|d| {
        d.chunks.iter().map(|c| c.raw_size).sum::<u64>() >= DEFER_INDEXES_FROM_BYTES
    })
}

/// Tables created per statement batch (one session switch each).
const CREATE_BATCH: usize = 100;

/// Creates every table in scope (without its held-back indexes and foreign keys) in batches of
/// one database, spread over the workers' index connections: the server creates tables of
/// different batches at once. Returns each item's [`SplitCreate`], in item order.
async fn create_tables(
    workers: &mut [Worker],
    items: &[Item<'_>],
    progress: &Arc<dyn Progress>,
) -> Result<Vec<SplitCreate>> {
    let mut batches: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start + 1;
        while end < items.len()
            && end - start < CREATE_BATCH
            && items[end].target_db == items[start].target_db
        {
            end += 1;
        }
        batches.push((start, end));
        start = end;
    }
    let mut conns: Vec<&mut Conn> = workers.iter_mut().map(Worker::indexer).collect();
    let created = map_parallel(
        &mut conns,
        batches,
        async |conn: &mut &mut Conn, (start, end): (usize, usize)| {
            let ts: Vec<(&TableSchema, bool)> = items[start..end]
                .iter()
                .map(|it| (it.schema, defer_indexes(it.data)))
                .collect();
            let splits = schema::create_tables(conn, &items[start].target_db, &ts).await?;
            progress.advance(splits.len() as u64);
            Ok(splits)
        },
    )
    .await?;
    Ok(created.into_iter().flatten().collect())
}

/// Drops the databases this restore created, or in table mode the tables it created.
async fn remove_partial(
    target: &ConnectionConfig,
    fresh_dbs: &[String],
    scope: &Scope<'_>,
) -> Result<()> {
    let (items, table_mode) = (&scope.items, scope.table_mode);
    let mut conn = target.connect().await?;
    conn.query_drop("SET SESSION foreign_key_checks = 0; SET SESSION sql_log_bin = 0")
        .await?;
    if table_mode {
        for it in items {
            conn.query_drop(format!(
                "DROP TABLE IF EXISTS {}.{}",
                quote_ident(&it.target_db),
                quote_ident(&it.schema.name)
            ))
            .await?;
        }
    }
    for db in fresh_dbs {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
            .await?;
    }
    Ok(())
}

/// The loaders' session settings, one statement each.
fn session_setup(identity: &ServerIdentity, keep_binlog: bool) -> Vec<String> {
    let mut s: Vec<String> = [
        "SET NAMES binary",
        "SET time_zone = '+00:00'",
        "SET SESSION foreign_key_checks = 0",
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
        "SET SESSION net_read_timeout = 3600",
        "SET SESSION net_write_timeout = 3600",
    ]
    .map(String::from)
    .to_vec();
    // unique_checks = 0 makes InnoDB since MariaDB 10.6 load an empty table through its bulk
    // insert path, which here costs about 3x the server CPU of ordinary inserts for the first
    // chunk of every table (1M sbtest rows: 1.1 to 2.0 s against 0.6 s). Loading in key order
    // with the checks on is cheaper; older servers and MySQL skip the unique-key lookups.
    if !(identity.flavor == Flavor::MariaDb && identity.major_minor() >= (10, 6)) {
        s.push("SET SESSION unique_checks = 0".into());
    }
    if !keep_binlog {
        s.push("SET SESSION sql_log_bin = 0".into());
    }
    if identity.flavor == Flavor::MySql {
        s.push(MYSQL_CONNECTION_COLLATION.into());
    }
    if identity.flavor == Flavor::MariaDb {
        s.push("SET SESSION max_statement_time = 0".into());
        if identity.major_minor() >= (10, 11) {
            s.push("SET SESSION system_versioning_insert_history = 1".into());
        }
    }
    s
}

fn setup_error(e: Error) -> Error {
    if e.kind() == ErrorKind::Auth {
        Error::new(
            ErrorKind::Auth,
            format!(
                "the restore user may not change session settings it needs ({e}); \
                 grant it BINLOG ADMIN (or SUPER), or pass --keep-binlog"
            ),
        )
    } else {
        e
    }
}

/// Refuses a target of the other flavor than the backup's source, before anything changes.
///
/// MariaDB and MySQL share a protocol and most SQL, but not what a faithful logical restore
/// relies on: MySQL's JSON is a binary type and MariaDB's is LONGTEXT, MariaDB has sequences,
/// system versioning, UUID/INET6 types and its own collations, the two print different
/// `SHOW CREATE` syntax, and their GTIDs (kept for point-in-time recovery) are incompatible. A
/// restore that half works would be worse than none; moving between them is a migration
/// (`mysqldump` plus fixes), not a restore.
fn check_same_flavor(manifest: &BackupManifest, target: &ServerIdentity) -> Result<()> {
    let source = manifest.server.flavor.as_str();
    if source.is_empty() || source == target.flavor.name() {
        return Ok(());
    }
    let pretty = |name: &str| {
        match name {
            "mariadb" => "MariaDB",
            "mysql" => "MySQL",
            other => other,
        }
        .to_string()
    };
    Err(Error::new(
        ErrorKind::TargetNotEmpty,
        format!(
            "backup {} was taken from {} {} but the target is {} {}: holdfast restores a \
             logical backup only into a server of the same flavor (their JSON types, sequences, \
             collations and GTIDs differ); nothing was changed. Restore into a {} server",
            manifest.id,
            pretty(source),
            manifest.server.version,
            pretty(target.flavor.name()),
            target.version,
            pretty(source),
        ),
    ))
}

/// What [`preflight`] decided.
struct Preflight {
    /// The target databases this restore will create (and remove again if it fails).
    fresh: Vec<String>,
    /// Existing but empty databases that were dropped to be restored (see
    /// [`RestoreReport::replaced_empty_databases`]).
    replaced_empty: Vec<String>,
}

/// Whether a database holds anything at all: tables (views and sequences included; triggers
/// live on tables), routines or events. An empty one is not data to protect.
async fn is_empty_database(admin: &mut Conn, db: &str) -> Result<bool> {
    let q = quote_string(db);
    let n: Option<u64> = admin
        .query_first(format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {q}) \
             + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q}) \
             + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q})"
        ))
        .await?;
    Ok(n == Some(0))
}

/// Refuses (or with `drop_existing`, clears) what already exists on the target. A database
/// that exists but is empty (a fresh server's `test`) is replaced without asking.
async fn preflight(admin: &mut Conn, scope: &Scope<'_>, drop_existing: bool) -> Result<Preflight> {
    let items = &scope.items;
    let existing: Vec<String> = admin
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await?;
    let all_targets: Vec<String> = scope
        .dbs
        .iter()
        .map(|d| scope.target_name(&d.name))
        .collect();
    if !scope.table_mode {
        let mut clash = Vec::new();
        let mut empty = Vec::new();
        for t in all_targets.iter().filter(|t| existing.contains(t)) {
            if is_empty_database(admin, t).await? {
                empty.push(t.clone());
            } else {
                clash.push(t.clone());
            }
        }
        if !clash.is_empty() && !drop_existing {
            return Err(Error::new(
                ErrorKind::TargetNotEmpty,
                format!(
                    "the target already has database(s) {}; nothing was changed. Pass \
                     --drop-existing to replace them, or --rename-db old:new to restore beside them",
                    clash.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        for db in clash {
            tracing::info!(database = db, "dropping existing database on the target");
            admin
                .query_drop(format!("DROP DATABASE {}", quote_ident(&db)))
                .await?;
        }
        for db in &empty {
            tracing::info!(database = db, "replacing an empty database on the target");
            admin
                .query_drop(format!("DROP DATABASE {}", quote_ident(db)))
                .await?;
        }
        return Ok(Preflight {
            fresh: all_targets,
            replaced_empty: empty,
        });
    }
    let fresh: Vec<String> = all_targets
        .into_iter()
        .filter(|t| !existing.contains(t))
        .collect();
    let mut clash = Vec::new();
    for it in items {
        if !existing.contains(&it.target_db) {
            continue;
        }
        let n: Option<u64> = admin
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
                quote_string(&it.target_db),
                quote_string(&it.schema.name)
            ))
            .await?;
        if n.unwrap_or(0) > 0 {
            clash.push((it.target_db.clone(), it.schema.name.clone()));
        }
    }
    if clash.is_empty() {
        return Ok(Preflight {
            fresh,
            replaced_empty: Vec::new(),
        });
    }
    if !drop_existing {
        return Err(Error::new(
            ErrorKind::TargetNotEmpty,
            format!(
                "the target already has table(s) {}; nothing was changed. Pass --drop-existing \
                 to replace them, or --rename-db old:new",
                clash
                    .iter()
                    .map(|(d, t)| format!("`{d}`.`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    admin
        .query_drop("SET SESSION foreign_key_checks = 0")
        .await?;
    for (d, t) in clash {
        admin
            .query_drop(format!(
                "DROP TABLE {}.{}",
                quote_ident(&d),
                quote_ident(&t)
            ))
            .await?;
    }
    Ok(Preflight {
        fresh,
        replaced_empty: Vec::new(),
    })
}

/// Per item, the columns of the created table that are MySQL's binary JSON type (MariaDB's JSON
/// is LONGTEXT and needs nothing): MySQL refuses to build JSON from the binary character set the
/// loaders use, so `LOAD DATA` converts these from utf8mb4 text. None for a MariaDB target.
async fn json_columns(
    admin: &mut Conn,
    identity: &ServerIdentity,
    items: &[Item<'_>],
) -> Result<Vec<Vec<String>>> {
    if identity.flavor != Flavor::MySql {
        return Ok(vec![Vec::new(); items.len()]);
    }
    let rows: Vec<(String, String, String)> = admin
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE DATA_TYPE = 'json' AND TABLE_SCHEMA NOT IN \
             ('mysql', 'information_schema', 'performance_schema', 'sys')",
        )
        .await?;
    Ok(items
        .iter()
        .map(|it| {
            rows.iter()
                .filter(|(d, t, _)| *d == it.target_db && *t == it.schema.name)
                .map(|(_, _, c)| c.clone())
                .collect()
        })
        .collect())
}

/// The held-back secondary indexes of a table, without its foreign keys; `None` if there are
/// none.
fn indexes_only(split: &SplitCreate) -> Option<SplitCreate> {
    (!split.deferred_indexes.is_empty()).then(|| SplitCreate {
        foreign_keys: Vec::new(),
        ..split.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ChunkEntry, Fingerprint};

    fn data(chunk_sizes: &[u64]) -> TableData {
        TableData {
            database: "d".into(),
            table: "t".into(),
            columns: vec!["id".into()],
            with_history: false,
            row_count: 0,
            fingerprint: Fingerprint::default(),
            chunks: chunk_sizes
                .iter()
                .map(|&raw_size| ChunkEntry {
                    file: "f".into(),
                    range: "TRUE".into(),
                    rows: 1,
                    raw_size,
                    segment: None,
                })
                .collect(),
        }
    }

    #[test]
    fn indexes_are_deferred_only_for_big_tables() {
        let mib = 1 << 20;
        for (sizes, want) in [
            (&[][..], false),
            (&[100][..], false),
            (&[4 * mib - 1][..], false),
            (&[4 * mib][..], true),
            (&[2 * mib, 2 * mib][..], true),
            (&[64 * mib][..], true),
        ] {
            assert_eq!(defer_indexes(Some(&data(sizes))), want, "{sizes:?}");
        }
        assert!(!defer_indexes(None), "a table without data");
    }
}
