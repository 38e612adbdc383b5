//! Checking a backup against its manifest.
//!
//! Every file listed in the manifest must exist with the recorded size and SHA-256. With `deep`,
//! data chunks are also decompressed and their rows counted and fingerprinted, which proves the
//! manifest's row counts and fingerprints without a server; a physical backup's files are
//! decompressed end to end. An incremental physical backup is only as good as its chain, so the
//! whole chain is checked: every ancestor's manifest must exist and link up (each starts at the
//! LSN its parent ended at), and every ancestor's files are verified too. The backup's summary
//! must describe its manifest (missing is fine: readers then use the manifest). Problems are
//! collected, not short-circuited, so one run names every missing or corrupt file.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{stream, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::physical::chain::check_link;
use crate::manifest::{BackupManifest, ChunkEntry, FileEntry, Fingerprint};
use crate::pipeline::{read_verified, Decompressor};
use crate::progress::Progress;
use crate::repo::{layout, Repository, SummaryState};
use crate::storage::Storage;
use crate::{ErrorKind, Result};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    /// Repository path of the file.
    pub path: String,
    /// `missing`, `corrupt`, `rows`, `chain`, `summary`.
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
    /// How the backup's summary (`backups/<id>/summary`) compares with its manifest; anything
    /// but `matches` or `missing` is also a problem.
    pub summary: SummaryState,
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
    let summary = repo.check_summary_of(manifest).await?;
    if !summary.is_sound() {
        problems.push(Problem {
            path: layout::summary_path(&manifest.id),
            kind: "summary".into(),
            detail: format!(
                "the summary {}; listings show what it says: delete it (holdfast then reads the \
                 manifest) and run `holdfast cleanup` to write it again",
                summary.describe()
            ),
        });
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(VerifyReport {
        backup_id: manifest.id.clone(),
        chain: all.iter().map(|m| m.id.clone()).collect(),
        files: all.iter().map(|m| m.files.len()).sum(),
        bytes: total,
        deep,
        summary,
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
    // The chunks each file holds: one, or a pack's segments (in file order).
    let mut chunks_by_file: HashMap<&str, Vec<Member>> = HashMap::new();
    for t in &manifest.tables {
        for c in &t.chunks {
            chunks_by_file.entry(&c.file).or_default().push(Member {
                table: format!("`{}`.`{}`", t.database, t.table),
                chunk: c.clone(),
            });
        }
    }
    for members in chunks_by_file.values_mut() {
        members.sort_by_key(|m| m.chunk.segment.as_ref().map_or(0, |s| s.offset));
    }
    let mut problems: Vec<Problem> = Vec::new();
    // Every chunk a table names must be a listed file.
    let listed: std::collections::HashSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    for t in &manifest.tables {
        for c in &t.chunks {
            if !listed.contains(c.file.as_str()) {
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
            let members = if deep {
                chunks_by_file
                    .get(f.path.as_str())
                    .cloned()
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let decode = decode_all && f.path.ends_with(".zst");
            let id = manifest.id.clone();
            async move {
                let outcome = check_file(&*storage, &id, &f, members, decode, &*progress).await?;
                Ok::<_, crate::Error>(outcome)
            }
        })
        .buffer_unordered(PARALLEL_READS)
        .collect::<Vec<_>>()
        .await;
    let mut fingerprints = HashMap::new();
    for c in checks {
        let outcome = c?;
        problems.extend(outcome.problems);
        fingerprints.extend(outcome.fingerprints);
    }
    if deep {
        problems.extend(check_table_fingerprints(manifest, &fingerprints));
    }
    Ok(problems)
}

/// A chunk as `verify` checks it: its table, for messages, and its entry.
#[derive(Clone)]
struct Member {
    table: String,
    chunk: ChunkEntry,
}

/// What checking one file found.
#[derive(Default)]
struct Checked {
    problems: Vec<Problem>,
    /// The fingerprint of each chunk read (deep mode), by [`ChunkEntry::key`].
    fingerprints: Vec<(String, Fingerprint)>,
}

/// One chunk being checked as its file streams by: a whole file, or one segment of a pack.
struct ChunkCheck {
    member: Member,
    /// The file's bytes this chunk spans.
    range: std::ops::Range<u64>,
    hasher: Sha256,
    seen: u64,
    /// Decodes the chunk's bytes as they come: opened at its first byte and finished at its
    /// last, so the hundreds of segments of a pack never hold a decoder each at once (they
    /// did: a deep verify of 100,000 packed tables took 1 GB).
    counter: Option<LineCounter>,
    /// Its rows' fingerprint once its last byte came, or why its contents could not be decoded.
    decoded: Option<Result<Fingerprint>>,
}

impl ChunkCheck {
    /// Takes the part of `bytes` (at `pos` in the file `path`) that falls in this chunk.
    fn feed(&mut self, path: &str, pos: u64, bytes: &[u8]) {
        let end = pos + bytes.len() as u64;
        let (from, to) = (self.range.start.max(pos), self.range.end.min(end));
        if from >= to {
            return;
        }
        let piece = &bytes[(from - pos) as usize..(to - pos) as usize];
        self.hasher.update(piece);
        self.seen += piece.len() as u64;
        if self.decoded.is_some() {
            return;
        }
        let counter = match self.counter.take() {
            Some(c) => Ok(c),
            None => LineCounter::new(path),
        };
        let fed = counter.and_then(|mut c| c.feed(piece).map(|()| c));
        match fed {
            Ok(c) if self.seen >= self.range.end - self.range.start => {
                self.decoded = Some(c.finish())
            }
            Ok(c) => self.counter = Some(c),
            Err(e) => self.decoded = Some(Err(e)),
        }
    }

    /// The chunk's fingerprint, or why it cannot be read.
    fn fingerprint(
        decoded: Option<Result<Fingerprint>>,
        counter: Option<LineCounter>,
        path: &str,
    ) -> Result<Fingerprint> {
        match (decoded, counter) {
            (Some(done), _) => done,
            (None, Some(c)) => c.finish(),
            // Not one byte of it came: what an empty chunk decodes to.
            (None, None) => LineCounter::new(path)?.finish(),
        }
    }
}

async fn check_file(
    storage: &dyn Storage,
    id: &str,
    entry: &FileEntry,
    members: Vec<Member>,
    decode: bool,
    progress: &dyn Progress,
) -> Result<Checked> {
    let path = layout::backup_file(id, &entry.path);
    let problem = |kind: &str, detail: String| Problem {
        path: path.clone(),
        kind: kind.into(),
        detail,
    };
    let failed = |p: Problem| {
        Ok(Checked {
            problems: vec![p],
            fingerprints: Vec::new(),
        })
    };
    let mut stream = match read_verified(storage, &path, entry).await {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::Integrity => {
            return failed(problem("missing", e.to_string()))
        }
        Err(e) => return Err(e),
    };
    let packed = members.iter().any(|m| m.chunk.segment.is_some());
    let mut checks = Vec::with_capacity(members.len());
    for m in members {
        let range = match &m.chunk.segment {
            Some(s) => s.range(),
            None => 0..entry.size,
        };
        checks.push(ChunkCheck {
            counter: None,
            member: m,
            range,
            hasher: Sha256::new(),
            seen: 0,
            decoded: None,
        });
    }
    let mut decoder = if decode {
        Some(Decompressor::new(&path)?)
    } else {
        None
    };
    let mut pos = 0u64;
    let mut file_problem = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => {
                progress.advance(bytes.len() as u64);
                for c in checks.iter_mut() {
                    c.feed(&path, pos, &bytes);
                }
                pos += bytes.len() as u64;
                if let Some(d) = decoder.as_mut() {
                    if let Err(e) = d.feed(&bytes, |_| {}) {
                        return failed(problem("corrupt", e.to_string()));
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Integrity => {
                file_problem = Some(problem("corrupt", e.to_string()));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if !packed {
        // A chunk file: the file's own check names it.
        if let Some(p) = file_problem {
            return failed(p);
        }
    }
    if let Some(d) = decoder {
        if let Err(e) = d.finish() {
            return failed(problem("corrupt", e.to_string()));
        }
    }
    let mut out = Checked::default();
    for c in checks {
        let ChunkCheck {
            member,
            range,
            hasher,
            seen,
            counter,
            decoded,
        } = c;
        let name = &member.table;
        let place = || match &member.chunk.segment {
            Some(_) => format!("{name}: its segment (bytes {}..{})", range.start, range.end),
            None => format!("{name}: its chunk"),
        };
        if let Some(segment) = &member.chunk.segment {
            let sum = hex::encode(hasher.finalize());
            if seen != segment.length || sum != segment.sha256 {
                out.problems.push(problem(
                    "corrupt",
                    format!(
                        "{} is damaged: {seen} bytes with SHA-256 {sum}, the manifest says {} \
                         bytes with {}",
                        place(),
                        segment.length,
                        segment.sha256
                    ),
                ));
                continue;
            }
        }
        let fp = match ChunkCheck::fingerprint(decoded, counter, &path) {
            Ok(fp) => fp,
            Err(e) => {
                out.problems.push(problem(
                    "corrupt",
                    format!("{} cannot be read: {e}", place()),
                ));
                continue;
            }
        };
        if fp.rows != member.chunk.rows {
            out.problems.push(problem(
                "rows",
                format!(
                    "{} holds {} rows, the manifest says {}",
                    place(),
                    fp.rows,
                    member.chunk.rows
                ),
            ));
            continue;
        }
        out.fingerprints.push((member.chunk.key(), fp));
    }
    // A pack whose segments all check but whose file does not: the damage is between them.
    if let Some(p) = file_problem {
        out.problems.push(p);
    }
    Ok(out)
}

/// Re-derives each table's fingerprint from its chunks' contents and compares it with the
/// manifest (tables with an unreadable chunk are already reported).
fn check_table_fingerprints(
    manifest: &BackupManifest,
    chunks: &HashMap<String, Fingerprint>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    'tables: for t in &manifest.tables {
        let mut sum = Fingerprint::default();
        for c in &t.chunks {
            match chunks.get(&c.key()) {
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
