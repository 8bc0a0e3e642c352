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
//! | `GET /v1/reviews[?status=open\|all]` | steward | `{tasks: [...]}` |
//! | `POST /v1/reviews/{task_id}/decision` | steward | `{same, reason}` → `{action_id, applied}` |
//! | `POST /v1/customers/merge` | steward | `{golden_ids: [a, b], reason}` → `{action_id, applied}` |
//! | `POST /v1/sources/{system}/{record_id}/split` | steward | `{reason}` → `{action_id, applied}` |
//! | `PUT /v1/customers/{golden_id}/overrides/{field}` | steward | `{value, reason}` (null clears) → `{action_id, applied}` |
//!
//! Steward actions answer 200 once the log holds them, or 202 when they are
//! stored in `MDHUB_IN` but not applied within 15 s.
//!
//! Every route but `/healthz` needs `Authorization: Bearer <token>`. Errors
//! are JSON `{"error":{"code","message"}}`, see [`ApiError`].

mod auth;
mod error;
mod routes;
mod steward;

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

pub use auth::Caller;
pub use error::ApiError;
pub use steward::ActionSink;

use crate::config::{Role, TokenConfig};
use crate::hub::SharedHub;

#[derive(Clone)]
pub struct ApiState {
    pub hub: SharedHub,
    pub tokens: Arc<Vec<TokenConfig>>,
    /// `None`: no recorder installed; `/metrics` answers 503.
    pub metrics: Option<PrometheusHandle>,
    /// Where steward actions go.
    pub actions: ActionSink,
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
    let steward = Router::new()
        .route("/v1/reviews", get(steward::list_reviews))
        .route("/v1/reviews/{task_id}/decision", post(steward::decide))
        .route("/v1/customers/merge", post(steward::merge))
        .route(
            "/v1/sources/{system}/{record_id}/split",
            post(steward::split),
        )
        .route(
            "/v1/customers/{golden_id}/overrides/{field}",
            put(steward::override_field),
        )
        .route_layer(gate(Role::Steward));
    let auditor = Router::new()
        .route("/v1/state-hash", get(routes::state_hash))
        .route_layer(gate(Role::Auditor));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .merge(reader)
        .merge(steward)
        .merge(auditor)
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .with_state(state)
}
