//! The physical part of a backup manifest: what `mariabackup` / `xtrabackup` copied and from
//! where in the InnoDB redo log, so an incremental can continue from it and a restore can
//! rebuild the chain.

use serde::{Deserialize, Serialize};

/// `manifest.physical`: present exactly when `engine` is `physical`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhysicalInfo {
    /// `mariabackup` or `xtrabackup`.
    pub tool: String,
    /// The tool's own version line (`mariabackup based on MariaDB server 10.11.19-MariaDB …`).
    pub tool_version: String,
    /// `full` or `incremental`.
    pub kind: String,
    /// The backup this incremental applies on top of; `None` for a full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The LSN the copy starts from (0 for a full backup, the parent's `to_lsn` otherwise).
    pub from_lsn: u64,
    /// The checkpoint LSN the next incremental starts from (`xtrabackup_checkpoints` `to_lsn`).
    pub to_lsn: u64,
    /// The last LSN copied from the redo log (`last_lsn`).
    pub last_lsn: u64,
    /// Relative path of the compressed xbstream (also listed in `files`).
    pub stream_file: String,
    /// Uncompressed xbstream bytes.
    pub stream_bytes: u64,
    /// Relative path of the tool's compressed log, kept for diagnosis (also listed in `files`).
    pub log_file: String,
    /// How long the backup blocked the server, measured from the tool's log as it ran.
    pub locks: LockTimes,
    /// When taken from a replica: the position in the primary's history the copy matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<PrimaryPosition>,
}

/// Lock impact of a physical backup, in milliseconds (0 when the phase did not happen).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct LockTimes {
    /// From the DDL-blocking stage being acquired (`BACKUP STAGE BLOCK_DDL`, or a backup lock)
    /// until every lock was released: DDL waited, DML ran.
    pub ddl_blocked_ms: u64,
    /// From commits being blocked (`BACKUP STAGE BLOCK_COMMIT`, or `FLUSH TABLES WITH READ
    /// LOCK`) until every lock was released: writes waited.
    pub commits_blocked_ms: u64,
    /// Longest time the tool waited to acquire any stage (a long transaction or DDL ahead).
    pub longest_wait_ms: u64,
}

/// The primary's coordinates recorded by `--slave-info` on a replica.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PrimaryPosition {
    pub primary_host: String,
    /// Primary's binlog file and position the replica had executed up to (may be empty when the
    /// replica uses GTIDs).
    #[serde(default)]
    pub binlog_file: String,
    #[serde(default)]
    pub binlog_pos: u64,
    /// `gtid_slave_pos` (MariaDB) or the executed GTID set (MySQL), when known.
    #[serde(default)]
    pub gtid_set: String,
    /// The tool's line as printed, for anything the fields above do not capture.
    pub raw: String,
    /// The replica's `Seconds_Behind_Master` when the backup started.
    #[serde(default)]
    pub lag_seconds: u64,
}
