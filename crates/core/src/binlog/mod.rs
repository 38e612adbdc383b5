//! Binlog archiving and replay: event framing ([`event`]), MariaDB GTIDs ([`gtid`]), and the
//! portable replay over SQL ([`apply`]) with its helpers: streaming event reading
//! ([`event_stream`]), QUERY session context ([`query_status`]), INTVAR/RAND/USER_VAR
//! ([`statement_vars`]) and compressed events ([`compressed`]).

pub mod apply;
pub mod compressed;
pub mod event;
pub mod event_stream;
pub mod gtid;
pub mod query_status;
pub mod statement_vars;
