//! Every on-disk type of the repository, in one place, versioned.
//!
//! - [`RepoConfig`]: `holdfast.repo`, written by `init`, rewritten only to re-wrap the data key;
//!   with [`EncryptionConfig`] when the repository is encrypted.
//! - [`BackupManifest`]: `backups/<id>/manifest`, written last: the backup's commit point.
//! - [`BackupSummary`]: `backups/<id>/summary`, written right after it: the manifest without
//!   its table and file lists (their totals instead), what listing a repository reads.
//! - [`LockRecord`]: `locks/<name>.lock`, the owner and expiry of a repository lock.
//! - [`SegmentIndex`]: `binlog/index/<seq>.json`, one archived binlog segment, written after its data.
//! - [`StreamStatus`]: `binlog/stream-status.json`, the binlog streamer's heartbeat record.
//! - [`SchemaDump`]: `backups/<id>/schema.json.zst`, the schema objects of a logical backup.
//! - [`DrillRecord`]: `drills/<id>.json`, the evidence of one restore drill, written once.
//! - [`PhysicalInfo`]: the physical part of a [`BackupManifest`] (LSNs, parent, tool, locks).
//! - [`StoredPolicy`]: `policy.json`, the repository's retention policy; [`PinRecord`]:
//!   `pins/<id>.json`, a backup kept until unpinned.
//!
//! All are JSON. Each top-level type carries a `format` number; readers refuse a format newer than
//! they know with a message telling the user to upgrade holdfast, so an old binary never
//! misreads a newer repository. Additive changes (new optional fields) keep the number.

mod binlog;
mod drill;
mod physical;
mod retention;
mod schema;
mod stream_status;
mod summary;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use binlog::*;
pub use drill::*;
pub use physical::*;
pub use retention::*;
pub use schema::*;
pub use stream_status::*;
pub use summary::*;

/// The newest repository format this build reads, and the one it writes: `holdfast.repo` carries
/// [`DescriptorAuth`] (plain or encrypted).
pub const REPO_FORMAT: u32 = 3;
/// An unencrypted repository written before the descriptor was authenticated (still read).
pub const REPO_FORMAT_PLAIN: u32 = 1;
/// An encrypted repository written before the descriptor was authenticated (still read).
pub const REPO_FORMAT_ENCRYPTED_V2: u32 = 2;
/// The first format whose `holdfast.repo` must carry [`DescriptorAuth`].
pub const REPO_FORMAT_AUTHENTICATED: u32 = 3;
/// The newest backup manifest format this build reads, and the one it writes for a logical backup
/// that packs small tables into shared files ([`ChunkEntry::segment`]).
pub const MANIFEST_FORMAT: u32 = 2;
/// The manifest format without packs: every chunk is a file of its own. Still written when a
/// backup packs nothing (physical backups, logical ones with few tables), so that holdfast
/// releases that predate packs keep reading those; always read.
pub const MANIFEST_FORMAT_UNPACKED: u32 = 1;

/// `holdfast.repo`: identifies a directory or bucket prefix as a holdfast repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepoConfig {
    pub format: u32,
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The holdfast version that created the repository.
    pub created_by: String,
    /// Present when every file but this one is encrypted (formats 2 and 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionConfig>,
    /// Format 3: the checksum (and, when encrypted, the MAC) of every other field; see
    /// `repo::descriptor`. Absent in formats 1 and 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<DescriptorAuth>,
}

/// The authentication of `holdfast.repo` (format 3), over the canonical JSON of the document
/// without this field (keys sorted, no whitespace).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DescriptorAuth {
    /// `holdfast-repo-v1`.
    pub scheme: String,
    /// Hex SHA-256 of the canonical document: detects damage and hand edits before any key
    /// slot is tried.
    pub sha256: String,
    /// Encrypted repositories: hex HMAC-SHA256 of the canonical document under a key derived
    /// from the data key; verified right after unwrapping, before the key is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<String>,
}

/// How an encrypted repository's files are encrypted, and its data key in wrapped form.
///
/// The data key is an age X25519 identity. Each key slot holds it encrypted (ASCII-armored age)
/// either with a passphrase (age's scrypt recipient) or to an age X25519 recipient of the user,
/// so `age -d` can unwrap any slot by hand. The passphrase itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EncryptionConfig {
    /// `age-x25519-hmac-v1`: every file is an age file to the data key's recipient, with a
    /// `holdfast-auth` stanza binding it to its path (see `storage::encrypted`).
    pub scheme: String,
    /// A fingerprint of the data key (not secret): the first 16 hex digits of the SHA-256 of
    /// its public recipient. Checked after unwrapping, and shown by `key list`.
    pub key_id: String,
    pub slots: Vec<KeySlot>,
}

/// One wrapped copy of the data key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeySlot {
    pub kind: KeySlotKind,
    /// The age recipient (`age1...`) the key is wrapped to, for `recipient` slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub added: OffsetDateTime,
    /// The data identity (`AGE-SECRET-KEY-1...`), age-encrypted and ASCII-armored.
    pub wrapped: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeySlotKind {
    Passphrase,
    Recipient,
}

/// `locks/<name>.lock`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockRecord {
    /// Random token identifying this acquisition.
    pub token: String,
    pub host: String,
    pub pid: u32,
    /// What the holder is doing (`backup`, `expire`, …).
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339")]
    pub acquired: OffsetDateTime,
    /// The lock may be taken over by anyone after this instant; holders refresh it.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// `false` while a contender on a store without conditional writes has announced itself
    /// but not yet won (see `repo/lock.rs`); records written before this field are held.
    #[serde(default = "held_by_default")]
    pub held: bool,
}

fn held_by_default() -> bool {
    true
}

/// The server a backup was taken from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerInfo {
    /// `mariadb` or `mysql`.
    pub flavor: String,
    /// `@@version`.
    pub version: String,
    pub server_id: u32,
    /// `@@server_uuid` on MySQL; empty on MariaDB, which has none.
    #[serde(default)]
    pub server_uuid: String,
    pub hostname: String,
}

/// The point in the server's history the backup is consistent with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsistentPoint {
    /// Binary log file and position (empty when the binlog is off).
    pub binlog_file: String,
    pub binlog_pos: u64,
    /// `gtid_binlog_pos` on MariaDB, `gtid_executed` on MySQL.
    pub gtid_set: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

impl ConsistentPoint {
    /// `binlog.000006:325, GTID 0-1-13` for people; says so when the binlog was off or no GTID
    /// had been written yet.
    pub fn describe(&self) -> String {
        if self.binlog_file.is_empty() {
            return "binary log off (no point-in-time recovery from this backup)".to_string();
        }
        let gtid = if self.gtid_set.is_empty() {
            "no GTID yet"
        } else {
            &self.gtid_set
        };
        format!("{}:{}, GTID {gtid}", self.binlog_file, self.binlog_pos)
    }
}

impl Default for ConsistentPoint {
    fn default() -> Self {
        ConsistentPoint {
            binlog_file: String::new(),
            binlog_pos: 0,
            gtid_set: String::new(),
            time: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// One stored file of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path relative to the backup's directory (`data/db/t/00000.tsv.zst`).
    pub path: String,
    /// Stored size in bytes.
    pub size: u64,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
}

/// An order-independent fingerprint of a table's rows as dumped.
///
/// The wrapping sum of the XXH3-128 of each row's TSV line, so chunks combine in any order and
/// a restore can recompute it by dumping the restored table the same way.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub rows: u64,
    #[serde(with = "hex_u128")]
    pub sum: u128,
}

impl Fingerprint {
    pub fn add_row(&mut self, line: &[u8]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(line));
    }

    pub fn merge(&mut self, other: &Fingerprint) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

mod hex_u128 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032x}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        u128::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

/// One chunk of a table's rows: a key range dumped into one file, or (format 2) a small table
/// dumped whole into a segment of a shared pack file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkEntry {
    /// File path relative to the backup directory; also listed in `BackupManifest::files`.
    pub file: String,
    /// The SQL condition that selected the rows (`TRUE` for a whole table), for diagnosis.
    pub range: String,
    pub rows: u64,
    /// Uncompressed TSV bytes.
    pub raw_size: u64,
    /// Format 2: the chunk is the bytes `offset..offset + length` of `file`, a pack shared with
    /// other tables; absent when the chunk is the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
}

/// Where a packed chunk lies in its pack file (`packs/NNNNN.tsv.zst`): whole zstd frames holding
/// exactly that chunk's TSV lines, so the range decompresses on its own, and the SHA-256 of those
/// stored bytes, so it is verified without reading the rest of the pack. The pack as a whole is
/// the concatenation of its segments (`zstd -d` reads it as one stream of every table's rows).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the segment's first stored byte in the file.
    pub offset: u64,
    /// Stored bytes of the segment (0 for a table without rows).
    pub length: u64,
    /// Hex SHA-256 of the segment's stored bytes.
    pub sha256: String,
}

impl Segment {
    /// The stored byte range of the segment.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.length
    }
}

impl ChunkEntry {
    /// A key for this chunk within a backup: its file, and for a packed chunk its byte range.
    /// Only empty segments (which hold nothing) can share a key.
    pub fn key(&self) -> String {
        match &self.segment {
            Some(s) => format!("{}@{}+{}", self.file, s.offset, s.length),
            None => self.file.clone(),
        }
    }
}

/// One table's data in a logical backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableData {
    pub database: String,
    pub table: String,
    /// The columns in the order they appear in each TSV line (generated columns excluded;
    /// invisible and system-versioning columns included).
    pub columns: Vec<String>,
    /// The rows include history (system-versioned table dumped `FOR SYSTEM_TIME ALL`).
    #[serde(default)]
    pub with_history: bool,
    /// `COUNT(*)` taken in the backup's snapshot; equal to `fingerprint.rows` by construction
    /// of a successful backup.
    pub row_count: u64,
    pub fingerprint: Fingerprint,
    pub chunks: Vec<ChunkEntry>,
}

/// `backups/<id>/manifest`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupManifest {
    pub format: u32,
    pub id: String,
    /// `logical` or `physical`.
    pub engine: String,
    pub tool_version: String,
    pub server: ServerInfo,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    pub consistent_point: ConsistentPoint,
    /// How long the server-wide lock that aligned the snapshot was held, in milliseconds.
    pub lock_held_ms: u64,
    /// The compression of data files (`zstd`).
    pub compression: String,
    /// Path of the schema file, relative to the backup directory (logical backups; empty for
    /// physical ones).
    #[serde(default)]
    pub schema_file: String,
    /// Tables and their chunks (logical backups; empty for physical ones).
    #[serde(default)]
    pub tables: Vec<TableData>,
    /// Every stored file of the backup except the manifest itself.
    pub files: Vec<FileEntry>,
    /// Whether users and grants were included.
    #[serde(default)]
    pub includes_users: bool,
    /// Physical backups only: LSNs, parent, tool and lock times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<PhysicalInfo>,
    /// What part of the server the backup holds. Absent from manifests written before holdfast
    /// recorded it (see [`BackupManifest::is_partial`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<BackupScope>,
}

/// What part of the server a backup holds: all of it, or what its filters selected.
///
/// A backup is *complete* when no filter restricted it: every database of the server except
/// the server's own schemas (`mysql`, `sys`, …; a physical backup has those too). Users and
/// grants are not part of the scope (`includes_users` says whether they were saved). A partial
/// backup restores what it holds, but never serves as the base of a point-in-time recovery,
/// whose binlog replay touches every database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BackupScope {
    /// No filter restricted the backup.
    pub complete: bool,
    /// The filters as given (`--databases`, `--exclude-databases`, `--tables`,
    /// `--exclude-tables`; globs kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_databases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
}

impl BackupScope {
    /// The whole server.
    pub fn complete() -> BackupScope {
        BackupScope {
            complete: true,
            ..Default::default()
        }
    }

    /// A backup taken with these filters (complete when all are empty).
    pub fn filtered(
        databases: &[String],
        exclude_databases: &[String],
        tables: &[String],
        exclude_tables: &[String],
    ) -> BackupScope {
        BackupScope {
            complete: databases.is_empty()
                && exclude_databases.is_empty()
                && tables.is_empty()
                && exclude_tables.is_empty(),
            databases: databases.to_vec(),
            exclude_databases: exclude_databases.to_vec(),
            tables: tables.to_vec(),
            exclude_tables: exclude_tables.to_vec(),
        }
    }

    /// `full`, or `partial: databases app,shop; exclude-tables shop.log_*` for people.
    pub fn describe(&self) -> String {
        if self.complete {
            return "full".to_string();
        }
        let parts: Vec<String> = [
            ("databases", &self.databases),
            ("exclude-databases", &self.exclude_databases),
            ("tables", &self.tables),
            ("exclude-tables", &self.exclude_tables),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| format!("{name} {}", v.join(",")))
        .collect();
        if parts.is_empty() {
            "partial".to_string()
        } else {
            format!("partial: {}", parts.join("; "))
        }
    }
}

impl BackupManifest {
    /// The parent of an incremental physical backup.
    pub fn parent(&self) -> Option<&str> {
        BackupHead::parent(self)
    }

    pub fn is_physical(&self) -> bool {
        BackupHead::is_physical(self)
    }

    /// Whether the backup holds only part of the server (taken with filters). A manifest
    /// without `scope` was written by a holdfast that did not record its filters: a physical
    /// one is complete by nature, a logical one is taken as complete (nothing recorded says
    /// otherwise; `list` and `info` show it as `full (assumed)`).
    pub fn is_partial(&self) -> bool {
        BackupHead::is_partial(self)
    }

    /// The scope for people: `full`, `partial: databases app`, or `full (assumed)` for a
    /// logical backup whose manifest predates the record.
    pub fn scope_description(&self) -> String {
        BackupHead::scope_description(self)
    }

    /// Whether any chunk is a segment of a pack (manifest format 2).
    pub fn has_packs(&self) -> bool {
        self.tables
            .iter()
            .flat_map(|t| &t.chunks)
            .any(|c| c.segment.is_some())
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.row_count).sum()
    }

    pub fn stored_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Uncompressed bytes: TSV of every chunk (logical) or the xbstream (physical).
    pub fn raw_bytes(&self) -> u64 {
        if let Some(p) = &self.physical {
            return p.stream_bytes;
        }
        self.tables
            .iter()
            .flat_map(|t| &t.chunks)
            .map(|c| c.raw_size)
            .sum()
    }
}

/// The top-level field in which manifests and segment index entries carry their own checksum.
pub const SELF_CHECKSUM: &str = "self_sha256";

/// Encodes a manifest or segment index entry as pretty JSON with its own checksum:
/// [`SELF_CHECKSUM`] = hex SHA-256 of the [`canonical_json`] of the document without it. It
/// catches damage that leaves valid JSON (a flipped digit, a changed name), which nothing else
/// would; in an encrypted repository the file's authentication covers that already. The
/// checksum is computed from the encoded text one level at a time ([`hash_canonical`]), never
/// from a tree of the whole document: a manifest of 100,000 tables is tens of MB of JSON and
/// its tree several times that.
pub fn encode_self_checked<T: Serialize>(doc: &T) -> crate::Result<Vec<u8>> {
    let internal = |e: serde_json::Error| crate::Error::internal(e.to_string());
    let mut body = serde_json::to_vec_pretty(doc).map_err(internal)?;
    let text = std::str::from_utf8(&body).map_err(|e| crate::Error::internal(e.to_string()))?;
    let top: BTreeMap<String, &RawValue> = serde_json::from_str(text)
        .map_err(|_| crate::Error::internal("a self-checked document is a JSON object"))?;
    if top.contains_key(SELF_CHECKSUM) {
        return Err(crate::Error::internal(format!(
            "a self-checked document has its own `{SELF_CHECKSUM}` field"
        )));
    }
    let mut sha = Sha256::new();
    hash_object(&top, &mut sha).map_err(internal)?;
    let field = format!(
        "\n  \"{SELF_CHECKSUM}\": \"{}\"\n}}",
        hex::encode(sha.finalize())
    );
    let empty = top.is_empty();
    // `{ ... }` as to_vec_pretty writes it: the checksum goes in as the last field.
    let close = body
        .iter()
        .rposition(|&b| b == b'}')
        .ok_or_else(|| crate::Error::internal("a self-checked document is a JSON object"))?;
    body.truncate(close);
    while body.last().is_some_and(u8::is_ascii_whitespace) {
        body.pop();
    }
    if !empty {
        body.push(b',');
    }
    body.extend_from_slice(field.as_bytes());
    Ok(body)
}

/// Reads a document written by [`encode_self_checked`]: its checksum must match. A document
/// without one (written before checksums) is accepted when it has no top-level field this build
/// does not know (a damaged `self_sha256` name would otherwise pass as such a document). Then
/// as [`decode_versioned`].
pub fn decode_self_checked<T: serde::de::DeserializeOwned + Serialize>(
    bytes: &[u8],
    what: &str,
    newest: u32,
) -> crate::Result<T> {
    let damaged = |why: String| {
        crate::Error::new(
            crate::ErrorKind::Integrity,
            format!("{what} is damaged: {why}"),
        )
    };
    let text =
        std::str::from_utf8(bytes).map_err(|e| damaged(format!("it is not valid JSON ({e})")))?;
    if !text.trim_start().starts_with('{') {
        // Valid JSON of another shape, or none at all.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => damaged("it is not a JSON object".into()),
            Err(e) => damaged(format!("it is not valid JSON ({e})")),
        });
    }
    let mut top: BTreeMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|e| damaged(format!("it is not valid JSON ({e})")))?;
    let stored = top.remove(SELF_CHECKSUM);
    if let Some(stored) = stored {
        let mut sha = Sha256::new();
        hash_object(&top, &mut sha).map_err(|e| damaged(format!("it is not valid JSON ({e})")))?;
        let sum = hex::encode(sha.finalize());
        let stored: serde_json::Value = serde_json::from_str(stored.get())
            .map_err(|e| damaged(format!("it is not valid JSON ({e})")))?;
        if stored.as_str() != Some(sum.as_str()) {
            return Err(damaged(format!(
                "its content does not match its own checksum ({SELF_CHECKSUM})"
            )));
        }
    }
    let doc: T = decode_versioned(bytes, what, newest).map_err(|e| {
        if e.kind() == crate::ErrorKind::Integrity {
            damaged(e.to_string())
        } else {
            e
        }
    })?;
    if stored.is_none() {
        let known =
            serde_json::to_string(&doc).map_err(|e| crate::Error::internal(e.to_string()))?;
        let known: BTreeMap<String, &RawValue> =
            serde_json::from_str(&known).map_err(|e| crate::Error::internal(e.to_string()))?;
        if let Some(unknown) = top.keys().find(|k| !known.contains_key(*k)) {
            return Err(damaged(format!(
                "it has no {SELF_CHECKSUM} and a field `{unknown}` this holdfast does not know"
            )));
        }
    }
    Ok(doc)
}

/// Feeds the [`canonical_json`] of the object `entries` to `sha`.
fn hash_object(entries: &BTreeMap<String, &RawValue>, sha: &mut Sha256) -> serde_json::Result<()> {
    sha.update(b"{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            sha.update(b",");
        }
        sha.update(serde_json::to_vec(key)?);
        sha.update(b":");
        hash_canonical(value, sha)?;
    }
    sha.update(b"}");
    Ok(())
}

/// Feeds the [`canonical_json`] of `raw` to `sha`, splitting objects and arrays one level at a
/// time: the same bytes as [`canonical_json`] of its tree (keys sorted in a `BTreeMap`, a
/// duplicate key's last value kept, scalars re-encoded by serde_json), with memory for one
/// level's slices instead of the whole tree.
fn hash_canonical(raw: &RawValue, sha: &mut Sha256) -> serde_json::Result<()> {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => hash_object(&serde_json::from_str(raw.get())?, sha),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get())?;
            sha.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sha.update(b",");
                }
                hash_canonical(item, sha)?;
            }
            sha.update(b"]");
            Ok(())
        }
        _ => {
            let scalar: serde_json::Value = serde_json::from_str(raw.get())?;
            sha.update(serde_json::to_vec(&scalar)?);
            Ok(())
        }
    }
}

/// The canonical bytes of a JSON document: object keys sorted, no whitespace, strings and
/// numbers as serde_json writes them. What `holdfast.repo`'s authentication and the
/// self-checksums of manifests and index entries are computed over.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).expect("a string serializes"));
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).expect("a scalar serializes")),
    }
}

/// Reads a versioned JSON document, refusing formats newer than `newest`.
pub fn decode_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    newest: u32,
) -> crate::Result<T> {
    #[derive(Deserialize)]
    struct Probe {
        format: u32,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
        crate::Error::with_source(
            crate::ErrorKind::Integrity,
            format!("{what} is not valid JSON or has no format number"),
            e,
        )
    })?;
    if probe.format > newest {
        return Err(crate::Error::new(
            crate::ErrorKind::RepoInvalid,
            format!(
                "{what} has format {} but this holdfast ({}) reads up to format {newest}; \
                 upgrade holdfast to use this repository",
                probe.format,
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        crate::Error::with_source(
            crate::ErrorKind::Integrity,
            format!("{what} is malformed"),
            e,
        )
    })
}

#[cfg(test)]
mod self_checksum_tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::{json, Value};

    /// The checksum computed level by level from the text is the one of the whole tree's
    /// canonical JSON (what earlier releases wrote and still verify against), whatever the
    /// layout, key order, escapes, numbers or nesting of the text.
    #[test]
    fn the_level_by_level_checksum_is_the_canonical_trees() {
        let texts = [
            r#"{"format": 1, "b": [1, -2, 3.5, 1e3, 0.1], "a": {"z": null, "y": [true, false, []]}}"#,
            "{\n  \"\\u00e9t\\u00e9\": \"caf\\u00e9 \\\"q\\\" \\\\ \\n\",\n  \"\u{1F600}\": {}\n}",
            r#"{"dup": 1, "dup": 2, "tables": [{"chunks": [{"segment": {"offset": 0, "sha256": "ab"}}]}]}"#,
            r#"{"big": 18446744073709551615, "neg": -9223372036854775808, "f": 2.5e-8}"#,
        ];
        for text in texts {
            let tree: Value = serde_json::from_str(text).unwrap();
            let expected = hex::encode(Sha256::digest(canonical_json(&tree)));
            let top: BTreeMap<String, &RawValue> = serde_json::from_str(text).unwrap();
            let mut sha = Sha256::new();
            hash_object(&top, &mut sha).unwrap();
            assert_eq!(hex::encode(sha.finalize()), expected, "{text}");
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Doc {
        format: u32,
        id: String,
        rows: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    fn doc() -> Doc {
        Doc {
            format: 1,
            id: "b1".into(),
            rows: 6000,
            note: None,
        }
    }

    fn edit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bytes).unwrap();
        f(&mut v);
        serde_json::to_vec_pretty(&v).unwrap()
    }

    #[test]
    fn damage_that_leaves_valid_json_is_caught() {
        let bytes = encode_self_checked(&doc()).unwrap();
        assert_eq!(decode_self_checked::<Doc>(&bytes, "d", 1).unwrap(), doc());
        // Reformatted, it still reads.
        let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&bytes).unwrap());
        assert_eq!(
            decode_self_checked::<Doc>(&compact.unwrap(), "d", 1).unwrap(),
            doc()
        );

        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit, ErrorKind)> = vec![
            (
                "a digit",
                Box::new(|v| v["rows"] = json!(2000)),
                ErrorKind::Integrity,
            ),
            (
                "a name",
                Box::new(|v| v["id"] = json!("b2")),
                ErrorKind::Integrity,
            ),
            (
                "a field added",
                Box::new(|v| v["note"] = json!("x")),
                ErrorKind::Integrity,
            ),
            (
                "the checksum",
                Box::new(|v| v[SELF_CHECKSUM] = json!("00")),
                ErrorKind::Integrity,
            ),
            (
                "the checksum's name",
                Box::new(|v| {
                    let sum = v.as_object_mut().unwrap().remove(SELF_CHECKSUM).unwrap();
                    v["self_sha257"] = sum;
                }),
                ErrorKind::Integrity,
            ),
            (
                "the format, raised",
                Box::new(|v| v["format"] = json!(9)),
                ErrorKind::Integrity,
            ),
        ];
        for (what, f, kind) in cases {
            let err = decode_self_checked::<Doc>(&edit(&bytes, f), "`x/manifest`", 1).unwrap_err();
            assert_eq!(err.kind(), kind, "{what}: {err}");
            assert!(err.to_string().contains("`x/manifest`"), "{what}: {err}");
        }
        let cut = &bytes[..bytes.len() / 2];
        let err = decode_self_checked::<Doc>(cut, "`x/manifest`", 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity);
        assert!(err.to_string().contains("`x/manifest`"), "{err}");
    }

    #[test]
    fn documents_without_a_checksum_still_read_unless_they_hold_unknown_fields() {
        let old = serde_json::to_vec_pretty(&doc()).unwrap();
        assert_eq!(decode_self_checked::<Doc>(&old, "d", 1).unwrap(), doc());
        let newer = edit(&old, |v| v["format"] = json!(2));
        assert_eq!(
            decode_self_checked::<Doc>(&newer, "d", 1)
                .unwrap_err()
                .kind(),
            ErrorKind::RepoInvalid
        );
        let odd = edit(&old, |v| v["rowz"] = json!(1));
        assert_eq!(
            decode_self_checked::<Doc>(&odd, "d", 1).unwrap_err().kind(),
            ErrorKind::Integrity
        );
    }
}
