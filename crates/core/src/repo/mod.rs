//! An opened repository: format check, listing, the commit protocol and debris cleanup.
//!
//! Commit protocol: a backup writes all its files under `backups/<id>/`, then its `manifest`
//! last. A backup exists if and only if its manifest exists, so an interrupted backup is never
//! listed; its files are debris ([`Repository::orphans`]) that `verify` reports and the next
//! writer, or `holdfast cleanup`, removes while holding the exclusive lock.

pub mod layout;
pub mod lock;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use time::OffsetDateTime;

use crate::manifest::{decode_versioned, BackupManifest, RepoConfig, MANIFEST_FORMAT, REPO_FORMAT};
use crate::storage::Storage;
use crate::{Error, ErrorKind, Result};

pub use lock::RepoLock;

/// The files of a backup that never committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Orphan {
    pub id: String,
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Repository {
    storage: Arc<dyn Storage>,
    config: RepoConfig,
}

impl Repository {
    /// Creates a repository at an empty location.
    pub async fn init(storage: Arc<dyn Storage>) -> Result<Repository> {
        if storage.stat(layout::REPO_FILE).await?.is_some() {
            return Err(Error::new(
                ErrorKind::RepoInvalid,
                format!("{} is already a holdfast repository", storage.location()),
            ));
        }
        let existing = storage.list("").await?;
        if !existing.is_empty() {
            return Err(Error::new(
                ErrorKind::RepoInvalid,
                format!(
                    "{} is not empty ({} files, e.g. `{}`); choose an empty location for a new repository",
                    storage.location(),
                    existing.len(),
                    existing[0].path
                ),
            ));
        }
        let config = RepoConfig {
            format: REPO_FORMAT,
            id: uuid::Uuid::new_v4().to_string(),
            created: OffsetDateTime::now_utc(),
            created_by: format!("holdfast {}", env!("CARGO_PKG_VERSION")),
        };
        let body =
            serde_json::to_vec_pretty(&config).map_err(|e| Error::internal(e.to_string()))?;
        if !storage
            .put_if_absent(layout::REPO_FILE, Bytes::from(body))
            .await?
        {
            return Err(Error::new(
                ErrorKind::RepoInvalid,
                format!(
                    "{} was initialised concurrently by someone else",
                    storage.location()
                ),
            ));
        }
        Ok(Repository { storage, config })
    }

    /// Opens an existing repository, refusing formats newer than this build reads.
    pub async fn open(storage: Arc<dyn Storage>) -> Result<Repository> {
        let body = match storage.get(layout::REPO_FILE).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::RepoMissing,
                    format!(
                        "no holdfast repository at {} (missing `{}`); create one with `holdfast init --repo {}`",
                        storage.location(),
                        layout::REPO_FILE,
                        storage.location()
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        let what = format!("{}/{}", storage.location(), layout::REPO_FILE);
        let config: RepoConfig = decode_versioned(&body, &what, REPO_FORMAT).map_err(|e| {
            if e.kind() == ErrorKind::Integrity {
                Error::new(ErrorKind::RepoInvalid, e.to_string())
            } else {
                e
            }
        })?;
        Ok(Repository { storage, config })
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Takes the exclusive repository lock for `purpose`.
    pub async fn lock(&self, purpose: &str) -> Result<RepoLock> {
        RepoLock::acquire(self.storage.clone(), purpose).await
    }

    /// Takes a named lock other than the exclusive one (see [`RepoLock::acquire_named`]).
    pub async fn lock_named(&self, name: &str, purpose: &str) -> Result<RepoLock> {
        RepoLock::acquire_named(self.storage.clone(), name, purpose).await
    }

    /// The ids of committed backups (those with a manifest), oldest first.
    pub async fn backup_ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .storage
            .list(layout::BACKUPS_DIR)
            .await?
            .into_iter()
            .filter_map(|o| layout::manifest_owner(&o.path).map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Every committed backup, oldest first.
    pub async fn list_backups(&self) -> Result<Vec<BackupManifest>> {
        let ids = self.backup_ids().await?;
        try_join_all(ids.iter().map(|id| self.load_manifest(id))).await
    }

    pub async fn load_manifest(&self, id: &str) -> Result<BackupManifest> {
        let path = layout::manifest_path(id);
        let body = match self.storage.get(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "no backup `{id}` in {}; `holdfast list` shows the backups",
                        self.storage.location()
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        decode_versioned(&body, &format!("manifest of backup {id}"), MANIFEST_FORMAT)
    }

    /// Resolves `latest` or an id to a committed backup.
    pub async fn resolve(&self, which: &str) -> Result<BackupManifest> {
        if which == "latest" {
            let ids = self.backup_ids().await?;
            let Some(id) = ids.last() else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{} has no backups yet; run `holdfast backup` first",
                        self.storage.location()
                    ),
                ));
            };
            return self.load_manifest(id).await;
        }
        layout::validate_id(which)?;
        self.load_manifest(which).await
    }

    /// Backups that never committed: files under `backups/<id>/` without a manifest. They are
    /// debris of an interrupted run, or the files of a backup in progress right now (take the
    /// exclusive lock to rule that out). Oldest first.
    pub async fn orphans(&self) -> Result<Vec<Orphan>> {
        let objects = self.storage.list(layout::BACKUPS_DIR).await?;
        let committed: std::collections::HashSet<&str> = objects
            .iter()
            .filter_map(|o| layout::manifest_owner(&o.path))
            .collect();
        let mut by_id: std::collections::BTreeMap<&str, Orphan> = Default::default();
        for o in &objects {
            let Some(id) = layout::backup_owner(&o.path) else {
                continue;
            };
            if committed.contains(id) {
                continue;
            }
            let entry = by_id.entry(id).or_insert_with(|| Orphan {
                id: id.to_string(),
                files: 0,
                bytes: 0,
            });
            entry.files += 1;
            entry.bytes += o.size;
        }
        Ok(by_id.into_values().collect())
    }

    /// Removes the files of backups that never committed (a crashed or killed run).
    /// Requires the exclusive lock, so no backup can be in progress. Returns what was removed.
    pub async fn remove_orphans(&self, lock: &RepoLock) -> Result<Vec<Orphan>> {
        lock.ensure_held().await?;
        let orphans = self.orphans().await?;
        for o in &orphans {
            tracing::info!(
                backup = o.id,
                files = o.files,
                "removing debris of an uncommitted backup"
            );
            self.storage
                .delete_prefix(&layout::backup_dir(&o.id))
                .await?;
        }
        Ok(orphans)
    }

    /// Removes the files of backups that never committed; see [`Repository::remove_orphans`].
    /// Returns the removed ids.
    pub async fn clean_debris(&self, lock: &RepoLock) -> Result<Vec<String>> {
        Ok(self
            .remove_orphans(lock)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect())
    }

    /// Writes the manifest: the commit point of a backup. Everything it lists must be durable.
    pub async fn commit(&self, lock: &RepoLock, manifest: &BackupManifest) -> Result<()> {
        lock.ensure_held().await?;
        let body =
            serde_json::to_vec_pretty(manifest).map_err(|e| Error::internal(e.to_string()))?;
        self.storage
            .put(&layout::manifest_path(&manifest.id), Bytes::from(body))
            .await
    }
}
