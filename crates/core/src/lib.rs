//! holdfast: backup and point-in-time recovery for MySQL and MariaDB.
//!
//! The main types:
//! - [`storage::Storage`]: the object-store trait every repository backend implements
//!   (local disk through Apache OpenDAL today), with its contracts and capabilities;
//!   [`storage::EncryptedStorage`] wraps any of them with age encryption and authentication.
//! - [`repo::Repository`]: an opened repository: format check, the exclusive lock, the
//!   manifest-written-last commit protocol, listing and debris cleanup; [`repo::keys`]: the data
//!   key of an encrypted repository, its key slots and rotation.
//! - [`copy`]: copying backups and the binlog archive between repositories.
//! - [`manifest`]: every on-disk type, versioned, in one place.
//! - [`pipeline`]: streaming compression and hashing between the engines and storage.
//! - [`source`]: connecting to a server (URL, option files, environment), flavor detection and the
//!   consistent snapshot shared by the dump workers.
//! - [`engine::logical`]: the logical backup and restore engine.
//! - [`binlog`]: binlog event framing and MariaDB GTIDs, for archiving and replay.
//! - [`verify`]: checking every file of a backup against its manifest.
//! - [`retention`]: which backups and binlog segments a policy keeps (a pure function with
//!   reasons), pins, and removing the rest crash-safely.
//! - [`status`]: "are we covered?", a pure judgement of backups, archive and streamer.
//! - [`units`]: durations, sizes and rates as people write them (`15m`, `64MiB`, `50MiB/s`).
//!
//! This crate never prints and never exits the process: it returns typed [`Error`]s whose
//! [`ErrorKind`] the CLI maps to stable exit codes.

pub mod binlog;
pub mod copy;
pub mod drill;
pub mod engine;
pub mod error;
pub mod manifest;
pub mod pipeline;
pub mod progress;
pub mod recovery;
pub mod repo;
pub mod retention;
pub mod sandbox;
pub mod source;
pub mod status;
pub mod storage;
pub mod units;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
