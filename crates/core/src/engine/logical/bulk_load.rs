//! Loading a chunk into MariaDB through `COM_STMT_BULK_EXECUTE` instead of `LOAD DATA`.
//!
//! The server's `LOAD DATA` parser appends each field one byte at a time (a fifth of a
//! restore's server CPU); the bulk command hands it the values already split. The chunk is
//! streamed from the repository, its TSV lines decoded ([`FieldDecoder`]) straight into
//! commands of about [`BATCH_BYTES`] for one prepared `INSERT`, so memory stays bounded by one
//! batch plus one row. The next command is decoded while the server executes the previous one;
//! its answer is read just before the next is sent. A command never exceeds the server's
//! `max_allowed_packet`; a single row that would is refused with a message saying so. The
//! guarantees are `LOAD DATA`'s: one transaction per chunk, committed only when the stream
//! verified to its end, every line had the table's column count, the server counted exactly
//! the chunk's rows and raised no warning; anything else rolls back.

use futures::StreamExt;

use super::ddl::quote_ident;
use super::tsv_decode::FieldDecoder;
use crate::source::bulk::BulkBatch;
use crate::source::wire::WireConn;
use crate::source::ConnectionConfig;
use crate::storage::ByteStream;
use crate::{Error, Result};

/// Values per bulk command: large enough that the round trip per command does not matter,
/// far below any sensible `max_allowed_packet`.
pub const BATCH_BYTES: usize = 4 << 20;

/// Room left in a command for its header and packet framing.
const COMMAND_MARGIN: usize = 1024;

/// A raw connection that loads chunks by bulk execute.
pub struct BulkLoader {
    conn: WireConn,
    /// The largest command the server accepts (`max_allowed_packet`, less a margin).
    max_command: usize,
}

impl BulkLoader {
    /// Connects and runs the session `setup` statements (those of the `LOAD DATA` loaders,
    /// including `SET NAMES binary`). `None` when the server did not negotiate bulk operations
    /// (not MariaDB, or older than 10.2): the caller then loads with `LOAD DATA`.
    pub async fn connect(
        target: &ConnectionConfig,
        setup: &[String],
    ) -> Result<Option<BulkLoader>> {
        let mut conn = WireConn::connect(target).await?;
        if !conn.supports_bulk() {
            return Ok(None);
        }
        for statement in setup {
            conn.execute(statement).await?;
        }
        let rows = conn.query_text("SELECT @@max_allowed_packet").await?;
        let max_packet = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| Error::server("cannot read the target's max_allowed_packet"))?;
        Ok(Some(BulkLoader {
            conn,
            max_command: max_packet
                .saturating_sub(COMMAND_MARGIN)
                .max(COMMAND_MARGIN),
        }))
    }

    /// Loads one chunk of `table` (`columns` in the chunk's order) in its own transaction.
    pub async fn load_chunk(
        &mut self,
        db: &str,
        table: &str,
        columns: &[String],
        rows: ByteStream,
        expected_rows: u64,
        path: &str,
    ) -> Result<()> {
        let limits = Limits {
            batch: BATCH_BYTES.min(self.max_command),
            command: self.max_command,
        };
        load_chunk_bulk(
            &mut self.conn,
            limits,
            db,
            table,
            columns,
            rows,
            expected_rows,
            path,
        )
        .await
    }
}

/// How big a command gets: sent once it reaches `batch` bytes; never above `command`.
#[derive(Clone, Copy)]
struct Limits {
    batch: usize,
    command: usize,
}

/// Loads one chunk in a transaction on `conn`.
#[allow(clippy::too_many_arguments)]
async fn load_chunk_bulk(
    conn: &mut WireConn,
    limits: Limits,
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
            let sent = send_rows(
                conn,
                limits,
                stmt.id,
                columns.len(),
                &mut rows,
                expected_rows,
                path,
            );
            match sent.await {
                Ok(()) => Ok(()),
                Err(Failure::Stream(e) | Failure::AfterEnd(e)) => Err(e),
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
    /// The load failed after the stream was read to its end (its own checks passed): the
    /// stream must not be polled again (an ended stream may panic when polled).
    AfterEnd(Error),
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
    limits: Limits,
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
        limits,
        lines: 0,
        in_flight: 0,
        affected: 0,
        path,
    };
    let sent = send_lines(conn, &mut sender, rows).await;
    if sent.is_err() && sender.in_flight > 0 {
        // The connection must be idle again before the caller rolls back.
        let _ = conn.bulk_result().await;
    }
    sent?;
    if sender.lines != expected_rows || sender.affected != expected_rows {
        return Err(Failure::AfterEnd(Error::integrity(format!(
            "`{path}`: {} rows read and {} inserted, the manifest says {expected_rows}",
            sender.lines, sender.affected
        ))));
    }
    Ok(())
}

/// Decodes the stream's lines into commands and sends them, the last one's answer read.
async fn send_lines(
    conn: &mut WireConn,
    sender: &mut Sender<'_>,
    rows: &mut ByteStream,
) -> std::result::Result<(), Failure> {
    let (limits, path) = (sender.limits, sender.path);
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
                    sender.make_room(conn, partial.len()).await?;
                    sender.add_line(&partial)?;
                    partial.clear();
                    data = &data[end + 1..];
                }
            }
        }
        while let Some(end) = memchr::memchr(b'\n', data) {
            sender.make_room(conn, end).await?;
            sender.add_line(&data[..end])?;
            data = &data[end + 1..];
            if sender.batch.len() >= limits.batch {
                sender.flush(conn).await?;
            }
        }
        partial.extend_from_slice(data);
    }
    if !partial.is_empty() {
        return Err(Failure::AfterEnd(Error::integrity(format!(
            "`{path}` ends inside a line ({} bytes after the last newline)",
            partial.len()
        ))));
    }
    sender.flush(conn).await.map_err(Failure::AfterEnd)?;
    sender.collect(conn).await.map_err(Failure::AfterEnd)?;
    Ok(())
}

struct Sender<'a> {
    batch: BulkBatch,
    decoder: FieldDecoder,
    params: usize,
    limits: Limits,
    lines: u64,
    /// Rows of the command the server is executing, whose answer is still to be read.
    in_flight: u64,
    affected: u64,
    path: &'a str,
}

impl Sender<'_> {
    /// Sends the batch first if a line of `line_len` bytes might not fit in the same command;
    /// refuses a row that fits in no command.
    async fn make_room(&mut self, conn: &mut WireConn, line_len: usize) -> Result<()> {
        // Escapes only shrink a value; each value adds at most an indicator and a 9-byte length.
        let most = line_len + 10 * self.params;
        if self.batch.len() + most <= self.limits.command {
            return Ok(());
        }
        self.flush(conn).await?;
        if self.batch.len() + most > self.limits.command {
            return Err(Error::server(format!(
                "`{}` line {} is a row of up to {most} bytes, more than the target's \
                 max_allowed_packet allows in one command; raise max_allowed_packet on the \
                 target to at least {} and retry",
                self.path,
                self.lines + 1,
                self.batch.len() + most + COMMAND_MARGIN
            )));
        }
        Ok(())
    }

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

    /// Sends the batch, if it has rows, once the answer to the previous command is read and
    /// checked: the server executes one command while the next is decoded.
    async fn flush(&mut self, conn: &mut WireConn) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.collect(conn).await?;
        conn.bulk_send(self.batch.command()).await?;
        self.in_flight = self.batch.rows();
        self.batch.clear();
        Ok(())
    }

    /// Reads and checks the answer to the command in flight, if there is one.
    async fn collect(&mut self, conn: &mut WireConn) -> Result<()> {
        if self.in_flight == 0 {
            return Ok(());
        }
        let sent = std::mem::take(&mut self.in_flight);
        let ok = conn.bulk_result().await?;
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
