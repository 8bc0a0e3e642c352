//! Review tasks and steward actions over HTTP (role `steward`).
//!
//! An action is checked against the current state (clear 4xx errors naming
//! the record and field), then submitted as a log event: over NATS it is
//! published on `mdhub.in.steward.<entity>` and read by the ingest loop in
//! stream order like any change; the handler waits until the log holds it.

use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::routes::{parse_golden_id, path_error, read_hub, SourceRef};
use super::ApiState;
use crate::golden::SourceKey;
use crate::hub::Inbound;
use crate::resolve::{ReviewTask, TaskStatus};
use crate::steward::{Command, StewardAction, MAX_REASON, STEWARD_SYSTEM};

/// The entity served under `/v1/customers`.
const CUSTOMER: &str = "customer";
/// How long a handler waits for its action to reach the log.
const APPLY_WAIT: Duration = Duration::from_secs(15);

/// Where steward actions go.
#[derive(Clone)]
pub enum ActionSink {
    /// Published to JetStream (`mdhub serve`); the ingest loop applies them.
    Nats(Box<async_nats::jetstream::Context>),
    /// Applied to the hub directly, for single-process runs without a bus
    /// (no system listens for updates there).
    Direct,
}

fn json_error(e: JsonRejection) -> ApiError {
    ApiError::BadRequest(format!("bad request body: {}", e.body_text()))
}

/// The hub refuses an action whose reason is blank or over [`MAX_REASON`]
/// bytes (it would go to the DLQ): say so now, with a 400.
fn need_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "\"reason\" is required: say why, for the audit trail".into(),
        ));
    }
    if reason.len() > MAX_REASON {
        return Err(ApiError::BadRequest(format!(
            "\"reason\" is {} bytes of UTF-8 ({} characters); the limit is {MAX_REASON} bytes",
            reason.len(),
            reason.chars().count()
        )));
    }
    Ok(())
}

/// Middleware of the action routes: a degraded hub consumes nothing, so
/// an action would never be applied; refuse it before anything is
/// submitted.
pub async fn refuse_when_degraded(
    State(state): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, ApiError> {
    read_hub(&state.hub, degraded_check).await?;
    Ok(next.run(req).await)
}

fn degraded_check(hub: &crate::hub::Hub) -> Result<(), ApiError> {
    match hub.health() {
        crate::hub::Health::Degraded { seq, .. } => Err(ApiError::Degraded { seq: *seq }),
        crate::hub::Health::Ok => Ok(()),
    }
}

/// What an accepted action answers.
#[derive(Serialize, ToSchema)]
pub struct ActionDone {
    pub action_id: Uuid,
    /// True once the log holds the action (its effects are visible).
    pub applied: bool,
}

async fn submit(
    state: &ApiState,
    caller: &Caller,
    reason: String,
    command: Command,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    need_reason(&reason)?;
    let action = StewardAction {
        action_id: Uuid::now_v7(),
        entity: CUSTOMER.to_string(),
        actor: caller.name.clone(),
        reason,
        at: time::OffsetDateTime::now_utc(),
        command,
    };
    let id = action.action_id;
    let subject = mdhub_schema::in_subject(STEWARD_SYSTEM, CUSTOMER);
    let payload = Bytes::from(serde_json::to_vec(&action).expect("actions serialize"));
    tracing::info!(action_id = %id, actor = %caller.name, "steward action submitted");
    match &state.actions {
        ActionSink::Nats(js) => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.to_string().as_str());
            js.publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| ApiError::Unavailable(format!("publishing the action: {e}")))?
                .await
                .map_err(|e| ApiError::Unavailable(format!("storing the action: {e}")))?;
        }
        ActionSink::Direct => {
            let hub = state.hub.clone();
            tokio::task::spawn_blocking(move || {
                let mut hub = hub
                    .write()
                    .map_err(|_| ApiError::Unavailable("the hub's state is unavailable".into()))?;
                // It may have degraded since the middleware looked.
                degraded_check(&hub)?;
                hub.ingest(&[Inbound::new(subject, payload)])
                    .map_err(|e| ApiError::Internal(format!("applying the action: {e}")))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("action task: {e}")))??;
        }
    }
    let deadline = Instant::now() + APPLY_WAIT;
    loop {
        let applied = read_hub(&state.hub, move |hub| {
            hub.log()
                .contains_event(id)
                .map_err(|e| ApiError::Internal(format!("reading the log: {e}")))
        })
        .await?;
        if applied {
            return Ok((
                StatusCode::OK,
                Json(ActionDone {
                    action_id: id,
                    applied: true,
                }),
            ));
        }
        if Instant::now() >= deadline {
            // Stored in MDHUB_IN: the hub applies it when it catches up.
            return Ok((
                StatusCode::ACCEPTED,
                Json(ActionDone {
                    action_id: id,
                    applied: false,
                }),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- reviews

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// `open` (default) or `all`.
    #[param(value_type = Option<ReviewFilter>, inline)]
    status: Option<String>,
}

/// Which review tasks to list.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only documents the values `status` accepts
pub enum ReviewFilter {
    Open,
    All,
}

#[derive(Serialize, ToSchema)]
pub struct Reviews {
    pub tasks: Vec<ReviewTaskView>,
}

/// A question for a data steward: is this source record the same customer
/// as that golden record?
#[derive(Serialize, ToSchema)]
pub struct ReviewTaskView {
    pub task_id: Uuid,
    pub source: SourceRef,
    /// The golden record the source record got (its own).
    pub golden_id: Uuid,
    /// The golden record it may belong to.
    pub candidate: Uuid,
    /// Match score in bits.
    pub score: f64,
    /// The score's explanation, one comparison each.
    pub parts: Vec<ScorePart>,
    /// The log entry that opened the task.
    pub opened_seq: u64,
    pub status: ReviewStatus,
}

#[derive(Serialize, ToSchema)]
pub struct ScorePart {
    /// The comparison, named as in `[[match.comparison]]` (e.g. `email`,
    /// `given_name`, `postal_code`).
    pub comparison: String,
    pub outcome: ScoreOutcome,
    /// Its weight in bits.
    pub weight: f64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoreOutcome {
    Agree,
    Partial,
    Disagree,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Open,
    /// Decided: the same customer (merged).
    Same,
    /// Decided: different customers (kept apart for good).
    Different,
    /// No longer a question: the two ended up in one golden record anyway.
    Resolved,
}

impl From<&ReviewTask> for ReviewTaskView {
    fn from(t: &ReviewTask) -> Self {
        use crate::resolve::score::Outcome;
        ReviewTaskView {
            task_id: t.task_id,
            source: SourceRef::from(&t.source),
            golden_id: t.golden_id,
            candidate: t.candidate,
            score: t.score,
            parts: t
                .parts
                .iter()
                .map(|p| ScorePart {
                    comparison: p.comparison.clone(),
                    outcome: match p.outcome {
                        Outcome::Agree => ScoreOutcome::Agree,
                        Outcome::Partial => ScoreOutcome::Partial,
                        Outcome::Disagree => ScoreOutcome::Disagree,
                    },
                    weight: p.weight,
                })
                .collect(),
            opened_seq: t.opened_seq,
            status: match t.status {
                TaskStatus::Open => ReviewStatus::Open,
                TaskStatus::Same => ReviewStatus::Same,
                TaskStatus::Different => ReviewStatus::Different,
                TaskStatus::Resolved => ReviewStatus::Resolved,
            },
        }
    }
}

/// Review tasks, by id.
#[utoipa::path(
    get,
    path = "/v1/reviews",
    tag = "reviews",
    params(ReviewQuery),
    responses(
        (status = 200, description = "The tasks", body = Reviews),
        (status = 400, description = "`bad_request`: an unknown `status` or query parameter", body = ErrorBody),
        (status = 503, description = "`unavailable`: the hub's state lock is poisoned", body = ErrorBody),
    )
)]
pub async fn list_reviews(
    State(state): State<ApiState>,
    query: Result<Query<ReviewQuery>, QueryRejection>,
) -> Result<Json<Reviews>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::BadRequest(format!("bad query string: {}", e.body_text())))?;
    let all = match q.status.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status {other:?}: expected \"open\" or \"all\""
            )))
        }
    };
    read_hub(&state.hub, move |hub| {
        Ok(Json(Reviews {
            tasks: hub
                .state()
                .review_tasks()
                .filter(|t| all || t.status == TaskStatus::Open)
                .map(ReviewTaskView::from)
                .collect(),
        }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// True: the same customer (the records are merged); false: different
    /// customers (kept apart for good).
    pub same: bool,
    /// Why, for the audit trail: 1 to 2,000 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Decides an open review task.
#[utoipa::path(
    post,
    path = "/v1/reviews/{task_id}/decision",
    tag = "steward actions",
    params(("task_id" = Uuid, Path, description = "Review task id")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "Applied: the log holds the action", body = ActionDone),
        (status = 202, description = "Stored in `MDHUB_IN`, not applied within 15 s", body = ActionDone),
        (status = 400, description = "`bad_request`: a bad id or body, a blank reason or one over 2,000 bytes, a task already decided", body = ErrorBody),
        (status = 404, description = "`not_found`: no such review task", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let Json(body) = body.map_err(json_error)?;
    let task_id = Uuid::try_parse(&raw)
        .map_err(|_| ApiError::BadRequest(format!("task id {raw:?} is not a UUID")))?;
    read_hub(&state.hub, move |hub| {
        match hub.state().review_task(task_id) {
            None => Err(ApiError::NotFound(format!("no review task {task_id}"))),
            Some(t) if t.status != TaskStatus::Open => Err(ApiError::BadRequest(format!(
                "review task {task_id} is already {:?}",
                t.status
            ))),
            Some(_) => Ok(()),
        }
    })
    .await?;
    submit(
        &state,
        &caller,
        body.reason,
        Command::Decide {
            task_id,
            same: body.same,
        },
    )
    .await
}

// ---------------------------------------------------------------- merge

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The two golden records that are one customer; the one created first
    /// survives.
    #[schema(value_type = Vec<Uuid>, min_items = 2, max_items = 2)]
    pub golden_ids: [String; 2],
    /// Why, for the audit trail: 1 to 2,000 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Merges two golden records into one.
#[utoipa::path(
    post,
    path = "/v1/customers/merge",
    tag = "steward actions",
    request_body = MergeBody,
    responses(
        (status = 200, description = "Applied: the log holds the action", body = ActionDone),
        (status = 202, description = "Stored in `MDHUB_IN`, not applied within 15 s", body = ActionDone),
        (status = 400, description = "`bad_request`: a bad body or id, a blank reason or one over 2,000 bytes, records already merged", body = ErrorBody),
        (status = 404, description = "`not_found`: no customer has one of the golden ids", body = ErrorBody),
    )
)]
pub async fn merge(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<MergeBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let ids = [
        parse_golden_id(&body.golden_ids[0])?,
        parse_golden_id(&body.golden_ids[1])?,
    ];
    read_hub(&state.hub, move |hub| {
        let s = hub.state();
        for id in ids {
            if s.record(id)?.is_none_or(|r| r.entity != CUSTOMER) {
                return Err(ApiError::NotFound(format!(
                    "no customer has golden id {id}"
                )));
            }
        }
        if s.survivor(ids[0]) == s.survivor(ids[1]) {
            return Err(ApiError::BadRequest(format!(
                "{} and {} are already one golden record ({})",
                ids[0],
                ids[1],
                s.survivor(ids[0])
            )));
        }
        Ok(())
    })
    .await?;
    submit(
        &state,
        &caller,
        body.reason,
        Command::Merge { golden_ids: ids },
    )
    .await
}

// ---------------------------------------------------------------- split

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, for the audit trail: 1 to 2,000 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Splits a source record from its golden record: it gets one of its own
/// and is not matched back automatically.
#[utoipa::path(
    post,
    path = "/v1/sources/{system}/{record_id}/split",
    tag = "steward actions",
    params(
        ("system" = String, Path, description = "Source system"),
        ("record_id" = String, Path, description = "The system's record id, percent-encoded"),
    ),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "Applied: the log holds the action", body = ActionDone),
        (status = 202, description = "Stored in `MDHUB_IN`, not applied within 15 s", body = ActionDone),
        (status = 400, description = "`bad_request`: a bad body, a blank reason or one over 2,000 bytes, the record is its golden record's only one", body = ErrorBody),
        (status = 404, description = "`not_found`: the source record is not linked", body = ErrorBody),
    )
)]
pub async fn split(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<ReasonBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    let Path((system, record_id)) = path.map_err(path_error)?;
    let Json(body) = body.map_err(json_error)?;
    let source = SourceKey {
        system: system.clone(),
        record_id: record_id.clone(),
    };
    read_hub(&state.hub, move |hub| {
        let s = hub.state();
        let Some(id) = s.golden_of(&source)? else {
            return Err(ApiError::NotFound(format!(
                "source record {}/{} is not linked to a golden record",
                source.system, source.record_id
            )));
        };
        if s.record(id)?.is_some_and(|r| r.links.len() < 2) {
            return Err(ApiError::BadRequest(format!(
                "source record {}/{} is the only one of golden record {id}: nothing to split from",
                source.system, source.record_id
            )));
        }
        Ok(())
    })
    .await?;
    submit(
        &state,
        &caller,
        body.reason,
        Command::Split { system, record_id },
    )
    .await
}

// ---------------------------------------------------------------- override

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// The value; `null` clears the override.
    #[schema(value_type = Object, nullable)]
    pub value: Value,
    /// Why, for the audit trail: 1 to 2,000 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// Sets a golden field's value whatever the sources say (`null` clears it).
#[utoipa::path(
    put,
    path = "/v1/customers/{golden_id}/overrides/{field}",
    tag = "steward actions",
    params(
        ("golden_id" = Uuid, Path, description = "Golden id"),
        ("field" = String, Path, description = "A customer field, e.g. `given_name`"),
    ),
    request_body = OverrideBody,
    responses(
        (status = 200, description = "Applied: the log holds the action", body = ActionDone),
        (status = 202, description = "Stored in `MDHUB_IN`, not applied within 15 s", body = ActionDone),
        (status = 400, description = "`bad_request`: a bad id or body, an unknown field, a value the field cannot hold, a blank reason or one over 2,000 bytes", body = ErrorBody),
        (status = 404, description = "`not_found`: no customer has this golden id", body = ErrorBody),
    )
)]
pub async fn override_field(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<OverrideBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ActionDone>), ApiError> {
    let Path((raw, field)) = path.map_err(path_error)?;
    let Json(body) = body.map_err(json_error)?;
    let golden_id = parse_golden_id(&raw)?;
    let (f, value) = (field.clone(), body.value.clone());
    read_hub(&state.hub, move |hub| {
        let s = hub.state();
        if s.record(golden_id)?.is_none_or(|r| r.entity != CUSTOMER) {
            return Err(ApiError::NotFound(format!(
                "no customer has golden id {golden_id}"
            )));
        }
        let def = s.rules().models[CUSTOMER]
            .field(&f)
            .ok_or_else(|| ApiError::BadRequest(format!("customers have no field {f:?}")))?;
        if !value.is_null() {
            mdhub_schema::cleanse_value(def, &value, &Default::default(), None)
                .map_err(|e| ApiError::BadRequest(format!("field {f:?}: {e}")))?;
        }
        Ok(())
    })
    .await?;
    submit(
        &state,
        &caller,
        body.reason,
        Command::Override {
            golden_id,
            field,
            value: body.value,
        },
    )
    .await
}
