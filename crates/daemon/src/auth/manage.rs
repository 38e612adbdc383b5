//! Managing users and tokens, the same rules for the API routes and the CLI (`holdfast user`,
//! `holdfast token`): names, roles, password policy, a token's role within its user's, and at
//! least one enabled admin left.

use std::sync::Arc;

use crate::access::{permits, Action, Role};
use crate::store::{AccessStore, ApiToken, StoreError, User, UserUpdate};
use crate::time::Millis;

use super::password::{self, PasswordError};
use super::secret;

/// Why a change is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ManageError> for super::ApiError {
    fn from(e: ManageError) -> super::ApiError {
        match e {
            ManageError::Invalid(m) => super::ApiError::bad_request(m),
            ManageError::Password(PasswordError::Hash(m)) => super::ApiError::fault(m),
            ManageError::Password(p) => super::ApiError::bad_request(p.to_string()),
            ManageError::NotFound(m) => super::ApiError::not_found(m),
            ManageError::Conflict(m) => super::ApiError::conflict(m),
            ManageError::Store(s) => s.into(),
        }
    }
}

/// A user name: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_name(name: &str) -> Result<(), ManageError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "user name {name:?} is not valid: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

pub fn parse_role(s: &str) -> Result<Role, ManageError> {
    Role::parse(s).ok_or_else(|| {
        ManageError::Invalid(format!("role {s:?} is not one of admin, operator, auditor"))
    })
}

/// May a token of role `token` act for a user of role `user` (everything it permits, the user's
/// role permits too)?
pub fn role_within(token: Role, user: Role) -> bool {
    Action::ALL
        .into_iter()
        .all(|a| !permits(token, a) || permits(user, a))
}

/// Hashes off the async runtime (Argon2id costs tens of milliseconds of CPU).
pub async fn hash_password(password: String) -> Result<String, ManageError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ManageError::Password(PasswordError::Hash(e.to_string())))?
        .map_err(ManageError::from)
}

/// Adds a user (enabled).
pub async fn add_user(
    store: &Arc<dyn AccessStore>,
    name: &str,
    role: Role,
    password: String,
    now: Millis,
) -> Result<User, ManageError> {
    check_name(name)?;
    let password_hash = hash_password(password).await?;
    let user = User {
        name: name.to_string(),
        role,
        password_hash,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    if !store.add_user(&user).await? {
        return Err(ManageError::Conflict(format!(
            "user {name} exists already; change it with `holdfast user passwd` or PATCH \
             /api/v1/users/{name}"
        )));
    }
    Ok(user)
}

/// Changes a user; refuses to leave no enabled admin. Returns the user as it is now.
pub async fn update_user(
    store: &Arc<dyn AccessStore>,
    name: &str,
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<String>,
    now: Millis,
) -> Result<User, ManageError> {
    let Some(current) = store.user(name).await? else {
        return Err(ManageError::NotFound(format!("user {name} does not exist")));
    };
    let stays_admin =
        role.unwrap_or(current.role) == Role::Admin && !disabled.unwrap_or(current.disabled);
    if current.role == Role::Admin && !current.disabled && !stays_admin {
        let other_admins = store
            .users()
            .await?
            .iter()
            .filter(|u| u.name != name && u.role == Role::Admin && !u.disabled)
            .count();
        if other_admins == 0 {
            return Err(ManageError::Conflict(format!(
                "{name} is the last enabled admin; add another admin first"
            )));
        }
    }
    let password_hash = match password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let update = UserUpdate {
        role,
        disabled,
        password_hash,
    };
    if !store.update_user(name, &update, now).await? {
        return Err(ManageError::NotFound(format!("user {name} does not exist")));
    }
    store
        .user(name)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("user {name} does not exist")))
}

/// Parses a token lifetime: `30d`, `12h`, `90m` (`never`: no expiry).
pub fn parse_lifetime(text: &str) -> Result<Option<Millis>, ManageError> {
    if text == "never" {
        return Ok(None);
    }
    let ms = crate::config::parse_duration_ms(text).map_err(|e| {
        ManageError::Invalid(format!(
            "expiry {text:?}: {e}; give a duration such as 30d, 12h or 90m, or never"
        ))
    })?;
    if ms < 60_000 {
        return Err(ManageError::Invalid(format!(
            "expiry {text:?} is shorter than a minute"
        )));
    }
    Ok(Some(ms))
}

/// The lifetime of a token created without one.
pub const DEFAULT_TOKEN_LIFETIME: &str = "90d";

/// Creates a token for `user` (enabled) with `role` (default: the user's; at most the user's).
/// Returns the stored record and the token text, to be shown once.
pub async fn create_token(
    store: &Arc<dyn AccessStore>,
    user: &str,
    role: Option<Role>,
    lifetime_ms: Option<Millis>,
    now: Millis,
) -> Result<(ApiToken, String), ManageError> {
    let Some(u) = store.user(user).await? else {
        return Err(ManageError::NotFound(format!("user {user} does not exist")));
    };
    if u.disabled {
        return Err(ManageError::Invalid(format!(
            "user {user} is disabled; a token of theirs would not work"
        )));
    }
    let role = role.unwrap_or(u.role);
    if !role_within(role, u.role) {
        return Err(ManageError::Invalid(format!(
            "a token of {user} ({}) cannot have the role {role}: it may not do more than its user",
            u.role
        )));
    }
    let new = secret::new_token();
    let token = ApiToken {
        id: new.id,
        user: user.to_string(),
        role,
        secret_hash: new.secret_hash,
        created_at: now,
        expires_at: lifetime_ms.map(|l| now.saturating_add(l)),
        last_used_at: None,
        revoked_at: None,
    };
    store.add_token(&token).await?;
    Ok((token, new.token))
}

/// A token's state at `now`: `active`, `expired` or `revoked`.
pub fn token_state(t: &ApiToken, now: Millis) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_roles_stay_within_their_user() {
        use Role::*;
        let cases = [
            (Admin, Admin, true),
            (Operator, Admin, true),
            (Auditor, Admin, true),
            (Operator, Operator, true),
            (Auditor, Operator, false), // the audit log
            (Admin, Operator, false),
            (Operator, Auditor, false),
            (Auditor, Auditor, true),
        ];
        for (token, user, want) in cases {
            assert_eq!(role_within(token, user), want, "{token} for {user}");
        }
    }

    #[test]
    fn names_and_lifetimes() {
        for ok in ["alice", "a.b-c_d@example.com", "x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "al ice", "a/b", &"x".repeat(65), "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_lifetime("30d").unwrap(), Some(30 * 86_400_000));
        assert_eq!(parse_lifetime("never").unwrap(), None);
        assert!(parse_lifetime("30s").is_err());
        assert!(parse_lifetime("soon").is_err());
    }
}
