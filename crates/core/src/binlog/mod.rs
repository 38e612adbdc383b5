//! Binlog archiving and replay.
//!
//! - [`event`]: event framing and the few event bodies holdfast reads; [`gtid`]: MariaDB GTIDs.
//! - Archiving: [`client`] (the replication connection), [`stream`] (the archiving loop),
//!   [`archive`] (segments in the repository), [`compact`] (merging small closed segments).
//! - Replay: [`apply`] (the portable replay over SQL) with its helpers: streaming event reading
//!   ([`event_stream`]), QUERY session context ([`query_status`]), INTVAR/RAND/USER_VAR
//!   ([`statement_vars`]) and compressed events ([`compressed`]); [`serve`] (the fast replay: a
//!   minimal primary serving the archive to the restored server's own replication).
//! - [`verify`]: checking the archive (objects against their index entries, continuity, lost
//!   entries; with `deep`, every event).

pub mod apply;
pub mod archive;
pub mod client;
pub mod compact;
pub mod compressed;
pub mod event;
pub mod event_stream;
pub mod gtid;
pub mod query_status;
pub mod serve;
pub mod statement_vars;
pub mod stream;
pub mod verify;
