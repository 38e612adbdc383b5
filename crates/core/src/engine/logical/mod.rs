//! The logical engine: a consistent, parallel, chunked dump of rows as LOAD DATA–compatible TSV,
//! and its restore.
//!
//! - [`filter`]: which databases and tables take part.
//! - [`schema`]: reading schema objects from a server and re-creating them.
//! - [`ddl`]: pure rewrites of `CREATE TABLE` text (deferring secondary indexes and foreign keys).
//! - [`tsv`]: the row encoding, exact for NULL, tabs, newlines, backslashes and binary bytes;
//!   [`tsv_decode`] reads it back into values.
//! - [`chunking`]: splitting a table into key ranges that tile the key space by construction.
//! - [`backup`] and [`restore`]: the two jobs; [`load`]: the restore's pipeline of rows,
//!   index builds and checks; [`bulk_load`]: its row loader for MariaDB targets
//!   (`COM_STMT_BULK_EXECUTE`).

pub mod backup;
pub mod bulk_load;
pub mod chunking;
pub mod ddl;
pub mod filter;
mod load;
pub mod restore;
pub mod schema;
pub mod tsv;
pub mod tsv_decode;

pub use filter::Filter;
