//! The daemon's HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers) and `/readyz` (the job store answers and the scheduler has run), and the web console
//! (`/`, `/login`, `/assets/…`, see [`crate::console`]). The API joins these routes;
//! [`crate::auth`]'s routes and layer are added by the daemon. Served over plain HTTP or HTTPS
//! ([`crate::tls`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// What the probes read.
#[derive(Default)]
pub struct Health {
    /// The job store answered the last query.
    pub store_ok: AtomicBool,
    /// The scheduler completed at least one pass.
    pub scheduled: AtomicBool,
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Arc<Health>,
}

pub fn router(metrics: PrometheusHandle, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState { metrics, health })
        .merge(crate::console::router())
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let store = s.health.store_ok.load(Ordering::Relaxed);
    let scheduled = s.health.scheduled.load(Ordering::Relaxed);
    if store && scheduled {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: store {}, scheduler {}\n",
                ok(store),
                ok(scheduled)
            ),
        )
    }
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "not yet"
    }
}

/// The daemon's listener: plain HTTP (the caller has checked that it is allowed there) or
/// HTTPS.
pub enum Listening {
    Plain(tokio::net::TcpListener),
    Tls(crate::tls::TlsListener),
}

/// Serves `router` on `listener` until `stop`, with each request's client address
/// ([`crate::auth::ClientAddr`]) in its connect info.
pub async fn serve(
    listener: Listening,
    router: Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use crate::auth::ClientAddr;
    let shutdown = async move { stop.cancelled().await };
    match listener {
        Listening::Plain(l) => {
            axum::serve(
                l,
                router.into_make_service_with_connect_info::<ClientAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        Listening::Tls(l) => {
            axum::serve(
                l,
                router.into_make_service_with_connect_info::<ClientAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    }
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
