//! [`EventStream`]: binlog events read one at a time from an async reader, so a file of any
//! size is replayed in memory bounded by its largest event.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::binlog::event::{kind, ChecksumAlg, Event, EventHeader, BINLOG_MAGIC, HEADER_LEN};
use crate::{Error, Result};

/// Reads the events of one binlog file (or a piece of one that starts with the magic bytes and
/// a FORMAT_DESCRIPTION), checking framing and checksums.
pub struct EventStream<R> {
    name: String,
    reader: R,
    buf: Vec<u8>,
    /// Offset of the next event in the input.
    offset: u64,
    checksum: ChecksumAlg,
}

impl<R: AsyncRead + Unpin> EventStream<R> {
    /// Reads and checks the magic bytes. `name` names the input in errors.
    pub async fn open(name: &str, mut reader: R) -> Result<EventStream<R>> {
        let mut magic = [0u8; 4];
        let got = read_full(&mut reader, &mut magic)
            .await
            .map_err(|e| io_error(name, 0, e))?;
        if got < magic.len() || magic != BINLOG_MAGIC {
            return Err(Error::integrity(format!(
                "{name} is not a binlog file: it does not start with the magic bytes \\xfebin"
            )));
        }
        Ok(EventStream {
            name: name.to_string(),
            reader,
            buf: Vec::new(),
            offset: BINLOG_MAGIC.len() as u64,
            checksum: ChecksumAlg::Off,
        })
    }

    /// The input's name, as given to [`open`](Self::open).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event and its offset in the input, or `None` at a clean end (between events).
    /// An input that ends inside an event is an [`Integrity`](crate::ErrorKind::Integrity)
    /// error naming the offset.
    pub async fn next(&mut self) -> Result<Option<(u64, Event<'_>)>> {
        let at = self.offset;
        self.buf.resize(HEADER_LEN, 0);
        let got = read_full(&mut self.reader, &mut self.buf[..HEADER_LEN])
            .await
            .map_err(|e| io_error(&self.name, at, e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(Error::integrity(format!(
                "{} is truncated: it ends {got} bytes into the event header at offset {at}",
                self.name
            )));
        }
        let header = EventHeader::parse(&self.buf)
            .map_err(|e| e.context(format_args!("{} at offset {at}", self.name)))?;
        let size = header.event_size as usize;
        self.buf.resize(size, 0);
        let got = read_full(&mut self.reader, &mut self.buf[HEADER_LEN..])
            .await
            .map_err(|e| io_error(&self.name, at, e))?;
        if got < size - HEADER_LEN {
            return Err(Error::integrity(format!(
                "{} is truncated: the event at offset {at} (type {}) declares {size} bytes, \
                 the input ends after {}",
                self.name,
                header.type_code,
                HEADER_LEN + got
            )));
        }
        let event = Event::parse(&self.buf, self.checksum)
            .map_err(|e| e.context(format_args!("{} at offset {at}", self.name)))?;
        if header.type_code == kind::FORMAT_DESCRIPTION {
            self.checksum = event.checksum_alg();
        }
        self.offset += size as u64;
        Ok(Some((at, event)))
    }
}

/// Fills `buf` as far as the input allows; returns how many bytes were read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn io_error(name: &str, at: u64, e: std::io::Error) -> Error {
    // A reader over the archive hands on holdfast's own errors (a damaged segment is an
    // integrity error, not a storage one): keep their kind and message.
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            _ => Error::internal(format!("reading {name}: an error vanished")),
        };
    }
    Error::with_source(
        crate::ErrorKind::Storage,
        format!("cannot read {name} at offset {at}"),
        e,
    )
}
