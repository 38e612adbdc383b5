//! Binlog archiving and replay.
//!
//! - [`event`]: event framing and the few event bodies holdfast reads; [`gtid`]: MariaDB GTIDs.
//! - [`client`]: the replication connection; [`stream`]: the archiving loop;
//!   [`archive`]: segments in the repository.

pub mod archive;
pub mod client;
pub mod event;
pub mod gtid;
pub mod stream;
