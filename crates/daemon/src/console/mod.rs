//! The web console: static HTML, CSS and JavaScript ES modules embedded in the binary and served
//! at `/` (the app), `/login` and `/assets/…`.
//!
//! There is no server-side rendering and no build step: the files under `crates/daemon/console/`
//! are served as they are, and the pages talk only to the HTTP API (`/api/v1/…`), so the console
//! can never do more than the caller's role allows (the server checks every request; the console
//! merely hides buttons the role cannot use).
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles, images and requests
//! from this origin only; no inline script or style, no frames), `nosniff`, `no-referrer`, and
//! cache headers: pages are `no-store` (they are tiny and must follow the binary), assets are
//! `no-cache` with an ETag, so a browser revalidates with one cheap 304 and an upgraded daemon's
//! assets are picked up at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::access::{permits, Action, Role};

/// The policy of every console answer. `img-src data:` for the favicon; SVG charts are built
/// with DOM calls, which this policy allows (only inline `<script>`/`style=` markup is refused).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One embedded file.
pub struct Asset {
    /// Its path under `/assets/` (or the page's own path for pages).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything under `/assets/`.
pub static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/api.js", JS),
    asset!("js/app.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/login.js", JS),
    asset!("js/pages/audit.js", JS),
    asset!("js/pages/backups.js", JS),
    asset!("js/pages/drills.js", JS),
    asset!("js/pages/fleet.js", JS),
    asset!("js/pages/jobs.js", JS),
    asset!("js/pages/restore.js", JS),
    asset!("js/pages/users.js", JS),
];

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
static LOGIN: Asset = asset!("login.html", "text/html; charset=utf-8");

/// The console's routes, to be merged into the daemon's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page(&INDEX) }))
        .route("/index.html", get(|| async { page(&INDEX) }))
        .route("/login", get(|| async { page(&LOGIN) }))
        .route("/assets/roles.json", get(roles))
        .route("/assets/{*path}", get(asset))
}

/// The role table as the console reads it: `{"admin": ["read", …], "operator": […], …}`, made
/// from [`permits`] so the console's hidden buttons follow the one table the server enforces.
pub fn role_table() -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for role in Role::ALL {
        let actions: Vec<serde_json::Value> = Action::ALL
            .into_iter()
            .filter(|a| permits(role, *a))
            .map(|a| serde_json::to_value(a).expect("an action serializes"))
            .collect();
        m.insert(role.as_str().to_string(), actions.into());
    }
    m.into()
}

async fn roles() -> Response {
    let mut r = axum::Json(role_table()).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    r
}

/// The headers every console answer carries.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn page(a: &'static Asset) -> Response {
    let mut r = a.body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    r
}

/// The ETag of each asset (a hash of its bytes), computed once.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })[i]
}

async fn asset(Path(path): Path<String>, req: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        let mut r = (StatusCode::NOT_FOUND, "no such console asset\n").into_response();
        security_headers(r.headers_mut());
        return r;
    };
    let a = &ASSETS[i];
    let tag = etag(i);
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = a.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        );
        r
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(tag).expect("hex etag"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    r
}

#[cfg(test)]
mod tests;
