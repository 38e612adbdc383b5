//! What the daemon knows about each repository, as typed facts: kept by the periodic refresh
//! (see `daemon::refresh`) beside the metrics it sets, and read by the API, so a page view never
//! lists a repository's objects itself.
//!
//! [`Fleet`] holds one [`RepositoryView`] per configured repository, replaced whole at each
//! refresh (a failed refresh keeps the previous view and records its error). Pins change
//! through the API between refreshes: [`Fleet::set_pin`] keeps the view current at once.

use std::collections::BTreeMap;
use std::sync::RwLock;

use holdfast::manifest::{BackupSummary, DrillRecord, PinRecord};
use time::OffsetDateTime;

/// Every repository's view.
#[derive(Debug, Default)]
pub struct Fleet {
    repositories: RwLock<BTreeMap<String, RepositoryView>>,
}

impl Fleet {
    /// A copy of one repository's view (`None`: never read yet).
    pub fn repository(&self, name: &str) -> Option<RepositoryView> {
        self.read().get(name).cloned()
    }

    /// Copies of every view, by name.
    pub fn all(&self) -> BTreeMap<String, RepositoryView> {
        self.read().clone()
    }

    /// Stores a fresh view.
    pub fn update(&self, view: RepositoryView) {
        self.write().insert(view.name.clone(), view);
    }

    /// A refresh failed: keep what was known, say why it is stale.
    pub fn failed(&self, repository: &str, error: String, at: OffsetDateTime) {
        let mut map = self.write();
        let view = map
            .entry(repository.to_string())
            .or_insert_with(|| RepositoryView {
                name: repository.to_string(),
                ..RepositoryView::empty(at)
            });
        view.error = Some(error);
        view.attempted_at = at;
    }

    /// A backup was pinned (`Some`) or unpinned (`None`) through the API.
    pub fn set_pin(&self, repository: &str, backup: &str, pin: Option<PinRecord>) {
        if let Some(view) = self.write().get_mut(repository) {
            match pin {
                Some(p) => {
                    view.pins.insert(backup.to_string(), p);
                }
                None => {
                    view.pins.remove(backup);
                }
            }
        }
    }

    /// Forgets repositories no longer configured.
    pub fn retain(&self, names: &[String]) {
        self.write().retain(|k, _| names.contains(k));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RepositoryView>> {
        self.repositories.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, RepositoryView>> {
        self.repositories.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// One repository as the last refresh read it.
#[derive(Clone, Debug)]
pub struct RepositoryView {
    pub name: String,
    /// The data below comes from a successful read (else the repository was never read).
    pub read: bool,
    /// When the data below was read.
    pub refreshed_at: OffsetDateTime,
    /// When the last refresh was attempted (equal to `refreshed_at` unless it failed).
    pub attempted_at: OffsetDateTime,
    /// Why the last refresh failed (the data is from `refreshed_at`).
    pub error: Option<String>,
    /// Committed backups, oldest first.
    pub backups: Vec<BackupFacts>,
    pub pins: BTreeMap<String, PinRecord>,
    pub drills: Vec<DrillRecord>,
    /// The binlog archive.
    pub archive: ArchiveFacts,
    /// The recoverable window (start, end).
    pub window: Option<(OffsetDateTime, OffsetDateTime)>,
    /// What breaks the window (missing segments, GTID gaps), as the status reports them.
    pub gaps: Vec<String>,
    /// Bytes of all backups' files.
    pub size_bytes: u64,
    /// The repository's coverage problems (`holdfast status`).
    pub problems: Vec<String>,
}

impl RepositoryView {
    pub fn empty(at: OffsetDateTime) -> RepositoryView {
        RepositoryView {
            name: String::new(),
            read: false,
            refreshed_at: at,
            attempted_at: at,
            error: None,
            backups: Vec::new(),
            pins: BTreeMap::new(),
            drills: Vec::new(),
            archive: ArchiveFacts::default(),
            window: None,
            gaps: Vec::new(),
            size_bytes: 0,
            problems: Vec::new(),
        }
    }

    /// The newest complete backup of `server`: one attributed to it, or to no configured
    /// server (a repository written by one server, or backups made outside the daemon).
    pub fn last_backup(&self, server: &str) -> Option<&BackupFacts> {
        self.backups
            .iter()
            .filter(|b| !b.partial)
            .filter(|b| b.server.as_deref().is_none_or(|s| s == server))
            .max_by_key(|b| b.finished)
    }

    /// A pin that has not lapsed.
    pub fn pin(&self, id: &str, now: OffsetDateTime) -> Option<&PinRecord> {
        self.pins
            .get(id)
            .filter(|p| p.until.is_none_or(|u| u > now))
    }
}

/// The archive's facts.
#[derive(Clone, Debug, Default)]
pub struct ArchiveFacts {
    pub segments: u64,
    pub bytes: u64,
    /// Seconds the archive is behind its server (when a streamer reports).
    pub lag_seconds: Option<f64>,
    /// The streamer's record says it is alive (`None`: no streamer ever wrote one).
    pub streaming: Option<bool>,
    /// First and last event time of the archive.
    pub range: Option<(OffsetDateTime, OffsetDateTime)>,
}

/// What the API lists of a backup (from its summary: the manifest without its file and table
/// lists).
#[derive(Clone, Debug, PartialEq)]
pub struct BackupFacts {
    pub id: String,
    /// `logical`, `physical` or `incremental`.
    pub kind: &'static str,
    pub started: OffsetDateTime,
    pub finished: OffsetDateTime,
    pub size_bytes: u64,
    pub gtid: String,
    pub consistent_time: OffsetDateTime,
    pub partial: bool,
    pub hostname: String,
    /// The configured server that made it, where the daemon can tell (see
    /// [`Attribution`](crate::metrics::Attribution)).
    pub server: Option<String>,
}

impl BackupFacts {
    pub fn of(m: &BackupSummary, server: Option<String>) -> BackupFacts {
        BackupFacts {
            id: m.id.clone(),
            kind: kind_of(m),
            started: m.started,
            finished: m.finished,
            size_bytes: m.stored_bytes,
            gtid: m.consistent_point.gtid_set.clone(),
            consistent_time: m.consistent_point.time,
            partial: m.is_partial(),
            hostname: m.server.hostname.clone(),
            server,
        }
    }
}

/// `logical`, `physical` or `incremental`.
pub fn kind_of(m: &BackupSummary) -> &'static str {
    match &m.physical {
        Some(p) if p.parent.is_some() => "incremental",
        Some(_) => "physical",
        None => "logical",
    }
}
