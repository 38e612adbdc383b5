//! Authentication of the HTTP API and the console: who is calling.
//!
//! - [`layer`]: an axum middleware that turns a request's credentials — `Authorization: Bearer
//!   hf_…` (an API token) or the cookie `holdfast_session` (a browser session) — into an
//!   [`access::Caller`](crate::access::Caller) in the request's extensions, plus its [`Source`]
//!   (the client's address) for the audit log. Missing, unknown, expired or revoked credentials,
//!   or a disabled user, leave no `Caller`: the route answers 401. A session's mutating request
//!   (POST, PUT, PATCH, DELETE) must carry `X-CSRF-Token` equal to the session's token, else 403
//!   `csrf`; bearer tokens are exempt (a browser never sends them by itself).
//! - [`routes`]: `POST/DELETE /api/v1/session`, `GET /api/v1/me`, users, tokens and the audit
//!   log (the route table is [`routes::TABLE`]).
//! - [`password`] (Argon2id), [`secret`] (tokens and session ids, SHA-256), [`ratelimit`]
//!   (failed logins per user and per address), [`manage`] (the rules shared with the CLI).
//!
//! The seam for OIDC: another way to log in creates the same [`Session`](crate::store::Session)
//! rows; nothing after the login cares how it happened.

pub mod layer;
pub mod manage;
pub mod password;
pub mod ratelimit;
pub mod routes;
pub mod secret;

use std::net::SocketAddr;
use std::sync::Arc;

pub use crate::api::ApiError;
pub use layer::{layer, SessionAuth};
pub use routes::routes;

use crate::store::AccessStore;
use crate::time::Millis;

/// The session cookie's name.
pub const COOKIE: &str = "holdfast_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How sessions and logins behave.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Mark the cookie `Secure` (served over TLS).
    pub secure_cookies: bool,
    /// A session unused this long ends.
    pub session_idle_ms: Millis,
    /// A session ends this long after the login, used or not.
    pub session_max_ms: Millis,
    pub login_limits: ratelimit::LoginLimits,
}

impl Default for Settings {
    /// Sessions: 30 minutes idle, 12 hours at most; logins: see [`ratelimit::LoginLimits`].
    fn default() -> Self {
        Settings {
            secure_cookies: false,
            session_idle_ms: 30 * 60 * 1000,
            session_max_ms: 12 * 3600 * 1000,
            login_limits: ratelimit::LoginLimits::default(),
        }
    }
}

/// What the layer and the routes share.
pub struct Auth {
    pub store: Arc<dyn AccessStore>,
    pub settings: Settings,
}

impl Auth {
    pub fn new(store: Arc<dyn AccessStore>, settings: Settings) -> Arc<Auth> {
        Arc::new(Auth { store, settings })
    }
}

/// The client's address as the listener saw it (the connect info of the daemon's listeners,
/// plain or TLS). Not taken from `X-Forwarded-For`: a proxy in front would make every client
/// one address for the rate limit, which is safe; trusting the header would not be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Where a request came from, for the audit log and the rate limit: the client's IP address,
/// or `unknown` when the server was built without connect info. Always in the extensions after
/// [`layer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source(pub String);
