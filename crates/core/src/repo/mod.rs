//! An opened repository: format check, encryption, listing, the commit protocol and debris
//! cleanup.
//!
//! Commit protocol: a backup writes all its files under `backups/<id>/`, then its `manifest`
//! last. A backup exists if and only if its manifest exists, so an interrupted backup is never
//! listed; its files are debris ([`Repository::orphans`]) that `verify` reports and the next
//! writer, or `holdfast cleanup`, removes while holding the exclusive lock. Right after the
//! manifest comes its `summary` ([`BackupSummary`]): what listing reads instead of manifests.
//!
//! Encryption: when `holdfast.repo` carries an [`EncryptionConfig`], opening unwraps the data key
//! first (see [`keys`]) and every later read and write goes through
//! [`EncryptedStorage`], so engines, verify and copy never see ciphertext. A wrong or missing
//! key fails the open, before any work and without writing anything. `holdfast.repo` itself is
//! authenticated ([`descriptor`]): its checksum is verified before any slot is tried, and its
//! MAC right after the data key is unwrapped, before the key is used.

pub mod descriptor;
pub mod keys;
pub mod layout;
pub mod lock;
mod summary;
pub mod uploads;

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::Digest;
use time::OffsetDateTime;

use crate::manifest::{
    BackupManifest, BackupSummary, EncryptionConfig, KeySlot, RepoConfig, REPO_FORMAT,
};
use crate::storage::{EncryptedStorage, Storage};
use crate::{Error, ErrorKind, Result};

use keys::{DataKey, KeySource, NewSlot, NoKey};
pub use lock::RepoLock;
pub use summary::{SummaryCheck, SummaryState, MANIFEST_LOADS};

/// The files of a backup that never committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Orphan {
    pub id: String,
    pub files: usize,
    #[serde(rename = "stored_bytes")]
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Repository {
    /// The storage engines use: decrypting and encrypting when the repository is encrypted.
    storage: Arc<dyn Storage>,
    config: RepoConfig,
    key: Option<Arc<DataKey>>,
}

/// Paths an encrypted repository keeps in the clear: the descriptor (which holds the wrapped
/// key) and its copy while it is being rewritten.
const CLEAR_PATHS: &[&str] = &[layout::REPO_FILE, layout::REPO_FILE_PREVIOUS];

/// Manifest lookups in flight while finding the committed backups.
const MANIFEST_LOOKUPS: usize = 16;

impl Repository {
    /// Creates an unencrypted repository at an empty location.
    pub async fn init(storage: Arc<dyn Storage>) -> Result<Repository> {
        Repository::init_with(storage, &[]).await
    }

    /// Creates a repository at an empty location; encrypted with a new random data key wrapped
    /// by each of `slots` when there are any.
    pub async fn init_with(storage: Arc<dyn Storage>, slots: &[NewSlot]) -> Result<Repository> {
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
        let (key, encryption) = if slots.is_empty() {
            (None, None)
        } else {
            let key = DataKey::generate();
            let encryption = key.config(slots)?;
            (Some(Arc::new(key)), Some(encryption))
        };
        let config = RepoConfig {
            format: REPO_FORMAT,
            id: uuid::Uuid::new_v4().to_string(),
            created: OffsetDateTime::now_utc(),
            created_by: format!("holdfast {}", env!("CARGO_PKG_VERSION")),
            encryption,
            auth: None,
        };
        let (config, body) = descriptor::seal(&config, key.as_deref())?;
        if !storage.put_if_absent(layout::REPO_FILE, body).await? {
            return Err(Error::new(
                ErrorKind::RepoInvalid,
                format!(
                    "{} was initialised concurrently by someone else",
                    storage.location()
                ),
            ));
        }
        Ok(Repository::assemble(storage, config, key))
    }

    /// Opens an existing unencrypted repository; an encrypted one fails with [`ErrorKind::Key`].
    pub async fn open(storage: Arc<dyn Storage>) -> Result<Repository> {
        Repository::open_with(storage, &NoKey).await
    }

    /// Opens an existing repository, refusing formats newer than this build reads. When it is
    /// encrypted, `keys` is asked for credentials and the data key is unwrapped before this
    /// returns: a wrong or missing key is an [`ErrorKind::Key`] error, and nothing is written.
    pub async fn open_with(storage: Arc<dyn Storage>, keys: &dyn KeySource) -> Result<Repository> {
        let checked = read_checked(&*storage).await?;
        let key = match &checked.config.encryption {
            Some(enc) => {
                let found = keys::unlock(&storage.location(), enc, keys)?;
                descriptor::authenticate(
                    &checked,
                    &found.key,
                    found.marked,
                    &repo_file(&*storage),
                )?;
                Some(Arc::new(found.key))
            }
            None => {
                if let Some(flag) = keys.given() {
                    return Err(Error::usage(format!(
                        "{} is not encrypted, but a key was given ({flag}); nothing was done. \
                         Leave the key option out for an unencrypted repository. If this \
                         repository was created encrypted, its holdfast.repo was altered: put \
                         back a genuine copy before writing to it",
                        storage.location()
                    )));
                }
                None
            }
        };
        Ok(Repository::assemble(storage, checked.config, key))
    }

    /// Reads `holdfast.repo` alone (clear in every repository), without opening or unlocking
    /// anything: for what may be judged without the key (`holdfast status --no-key`). Its
    /// checksum is verified; its MAC cannot be without the key.
    pub async fn read_config(storage: &dyn Storage) -> Result<RepoConfig> {
        read_config(storage).await
    }

    fn assemble(storage: Arc<dyn Storage>, config: RepoConfig, key: Option<Arc<DataKey>>) -> Self {
        let storage: Arc<dyn Storage> = match &key {
            Some(k) => Arc::new(EncryptedStorage::new(storage, k.clone(), CLEAR_PATHS)),
            None => storage,
        };
        Repository {
            storage,
            config,
            key,
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// The unwrapped data key of an encrypted repository.
    pub fn data_key(&self) -> Option<&DataKey> {
        self.key.as_deref()
    }

    /// Adds key slots (re-wrapping the data key); data files are not touched.
    pub async fn add_key_slots(&mut self, lock: &RepoLock, slots: &[NewSlot]) -> Result<()> {
        let key = self.require_key()?;
        let mut added: Vec<KeySlot> = slots.iter().map(|s| key.wrap(s)).collect::<Result<_>>()?;
        let mut config = self.config.clone();
        let enc = config.encryption.as_mut().expect("encrypted");
        enc.slots.append(&mut added);
        self.rewrite_config(lock, config).await
    }

    /// Removes key slots by index; refuses to remove the last one. Data files are not touched.
    pub async fn remove_key_slots(&mut self, lock: &RepoLock, indexes: &[usize]) -> Result<()> {
        self.require_key()?;
        let mut config = self.config.clone();
        let enc: &mut EncryptionConfig = config.encryption.as_mut().expect("encrypted");
        if let Some(bad) = indexes.iter().find(|&&i| i >= enc.slots.len()) {
            return Err(Error::usage(format!(
                "there is no key slot {bad} (the repository has {}; `holdfast key list` shows them)",
                enc.slots.len()
            )));
        }
        let keep: Vec<KeySlot> = enc
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| !indexes.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        if keep.is_empty() {
            return Err(Error::usage(
                "refusing to remove every key slot: the repository could never be opened again;                  add another slot first (`holdfast key add`)",
            ));
        }
        enc.slots = keep;
        self.rewrite_config(lock, config).await
    }

    fn require_key(&self) -> Result<&DataKey> {
        self.key.as_deref().ok_or_else(|| {
            Error::usage(format!(
                "{} is not encrypted; it has no keys to manage",
                self.storage.location()
            ))
        })
    }

    /// Replaces `holdfast.repo`, sealed in the newest format (so a repository of format 1 or 2
    /// is upgraded by its first key change). A copy of the old file is kept at
    /// `holdfast.repo.previous` until the new one is written and read back, so a crash in
    /// between never loses every key slot.
    async fn rewrite_config(&mut self, lock: &RepoLock, config: RepoConfig) -> Result<()> {
        lock.ensure_held().await?;
        let old = self.storage.get(layout::REPO_FILE).await?;
        let (config, body) = descriptor::seal(&config, self.key.as_deref())?;
        self.storage.put(layout::REPO_FILE_PREVIOUS, old).await?;
        self.storage.put(layout::REPO_FILE, body).await?;
        let back = read_config(&*self.storage).await?;
        if back != config {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "holdfast.repo did not read back as written; the previous version is in {}",
                    layout::REPO_FILE_PREVIOUS
                ),
            ));
        }
        self.storage.delete(layout::REPO_FILE_PREVIOUS).await?;
        self.config = config;
        Ok(())
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
        Ok(self
            .backup_dirs()
            .await?
            .into_iter()
            .filter_map(|(id, committed)| committed.then_some(id))
            .collect())
    }

    /// The id of a backup starting `now`, sorting after every backup directory of the same
    /// second (see [`layout::next_backup_id`]); the caller holds the backup lock.
    pub async fn new_backup_id(&self, now: OffsetDateTime) -> Result<String> {
        let existing = self.storage.list_dirs(layout::BACKUPS_DIR).await?;
        Ok(layout::next_backup_id(now, &existing))
    }

    /// Every directory under `backups/`, oldest first, and whether it holds a manifest: one
    /// listing of the directories plus a manifest lookup each (several at a time), never a walk
    /// over every file of every backup.
    async fn backup_dirs(&self) -> Result<Vec<(String, bool)>> {
        let ids = self.storage.list_dirs(layout::BACKUPS_DIR).await?;
        futures::stream::iter(ids)
            .map(|id| async move {
                let manifest = self.storage.stat(&layout::manifest_path(&id)).await?;
                Ok::<_, Error>((id, manifest.is_some()))
            })
            .buffered(MANIFEST_LOOKUPS)
            .try_collect()
            .await
    }

    /// Every committed backup's whole manifest, oldest first, loaded [`MANIFEST_LOADS`] at a
    /// time. Memory grows with every table of every backup: for listing, use
    /// [`Repository::list_summaries`]; to go through the manifests, load them one by one.
    pub async fn list_backups(&self) -> Result<Vec<BackupManifest>> {
        let ids = self.backup_ids().await?;
        futures::stream::iter(ids)
            .map(|id| async move { self.load_manifest(&id).await })
            .buffered(MANIFEST_LOADS)
            .try_collect()
            .await
    }

    /// Loads and checks a backup's manifest (its own checksum, its id); a missing one is a
    /// [`ErrorKind::NotFound`] error.
    pub async fn load_manifest(&self, id: &str) -> Result<BackupManifest> {
        let body = self.manifest_body(id).await?;
        self.decode_manifest(id, &body)
    }

    /// Resolves `latest` or an id to the id of a committed backup, reading no manifest.
    pub async fn resolve_id(&self, which: &str) -> Result<String> {
        if which == "latest" {
            return self
                .backup_ids()
                .await?
                .pop()
                .ok_or_else(|| self.no_backups());
        }
        layout::validate_id(which)?;
        match self.storage.stat(&layout::manifest_path(which)).await? {
            Some(_) => Ok(which.to_string()),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "no backup `{which}` in {}; `holdfast list` shows the backups",
                    self.storage.location()
                ),
            )),
        }
    }

    /// Resolves `latest` or an id to a committed backup.
    pub async fn resolve(&self, which: &str) -> Result<BackupManifest> {
        if which == "latest" {
            let ids = self.backup_ids().await?;
            let Some(id) = ids.last() else {
                return Err(self.no_backups());
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
        let mut orphans = Vec::new();
        for (id, committed) in self.backup_dirs().await? {
            if committed {
                continue;
            }
            let objects = self.storage.list(&layout::backup_dir(&id)).await?;
            if objects.is_empty() {
                continue;
            }
            orphans.push(Orphan {
                files: objects.len(),
                bytes: objects.iter().map(|o| o.size).sum(),
                id,
            });
        }
        Ok(orphans)
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

    /// Takes the exclusive lock for a new backup and removes the debris of interrupted ones
    /// (said through `progress`). On failure the lock is released.
    pub async fn lock_for_backup(
        &self,
        progress: &dyn crate::progress::Progress,
    ) -> Result<RepoLock> {
        let lock = self.lock("backup").await?;
        match self.clean_debris(&lock).await {
            Ok(removed) => {
                if !removed.is_empty() {
                    progress.note(&format!(
                        "removed debris of {} interrupted backup(s)",
                        removed.len()
                    ));
                }
                // Incomplete uploads of killed runs too, but never at the cost of the backup:
                // a store that cannot list them is told to `cleanup`, which says why.
                let policy = uploads::UploadPolicy::stale_only();
                match self.sweep_uploads(&lock, &policy, false).await {
                    Ok(sweep) if !sweep.aborted.is_empty() => progress.note(&format!(
                        "aborted {} incomplete upload(s) of interrupted runs",
                        sweep.aborted.len()
                    )),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not sweep incomplete uploads; `holdfast cleanup` retries"
                    ),
                }
                Ok(lock)
            }
            Err(e) => {
                let _ = lock.release().await;
                Err(e)
            }
        }
    }

    /// Writes the manifest: the commit point of a backup. Everything it lists must be durable.
    /// Then its summary (`backups/<id>/summary`), a cache of the manifest: the backup is
    /// committed once the manifest is written, so a failure to write the summary is only
    /// logged (readers summarise a backup without one from its manifest).
    pub async fn commit(&self, lock: &RepoLock, manifest: &BackupManifest) -> Result<()> {
        lock.ensure_held().await?;
        let body = crate::manifest::encode_self_checked(manifest)?;
        let summary = BackupSummary::of(manifest, hex::encode(sha2::Sha256::digest(&body)));
        self.storage
            .put(&layout::manifest_path(&manifest.id), Bytes::from(body))
            .await?;
        if let Err(e) = self.put_summary(&summary).await {
            tracing::warn!(
                backup = manifest.id,
                error = %e,
                "the backup is committed but its summary could not be written; `holdfast \
                 cleanup` writes it"
            );
        }
        Ok(())
    }
}

fn repo_file(storage: &dyn Storage) -> String {
    format!("{}/{}", storage.location(), layout::REPO_FILE)
}

/// Reads and decodes `holdfast.repo`, verifying its checksum.
async fn read_config(storage: &dyn Storage) -> Result<RepoConfig> {
    Ok(read_checked(storage).await?.config)
}

/// Reads and decodes `holdfast.repo`, verifying its checksum; the MAC is left to the caller.
async fn read_checked(storage: &dyn Storage) -> Result<descriptor::Checked> {
    let body = match storage.get(layout::REPO_FILE).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let previous = storage.stat(layout::REPO_FILE_PREVIOUS).await?.is_some();
            let hint = if previous {
                format!(
                    "; `{}` exists: a key change was interrupted, rename it to `{}`",
                    layout::REPO_FILE_PREVIOUS,
                    layout::REPO_FILE
                )
            } else {
                String::new()
            };
            return Err(Error::new(
                ErrorKind::RepoMissing,
                format!(
                    "no holdfast repository at {} (missing `{}`); create one with `holdfast init --repo {}`{hint}",
                    storage.location(),
                    layout::REPO_FILE,
                    storage.location()
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    descriptor::check(&body, &repo_file(storage))
}
