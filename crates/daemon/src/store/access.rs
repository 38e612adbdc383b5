//! Who may use the API and what they did: [`AccessStore`] (users, API tokens, browser sessions,
//! login failures and the audit log), in the same database as the jobs (schema version 2, see
//! [`super::schema`]) and implemented by both [`SqliteStore`](super::SqliteStore) and
//! [`PgStore`](super::PgStore); one conformance suite (`tests/access_store.rs`) runs against both.
//!
//! The stored types here are the on-disk shapes. Secrets never are: a user's password is an
//! Argon2id PHC string, a token and a session id are kept as the SHA-256 of their random secret
//! (see [`crate::auth`] for why each hash fits). `Debug` of these types leaves the hashes out.
//!
//! The contract:
//! - names and ids are unique: adding a taken one changes nothing and says so;
//! - disabling a user or changing their password ends their sessions in the same transaction;
//! - [`AccessStore::append_audit`] keeps ONE chain whatever the number of daemons appending at
//!   once: appends are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped
//!   advisory lock), each takes `seq = head + 1` and `prev_hash = head's hash`, and the head
//!   (`meta.audit_head`, `SEQ:HASH`) moves in the same transaction, so a removed last entry
//!   still shows as a gap.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::access::Role;
use crate::time::Millis;

use super::Result;

/// A local user of the API and the console.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Argon2id, as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A change to a user; `None` fields stay as they are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// A new Argon2id PHC string.
    pub password_hash: Option<String>,
}

impl UserUpdate {
    /// Does the change end the user's sessions (disabled, or a new password)?
    pub fn ends_sessions(&self) -> bool {
        self.disabled == Some(true) || self.password_hash.is_some()
    }
}

/// An API token (`hf_<id>_<secret>`), by its id; the secret is only its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub user: String,
    pub role: Role,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A browser session, by the SHA-256 of its id (the cookie's value).
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the session id.
    pub id_hash: String,
    pub user: String,
    /// The token a mutating request of this session must send in `X-CSRF-Token`.
    pub csrf_token: String,
    pub created_at: Millis,
    /// The absolute end, whatever the activity.
    pub expires_at: Millis,
    pub last_seen_at: Millis,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("last_seen_at", &self.last_seen_at)
            .finish_non_exhaustive()
    }
}

/// What happened, to be appended to the audit log (see [`crate::audit`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: Millis,
    /// Who: a user name, `token:ID (user)`, `daemon`, `cli:UNIXUSER`.
    pub actor: String,
    /// From where: the client's IP address, `local` for the CLI, the daemon's worker id.
    pub source: String,
    /// What, as a dotted name: `session.login`, `user.add`, `job.start`, …
    pub action: String,
    /// On what: a user name, a token id, a job id, a backup.
    pub target: String,
    /// `ok`, `denied`, `failed`, `rate-limited`, …
    pub result: String,
    /// Free text (never a secret).
    pub detail: String,
}

/// An entry of the audit log, as stored and exported (JSON lines, the API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3, … with no gaps.
    pub seq: i64,
    pub at: Millis,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` followed by the entry's canonical JSON (see
    /// [`crate::audit::chain_hash`]).
    pub hash: String,
}

/// Which audit entries to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries at or after this time.
    pub since: Option<Millis>,
    /// Only entries with a `seq` above this (paging oldest first).
    pub after_seq: Option<i64>,
    /// Only entries with a `seq` below this (paging newest first).
    pub before_seq: Option<i64>,
    pub limit: u32,
    pub newest_first: bool,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            since: None,
            after_seq: None,
            before_seq: None,
            limit: 500,
            newest_first: false,
        }
    }
}

/// Users, tokens, sessions, login failures and the audit log. See the module docs.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Adds a user; `false` (nothing changed) when the name is taken.
    async fn add_user(&self, user: &User) -> Result<bool>;
    async fn user(&self, name: &str) -> Result<Option<User>>;
    /// Every user, by name.
    async fn users(&self) -> Result<Vec<User>>;
    /// Applies `update`; `false` when there is no such user. Disabling or a new password ends
    /// the user's sessions in the same transaction.
    async fn update_user(&self, name: &str, update: &UserUpdate, now: Millis) -> Result<bool>;

    /// Adds a token; an id that is taken is an error (ids are random: it does not happen).
    async fn add_token(&self, token: &ApiToken) -> Result<()>;
    async fn token(&self, id: &str) -> Result<Option<ApiToken>>;
    /// Tokens (of `user`, or all), oldest first.
    async fn tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>>;
    /// Records a use of the token.
    async fn token_used(&self, id: &str, now: Millis) -> Result<()>;
    /// Revokes a token; `false` when there is no such token or it was revoked already.
    async fn revoke_token(&self, id: &str, now: Millis) -> Result<bool>;

    async fn add_session(&self, session: &Session) -> Result<()>;
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Records activity of the session (for the idle expiry).
    async fn session_seen(&self, id_hash: &str, now: Millis) -> Result<()>;
    /// Ends a session; `false` when there was none.
    async fn end_session(&self, id_hash: &str) -> Result<bool>;
    /// Removes sessions past their absolute end or idle longer than `idle_ms`; how many.
    async fn end_expired_sessions(&self, now: Millis, idle_ms: Millis) -> Result<u64>;

    /// Records one failed login under each of `keys` (`user:NAME`, `addr:IP`) at `at`, and
    /// forgets failures before `forget_before`.
    async fn login_failed(&self, keys: &[String], at: Millis, forget_before: Millis) -> Result<()>;
    /// The times of `key`'s failures at or after `since`, oldest first.
    async fn login_failures(&self, key: &str, since: Millis) -> Result<Vec<Millis>>;
    /// Forgets `key`'s failures (a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<()>;

    /// Appends `event` to the audit chain and returns the stored entry.
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord>;
    /// Audit entries by `seq` (ascending, or descending with `newest_first`).
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// The chain's head as recorded at the last append: `(seq, hash)`.
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;
}

/// The chain's head as `meta` stores it.
pub(crate) fn parse_head(s: &str) -> Result<(i64, String)> {
    s.split_once(':')
        .and_then(|(seq, hash)| Some((seq.parse().ok()?, hash.to_string())))
        .ok_or_else(|| super::StoreError::Corrupt(format!("audit_head {s:?} is not SEQ:HASH")))
}

pub(crate) fn role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| super::StoreError::Corrupt(format!("unknown role {s:?}")))
}

/// The [`AccessStore`] SQL, the same for both backends (see `common.rs` for the pattern). A
/// backend provides `pool`, `begin_write` and `begin_audit` (a write transaction holding the
/// audit append lock).
macro_rules! access_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            fn user_row(row: &<$db as sqlx::Database>::Row) -> $crate::store::Result<User> {
                use sqlx::Row;
                let g = |e: sqlx::Error| StoreError::Corrupt(format!("users: {e}"));
                let role: String = row.try_get("role").map_err(g)?;
                Ok(User {
                    name: row.try_get("name").map_err(g)?,
                    role: $crate::store::access::role(&role)?,
                    password_hash: row.try_get("password_hash").map_err(g)?,
                    disabled: row.try_get("disabled").map_err(g)?,
                    created_at: row.try_get("created_at").map_err(g)?,
                    updated_at: row.try_get("updated_at").map_err(g)?,
                })
            }

            fn token_row(row: &<$db as sqlx::Database>::Row) -> $crate::store::Result<ApiToken> {
                use sqlx::Row;
                let g = |e: sqlx::Error| StoreError::Corrupt(format!("api_tokens: {e}"));
                let role: String = row.try_get("role").map_err(g)?;
                Ok(ApiToken {
                    id: row.try_get("id").map_err(g)?,
                    user: row.try_get("user_name").map_err(g)?,
                    role: $crate::store::access::role(&role)?,
                    secret_hash: row.try_get("secret_hash").map_err(g)?,
                    created_at: row.try_get("created_at").map_err(g)?,
                    expires_at: row.try_get("expires_at").map_err(g)?,
                    last_used_at: row.try_get("last_used_at").map_err(g)?,
                    revoked_at: row.try_get("revoked_at").map_err(g)?,
                })
            }

            fn session_row(row: &<$db as sqlx::Database>::Row) -> $crate::store::Result<Session> {
                use sqlx::Row;
                let g = |e: sqlx::Error| StoreError::Corrupt(format!("sessions: {e}"));
                Ok(Session {
                    id_hash: row.try_get("id_hash").map_err(g)?,
                    user: row.try_get("user_name").map_err(g)?,
                    csrf_token: row.try_get("csrf_token").map_err(g)?,
                    created_at: row.try_get("created_at").map_err(g)?,
                    expires_at: row.try_get("expires_at").map_err(g)?,
                    last_seen_at: row.try_get("last_seen_at").map_err(g)?,
                })
            }

            fn audit_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> $crate::store::Result<AuditRecord> {
                use sqlx::Row;
                let g = |e: sqlx::Error| StoreError::Corrupt(format!("audit_log: {e}"));
                Ok(AuditRecord {
                    seq: row.try_get("seq").map_err(g)?,
                    at: row.try_get("at").map_err(g)?,
                    actor: row.try_get("actor").map_err(g)?,
                    source: row.try_get("source").map_err(g)?,
                    action: row.try_get("action").map_err(g)?,
                    target: row.try_get("target").map_err(g)?,
                    result: row.try_get("result").map_err(g)?,
                    detail: row.try_get("detail").map_err(g)?,
                    prev_hash: row.try_get("prev_hash").map_err(g)?,
                    hash: row.try_get("hash").map_err(g)?,
                })
            }
        }

        #[async_trait::async_trait]
        impl AccessStore for $store {
            async fn add_user(&self, user: &User) -> $crate::store::Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO users (name, role, password_hash, disabled, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                )
                .bind(user.name.as_str())
                .bind(user.role.as_str())
                .bind(user.password_hash.as_str())
                .bind(user.disabled)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn user(&self, name: &str) -> $crate::store::Result<Option<User>> {
                let row = sqlx::query("SELECT * FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(query_err)?;
                row.as_ref().map(Self::user_row).transpose()
            }

            async fn users(&self) -> $crate::store::Result<Vec<User>> {
                let rows = sqlx::query("SELECT * FROM users ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_err)?;
                rows.iter().map(Self::user_row).collect()
            }

            async fn update_user(
                &self,
                name: &str,
                update: &UserUpdate,
                now: Millis,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE users SET role = COALESCE($2, role), \
                     disabled = COALESCE($3, disabled), \
                     password_hash = COALESCE($4, password_hash), updated_at = $5 \
                     WHERE name = $1",
                )
                .bind(name)
                .bind(update.role.map(|r| r.as_str()))
                .bind(update.disabled)
                .bind(update.password_hash.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                if update.ends_sessions() {
                    sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err)?;
                }
                tx.commit().await.map_err(query_err)?;
                Ok(true)
            }

            async fn add_token(&self, token: &ApiToken) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, user_name, role, secret_hash, created_at, \
                     expires_at, last_used_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(token.id.as_str())
                .bind(token.user.as_str())
                .bind(token.role.as_str())
                .bind(token.secret_hash.as_str())
                .bind(token.created_at)
                .bind(token.expires_at)
                .bind(token.last_used_at)
                .bind(token.revoked_at)
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(())
            }

            async fn token(&self, id: &str) -> $crate::store::Result<Option<ApiToken>> {
                let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(query_err)?;
                row.as_ref().map(Self::token_row).transpose()
            }

            async fn tokens(&self, user: Option<&str>) -> $crate::store::Result<Vec<ApiToken>> {
                let rows = sqlx::query(
                    "SELECT * FROM api_tokens WHERE ($1 IS NULL OR user_name = $1) \
                     ORDER BY created_at, id",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err)?;
                rows.iter().map(Self::token_row).collect()
            }

            async fn token_used(&self, id: &str, now: Millis) -> $crate::store::Result<()> {
                sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(query_err)?;
                Ok(())
            }

            async fn revoke_token(&self, id: &str, now: Millis) -> $crate::store::Result<bool> {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn add_session(&self, s: &Session) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, \
                     expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(s.id_hash.as_str())
                .bind(s.user.as_str())
                .bind(s.csrf_token.as_str())
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(s.last_seen_at)
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(())
            }

            async fn session(&self, id_hash: &str) -> $crate::store::Result<Option<Session>> {
                let row = sqlx::query("SELECT * FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(query_err)?;
                row.as_ref().map(Self::session_row).transpose()
            }

            async fn session_seen(&self, id_hash: &str, now: Millis) -> $crate::store::Result<()> {
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
                    .bind(id_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(query_err)?;
                Ok(())
            }

            async fn end_session(&self, id_hash: &str) -> $crate::store::Result<bool> {
                let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(query_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn end_expired_sessions(
                &self,
                now: Millis,
                idle_ms: Millis,
            ) -> $crate::store::Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
                )
                .bind(now)
                .bind(now.saturating_sub(idle_ms))
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(done.rows_affected())
            }

            async fn login_failed(
                &self,
                keys: &[String],
                at: Millis,
                forget_before: Millis,
            ) -> $crate::store::Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM login_failures WHERE at < $1")
                    .bind(forget_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                for key in keys {
                    sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                        .bind(key.as_str())
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err)?;
                }
                tx.commit().await.map_err(query_err)?;
                Ok(())
            }

            async fn login_failures(
                &self,
                key: &str,
                since: Millis,
            ) -> $crate::store::Result<Vec<Millis>> {
                sqlx::query_scalar(
                    "SELECT at FROM login_failures WHERE key = $1 AND at >= $2 ORDER BY at",
                )
                .bind(key)
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err)
            }

            async fn clear_login_failures(&self, key: &str) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM login_failures WHERE key = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(query_err)?;
                Ok(())
            }

            async fn append_audit(
                &self,
                event: &AuditEvent,
            ) -> $crate::store::Result<AuditRecord> {
                let mut tx = self.begin_audit().await?;
                let head: Option<String> =
                    sqlx::query_scalar("SELECT value FROM meta WHERE key = 'audit_head'")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(query_err)?;
                let (seq, prev_hash) = match head {
                    Some(h) => $crate::store::access::parse_head(&h)?,
                    None => (0, $crate::audit::GENESIS.to_string()),
                };
                let mut record = AuditRecord {
                    seq: seq + 1,
                    at: event.at,
                    actor: event.actor.clone(),
                    source: event.source.clone(),
                    action: event.action.clone(),
                    target: event.target.clone(),
                    result: event.result.clone(),
                    detail: event.detail.clone(),
                    prev_hash,
                    hash: String::new(),
                };
                record.hash = $crate::audit::chain_hash(&record);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, source, action, target, result, \
                     detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(record.seq)
                .bind(record.at)
                .bind(record.actor.as_str())
                .bind(record.source.as_str())
                .bind(record.action.as_str())
                .bind(record.target.as_str())
                .bind(record.result.as_str())
                .bind(record.detail.as_str())
                .bind(record.prev_hash.as_str())
                .bind(record.hash.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ('audit_head', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(format!("{}:{}", record.seq, record.hash))
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
                tx.commit().await.map_err(query_err)?;
                Ok(record)
            }

            async fn audit(
                &self,
                q: &AuditQuery,
            ) -> $crate::store::Result<Vec<AuditRecord>> {
                let order = if q.newest_first { "DESC" } else { "ASC" };
                let sql = format!(
                    "SELECT * FROM audit_log WHERE ($1 IS NULL OR at >= $1) \
                     AND ($2 IS NULL OR seq > $2) AND ($3 IS NULL OR seq < $3) \
                     ORDER BY seq {order} LIMIT $4"
                );
                let rows = sqlx::query(&sql)
                    .bind(q.since)
                    .bind(q.after_seq)
                    .bind(q.before_seq)
                    .bind(i64::from(q.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_err)?;
                rows.iter().map(Self::audit_row).collect()
            }

            async fn audit_head(&self) -> $crate::store::Result<Option<(i64, String)>> {
                let head: Option<String> =
                    sqlx::query_scalar("SELECT value FROM meta WHERE key = 'audit_head'")
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(query_err)?;
                head.as_deref()
                    .map($crate::store::access::parse_head)
                    .transpose()
            }
        }
    };
}

pub(crate) use access_store_impl;
