//! The HTTP API (axum) over the hub's state.
//!
//! | Route | Role | Answer |
//! |---|---|---|
//! | `GET /healthz` | none | `{status, log_seq, published_seq, golden_records}` |
//! | `GET /metrics` | reader | Prometheus text (503 without a recorder) |
//! | `GET /v1/customers/{golden_id}[?candidates=true]` | reader | the golden record with links and conflicts |
//! | `GET /v1/customers?field=&value=[&limit=]` | reader | `{results: [{golden_id, retired, values}]}` |
//! | `GET /v1/sources/{system}/{record_id}` | reader | `{system, record_id, golden_id}` |
//! | `GET /v1/state-hash` | auditor | `{state_hash, log_seq}` |
//!
//! Every route but `/healthz` needs `Authorization: Bearer <token>`. Errors
//! are JSON `{"error":{"code","message"}}`, see [`ApiError`].

mod auth;
mod error;
mod routes;

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

pub use auth::Caller;
pub use error::ApiError;

use crate::config::{Role, TokenConfig};
use crate::hub::SharedHub;

#[derive(Clone)]
pub struct ApiState {
    pub hub: SharedHub,
    pub tokens: Arc<Vec<TokenConfig>>,
    /// `None`: no recorder installed; `/metrics` answers 503.
    pub metrics: Option<PrometheusHandle>,
}

pub fn router(state: ApiState) -> Router {
    let gate = |needs: Role| {
        from_fn_with_state(
            auth::Gate {
                tokens: Arc::clone(&state.tokens),
                needs,
            },
            auth::require,
        )
    };
    let reader = Router::new()
        .route("/metrics", get(routes::metrics))
        .route("/v1/customers", get(routes::find_customers))
        .route("/v1/customers/{golden_id}", get(routes::get_customer))
        .route("/v1/sources/{system}/{record_id}", get(routes::get_source))
        .route_layer(gate(Role::Reader));
    let auditor = Router::new()
        .route("/v1/state-hash", get(routes::state_hash))
        .route_layer(gate(Role::Auditor));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .merge(reader)
        .merge(auditor)
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .with_state(state)
}
