//! Checking a backup against its manifest.
//!
//! Every file listed in the manifest must exist with the recorded size and SHA-256. With `deep`,
//! data chunks are also decompressed and their rows counted and fingerprinted, which proves the
//! manifest's row counts and fingerprints without a server; a physical backup's files are
//! decompressed end to end. An incremental physical backup is only as good as its chain, so the
//! whole chain is checked: every ancestor's manifest must exist and link up (each starts at the
//! LSN its parent ended at), and every ancestor's files are verified too. Problems are
//! collected, not short-circuited, so one run names every missing or corrupt file.

use std::sync::Arc;

use futures::{stream, StreamExt};
use serde::Serialize;

use crate::engine::physical::chain::check_link;
use crate::manifest::{BackupManifest, ChunkEntry, FileEntry, Fingerprint};
use crate::pipeline::{read_verified, Decompressor};
use crate::progress::Progress;
use crate::repo::{layout, Repository};
use crate::storage::Storage;
use crate::{ErrorKind, Result};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    /// Repository path of the file.
    pub path: String,
    /// `missing`, `corrupt`, `rows`, `chain`.
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub backup_id: String,
    /// The backups checked, base first: just `backup_id`, or a physical incremental's whole
    /// chain.
    pub chain: Vec<String>,
    pub files: usize,
    #[serde(rename = "checked_bytes")]
    pub bytes: u64,
    pub deep: bool,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const PARALLEL_READS: usize = 4;

pub async fn verify_backup(
    repo: &Repository,
    manifest: &BackupManifest,
    deep: bool,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport> {
    let (ancestors, mut problems) = ancestors(repo, manifest).await?;
    let all: Vec<&BackupManifest> = ancestors.iter().chain(std::iter::once(manifest)).collect();
    let total: u64 = all.iter().map(|m| m.stored_bytes()).sum();
    progress.phase("verify", total, "bytes");
    for m in &all {
        problems.extend(verify_files(repo, m, deep, progress.clone()).await?);
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(VerifyReport {
        backup_id: manifest.id.clone(),
        chain: all.iter().map(|m| m.id.clone()).collect(),
        files: all.iter().map(|m| m.files.len()).sum(),
        bytes: total,
        deep,
        problems,
    })
}

/// The ancestors of a physical incremental (base first) that could be loaded, and problems with
/// the chain: a missing parent, a parent that does not link up.
async fn ancestors(
    repo: &Repository,
    manifest: &BackupManifest,
) -> Result<(Vec<BackupManifest>, Vec<Problem>)> {
    let mut chain: Vec<BackupManifest> = Vec::new();
    let mut problems = Vec::new();
    let mut child = manifest.clone();
    while let Some(parent_id) = child.parent().map(str::to_string) {
        if parent_id == manifest.id || chain.iter().any(|m| m.id == parent_id) {
            problems.push(chain_problem(
                &child.id,
                format!("parent loop through {parent_id}"),
            ));
            break;
        }
        let parent = match repo.load_manifest(&parent_id).await {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                problems.push(chain_problem(
                    &child.id,
                    format!(
                        "its parent {parent_id} is missing from the repository: the chain is \
                         broken and cannot be restored"
                    ),
                ));
                break;
            }
            Err(e) if e.kind() == ErrorKind::Integrity => {
                problems.push(chain_problem(
                    &parent_id,
                    format!("the manifest of parent {parent_id} is unreadable: {e}"),
                ));
                break;
            }
            Err(e) => return Err(e),
        };
        if let Err(why) = check_link(&parent, &child) {
            problems.push(chain_problem(&child.id, why));
        }
        chain.push(parent.clone());
        child = parent;
    }
    chain.reverse();
    Ok((chain, problems))
}

fn chain_problem(id: &str, detail: String) -> Problem {
    Problem {
        path: layout::manifest_path(id),
        kind: "chain".into(),
        detail,
    }
}

/// Checks one backup's own files.
async fn verify_files(
    repo: &Repository,
    manifest: &BackupManifest,
    deep: bool,
    progress: Arc<dyn Progress>,
) -> Result<Vec<Problem>> {
    let storage = repo.storage().clone();
    let decode_all = deep && manifest.is_physical();
    let chunk_of = |path: &str| -> Option<ChunkEntry> {
        manifest
            .tables
            .iter()
            .flat_map(|t| &t.chunks)
            .find(|c| c.file == path)
            .cloned()
    };
    let mut problems: Vec<Problem> = Vec::new();
    // Every chunk a table names must be a listed file.
    for t in &manifest.tables {
        for c in &t.chunks {
            if !manifest.files.iter().any(|f| f.path == c.file) {
                problems.push(Problem {
                    path: layout::backup_file(&manifest.id, &c.file),
                    kind: "missing".into(),
                    detail: format!(
                        "chunk of `{}`.`{}` not listed among the backup's files",
                        t.database, t.table
                    ),
                });
            }
        }
    }
    let checks = stream::iter(manifest.files.iter().cloned())
        .map(|f| {
            let storage = storage.clone();
            let progress = progress.clone();
            let chunk = if deep { chunk_of(&f.path) } else { None };
            let decode = decode_all && f.path.ends_with(".zst");
            let id = manifest.id.clone();
            async move {
                let outcome =
                    check_file(&*storage, &id, &f, chunk.as_ref(), decode, &*progress).await?;
                Ok::<_, crate::Error>((f.path, outcome))
            }
        })
        .buffer_unordered(PARALLEL_READS)
        .collect::<Vec<_>>()
        .await;
    let mut fingerprints = std::collections::HashMap::new();
    for c in checks {
        let (path, outcome) = c?;
        match outcome {
            Checked::Problem(p) => problems.push(p),
            Checked::Chunk(fp) => {
                fingerprints.insert(path, fp);
            }
            Checked::Ok => {}
        }
    }
    if deep {
        problems.extend(check_table_fingerprints(manifest, &fingerprints));
    }
    Ok(problems)
}

enum Checked {
    Ok,
    /// A data chunk whose rows were fingerprinted (deep mode).
    Chunk(Fingerprint),
    Problem(Problem),
}

async fn check_file(
    storage: &dyn Storage,
    id: &str,
    entry: &FileEntry,
    chunk: Option<&ChunkEntry>,
    decode: bool,
    progress: &dyn Progress,
) -> Result<Checked> {
    let path = layout::backup_file(id, &entry.path);
    let problem = |kind: &str, detail: String| {
        Ok(Checked::Problem(Problem {
            path: path.clone(),
            kind: kind.into(),
            detail,
        }))
    };
    let mut stream = match read_verified(storage, &path, entry).await {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::Integrity => return problem("missing", e.to_string()),
        Err(e) => return Err(e),
    };
    let mut counter = chunk.map(|_| LineCounter::new(&path)).transpose()?;
    let mut decoder = if decode {
        Some(Decompressor::new(&path)?)
    } else {
        None
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => {
                progress.advance(bytes.len() as u64);
                if let Some(c) = counter.as_mut() {
                    if let Err(e) = c.feed(&bytes) {
                        return problem("corrupt", e.to_string());
                    }
                }
                if let Some(d) = decoder.as_mut() {
                    if let Err(e) = d.feed(&bytes, |_| {}) {
                        return problem("corrupt", e.to_string());
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Integrity => return problem("corrupt", e.to_string()),
            Err(e) => return Err(e),
        }
    }
    if let Some(d) = decoder {
        if let Err(e) = d.finish() {
            return problem("corrupt", e.to_string());
        }
    }
    if let (Some(c), Some(chunk)) = (counter, chunk) {
        let fp = match c.finish() {
            Ok(fp) => fp,
            Err(e) => return problem("corrupt", e.to_string()),
        };
        if fp.rows != chunk.rows {
            return problem(
                "rows",
                format!("holds {} rows, the manifest says {}", fp.rows, chunk.rows),
            );
        }
        return Ok(Checked::Chunk(fp));
    }
    Ok(Checked::Ok)
}

/// Re-derives each table's fingerprint from its chunks' contents and compares it with the
/// manifest (tables with an unreadable chunk are already reported).
fn check_table_fingerprints(
    manifest: &BackupManifest,
    chunks: &std::collections::HashMap<String, Fingerprint>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    'tables: for t in &manifest.tables {
        let mut sum = Fingerprint::default();
        for c in &t.chunks {
            match chunks.get(&c.file) {
                Some(fp) => sum.merge(fp),
                None => continue 'tables,
            }
        }
        if sum != t.fingerprint || sum.rows != t.row_count {
            problems.push(Problem {
                path: layout::backup_dir(&manifest.id),
                kind: "rows".into(),
                detail: format!(
                    "`{}`.`{}`: chunk contents give {} rows / fingerprint {:032x}, the manifest says {} / {:032x}",
                    t.database, t.table, sum.rows, sum.sum, t.row_count, t.fingerprint.sum
                ),
            });
        }
    }
    problems
}

/// Decompresses a chunk and fingerprints its TSV lines.
struct LineCounter {
    dec: Decompressor,
    partial: Vec<u8>,
    fingerprint: Fingerprint,
}

impl LineCounter {
    fn new(path: &str) -> Result<Self> {
        Ok(LineCounter {
            dec: Decompressor::new(path)?,
            partial: Vec::new(),
            fingerprint: Fingerprint::default(),
        })
    }

    fn feed(&mut self, compressed: &[u8]) -> Result<()> {
        let (partial, fp) = (&mut self.partial, &mut self.fingerprint);
        self.dec.feed(compressed, |out| {
            let mut rest = out;
            while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                if partial.is_empty() {
                    fp.add_row(&rest[..=nl]);
                } else {
                    partial.extend_from_slice(&rest[..=nl]);
                    fp.add_row(partial);
                    partial.clear();
                }
                rest = &rest[nl + 1..];
            }
            partial.extend_from_slice(rest);
        })
    }

    fn finish(self) -> Result<Fingerprint> {
        self.dec.finish()?;
        if !self.partial.is_empty() {
            return Err(crate::Error::integrity("the last row has no line end"));
        }
        Ok(self.fingerprint)
    }
}
