//! The auth module's routes: the session (log in, log out), who am I, users, tokens and the
//! audit log. Each names what it needs in [`TABLE`]; the check is [`crate::access::permits`].
//! Their bodies are the types below; the OpenAPI document ([`crate::api::ApiDoc`]) lists the
//! routes beside the fleet API's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::manage::{self, ManageError};
use super::{password, ratelimit, secret, ApiError, Auth, SessionAuth, Source, COOKIE};
use crate::access::{Action, Caller, Role, Via};
use crate::api::error::ErrorBody;
use crate::api::page::Page;
use crate::audit::{self, AuditItem, Event};
use crate::scheduler::format_utc;
use crate::store::{ApiToken, AuditQuery, Session, User};
use crate::time::{now_millis, Millis};

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone (logging in).
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// A caller whose role permits the action.
    Action(Action),
}

/// Every route of this module: method, path, what it needs.
pub const TABLE: &[(&str, &str, Need)] = &[
    ("POST", "/api/v1/session", Need::Public),
    ("DELETE", "/api/v1/session", Need::Authenticated),
    ("GET", "/api/v1/me", Need::Action(Action::Read)),
    ("GET", "/api/v1/users", Need::Action(Action::ManageUsers)),
    ("POST", "/api/v1/users", Need::Action(Action::ManageUsers)),
    (
        "PATCH",
        "/api/v1/users/{name}",
        Need::Action(Action::ManageUsers),
    ),
    ("GET", "/api/v1/tokens", Need::Action(Action::ManageTokens)),
    ("POST", "/api/v1/tokens", Need::Action(Action::ManageTokens)),
    (
        "DELETE",
        "/api/v1/tokens/{id}",
        Need::Action(Action::ManageTokens),
    ),
    ("GET", "/api/v1/audit", Need::Action(Action::ReadAudit)),
];

/// The router of this module (state applied); the daemon merges it beside the API's and puts
/// [`super::layer`] around both.
pub fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/session", post(login).delete(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}", patch(update_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/audit", get(list_audit))
        .with_state(auth)
}

/// The authenticated caller, or 401.
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authed)
            .ok_or_else(ApiError::unauthenticated)
    }
}

/// The request's source (see [`Source`]), `unknown` without the layer.
pub struct Src(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Src {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Src(parts
            .extensions
            .get::<Source>()
            .map(|s| s.0.clone())
            .unwrap_or_else(|| "unknown".into())))
    }
}

/// Checks `action` for `caller`; a refused change is audited.
async fn authorize(
    auth: &Auth,
    caller: &Caller,
    source: &str,
    action: Action,
    what: &str,
    target: &str,
) -> Result<(), ApiError> {
    if caller.may(action) {
        return Ok(());
    }
    if action.mutates() {
        let event = Event::by(caller, source, what, target)
            .result("denied")
            .detail(format!("role {} may not", caller.role));
        audit::record(auth.store.as_ref(), event).await?;
    }
    Err(ApiError::forbidden(format!(
        "your role may not {what} ({action:?})"
    )))
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("the request body is not the JSON expected: {e}"))
    })
}

/// A user (never its password hash).
#[derive(Serialize, ToSchema)]
pub struct UserItem {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserItem {
    fn from(u: &User) -> UserItem {
        UserItem {
            name: u.name.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: format_utc(u.created_at),
            updated_at: format_utc(u.updated_at),
        }
    }
}

/// An API token (never its secret).
#[derive(Serialize, ToSchema)]
pub struct TokenItem {
    /// The public part of the token's text.
    pub id: String,
    /// The user it acts for.
    pub user: String,
    /// Its role, at most its user's.
    pub role: Role,
    /// active, expired or revoked.
    pub state: String,
    pub created_at: String,
    /// Null: it never expires.
    pub expires_at: Option<String>,
    /// Null: never used.
    pub last_used_at: Option<String>,
    /// Null: not revoked.
    pub revoked_at: Option<String>,
}

impl TokenItem {
    fn new(t: &ApiToken, now: Millis) -> TokenItem {
        TokenItem {
            id: t.id.clone(),
            user: t.user.clone(),
            role: t.role,
            state: manage::token_state(t, now).to_string(),
            created_at: format_utc(t.created_at),
            expires_at: t.expires_at.map(format_utc),
            last_used_at: t.last_used_at.map(format_utc),
            revoked_at: t.revoked_at.map(format_utc),
        }
    }
}

/// A token just created: its fields and, this once, its text.
#[derive(Serialize, ToSchema)]
pub struct NewTokenBody {
    #[serde(flatten)]
    pub item: TokenItem,
    /// The token (`hf_…`) to send as `Authorization: Bearer`; shown once, never again.
    pub token: String,
}

/// A session started.
#[derive(Serialize, ToSchema)]
pub struct LoginBody {
    pub user: String,
    pub role: Role,
    /// Send it as `X-CSRF-Token` on the session's mutating requests.
    pub csrf_token: String,
}

/// The caller.
#[derive(Serialize, ToSchema)]
pub struct MeBody {
    /// The user (a token's user for a token).
    pub user: String,
    /// The caller's role (a token's own role for a token).
    pub role: Role,
    /// session or token.
    pub via: String,
    /// The session's CSRF token; only for a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub csrf_token: Option<String>,
    /// The token's id; only for a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token_id: Option<String>,
}

/// One page, the whole list (users and tokens are few).
fn all<T: ToSchema>(items: Vec<T>) -> Json<Page<T>> {
    Json(Page {
        items,
        next_cursor: None,
    })
}

/// Starts a session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    user: String,
    password: String,
}

fn cookie_header(auth: &Auth, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if auth.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// Logs in: starts a session (the cookie `holdfast_session`, HttpOnly) and answers its CSRF
/// token. Failed logins are rate-limited per user and per address.
#[utoipa::path(post, path = "/api/v1/session", operation_id = "login", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in; the cookie is set", body = LoginBody),
        (status = 400, body = ErrorBody),
        (status = 401, description = "bad-credentials", body = ErrorBody),
        (status = 429, description = "rate-limited (`Retry-After`)", body = ErrorBody)))]
async fn login(
    State(auth): State<Arc<Auth>>,
    Src(source): Src,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: LoginRequest = body(&bytes)?;
    // Kept out of the store and the audit log: no name is this long.
    if req.user.is_empty() || req.user.len() > 256 {
        return Err(ApiError::bad_request(
            "user: give a user name (at most 256 bytes)",
        ));
    }
    let now = now_millis();
    let limits = auth.settings.login_limits;
    let keys = ratelimit::keys(&req.user, &source);
    // The attempt is recorded first (as a failure until it succeeds), then the earlier ones
    // are counted: of attempts made at once, at most the limit go on to the password check.
    let attempt = auth
        .store
        .login_attempt(&keys, now, now - limits.window_ms())
        .await?;
    let mut wait = None;
    for (key, limit) in keys.iter().zip([limits.user, limits.address]) {
        let earlier: Vec<Millis> = auth
            .store
            .login_failures(key, now - limit.window_ms)
            .await?
            .into_iter()
            .filter(|(id, _)| !attempt.contains(id))
            .map(|(_, at)| at)
            .collect();
        wait = wait.max(limit.wait(&earlier, now));
    }
    let event = |result: &str, detail: &str| {
        Event::new(
            req.user.clone(),
            source.clone(),
            "session.login",
            req.user.clone(),
        )
        .result(result)
        .detail(detail)
    };
    if let Some(ms) = wait {
        // A refused attempt does not count: the lock ends when the failures leave the window.
        auth.store.forget_login_attempts(&attempt).await?;
        let secs = (ms as u64).div_ceil(1000);
        audit::record(
            auth.store.as_ref(),
            event(
                "rate-limited",
                &format!("too many failures; retry in {secs} s"),
            ),
        )
        .await?;
        return Err(ApiError::rate_limited(secs));
    }
    let user = auth.store.user(&req.user).await?;
    let (ok, why) = {
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let disabled = user.as_ref().is_some_and(|u| u.disabled);
        let password = req.password.clone();
        tokio::task::spawn_blocking(move || match stored {
            None => {
                password::verify_dummy(&password);
                (false, "unknown user")
            }
            Some(h) => match (password::verify(&password, &h), disabled) {
                (true, false) => (true, ""),
                (true, true) => (false, "user disabled"),
                (false, _) => (false, "wrong password"),
            },
        })
        .await
        .map_err(ApiError::fault)?
    };
    let Some(user) = user.filter(|_| ok) else {
        audit::record(auth.store.as_ref(), event("failed", why)).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad-credentials",
            "wrong user name or password",
        ));
    };
    auth.store.clear_login_failures(&keys[0]).await?;
    auth.store.forget_login_attempts(&attempt).await?;
    let new = secret::new_session();
    let session = Session {
        id_hash: new.id_hash,
        user: user.name.clone(),
        csrf_token: new.csrf_token.clone(),
        created_at: now,
        expires_at: now + auth.settings.session_max_ms,
        last_seen_at: now,
    };
    auth.store.add_session(&session).await?;
    audit::record(auth.store.as_ref(), event("ok", "session started")).await?;
    let mut r = Json(LoginBody {
        user: user.name,
        role: user.role,
        csrf_token: new.csrf_token,
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(&auth, &new.id, auth.settings.session_max_ms / 1000),
    );
    Ok(r)
}

/// Logs out: ends the caller's session and clears the cookie (a token caller: nothing to end).
#[utoipa::path(delete, path = "/api/v1/session", operation_id = "logout",
    responses((status = 204, description = "logged out"), (status = 401, body = ErrorBody)))]
async fn logout(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    session: Option<Extension<SessionAuth>>,
) -> Result<Response, ApiError> {
    if let Some(Extension(s)) = session {
        auth.store.end_session(&s.id_hash).await?;
        let target = caller.principal();
        audit::record(
            auth.store.as_ref(),
            Event::by(&caller, source, "session.logout", target),
        )
        .await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie_header(&auth, "", 0));
    Ok(r)
}

/// Who is calling: user, role, session or token.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "getMe",
    responses((status = 200, body = MeBody), (status = 401, body = ErrorBody)))]
async fn me(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    session: Option<Extension<SessionAuth>>,
) -> Result<Json<MeBody>, ApiError> {
    authorize(&auth, &caller, &source, Action::Read, "read", "me").await?;
    let (user, via, token_id) = match &caller.via {
        Via::Session { user } => (user.clone(), "session", None),
        Via::Token { user, id } => (user.clone(), "token", Some(id.clone())),
    };
    Ok(Json(MeBody {
        user,
        role: caller.role,
        via: via.to_string(),
        csrf_token: session.map(|Extension(s)| s.csrf_token),
        token_id,
    }))
}

/// The users, all on one page.
#[utoipa::path(get, path = "/api/v1/users", operation_id = "listUsers",
    responses((status = 200, body = Page<UserItem>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_users(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
) -> Result<Json<Page<UserItem>>, ApiError> {
    authorize(
        &auth,
        &caller,
        &source,
        Action::ManageUsers,
        "user.list",
        "",
    )
    .await?;
    let users = auth.store.users().await?;
    Ok(all(users.iter().map(UserItem::from).collect()))
}

/// A user to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    /// 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
    name: String,
    /// admin, operator or auditor.
    role: String,
    password: String,
}

/// Adds a user.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "addUser",
    request_body = UserRequest,
    responses((status = 201, body = UserItem), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the user exists", body = ErrorBody)))]
async fn add_user(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: UserRequest = body(&bytes)?;
    authorize(
        &auth,
        &caller,
        &source,
        Action::ManageUsers,
        "user.add",
        &req.name,
    )
    .await?;
    let role = manage::parse_role(&req.role)?;
    let user = manage::add_user(&auth.store, &req.name, role, req.password, now_millis()).await?;
    audit::record(
        auth.store.as_ref(),
        Event::by(&caller, source, "user.add", &user.name).detail(format!("role {role}")),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(UserItem::from(&user))).into_response())
}

/// What to change of a user: at least one of these.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChangeRequest {
    /// admin, operator or auditor.
    role: Option<String>,
    disabled: Option<bool>,
    /// A new password.
    password: Option<String>,
}

/// Changes a user's role, password or disabled flag; never leaves no enabled admin.
#[utoipa::path(patch, path = "/api/v1/users/{name}", operation_id = "updateUser",
    params(("name" = String, Path)), request_body = UserChangeRequest,
    responses((status = 200, description = "the user as it is now", body = UserItem),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "it would leave no enabled admin", body = ErrorBody)))]
async fn update_user(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<UserItem>, ApiError> {
    authorize(
        &auth,
        &caller,
        &source,
        Action::ManageUsers,
        "user.update",
        &name,
    )
    .await?;
    let req: UserChangeRequest = body(&bytes)?;
    let role = req.role.as_deref().map(manage::parse_role).transpose()?;
    let mut changed = Vec::new();
    if let Some(r) = role {
        changed.push(format!("role {r}"));
    }
    match req.disabled {
        Some(true) => changed.push("disabled".to_string()),
        Some(false) => changed.push("enabled".to_string()),
        None => {}
    }
    if req.password.is_some() {
        changed.push("password changed".to_string());
    }
    if changed.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give role, disabled or password",
        ));
    }
    let result = manage::update_user(
        &auth.store,
        &name,
        role,
        req.disabled,
        req.password,
        now_millis(),
    )
    .await;
    let event = Event::by(&caller, source, "user.update", &name).detail(changed.join(", "));
    match result {
        Ok(user) => {
            audit::record(auth.store.as_ref(), event).await?;
            Ok(Json(UserItem::from(&user)))
        }
        Err(e) => {
            if matches!(e, ManageError::Conflict(_)) {
                audit::record(auth.store.as_ref(), event.result("refused")).await?;
            }
            Err(e.into())
        }
    }
}

/// The API tokens (every user's), all on one page.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "listTokens",
    responses((status = 200, body = Page<TokenItem>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
) -> Result<Json<Page<TokenItem>>, ApiError> {
    authorize(
        &auth,
        &caller,
        &source,
        Action::ManageTokens,
        "token.list",
        "",
    )
    .await?;
    let now = now_millis();
    let tokens = auth.store.tokens(None).await?;
    Ok(all(tokens.iter().map(|t| TokenItem::new(t, now)).collect()))
}

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// The user it acts for.
    user: String,
    /// admin, operator or auditor, at most the user's (default: the user's).
    role: Option<String>,
    /// Its lifetime: `30d`, `12h`, `90m` or `never` (default 90d).
    expires_in: Option<String>,
}

/// Creates an API token; its text is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "createToken",
    request_body = TokenRequest,
    responses((status = 201, body = NewTokenBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody)))]
async fn create_token(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: TokenRequest = body(&bytes)?;
    authorize(
        &auth,
        &caller,
        &source,
        Action::ManageTokens,
        "token.create",
        &req.user,
    )
    .await?;
    let role = req.role.as_deref().map(manage::parse_role).transpose()?;
    let lifetime = manage::parse_lifetime(
        req.expires_in
            .as_deref()
            .unwrap_or(manage::DEFAULT_TOKEN_LIFETIME),
    )?;
    let now = now_millis();
    let (token, text) = manage::create_token(&auth.store, &req.user, role, lifetime, now).await?;
    audit::record(
        auth.store.as_ref(),
        Event::by(&caller, source, "token.create", &token.id).detail(format!(
            "for {} as {}, expires {}",
            token.user,
            token.role,
            token
                .expires_at
                .map(format_utc)
                .unwrap_or_else(|| "never".into())
        )),
    )
    .await?;
    let created = NewTokenBody {
        item: TokenItem::new(&token, now),
        token: text,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes an API token (revoking a revoked one is no error).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revokeToken",
    params(("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &auth,
        &caller,
        &source,
        Action::ManageTokens,
        "token.revoke",
        &id,
    )
    .await?;
    if !auth.store.revoke_token(&id, now_millis()).await? {
        return match auth.store.token(&id).await? {
            Some(_) => Ok(StatusCode::NO_CONTENT),
            None => Err(ApiError::not_found(format!("token {id} does not exist"))),
        };
    }
    audit::record(
        auth.store.as_ref(),
        Event::by(&caller, source, "token.revoke", &id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Only entries at or after this time: RFC 3339 or Unix milliseconds.
    since: Option<String>,
    /// 1 to 500, default 50.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `since`: RFC 3339 or Unix milliseconds.
fn parse_since(s: &str) -> Result<Millis, ApiError> {
    if let Ok(ms) = s.parse::<Millis>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "since={s:?} is not a time: give RFC 3339 (2026-12-01T00:00:00Z) or Unix milliseconds"
            ))
        })
}

/// The audit log, newest first; `cursor` is the `seq` to continue below.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "listAudit", params(AuditParams),
    responses((status = 200, body = Page<AuditItem>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_audit(
    State(auth): State<Arc<Auth>>,
    Authed(caller): Authed,
    Src(source): Src,
    p: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Page<AuditItem>>, ApiError> {
    authorize(&auth, &caller, &source, Action::ReadAudit, "audit.read", "").await?;
    let Query(p) = p?;
    let limit = crate::api::page::limit(p.limit)? as u32;
    let before_seq = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("cursor {c:?} is not one this API gave"))
        })?),
    };
    let since = p.since.as_deref().map(parse_since).transpose()?;
    let items = auth
        .store
        .audit(&AuditQuery {
            since,
            after_seq: None,
            before_seq,
            limit,
            newest_first: true,
        })
        .await?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(Page {
        items: items.iter().map(AuditItem::from).collect(),
        next_cursor: next,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The bodies' JSON, field by field: the console and the CLI read these names.
    #[test]
    fn bodies_keep_their_json() {
        let t = ApiToken {
            id: "0123456789ab".into(),
            user: "alice".into(),
            role: Role::Operator,
            secret_hash: "x".into(),
            created_at: 1_800_000_000_000,
            expires_at: Some(1_800_000_060_000),
            last_used_at: None,
            revoked_at: None,
        };
        let created = NewTokenBody {
            item: TokenItem::new(&t, 1_800_000_000_000),
            token: "hf_0123456789ab_s".into(),
        };
        assert_eq!(
            serde_json::to_value(created).unwrap(),
            json!({
                "id": "0123456789ab",
                "user": "alice",
                "role": "operator",
                "state": "active",
                "created_at": "2027-01-15T08:00:00Z",
                "expires_at": "2027-01-15T08:01:00Z",
                "last_used_at": null,
                "revoked_at": null,
                "token": "hf_0123456789ab_s",
            })
        );
        let u = User {
            name: "bob".into(),
            role: Role::Auditor,
            password_hash: "x".into(),
            disabled: true,
            created_at: 1_800_000_000_000,
            updated_at: 1_800_000_000_500,
        };
        assert_eq!(
            serde_json::to_value(all(vec![UserItem::from(&u)]).0).unwrap(),
            json!({"items": [{
                "name": "bob",
                "role": "auditor",
                "disabled": true,
                "created_at": "2027-01-15T08:00:00Z",
                "updated_at": "2027-01-15T08:00:00.500Z",
            }], "next_cursor": null})
        );
        // `csrf_token` only for a session, `token_id` only for a token: absent, not null.
        let me = MeBody {
            user: "alice".into(),
            role: Role::Admin,
            via: "token".into(),
            csrf_token: None,
            token_id: Some("0123456789ab".into()),
        };
        assert_eq!(
            serde_json::to_value(me).unwrap(),
            json!({"user": "alice", "role": "admin", "via": "token", "token_id": "0123456789ab"})
        );
    }
}
