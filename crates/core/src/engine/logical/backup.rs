//! The logical backup job.
//!
//! 1. Lock the repository and remove debris of crashed runs.
//! 2. Open one consistent snapshot on N worker connections (see [`crate::source::snapshot`]).
//! 3. Read the schema objects in the snapshot and store them.
//! 4. Plan every table into key-range chunks and queue them, biggest table first.
//! 5. Workers stream each chunk's rows as TSV through zstd and SHA-256 into the repository, while
//!    one more connection in the same snapshot takes every table's `COUNT(*)`.
//! 6. Check every table's dumped rows against its count, then commit the manifest.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use time::OffsetDateTime;

use super::chunking::{chunk_count, split_range, KeyRange};
use super::ddl::{quote_ident, quote_string};
use super::filter::Filter;
use super::load::map_parallel;
use super::schema::dump_schema_with;
use super::tsv::{encode_packet, encode_row};
use crate::manifest::{
    BackupManifest, BackupScope, ChunkEntry, DatabaseSchema, FileEntry, Fingerprint, SchemaDump,
    TableData, TableKind, MANIFEST_FORMAT, MANIFEST_FORMAT_UNPACKED,
};
use crate::pipeline::{HashingSink, ParallelZstdSink, ZstdSink, ZSTD_BLOCK};
use crate::progress::Progress;
use crate::repo::{layout, RepoLock, Repository};
use crate::source::privileges::{self, Role, RoleOptions};
use crate::source::snapshot::{
    like_a_member, open_snapshot, Snapshot, SnapshotOptions, RELEASE_TABLE_LOCKS,
};
use crate::source::wire::WireConn;
use crate::source::{ConnectionConfig, ServerIdentity};
use crate::storage::Storage;
use crate::{Error, ErrorKind, Result};

#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Parallel dump connections.
    pub workers: usize,
    /// Target size of one chunk, in the server's estimate of table bytes.
    pub chunk_bytes: u64,
    pub compression_level: i32,
    pub filter: Filter,
    pub with_users: bool,
    pub lock_timeout: Duration,
    /// Fail when the server sends nothing for this long while a dump connection waits for
    /// rows (a hung server or network), instead of hanging; `None` waits forever.
    pub stall_timeout: Option<Duration>,
    /// Which small tables share pack files.
    pub pack: PackPolicy,
}

/// The default of [`BackupOptions::stall_timeout`]: long enough for a range scan through a
/// long stretch of deleted rows, short enough that a hung backup is noticed the same hour.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            chunk_bytes: 64 << 20,
            compression_level: 1,
            filter: Filter::default(),
            with_users: false,
            lock_timeout: Duration::from_secs(10),
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
            pack: PackPolicy::default(),
        }
    }
}

/// Most chunks one table is split into.
const MAX_CHUNKS_PER_TABLE: u64 = 4096;
/// Chunks per worker whose objects may still be closing while the worker reads on.
const MAX_CLOSING: usize = 4;
/// TSV bytes of one block: one zstd frame each, cut at a line end.
const ROW_BUFFER: usize = ZSTD_BLOCK;
/// Blocks of one worker compressing on the blocking pool while the worker reads the next: the
/// server keeps sending rows instead of waiting for the client to compress (see
/// [`ParallelZstdSink`]).
const COMPRESSING_PER_WORKER: usize = 1;
/// Room past [`ROW_BUFFER`] so the row that crosses it rarely makes the buffer grow.
const ROW_SLACK: usize = 64 * 1024;

/// Runs a logical backup into `repo` and returns the committed manifest.
pub async fn run_backup(
    repo: &Repository,
    source: &ConnectionConfig,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupManifest> {
    opts.filter.validate()?;
    let lock = repo.lock_for_backup(&*progress).await?;
    let result = backup_locked(repo, &lock, source, opts, progress).await;
    let released = lock.release().await;
    let manifest = result?;
    released?;
    Ok(manifest)
}

async fn backup_locked(
    repo: &Repository,
    lock: &RepoLock,
    source: &ConnectionConfig,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupManifest> {
    let started = OffsetDateTime::now_utc();
    let id = repo.new_backup_id(started).await?;
    let mut probe = source.connect().await?;
    let identity = ServerIdentity::read(&mut probe).await?;
    privileges::check(
        &mut probe,
        &identity,
        Role::LogicalBackup,
        RoleOptions::default(),
    )
    .await?;
    if opts.filter.is_set() {
        // A filter that matches nothing is a mistake, not an empty backup that becomes `latest`.
        let databases: Vec<String> = probe
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .await?;
        let tables: Vec<(String, String)> = probe
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', \
                 'performance_schema', 'sys')",
            )
            .await?;
        opts.filter.check_matches(&databases, &tables)?;
    }
    drop(probe);
    if !identity.log_bin {
        tracing::warn!("the server's binary log is off: this backup cannot be rolled forward");
        progress.note(
            "warning: binary log is off on the source; point-in-time recovery will not be possible",
        );
    }

    // One connection more than the dump workers: it reads what must come from the snapshot
    // (sequences, accounts) and then takes the row counts while the workers dump, so counting
    // never holds up a worker.
    let snap_opts = SnapshotOptions {
        readers: opts.workers,
        lock_timeout: opts.lock_timeout,
        stall_timeout: opts.stall_timeout,
    };
    let snapshot = open_snapshot(source, &identity, &snap_opts).await?;
    tracing::info!(
        binlog_file = snapshot.point.binlog_file,
        binlog_pos = snapshot.point.binlog_pos,
        gtid = snapshot.point.gtid_set,
        lock_ms = snapshot.lock_held.as_millis() as u64,
        "snapshot aligned"
    );
    progress.note(&format!(
        "snapshot at {} (lock held {} ms)",
        snapshot.point.describe(),
        snapshot.lock_held.as_millis()
    ));

    let storage = repo.storage().clone();
    let Snapshot {
        mut control,
        readers,
        point,
        lock_held,
    } = snapshot;
    let outcome = async {
        let phase = Instant::now();
        // Helpers read the definitions (see `dump_schema_with`): outside the snapshot's
        // transaction, so their tables' metadata locks end with each statement.
        let mut helpers = Vec::new();
        for _ in 0..opts.workers.max(1) {
            helpers.push(source.connect().await?);
        }
        let schema =
            dump_schema_with(&mut control, &mut helpers, &opts.filter, opts.with_users).await?;
        let schema_entry = store_schema(&*storage, &id, &schema).await?;
        tracing::info!(seconds = phase.elapsed().as_secs_f64(), "schema dumped");
        let phase = Instant::now();
        // The helpers plan too, in parallel and outside the snapshot (its locks stay few).
        for helper in &mut helpers {
            like_a_member(helper, identity.flavor).await?;
        }
        let mut plans = plan_tables(&mut helpers, &schema, &opts.filter, opts.chunk_bytes).await?;
        drop(helpers);
        let packed = opts.pack.apply(&mut plans);
        // Every definition is stored: the rows phase needs only the plans (with 100,000 tables
        // the definitions are tens of MB).
        let has_users = !schema.users.is_empty();
        drop(schema);
        tracing::info!(
            seconds = phase.elapsed().as_secs_f64(),
            tables = plans.len(),
            packed,
            "tables planned"
        );
        let dumped = dump_tables(&storage, &id, plans, readers, control, opts, progress).await?;
        Ok::<_, Error>((has_users, schema_entry, dumped))
    }
    .await;
    let (has_users, schema_entry, dumped) = match outcome {
        Ok(v) => v,
        Err(e) => {
            // Best effort: the next backup removes whatever remains.
            let _ = storage.delete_prefix(&layout::backup_dir(&id)).await;
            return Err(e);
        }
    };

    let (dumped, data_files) = dumped;
    let mut files = vec![schema_entry.clone()];
    files.extend(data_files);
    let tables: Vec<TableData> = dumped.into_iter().map(|t| t.data).collect();
    let packs = tables
        .iter()
        .flat_map(|t| &t.chunks)
        .any(|c| c.segment.is_some());
    let manifest = BackupManifest {
        // Format 2 only when it is needed: a backup without packs stays readable by holdfast
        // releases that predate them.
        format: if packs {
            MANIFEST_FORMAT
        } else {
            MANIFEST_FORMAT_UNPACKED
        },
        id: id.clone(),
        engine: "logical".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        server: identity.info(),
        started,
        finished: OffsetDateTime::now_utc(),
        consistent_point: point,
        lock_held_ms: lock_held.as_millis() as u64,
        compression: "zstd".into(),
        schema_file: schema_entry.path,
        tables,
        files,
        includes_users: opts.with_users && has_users,
        physical: None,
        scope: Some(BackupScope::filtered(
            &opts.filter.include_databases,
            &opts.filter.exclude_databases,
            &opts.filter.include_tables,
            &opts.filter.exclude_tables,
        )),
    };
    let phase = Instant::now();
    // Every chunk was written without its own flush: one barrier makes them all durable before
    // the manifest that commits them is written.
    storage.sync().await?;
    repo.commit(lock, &manifest).await?;
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "manifest committed"
    );
    Ok(manifest)
}

pub const SCHEMA_FILE: &str = "schema.json.zst";

async fn store_schema(storage: &dyn Storage, id: &str, schema: &SchemaDump) -> Result<FileEntry> {
    let body = serde_json::to_vec(schema).map_err(|e| Error::internal(e.to_string()))?;
    let sink =
        HashingSink::create(storage, &layout::backup_file(id, SCHEMA_FILE), SCHEMA_FILE).await?;
    let mut z = ZstdSink::new(sink, 3)?;
    z.write(&body).await?;
    z.finish().await
}

/// A table ready to dump: how to select its rows and how it is split.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub database: String,
    pub table: String,
    /// Columns in TSV order.
    pub columns: Vec<String>,
    /// `SELECT <this> FROM <from>`.
    pub select_list: String,
    /// `db`.`t` or `db`.`t` FOR SYSTEM_TIME ALL.
    pub from: String,
    pub with_history: bool,
    /// The splitting column and its ranges; `None` streams the table whole.
    pub key: Option<String>,
    pub ranges: Vec<KeyRange>,
    pub estimated_bytes: u64,
    /// Dumped into a shared pack file (see [`PackPolicy`]).
    pub packed: bool,
}

impl TablePlan {
    pub fn query(&self, range: &KeyRange) -> String {
        match &self.key {
            Some(k) if !range.is_all() => {
                format!(
                    "SELECT {} FROM {} WHERE {}",
                    self.select_list,
                    self.from,
                    range.condition(k)
                )
            }
            _ => format!("SELECT {} FROM {}", self.select_list, self.from),
        }
    }

    pub fn count_query(&self) -> String {
        format!("SELECT COUNT(*) FROM {}", self.from)
    }
}

/// Columns of a table as the dump needs them.
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub generated: bool,
    /// A system-versioning period column (`AS ROW START` / `AS ROW END`).
    pub period: bool,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
}

/// A row of `information_schema.COLUMNS` as [`column_info`] reads it.
type ColumnRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

const COLUMN_FIELDS: &str = "COLUMN_NAME, DATA_TYPE, EXTRA, GENERATION_EXPRESSION, IS_NULLABLE, \
                             CHARACTER_SET_NAME, COLLATION_NAME";

fn column_info(row: ColumnRow) -> ColumnInfo {
    let (name, data_type, extra, expression, nullable, charset, collation) = row;
    // System-versioning period columns report as generated with the expression
    // `ROW START` / `ROW END`; their values are data and are dumped.
    let period = matches!(expression.as_deref(), Some("ROW START") | Some("ROW END"));
    ColumnInfo {
        name,
        data_type: data_type.to_ascii_lowercase(),
        generated: !period && extra.to_ascii_uppercase().contains("GENERATED"),
        period,
        nullable: nullable == "YES",
        charset,
        collation,
    }
}

pub async fn table_columns(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<ColumnInfo>> {
    let rows: Vec<ColumnRow> = conn
        .query(format!(
            "SELECT {COLUMN_FIELDS} FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
            quote_string(db),
            quote_string(table)
        ))
        .await?;
    Ok(rows.into_iter().map(column_info).collect())
}

/// The columns of every table (and view) of `db`, by table name, in one query: thousands of
/// small tables cost one round trip instead of one each.
pub async fn schema_columns(conn: &mut Conn, db: &str) -> Result<HashMap<String, Vec<ColumnInfo>>> {
    columns_of(conn, db, None).await
}

/// The columns of the tables `only` of `db` (all with `None`), by table name, in one query.
pub async fn columns_of(
    conn: &mut Conn,
    db: &str,
    only: Option<&[&str]>,
) -> Result<HashMap<String, Vec<ColumnInfo>>> {
    let names = match only {
        Some([]) => return Ok(HashMap::new()),
        Some(names) => format!(
            " AND TABLE_NAME IN ({})",
            names
                .iter()
                .map(|n| quote_string(n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    type Named = (
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Named> = conn
        .query(format!(
            "SELECT TABLE_NAME, {COLUMN_FIELDS} FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = {}{names} ORDER BY TABLE_NAME, ORDINAL_POSITION",
            quote_string(db)
        ))
        .await?;
    let mut out: HashMap<String, Vec<ColumnInfo>> = HashMap::new();
    for (table, a, b, c, d, e, f, g) in rows {
        out.entry(table)
            .or_default()
            .push(column_info((a, b, c, d, e, f, g)));
    }
    Ok(out)
}

/// The server's size estimates (`DATA_LENGTH`, `TABLE_ROWS`) of every table of `db`, by name.
async fn schema_estimates(conn: &mut Conn, db: &str) -> Result<HashMap<String, (u64, u64)>> {
    let rows: Vec<(String, u64, u64)> = conn
        .query(format!(
            "SELECT TABLE_NAME, COALESCE(DATA_LENGTH, 0), COALESCE(TABLE_ROWS, 0) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}",
            quote_string(db)
        ))
        .await?;
    Ok(rows.into_iter().map(|(t, b, r)| (t, (b, r))).collect())
}

/// The select expression of a column, chosen so that the value loads back exactly:
/// - FLOAT is widened to DOUBLE, whose text form round-trips (the server prints FLOAT with 6
///   significant digits), by `* 1e0`: exact, keeps the sign of -0, and unlike
///   `CAST(.. AS DOUBLE)` also understood by MySQL before 8.0.17;
/// - MariaDB's UUID, INET6 and INET4 are dumped in their binary form, because a binary-charset
///   load (as ours is) reads these types from their binary form, not their text.
fn select_expr(c: &ColumnInfo) -> String {
    let q = quote_ident(&c.name);
    match c.data_type.as_str() {
        "float" => format!("{q} * 1e0"),
        "uuid" | "inet6" | "inet4" => format!("CAST({q} AS BINARY)"),
        _ => q,
    }
}

/// Builds the select list, key and ranges of every table with rows in `schema`, one database
/// at a time on each of `conns` (in `schema`'s order whatever finishes first). Columns and size
/// estimates come from one query each per database; only a table big enough to split costs
/// queries of its own (its keys and bounds). The connections need a snapshot member's session
/// settings ([`like_a_member`]) but not its snapshot: the ranges tile the whole key space
/// whatever the boundaries, and the row counts prove it.
pub async fn plan_tables(
    conns: &mut [Conn],
    schema: &SchemaDump,
    filter: &Filter,
    chunk_bytes: u64,
) -> Result<Vec<TablePlan>> {
    if conns.is_empty() {
        return Err(Error::internal("planning tables with no connection"));
    }
    let planned = map_parallel(
        conns,
        schema.databases.iter().collect(),
        async |conn: &mut Conn, db: &DatabaseSchema| {
            plan_database(conn, db, filter, chunk_bytes).await
        },
    )
    .await?;
    Ok(planned.into_iter().flatten().collect())
}

/// The plans of `db`'s tables with rows (see [`plan_tables`]).
async fn plan_database(
    conn: &mut Conn,
    db: &DatabaseSchema,
    filter: &Filter,
    chunk_bytes: u64,
) -> Result<Vec<TablePlan>> {
    let tables: Vec<_> = db
        .tables
        .iter()
        .filter(|t| t.kind != TableKind::Sequence && filter.table(&db.name, &t.name))
        .collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = schema_columns(conn, &db.name).await?;
    let estimates = schema_estimates(conn, &db.name).await?;
    let mut plans = Vec::with_capacity(tables.len());
    for t in tables {
        let with_history = t.kind == TableKind::SystemVersioned;
        let cols = columns.remove(&t.name).unwrap_or_default();
        let (bytes, rows) = estimates.get(&t.name).copied().unwrap_or((0, 0));
        let (mut plan, cols) = base_plan(&db.name, &t.name, with_history, cols, bytes)?;
        split_plan(conn, &mut plan, &cols, rows, chunk_bytes).await?;
        plans.push(plan);
    }
    Ok(plans)
}

/// Plans one table; see [`plan_tables`] for many.
pub async fn plan_table(
    conn: &mut Conn,
    db: &str,
    table: &str,
    with_history: bool,
    chunk_bytes: u64,
) -> Result<TablePlan> {
    let cols = table_columns(conn, db, table).await?;
    let (estimated_bytes, estimated_rows) = if chunk_bytes == u64::MAX {
        // Never split: the estimates are not needed.
        (0, 0)
    } else {
        conn.query_first(format!(
            "SELECT COALESCE(DATA_LENGTH, 0), COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            quote_string(db),
            quote_string(table)
        ))
        .await?
        .unwrap_or((0, 0))
    };
    let (mut plan, cols) = base_plan(db, table, with_history, cols, estimated_bytes)?;
    split_plan(conn, &mut plan, &cols, estimated_rows, chunk_bytes).await?;
    Ok(plan)
}

/// A table's plan read whole (one range), from its columns as `information_schema` lists them;
/// also returns the stored columns, which [`split_plan`] needs.
pub fn base_plan(
    db: &str,
    table: &str,
    with_history: bool,
    columns: Vec<ColumnInfo>,
    estimated_bytes: u64,
) -> Result<(TablePlan, Vec<ColumnInfo>)> {
    let mut cols: Vec<ColumnInfo> = columns.into_iter().filter(|c| !c.generated).collect();
    if with_history && !cols.iter().any(|c| c.period) {
        // Implicit versioning columns are hidden from information_schema but always exist.
        for name in ["row_start", "row_end"] {
            cols.push(ColumnInfo {
                name: name.into(),
                data_type: "timestamp".into(),
                generated: false,
                period: true,
                nullable: false,
                charset: None,
                collation: None,
            });
        }
    }
    if cols.is_empty() {
        return Err(Error::server(format!(
            "table `{db}`.`{table}` has no storable columns"
        )));
    }
    let mut from = format!("{}.{}", quote_ident(db), quote_ident(table));
    if with_history {
        from.push_str(" FOR SYSTEM_TIME ALL");
    }
    let select_list = cols.iter().map(select_expr).collect::<Vec<_>>().join(", ");
    let plan = TablePlan {
        database: db.to_string(),
        table: table.to_string(),
        columns: cols.iter().map(|c| c.name.clone()).collect(),
        select_list,
        from,
        with_history,
        key: None,
        ranges: vec![KeyRange::ALL],
        estimated_bytes,
        packed: false,
    };
    Ok((plan, cols))
}

/// Splits a table the server estimates at more than `chunk_bytes` into key ranges (the server's
/// estimates: bytes size the chunks, rows space sampled boundaries).
async fn split_plan(
    conn: &mut Conn,
    plan: &mut TablePlan,
    cols: &[ColumnInfo],
    estimated_rows: u64,
    chunk_bytes: u64,
) -> Result<()> {
    let parts = chunk_count(plan.estimated_bytes, chunk_bytes, MAX_CHUNKS_PER_TABLE);
    if parts > 1 {
        if let Some(key) = split_key(conn, &plan.database, &plan.table, cols).await? {
            plan.ranges = match &key.literal {
                None => integer_ranges(conn, &plan.from, &key.column, parts).await?,
                Some(literal) => {
                    let step = (estimated_rows / parts).max(1);
                    let bounds =
                        sample_boundaries(conn, &plan.from, &key.column, literal, step, parts)
                            .await?;
                    KeyRange::tiling(bounds)
                }
            };
            plan.key = Some(key.column);
        }
    }
    Ok(())
}

/// Ranges of an integer column from its MIN and MAX in the snapshot.
async fn integer_ranges(
    conn: &mut Conn,
    from: &str,
    column: &str,
    parts: u64,
) -> Result<Vec<KeyRange>> {
    let q = quote_ident(column);
    let bounds: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!("SELECT MIN({q}), MAX({q}) FROM {from}"))
        .await?;
    let Some((Some(min), Some(max))) = bounds else {
        return Ok(vec![KeyRange::ALL]);
    };
    let parse = |s: &str| {
        s.parse::<i128>()
            .map_err(|_| Error::server(format!("bad key bound `{s}`")))
    };
    Ok(split_range(parse(&min)?, parse(&max)?, parts))
}

/// Boundaries of a non-integer key column: every `step`-th distinct value in key order, found by
/// walking the index from the previous boundary. Each boundary is strictly greater than the one
/// before under the very comparison the chunk conditions use, so the ranges tile the column.
async fn sample_boundaries(
    conn: &mut Conn,
    from: &str,
    column: &str,
    literal: &LiteralKind,
    step: u64,
    parts: u64,
) -> Result<Vec<String>> {
    let q = quote_ident(column);
    let mut bounds: Vec<String> = Vec::new();
    while (bounds.len() as u64) + 1 < parts {
        let after = bounds
            .last()
            .map_or(String::new(), |b| format!("WHERE {q} > {b} "));
        let sql = format!(
            "SELECT {q} FROM {from} {after}ORDER BY {q} LIMIT 1 OFFSET {}",
            step - 1
        );
        let value: Option<Option<Vec<u8>>> = conn.query_first(sql).await?;
        match value.flatten() {
            Some(raw) => bounds.push(literal.render(&raw)),
            None => break,
        }
    }
    Ok(bounds)
}

/// How a sampled key value is written back as an SQL literal that compares like the column.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralKind {
    /// Text in the column's character set and collation: `_utf8mb4 X'..' COLLATE ..`.
    Text { charset: String, collation: String },
    /// Binary strings: `X'..'`.
    Binary,
    /// DECIMAL: the server's text form, an exact decimal literal.
    Decimal,
    /// Temporal types: the server's text form, quoted (read in the dump session's UTC).
    Quoted,
}

impl LiteralKind {
    /// The kind for a column type; `None` for types whose text form does not compare exactly
    /// (FLOAT, DOUBLE, ENUM, SET, BIT, JSON, UUID, ...): such tables are dumped whole.
    pub fn for_column(
        data_type: &str,
        charset: Option<&str>,
        collation: Option<&str>,
    ) -> Option<Self> {
        match data_type {
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                let (cs, coll) = (charset?, collation?);
                let plain = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                (plain(cs) && plain(coll)).then(|| LiteralKind::Text {
                    charset: cs.to_string(),
                    collation: coll.to_string(),
                })
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Some(LiteralKind::Binary)
            }
            "decimal" => Some(LiteralKind::Decimal),
            "date" | "datetime" | "timestamp" | "time" | "year" => Some(LiteralKind::Quoted),
            _ => None,
        }
    }

    pub fn render(&self, raw: &[u8]) -> String {
        match self {
            LiteralKind::Text { charset, collation } => {
                format!("_{charset} X'{}' COLLATE {collation}", hex::encode(raw))
            }
            LiteralKind::Binary => format!("X'{}'", hex::encode(raw)),
            LiteralKind::Decimal
                if raw
                    .iter()
                    .all(|b| b.is_ascii_digit() || *b == b'.' || *b == b'-') =>
            {
                String::from_utf8_lossy(raw).into_owned()
            }
            LiteralKind::Decimal | LiteralKind::Quoted => {
                quote_string(&String::from_utf8_lossy(raw))
            }
        }
    }
}

const INTEGER_TYPES: &[&str] = &["tinyint", "smallint", "mediumint", "int", "bigint"];

/// The column a table is split on.
struct SplitKey {
    column: String,
    /// `None` for an integer column (split arithmetically), else how to write sampled values.
    literal: Option<LiteralKind>,
}

/// The leading column of the primary key, or of a unique key whose columns are all NOT NULL.
/// An integer leading column is preferred (exact arithmetic split); otherwise the first key
/// whose leading column can be sampled. `cols` are the table's stored columns; a key with a
/// generated column among its parts is not used.
async fn split_key(
    conn: &mut Conn,
    db: &str,
    table: &str,
    cols: &[ColumnInfo],
) -> Result<Option<SplitKey>> {
    // information_schema.STATISTICS alone: joined with COLUMNS, MariaDB fills COLUMNS for every
    // table of every database (about 17 ms a table here, all before the first row is dumped).
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            quote_string(db),
            quote_string(table)
        ))
        .await?;
    let mut index_names: Vec<&str> = Vec::new();
    for (name, _) in &rows {
        if !index_names.contains(&name.as_str()) {
            index_names.push(name);
        }
    }
    let mut sampled: Option<SplitKey> = None;
    for name in index_names {
        let parts: Vec<Option<&ColumnInfo>> = rows
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| cols.iter().find(|c| c.name == r.1))
            .collect();
        if parts.iter().any(|c| c.is_none_or(|c| c.nullable)) {
            continue;
        }
        let Some(Some(col)) = parts.first() else {
            continue;
        };
        if INTEGER_TYPES.contains(&col.data_type.as_str()) {
            return Ok(Some(SplitKey {
                column: col.name.clone(),
                literal: None,
            }));
        }
        if sampled.is_none() {
            if let Some(kind) = LiteralKind::for_column(
                &col.data_type,
                col.charset.as_deref(),
                col.collation.as_deref(),
            ) {
                sampled = Some(SplitKey {
                    column: col.name.clone(),
                    literal: Some(kind),
                });
            }
        }
    }
    Ok(sampled)
}

/// A table's dump result.
struct DumpedTable {
    data: TableData,
}

/// One key range of one table, for a dump worker.
struct Job {
    table: usize,
    index: usize,
    range: KeyRange,
}

/// One dumped chunk: its entry (file, or pack segment) and its rows' fingerprint.
struct JobResult {
    table: usize,
    index: usize,
    entry: ChunkEntry,
    fingerprint: Fingerprint,
}

/// Which tables are packed: a table the server estimates below `table_bytes` and not split is
/// dumped into a shared pack file instead of a file of its own, when the backup has at least
/// `min_tables` such tables (below that, a file each costs nothing worth saving).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackPolicy {
    pub table_bytes: u64,
    pub min_tables: usize,
}

impl PackPolicy {
    /// Tables never packed: every chunk a file (manifest format 1).
    pub const NEVER: PackPolicy = PackPolicy {
        table_bytes: 0,
        min_tables: usize::MAX,
    };

    /// Marks the plans whose tables are packed; returns how many.
    pub fn apply(&self, plans: &mut [TablePlan]) -> usize {
        let small = |p: &TablePlan| p.ranges.len() == 1 && p.estimated_bytes < self.table_bytes;
        let n = plans.iter().filter(|p| small(p)).count();
        if n < self.min_tables || n == 0 {
            plans.iter_mut().for_each(|p| p.packed = false);
            return 0;
        }
        for p in plans.iter_mut() {
            p.packed = small(p);
        }
        n
    }
}

impl Default for PackPolicy {
    fn default() -> Self {
        PackPolicy {
            table_bytes: PACK_TABLE_BYTES,
            min_tables: PACK_MIN_TABLES,
        }
    }
}

/// Tables the server estimates below this many bytes (and not split) are packed.
pub const PACK_TABLE_BYTES: u64 = 1 << 20;
/// Packing starts at this many small tables in one backup.
pub const PACK_MIN_TABLES: usize = 100;
/// A pack is closed once it holds this many uncompressed bytes...
const PACK_RAW_BYTES: u64 = 16 << 20;
/// ... or this many tables, so a restore spreads packs over its workers.
const PACK_MAX_TABLES: usize = 250;

async fn dump_tables(
    storage: &Arc<dyn Storage>,
    id: &str,
    plans: Vec<TablePlan>,
    workers: Vec<WireConn>,
    control: Conn,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<(Vec<DumpedTable>, Vec<FileEntry>)> {
    let total_bytes: u64 = plans.iter().map(|p| p.estimated_bytes).sum();
    progress.phase("dump", total_bytes, "bytes");
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plans[i].estimated_bytes));
    let mut jobs = VecDeque::new();
    for &t in &order {
        for (index, range) in plans[t].ranges.iter().enumerate() {
            jobs.push_back(Job {
                table: t,
                index,
                range: range.clone(),
            });
        }
    }
    let queue = Arc::new(Mutex::new(jobs));
    let plans = Arc::new(plans);
    let packs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let counting = count_rows(control, &plans, order);
    // Each worker is its own task: it reads a block of rows and hands it to the blocking pool
    // to compress while it reads the next; it hashes and writes finished frames in order.
    // Small tables go into the worker's open pack, one segment each, until the pack is full.
    let mut tasks = tokio::task::JoinSet::new();
    for conn in workers {
        let queue = queue.clone();
        let plans = plans.clone();
        let storage = storage.clone();
        let progress = progress.clone();
        let packs = packs.clone();
        let id = id.to_string();
        let level = opts.compression_level;
        tasks.spawn(async move {
            let mut conn = conn;
            let mut out = Vec::new();
            let mut block = Vec::with_capacity(ROW_BUFFER + ROW_SLACK);
            let mut closing = VecDeque::new();
            let mut pack: Option<OpenPack> = None;
            let ctx = JobContext {
                storage: &*storage,
                id: &id,
                plans: &plans,
                level,
                progress: &*progress,
                packs: &packs,
            };
            let result = async {
                loop {
                    let job = queue.lock().expect("queue lock").pop_front();
                    let Some(job) = job else { break };
                    if plans[job.table].packed {
                        pack_job(&mut conn, &ctx, job, &mut block, &mut pack).await?;
                        if pack.as_ref().is_some_and(OpenPack::full) {
                            closing.push_back(pack.take().expect("open pack").close());
                        }
                    } else {
                        closing.push_back(run_job(&mut conn, &ctx, job, &mut block).await?);
                    }
                    // The table's metadata lock goes; the snapshot stays.
                    conn.execute(RELEASE_TABLE_LOCKS).await?;
                    if closing.len() > MAX_CLOSING {
                        if let Some(oldest) = closing.pop_front() {
                            out.push(oldest.done().await?);
                        }
                    }
                }
                if let Some(p) = pack.take() {
                    closing.push_back(p.close());
                }
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = result {
                if let Some(p) = pack.take() {
                    p.sink.abort().await;
                }
                return Err(e);
            }
            // End the snapshot transaction politely.
            let _ = conn.execute("ROLLBACK").await;
            for chunk in closing {
                out.push(chunk.done().await?);
            }
            Ok::<_, Error>(out)
        });
    }
    let dumping = async {
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let done = joined.map_err(|e| Error::internal(format!("dump worker failed: {e}")))?;
            results.extend(done?);
        }
        Ok::<_, Error>(results)
    };
    let (counts, closed) = match futures::try_join!(counting, dumping) {
        Ok(r) => r,
        Err(e) => {
            queue.lock().expect("queue lock").clear();
            return Err(e);
        }
    };
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        packs = packs.load(Ordering::Relaxed),
        "rows dumped"
    );
    let mut files = Vec::with_capacity(closed.len());
    let mut results = Vec::new();
    for (file, chunks) in closed {
        files.push(file);
        results.extend(chunks);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((assemble(&plans, results, counts)?, files))
}

/// Tables counted by one statement: one round trip per batch instead of one per table.
pub const COUNT_BATCH: usize = 64;

/// One statement returning one row with the `COUNT(*)` of each of `from` (`db`.`t` forms),
/// in order.
pub fn batched_count_query<'a>(from: impl IntoIterator<Item = &'a str>) -> String {
    let parts: Vec<String> = from
        .into_iter()
        .map(|f| format!("(SELECT COUNT(*) FROM {f})"))
        .collect();
    format!("SELECT {}", parts.join(", "))
}

/// Runs a [`batched_count_query`] of `n` tables and returns the counts in order.
pub async fn batched_counts(conn: &mut Conn, query: String, n: usize) -> Result<Vec<u64>> {
    let row: Option<mysql_async::Row> = conn.query_first(query).await?;
    let row = row.ok_or_else(|| Error::server("a row count query returned no row"))?;
    (0..n)
        .map(|i| {
            row.get_opt::<u64, _>(i)
                .and_then(|v| v.ok())
                .ok_or_else(|| Error::server("a row count query returned a bad value"))
        })
        .collect()
}

/// `COUNT(*)` of every table in the snapshot, biggest first, on the control connection, in
/// batches of [`COUNT_BATCH`] tables.
async fn count_rows(mut conn: Conn, plans: &[TablePlan], order: Vec<usize>) -> Result<Vec<u64>> {
    let started = Instant::now();
    let mut counts = vec![0; plans.len()];
    for batch in order.chunks(COUNT_BATCH) {
        let query = batched_count_query(batch.iter().map(|&t| plans[t].from.as_str()));
        let got = batched_counts(&mut conn, query, batch.len())
            .await
            .map_err(|e| {
                let first = &plans[batch[0]];
                e.context(format!(
                    "counting rows of {} table(s) from `{}`.`{}` on",
                    batch.len(),
                    first.database,
                    first.table
                ))
            })?;
        for (&t, n) in batch.iter().zip(got) {
            counts[t] = n;
        }
        conn.query_drop(RELEASE_TABLE_LOCKS).await?;
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "rows counted");
    let _ = conn.query_drop("ROLLBACK").await;
    Ok(counts)
}

/// What a dump worker shares with the others.
struct JobContext<'a> {
    storage: &'a dyn Storage,
    id: &'a str,
    plans: &'a [TablePlan],
    level: i32,
    progress: &'a dyn Progress,
    /// Packs started so far, which numbers the next.
    packs: &'a AtomicUsize,
}

/// A file whose rows are all read while its object is still being completed (the last frame
/// written, the file closed) in a task of its own, so the worker reads on meanwhile: one chunk,
/// or a pack of small tables' chunks. Every file is [`done`](Closing::done) before the manifest
/// can be written.
struct Closing {
    chunks: Vec<JobResult>,
    close: tokio::task::JoinHandle<Result<FileEntry>>,
    what: String,
}

impl Closing {
    async fn done(self) -> Result<(FileEntry, Vec<JobResult>)> {
        let closed = self
            .close
            .await
            .map_err(|e| Error::internal(format!("closing a chunk failed: {e}")))?;
        Ok((closed.map_err(|e| e.context(self.what))?, self.chunks))
    }
}

/// A worker's pack being filled: small tables' chunks, one segment each.
struct OpenPack {
    rel: String,
    sink: ParallelZstdSink,
    chunks: Vec<JobResult>,
}

impl OpenPack {
    fn full(&self) -> bool {
        self.sink.raw_size() >= PACK_RAW_BYTES || self.chunks.len() >= PACK_MAX_TABLES
    }

    fn close(self) -> Closing {
        Closing {
            what: format!("writing pack `{}`", self.rel),
            chunks: self.chunks,
            close: tokio::spawn(self.sink.finish()),
        }
    }
}

/// Dumps a small table's one range as a segment of the worker's open pack (opened if none).
async fn pack_job(
    conn: &mut WireConn,
    ctx: &JobContext<'_>,
    job: Job,
    block: &mut Vec<u8>,
    pack: &mut Option<OpenPack>,
) -> Result<()> {
    let plan = &ctx.plans[job.table];
    if pack.is_none() {
        let rel = layout::pack_file(ctx.packs.fetch_add(1, Ordering::Relaxed));
        let sink =
            HashingSink::create_unsynced(ctx.storage, &layout::backup_file(ctx.id, &rel), &rel)
                .await?;
        *pack = Some(OpenPack {
            rel,
            sink: ParallelZstdSink::new(sink, ctx.level, COMPRESSING_PER_WORKER),
            chunks: Vec::new(),
        });
    }
    let open = pack.as_mut().expect("opened above");
    let what = || format!("dumping `{}`.`{}`", plan.database, plan.table);
    let raw_before = open.sink.raw_size();
    open.sink
        .begin_segment()
        .await
        .map_err(|e| e.context(what()))?;
    let fingerprint = dump_chunk(conn, plan, &job.range, &mut open.sink, block, ctx.progress)
        .await
        .map_err(|e| e.context(what()))?;
    let segment = open
        .sink
        .end_segment()
        .await
        .map_err(|e| e.context(what()))?;
    open.chunks.push(JobResult {
        table: job.table,
        index: job.index,
        entry: ChunkEntry {
            file: open.rel.clone(),
            range: "TRUE".to_string(),
            rows: fingerprint.rows,
            raw_size: open.sink.raw_size() - raw_before,
            segment: Some(segment),
        },
        fingerprint,
    });
    Ok(())
}

async fn run_job(
    conn: &mut WireConn,
    ctx: &JobContext<'_>,
    job: Job,
    block: &mut Vec<u8>,
) -> Result<Closing> {
    let Job {
        table,
        index,
        range,
    } = job;
    let plan = &ctx.plans[table];
    let rel = layout::chunk_file(&plan.database, &plan.table, index);
    // Durable at the barrier before the manifest, not one flush per chunk (thousands of tables).
    let sink =
        HashingSink::create_unsynced(ctx.storage, &layout::backup_file(ctx.id, &rel), &rel).await?;
    let mut zsink = ParallelZstdSink::new(sink, ctx.level, COMPRESSING_PER_WORKER);
    let what = || format!("dumping `{}`.`{}`", plan.database, plan.table);
    let fingerprint = match dump_chunk(conn, plan, &range, &mut zsink, block, ctx.progress).await {
        Ok(f) => f,
        Err(e) => {
            zsink.abort().await;
            return Err(e.context(what()));
        }
    };
    let raw_size = zsink.raw_size();
    let close = tokio::spawn(zsink.finish());
    let condition = plan
        .key
        .as_deref()
        .map_or("TRUE".to_string(), |k| range.condition(k));
    let entry = ChunkEntry {
        file: rel,
        range: condition,
        rows: fingerprint.rows,
        raw_size,
        segment: None,
    };
    Ok(Closing {
        chunks: vec![JobResult {
            table,
            index,
            entry,
            fingerprint,
        }],
        close,
        what: what(),
    })
}

/// Streams one range's rows as TSV, straight from the row packets, into `sink`: one zstd frame
/// per block of [`ROW_BUFFER`] bytes, cut at a line end.
async fn dump_chunk(
    conn: &mut WireConn,
    plan: &TablePlan,
    range: &KeyRange,
    sink: &mut ParallelZstdSink,
    block: &mut Vec<u8>,
    progress: &dyn Progress,
) -> Result<Fingerprint> {
    let mut fingerprint = Fingerprint::default();
    block.clear();
    let columns = conn.query(&plan.query(range)).await?;
    if columns != plan.columns.len() {
        return Err(Error::server(format!(
            "the dump query returned {columns} columns, {} expected",
            plan.columns.len()
        )));
    }
    while let Some(packet) = conn.next_row().await? {
        let start = block.len();
        match encode_packet(packet, block) {
            Ok(n) if n == columns => {}
            Ok(n) => {
                return Err(Error::server(format!(
                    "a row packet has {n} values, {columns} expected"
                )))
            }
            Err(e) => return Err(Error::server(e.to_string())),
        }
        fingerprint.add_row(&block[start..]);
        if block.len() >= ROW_BUFFER {
            progress.advance(block.len() as u64);
            *block = sink.write_frame(std::mem::take(block)).await?;
        }
    }
    if !block.is_empty() {
        progress.advance(block.len() as u64);
        *block = sink.write_frame(std::mem::take(block)).await?;
    }
    Ok(fingerprint)
}

/// Hashes a restored table's rows exactly as the dump did, for `restore --verify`.
pub async fn fingerprint_table(conn: &mut Conn, plan: &TablePlan) -> Result<Fingerprint> {
    let mut fingerprint = Fingerprint::default();
    let mut line = Vec::with_capacity(4096);
    let mut result = conn.query_iter(plan.query(&KeyRange::ALL)).await?;
    while let Some(row) = result.next().await? {
        line.clear();
        encode_row(&row, &mut line);
        fingerprint.add_row(&line);
    }
    Ok(fingerprint)
}

/// Puts each table's chunks in order and checks its dumped rows against its snapshot count.
fn assemble(
    plans: &[TablePlan],
    results: Vec<JobResult>,
    counts: Vec<u64>,
) -> Result<Vec<DumpedTable>> {
    let mut chunks: Vec<Vec<(usize, ChunkEntry, Fingerprint)>> = vec![Vec::new(); plans.len()];
    for r in results {
        chunks[r.table].push((r.index, r.entry, r.fingerprint));
    }
    let mut out = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        let mut parts = std::mem::take(&mut chunks[i]);
        parts.sort_by_key(|p| p.0);
        if parts.len() != plan.ranges.len() {
            return Err(Error::internal(format!(
                "`{}`.`{}`: {} of {} chunks dumped",
                plan.database,
                plan.table,
                parts.len(),
                plan.ranges.len()
            )));
        }
        let mut fingerprint = Fingerprint::default();
        for p in &parts {
            fingerprint.merge(&p.2);
        }
        let counted = counts[i];
        if counted != fingerprint.rows {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "`{}`.`{}`: dumped {} rows but COUNT(*) in the same snapshot is {counted}; \
                     the backup is incomplete and was not committed",
                    plan.database, plan.table, fingerprint.rows
                ),
            ));
        }
        out.push(DumpedTable {
            data: TableData {
                database: plan.database.clone(),
                table: plan.table.clone(),
                columns: plan.columns.clone(),
                with_history: plan.with_history,
                row_count: counted,
                fingerprint,
                chunks: parts.into_iter().map(|(_, e, _)| e).collect(),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::LiteralKind;

    #[test]
    fn sampled_key_literals() {
        let text = LiteralKind::for_column("varchar", Some("utf8mb4"), Some("utf8mb4_general_ci"))
            .unwrap();
        assert_eq!(
            text.render("Ab".as_bytes()),
            "_utf8mb4 X'4162' COLLATE utf8mb4_general_ci"
        );
        assert_eq!(
            LiteralKind::for_column("varbinary", None, None)
                .unwrap()
                .render(&[0, 0xff]),
            "X'00ff'"
        );
        assert_eq!(
            LiteralKind::for_column("decimal", None, None)
                .unwrap()
                .render(b"-12.50"),
            "-12.50"
        );
        assert_eq!(
            LiteralKind::for_column("datetime", None, None)
                .unwrap()
                .render(b"2024-01-02 03:04:05"),
            "'2024-01-02 03:04:05'"
        );
        for unsupported in ["float", "double", "enum", "set", "bit", "json", "uuid"] {
            assert_eq!(
                LiteralKind::for_column(unsupported, Some("utf8mb4"), Some("x")),
                None,
                "{unsupported}"
            );
        }
        assert_eq!(
            LiteralKind::for_column("varchar", Some("utf8mb4"), Some("bad name; --")),
            None
        );
    }
}
