//! Every route of `/api/v1`, once: method, path (relative to `/api/v1`), who may call it, and
//! the handler. [`super::router`] builds the router from this table; the OpenAPI document must
//! list exactly these (tested), and the route × role tests walk it.

use axum::http::Method;
use axum::routing::{delete, get, post, MethodRouter};

use super::{fleet, jobs, openapi, restores, ApiState};
use crate::access::Action;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the OpenAPI document).
    Public,
    /// A caller whose role permits the action.
    Needs(Action),
    /// A restore: [`Action::RestoreProduction`] or [`Action::RestoreNonProduction`] by the
    /// target's `production` flag (the handler decides once it knows the target; the guard
    /// refuses callers who may do neither).
    Restore,
}

/// One route.
pub struct Route {
    pub method: Method,
    /// Relative to `/api/v1`, axum's syntax (`/jobs/{id}`), which is also OpenAPI's.
    pub path: &'static str,
    pub access: Access,
    pub handler: fn() -> MethodRouter<ApiState>,
}

impl Route {
    /// The full path, as the OpenAPI document lists it.
    pub fn full_path(&self) -> String {
        format!("/api/v1{}", self.path)
    }
}

use Access::{Needs, Public};
use Action::*;

/// The table.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/servers",
        access: Needs(Read),
        handler: || get(fleet::servers),
    },
    Route {
        method: Method::GET,
        path: "/servers/{name}",
        access: Needs(Read),
        handler: || get(fleet::server),
    },
    Route {
        method: Method::GET,
        path: "/repositories",
        access: Needs(Read),
        handler: || get(fleet::repositories),
    },
    Route {
        method: Method::GET,
        path: "/backups",
        access: Needs(Read),
        handler: || get(fleet::backups),
    },
    Route {
        method: Method::GET,
        path: "/backups/{repository}/{id}",
        access: Needs(Read),
        handler: || get(fleet::backup),
    },
    Route {
        method: Method::POST,
        path: "/backups/{repository}/{id}/pin",
        access: Needs(Pin),
        handler: || post(fleet::pin),
    },
    Route {
        method: Method::DELETE,
        path: "/backups/{repository}/{id}/pin",
        access: Needs(Unpin),
        handler: || delete(fleet::unpin),
    },
    Route {
        method: Method::GET,
        path: "/archive/{server}",
        access: Needs(Read),
        handler: || get(fleet::archive),
    },
    Route {
        method: Method::GET,
        path: "/jobs",
        access: Needs(Read),
        handler: || get(jobs::list),
    },
    Route {
        method: Method::POST,
        path: "/jobs",
        access: Needs(TriggerJob),
        handler: || post(jobs::create),
    },
    Route {
        method: Method::GET,
        path: "/jobs/{id}",
        access: Needs(Read),
        handler: || get(jobs::detail),
    },
    Route {
        method: Method::GET,
        path: "/jobs/{id}/log",
        access: Needs(Read),
        handler: || get(jobs::log),
    },
    Route {
        method: Method::POST,
        path: "/jobs/{id}/cancel",
        access: Needs(CancelJob),
        handler: || post(jobs::cancel),
    },
    Route {
        method: Method::GET,
        path: "/restore-targets",
        access: Needs(Read),
        handler: || get(restores::targets),
    },
    Route {
        method: Method::POST,
        path: "/restores",
        access: Access::Restore,
        handler: || post(restores::create),
    },
    Route {
        method: Method::GET,
        path: "/drills/report",
        access: Needs(Read),
        handler: || get(fleet::drill_report),
    },
    Route {
        method: Method::GET,
        path: "/openapi.json",
        access: Public,
        handler: || get(openapi::document),
    },
];
