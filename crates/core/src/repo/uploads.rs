//! Incomplete uploads of a repository: which are debris that may be aborted, and which may still
//! belong to a running writer.
//!
//! An upload is started by a streaming write (a backup's chunk, a copy's file) and completed
//! or aborted when the write ends; a killed process leaves it behind, invisible to listings and
//! holding storage (on S3, billed parts). [`judge`] is the pure decision: an upload younger than
//! [`LOCK_TTL`] may belong to a writer that is still running, so it is kept unless the caller
//! holds the exclusive lock and asks for any age (`cleanup --any-age`); and while another
//! process holds a lock on the repository (a running `binlog stream`), the age rule applies
//! whatever was asked. [`Repository::sweep_uploads`] applies it under the exclusive lock,
//! which no backup can hold at the same time.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::lock::{live_locks, LOCK_TTL};
use super::{RepoLock, Repository};
use crate::manifest::LockRecord;
use crate::storage::IncompleteUpload;
use crate::Result;

/// What may be aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Uploads started less than this long ago are kept; `None` aborts them at any age.
    pub min_age: Option<Duration>,
    /// Live writers other than the caller (described for messages): while any runs, uploads
    /// younger than [`LOCK_TTL`] are kept whatever `min_age` says.
    pub other_writers: Vec<String>,
}

impl UploadPolicy {
    /// Uploads older than the lock TTL: no live writer has one that old without holding the
    /// exclusive lock, which the caller holds.
    pub fn stale_only() -> UploadPolicy {
        UploadPolicy {
            min_age: Some(LOCK_TTL),
            other_writers: Vec::new(),
        }
    }
}

/// An upload and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JudgedUpload {
    #[serde(flatten)]
    pub upload: IncompleteUpload,
    /// Seconds since the upload started.
    pub age_seconds: u64,
    /// Why it is kept; `None` when it is debris to abort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

impl JudgedUpload {
    pub fn is_debris(&self) -> bool {
        self.kept_because.is_none()
    }
}

/// Decides, for each upload, whether it is debris (see the module overview).
pub fn judge(
    uploads: Vec<IncompleteUpload>,
    now: OffsetDateTime,
    policy: &UploadPolicy,
) -> Vec<JudgedUpload> {
    let ttl = LOCK_TTL.as_secs();
    uploads
        .into_iter()
        .map(|upload| {
            let age = (now - upload.initiated).whole_seconds().max(0) as u64;
            let kept_because = match (&policy.other_writers[..], policy.min_age) {
                ([first, ..], _) if age < ttl => Some(format!(
                    "younger than {} while {first} is running: it may be that writer's",
                    human_age(ttl)
                )),
                (_, Some(min)) if age < min.as_secs() => Some(format!(
                    "younger than {}: it may belong to a write still running (cleanup aborts \
                     it once it is older, or now with --any-age)",
                    human_age(min.as_secs())
                )),
                _ => None,
            };
            JudgedUpload {
                upload,
                age_seconds: age,
                kept_because,
            }
        })
        .collect()
}

/// `42s`, `5m 3s`, `2h 10m`, `3d 4h`.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 && s % 60 == 0 => format!("{}m", s / 60),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A lock holder, for messages: `backup (pid 123 on db1)`.
pub fn describe_holder(record: &LockRecord) -> String {
    format!("{} (pid {} on {})", record.purpose, record.pid, record.host)
}

/// What [`Repository::sweep_uploads`] found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UploadSweep {
    /// Whether the store can list incomplete uploads at all (`false`: nothing below is known;
    /// a bucket lifecycle rule must reclaim them).
    pub listed: bool,
    /// Aborted (or, for a dry run, to abort).
    pub aborted: Vec<JudgedUpload>,
    /// Kept, each with the reason.
    pub kept: Vec<JudgedUpload>,
}

impl Repository {
    /// Every incomplete upload of the repository, judged as `cleanup` would judge it now
    /// (without a lock, every live lock holder counts as a running writer). `None` when the
    /// store cannot list them. Reads only.
    pub async fn incomplete_uploads(&self) -> Result<Option<Vec<JudgedUpload>>> {
        if !self.storage.capabilities().incomplete_uploads {
            return Ok(None);
        }
        let mut uploads = self.storage.incomplete_uploads().await?;
        uploads.sort_by(|a, b| (a.initiated, &a.path).cmp(&(b.initiated, &b.path)));
        let writers = live_locks(&*self.storage)
            .await?
            .iter()
            .map(|(_, r)| describe_holder(r))
            .collect();
        let policy = UploadPolicy {
            other_writers: writers,
            ..UploadPolicy::stale_only()
        };
        Ok(Some(judge(uploads, OffsetDateTime::now_utc(), &policy)))
    }

    /// Aborts the incomplete uploads `policy` calls debris (only reports them with `dry_run`).
    /// Requires the exclusive lock, so no backup or copy is writing; holders of other locks
    /// are added to the policy's writers. A store that cannot list uploads gives
    /// `listed: false`.
    pub async fn sweep_uploads(
        &self,
        lock: &RepoLock,
        policy: &UploadPolicy,
        dry_run: bool,
    ) -> Result<UploadSweep> {
        lock.ensure_held().await?;
        if !self.storage.capabilities().incomplete_uploads {
            return Ok(UploadSweep::default());
        }
        let mut uploads = self.storage.incomplete_uploads().await?;
        uploads.sort_by(|a, b| (a.initiated, &a.path).cmp(&(b.initiated, &b.path)));
        let mut policy = policy.clone();
        for (path, record) in live_locks(&*self.storage).await? {
            if path != lock.path() && record.token != lock.record().token {
                policy.other_writers.push(describe_holder(&record));
            }
        }
        let mut sweep = UploadSweep {
            listed: true,
            ..UploadSweep::default()
        };
        for judged in judge(uploads, OffsetDateTime::now_utc(), &policy) {
            if !judged.is_debris() {
                sweep.kept.push(judged);
                continue;
            }
            if !dry_run {
                tracing::info!(
                    path = judged.upload.path,
                    bytes = judged.upload.bytes,
                    age_seconds = judged.age_seconds,
                    "aborting an incomplete upload"
                );
                self.storage.abort_upload(&judged.upload).await?;
            }
            sweep.aborted.push(judged);
        }
        Ok(sweep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UploadKind;

    fn upload(age: i64) -> IncompleteUpload {
        IncompleteUpload {
            kind: UploadKind::Multipart,
            path: "backups/x/data/d/t/00000.tsv.zst".into(),
            upload_id: format!("u{age}"),
            initiated: now() - time::Duration::seconds(age),
            parts: 3,
            bytes: 24 << 20,
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-21 07:00 UTC)
    }

    #[test]
    fn what_is_debris() {
        let stale = UploadPolicy::stale_only();
        let any_age = UploadPolicy {
            min_age: None,
            other_writers: vec![],
        };
        let streaming = UploadPolicy {
            min_age: None,
            other_writers: vec!["binlog stream (pid 7 on db1)".into()],
        };
        let ttl = LOCK_TTL.as_secs() as i64;
        // (upload age, policy, debris?, reason contains)
        let cases: [(i64, &UploadPolicy, bool, &str); 8] = [
            (ttl + 1, &stale, true, ""),
            (ttl - 1, &stale, false, "younger than 5m:"),
            (0, &stale, false, "--any-age"),
            (0, &any_age, true, ""),
            (ttl - 1, &streaming, false, "binlog stream"),
            (ttl + 1, &streaming, true, ""),
            // A clock ahead of ours: age 0, not negative.
            (-30, &stale, false, "younger than"),
            (-30, &any_age, true, ""),
        ];
        for (age, policy, debris, why) in cases {
            let judged = judge(vec![upload(age)], now(), policy).remove(0);
            assert_eq!(judged.is_debris(), debris, "age {age}, {policy:?}");
            if let Some(reason) = &judged.kept_because {
                assert!(reason.contains(why), "age {age}: {reason}");
            }
            assert_eq!(judged.age_seconds, age.max(0) as u64);
        }
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(42), "42s");
        assert_eq!(human_age(303), "5m 3s");
        assert_eq!(human_age(300), "5m");
        assert_eq!(human_age(7800), "2h 10m");
        assert_eq!(human_age(273_600), "3d 4h");
    }
}
