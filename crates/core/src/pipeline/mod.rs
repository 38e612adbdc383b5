//! Streaming transforms between the engines and storage: compression and hashing on the way in,
//! verification and decompression on the way out. Memory is bounded by a few buffers per stream,
//! whatever the data size.
//!
//! - [`HashingSink`]: uploads bytes to one object while computing its size and SHA-256.
//! - [`ZstdSink`]: compresses into a [`HashingSink`] (a standard zstd frame, `zstd -d` reads it).
//! - [`ParallelZstdSink`]: the same format, frames compressed on the blocking pool while the
//!   caller reads on (a physical backup's one large stream on several cores; each dump worker's
//!   chunks, so reading rows and compressing them overlap).
//! - [`read_verified`]: streams an object back, failing with an integrity error that names the
//!   file if its size or checksum differs from the manifest.
//! - [`Decompressor`]: incremental zstd decompression of such a stream.

mod parallel;
mod read;
mod write;

pub use parallel::ParallelZstdSink;
pub use read::{decompress_stream, read_all_verified, read_verified, verify_stream, Decompressor};
pub use write::{HashingSink, ZstdSink, ZSTD_BLOCK};
