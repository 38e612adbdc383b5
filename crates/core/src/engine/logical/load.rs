//! Rows into the target: the restore's load pipeline.
//!
//! Every worker has two connections. Its *loader* takes the next job — a whole table's chunks
//! in key order, or single chunks when there are fewer tables than workers — and streams each
//! chunk from the repository through checksum verification and decompression (no staging copy
//! on disk) into the target: through `COM_STMT_BULK_EXECUTE` into MariaDB
//! ([`bulk_load`](super::bulk_load)), with `LOAD DATA LOCAL INFILE` into MySQL. Each chunk loads
//! in its own transaction, committed only if the stream verified and the row count matches, so
//! a corrupt chunk never leaves rows behind.
//!
//! Its *indexer* takes the next table whose rows are all in and builds the table's held-back
//! secondary indexes, while the loaders go on with the next tables, instead of leaving a core
//! idle while one connection waits for the build.
//!
//! Once every table is built, [`check_tables`] counts each table's rows (and with `verify`,
//! recomputes its fingerprint) against the manifest. Counting waits for the end on purpose: a
//! `COUNT(*)` through a freshly built secondary index, while an older load transaction is still
//! open, looks every row up in the clustered index (InnoDB cannot tell from the index page that
//! the rows are visible), which turned a 0.07 s count into 3.5 s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{try_join, try_join_all};
use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::sync::mpsc;

use super::backup::{
    base_plan, batched_count_query, batched_counts, columns_of, fingerprint_table, COUNT_BATCH,
};
use super::bulk_load::BulkLoader;
use super::ddl::{quote_ident, SplitCreate};
use super::schema;
use super::tsv::LOAD_DATA_FORMAT;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::manifest::{ChunkEntry, FileEntry, Segment, TableData};
use crate::pipeline::{decompress_stream, read_verified, verify_stream};
use crate::progress::Progress;
use crate::repo::layout;
use crate::source::ConnectionConfig;
use crate::storage::{ByteStream, Storage};
use crate::{Error, Result};

/// How a worker's rows reach the target.
enum RowLoader {
    /// MariaDB 10.2 and later: bulk execute of one prepared `INSERT`.
    Bulk(BulkLoader),
    /// MySQL, and MariaDB without bulk operations: `LOAD DATA LOCAL INFILE`.
    LoadData(Conn),
}

/// One worker: a connection loading rows and one building indexes and checking tables, both
/// with the loaders' session settings.
pub(super) struct Worker {
    rows: RowLoader,
    indexer: Conn,
}

impl Worker {
    /// Connects both connections and runs `setup` on them; `bulk` asks for bulk execute where
    /// the server supports it.
    pub(super) async fn connect(
        target: &ConnectionConfig,
        setup: &[String],
        bulk: bool,
    ) -> Result<Worker> {
        let rows = match bulk {
            true => BulkLoader::connect(target, setup).await?,
            false => None,
        };
        let rows = match rows {
            Some(bulk) => RowLoader::Bulk(bulk),
            None => RowLoader::LoadData(set_up(target, setup).await?),
        };
        let indexer = set_up(target, setup).await?;
        Ok(Worker { rows, indexer })
    }

    /// The connection that builds indexes and checks tables; free before the load starts.
    pub(super) fn indexer(&mut self) -> &mut Conn {
        &mut self.indexer
    }
}

/// A driver connection with `setup` run on it.
async fn set_up(target: &ConnectionConfig, setup: &[String]) -> Result<Conn> {
    let mut conn = target.connect().await?;
    conn.query_drop(setup.join("; ")).await?;
    Ok(conn)
}

/// One table of the restore, as the load pipeline sees it.
pub(super) struct LoadTable<'a> {
    pub db: &'a str,
    pub name: &'a str,
    /// The table's rows in the backup; `None` for a table without rows to load.
    pub data: Option<&'a TableData>,
    /// Its MySQL JSON columns, which `LOAD DATA` converts from utf8mb4 text.
    pub json: &'a [String],
    /// Its held-back secondary indexes (without foreign keys), if it has any.
    pub indexes: Option<SplitCreate>,
}

/// What the check of one restored table found.
pub(super) struct TableCheck {
    /// Index into the tables given to [`check_tables`].
    pub table: usize,
    pub rows: u64,
    /// `Some(true)` when the fingerprint was recomputed and matched.
    pub fingerprint_verified: Option<bool>,
}

/// Loads every table's chunks and builds its held-back indexes (see the module documentation);
/// returns the bytes loaded. Fails on the first error of any connection; the caller removes
/// what was created.
pub(super) async fn load_tables(
    storage: &Arc<dyn Storage>,
    backup_id: &str,
    files: &[FileEntry],
    tables: &[LoadTable<'_>],
    workers: &mut [Worker],
    progress: Arc<dyn Progress>,
) -> Result<u64> {
    let files: BTreeMap<&str, &FileEntry> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let jobs = plan_loads(tables, workers.len());
    progress.phase("load", jobs.iter().map(|j| j.bytes).sum(), "bytes");
    let loaded = AtomicU64::new(0);
    let tally = Mutex::new(Tally::default());

    // A table goes to the indexers once its last chunk is in (at once if it has none).
    let chunks_left: Vec<usize> = tables
        .iter()
        .map(|t| t.data.map_or(0, |d| loaded_chunks(d).count()))
        .collect();
    let (rows_in, rows_in_rx) = mpsc::unbounded_channel::<usize>();
    for (i, _) in chunks_left.iter().enumerate().filter(|(_, n)| **n == 0) {
        let _ = rows_in.send(i);
    }
    let chunks_left = Mutex::new(chunks_left);

    let (mut loaders, indexers): (Vec<&mut RowLoader>, Vec<&mut Conn>) = workers
        .iter_mut()
        .map(|w| (&mut w.rows, &mut w.indexer))
        .unzip();
    let loads = async {
        run_parallel(
            &mut loaders,
            jobs,
            async |loader: &mut &mut RowLoader, job: LoadJob| {
                let Some(first) = job.chunks.first() else {
                    return Ok(());
                };
                // A pack is read whole when this job loads most of it and it is of bounded size
                // (every segment it loads checked before the first loads), else segment by
                // segment (each checked before its load commits). A job of chunk files (one
                // table's) reads each of its files.
                let whole = if job.packed {
                    let (path, entry) = chunk_file(&files, backup_id, &first.1)?;
                    let wanted: u64 = job
                        .chunks
                        .iter()
                        .filter_map(|(_, c)| c.segment.as_ref().map(|s| s.length))
                        .sum();
                    if entry.size <= PACK_READ_WHOLE && wanted * 2 >= entry.size {
                        Some(read_pack(&**storage, &path, entry, &job, tables).await?)
                    } else {
                        None
                    }
                } else {
                    None
                };
                for (t, chunk) in &job.chunks {
                    let table = &tables[*t];
                    let data = table.data.expect("jobs only for tables with data");
                    let (path, entry) = chunk_file(&files, backup_id, chunk)?;
                    let stream = match (&chunk.segment, &whole) {
                        (None, _) => read_verified(&**storage, &path, entry).await?,
                        (Some(segment), Some(bytes)) => {
                            let piece =
                                bytes.slice(segment.offset as usize..segment.range().end as usize);
                            futures::stream::once(async move { Ok(piece) }).boxed()
                        }
                        (Some(segment), None) => {
                            read_segment(&**storage, &path, segment, table).await?
                        }
                    };
                    let rows = decompress_stream(stream, &path)?;
                    load_chunk(loader, table, data, rows, chunk.rows, &path).await?;
                    loaded.fetch_add(chunk.raw_size, Ordering::Relaxed);
                    progress.advance(chunk.raw_size);
                    let left = {
                        let mut left = chunks_left.lock().expect("chunk counts");
                        left[*t] -= 1;
                        left[*t]
                    };
                    if left == 0 {
                        tracing::debug!(db = table.db, table = table.name, "rows loaded");
                        let _ = rows_in.send(*t);
                    }
                }
                Ok(())
            },
        )
        .await?;
        drop(rows_in);
        tally
            .lock()
            .expect("tally")
            .loads_done(tables.len(), &*progress);
        Ok(())
    };

    let queue = tokio::sync::Mutex::new(rows_in_rx);
    let builds = try_join_all(indexers.into_iter().map(|conn| {
        let (queue, tally, progress) = (&queue, &tally, &progress);
        async move {
            loop {
                let next = queue.lock().await.recv().await;
                let Some(i) = next else {
                    return Ok::<_, Error>(());
                };
                build_indexes(conn, &tables[i]).await?;
                tally.lock().expect("tally").table_built(&**progress);
            }
        }
    }));

    try_join(loads, builds).await?;
    Ok(loaded.into_inner())
}

/// The repository path of the file holding `chunk` (its own file or its pack) and the file's
/// manifest entry.
fn chunk_file<'f>(
    files: &BTreeMap<&str, &'f FileEntry>,
    backup_id: &str,
    chunk: &ChunkEntry,
) -> Result<(String, &'f FileEntry)> {
    let entry = files.get(chunk.file.as_str()).copied().ok_or_else(|| {
        Error::integrity(format!(
            "the manifest lists chunk `{}` but not its checksum",
            chunk.file
        ))
    })?;
    Ok((layout::backup_file(backup_id, &chunk.file), entry))
}

/// Progress once the rows are in: the tables whose indexes are still being built.
#[derive(Default)]
struct Tally {
    built: usize,
    loads_done: bool,
}

impl Tally {
    fn loads_done(&mut self, tables: usize, progress: &dyn Progress) {
        self.loads_done = true;
        progress.phase("index", (tables - self.built) as u64, "tables");
    }

    fn table_built(&mut self, progress: &dyn Progress) {
        self.built += 1;
        if self.loads_done {
            progress.advance(1);
        }
    }
}

/// Builds a loaded table's held-back secondary indexes, if it has any.
async fn build_indexes(conn: &mut Conn, table: &LoadTable<'_>) -> Result<()> {
    let Some(indexes) = &table.indexes else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    schema::add_deferred(conn, table.db, table.name, indexes).await?;
    tracing::debug!(
        db = table.db,
        table = table.name,
        seconds = started.elapsed().as_secs_f64(),
        "secondary indexes built"
    );
    Ok(())
}

/// Checks every table with data against the manifest: its columns, its row count and, with
/// `verify`, its fingerprint. Tables are checked in batches of up to [`COUNT_BATCH`] of one
/// database: one query for their columns and one for their counts, so thousands of small
/// tables do not cost thousands of round trips.
pub(super) async fn check_tables(
    workers: &mut [Worker],
    tables: &[LoadTable<'_>],
    verify: bool,
    progress: Arc<dyn Progress>,
) -> Result<Vec<TableCheck>> {
    let with_data: Vec<usize> = (0..tables.len())
        .filter(|&i| tables[i].data.is_some())
        .collect();
    let phase = if verify { "verify" } else { "count" };
    progress.phase(phase, with_data.len() as u64, "tables");
    let batches = check_batches(tables, &with_data);
    let checks = Mutex::new(Vec::new());
    let mut indexers: Vec<&mut Conn> = workers.iter_mut().map(|w| &mut w.indexer).collect();
    run_parallel(
        &mut indexers,
        batches,
        async |conn: &mut &mut Conn, batch: Vec<usize>| {
            let done = check_batch(conn, &batch, tables, verify).await?;
            progress.advance(done.len() as u64);
            checks.lock().expect("checks").extend(done);
            Ok(())
        },
    )
    .await?;
    Ok(checks.into_inner().expect("checks"))
}

/// `with_data` in batches of one database each, at most [`COUNT_BATCH`] tables long.
fn check_batches(tables: &[LoadTable<'_>], with_data: &[usize]) -> Vec<Vec<usize>> {
    let mut by_db: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in with_data {
        by_db.entry(tables[i].db).or_default().push(i);
    }
    by_db
        .into_values()
        .flat_map(|v| {
            v.chunks(COUNT_BATCH)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn check_batch(
    conn: &mut Conn,
    batch: &[usize],
    tables: &[LoadTable<'_>],
    verify: bool,
) -> Result<Vec<TableCheck>> {
    let db = tables[batch[0]].db;
    let names: Vec<&str> = batch.iter().map(|&i| tables[i].name).collect();
    let mut columns = columns_of(conn, db, Some(&names)).await?;
    let mut plans = Vec::with_capacity(batch.len());
    for &i in batch {
        let table = &tables[i];
        let data = table.data.expect("only tables with data are checked");
        let cols = columns.remove(table.name).unwrap_or_default();
        let (plan, _) = base_plan(table.db, table.name, data.with_history, cols, 0)?;
        if plan.columns != data.columns {
            return Err(Error::integrity(format!(
                "`{}`.`{}`: restored columns {:?} differ from the backup's {:?}",
                table.db, table.name, plan.columns, data.columns
            )));
        }
        plans.push(plan);
    }
    let counts = batched_counts(
        conn,
        batched_count_query(plans.iter().map(|p| p.from.as_str())),
        plans.len(),
    )
    .await?;
    let mut out = Vec::with_capacity(batch.len());
    for ((&i, plan), rows) in batch.iter().zip(&plans).zip(counts) {
        let data = tables[i].data.expect("only tables with data are checked");
        let name = format!("`{}`.`{}`", tables[i].db, tables[i].name);
        if rows != data.row_count {
            return Err(Error::integrity(format!(
                "{name} has {rows} rows after the restore, the backup has {}",
                data.row_count
            )));
        }
        let mut fingerprint_verified = None;
        if verify {
            let fp = fingerprint_table(conn, plan).await?;
            if fp != data.fingerprint {
                return Err(Error::integrity(format!(
                    "{name}: the restored rows' fingerprint differs from the backup's \
                     ({} rows {:032x} vs {} rows {:032x})",
                    fp.rows, fp.sum, data.fingerprint.rows, data.fingerprint.sum
                )));
            }
            fingerprint_verified = Some(true);
        }
        out.push(TableCheck {
            table: i,
            rows,
            fingerprint_verified,
        });
    }
    Ok(out)
}

/// Loads one chunk of `table` through `loader`.
async fn load_chunk(
    loader: &mut RowLoader,
    table: &LoadTable<'_>,
    data: &TableData,
    rows: ByteStream,
    expected_rows: u64,
    path: &str,
) -> Result<()> {
    match loader {
        RowLoader::Bulk(bulk) => {
            bulk.load_chunk(
                table.db,
                table.name,
                &data.columns,
                rows,
                expected_rows,
                path,
            )
            .await
        }
        RowLoader::LoadData(conn) => {
            let columns = LoadColumns {
                names: &data.columns,
                json: table.json,
            };
            load_data(
                conn,
                table.db,
                table.name,
                &columns,
                rows,
                expected_rows,
                path,
            )
            .await
        }
    }
}

/// Runs `jobs` over the workers, each worker taking the next job when free.
pub(super) async fn run_parallel<W, J, F>(workers: &mut [W], jobs: Vec<J>, f: F) -> Result<()>
where
    F: AsyncFn(&mut W, J) -> Result<()>,
{
    let queue = Mutex::new(VecDeque::from(jobs));
    try_join_all(workers.iter_mut().map(|worker| {
        let queue = &queue;
        let f = &f;
        async move {
            loop {
                let job = queue.lock().expect("queue lock").pop_front();
                let Some(job) = job else {
                    return Ok::<_, Error>(());
                };
                f(worker, job).await?;
            }
        }
    }))
    .await?;
    Ok(())
}

/// Runs `jobs` over the workers as [`run_parallel`] does and returns their results in the
/// order of `jobs`, whichever worker finished each.
pub(super) async fn map_parallel<W, J, R, F>(
    workers: &mut [W],
    jobs: Vec<J>,
    f: F,
) -> Result<Vec<R>>
where
    F: AsyncFn(&mut W, J) -> Result<R>,
{
    let done = Mutex::new(Vec::with_capacity(jobs.len()));
    run_parallel(
        workers,
        jobs.into_iter().enumerate().collect(),
        async |worker: &mut W, (i, job): (usize, J)| {
            let result = f(worker, job).await?;
            done.lock().expect("results").push((i, result));
            Ok(())
        },
    )
    .await?;
    let mut done = done.into_inner().expect("results");
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

/// Chunks that one loader loads in order, all from one file: chunk files of one table (each
/// chunk its own file), or segments of one pack.
#[derive(Debug)]
struct LoadJob {
    /// The table of each chunk, and the chunk.
    chunks: Vec<(usize, ChunkEntry)>,
    bytes: u64,
    /// The chunks are segments of one pack.
    packed: bool,
}

/// A pack read whole is at most this big; a bigger one (its tables were much bigger than the
/// server estimated) or one partly restored is read segment by segment.
const PACK_READ_WHOLE: u64 = 64 << 20;

/// Reads a pack whole and checks every segment `job` loads against its SHA-256 before any
/// loads, naming the table whose segment is damaged. The segments' hashes are what vouch for
/// the loaded bytes (the manifest that holds them is checksummed itself); damage elsewhere in
/// the pack, in tables this restore does not load, is `verify`'s to find.
async fn read_pack(
    storage: &dyn Storage,
    path: &str,
    entry: &FileEntry,
    job: &LoadJob,
    tables: &[LoadTable<'_>],
) -> Result<Bytes> {
    let mut stream = storage.reader(path).await.map_err(|e| {
        if e.kind() == crate::ErrorKind::NotFound {
            Error::integrity(format!("`{path}` is missing from the repository"))
        } else {
            e
        }
    })?;
    let mut bytes = Vec::with_capacity(entry.size as usize);
    while let Some(piece) = stream.next().await {
        bytes.extend_from_slice(&piece?);
        if bytes.len() as u64 > entry.size {
            break;
        }
    }
    let bytes = Bytes::from(bytes);
    for (t, chunk) in &job.chunks {
        let Some(segment) = &chunk.segment else {
            continue;
        };
        let range = segment.range();
        let ok = range.end <= bytes.len() as u64
            && hex::encode(Sha256::digest(
                &bytes[range.start as usize..range.end as usize],
            )) == segment.sha256;
        if !ok {
            return Err(segment_damaged(path, segment, &tables[*t]));
        }
    }
    Ok(bytes)
}

/// Streams one segment of a pack, failing at its end (before the load commits) if its bytes
/// differ from the manifest's SHA-256.
async fn read_segment(
    storage: &dyn Storage,
    path: &str,
    segment: &Segment,
    table: &LoadTable<'_>,
) -> Result<ByteStream> {
    let expected = FileEntry {
        path: path.to_string(),
        size: segment.length,
        sha256: segment.sha256.clone(),
    };
    let inner = storage.reader_range(path, segment.range()).await?;
    let err = segment_damaged(path, segment, table);
    Ok(verify_stream(inner, expected, err))
}

fn segment_damaged(path: &str, segment: &Segment, table: &LoadTable<'_>) -> Error {
    Error::integrity(format!(
        "`{}`.`{}`: its rows in `{path}` (bytes {}..{}) are corrupt: their SHA-256 differs from \
         the manifest",
        table.db,
        table.name,
        segment.offset,
        segment.range().end
    ))
}

/// The chunks of a table that hold rows. A chunk the dump found empty (an empty table, an
/// empty key range) has nothing to load: skipping it saves a prepared statement and a
/// transaction per empty table, and the table's row count is still checked against the
/// manifest after the load (`verify --deep` still checks the file).
fn loaded_chunks(data: &TableData) -> impl Iterator<Item = &ChunkEntry> {
    data.chunks.iter().filter(|c| c.rows > 0)
}

/// Spreads the chunks over `workers` loaders. When there are at least as many tables with
/// rows as workers, each table is one job whose chunks load in key order on one connection:
/// appending to a B-tree from one writer avoids the page-split and latch contention of several
/// writers inserting into one table at once. With fewer tables than workers, every chunk is a
/// job of its own so that every connection has work. Biggest jobs go first either way.
///
/// Packed chunks (small tables) are grouped by pack: one job per pack, its segments loaded in
/// file order.
fn plan_loads(tables: &[LoadTable<'_>], workers: usize) -> Vec<LoadJob> {
    let with_rows: Vec<(usize, &TableData)> = tables
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.data.map(|d| (i, d)))
        .filter(|(_, d)| loaded_chunks(d).next().is_some())
        .collect();
    let mut packs: BTreeMap<&str, Vec<(usize, ChunkEntry)>> = BTreeMap::new();
    let mut own: Vec<(usize, Vec<&ChunkEntry>)> = Vec::new();
    for (table, data) in with_rows {
        let mut files = Vec::new();
        for c in loaded_chunks(data) {
            match c.segment {
                Some(_) => packs
                    .entry(c.file.as_str())
                    .or_default()
                    .push((table, c.clone())),
                None => files.push(c),
            }
        }
        if !files.is_empty() {
            own.push((table, files));
        }
    }
    let whole_tables = own.len() + packs.len() >= workers;
    let mut jobs = Vec::new();
    for (table, chunks) in own {
        if whole_tables {
            jobs.push(LoadJob {
                bytes: chunks.iter().map(|c| c.raw_size).sum(),
                chunks: chunks.into_iter().map(|c| (table, c.clone())).collect(),
                packed: false,
            });
        } else {
            jobs.extend(chunks.into_iter().map(|c| LoadJob {
                chunks: vec![(table, c.clone())],
                bytes: c.raw_size,
                packed: false,
            }));
        }
    }
    for mut chunks in packs.into_values() {
        chunks.sort_by_key(|(_, c)| c.segment.as_ref().map_or(0, |s| s.offset));
        jobs.push(LoadJob {
            bytes: chunks.iter().map(|(_, c)| c.raw_size).sum(),
            chunks,
            packed: true,
        });
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.bytes));
    jobs
}

/// The columns a chunk holds, in order, and which of them are MySQL JSON.
struct LoadColumns<'a> {
    names: &'a [String],
    json: &'a [String],
}

impl LoadColumns<'_> {
    /// The column list and `SET` clause of `LOAD DATA`: JSON columns go through a user variable
    /// converted to utf8mb4 (the chunk holds the server's own utf8mb4 text of the value).
    fn load_data_clause(&self) -> String {
        let mut sets = Vec::new();
        let list = self
            .names
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if self.json.contains(c) {
                    sets.push(format!(
                        "{} = CONVERT(@holdfast_{i} USING utf8mb4)",
                        quote_ident(c)
                    ));
                    format!("@holdfast_{i}")
                } else {
                    quote_ident(c)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        if sets.is_empty() {
            format!("({list})")
        } else {
            format!("({list}) SET {}", sets.join(", "))
        }
    }
}

/// Loads one chunk in a transaction that commits only if the stream verified and every row
/// arrived.
async fn load_data(
    conn: &mut Conn,
    db: &str,
    table: &str,
    columns: &LoadColumns<'_>,
    rows: ByteStream,
    expected_rows: u64,
    path: &str,
) -> Result<()> {
    let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
    let seen = failure.clone();
    let infile = rows
        .map(move |item| {
            item.map_err(|e| {
                let msg = e.to_string();
                *seen.lock().expect("failure slot") = Some(e);
                std::io::Error::other(msg)
            })
        })
        .boxed();
    // The driver requires a Sync future; the stream is handed over through a mutex.
    let slot = std::sync::Mutex::new(Some(infile));
    conn.set_infile_handler(async move {
        Ok(slot
            .lock()
            .expect("infile slot")
            .take()
            .expect("infile stream used once"))
    });
    let sql = format!(
        "LOAD DATA LOCAL INFILE 'holdfast-chunk' INTO TABLE {}.{} {LOAD_DATA_FORMAT} {}",
        quote_ident(db),
        quote_ident(table),
        columns.load_data_clause()
    );
    conn.query_drop("START TRANSACTION").await?;
    let loaded = conn.query_drop(&sql).await;
    let stream_error = failure.lock().expect("failure slot").take();
    let outcome = match (stream_error, loaded) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => {
            Err(Error::from(e).context(format!("loading `{path}` into `{db}`.`{table}`")))
        }
        (None, Ok(())) => {
            let affected = conn.affected_rows();
            let warnings = conn.get_warnings();
            if affected != expected_rows || warnings > 0 {
                let detail: Vec<(String, u32, String)> = conn
                    .query("SHOW WARNINGS LIMIT 5")
                    .await
                    .unwrap_or_default();
                Err(Error::integrity(format!(
                    "loading `{path}` into `{db}`.`{table}`: {affected} rows loaded of {expected_rows}, \
                     {warnings} warnings {detail:?}"
                )))
            } else {
                Ok(())
            }
        }
    };
    match outcome {
        Ok(()) => {
            conn.query_drop("COMMIT").await?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK").await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_columns_load_through_a_utf8mb4_conversion() {
        let names = ["id".to_string(), "we`ird".to_string(), "doc".to_string()];
        let plain = LoadColumns {
            names: &names,
            json: &[],
        };
        assert_eq!(plain.load_data_clause(), "(`id`, `we``ird`, `doc`)");
        let json = ["doc".to_string(), "we`ird".to_string()];
        let with_json = LoadColumns {
            names: &names,
            json: &json,
        };
        assert_eq!(
            with_json.load_data_clause(),
            "(`id`, @holdfast_1, @holdfast_2) SET `we``ird` = CONVERT(@holdfast_1 USING utf8mb4), \
             `doc` = CONVERT(@holdfast_2 USING utf8mb4)"
        );
    }

    #[test]
    fn chunks_without_rows_are_not_loaded() {
        use crate::manifest::Fingerprint;
        let chunk = |rows: u64, raw_size: u64| ChunkEntry {
            file: format!("f{rows}"),
            range: "TRUE".into(),
            rows,
            raw_size,
            segment: None,
        };
        let data = |chunks: Vec<ChunkEntry>| TableData {
            database: "d".into(),
            table: "t".into(),
            columns: vec!["id".into()],
            with_history: false,
            row_count: chunks.iter().map(|c| c.rows).sum(),
            fingerprint: Fingerprint::default(),
            chunks,
        };
        let empty = data(vec![chunk(0, 0)]);
        let mixed = data(vec![chunk(0, 0), chunk(3, 30)]);
        let table = |d| LoadTable {
            db: "d",
            name: "t",
            data: Some(d),
            json: &[],
            indexes: None,
        };
        // Whole tables (as many as workers) and single chunks (fewer): the empty ones never.
        for workers in [1, 2, 4] {
            let jobs = plan_loads(&[table(&empty), table(&mixed)], workers);
            let files: Vec<&str> = jobs
                .iter()
                .flat_map(|j| j.chunks.iter().map(|c| c.1.file.as_str()))
                .collect();
            assert_eq!(files, ["f3"], "{workers} workers");
            assert!(jobs.iter().all(|j| j.chunks.iter().all(|c| c.0 == 1)));
        }
    }

    #[test]
    fn packed_chunks_load_by_pack_in_file_order() {
        use crate::manifest::{Fingerprint, Segment};
        let seg = |file: &str, offset: u64, rows: u64| ChunkEntry {
            file: file.into(),
            range: "TRUE".into(),
            rows,
            raw_size: rows * 10,
            segment: Some(Segment {
                offset,
                length: if rows == 0 { 0 } else { 7 },
                sha256: String::new(),
            }),
        };
        let own = ChunkEntry {
            file: "data/d/big/00000.tsv.zst".into(),
            range: "TRUE".into(),
            rows: 1000,
            raw_size: 10_000,
            segment: None,
        };
        let data = |chunks: Vec<ChunkEntry>| TableData {
            database: "d".into(),
            table: "t".into(),
            columns: vec!["id".into()],
            with_history: false,
            row_count: chunks.iter().map(|c| c.rows).sum(),
            fingerprint: Fingerprint::default(),
            chunks,
        };
        let tables = [
            data(vec![seg("packs/00001.tsv.zst", 14, 3)]),
            data(vec![seg("packs/00000.tsv.zst", 7, 2)]),
            data(vec![seg("packs/00000.tsv.zst", 0, 4)]),
            data(vec![seg("packs/00000.tsv.zst", 14, 0)]),
            data(vec![own]),
            data(vec![seg("packs/00001.tsv.zst", 0, 1)]),
        ];
        let load: Vec<LoadTable> = tables
            .iter()
            .map(|d| LoadTable {
                db: "d",
                name: "t",
                data: Some(d),
                json: &[],
                indexes: None,
            })
            .collect();
        for workers in [1, 2, 8] {
            let jobs = plan_loads(&load, workers);
            let got: Vec<(bool, Vec<usize>)> = jobs
                .iter()
                .map(|j| (j.packed, j.chunks.iter().map(|c| c.0).collect()))
                .collect();
            // Biggest first; in a pack, by offset; the empty table's segment is not loaded.
            assert_eq!(
                got,
                [(false, vec![4]), (true, vec![2, 1]), (true, vec![5, 0])],
                "{workers} workers"
            );
        }
    }
}
