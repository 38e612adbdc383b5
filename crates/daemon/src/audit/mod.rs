//! The audit log: who did what, from where, to what, with which result — logins (also failed),
//! logouts, user and token changes, every mutating API request, job starts and ends, restores.
//!
//! Entries are appended with [`record`] (or [`AccessStore::append_audit`]) and hash-chained:
//! each entry's `hash` is `SHA-256(prev_hash || canonical JSON of the entry without its hash)`
//! ([`chain_hash`]), where `prev_hash` is the previous entry's hash ([`GENESIS`] for the first)
//! and the canonical JSON is the object of `action, actor, at, detail, prev_hash, result, seq,
//! source, target` with its keys in that (sorted) order, no whitespace, `at` in Unix
//! milliseconds. [`verify`] walks the chain and names the first entry that does not hold: a
//! removed entry (a gap in `seq`, or a head that does not match), an edited one (its hash), a
//! reordered or re-linked one (its `prev_hash`). The chain proves the log was not altered by
//! someone without write access to the hashing itself; it does not stop someone who rewrites
//! the whole chain from the altered entry on — export it (`holdfast audit export`) to a system
//! they cannot write to for that.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::store::{AccessStore, AuditEvent, AuditQuery, AuditRecord, StoreError};
use crate::time::{now_millis, Millis};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The entry as it is hashed: keys in sorted order (serde serialises fields in declaration
/// order), the hash itself left out.
#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor: &'a str,
    at: Millis,
    detail: &'a str,
    prev_hash: &'a str,
    result: &'a str,
    seq: i64,
    source: &'a str,
    target: &'a str,
}

/// The hash an entry must carry (see the module docs).
pub fn chain_hash(r: &AuditRecord) -> String {
    let canonical = Canonical {
        action: &r.action,
        actor: &r.actor,
        at: r.at,
        detail: &r.detail,
        prev_hash: &r.prev_hash,
        result: &r.result,
        seq: r.seq,
        source: &r.source,
        target: &r.target,
    };
    let json = serde_json::to_vec(&canonical).expect("strings and integers serialise");
    let mut h = Sha256::new();
    h.update(r.prev_hash.as_bytes());
    h.update(&json);
    hex::encode(h.finalize())
}

/// Where and why the chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Break {
    /// The first entry that does not verify (for a removed entry: the seq that is missing).
    pub seq: i64,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    /// Entry `seq` is not there (the next one found is `found`), or the log ends before the
    /// recorded head.
    Removed { found: Option<i64> },
    /// Entries out of order: `seq` found where a later one was expected.
    Reordered { found: i64 },
    /// The entry's content does not match its hash.
    Edited,
    /// The entry's `prev_hash` is not the previous entry's hash.
    Relinked,
    /// Entries beyond the recorded head (appended past the store).
    BeyondHead { head: i64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seq = self.seq;
        match &self.problem {
            Problem::Removed { found: Some(n) } => write!(
                f,
                "entry {seq} is missing (removed): the next entry found is {n}"
            ),
            Problem::Removed { found: None } => write!(
                f,
                "entry {seq} is missing (removed): the log ends before the recorded head"
            ),
            Problem::Reordered { found } => {
                write!(f, "entry {seq} expected, {found} found: entries reordered")
            }
            Problem::Edited => write!(f, "entry {seq} was altered: its content does not match its hash"),
            Problem::Relinked => write!(
                f,
                "entry {seq} does not follow the entry before it (prev_hash differs): reordered or replaced"
            ),
            Problem::BeyondHead { head } => write!(
                f,
                "entry {seq} lies beyond the recorded head {head}: written past holdfast"
            ),
        }
    }
}

/// Checks a chain incrementally, page by page, in `seq` order.
#[derive(Clone, Debug)]
pub struct Verifier {
    next_seq: i64,
    prev_hash: String,
    /// Entries checked.
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            next_seq: 1,
            prev_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl Verifier {
    /// The next entry, in the order read (ascending `seq`).
    pub fn push(&mut self, r: &AuditRecord) -> Result<(), Break> {
        if r.seq > self.next_seq {
            return Err(Break {
                seq: self.next_seq,
                problem: Problem::Removed { found: Some(r.seq) },
            });
        }
        if r.seq < self.next_seq {
            return Err(Break {
                seq: self.next_seq,
                problem: Problem::Reordered { found: r.seq },
            });
        }
        if chain_hash(r) != r.hash {
            return Err(Break {
                seq: r.seq,
                problem: Problem::Edited,
            });
        }
        if r.prev_hash != self.prev_hash {
            return Err(Break {
                seq: r.seq,
                problem: Problem::Relinked,
            });
        }
        self.prev_hash = r.hash.clone();
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// After the last entry: does the chain end at the head the store recorded?
    pub fn finish(&self, head: Option<&(i64, String)>) -> Result<(), Break> {
        let last = self.next_seq - 1;
        match head {
            None if last == 0 => Ok(()),
            None => Err(Break {
                seq: 1,
                problem: Problem::BeyondHead { head: 0 },
            }),
            Some((seq, _)) if *seq > last => Err(Break {
                seq: last + 1,
                problem: Problem::Removed { found: None },
            }),
            Some((seq, _)) if *seq < last => Err(Break {
                seq: seq + 1,
                problem: Problem::BeyondHead { head: *seq },
            }),
            Some((seq, hash)) if *hash != self.prev_hash => Err(Break {
                seq: *seq,
                problem: Problem::Edited,
            }),
            Some(_) => Ok(()),
        }
    }
}

/// Verifies a whole chain in memory (see [`Verifier`] for the paged form).
pub fn verify(entries: &[AuditRecord], head: Option<&(i64, String)>) -> Result<u64, Break> {
    let mut v = Verifier::default();
    for r in entries {
        v.push(r)?;
    }
    v.finish(head)?;
    Ok(v.checked)
}

/// The outcome of checking a store's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub entries: u64,
    pub head: Option<i64>,
    /// `None`: the chain verifies.
    pub broken: Option<Break>,
}

/// Reads the store's whole chain (in pages) and verifies it.
pub async fn verify_store(store: &dyn AccessStore) -> Result<Report, StoreError> {
    let head = store.audit_head().await?;
    let mut v = Verifier::default();
    let mut after = None;
    loop {
        let page = store
            .audit(&AuditQuery {
                after_seq: after,
                limit: 1000,
                ..AuditQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for r in &page {
            if let Err(b) = v.push(r) {
                return Ok(Report {
                    entries: v.checked,
                    head: head.as_ref().map(|h| h.0),
                    broken: Some(b),
                });
            }
        }
    }
    let broken = v.finish(head.as_ref()).err();
    Ok(Report {
        entries: v.checked,
        head: head.map(|h| h.0),
        broken,
    })
}

/// An entry as the API and `holdfast audit export` show it: the stored fields, `at` as RFC 3339
/// (UTC) and `at_ms` (the Unix milliseconds the hash covers).
#[derive(Serialize, ToSchema)]
pub struct AuditItem {
    /// 1, 2, 3, … with no gaps.
    pub seq: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `at` in Unix milliseconds, as the hash covers it.
    pub at_ms: i64,
    /// Who: a user (a session), `token:<id> (<user>)`, `cli:<login>` or `daemon`.
    pub actor: String,
    /// From where: the client's address, `local` (the CLI) or the daemon's worker.
    pub source: String,
    pub action: String,
    pub target: String,
    /// `ok`, or what went wrong: `failed`, `denied`, `refused`, `rate-limited`…
    pub result: String,
    pub detail: String,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` followed by the entry's canonical JSON.
    pub hash: String,
}

impl From<&AuditRecord> for AuditItem {
    fn from(r: &AuditRecord) -> AuditItem {
        AuditItem {
            seq: r.seq,
            at: crate::scheduler::format_utc(r.at),
            at_ms: r.at,
            actor: r.actor.clone(),
            source: r.source.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            result: r.result.clone(),
            detail: r.detail.clone(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// [`AuditItem`] as JSON.
pub fn to_json(r: &AuditRecord) -> serde_json::Value {
    serde_json::to_value(AuditItem::from(r)).expect("an audit entry serializes")
}

/// An event to record, built from who, from where, what and on what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
}

impl Event {
    /// `action` on `target` by `actor` from `source`, result `ok`, no detail.
    pub fn new(
        actor: impl Into<String>,
        source: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Event {
        Event {
            actor: actor.into(),
            source: source.into(),
            action: action.into(),
            target: target.into(),
            result: "ok".into(),
            detail: String::new(),
        }
    }

    /// An event of an authenticated API caller (its principal: `alice`, `token:ID (alice)`).
    pub fn by(
        caller: &Caller,
        source: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Event {
        Event::new(caller.principal(), source, action, target)
    }

    pub fn result(mut self, result: impl Into<String>) -> Event {
        self.result = result.into();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = detail.into();
        self
    }
}

/// Appends `event` (now) to the audit chain. Callers decide what a failure means; API routes
/// should fail the request (a change that cannot be audited should not be made silently).
pub async fn record(store: &dyn AccessStore, event: Event) -> Result<AuditRecord, StoreError> {
    store
        .append_audit(&AuditEvent {
            at: now_millis(),
            actor: event.actor,
            source: event.source,
            action: event.action,
            target: event.target,
            result: event.result,
            detail: event.detail,
        })
        .await
}

/// [`record`] for callers that must not fail on it (the daemon's job events): a failure is
/// logged as an error.
pub async fn record_or_log(store: &Arc<dyn AccessStore>, event: Event) {
    let action = event.action.clone();
    if let Err(e) = record(store.as_ref(), event).await {
        tracing::error!(error = %e, action, "cannot append to the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut r = AuditRecord {
                    seq,
                    at: 1_800_000_000_000 + seq,
                    actor: "alice".into(),
                    source: "127.0.0.1".into(),
                    action: "session.login".into(),
                    target: "alice".into(),
                    result: "ok".into(),
                    detail: format!("entry {seq}"),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = chain_hash(&r);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn head(c: &[AuditRecord]) -> Option<(i64, String)> {
        c.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn the_canonical_form_is_fixed() {
        // A change here breaks every stored chain: it needs a new chain version, not an edit.
        let c = chain(1);
        let json = serde_json::to_string(&Canonical {
            action: &c[0].action,
            actor: &c[0].actor,
            at: c[0].at,
            detail: &c[0].detail,
            prev_hash: &c[0].prev_hash,
            result: &c[0].result,
            seq: c[0].seq,
            source: &c[0].source,
            target: &c[0].target,
        })
        .unwrap();
        assert_eq!(
            json,
            format!(
                "{{\"action\":\"session.login\",\"actor\":\"alice\",\"at\":1800000000001,\
                 \"detail\":\"entry 1\",\"prev_hash\":\"{GENESIS}\",\"result\":\"ok\",\"seq\":1,\
                 \"source\":\"127.0.0.1\",\"target\":\"alice\"}}"
            )
        );
    }

    #[test]
    fn tampering_is_found_at_the_first_bad_entry() {
        let good = chain(5);
        assert_eq!(verify(&good, head(&good).as_ref()), Ok(5));
        assert_eq!(verify(&[], None), Ok(0));

        type Tamper = fn(&mut Vec<AuditRecord>);
        let cases: &[(&str, Tamper, i64, &str)] = &[
            (
                "removed in the middle",
                |c| {
                    c.remove(2);
                },
                3,
                "removed",
            ),
            (
                "removed first",
                |c| {
                    c.remove(0);
                },
                1,
                "removed",
            ),
            (
                "removed last",
                |c| {
                    c.pop();
                },
                5,
                "removed",
            ),
            (
                "edited detail",
                |c| c[1].detail = "nothing happened".into(),
                2,
                "edited",
            ),
            ("edited result", |c| c[3].result = "ok?".into(), 4, "edited"),
            (
                "edited and rehashed",
                |c| {
                    c[1].actor = "mallory".into();
                    c[1].hash = chain_hash(&c[1]);
                },
                3,
                "relinked",
            ),
            (
                "duplicated",
                |c| {
                    let d = c[1].clone();
                    c.insert(2, d);
                },
                3,
                "reordered",
            ),
            (
                "reordered, seqs rewritten",
                |c| {
                    c.swap(1, 2);
                    c[1].seq = 2;
                    c[2].seq = 3;
                },
                2,
                "edited",
            ),
        ];
        for (name, tamper, seq, kind) in cases {
            let h = head(&good);
            let mut c = good.clone();
            tamper(&mut c);
            let b = verify(&c, h.as_ref()).expect_err(name);
            assert_eq!(b.seq, *seq, "{name}: {b}");
            let got = serde_json::to_value(&b.problem).unwrap();
            let got = got
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| got.as_object().unwrap().keys().next().unwrap().clone());
            assert_eq!(got, *kind, "{name}: {b}");
        }
    }

    #[test]
    fn entries_past_the_head_are_found() {
        let c = chain(3);
        let b = verify(&c, Some(&(2, c[1].hash.clone()))).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(matches!(b.problem, Problem::BeyondHead { head: 2 }));
    }
}
