//! Backup summaries (`backups/<id>/summary`, see [`BackupSummary`]): written right after the
//! manifest by [`Repository::commit`], read by everything that lists backups, and checked
//! against their manifests.
//!
//! A summary is a cache of its manifest, never a second commit point: a backup exists if and
//! only if its manifest does. A committed backup without a readable summary (a repository
//! written before summaries, a crash between the two writes, a damaged file) is summarised from
//! its manifest when read, a few manifests at a time, and `holdfast cleanup` writes the missing
//! ones. A summary in a directory without a manifest is debris like any file there.
//!
//! Reading summaries never proves they match their manifests (that takes reading the
//! manifests): callers whose decision changes data (restore, expire) re-check what they act on
//! with [`Repository::check_summary`] / [`Repository::check_summaries`], and `verify` reports a
//! summary that does not describe its manifest.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{layout, RepoLock, Repository};
use crate::manifest::{decode_self_checked, encode_self_checked, BackupManifest, BackupSummary};
use crate::manifest::{MANIFEST_FORMAT, SUMMARY_FORMAT};
use crate::{Error, ErrorKind, Result};

/// Summaries read at once while listing (each a couple of KiB).
const SUMMARY_READS: usize = 16;
/// Manifests loaded at once to summarise them: the manifest of a 100,000-table backup is tens of
/// MB (several times that while decoded), so never more than this many are in memory.
pub const MANIFEST_LOADS: usize = 2;

/// What a backup's stored summary says, compared with its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SummaryState {
    /// It is the summary of the manifest as stored.
    Matches,
    /// There is none (written before summaries existed, or a crash right after the manifest).
    Missing,
    /// It cannot be read: not valid, its own checksum fails, another backup's, not authentic,
    /// or of a newer format.
    Damaged { reason: String },
    /// It reads, but does not describe the manifest: these fields differ
    /// (`manifest_sha256` alone: it was made from another version of the manifest).
    Differs { fields: Vec<String> },
}

impl SummaryState {
    /// Matches, or is missing (then readers use the manifest): nothing is wrong.
    pub fn is_sound(&self) -> bool {
        matches!(self, SummaryState::Matches | SummaryState::Missing)
    }

    /// For people: `missing`, `damaged: …`, `does not match its manifest (rows, …)`.
    pub fn describe(&self) -> String {
        match self {
            SummaryState::Matches => "matches its manifest".into(),
            SummaryState::Missing => "missing".into(),
            SummaryState::Damaged { reason } => format!("unreadable: {reason}"),
            SummaryState::Differs { fields } => {
                format!(
                    "does not match its manifest (differs in {})",
                    fields.join(", ")
                )
            }
        }
    }
}

/// A backup's summary derived from its manifest, and how the stored one compares.
#[derive(Debug, Clone)]
pub struct SummaryCheck {
    pub derived: BackupSummary,
    pub state: SummaryState,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Repository {
    /// Every committed backup's summary, oldest first: one listing of `backups/`, then per
    /// backup a lookup of its manifest (the commit point) and a read of its summary, 16 at a
    /// time; no manifest is read. A backup whose summary is missing or unreadable is summarised
    /// from its manifest, [`MANIFEST_LOADS`] at a time. Memory: the summaries (a couple of KiB
    /// each, whatever the number of tables) plus, while deriving, at most [`MANIFEST_LOADS`]
    /// manifests. A backup expired while this runs may be left out.
    pub async fn list_summaries(&self) -> Result<Vec<BackupSummary>> {
        let ids = self.backup_ids().await?;
        let stored: Vec<(String, Option<BackupSummary>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let summary = self.readable_summary(&id).await?;
                Ok::<_, Error>((id, summary))
            })
            .buffered(SUMMARY_READS)
            .try_collect()
            .await?;
        let listed: Vec<Option<BackupSummary>> = futures::stream::iter(stored)
            .map(|(id, summary)| async move {
                match summary {
                    Some(s) => Ok(Some(s)),
                    None => unless_expired(self.derive_summary(&id).await),
                }
            })
            .buffered(MANIFEST_LOADS)
            .try_collect()
            .await?;
        Ok(listed.into_iter().flatten().collect())
    }

    /// The summary of committed backup `id`: the stored one when it reads, else derived from
    /// the manifest. A missing backup is a [`ErrorKind::NotFound`] error.
    pub async fn summary(&self, id: &str) -> Result<BackupSummary> {
        match self.readable_summary(id).await? {
            Some(s)
                if self
                    .storage
                    .stat(&layout::manifest_path(id))
                    .await?
                    .is_some() =>
            {
                Ok(s)
            }
            _ => self.derive_summary(id).await,
        }
    }

    /// Resolves `latest` or an id to a committed backup's summary (see [`Repository::resolve`]).
    pub async fn resolve_summary(&self, which: &str) -> Result<BackupSummary> {
        if which == "latest" {
            let ids = self.backup_ids().await?;
            let Some(id) = ids.last() else {
                return Err(self.no_backups());
            };
            return self.summary(id).await;
        }
        layout::validate_id(which)?;
        self.summary(which).await
    }

    /// The stored summary of `id`, strictly: `None` when there is none; damage (invalid, its
    /// own checksum, another backup's, not authentic) is an [`ErrorKind::Integrity`] error and a
    /// newer format an [`ErrorKind::RepoInvalid`] one. Does not look at the manifest.
    pub async fn load_summary(&self, id: &str) -> Result<Option<BackupSummary>> {
        let path = layout::summary_path(id);
        let body = match self.storage.get(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let summary: BackupSummary = decode_self_checked(
            &body,
            &format!("`{path}` (the summary of backup {id})"),
            SUMMARY_FORMAT,
        )?;
        if summary.id != id {
            return Err(Error::integrity(format!(
                "`{path}` is the summary of backup {} (moved or copied)",
                summary.id
            )));
        }
        Ok(Some(summary))
    }

    /// The stored summary if it reads; `None` (with a warning) when it is damaged or of a newer
    /// format, so that the caller falls back to the manifest. Storage errors are errors.
    async fn readable_summary(&self, id: &str) -> Result<Option<BackupSummary>> {
        match self.load_summary(id).await {
            Ok(s) => Ok(s),
            Err(e) if matches!(e.kind(), ErrorKind::Integrity | ErrorKind::RepoInvalid) => {
                tracing::warn!(backup = id, error = %e, "reading the manifest instead of its summary");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Loads a manifest (as [`Repository::load_manifest`]) with the hex SHA-256 of its stored
    /// plaintext.
    pub async fn load_manifest_hashed(&self, id: &str) -> Result<(BackupManifest, String)> {
        let body = self.manifest_body(id).await?;
        let manifest = self.decode_manifest(id, &body)?;
        Ok((manifest, sha256_hex(&body)))
    }

    /// The summary of backup `id` made from its manifest (which is loaded for it).
    pub async fn derive_summary(&self, id: &str) -> Result<BackupSummary> {
        let (manifest, sha) = self.load_manifest_hashed(id).await?;
        Ok(BackupSummary::of(&manifest, sha))
    }

    /// Compares the stored summary of backup `id` with the one derived from its manifest.
    pub async fn check_summary(&self, id: &str) -> Result<SummaryCheck> {
        let derived = self.derive_summary(id).await?;
        let state = compare(&derived, self.load_summary(id).await)?;
        Ok(SummaryCheck { derived, state })
    }

    /// As [`Repository::check_summary`] for a manifest just loaded: its stored bytes are read
    /// again for their SHA-256, but not decoded.
    pub async fn check_summary_of(&self, manifest: &BackupManifest) -> Result<SummaryState> {
        let body = self.manifest_body(&manifest.id).await?;
        let derived = BackupSummary::of(manifest, sha256_hex(&body));
        drop(body);
        compare(&derived, self.load_summary(&manifest.id).await)
    }

    /// Every committed backup's summary derived from its manifest and compared with the stored
    /// one, oldest first; manifests are loaded [`MANIFEST_LOADS`] at a time and dropped once
    /// summarised. For decisions that must not rest on a summary alone (expire).
    pub async fn check_summaries(&self) -> Result<Vec<SummaryCheck>> {
        let ids = self.backup_ids().await?;
        let checked: Vec<Option<SummaryCheck>> = futures::stream::iter(ids)
            .map(|id| async move { unless_expired(self.check_summary(&id).await) })
            .buffered(MANIFEST_LOADS)
            .try_collect()
            .await?;
        Ok(checked.into_iter().flatten().collect())
    }

    /// Writes `summary` as `backups/<id>/summary` (through the repository's encryption, like
    /// every file), replacing any previous one. Its manifest must be committed.
    pub async fn write_summary(&self, lock: &RepoLock, summary: &BackupSummary) -> Result<()> {
        lock.ensure_held().await?;
        self.put_summary(summary).await
    }

    pub(super) async fn put_summary(&self, summary: &BackupSummary) -> Result<()> {
        let body = encode_self_checked(summary)?;
        self.storage
            .put(&layout::summary_path(&summary.id), Bytes::from(body))
            .await
    }

    /// Writes the summary of every committed backup whose summary is missing or damaged (a
    /// repository written before summaries, a crash right after a manifest); one of a newer
    /// format is left alone. With `dry_run`, only says which. Returns their ids, oldest first.
    pub async fn write_missing_summaries(
        &self,
        lock: &RepoLock,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        lock.ensure_held().await?;
        let ids = self.backup_ids().await?;
        let states: Vec<(String, bool)> = futures::stream::iter(ids)
            .map(|id| async move {
                let missing = match self.load_summary(&id).await {
                    Ok(s) => s.is_none(),
                    Err(e) if e.kind() == ErrorKind::Integrity => true,
                    Err(e) if e.kind() == ErrorKind::RepoInvalid => false,
                    Err(e) => return Err(e),
                };
                Ok::<_, Error>((id, missing))
            })
            .buffered(SUMMARY_READS)
            .try_collect()
            .await?;
        let mut written = Vec::new();
        for (id, missing) in states {
            if !missing {
                continue;
            }
            if !dry_run {
                let summary = match self.derive_summary(&id).await {
                    Ok(s) => s,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                self.write_summary(lock, &summary).await?;
                tracing::info!(backup = id, "wrote the missing summary");
            }
            written.push(id);
        }
        Ok(written)
    }

    /// The stored bytes of backup `id`'s manifest.
    pub(super) async fn manifest_body(&self, id: &str) -> Result<Bytes> {
        match self.storage.get(&layout::manifest_path(id)).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "no backup `{id}` in {}; `holdfast list` shows the backups",
                    self.storage.location()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    pub(super) fn decode_manifest(&self, id: &str, body: &[u8]) -> Result<BackupManifest> {
        let path = layout::manifest_path(id);
        let manifest: BackupManifest = decode_self_checked(
            body,
            &format!("`{path}` (the manifest of backup {id})"),
            MANIFEST_FORMAT,
        )?;
        if manifest.id != id {
            return Err(Error::integrity(format!(
                "`{path}` is the manifest of backup {} (moved or swapped): backup {id} cannot be trusted",
                manifest.id
            )));
        }
        Ok(manifest)
    }

    pub(super) fn no_backups(&self) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "{} has no backups yet; run `holdfast backup` first",
                self.storage.location()
            ),
        )
    }
}

/// How a stored summary (as read) compares with the one derived from the manifest.
fn compare(derived: &BackupSummary, stored: Result<Option<BackupSummary>>) -> Result<SummaryState> {
    Ok(match stored {
        Ok(None) => SummaryState::Missing,
        Ok(Some(s)) if s == *derived => SummaryState::Matches,
        Ok(Some(s)) => SummaryState::Differs {
            fields: s.differences(derived),
        },
        Err(e) if matches!(e.kind(), ErrorKind::Integrity | ErrorKind::RepoInvalid) => {
            SummaryState::Damaged {
                reason: e.to_string(),
            }
        }
        Err(e) => return Err(e),
    })
}

/// A backup's result, or `None` when the backup was expired since the listing named it.
fn unless_expired<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
