//! Loading a chunk into MariaDB through `COM_STMT_BULK_EXECUTE` instead of `LOAD DATA`.
//!
//! The server's `LOAD DATA` parser appends each field one byte at a time (a fifth of a
//! restore's server CPU); the bulk command hands it the values already split. The chunk is
//! streamed from the repository, its TSV lines decoded ([`FieldDecoder`]) straight into
//! commands of about [`BATCH_BYTES`] for one prepared `INSERT`, so memory stays bounded by one
//! batch plus one row. The guarantees are `LOAD DATA`'s: one transaction per chunk, committed
//! only when the stream verified to its end, every line had the table's column count, the
//! server counted exactly the chunk's rows and raised no warning; anything else rolls back.

use futures::StreamExt;

use super::ddl::quote_ident;
use super::tsv_decode::FieldDecoder;
use crate::source::bulk::BulkBatch;
use crate::source::wire::WireConn;
use crate::storage::ByteStream;
use crate::{Error, Result};

/// Values per bulk command: large enough that the round trip per command does not matter,
/// far below any sensible `max_allowed_packet`.
pub const BATCH_BYTES: usize = 4 << 20;

/// Loads one chunk in a transaction on `conn` (a session set up like the `LOAD DATA` loaders',
/// with `SET NAMES binary`, on which [`WireConn::supports_bulk`] holds).
pub async fn load_chunk_bulk(
    conn: &mut WireConn,
    db: &str,
    table: &str,
    columns: &[String],
    mut rows: ByteStream,
    expected_rows: u64,
    path: &str,
) -> Result<()> {
    let what = || format!("loading `{path}` into `{db}`.`{table}`");
    let sql = insert_statement(db, table, columns);
    let stmt = conn.prepare(&sql).await.map_err(|e| e.context(what()))?;
    if usize::from(stmt.params) != columns.len() {
        let _ = conn.close_statement(stmt.id).await;
        return Err(Error::internal(format!(
            "{}: the INSERT has {} parameters for {} columns",
            what(),
            stmt.params,
            columns.len()
        )));
    }
    let outcome = match conn.execute("START TRANSACTION").await {
        Ok(()) => {
            let sent = send_rows(conn, stmt.id, columns.len(), &mut rows, expected_rows, path);
            match sent.await {
                Ok(()) => Ok(()),
                Err(Failure::Stream(e)) => Err(e),
                // Garbage from a damaged chunk can upset the server before the stream's own
                // check at its end: that check, if it fails, is the error to report.
                Err(Failure::Load(e)) => Err(stream_error(&mut rows).await.unwrap_or(e)),
            }
        }
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Ok(()) => conn.execute("COMMIT").await,
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    };
    let closed = conn.close_statement(stmt.id).await;
    outcome.map_err(|e| e.context(what()))?;
    closed
}

/// `INSERT INTO db.table (columns) VALUES (?, ...)`.
fn insert_statement(db: &str, table: &str, columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let marks = vec!["?"; columns.len()].join(", ");
    format!(
        "INSERT INTO {}.{} ({}) VALUES ({marks})",
        quote_ident(db),
        quote_ident(table),
        names.join(", ")
    )
}

/// Why a chunk did not load: its stream failed (unreadable or failing verification), or the
/// rows it delivered did not load.
enum Failure {
    Stream(Error),
    Load(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Load(e)
    }
}

/// Reads the rest of a stream, returning its error if it has one.
async fn stream_error(rows: &mut ByteStream) -> Option<Error> {
    while let Some(piece) = rows.next().await {
        if let Err(e) = piece {
            return Some(e);
        }
    }
    None
}

/// Streams the chunk's rows as bulk commands and checks what the server reports.
async fn send_rows(
    conn: &mut WireConn,
    statement: u32,
    params: usize,
    rows: &mut ByteStream,
    expected_rows: u64,
    path: &str,
) -> std::result::Result<(), Failure> {
    let mut sender = Sender {
        batch: BulkBatch::new(statement, params as u16),
        decoder: FieldDecoder::default(),
        params,
        lines: 0,
        affected: 0,
        path,
    };
    // The start of a line whose end is in a later piece of the stream.
    let mut partial: Vec<u8> = Vec::new();
    while let Some(piece) = rows.next().await {
        let piece = piece.map_err(Failure::Stream)?;
        let mut data = &piece[..];
        if !partial.is_empty() {
            match memchr::memchr(b'\n', data) {
                None => {
                    partial.extend_from_slice(data);
                    continue;
                }
                Some(end) => {
                    partial.extend_from_slice(&data[..end]);
                    sender.add_line(&partial)?;
                    partial.clear();
                    data = &data[end + 1..];
                }
            }
        }
        while let Some(end) = memchr::memchr(b'\n', data) {
            sender.add_line(&data[..end])?;
            data = &data[end + 1..];
            if sender.batch.len() >= BATCH_BYTES {
                sender.flush(conn).await?;
            }
        }
        partial.extend_from_slice(data);
        if sender.batch.len() >= BATCH_BYTES {
            sender.flush(conn).await?;
        }
    }
    if !partial.is_empty() {
        return Err(Error::integrity(format!(
            "`{path}` ends inside a line ({} bytes after the last newline)",
            partial.len()
        ))
        .into());
    }
    sender.flush(conn).await?;
    if sender.lines != expected_rows || sender.affected != expected_rows {
        return Err(Error::integrity(format!(
            "`{path}`: {} rows read and {} inserted, the manifest says {expected_rows}",
            sender.lines, sender.affected
        ))
        .into());
    }
    Ok(())
}

struct Sender<'a> {
    batch: BulkBatch,
    decoder: FieldDecoder,
    params: usize,
    lines: u64,
    affected: u64,
    path: &'a str,
}

impl Sender<'_> {
    /// Appends one TSV line (without its newline) as a row of the batch.
    fn add_line(&mut self, line: &[u8]) -> Result<()> {
        self.lines += 1;
        let mark = self.batch.len();
        let batch = &mut self.batch;
        let fields = self
            .decoder
            .decode(line, |value| match value {
                None => batch.push_null(),
                Some(v) => batch.push_value(v),
            })
            .map_err(|e| Error::integrity(format!("`{}` line {}: {e}", self.path, self.lines)))?;
        if fields != self.params {
            self.batch.truncate(mark);
            return Err(Error::integrity(format!(
                "`{}` line {} has {fields} fields, the table {} columns",
                self.path, self.lines, self.params
            )));
        }
        self.batch.end_row();
        Ok(())
    }

    /// Sends the batch, if it has rows, and checks the server's answer.
    async fn flush(&mut self, conn: &mut WireConn) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let sent = self.batch.rows();
        let ok = conn.bulk_execute(self.batch.command()).await?;
        self.batch.clear();
        self.affected += ok.affected_rows;
        if ok.affected_rows != sent || ok.warnings > 0 {
            let detail = conn
                .query_text("SHOW WARNINGS LIMIT 5")
                .await
                .unwrap_or_default();
            return Err(Error::integrity(format!(
                "{} of {sent} rows inserted with {} warnings {detail:?}",
                ok.affected_rows, ok.warnings
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_quotes_names() {
        assert_eq!(
            insert_statement("d`b", "t", &["a".into(), "b c".into()]),
            "INSERT INTO `d``b`.`t` (`a`, `b c`) VALUES (?, ?)"
        );
    }
}
