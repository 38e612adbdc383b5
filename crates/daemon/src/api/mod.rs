//! The HTTP API, `/api/v1` (docs/api.md): the fleet (servers, repositories, backups, the
//! archive, drills), jobs, pins and restores, and its OpenAPI document.
//!
//! - [`routes`]: the one table of every route (method, path, [`Access`], handler); the router
//!   is built from it, the OpenAPI test and the route × role tests iterate it.
//! - One guard in front of every handler ([`guard`]): no [`Caller`] in the request's
//!   extensions (the authentication layer puts it there) → 401 `unauthenticated`; the role
//!   lacks the route's action → 403 `forbidden`. Mutating requests are reported to the
//!   [`AuditSink`] with their outcome.
//! - Handlers read the [`Fleet`](crate::fleet::Fleet) the daemon's refresh keeps (a page view
//!   never lists a repository), the job store, and the config.

pub mod error;
pub mod fleet;
pub mod jobs;
pub mod openapi;
pub mod page;
pub mod restores;
pub mod routes;
pub mod types;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::access::{Action, Caller, Via};
use crate::config::Config;
use crate::daemon::Shared;
use crate::store::AccessStore;
pub use error::ApiError;
pub use routes::{Access, Route, ROUTES};

/// What the handlers share: the daemon's state and where mutations are reported.
#[derive(Clone)]
pub struct ApiState {
    pub shared: Arc<Shared>,
    pub audit: Arc<dyn AuditSink>,
}

impl ApiState {
    pub fn new(shared: Arc<Shared>, audit: Arc<dyn AuditSink>) -> ApiState {
        ApiState { shared, audit }
    }

    pub fn config(&self) -> Arc<Config> {
        self.shared.config.borrow().clone()
    }
}

/// One mutating request, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// [`Caller::principal`], or `anonymous`.
    pub actor: String,
    /// The client's address ([`Source`](crate::auth::Source)).
    pub address: String,
    /// How the caller authenticated: `session`, `token` or `none`.
    pub via: &'static str,
    pub action: Action,
    /// What was acted on: `job 12 (backup of db1)`, `backup main/2026…`, or the request path.
    pub target: String,
    /// `ok`, or `denied (403 Forbidden)` / `failed (409 Conflict)`.
    pub result: String,
}

/// Where mutating requests are reported. Called once per request, after the handler, for
/// allowed and refused requests alike; must not fail the request (errors are its own to log).
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    async fn record(&self, event: AuditEvent);
}

/// Appends API requests to the daemon's hash-chained audit log (the default sink).
pub struct StoreAudit(pub Arc<dyn AccessStore>);

#[async_trait::async_trait]
impl AuditSink for StoreAudit {
    async fn record(&self, e: AuditEvent) {
        let event = crate::audit::Event::new(e.actor, e.address, audit_action(e.action), e.target)
            .result(e.result)
            .detail(format!("via {}", e.via));
        crate::audit::record_or_log(&self.0, event).await;
    }
}

/// The audit log's dotted name of what an API request did.
pub fn audit_action(action: Action) -> &'static str {
    match action {
        Action::Read => "api.read",
        Action::ReadAudit => "audit.read",
        Action::TriggerJob => "job.create",
        Action::CancelJob => "job.cancel",
        Action::Pin => "backup.pin",
        Action::Unpin => "backup.unpin",
        Action::RestoreNonProduction | Action::RestoreProduction => "restore.start",
        Action::ManageUsers => "user.manage",
        Action::ManageTokens => "token.manage",
        Action::ManageKeys => "key.manage",
    }
}

/// Set by a handler on its response: what the request acted on, for the audit log.
#[derive(Clone, Debug)]
pub struct AuditTarget(pub String);

/// The `/api/v1` router (to be nested there), built from [`ROUTES`].
pub fn router(state: ApiState) -> Router {
    let mut router: Router<ApiState> = Router::new();
    for r in ROUTES {
        let method_router = (r.handler)().route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), r.access),
            guard,
        ));
        router = router.route(r.path, method_router);
    }
    router
        .fallback(|| async {
            ApiError::not_found("no such API route; GET /api/v1/openapi.json lists them")
        })
        .with_state(state)
}

/// The check in front of every handler (see the module docs).
pub async fn guard(
    State((state, access)): State<(ApiState, Access)>,
    req: Request,
    next: Next,
) -> Response {
    let action = match access {
        Access::Public => return next.run(req).await,
        Access::Needs(a) => a,
        // The handler decides by the target; the guard checks the caller may restore at all.
        Access::Restore => Action::RestoreNonProduction,
    };
    let caller = req.extensions().get::<Caller>().cloned();
    let address = req
        .extensions()
        .get::<crate::auth::Source>()
        .map_or_else(|| "unknown".to_string(), |s| s.0.clone());
    // The path as the client sent it (`/api/v1/…`), not as the nested router sees it.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path(), |u| u.0.path())
        .to_string();
    let allowed = match &caller {
        None => Err(ApiError::unauthenticated()),
        Some(c) => {
            let may = match access {
                Access::Restore => {
                    c.may(Action::RestoreNonProduction) || c.may(Action::RestoreProduction)
                }
                _ => c.may(action),
            };
            if may {
                Ok(())
            } else {
                Err(ApiError::forbidden(format!(
                    "the {} role may not {}",
                    c.role,
                    describe(action)
                )))
            }
        }
    };
    let response = match allowed {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    if action.mutates() {
        let target = response
            .extensions()
            .get::<AuditTarget>()
            .map(|t| t.0.clone())
            .unwrap_or(path);
        let action = response
            .extensions()
            .get::<Action>()
            .copied()
            .unwrap_or(action);
        state
            .audit
            .record(AuditEvent {
                actor: caller
                    .as_ref()
                    .map_or_else(|| "anonymous".to_string(), Caller::principal),
                address,
                via: match caller.as_ref().map(|c| &c.via) {
                    Some(Via::Session { .. }) => "session",
                    Some(Via::Token { .. }) => "token",
                    None => "none",
                },
                action,
                target,
                result: outcome(&response),
            })
            .await;
    }
    response
}

fn outcome(response: &Response) -> String {
    let status = response.status();
    if status.is_success() {
        "ok".into()
    } else if status.as_u16() == 401 || status.as_u16() == 403 {
        format!("denied ({status})")
    } else {
        format!("failed ({status})")
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Read => "read the fleet",
        Action::ReadAudit => "read the audit log",
        Action::TriggerJob => "start jobs",
        Action::CancelJob => "cancel jobs",
        Action::Pin => "pin backups",
        Action::Unpin => "unpin backups",
        Action::RestoreNonProduction => "restore into non-production targets",
        Action::RestoreProduction => "restore into production targets",
        Action::ManageUsers => "manage users",
        Action::ManageTokens => "manage API tokens",
        Action::ManageKeys => "manage repository keys",
    }
}

/// The caller a handler behind the guard runs for (always present there).
pub fn caller(req_caller: Option<axum::Extension<Caller>>) -> Result<Caller, ApiError> {
    req_caller
        .map(|axum::Extension(c)| c)
        .ok_or_else(ApiError::unauthenticated)
}

/// Adds the audit target (and the action actually performed) to a response.
pub fn audited(mut response: Response, target: String, action: Option<Action>) -> Response {
    response.extensions_mut().insert(AuditTarget(target));
    if let Some(a) = action {
        response.extensions_mut().insert(a);
    }
    response
}
