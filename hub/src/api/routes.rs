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
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::entry::LogPayload;
use crate::golden::{Candidate, GoldenRecord, SourceKey};
use crate::hub::{Health as HubHealth, Hub, SharedHub};
use crate::state::FindError;
use crate::steward;

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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Deriving and consuming.
    Ok,
    /// Stopped at `degraded_seq`: serves reads, refuses steward actions,
    /// consumes nothing more until a fixed binary starts.
    Degraded,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// The log entry the hub could not derive; only when degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_seq: Option<u64>,
    /// Why, for operators; only when degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Last sequence number in the event log.
    pub log_seq: u64,
    /// Log sequence up to which outbound updates are acknowledged by the bus.
    pub published_seq: u64,
    /// The log entry of the last checkpoint of the derived state: a start
    /// derives only the entries after it (0: none yet).
    pub checkpoint_seq: u64,
    /// The checkpoint this run started from (0: it derived the whole log).
    pub started_from_seq: u64,
    pub golden_records: usize,
    /// Where matching stands.
    #[serde(rename = "match")]
    pub matching: MatchHealth,
}

/// Matching's progress: the model in force and re-resolution.
#[derive(Serialize, ToSchema)]
pub struct MatchHealth {
    /// Source records the matcher holds.
    pub records_held: u64,
    /// The log entry of the trained model in force; absent before the
    /// first training (the configured weights decide).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_seq: Option<u64>,
    /// Records waiting to be decided again with the model in force; 0 when
    /// resolution is settled.
    pub reresolution_pending: u64,
    /// Merges the chaining rule refused since the log's start: a record
    /// scored a link with another golden record too, but too few of that
    /// record's members supported it to merge the two (a review task opens
    /// instead).
    pub merges_prevented: u64,
}

/// Liveness and progress; no token needed.
///
/// A degraded hub answers 200 too, with `status: "degraded"`: restarting
/// it would derive the same entry, fail again, and loop. Alert on
/// `status` (or the `mdhub_degraded` gauge), not on the HTTP status.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The hub is up, degraded or not (see `status`)", body = Health),
        (status = 503, description = "`unavailable`: the hub's state lock is poisoned; restart the hub", body = ErrorBody),
    )
)]
pub async fn healthz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    read_hub(&state.hub, |hub| {
        let (status, degraded_seq, error) = match hub.health() {
            HubHealth::Ok => (HealthStatus::Ok, None, None),
            HubHealth::Degraded { seq, error } => {
                (HealthStatus::Degraded, Some(*seq), Some(error.clone()))
            }
        };
        Ok(Json(Health {
            status,
            degraded_seq,
            error,
            log_seq: hub.log().last_seq(),
            published_seq: hub
                .published_seq()
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            checkpoint_seq: hub.checkpoint_seq(),
            started_from_seq: hub.started_from_seq(),
            golden_records: hub.state().golden_count(),
            matching: {
                let resolver = hub.state().resolver();
                MatchHealth {
                    records_held: resolver.records_held(),
                    model_seq: resolver.model().map(|m| m.seq),
                    reresolution_pending: resolver.reresolution().map_or(0, |p| p.records),
                    merges_prevented: resolver.merges_prevented(),
                }
            },
        }))
    })
    .await
}

// ---------------------------------------------------------------- metrics

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 503, description = "`unavailable`: metrics are not enabled in this process", body = ErrorBody),
    )
)]
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

/// A record in a source system.
#[derive(Serialize, ToSchema)]
pub struct SourceRef {
    pub system: String,
    pub record_id: String,
}

impl From<&SourceKey> for SourceRef {
    fn from(k: &SourceKey) -> Self {
        SourceRef {
            system: k.system.clone(),
            record_id: k.record_id.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GoldenView {
    pub golden_id: Uuid,
    pub entity: String,
    pub retired: bool,
    /// Set when this record was merged into another: the id that stands for
    /// it now. Old ids keep answering, with this pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    /// Document heads, hex, sorted: what a connector sends back as `base`.
    /// Not with `as_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Vec<String>>,
    /// Golden value of each field.
    #[schema(value_type = BTreeMap<String, Object>)]
    pub values: BTreeMap<String, Value>,
    /// The source records of this customer.
    pub links: Vec<SourceRef>,
    /// Every field with more than one candidate, with all its candidates.
    pub conflicts: BTreeMap<String, Vec<CandidateView>>,
    /// Every field's candidates; only with `?candidates=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<BTreeMap<String, Vec<CandidateView>>>,
    /// Values that failed cleansing, kept as sent, with the reason. Not
    /// with `as_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_issues: Option<Vec<QualityView>>,
    /// Values a data steward set; they win over the sources. Not with
    /// `as_of` (the provenance of an overridden value names the steward's
    /// entry and the rule `override`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub overrides: Option<BTreeMap<String, Value>>,
    /// With `as_of`: the log entry the record is shown as of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<u64>,
    /// With `as_of`: for each golden value, the log entry that set it and
    /// the rule that chose it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<BTreeMap<String, Provenance>>,
}

/// Where a golden value came from.
#[derive(Serialize, ToSchema)]
pub struct Provenance {
    /// The log entry that set the value.
    pub log_seq: u64,
    /// The system and source record of that entry (a change event), or
    /// the steward (a steward action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// `override` (a steward set it), or the field's survivorship rule
    /// among its candidates (`source_priority`, `most_recent`,
    /// `most_complete`).
    pub rule: String,
}

#[derive(Serialize, ToSchema)]
pub struct QualityView {
    pub system: String,
    pub record_id: String,
    pub field: String,
    /// As sent.
    #[schema(value_type = Object)]
    pub value: Value,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct CandidateView {
    #[schema(value_type = Object)]
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
            version: Some(r.version()),
            values: r.values.clone(),
            links: r.links.iter().map(SourceRef::from).collect(),
            conflicts: r.conflicts().map(|(f, c)| (f.clone(), views(c))).collect(),
            candidates: with_candidates.then(|| {
                r.candidates
                    .iter()
                    .map(|(f, c)| (f.clone(), views(c)))
                    .collect()
            }),
            quality_issues: Some(
                r.quality
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
            ),
            overrides: Some(r.overrides.clone()),
            as_of: None,
            provenance: None,
        }
    }

    /// Record `id` as it was after log entry `seq` (`state::history`).
    fn as_of(
        hub: &Hub,
        id: Uuid,
        entity: &str,
        seq: u64,
        with_candidates: bool,
    ) -> Result<Option<Self>, ApiError> {
        let Some(then) = hub.state().as_of(id, seq)? else {
            return Ok(None);
        };
        let mut provenance = BTreeMap::new();
        // Most values were set by a few entries (the one that created the
        // record, a merge): each is read from the log once.
        let mut entries: BTreeMap<u64, Option<LogPayload>> = BTreeMap::new();
        for set_at in then.set_by.values() {
            if !entries.contains_key(set_at) {
                let entry = hub
                    .log()
                    .get(*set_at)
                    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
                entries.insert(*set_at, entry.map(|e| e.payload));
            }
        }
        for (field, set_at) in &then.set_by {
            let mut p = Provenance {
                log_seq: *set_at,
                system: None,
                record_id: None,
                actor: None,
                rule: hub.state().rule_of(entity, field).unwrap_or_default(),
            };
            match &entries[set_at] {
                Some(LogPayload::Change(e)) => {
                    p.system = Some(e.system.clone());
                    p.record_id = Some(e.record_id.clone());
                }
                Some(LogPayload::Steward(a)) => {
                    if let steward::Command::Override { field: f, .. } = &a.command {
                        if f == field {
                            p.rule = "override".to_string();
                        }
                    }
                    p.actor = Some(a.actor.clone());
                }
                _ => {}
            }
            provenance.insert(field.clone(), p);
        }
        Ok(Some(GoldenView {
            golden_id: id,
            entity: entity.to_string(),
            retired: then.retired,
            merged_into: then.merged_into,
            version: None,
            values: then.values.clone(),
            links: then.links.iter().map(SourceRef::from).collect(),
            conflicts: then
                .candidates
                .iter()
                .filter(|(_, c)| crate::golden::is_conflict(c))
                .map(|(f, c)| (f.clone(), views(c)))
                .collect(),
            candidates: with_candidates.then(|| {
                then.candidates
                    .iter()
                    .map(|(f, c)| (f.clone(), views(c)))
                    .collect()
            }),
            quality_issues: None,
            overrides: None,
            as_of: Some(seq),
            provenance: Some(provenance),
        }))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Add every field's candidates (`candidates`), not only conflicts.
    #[serde(default)]
    candidates: bool,
    /// Show the record as it was after this log entry (from its history),
    /// with each value's provenance.
    as_of: Option<u64>,
}

/// A golden customer record with its links, conflicts and quality issues.
///
/// A record retired by a merge still answers, with `merged_into`.
#[utoipa::path(
    get,
    path = "/v1/customers/{golden_id}",
    tag = "records",
    params(
        ("golden_id" = Uuid, Path, description = "Golden id"),
        RecordQuery,
    ),
    responses(
        (status = 200, description = "The golden record", body = GoldenView),
        (status = 400, description = "`bad_request`: the id is not a UUID, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no customer has this golden id", body = ErrorBody),
        (status = 503, description = "`unavailable`: the hub's state lock is poisoned", body = ErrorBody),
    )
)]
pub async fn get_customer(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RecordQuery>, QueryRejection>,
) -> Result<Json<GoldenView>, ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    let id = parse_golden_id(&raw)?;
    read_hub(&state.hub, move |hub| {
        let not_found = || ApiError::NotFound(format!("no customer has golden id {id}"));
        let record = hub
            .state()
            .record(id)?
            .filter(|r| r.entity == CUSTOMER)
            .ok_or_else(not_found)?;
        match query.as_of {
            None => Ok(Json(GoldenView::of(&record, query.candidates))),
            Some(seq) => GoldenView::as_of(hub, id, &record.entity, seq, query.candidates)?
                .map(Json)
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "customer {id} did not exist yet after log entry {seq}"
                    ))
                }),
        }
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindQuery {
    /// A customer field, e.g. `email`.
    #[param(value_type = String)]
    field: Option<String>,
    /// The value, normalized like input before the lookup.
    #[param(value_type = String)]
    value: Option<String>,
    /// At most this many results (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FindResults {
    pub results: Vec<Found>,
}

#[derive(Serialize, ToSchema)]
pub struct Found {
    pub golden_id: Uuid,
    pub retired: bool,
    #[schema(value_type = BTreeMap<String, Object>)]
    pub values: BTreeMap<String, Value>,
}

/// Golden records whose field has this value, in golden id order.
#[utoipa::path(
    get,
    path = "/v1/customers",
    tag = "records",
    params(FindQuery),
    responses(
        (status = 200, description = "The matching golden records (maybe none)", body = FindResults),
        (status = 400, description = "`bad_request`: a missing or unknown parameter, an unknown field, a value the field cannot hold, a limit out of range", body = ErrorBody),
        (status = 503, description = "`unavailable`: the hub's state lock is poisoned", body = ErrorBody),
    )
)]
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
            .map_err(|e| match e {
                FindError::Invalid(message) => ApiError::BadRequest(message),
                FindError::Store(e) => e.into(),
            })?;
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = state.record(id)? {
                results.push(Found {
                    golden_id: r.id,
                    retired: r.retired,
                    values: r.values.clone(),
                });
            }
        }
        Ok(Json(FindResults { results }))
    })
    .await
}

// ---------------------------------------------------------------- sources

#[derive(Serialize, ToSchema)]
pub struct SourceLink {
    pub system: String,
    pub record_id: String,
    pub golden_id: Uuid,
}

/// The golden record a source record is linked to.
#[utoipa::path(
    get,
    path = "/v1/sources/{system}/{record_id}",
    tag = "records",
    params(
        ("system" = String, Path, description = "Source system, as configured"),
        ("record_id" = String, Path, description = "The system's record id, percent-encoded (`E%2F77` for `E/77`)"),
    ),
    responses(
        (status = 200, description = "The link", body = SourceLink),
        (status = 404, description = "`not_found`: no golden record is linked to this source record", body = ErrorBody),
        (status = 503, description = "`unavailable`: the hub's state lock is poisoned", body = ErrorBody),
    )
)]
pub async fn get_source(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SourceLink>, ApiError> {
    let Path((system, record_id)) = path.map_err(path_error)?;
    read_hub(&state.hub, move |hub| {
        let key = SourceKey { system, record_id };
        match hub.state().golden_of(&key)? {
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

#[derive(Serialize, ToSchema)]
pub struct StateHash {
    pub state_hash: String,
    /// The last log sequence the hash covers.
    pub log_seq: u64,
}

/// Hash of the derived state, to compare with `mdhub audit replay`.
#[utoipa::path(
    get,
    path = "/v1/state-hash",
    tag = "audit",
    responses(
        (status = 200, description = "The state hash and the log entry it covers", body = StateHash),
        (status = 503, description = "`unavailable`: the hub's state lock is poisoned", body = ErrorBody),
    )
)]
pub async fn state_hash(State(state): State<ApiState>) -> Result<Json<StateHash>, ApiError> {
    read_hub(&state.hub, |hub| {
        Ok(Json(StateHash {
            state_hash: hub.state().state_hash()?,
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

pub(super) fn query_error(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("bad query string: {}", e.body_text()))
}
