//! `backups/<id>/summary`: a backup's manifest without its per-table and per-file lists, plus
//! the totals of those lists and the SHA-256 of the manifest it was made from.
//!
//! The manifest stays the commit point and the source of truth; the summary is a derived cache,
//! written right after it, so that listing a repository (`list`, `info`, `status`, the daemon's
//! metrics, retention previews, choosing a base) costs the same whatever the number of tables:
//! a summary is a couple of KiB where the manifest of a 100,000-table backup is tens of MB. A
//! backup without one (written before summaries existed, or a crash between the two writes) is
//! summarised from its manifest when read. Decisions that delete or restore re-check what they
//! act on against the manifest (see `Repository::check_summary`).
//!
//! [`BackupHead`] is what a manifest and its summary both say about a backup, for code that
//! decides from either (choosing a recovery base, retention facts).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BackupManifest, BackupScope, ConsistentPoint, PhysicalInfo, ServerInfo};

/// The newest summary format this build reads, and the one it writes.
pub const SUMMARY_FORMAT: u32 = 1;

/// `backups/<id>/summary`: every field of the [`BackupManifest`] except `tables` and `files`,
/// those lists' totals, and the SHA-256 of the manifest's stored plaintext.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupSummary {
    /// The summary's own format ([`SUMMARY_FORMAT`]).
    pub format: u32,
    pub id: String,
    /// The `format` of the manifest it summarises.
    pub manifest_format: u32,
    /// Hex SHA-256 of the manifest as stored (its plaintext in an encrypted repository).
    pub manifest_sha256: String,
    pub engine: String,
    pub tool_version: String,
    pub server: ServerInfo,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    pub consistent_point: ConsistentPoint,
    pub lock_held_ms: u64,
    pub compression: String,
    #[serde(default)]
    pub schema_file: String,
    #[serde(default)]
    pub includes_users: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<PhysicalInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<BackupScope>,
    /// Entries of the manifest's `tables`.
    pub table_count: u64,
    /// Chunks of all tables (files and pack segments).
    pub chunk_count: u64,
    /// Entries of the manifest's `files`.
    pub file_count: u64,
    /// The sum of the tables' row counts.
    pub rows: u64,
    /// Uncompressed bytes ([`BackupManifest::raw_bytes`]).
    pub raw_bytes: u64,
    /// Stored bytes of every file ([`BackupManifest::stored_bytes`]).
    pub stored_bytes: u64,
    /// Whether any chunk is a segment of a pack.
    #[serde(default)]
    pub packed: bool,
}

impl BackupSummary {
    /// The summary of `manifest`, whose stored plaintext has SHA-256 `manifest_sha256`.
    pub fn of(manifest: &BackupManifest, manifest_sha256: String) -> BackupSummary {
        let m = manifest;
        BackupSummary {
            format: SUMMARY_FORMAT,
            id: m.id.clone(),
            manifest_format: m.format,
            manifest_sha256,
            engine: m.engine.clone(),
            tool_version: m.tool_version.clone(),
            server: m.server.clone(),
            started: m.started,
            finished: m.finished,
            consistent_point: m.consistent_point.clone(),
            lock_held_ms: m.lock_held_ms,
            compression: m.compression.clone(),
            schema_file: m.schema_file.clone(),
            includes_users: m.includes_users,
            physical: m.physical.clone(),
            scope: m.scope.clone(),
            table_count: m.tables.len() as u64,
            chunk_count: m.tables.iter().map(|t| t.chunks.len() as u64).sum(),
            file_count: m.files.len() as u64,
            rows: m.total_rows(),
            raw_bytes: m.raw_bytes(),
            stored_bytes: m.stored_bytes(),
            packed: m.has_packs(),
        }
    }

    /// The names of the fields in which `self` and `other` differ (empty when equal), to
    /// name what a damaged or stale summary gets wrong.
    pub fn differences(&self, other: &BackupSummary) -> Vec<String> {
        let (Ok(a), Ok(b)) = (serde_json::to_value(self), serde_json::to_value(other)) else {
            return vec!["(unserialisable)".into()];
        };
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec!["(not an object)".into()];
        };
        let mut names: Vec<String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn parent(&self) -> Option<&str> {
        BackupHead::parent(self)
    }

    pub fn is_physical(&self) -> bool {
        BackupHead::is_physical(self)
    }

    pub fn is_partial(&self) -> bool {
        BackupHead::is_partial(self)
    }

    pub fn scope_description(&self) -> String {
        BackupHead::scope_description(self)
    }
}

/// What a [`BackupManifest`] and its [`BackupSummary`] both say about a backup.
pub trait BackupHead {
    fn backup_id(&self) -> &str;
    fn engine(&self) -> &str;
    fn consistent_point(&self) -> &ConsistentPoint;
    fn physical(&self) -> Option<&PhysicalInfo>;
    fn scope(&self) -> Option<&BackupScope>;

    /// The parent of an incremental physical backup.
    fn parent(&self) -> Option<&str> {
        self.physical().and_then(|p| p.parent.as_deref())
    }

    fn is_physical(&self) -> bool {
        self.engine() == "physical"
    }

    /// Whether the backup holds only part of the server (taken with filters). Without a
    /// recorded scope (manifests written before it), a physical backup is complete by nature
    /// and a logical one is taken as complete (`full (assumed)`).
    fn is_partial(&self) -> bool {
        self.scope().is_some_and(|s| !s.complete)
    }

    /// The scope for people: `full`, `partial: databases app`, or `full (assumed)` for a
    /// logical backup whose manifest predates the record.
    fn scope_description(&self) -> String {
        match self.scope() {
            Some(scope) => scope.describe(),
            None if self.is_physical() => "full".to_string(),
            None => "full (assumed)".to_string(),
        }
    }
}

impl BackupHead for BackupSummary {
    fn backup_id(&self) -> &str {
        &self.id
    }
    fn engine(&self) -> &str {
        &self.engine
    }
    fn consistent_point(&self) -> &ConsistentPoint {
        &self.consistent_point
    }
    fn physical(&self) -> Option<&PhysicalInfo> {
        self.physical.as_ref()
    }
    fn scope(&self) -> Option<&BackupScope> {
        self.scope.as_ref()
    }
}

impl BackupHead for BackupManifest {
    fn backup_id(&self) -> &str {
        &self.id
    }
    fn engine(&self) -> &str {
        &self.engine
    }
    fn consistent_point(&self) -> &ConsistentPoint {
        &self.consistent_point
    }
    fn physical(&self) -> Option<&PhysicalInfo> {
        self.physical.as_ref()
    }
    fn scope(&self) -> Option<&BackupScope> {
        self.scope.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{
        decode_self_checked, encode_self_checked, ChunkEntry, FileEntry, Fingerprint, Segment,
        TableData, MANIFEST_FORMAT,
    };

    fn manifest() -> BackupManifest {
        let t = time::macros::datetime!(2026-12-07 07:31:59 UTC);
        let table = |name: &str, rows: u64, segment: Option<Segment>| TableData {
            database: "shop".into(),
            table: name.into(),
            columns: vec!["id".into()],
            with_history: false,
            row_count: rows,
            fingerprint: Fingerprint::default(),
            chunks: vec![ChunkEntry {
                file: "packs/00000.tsv.zst".into(),
                range: "TRUE".into(),
                rows,
                raw_size: rows * 10,
                segment,
            }],
        };
        BackupManifest {
            format: MANIFEST_FORMAT,
            id: "20261207T073159Z-fd85".into(),
            engine: "logical".into(),
            tool_version: "0.1.0".into(),
            server: ServerInfo {
                flavor: "mariadb".into(),
                version: "11.4".into(),
                server_id: 1,
                server_uuid: String::new(),
                hostname: "db1".into(),
            },
            started: t,
            finished: t,
            consistent_point: ConsistentPoint {
                binlog_file: "b.000001".into(),
                binlog_pos: 4,
                gtid_set: "0-1-5".into(),
                time: t,
            },
            lock_held_ms: 3,
            compression: "zstd".into(),
            schema_file: "schema.json.zst".into(),
            tables: vec![
                table("a", 3, None),
                table(
                    "b",
                    4,
                    Some(Segment {
                        offset: 0,
                        length: 9,
                        sha256: "00".into(),
                    }),
                ),
            ],
            files: vec![
                FileEntry {
                    path: "packs/00000.tsv.zst".into(),
                    size: 100,
                    sha256: "aa".into(),
                },
                FileEntry {
                    path: "schema.json.zst".into(),
                    size: 20,
                    sha256: "bb".into(),
                },
            ],
            includes_users: true,
            physical: None,
            scope: Some(BackupScope::complete()),
        }
    }

    #[test]
    fn a_summary_holds_the_totals_and_round_trips() {
        let m = manifest();
        let s = BackupSummary::of(&m, "ff".into());
        assert_eq!(
            (s.table_count, s.chunk_count, s.file_count, s.rows),
            (2, 2, 2, 7)
        );
        assert_eq!((s.raw_bytes, s.stored_bytes), (70, 120));
        assert!(s.packed);
        assert_eq!(s.scope_description(), m.scope_description());
        assert_eq!(s.is_partial(), m.is_partial());
        let bytes = encode_self_checked(&s).unwrap();
        let back: BackupSummary = decode_self_checked(&bytes, "s", SUMMARY_FORMAT).unwrap();
        assert_eq!(back, s);
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("\"tables\""), "{text}");
    }

    #[test]
    fn differences_name_the_fields() {
        let m = manifest();
        let a = BackupSummary::of(&m, "ff".into());
        let mut b = a.clone();
        assert!(a.differences(&b).is_empty());
        b.rows += 1;
        b.consistent_point.gtid_set = "0-1-6".into();
        assert_eq!(a.differences(&b), vec!["consistent_point", "rows"]);
    }
}
