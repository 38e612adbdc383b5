//! Binlog archiving and replay: event framing ([`event`]) and MariaDB GTIDs ([`gtid`]).

pub mod event;
pub mod gtid;
