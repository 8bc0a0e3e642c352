//! The HTTP API (axum) over the hub's state.
//!
//! | Route | Role | Answer |
//! |---|---|---|
//! | `GET /healthz` | none | `{status, [degraded_seq, error,] log_seq, published_seq, checkpoint_seq, started_from_seq, golden_records, match: {records_held, [model_seq,] reresolution_pending, merges_prevented}}` |
//! | `GET /v1/openapi.json` | none | this API's OpenAPI 3.1 description (also `docs/openapi.json`) |
//! | `GET /metrics` | reader | Prometheus text (503 without a recorder) |
//! | `GET /v1/customers/{golden_id}[?candidates=true][&as_of=SEQ]` | reader | the golden record with links and conflicts; with `as_of`, as it was after that log entry, with each value's provenance |
//! | `GET /v1/customers?field=&value=[&limit=]` | reader | `{results: [{golden_id, retired, values}]}` |
//! | `GET /v1/sources/{system}/{record_id}` | reader | `{system, record_id, golden_id}` |
//! | `GET /v1/state-hash` | auditor | `{state_hash, log_seq}` |
//! | `GET /v1/customers/{golden_id}/history[?after_seq=&limit=]` | auditor | `{golden_id, steps: [{log_seq, golden_id, kind, system, record_id, op, event_id, observed_at, actor, reason, action, changes: {field: {before, after}}, linked, unlinked, retired, merged_into, others}], next_after_seq}`: every log entry that changed the record, in log order; a merged record continues in its survivor's |
//! | `GET /v1/audit/checkpoints` | auditor | `[{seq, head, signed_at, public_key, signature}]`: the signed checkpoints of the log's head (404 without `[audit] signing_key`) |
//! | `GET /v1/reviews[?status=open\|all]` | steward | `{tasks: [...]}` |
//! | `POST /v1/reviews/{task_id}/decision` | steward | `{same, reason}` → `{action_id, applied}` |
//! | `POST /v1/customers/merge` | steward | `{golden_ids: [a, b], reason}` → `{action_id, applied}` |
//! | `POST /v1/sources/{system}/{record_id}/split` | steward | `{reason}` → `{action_id, applied}` |
//! | `PUT /v1/customers/{golden_id}/overrides/{field}` | steward | `{value, reason}` (null clears) → `{action_id, applied}` |
//! | `POST /v1/admin/audit/checkpoints` | admin | → `{seq, head, signed_at, public_key, signature}`: a checkpoint of the log's head signed now |
//! | `POST /v1/admin/match/train` | admin | → `{model_id, log_seq, records, candidate_pairs, matches_per_record, comparisons}`: the match model trained on the records held, logged |
//!
//! Steward actions answer 200 once the log holds them, or 202 when they are
//! stored in `MDHUB_IN` but not applied within 15 s. A `reason` is 1 to
//! [`MAX_REASON`](crate::steward::MAX_REASON) bytes (400 otherwise).
//!
//! A degraded hub (it failed to derive a log entry, see
//! [`Health`](crate::hub::Health)) keeps serving reads; `/healthz` says
//! `"status":"degraded"` with the entry and the error, still with HTTP 200,
//! because a liveness probe that restarted it would only start a restart
//! loop (the same entry fails again). Steward actions answer 503 with code
//! `degraded` before anything is submitted: the hub consumes nothing more.
//!
//! Every route but `/healthz` and `/v1/openapi.json` needs
//! `Authorization: Bearer <token>`. Errors are JSON
//! `{"error":{"code","message"}}`, see [`ApiError`].
//!
//! The router and the OpenAPI description are built from one list,
//! `registered`: each route is added with `routes!(handler)`, which takes
//! its method and path from the handler's `#[utoipa::path]`, and each group
//! gets its role gate and the matching security requirement in one call.
//! `hub/tests/openapi.rs` fails when a route bypasses that list or
//! `docs/openapi.json` is stale (`mdhub openapi > docs/openapi.json`).

mod audit;
mod auth;
mod error;
mod matching;
mod routes;
mod steward;

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Caller;
pub use error::{ApiError, ErrorBody, ErrorCode};
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
    /// Signs checkpoints of the log's head; `None` when the hub has no
    /// signing key (`[audit] signing_key`).
    pub audit: Option<Arc<crate::audit::signer::CheckpointSigner>>,
}

pub fn router(state: ApiState) -> Router {
    let (router, _) = registered(Some(&state)).split_for_parts();
    router
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .with_state(state)
}

/// The OpenAPI description of [`router`]'s routes, as pretty JSON with a
/// final newline: what `GET /v1/openapi.json` serves, `mdhub openapi`
/// prints and `docs/openapi.json` holds.
pub fn openapi_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = registered(None).into_openapi();
        doc.to_pretty_json().expect("the description serializes") + "\n"
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mdhub HTTP API",
        description = "Golden customer records, source links, review tasks and steward actions of an mdhub hub.\n\nErrors are JSON `{\"error\":{\"code\",\"message\"}}` (`ErrorBody`); clients branch on `code`. Routes with a security requirement need `Authorization: Bearer <token>`; the requirement names the role the route needs (`admin` may do everything, every role may read).\n\n`GET /healthz` answers 200 also when the hub is degraded (`status: \"degraded\"`): restarting a degraded hub would fail on the same log entry again. Steward actions answer 503 `degraded` then. While the hub starts (it derives its state from the log), every route answers 503 `unavailable` with the entries derived, the rate and the time left in the message.",
    ),
    components(schemas(ErrorBody, ErrorCode)),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness, progress, metrics and this description"),
        (name = "records", description = "Golden records and source links"),
        (name = "audit", description = "For auditors"),
        (name = "reviews", description = "Review tasks of doubtful matches"),
        (name = "steward actions", description = "Merge, split, decide, override: each becomes a log entry"),
        (name = "matching", description = "The match model: train it on the records held (a log entry)"),
    ),
)]
struct ApiDoc;

/// Name of the security scheme in the description.
const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A token from a `[[token]]` entry of the hub's config (stored as its SHA-256).",
                        ))
                        .build(),
                ),
            );
    }
}

/// Every route of the API with its OpenAPI operation. `state` is `None`
/// only to produce the description: the layers need the state, the
/// description does not.
fn registered(state: Option<&ApiState>) -> OpenApiRouter<ApiState> {
    let tokens = state.map(|s| Arc::clone(&s.tokens)).unwrap_or_default();
    let public = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::healthz))
        .routes(routes!(openapi_document));
    let reader = OpenApiRouter::new()
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::find_customers))
        .routes(routes!(routes::get_customer))
        .routes(routes!(routes::get_source));
    let steward_reads = OpenApiRouter::new().routes(routes!(steward::list_reviews));
    let steward_actions = OpenApiRouter::new()
        .routes(routes!(steward::decide))
        .routes(routes!(steward::merge))
        .routes(routes!(steward::split))
        .routes(routes!(steward::override_field));
    let auditor = OpenApiRouter::new()
        .routes(routes!(routes::state_hash))
        .routes(routes!(audit::list_checkpoints))
        .routes(routes!(audit::customer_history));
    let admin = OpenApiRouter::new().routes(routes!(matching::train));
    // Signing the head is also right while the hub is degraded: its log
    // is intact.
    let admin_audit = OpenApiRouter::new().routes(routes!(audit::sign_checkpoint));
    public
        .merge(gated(Role::Reader, &tokens, reader))
        .merge(gated(Role::Steward, &tokens, steward_reads))
        .merge(gated(
            Role::Steward,
            &tokens,
            refused_when_degraded(state, steward_actions),
        ))
        .merge(gated(Role::Auditor, &tokens, auditor))
        .merge(gated(
            Role::Admin,
            &tokens,
            refused_when_degraded(state, admin),
        ))
        .merge(gated(Role::Admin, &tokens, admin_audit))
}

/// The public contract; no token needed.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "This description (OpenAPI 3.1)", body = Object, content_type = "application/json")),
)]
async fn openapi_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// Every role, to say in the description which ones a gate lets through.
const ROLES: [Role; 4] = [Role::Reader, Role::Steward, Role::Auditor, Role::Admin];

/// Puts `routes` behind a bearer token of a role that allows `needs`, and
/// says so in their operations: the security requirement (with the role),
/// the 401 and the 403 answers.
fn gated(
    needs: Role,
    tokens: &Arc<Vec<TokenConfig>>,
    mut routes: OpenApiRouter<ApiState>,
) -> OpenApiRouter<ApiState> {
    let allowed: Vec<&str> = ROLES
        .iter()
        .filter(|r| r.allows(needs))
        .map(|r| auth::role_name(*r))
        .collect();
    let needs_name = auth::role_name(needs);
    for op in operations(routes.get_openapi_mut()) {
        op.security = Some(vec![SecurityRequirement::new(BEARER, [needs_name])]);
        let line = format!(
            "Needs a bearer token with one of the roles {}.",
            allowed.join(", ")
        );
        op.description = Some(match op.description.take() {
            Some(d) => format!("{d}\n\n{line}"),
            None => line,
        });
        add_error(
            op,
            "401",
            "`unauthenticated`: no bearer token, or an unknown one",
        );
        if allowed.len() < ROLES.len() {
            add_error(
                op,
                "403",
                &format!(
                    "`forbidden`: the token's role is not one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    routes.route_layer(from_fn_with_state(
        auth::Gate {
            tokens: Arc::clone(tokens),
            needs,
        },
        auth::require,
    ))
}

/// Answers 503 `degraded` on `routes` while the hub is degraded, and says
/// so in their operations.
fn refused_when_degraded(
    state: Option<&ApiState>,
    mut routes: OpenApiRouter<ApiState>,
) -> OpenApiRouter<ApiState> {
    for op in operations(routes.get_openapi_mut()) {
        add_error(
            op,
            "503",
            "`degraded`: the hub failed to derive a log entry (named in the message and in `/healthz`) and refuses steward actions until a fixed binary starts; nothing was submitted. `unavailable`: the bus did not store the action, or the hub's state lock is poisoned",
        );
    }
    match state {
        Some(state) => routes.route_layer(from_fn_with_state(
            state.clone(),
            steward::refuse_when_degraded,
        )),
        None => routes,
    }
}

/// Adds (or extends) an error answer of an operation.
fn add_error(op: &mut Operation, status: &str, description: &str) {
    let responses = &mut op.responses.responses;
    if let Some(RefOr::T(existing)) = responses.get_mut(status) {
        existing.description = format!("{} {description}", existing.description);
        return;
    }
    responses.insert(
        status.to_string(),
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        ),
    );
}

fn operations(doc: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    })
}
