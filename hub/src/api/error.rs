//! The API's one error type. Every failure becomes a JSON body
//! `{"error":{"code":"…","message":"…"}}` whose `code` is stable: clients
//! branch on it, the message is for people.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or one that is not configured.
    #[error("a valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthenticated,
    /// The token is valid but its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Rejected input: the message says what is wrong with it.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The hub cannot answer now (e.g. its state lock is poisoned, no
    /// metrics recorder is installed).
    #[error("{0}")]
    Unavailable(String),
    /// The hub failed to derive log entry `seq` and refuses steward actions
    /// until a fixed binary starts (reads go on).
    #[error("the hub is degraded: it could not derive log entry {seq}, so it refuses steward actions until a fixed binary starts (reads still work; see /healthz)")]
    Degraded { seq: u64 },
    /// A bug. The detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code of the error body.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthenticated => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Degraded { .. } => ErrorCode::Degraded,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) | ApiError::Degraded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The `code` of an error body. One variant per [`ApiError`] kind, so the
/// OpenAPI description lists exactly the codes the API can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no bearer token, or an unknown one.
    Unauthenticated,
    /// 403: the token's role may not do this.
    Forbidden,
    /// 404: no such record, task or route.
    NotFound,
    /// 400: the request is wrong; the message says what.
    BadRequest,
    /// 405: the route exists with other methods (see `Allow`).
    MethodNotAllowed,
    /// 503: the hub cannot answer now (metrics off, state lock poisoned,
    /// the bus refused a steward action).
    Unavailable,
    /// 503: the hub is degraded and refuses steward actions.
    Degraded,
    /// 500: a bug; the hub's log has the details.
    Internal,
}

/// Every error answer: `{"error":{"code","message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: clients branch on it.
    pub code: ErrorCode,
    /// For people; may change.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error in the HTTP API");
                "internal error; the hub's log has the details".to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthenticated) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The derived state store could not be read: the hub cannot answer now.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}
