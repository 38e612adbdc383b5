//! Copying committed backups and the binlog archive from one repository to another.
//!
//! Both repositories are opened (and, when encrypted, unlocked) by the caller, so the copy
//! reads plaintext and writes plaintext through each side's storage: plain to encrypted,
//! encrypted to plain and between two keys all work the same way, and the manifest copies
//! unchanged (its checksums are of the stored plaintext).
//!
//! - Incremental: a backup whose manifest the destination already has is skipped; a file of an
//!   interrupted earlier copy is kept if it verifies against the manifest, rewritten otherwise;
//!   a binlog object the destination already has is skipped (except the index entry of a merged
//!   segment, which replaces the entry of its first segment: it is copied again, see
//!   docs/binlog-archive.md).
//! - Verified on the way: every file is streamed through a size and SHA-256 check against the
//!   source manifest, and what was written is hashed and compared too. A mismatch aborts that
//!   file's upload, so nothing unverified is ever visible under its name.
//! - Commit protocol kept: the manifest is written last, under the destination's exclusive
//!   lock, then its summary (made from the manifest as written there); binlog segments are
//!   written before their index sidecars. A backup the destination already has gets its
//!   summary written if it lacks one.
//! - Selection reads the source's summaries; each backup's manifest is loaded only to copy it,
//!   one at a time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::manifest::{BackupSummary, FileEntry};
use crate::pipeline::{read_verified, HashingSink};
use crate::progress::Progress;
use crate::repo::{layout, RepoLock, Repository};
use crate::storage::Storage;
use crate::{Error, ErrorKind, Result};

/// Where the binlog archive lives in a repository.
pub const BINLOG_DIR: &str = "binlog/";

/// Files copied at once.
const PARALLEL_FILES: usize = 4;

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct CopySelection {
    /// Backup ids (or `latest`); ignored with `all`. Empty without `all`: only the archive.
    pub backups: Vec<String>,
    /// Every committed backup.
    pub all: bool,
    /// Also the `binlog/` archive (with `all` too: `all` means every backup, and the archive
    /// only when this is set).
    pub binlog: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    /// Backups written to the destination by this run.
    pub copied: Vec<String>,
    /// Backups the destination already had.
    pub skipped: Vec<String>,
    /// Data files written (manifests not counted).
    pub files_copied: usize,
    /// Files of an interrupted earlier copy that verified and were kept.
    pub files_kept: usize,
    /// Plaintext bytes written.
    #[serde(rename = "copied_bytes")]
    pub bytes_copied: u64,
    pub binlog_objects_copied: usize,
    pub binlog_objects_skipped: usize,
    pub seconds: f64,
}

/// Copies the selected backups (and the binlog archive) from `src` to `dst`.
pub async fn copy(
    src: &Repository,
    dst: &Repository,
    selection: &CopySelection,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport> {
    let started = Instant::now();
    if src.config().id == dst.config().id {
        return Err(Error::usage(format!(
            "{} and {} are the same repository (id {}); copy to another repository",
            src.storage().location(),
            dst.storage().location(),
            src.config().id
        )));
    }
    // Resolve everything before taking the lock or writing anything.
    let selected = select(src, selection).await?;
    let lock = dst.lock("copy").await?;
    let result = copy_locked(src, dst, &lock, &selected, selection, progress).await;
    let released = lock.release().await;
    let mut report = result?;
    released?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The summaries of the selected backups, oldest first for `all`, in the order given otherwise.
async fn select(src: &Repository, selection: &CopySelection) -> Result<Vec<BackupSummary>> {
    if selection.all {
        return src.list_summaries().await;
    }
    if selection.backups.is_empty() && !selection.binlog {
        return Err(Error::usage(
            "name the backups to copy (ids or `latest`), or pass --all",
        ));
    }
    let mut out: Vec<BackupSummary> = Vec::new();
    for which in &selection.backups {
        let s = src.resolve_summary(which).await?;
        if !out.iter().any(|o| o.id == s.id) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Copies the backups `selected` that the destination lacks, one manifest in memory at a time.
async fn copy_locked(
    src: &Repository,
    dst: &Repository,
    lock: &RepoLock,
    selected: &[BackupSummary],
    selection: &CopySelection,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport> {
    let mut report = CopyReport {
        from: src.storage().location(),
        to: dst.storage().location(),
        ..CopyReport::default()
    };
    let mut todo = Vec::new();
    for s in selected {
        if dst
            .storage()
            .stat(&layout::manifest_path(&s.id))
            .await?
            .is_some()
        {
            // Copied before, perhaps by a holdfast that wrote no summaries.
            let lacks = match dst.load_summary(&s.id).await {
                Ok(found) => found.is_none(),
                Err(e) if e.kind() == ErrorKind::Integrity => true,
                Err(e) if e.kind() == ErrorKind::RepoInvalid => false,
                Err(e) => return Err(e),
            };
            if lacks {
                let summary = dst.derive_summary(&s.id).await?;
                dst.write_summary(lock, &summary).await?;
            }
            report.skipped.push(s.id.clone());
        } else {
            todo.push(s);
        }
    }
    let total: u64 = todo.iter().map(|s| s.stored_bytes).sum();
    progress.phase("copy", total, "bytes");
    for s in todo {
        // The source manifest itself: what every file is checked against, and what is
        // committed (with its summary) at the destination.
        let m = src.load_manifest(&s.id).await?;
        let outcomes = stream::iter(m.files.iter())
            .map(|entry| {
                let progress = progress.clone();
                let id = &m.id;
                async move { copy_file(src, dst, id, entry, &*progress).await }
            })
            .buffer_unordered(PARALLEL_FILES)
            .try_collect::<Vec<_>>()
            .await?;
        for o in outcomes {
            match o {
                Outcome::Copied(bytes) => {
                    report.files_copied += 1;
                    report.bytes_copied += bytes;
                }
                Outcome::Kept => report.files_kept += 1,
            }
        }
        dst.commit(lock, &m).await?;
        tracing::info!(backup = m.id, "copied");
        report.copied.push(m.id.clone());
    }
    if selection.binlog {
        copy_binlog(src, dst, &mut report).await?;
    }
    Ok(report)
}

enum Outcome {
    Copied(u64),
    Kept,
}

async fn copy_file(
    src: &Repository,
    dst: &Repository,
    id: &str,
    entry: &FileEntry,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let path = layout::backup_file(id, &entry.path);
    if dst.storage().stat(&path).await?.is_some() && verifies(&**dst.storage(), &path, entry).await
    {
        progress.advance(entry.size);
        return Ok(Outcome::Kept);
    }
    let mut input = read_verified(&**src.storage(), &path, entry).await?;
    let mut sink = HashingSink::create(&**dst.storage(), &path, &entry.path).await?;
    while let Some(item) = input.next().await {
        let chunk = match item {
            Ok(c) => c,
            Err(e) => {
                sink.abort().await;
                return Err(e.context(format!("copying from {}", src.storage().location())));
            }
        };
        progress.advance(chunk.len() as u64);
        if let Err(e) = sink.write(chunk).await {
            sink.abort().await;
            return Err(e);
        }
    }
    let written = sink.finish().await?;
    if written.size != entry.size || written.sha256 != entry.sha256 {
        return Err(Error::integrity(format!(
            "`{path}` was written to {} with SHA-256 {} ({} bytes), the manifest says {} ({} bytes)",
            dst.storage().location(),
            written.sha256,
            written.size,
            entry.sha256,
            entry.size
        )));
    }
    Ok(Outcome::Copied(entry.size))
}

/// Whether an existing destination file matches its manifest entry.
async fn verifies(storage: &dyn Storage, path: &str, entry: &FileEntry) -> bool {
    let Ok(mut s) = read_verified(storage, path, entry).await else {
        return false;
    };
    while let Some(item) = s.next().await {
        if item.is_err() {
            return false;
        }
    }
    true
}

/// Whether a binlog archive object is an index entry (`binlog/index/<seq>.json`), the commit
/// point of its segment, which must land after the data it describes (see
/// docs/binlog-archive.md). Other JSON sidecars are treated the same way.
pub fn is_binlog_index(path: &str) -> bool {
    path.starts_with("binlog/index/") || path.ends_with(".json")
}

async fn copy_binlog(src: &Repository, dst: &Repository, report: &mut CopyReport) -> Result<()> {
    use crate::binlog::archive::{index_path, parse_data_name, DATA_DIR};
    let have: HashSet<String> = dst
        .storage()
        .list(BINLOG_DIR)
        .await?
        .into_iter()
        .map(|o| o.path)
        .collect();
    let listed = src.storage().list(BINLOG_DIR).await?;
    // A merged segment's entry replaces the entry of its first segment (compaction): the
    // destination may hold the old one under the same name, so it is copied again (a few
    // small objects: one per merged segment). The merged data objects name their ranges.
    let merged_entries: HashSet<String> = listed
        .iter()
        .filter(|o| o.path.starts_with(DATA_DIR))
        .filter_map(|o| parse_data_name(&o.path))
        .filter(|(first, last)| first != last)
        .map(|(first, _)| index_path(first))
        .collect();
    let mut missing: Vec<String> = Vec::new();
    for o in listed {
        if have.contains(&o.path) && !merged_entries.contains(&o.path) {
            report.binlog_objects_skipped += 1;
        } else {
            missing.push(o.path);
        }
    }
    // Data first, then the sidecars that index it; in path order within each group.
    missing.sort_by(|a, b| (is_binlog_index(a), a).cmp(&(is_binlog_index(b), b)));
    let (data, index): (Vec<_>, Vec<_>) = missing.into_iter().partition(|p| !is_binlog_index(p));
    for group in [data, index] {
        let results = stream::iter(group.iter())
            .map(|path| copy_object(src, dst, path))
            .buffer_unordered(PARALLEL_FILES)
            .try_collect::<Vec<u64>>()
            .await?;
        report.binlog_objects_copied += results.len();
        report.bytes_copied += results.iter().sum::<u64>();
    }
    Ok(())
}

/// Streams one object across; the source side authenticates it when encrypted.
async fn copy_object(src: &Repository, dst: &Repository, path: &str) -> Result<u64> {
    let mut input = src.storage().reader(path).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            e.context("it disappeared from the source during the copy")
        } else {
            e
        }
    })?;
    let mut sink = HashingSink::create(&**dst.storage(), path, path).await?;
    while let Some(item) = input.next().await {
        let written = match item {
            Ok(chunk) => sink.write(chunk).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            sink.abort().await;
            return Err(e);
        }
    }
    Ok(sink.finish().await?.size)
}

#[cfg(test)]
mod tests {
    use super::is_binlog_index;

    #[test]
    fn sidecars_are_recognised() {
        assert!(is_binlog_index("binlog/index/00000000000000000042.json"));
        assert!(!is_binlog_index(
            "binlog/data/1/mysql-bin.000003@1700000000/4.42.zst"
        ));
    }
}
