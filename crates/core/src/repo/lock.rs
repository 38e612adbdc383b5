//! The exclusive repository lock.
//!
//! A lock is a [`LockRecord`] (owner, purpose, expiry, token) under `locks/`. Two protocols, one
//! per kind of store, each safe on its own and each respecting the other's objects:
//!
//! - **Conditional** (stores whose `Capabilities::atomic_create` is true: local disk, AWS S3):
//!   `locks/exclusive.lock` is created with an if-absent write, which exactly one contender wins.
//! - **Contended** (stores that ignore conditional writes, such as Garage): each contender writes
//!   its own `locks/exclusive/<millis>-<token>.lock` as an *intent*, lists `locks/`, and backs off
//!   if another live lock is held or an earlier intent exists. Otherwise it rewrites its record
//!   as *held*, lists again, and wins only if still no other live lock is held and no earlier
//!   intent exists. Safety needs only read-after-write and list-after-write consistency: of two
//!   contenders that both marked themselves held, the one that listed last saw the other's held
//!   record and backed off. Simultaneous contenders may both back off; they retry with jitter.
//!
//! A lock held by a dead process on this host, or whose expiry has passed, is stale and taken
//! over (removed, with a warning). The holder refreshes the expiry in the background, so a live
//! holder never loses the lock, and a crashed holder on another host blocks others for at most
//! [`LOCK_TTL`]. Before committing, writers call [`RepoLock::ensure_held`].
//!
//! A lock dropped without [`RepoLock::release`] (its job was cancelled, as on Ctrl-C) is released
//! by a background task; [`finish_releases`] waits for those before the process exits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
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
/// Rounds of contention before giving up.
const ATTEMPTS: u32 = 6;

pub const EXCLUSIVE_LOCK: &str = "exclusive.lock";
/// Directory of the contended protocol's per-contender records of the exclusive lock, under
/// `locks/` (every named lock `<stem>.lock` has its own `<stem>/`).
pub const CONTENDERS_DIR: &str = "exclusive/";

/// A held lock; released by [`RepoLock::release`] or, failing that, by expiry.
#[derive(Debug)]
pub struct RepoLock {
    storage: Arc<dyn Storage>,
    path: String,
    record: LockRecord,
    refresher: Option<JoinHandle<()>>,
}

enum Round {
    Won { path: String, record: LockRecord },
    HeldBy(LockRecord),
    Contended,
}

impl RepoLock {
    /// Takes the exclusive lock for `purpose`, or fails with [`ErrorKind::Locked`] naming the
    /// holder.
    pub async fn acquire(storage: Arc<dyn Storage>, purpose: &str) -> Result<RepoLock> {
        Self::acquire_named(storage, EXCLUSIVE_LOCK, purpose).await
    }

    /// Takes the lock `locks/<name>` (for example the binlog archive's single-writer lock,
    /// `binlog.lock`, which backups do not contend for). `name` ends with `.lock`.
    pub async fn acquire_named(
        storage: Arc<dyn Storage>,
        name: &str,
        purpose: &str,
    ) -> Result<RepoLock> {
        let name = LockName::new(name);
        for attempt in 0..ATTEMPTS {
            let round = if storage.capabilities().atomic_create {
                conditional_round(&*storage, &name, purpose).await?
            } else {
                contended_round(&*storage, &name, purpose).await?
            };
            match round {
                Round::Won { path, record } => {
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
                Round::HeldBy(holder) => return Err(locked_by(&holder)),
                Round::Contended => {
                    let base = 50u64 << attempt.min(6);
                    let jitter = rand::thread_rng().gen_range(0..=base);
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
            }
        }
        Err(Error::new(
            ErrorKind::Locked,
            "could not take the repository lock: it keeps changing hands; try again",
        ))
    }

    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// The repository path of this lock's record.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Fails if our lock record is gone or no longer ours (taken over after an expiry).
    pub async fn ensure_held(&self) -> Result<()> {
        match read_record(&*self.storage, &self.path).await? {
            Some(r) if r.token == self.record.token && r.held => Ok(()),
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
        // `release` took the refresher: nothing left to do.
        let Some(task) = self.refresher.take() else {
            return;
        };
        task.abort();
        // Dropped while held (a cancelled job): release in the background, best effort; the
        // record would otherwise block others until it expires.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let storage = self.storage.clone();
        let path = std::mem::take(&mut self.path);
        let token = self.record.token.clone();
        let releasing = runtime.spawn(async move {
            if let Ok(Some(r)) = read_record(&*storage, &path).await {
                if r.token == token {
                    if let Err(e) = storage.delete(&path).await {
                        tracing::warn!(error = %e, path, "could not release the repository lock");
                    }
                }
            }
        });
        RELEASING.lock().expect("releasing lock").push(releasing);
    }
}

/// Releases in flight of locks dropped while held (see [`finish_releases`]).
static RELEASING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits (at most `limit`) for the release of every lock that was dropped while held, so a
/// process ending after a cancelled job leaves no lock behind.
pub async fn finish_releases(limit: Duration) {
    let pending: Vec<JoinHandle<()>> =
        std::mem::take(&mut *RELEASING.lock().expect("releasing lock"));
    let _ = tokio::time::timeout(limit, futures::future::join_all(pending)).await;
}

/// One named lock: its conditional record `locks/<stem>.lock` and its contenders' directory
/// `locks/<stem>/`.
struct LockName {
    stem: String,
}

impl LockName {
    fn new(name: &str) -> LockName {
        LockName {
            stem: name.strip_suffix(".lock").unwrap_or(name).to_string(),
        }
    }

    fn path(&self) -> String {
        format!("{LOCKS_DIR}{}.lock", self.stem)
    }

    fn contender_path(&self, record: &LockRecord) -> String {
        let millis = record.acquired.unix_timestamp_nanos() / 1_000_000;
        format!(
            "{LOCKS_DIR}{}/{millis:013}-{}.lock",
            self.stem, record.token
        )
    }

    /// Whether a listed object is a record of this lock (either protocol).
    fn owns(&self, path: &str) -> bool {
        path == self.path()
            || path
                .strip_prefix(LOCKS_DIR)
                .and_then(|rest| rest.strip_prefix(self.stem.as_str()))
                .is_some_and(|rest| rest.starts_with('/') && rest.ends_with(".lock"))
    }
}

/// Contenders are ordered by (acquisition time, token): the earlier intent goes first.
fn before(a: &LockRecord, b: &LockRecord) -> bool {
    (a.acquired, &a.token) < (b.acquired, &b.token)
}

/// One round of the conditional protocol.
async fn conditional_round(storage: &dyn Storage, name: &LockName, purpose: &str) -> Result<Round> {
    let path = name.path();
    let record = new_record(purpose, true);
    if storage.put_if_absent(&path, encode(&record)?).await? {
        // A peer configured to use the contended protocol on this store must not be holding.
        let others = live_others(storage, name, &path, false).await?;
        if let Some(holder) = others.into_iter().find(|r| r.held) {
            storage.delete(&path).await?;
            return Ok(Round::HeldBy(holder));
        }
        return Ok(Round::Won { path, record });
    }
    let Some(holder) = read_record(storage, &path).await? else {
        return Ok(Round::Contended); // released between our write and read
    };
    match staleness(&holder, OffsetDateTime::now_utc()) {
        Some(why) => {
            warn_takeover(&holder, &why);
            storage.delete(&path).await?;
            Ok(Round::Contended)
        }
        None => Ok(Round::HeldBy(holder)),
    }
}

/// One round of the contended protocol (no conditional writes needed).
async fn contended_round(storage: &dyn Storage, name: &LockName, purpose: &str) -> Result<Round> {
    let mut record = new_record(purpose, false);
    let path = name.contender_path(&record);
    storage.put(&path, encode(&record)?).await?;
    for phase in ["intent", "held"] {
        if phase == "held" {
            record.held = true;
            storage.put(&path, encode(&record)?).await?;
        }
        let others = live_others(storage, name, &path, true).await?;
        let held = others.iter().find(|r| r.held).cloned();
        let earlier = others.iter().any(|r| !r.held && before(r, &record));
        if held.is_some() || earlier {
            storage.delete(&path).await?;
            return Ok(match (phase, held) {
                // Someone won before we announced ourselves: report them.
                ("intent", Some(holder)) => Round::HeldBy(holder),
                _ => Round::Contended,
            });
        }
    }
    Ok(Round::Won { path, record })
}

/// Every live record of this lock except ours. With `take_over`, stale ones are removed.
async fn live_others(
    storage: &dyn Storage,
    name: &LockName,
    own: &str,
    take_over: bool,
) -> Result<Vec<LockRecord>> {
    let now = OffsetDateTime::now_utc();
    let mut live = Vec::new();
    for object in storage.list(LOCKS_DIR).await? {
        if object.path == own || !name.owns(&object.path) {
            continue;
        }
        let Some(record) = read_record(storage, &object.path).await? else {
            continue; // released meanwhile
        };
        match staleness(&record, now) {
            None => live.push(record),
            Some(why) if take_over => {
                warn_takeover(&record, &why);
                storage.delete(&object.path).await?;
            }
            Some(_) => {}
        }
    }
    Ok(live)
}

/// Every live, held lock record of the repository (any lock, either protocol) with its path,
/// without taking or touching any: who is writing to the repository right now.
pub async fn live_locks(storage: &dyn Storage) -> Result<Vec<(String, LockRecord)>> {
    let now = OffsetDateTime::now_utc();
    let mut live = Vec::new();
    for object in storage.list(LOCKS_DIR).await? {
        if !object.path.ends_with(".lock") {
            continue;
        }
        let Some(record) = read_record(storage, &object.path).await? else {
            continue; // released meanwhile
        };
        if record.held && staleness(&record, now).is_none() {
            live.push((object.path, record));
        }
    }
    Ok(live)
}

fn warn_takeover(holder: &LockRecord, why: &str) {
    tracing::warn!(
        host = holder.host,
        pid = holder.pid,
        purpose = holder.purpose,
        "taking over a stale repository lock: {why}"
    );
}

fn locked_by(holder: &LockRecord) -> Error {
    Error::new(
        ErrorKind::Locked,
        format!(
            "the repository is locked by {} (pid {} on {}, since {}, valid until {}); \
             wait for it to finish, or if that process is gone from another host, \
             wait for the lock to expire",
            holder.purpose, holder.pid, holder.host, holder.acquired, holder.expires
        ),
    )
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

fn new_record(purpose: &str, held: bool) -> LockRecord {
    let now = OffsetDateTime::now_utc();
    LockRecord {
        token: uuid::Uuid::new_v4().to_string(),
        host: hostname(),
        pid: std::process::id(),
        purpose: purpose.to_string(),
        acquired: now,
        expires: now + LOCK_TTL,
        held,
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
                held: true,
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
            held: true,
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
