//! The exclusive repository lock: `locks/exclusive.lock` holding a [`LockRecord`].
//!
//! Acquisition creates the file with an if-absent write. A lock held by a dead process on this
//! host, or whose expiry has passed, is stale and taken over. The holder refreshes the expiry in the
//! background, so a live holder never loses the lock, and a crashed holder on another host
//! blocks others for at most [`LOCK_TTL`].
//!
//! Stores without atomic create (see `Capabilities::atomic_create`) make acquisition a best-effort
//! check-then-write; after writing, the holder reads the lock back and gives up if another token
//! won, which narrows but does not close the race.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use super::layout::LOCKS_DIR;
use crate::manifest::LockRecord;
use crate::storage::Storage;
use crate::{Error, ErrorKind, Result};

/// How long a lock stays valid without a refresh.
pub const LOCK_TTL: Duration = Duration::from_secs(300);
/// How often a holder refreshes its lock.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

pub const EXCLUSIVE_LOCK: &str = "exclusive.lock";

/// A held lock; released by [`RepoLock::release`] or, failing that, by expiry.
#[derive(Debug)]
pub struct RepoLock {
    storage: Arc<dyn Storage>,
    path: String,
    record: LockRecord,
    refresher: Option<JoinHandle<()>>,
}

impl RepoLock {
    pub async fn acquire(storage: Arc<dyn Storage>, purpose: &str) -> Result<RepoLock> {
        Self::acquire_named(storage, EXCLUSIVE_LOCK, purpose).await
    }

    /// Takes the lock `locks/<name>` (for example the binlog archive's single-writer lock,
    /// which backups do not contend for).
    pub async fn acquire_named(
        storage: Arc<dyn Storage>,
        name: &str,
        purpose: &str,
    ) -> Result<RepoLock> {
        let path = format!("{LOCKS_DIR}{name}");
        for _attempt in 0..3 {
            let record = new_record(purpose);
            let body = encode(&record)?;
            if storage.put_if_absent(&path, body).await? {
                if !storage.capabilities().atomic_create {
                    let back = read_record(&*storage, &path).await?;
                    if back.as_ref().map(|r| &r.token) != Some(&record.token) {
                        continue;
                    }
                }
                let refresher = Some(spawn_refresher(
                    storage.clone(),
                    path.clone(),
                    record.clone(),
                ));
                return Ok(RepoLock {
                    storage,
                    path,
                    record,
                    refresher,
                });
            }
            let Some(holder) = read_record(&*storage, &path).await? else {
                continue; // released between our write and read
            };
            match staleness(&holder, OffsetDateTime::now_utc()) {
                Some(why) => {
                    tracing::warn!(
                        host = holder.host,
                        pid = holder.pid,
                        purpose = holder.purpose,
                        "taking over a stale repository lock: {why}"
                    );
                    storage.delete(&path).await?;
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::Locked,
                        format!(
                        "the repository is locked by {} (pid {} on {}, since {}, valid until {}); \
                             wait for it to finish, or if that process is gone from another host, \
                             wait for the lock to expire",
                        holder.purpose, holder.pid, holder.host, holder.acquired, holder.expires
                    ),
                    ))
                }
            }
        }
        Err(Error::new(
            ErrorKind::Locked,
            "could not take the repository lock: it keeps changing hands",
        ))
    }

    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Fails if the lock file no longer carries our token (taken over after an expiry).
    pub async fn ensure_held(&self) -> Result<()> {
        match read_record(&*self.storage, &self.path).await? {
            Some(r) if r.token == self.record.token => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Locked,
                "the repository lock was lost (taken over by another process); nothing was committed",
            )),
        }
    }

    /// Releases the lock if we still hold it.
    pub async fn release(mut self) -> Result<()> {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
        if let Some(r) = read_record(&*self.storage, &self.path).await? {
            if r.token == self.record.token {
                self.storage.delete(&self.path).await?;
            }
        }
        Ok(())
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
    }
}

fn spawn_refresher(storage: Arc<dyn Storage>, path: String, record: LockRecord) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            let mut fresh = record.clone();
            fresh.expires = OffsetDateTime::now_utc() + LOCK_TTL;
            match read_record(&*storage, &path).await {
                Ok(Some(r)) if r.token == record.token => {}
                _ => {
                    tracing::error!("repository lock lost; the running job will fail at commit");
                    return;
                }
            }
            if let Ok(body) = encode(&fresh) {
                if let Err(e) = storage.put(&path, body).await {
                    tracing::warn!(error = %e, "could not refresh the repository lock");
                }
            }
        }
    })
}

fn new_record(purpose: &str) -> LockRecord {
    let now = OffsetDateTime::now_utc();
    LockRecord {
        token: uuid::Uuid::new_v4().to_string(),
        host: hostname(),
        pid: std::process::id(),
        purpose: purpose.to_string(),
        acquired: now,
        expires: now + LOCK_TTL,
    }
}

fn encode(record: &LockRecord) -> Result<Bytes> {
    serde_json::to_vec_pretty(record)
        .map(Bytes::from)
        .map_err(|e| Error::internal(e.to_string()))
}

async fn read_record(storage: &dyn Storage, path: &str) -> Result<Option<LockRecord>> {
    match storage.get(path).await {
        Ok(body) => Ok(serde_json::from_slice(&body).ok().or_else(|| {
            // An unreadable lock file (torn write) counts as expired.
            Some(LockRecord {
                token: String::new(),
                host: String::new(),
                pid: 0,
                purpose: "unknown (unreadable lock file)".into(),
                acquired: OffsetDateTime::UNIX_EPOCH,
                expires: OffsetDateTime::UNIX_EPOCH,
            })
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a lock may be taken over, or `None` if its holder may still be alive.
pub fn staleness(holder: &LockRecord, now: OffsetDateTime) -> Option<String> {
    if holder.expires < now {
        return Some(format!("expired at {}", holder.expires));
    }
    if holder.host == hostname() && holder.pid != 0 && !process_alive(holder.pid) {
        return Some(format!("process {} on this host is gone", holder.pid));
    }
    None
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, pid: u32, expires_in: i64) -> LockRecord {
        let now = OffsetDateTime::now_utc();
        LockRecord {
            token: "t".into(),
            host: host.into(),
            pid,
            purpose: "backup".into(),
            acquired: now,
            expires: now + time::Duration::seconds(expires_in),
        }
    }

    #[test]
    fn stale_cases() {
        let now = OffsetDateTime::now_utc();
        let me = std::process::id();
        let cases = [
            (
                record(&hostname(), me, 60),
                false,
                "live process on this host",
            ),
            (record(&hostname(), me, -1), true, "expired"),
            (record("elsewhere", 1, 60), false, "other host, unexpired"),
            (
                record(&hostname(), 999_999_999, 60),
                true,
                "dead pid on this host",
            ),
        ];
        for (r, stale, why) in cases {
            assert_eq!(staleness(&r, now).is_some(), stale, "{why}");
        }
    }
}
