//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod binlog;
pub mod binlog_compact;
pub mod cleanup;
pub mod completions;
pub mod copy;
pub mod daemon;
pub mod drill;
pub mod expire;
pub mod info;
pub mod init;
pub mod key;
pub mod list;
pub mod manpages;
pub mod notify;
pub mod pin;
pub mod policy;
pub mod restore;
pub mod status;
pub mod token;
pub mod user;
pub mod verify;
