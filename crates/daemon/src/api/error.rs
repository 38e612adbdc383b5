//! The API's errors, for every route under `/api/v1` (the fleet routes and the auth routes
//! alike): `{"error": {"code", "message"}}` with a stable code per status (see docs/api.md
//! "Errors").

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A failed request: its status, stable code and a message saying what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable: see [`ErrorDetail::code`].
    pub code: &'static str,
    pub message: String,
    /// Seconds until a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

/// The body of every non-2xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// unauthenticated, bad-credentials, forbidden, csrf, not-found, bad-request,
    /// confirmation-required, conflict, rate-limited, unavailable, internal.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in (POST /api/v1/session) or send an API token (Authorization: Bearer hf_…)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn csrf() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a browser session's changes need the header X-CSRF-Token with the session's token \
             (from POST /api/v1/session or GET /api/v1/me)",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after_secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many failed logins; try again in {retry_after_secs} s"),
            )
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// An unexpected state the message describes (no secret in it).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A failure of the daemon whose cause may hold what a client must not see (SQL, paths):
    /// logged with its cause, answered without it.
    pub fn fault(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "API request failed");
        ApiError::internal("the daemon could not complete the request; its log says why")
    }

    /// An error of the engine (reading a repository, pinning): classified by its kind.
    pub fn from_core(e: &holdfast::Error) -> ApiError {
        use holdfast::ErrorKind as K;
        let message = e.to_string();
        match e.kind() {
            K::NotFound => ApiError::not_found(message),
            K::Usage => ApiError::bad_request(message),
            K::Locked | K::LockTimeout => ApiError::conflict(message),
            _ if e.is_transient() => ApiError::unavailable(message),
            _ => ApiError::internal(message),
        }
    }

    /// A failure of the daemon's store: its cause is logged, never answered.
    pub fn from_store(e: &crate::store::StoreError) -> ApiError {
        if e.is_transient() {
            tracing::error!(error = %e, "API request: store unavailable");
            ApiError::unavailable("the daemon's store does not answer; try again")
        } else {
            ApiError::fault(e)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::from_store(&e)
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(format!("query string: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        ApiError::bad_request(format!("request body: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::bad_request(format!("path: {}", e.body_text()))
    }
}
