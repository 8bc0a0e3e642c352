//! Handlers. Each takes the hub's read lock on a blocking thread only for as
//! long as it builds its response (never across an `.await`), so a long
//! ingest batch holding the write lock stalls no async worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::ApiState;
use crate::golden::{Candidate, GoldenRecord, SourceKey};
use crate::hub::{Hub, SharedHub};

/// The entity served under `/v1/customers`.
const CUSTOMER: &str = "customer";
/// Default and largest `limit` of a search.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// Runs `f` on a blocking thread with the hub's read lock held.
pub(super) async fn read_hub<T, F>(hub: &SharedHub, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&Hub) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let hub = Arc::clone(hub);
    tokio::task::spawn_blocking(move || {
        let guard = hub.read().map_err(|_| {
            tracing::error!(
                "the hub lock is poisoned: a writer panicked; the API answers 503 until restart"
            );
            ApiError::Unavailable(
                "the hub's state is unavailable after an internal failure; restart the hub".into(),
            )
        })?;
        f(&guard)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("API read task failed: {e}")))?
}

// ---------------------------------------------------------------- health

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    /// Last sequence number in the event log.
    pub log_seq: u64,
    /// Log sequence up to which outbound updates are acknowledged by the bus.
    pub published_seq: u64,
    pub golden_records: usize,
}

/// `GET /healthz`, no authentication.
pub async fn healthz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    read_hub(&state.hub, |hub| {
        Ok(Json(Health {
            status: "ok",
            log_seq: hub.log().last_seq(),
            published_seq: hub
                .published_seq()
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            golden_records: hub.state().golden_count(),
        }))
    })
    .await
}

// ---------------------------------------------------------------- metrics

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("metrics are not enabled in this process".into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

// ---------------------------------------------------------------- golden records

#[derive(Serialize)]
pub struct GoldenView {
    pub golden_id: Uuid,
    pub entity: String,
    pub retired: bool,
    /// Set when this record was merged into another: the id that stands for
    /// it now. Old ids keep answering, with this pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    /// Document heads, hex, sorted: what a connector sends back as `base`.
    pub version: Vec<String>,
    pub values: BTreeMap<String, Value>,
    pub links: Vec<SourceKey>,
    /// Every field with more than one candidate, with all its candidates.
    pub conflicts: BTreeMap<String, Vec<CandidateView>>,
    /// Every field's candidates; only with `?candidates=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<BTreeMap<String, Vec<CandidateView>>>,
    /// Values that failed cleansing, kept as sent, with the reason.
    pub quality_issues: Vec<QualityView>,
    /// Values a data steward set; they win over the sources.
    pub overrides: BTreeMap<String, Value>,
}

#[derive(Serialize)]
pub struct QualityView {
    pub system: String,
    pub record_id: String,
    pub field: String,
    pub value: Value,
    pub reason: String,
}

#[derive(Serialize)]
pub struct CandidateView {
    pub value: Value,
    pub system: String,
    pub event_id: Uuid,
    /// RFC 3339.
    pub observed_at: String,
}

impl From<&Candidate> for CandidateView {
    fn from(c: &Candidate) -> Self {
        CandidateView {
            value: c.value.clone(),
            system: c.system.clone(),
            event_id: c.event_id,
            observed_at: c.observed_at_rfc3339(),
        }
    }
}

fn views(cands: &[Candidate]) -> Vec<CandidateView> {
    cands.iter().map(CandidateView::from).collect()
}

impl GoldenView {
    fn of(r: &GoldenRecord, with_candidates: bool) -> Self {
        GoldenView {
            golden_id: r.id,
            entity: r.entity.clone(),
            retired: r.retired,
            merged_into: r.merged_into,
            version: r.version(),
            values: r.values.clone(),
            links: r.links.iter().cloned().collect(),
            conflicts: r.conflicts().map(|(f, c)| (f.clone(), views(c))).collect(),
            candidates: with_candidates.then(|| {
                r.candidates
                    .iter()
                    .map(|(f, c)| (f.clone(), views(c)))
                    .collect()
            }),
            quality_issues: r
                .quality
                .iter()
                .flat_map(|(source, issues)| {
                    issues.iter().map(move |i| QualityView {
                        system: source.system.clone(),
                        record_id: source.record_id.clone(),
                        field: i.field.clone(),
                        value: i.value.clone(),
                        reason: i.reason.clone(),
                    })
                })
                .collect(),
            overrides: r.overrides.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordQuery {
    #[serde(default)]
    candidates: bool,
}

/// `GET /v1/customers/{golden_id}[?candidates=true]`.
pub async fn get_customer(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RecordQuery>, QueryRejection>,
) -> Result<Json<GoldenView>, ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    let id = parse_golden_id(&raw)?;
    read_hub(&state.hub, move |hub| {
        hub.state()
            .record(id)
            .filter(|r| r.entity == CUSTOMER)
            .map(|r| Json(GoldenView::of(r, query.candidates)))
            .ok_or_else(|| ApiError::NotFound(format!("no customer has golden id {id}")))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    field: Option<String>,
    value: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
pub struct FindResults {
    pub results: Vec<Found>,
}

#[derive(Serialize)]
pub struct Found {
    pub golden_id: Uuid,
    pub retired: bool,
    pub values: BTreeMap<String, Value>,
}

/// `GET /v1/customers?field=email&value=…&limit=50`: golden records whose
/// field has this value, normalized like input, in golden id order.
pub async fn find_customers(
    State(state): State<ApiState>,
    query: Result<Query<FindQuery>, QueryRejection>,
) -> Result<Json<FindResults>, ApiError> {
    let Query(q) = query.map_err(query_error)?;
    let field = q.field.filter(|f| !f.is_empty()).ok_or_else(|| {
        ApiError::BadRequest(
            "query parameter `field` is required (e.g. ?field=email&value=…)".into(),
        )
    })?;
    let value = q
        .value
        .ok_or_else(|| ApiError::BadRequest("query parameter `value` is required".into()))?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`limit` must be a whole number from 1 to {MAX_LIMIT}, got {s:?}"
                ))
            })?,
    };
    read_hub(&state.hub, move |hub| {
        let state = hub.state();
        let ids = state
            .find_by_field(CUSTOMER, &field, &value, limit)
            .map_err(ApiError::BadRequest)?;
        let results = ids
            .into_iter()
            .filter_map(|id| state.record(id))
            .map(|r| Found {
                golden_id: r.id,
                retired: r.retired,
                values: r.values.clone(),
            })
            .collect();
        Ok(Json(FindResults { results }))
    })
    .await
}

// ---------------------------------------------------------------- sources

#[derive(Serialize)]
pub struct SourceLink {
    pub system: String,
    pub record_id: String,
    pub golden_id: Uuid,
}

/// `GET /v1/sources/{system}/{record_id}`: the golden record a source record
/// is linked to.
pub async fn get_source(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SourceLink>, ApiError> {
    let Path((system, record_id)) = path.map_err(path_error)?;
    read_hub(&state.hub, move |hub| {
        let key = SourceKey { system, record_id };
        match hub.state().golden_of(&key) {
            Some(golden_id) => Ok(Json(SourceLink {
                system: key.system,
                record_id: key.record_id,
                golden_id,
            })),
            None => Err(ApiError::NotFound(format!(
                "no golden record is linked to source record {}/{}",
                key.system, key.record_id
            ))),
        }
    })
    .await
}

// ---------------------------------------------------------------- audit

#[derive(Serialize)]
pub struct StateHash {
    pub state_hash: String,
    /// The last log sequence the hash covers.
    pub log_seq: u64,
}

/// `GET /v1/state-hash` (auditor): hash of the derived state, to compare
/// with `mdhub audit replay`.
pub async fn state_hash(State(state): State<ApiState>) -> Result<Json<StateHash>, ApiError> {
    read_hub(&state.hub, |hub| {
        Ok(Json(StateHash {
            state_hash: hub.state().state_hash(),
            log_seq: hub.state().applied_seq(),
        }))
    })
    .await
}

// ---------------------------------------------------------------- fallbacks

pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such route: {}", uri.path()))
}

pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

// ---------------------------------------------------------------- input

pub(super) fn parse_golden_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| {
        ApiError::BadRequest(format!(
            "golden id {raw:?} is not a UUID (expected e.g. 0192f3a4-5b6c-5d7e-8f90-a1b2c3d4e5f6)"
        ))
    })
}

pub(super) fn path_error(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("bad path: {}", e.body_text()))
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("bad query string: {}", e.body_text()))
}
