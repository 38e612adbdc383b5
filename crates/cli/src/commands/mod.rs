//! One module per subcommand.

pub mod backup;
pub mod binlog;
pub mod cleanup;
pub mod copy;
pub mod drill;
pub mod info;
pub mod init;
pub mod key;
pub mod list;
pub mod restore;
pub mod verify;
