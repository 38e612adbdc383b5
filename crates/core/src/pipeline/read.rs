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
            out: vec![0u8; 1 << 20],
            frame_complete: true,
            path: path.to_string(),
        })
    }

    /// Decompresses one input chunk, calling `emit` with each output piece.
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(&[u8])) -> Result<()> {
        let mut inbuf = InBuffer::around(input);
        while inbuf.pos < input.len() || !self.frame_complete {
            let mut outbuf = OutBuffer::around(&mut self.out[..]);
            let hint = self.decoder.run(&mut inbuf, &mut outbuf).map_err(|e| {
                Error::with_source(
                    ErrorKind::Integrity,
                    format!("`{}` is not a valid zstd stream", self.path),
                    e,
                )
            })?;
            let produced = outbuf.pos();
            self.frame_complete = hint == 0;
            if produced > 0 {
                emit(&self.out[..produced]);
            }
            if produced == 0 && inbuf.pos >= input.len() {
                break;
            }
        }
        Ok(())
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
                        let fed = dec.feed(&compressed, |out| {
                            pending.push_back(Bytes::copy_from_slice(out))
                        });
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
    .boxed())
}
