//! The physical engine: hot full and incremental copies of a server's files by `mariabackup`
//! (MariaDB) or `xtrabackup` (MySQL), streamed through holdfast's pipeline into the repository,
//! and their restore into an empty datadir.
//!
//! - [`tool`]: locating the tool of the right family and version; credentials in a 0600 file.
//! - [`log`]: following the tool's log (lock stages, success) and reading its side files.
//! - [`replica`]: lag checks when backing up a replica.
//! - [`chain`]: incremental chains (full first, each continuing at its parent's `to_lsn`).
//! - [`backup`], [`restore`]: the two jobs; [`start`]: starting a server on a restored datadir.
//!
//! A physical backup is two files: `stream.xbstream.zst` (the tool's xbstream, as zstd frames:
//! `zstd -d | mbstream -x` unpacks it by hand) and the tool's log; LSNs, parent, lock times and
//! the consistent point are in the manifest.

pub mod backup;
pub mod chain;
pub mod log;
pub mod replica;
pub mod restore;
pub mod start;
pub mod tool;

pub use backup::{run_physical_backup, PhysicalBackupOptions};
pub use chain::resolve_chain;
pub use restore::{run_physical_restore, PhysicalRestoreOptions, PhysicalRestoreReport};
pub use start::{StartOptions, StartedServer};
