use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use crate::manifest::FileEntry;
use crate::storage::{ByteStream, Storage};
use crate::{Error, ErrorKind, Result};

/// Streams `storage_path` and checks it against `expected` (size and SHA-256). The mismatch is
/// reported as the stream's last item, before which every byte has been yielded; callers that
/// must not act on unverified data use [`read_all_verified`].
pub async fn read_verified(
    storage: &dyn Storage,
    storage_path: &str,
    expected: &FileEntry,
) -> Result<ByteStream> {
    let inner = storage
        .reader(storage_path)
        .await
        .map_err(|e| missing_is_integrity(e, storage_path))?;
    let state = VerifyState {
        inner,
        hasher: Sha256::new(),
        size: 0,
        expected: expected.clone(),
        path: storage_path.to_string(),
        done: false,
    };
    Ok(futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.hasher.update(&chunk);
                st.size += chunk.len() as u64;
                if st.size > st.expected.size {
                    st.done = true;
                    let err = size_mismatch(&st.path, st.expected.size, st.size, "at least ");
                    return Some((Err(err), st));
                }
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            None => {
                st.done = true;
                if st.size != st.expected.size {
                    let err = size_mismatch(&st.path, st.expected.size, st.size, "");
                    return Some((Err(err), st));
                }
                let got = hex::encode(st.hasher.clone().finalize());
                if got != st.expected.sha256 {
                    let err = Error::integrity(format!(
                        "`{}` is corrupt: SHA-256 is {got}, the manifest says {}",
                        st.path, st.expected.sha256
                    ));
                    return Some((Err(err), st));
                }
                None
            }
        }
    })
    .boxed())
}

/// Checks a stream (a segment of an object, read by range) against `expected`'s size and
/// SHA-256: on a mismatch the stream's last item is `mismatch`, after every byte was yielded.
pub fn verify_stream(inner: ByteStream, expected: FileEntry, mismatch: Error) -> ByteStream {
    let state = (inner, Sha256::new(), 0u64, Some(mismatch));
    futures::stream::unfold(state, move |(mut inner, mut hasher, mut size, mut err)| {
        let expected = expected.clone();
        async move {
            err.as_ref()?;
            match inner.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    if size > expected.size {
                        let e = err.take().expect("checked above");
                        return Some((Err(e), (inner, hasher, size, None)));
                    }
                    Some((Ok(chunk), (inner, hasher, size, err)))
                }
                Some(Err(e)) => Some((Err(e), (inner, hasher, size, None))),
                None => {
                    let e = err.take().expect("checked above");
                    let sum = hex::encode(hasher.clone().finalize());
                    if size != expected.size || sum != expected.sha256 {
                        return Some((Err(e), (inner, hasher, size, None)));
                    }
                    None
                }
            }
        }
    })
    .boxed()
}

/// Reads a whole object and verifies it before returning anything.
pub async fn read_all_verified(
    storage: &dyn Storage,
    storage_path: &str,
    expected: &FileEntry,
) -> Result<Vec<u8>> {
    let mut stream = read_verified(storage, storage_path, expected).await?;
    let mut out = Vec::with_capacity(expected.size as usize);
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn missing_is_integrity(e: Error, path: &str) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::integrity(format!("`{path}` is missing from the repository"))
    } else {
        e
    }
}

fn size_mismatch(path: &str, want: u64, got: u64, qualifier: &str) -> Error {
    Error::integrity(format!(
        "`{path}` is corrupt or truncated: {qualifier}{got} bytes, the manifest says {want}"
    ))
}

struct VerifyState {
    inner: ByteStream,
    hasher: Sha256,
    size: u64,
    expected: FileEntry,
    path: String,
    done: bool,
}

/// Decompressed bytes per output piece.
const OUT_PIECE: usize = 1 << 20;

/// Incremental zstd decompression: feed compressed chunks, get decompressed chunks.
pub struct Decompressor {
    decoder: Decoder<'static>,
    out: Vec<u8>,
    /// Whether the last input ended exactly at a frame end.
    frame_complete: bool,
    path: String,
}

impl Decompressor {
    pub fn new(path: &str) -> Result<Self> {
        let decoder = Decoder::new()
            .map_err(|e| Error::with_source(ErrorKind::Internal, "zstd decoder", e))?;
        Ok(Decompressor {
            decoder,
            out: vec![0u8; OUT_PIECE],
            frame_complete: true,
            path: path.to_string(),
        })
    }

    /// Decompresses one input chunk, calling `emit` with each output piece.
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(&[u8])) -> Result<()> {
        let mut inbuf = InBuffer::around(input);
        let mut out = std::mem::take(&mut self.out);
        let result = loop {
            let mut outbuf = OutBuffer::around(&mut out[..]);
            match self.step(&mut inbuf, &mut outbuf) {
                Ok(None) => break Ok(()),
                Ok(Some(0)) => {}
                Ok(Some(produced)) => emit(&out[..produced]),
                Err(e) => break Err(e),
            }
        };
        self.out = out;
        result
    }

    /// Like [`feed`](Self::feed), handing each output piece over in a buffer of its own, without
    /// a copy.
    pub fn feed_owned(&mut self, input: &[u8], mut emit: impl FnMut(Bytes)) -> Result<()> {
        let mut inbuf = InBuffer::around(input);
        loop {
            let mut piece: Vec<u8> = Vec::with_capacity(OUT_PIECE);
            match self.step(&mut inbuf, &mut OutBuffer::around(&mut piece))? {
                None => return Ok(()),
                Some(0) => {}
                Some(_) => emit(Bytes::from(piece)),
            }
        }
    }

    /// Decompresses from `input` into one output piece of at most 1 MiB: returns how many bytes
    /// of `input` it consumed and the piece (possibly empty), or `None` once all of `input` is
    /// consumed and nothing more is to be written. Call again with the rest of `input` until
    /// `None`. For
    /// a caller that writes each piece out (awaiting) before asking for the next: memory stays
    /// one piece, however far an input chunk expands.
    pub fn feed_piece(&mut self, input: &[u8]) -> Result<Option<(usize, &[u8])>> {
        let mut inbuf = InBuffer::around(input);
        let mut out = std::mem::take(&mut self.out);
        let stepped = self.step(&mut inbuf, &mut OutBuffer::around(&mut out[..]));
        let consumed = inbuf.pos;
        self.out = out;
        Ok(stepped?.map(|produced| (consumed, &self.out[..produced])))
    }

    /// Runs the decoder once; returns how many bytes it wrote, or `None` when it is done with
    /// this input (all of it consumed and nothing more to write).
    fn step<W: zstd::zstd_safe::WriteBuf + ?Sized>(
        &mut self,
        inbuf: &mut InBuffer<'_>,
        outbuf: &mut OutBuffer<'_, W>,
    ) -> Result<Option<usize>> {
        if inbuf.pos >= inbuf.src.len() && self.frame_complete {
            return Ok(None);
        }
        let hint = self.decoder.run(inbuf, outbuf).map_err(|e| {
            Error::with_source(
                ErrorKind::Integrity,
                format!("`{}` is not a valid zstd stream", self.path),
                e,
            )
        })?;
        self.frame_complete = hint == 0;
        let produced = outbuf.pos();
        if produced == 0 && inbuf.pos >= inbuf.src.len() {
            return Ok(None);
        }
        Ok(Some(produced))
    }

    /// Fails if the input ended in the middle of a frame.
    pub fn finish(&self) -> Result<()> {
        if self.frame_complete {
            Ok(())
        } else {
            Err(Error::integrity(format!(
                "`{}` ends in the middle of a zstd frame",
                self.path
            )))
        }
    }
}

/// Decompresses a stream of zstd chunks into a stream of raw chunks. Errors of the input stream
/// (such as a checksum mismatch from [`read_verified`]) pass through.
pub fn decompress_stream(input: ByteStream, path: &str) -> Result<ByteStream> {
    let dec = Decompressor::new(path)?;
    let state = (
        input,
        dec,
        std::collections::VecDeque::<Bytes>::new(),
        false,
    );
    Ok(futures::stream::unfold(
        state,
        |(mut input, mut dec, mut pending, mut ended)| async move {
            loop {
                if let Some(chunk) = pending.pop_front() {
                    return Some((Ok(chunk), (input, dec, pending, ended)));
                }
                if ended {
                    return None;
                }
                match input.next().await {
                    Some(Ok(compressed)) => {
                        let fed = dec.feed_owned(&compressed, |out| pending.push_back(out));
                        if let Err(e) = fed {
                            ended = true;
                            return Some((Err(e), (input, dec, pending, ended)));
                        }
                    }
                    Some(Err(e)) => {
                        ended = true;
                        pending.clear();
                        return Some((Err(e), (input, dec, pending, ended)));
                    }
                    None => {
                        ended = true;
                        if let Err(e) = dec.finish() {
                            return Some((Err(e), (input, dec, pending, ended)));
                        }
                    }
                }
            }
        },
    )
    // Fused: a caller that polls again after the end gets `None`, not a panic.
    .fuse()
    .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About 5 MiB of compressible but not trivial bytes, as two zstd frames.
    fn sample() -> (Vec<u8>, Vec<u8>) {
        let mut raw = Vec::new();
        let mut x: u64 = 1;
        while raw.len() < 5 << 20 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            raw.extend_from_slice(format!("{}\t{}\n", x >> 40, x % 1000).as_bytes());
        }
        let half = raw.len() / 2;
        let mut compressed = zstd::encode_all(&raw[..half], 1).unwrap();
        compressed.extend(zstd::encode_all(&raw[half..], 1).unwrap());
        (raw, compressed)
    }

    #[test]
    fn every_feed_gives_back_the_input_whatever_the_piece_size() {
        let (raw, compressed) = sample();
        for piece in [1, 7, 4096, 65_536, 3 << 20, compressed.len()] {
            let (mut borrowed, mut owned, mut pieces) = (Vec::new(), Vec::new(), Vec::new());
            let mut a = Decompressor::new("t").unwrap();
            let mut b = Decompressor::new("t").unwrap();
            let mut c = Decompressor::new("t").unwrap();
            for input in compressed.chunks(piece) {
                a.feed(input, |out| borrowed.extend_from_slice(out))
                    .unwrap();
                b.feed_owned(input, |out| {
                    assert!(!out.is_empty() && out.len() <= OUT_PIECE);
                    owned.extend_from_slice(&out)
                })
                .unwrap();
                let mut rest = input;
                while let Some((used, out)) = c.feed_piece(rest).unwrap() {
                    assert!(out.len() <= OUT_PIECE);
                    pieces.extend_from_slice(out);
                    rest = &rest[used..];
                }
            }
            a.finish().unwrap();
            b.finish().unwrap();
            c.finish().unwrap();
            assert!(borrowed == raw, "feed, pieces of {piece}");
            assert!(owned == raw, "feed_owned, pieces of {piece}");
            assert!(pieces == raw, "feed_piece, pieces of {piece}");
        }
    }

    #[test]
    fn a_truncated_or_damaged_stream_is_an_integrity_error() {
        let (_, compressed) = sample();
        let mut d = Decompressor::new("t").unwrap();
        d.feed_owned(&compressed[..compressed.len() - 10], |_| {})
            .unwrap();
        assert_eq!(d.finish().unwrap_err().kind(), ErrorKind::Integrity);

        let mut damaged = compressed.clone();
        damaged[0] ^= 0xff;
        let mut d = Decompressor::new("t").unwrap();
        let err = d.feed_owned(&damaged, |_| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity);
    }
}
