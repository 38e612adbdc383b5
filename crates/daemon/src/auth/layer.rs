//! The authentication middleware (see the module docs of [`crate::auth`]).

use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};

use super::{secret, ApiError, Auth, ClientAddr, Source, COOKIE, CSRF_HEADER};
use crate::access::{Caller, Via};
use crate::store::StoreError;
use crate::time::{now_millis, Millis};

/// Activity is written back at most this often (a session's idle clock, a token's last use),
/// not on every request.
const TOUCH_EVERY_MS: Millis = 60_000;

/// In the extensions of a request authenticated by a session: which one, and its CSRF token
/// (for `GET /api/v1/me` and logout).
#[derive(Clone, Debug)]
pub struct SessionAuth {
    pub id_hash: String,
    pub csrf_token: String,
}

/// The middleware as a function pointer, so [`layer`]'s type can be named.
pub type AuthFn = fn(
    State<Arc<Auth>>,
    Request,
    Next,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// The layer to put around the API, the console and the auth routes:
/// `router.layer(auth::layer(auth.clone()))`. Serve the router with connect info
/// ([`ClientAddr`]) so the audit log and the rate limit see the client's address.
pub fn layer(
    auth: Arc<Auth>,
) -> axum::middleware::FromFnLayer<AuthFn, Arc<Auth>, (State<Arc<Auth>>, Request)> {
    fn boxed(
        s: State<Arc<Auth>>,
        r: Request,
        n: Next,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
        Box::pin(authenticate(s, r, n))
    }
    from_fn_with_state(auth, boxed as AuthFn)
}

fn source_of(req: &Request) -> String {
    if let Some(ConnectInfo(ClientAddr(a))) = req.extensions().get::<ConnectInfo<ClientAddr>>() {
        return a.ip().to_string();
    }
    if let Some(ConnectInfo(a)) = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>() {
        return a.ip().to_string();
    }
    "unknown".to_string()
}

async fn authenticate(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let source = source_of(&req);
    req.extensions_mut().insert(Source(source));
    let now = now_millis();
    let found = match identify(&auth, req.headers(), now).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match found {
        None => {}
        Some((caller, None)) => {
            req.extensions_mut().insert(caller);
        }
        Some((caller, Some(session))) => {
            let mutating = matches!(
                *req.method(),
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            );
            // Logging in again from a browser that still holds a session is not a change made
            // by that session.
            let login = req.method() == Method::POST && req.uri().path() == "/api/v1/session";
            if mutating && !login {
                let sent = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !secret::same(sent, &session.csrf_token) {
                    return ApiError::csrf().into_response();
                }
            }
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(session);
        }
    }
    next.run(req).await
}

/// The caller a request's credentials prove, if any (and the session it came with).
async fn identify(
    auth: &Auth,
    headers: &HeaderMap,
    now: Millis,
) -> Result<Option<(Caller, Option<SessionAuth>)>, StoreError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return Ok(match token {
            Some(t) => by_token(auth, t, now).await?.map(|c| (c, None)),
            None => None,
        });
    }
    if let Some(id) = cookie(headers, COOKIE) {
        return by_session(auth, &id, now).await;
    }
    Ok(None)
}

async fn by_token(auth: &Auth, text: &str, now: Millis) -> Result<Option<Caller>, StoreError> {
    let Some((id, secret_part)) = secret::parse_token(text) else {
        return Ok(None);
    };
    let Some(token) = auth.store.token(id).await? else {
        return Ok(None);
    };
    if !secret::same(&secret::sha256_hex(secret_part), &token.secret_hash)
        || token.revoked_at.is_some()
        || token.expires_at.is_some_and(|e| e <= now)
    {
        return Ok(None);
    }
    let Some(user) = auth.store.user(&token.user).await? else {
        return Ok(None);
    };
    if user.disabled || !super::manage::role_within(token.role, user.role) {
        return Ok(None);
    }
    if token.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        auth.store.token_used(&token.id, now).await?;
    }
    Ok(Some(Caller {
        role: token.role,
        via: Via::Token {
            id: token.id,
            user: token.user,
        },
    }))
}

async fn by_session(
    auth: &Auth,
    id: &str,
    now: Millis,
) -> Result<Option<(Caller, Option<SessionAuth>)>, StoreError> {
    let id_hash = secret::sha256_hex(id);
    let Some(session) = auth.store.session(&id_hash).await? else {
        return Ok(None);
    };
    if session.expires_at <= now || now - session.last_seen_at >= auth.settings.session_idle_ms {
        auth.store.end_session(&id_hash).await?;
        return Ok(None);
    }
    let Some(user) = auth.store.user(&session.user).await? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY_MS {
        auth.store.session_seen(&id_hash, now).await?;
    }
    Ok(Some((
        Caller {
            role: user.role,
            via: Via::Session { user: user.name },
        },
        Some(SessionAuth {
            id_hash,
            csrf_token: session.csrf_token,
        }),
    )))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; holdfast_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let mut h = HeaderMap::new();
        h.append("cookie", "x=1".parse().unwrap());
        h.append("cookie", "holdfast_session=\"q\"".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("q"));
    }
}
