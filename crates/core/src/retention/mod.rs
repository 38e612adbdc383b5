//! Retention: which backups and binlog segments a policy keeps, and removing the rest safely.
//!
//! - [`policy`]: the decision, a pure function ([`apply`]) from backups, segments, a
//!   [`Policy`] and "now" to a [`Plan`] with every reason.
//! - This module: the repository side. [`plan`] gathers the facts (the backups' summaries,
//!   pins, the archive) and applies a policy; [`plan_checked`] does the same from the
//!   manifests, for [`execute`]; [`execute`] removes what a plan removes; the stored policy
//!   (`policy.json`) and pins (`pins/<id>.json`) are read and written here.
//!
//! Deletion is crash safe in the order that keeps the repository consistent at every instant:
//! a backup's manifest goes first (the backup stops existing; its files, summary included, are
//! debris that `cleanup` and the next backup remove), then its summary, its files, its pin;
//! incrementals before the backups they are built on. Binlog segments go oldest first, each index entry (the
//! segment's commit point) before its data object, in batches; a data object left behind is
//! found by [`expired_segment_debris`]. Everything runs under the exclusive lock, so no backup,
//! copy into the repository or cleanup runs at the same time; a running `binlog stream` only
//! appends segments after the newest one, which a plan never removes.

pub mod policy;

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use time::OffsetDateTime;

use crate::binlog::archive::{Archive, DATA_DIR};
use crate::drill::list_records;
use crate::drill::status::{status_of, statuses, DrillStatus};
use crate::manifest::{
    decode_versioned, BackupSummary, PinRecord, PolicySpec, SegmentIndex, StoredPolicy, PIN_FORMAT,
    POLICY_FORMAT,
};
use crate::progress::Progress;
use crate::recovery::base_candidate;
use crate::repo::{layout, RepoLock, Repository, SummaryState};
use crate::{Error, ErrorKind, Result};

pub use policy::{
    apply, bucket_label, parse_span, BackupDecision, BackupFacts, Kind, PinFacts, Plan, Policy,
    SegmentRange,
};

/// Objects deleted per batch (S3's DeleteObjects takes up to 1,000).
const DELETE_BATCH: usize = 1000;
/// Pin lookups in flight at once.
const PIN_LOOKUPS: usize = 16;

fn who() -> String {
    format!(
        "holdfast {} on {}",
        env!("CARGO_PKG_VERSION"),
        crate::repo::lock::hostname()
    )
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec_pretty(value)
        .map(Bytes::from)
        .map_err(|e| Error::internal(e.to_string()))
}

/// The stored policy, if one was set.
pub async fn load_policy(repo: &Repository) -> Result<Option<StoredPolicy>> {
    match repo.storage().get(layout::POLICY_FILE).await {
        Ok(body) => Ok(Some(decode_versioned(
            &body,
            layout::POLICY_FILE,
            POLICY_FORMAT,
        )?)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Validates and stores a policy (replacing any previous one).
pub async fn store_policy(
    repo: &Repository,
    lock: &RepoLock,
    rules: PolicySpec,
) -> Result<StoredPolicy> {
    Policy::from_spec(&rules)?;
    lock.ensure_held().await?;
    let stored = StoredPolicy {
        format: POLICY_FORMAT,
        rules,
        set: OffsetDateTime::now_utc(),
        set_by: who(),
    };
    repo.storage()
        .put(layout::POLICY_FILE, encode(&stored)?)
        .await?;
    Ok(stored)
}

/// Removes the stored policy; returns whether there was one.
pub async fn clear_policy(repo: &Repository, lock: &RepoLock) -> Result<bool> {
    lock.ensure_held().await?;
    let existed = repo.storage().stat(layout::POLICY_FILE).await?.is_some();
    repo.storage().delete(layout::POLICY_FILE).await?;
    Ok(existed)
}

/// Every pin record, by backup id order (pins of backups that no longer exist included).
pub async fn pins(repo: &Repository) -> Result<Vec<PinRecord>> {
    let mut ids: Vec<String> = repo
        .storage()
        .list(layout::PINS_DIR)
        .await?
        .iter()
        .filter_map(|o| layout::pin_owner(&o.path).map(str::to_string))
        .collect();
    ids.sort();
    futures::stream::iter(ids)
        .map(|id| async move { load_pin(repo, &id).await })
        .buffered(PIN_LOOKUPS)
        .try_filter_map(|p| async move { Ok(p) })
        .try_collect()
        .await
}

/// The pin of a backup, if it is pinned.
pub async fn load_pin(repo: &Repository, id: &str) -> Result<Option<PinRecord>> {
    let path = layout::pin_path(id);
    match repo.storage().get(&path).await {
        Ok(body) => Ok(Some(decode_versioned(&body, &path, PIN_FORMAT)?)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Pins a committed backup (`which`: an id or `latest`), replacing an earlier pin of it.
pub async fn pin(
    repo: &Repository,
    lock: &RepoLock,
    which: &str,
    reason: Option<String>,
    until: Option<OffsetDateTime>,
) -> Result<PinRecord> {
    let id = repo.resolve_id(which).await?;
    let now = OffsetDateTime::now_utc();
    if let Some(u) = until {
        if u <= now {
            return Err(Error::usage(format!(
                "--until {} is in the past; give a later time",
                policy_time(u)
            )));
        }
    }
    lock.ensure_held().await?;
    let record = PinRecord {
        format: PIN_FORMAT,
        backup: id.clone(),
        reason: reason.filter(|r| !r.trim().is_empty()),
        until,
        pinned: now,
        pinned_by: who(),
    };
    repo.storage()
        .put(&layout::pin_path(&id), encode(&record)?)
        .await?;
    Ok(record)
}

/// Unpins a backup; returns its pin, or a not-found error when it was not pinned.
pub async fn unpin(repo: &Repository, lock: &RepoLock, id: &str) -> Result<PinRecord> {
    layout::validate_id(id)?;
    let Some(pin) = load_pin(repo, id).await? else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("backup {id} is not pinned; `holdfast list` shows the pins"),
        ));
    };
    lock.ensure_held().await?;
    repo.storage().delete(&layout::pin_path(id)).await?;
    Ok(pin)
}

fn policy_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whether a backup covers the whole server (a backup taken with filters is partial: no base
/// for the recovery window).
pub fn is_complete(backup: &BackupSummary) -> bool {
    !backup.is_partial()
}

/// What the policy sees of a backup.
pub fn facts(
    backup: &BackupSummary,
    pin: Option<&PinRecord>,
    drill: &DrillStatus,
) -> Result<BackupFacts> {
    let base = base_candidate(backup)?;
    Ok(BackupFacts {
        id: backup.id.clone(),
        engine: backup.engine.clone(),
        kind: if backup.parent().is_some() {
            Kind::Incremental
        } else {
            Kind::Full
        },
        parent: backup.parent().map(str::to_string),
        finished: backup.finished,
        point_time: base.time,
        gtid: base.gtid,
        complete: is_complete(backup),
        pin: pin.map(|p| PinFacts {
            reason: p.reason.clone(),
            until: p.until,
        }),
        verified: match drill {
            DrillStatus::Unverified => None,
            DrillStatus::Verified { .. } => Some(true),
            DrillStatus::Failed { .. } => Some(false),
        },
        bytes: backup.stored_bytes,
    })
}

/// Applies `policy` to what the repository holds at `now`, from the backups' summaries; nothing
/// is changed. Returns the plan and the segments it was made from. A preview (`expire
/// --dry-run`): what [`execute`] carries out is made by [`plan_checked`].
pub async fn plan(
    repo: &Repository,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<(Plan, Vec<SegmentIndex>)> {
    let summaries = repo.list_summaries().await?;
    plan_from(repo, &summaries, policy, now).await
}

/// A backup whose stored summary does not describe its manifest (see [`plan_checked`]).
#[derive(Debug, Clone, Serialize)]
pub struct SummaryMismatch {
    pub backup: String,
    pub summary: SummaryState,
}

/// As [`plan`], but every backup's facts are re-derived from its manifest (loaded a few at a
/// time, never all at once), so a damaged or stale summary cannot make [`execute`] delete a
/// backup the policy keeps. Also returns the backups whose stored summary differs.
pub async fn plan_checked(
    repo: &Repository,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<(Plan, Vec<SegmentIndex>, Vec<SummaryMismatch>)> {
    let checked = repo.check_summaries().await?;
    let mismatches = checked
        .iter()
        .filter(|c| !c.state.is_sound())
        .map(|c| SummaryMismatch {
            backup: c.derived.id.clone(),
            summary: c.state.clone(),
        })
        .collect();
    let summaries: Vec<BackupSummary> = checked.into_iter().map(|c| c.derived).collect();
    let (plan, segments) = plan_from(repo, &summaries, policy, now).await?;
    Ok((plan, segments, mismatches))
}

async fn plan_from(
    repo: &Repository,
    summaries: &[BackupSummary],
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<(Plan, Vec<SegmentIndex>)> {
    let pins = pins(repo).await?;
    let drills = statuses(&list_records(repo).await?);
    let backups = summaries
        .iter()
        .map(|s| {
            facts(
                s,
                pins.iter().find(|p| p.backup == s.id),
                &status_of(&drills, &s.id),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let segments = Archive::new(repo.storage().clone()).segments().await?;
    Ok((policy::apply(&backups, &segments, policy, now), segments))
}

/// What [`execute`] removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpireReport {
    pub backups_removed: Vec<String>,
    pub backup_bytes_freed: u64,
    pub segments_removed: usize,
    pub segment_bytes_freed: u64,
    pub seconds: f64,
}

/// Removes what `plan` removes (see the module documentation for the order). `segments` are
/// those the plan was made from. Requires the exclusive lock, checked before each backup.
pub async fn execute(
    repo: &Repository,
    lock: &RepoLock,
    plan: &Plan,
    segments: &[SegmentIndex],
    progress: &dyn Progress,
) -> Result<ExpireReport> {
    let started = std::time::Instant::now();
    let mut report = ExpireReport::default();
    let storage = repo.storage();
    // Newest first: an incremental goes before the backup it is built on, so a crash never
    // leaves an incremental without its parent.
    let mut doomed: Vec<&BackupDecision> = plan.removed_backups().collect();
    doomed.sort_by(|a, b| (b.finished, &b.id).cmp(&(a.finished, &a.id)));
    progress.phase("expire", doomed.len() as u64, "backups");
    for b in doomed {
        lock.ensure_held().await?;
        storage.delete(&layout::manifest_path(&b.id)).await?;
        storage.delete(&layout::summary_path(&b.id)).await?;
        storage.delete_prefix(&layout::backup_dir(&b.id)).await?;
        storage.delete(&layout::pin_path(&b.id)).await?;
        tracing::info!(backup = b.id, bytes = b.bytes, "expired");
        report.backups_removed.push(b.id.clone());
        report.backup_bytes_freed += b.bytes;
        progress.advance(1);
    }
    let removed_seqs: HashSet<u64> = plan
        .removed_ranges()
        .flat_map(|r| r.first_seq..=r.last_seq)
        .collect();
    let doomed: Vec<&SegmentIndex> = segments
        .iter()
        .filter(|s| removed_seqs.contains(&s.seq))
        .collect();
    progress.phase("expire binlog", doomed.len() as u64, "segments");
    for batch in doomed.chunks(DELETE_BATCH) {
        lock.ensure_held().await?;
        // Index entries one at a time, oldest first: what remains is always a suffix of the
        // archive, so a killed expire never leaves a missing sequence number between two
        // segments (which `verify` would rightly call a lost entry). Their objects, no longer
        // referenced, go in bulk.
        for s in batch {
            storage
                .delete(&crate::binlog::archive::index_path(s.seq))
                .await?;
        }
        let data: Vec<String> = batch.iter().map(|s| s.object.path.clone()).collect();
        storage.delete_many(&data).await?;
        report.segments_removed += batch.len();
        report.segment_bytes_freed += batch.iter().map(|s| s.object.size).sum::<u64>();
        progress.advance(batch.len() as u64);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Debris of an interrupted expire.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpireDebris {
    /// Binlog data objects of segments whose index entry was removed.
    pub segment_objects: Vec<String>,
    pub segment_bytes: u64,
    /// Pins of backups that no longer exist.
    pub pins: Vec<String>,
}

impl ExpireDebris {
    pub fn is_empty(&self) -> bool {
        self.segment_objects.is_empty() && self.pins.is_empty()
    }
}

/// Finds the debris an interrupted expire leaves: data objects of segments numbered at or
/// below the newest committed one that no index entry references (a running stream only
/// writes above it, so none of these can be in flight), and pins of missing backups. The
/// files of a backup whose manifest is gone are [`Repository::orphans`].
pub async fn expired_segment_debris(repo: &Repository) -> Result<ExpireDebris> {
    let archive = Archive::new(repo.storage().clone());
    // The index first: a segment committed after this listing has a higher number.
    let committed = archive.segments().await?;
    let mut debris = ExpireDebris::default();
    if let Some(newest) = committed.last().map(|s| s.seq) {
        let referenced: HashSet<&str> = committed.iter().map(|s| s.object.path.as_str()).collect();
        for o in repo.storage().list(DATA_DIR).await? {
            let seq = data_seq(&o.path);
            if !referenced.contains(o.path.as_str()) && seq.is_some_and(|s| s <= newest) {
                debris.segment_bytes += o.size;
                debris.segment_objects.push(o.path);
            }
        }
        debris.segment_objects.sort();
    }
    let ids: HashSet<String> = repo.backup_ids().await?.into_iter().collect();
    for o in repo.storage().list(layout::PINS_DIR).await? {
        if let Some(id) = layout::pin_owner(&o.path) {
            if !ids.contains(id) {
                debris.pins.push(o.path.clone());
            }
        }
    }
    Ok(debris)
}

/// Removes what [`expired_segment_debris`] found, under the exclusive lock.
pub async fn remove_expire_debris(repo: &Repository, lock: &RepoLock) -> Result<ExpireDebris> {
    lock.ensure_held().await?;
    let debris = expired_segment_debris(repo).await?;
    for batch in debris.segment_objects.chunks(DELETE_BATCH) {
        repo.storage().delete_many(batch).await?;
    }
    repo.storage().delete_many(&debris.pins).await?;
    Ok(debris)
}

/// The sequence number in a data object's name (`<start_pos>.<seq>.zst`).
fn data_seq(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?.strip_suffix(".zst")?;
    name.split('.').nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::data_seq;

    #[test]
    fn data_objects_name_their_segment() {
        assert_eq!(
            data_seq("binlog/data/7/mysql-bin.000003@1700000000/000000000000.00000005.zst"),
            Some(5)
        );
        assert_eq!(data_seq("binlog/data/7/x@1/garbage"), None);
    }
}
