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
use uuid::Uuid;

use super::auth::Caller;
use super::error::ApiError;
use super::routes::{parse_golden_id, path_error, read_hub};
use super::ApiState;
use crate::golden::SourceKey;
use crate::hub::Inbound;
use crate::resolve::{ReviewTask, TaskStatus};
use crate::steward::{Command, StewardAction, STEWARD_SYSTEM};

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

fn need_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "\"reason\" is required: say why, for the audit trail".into(),
        ));
    }
    Ok(())
}

/// What an accepted action answers.
#[derive(Serialize)]
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
    let subject = format!("mdhub.in.{STEWARD_SYSTEM}.{CUSTOMER}");
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
                hub.write()
                    .map_err(|_| ApiError::Unavailable("the hub's state is unavailable".into()))?
                    .ingest(&[Inbound::new(subject, payload)])
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// `open` (default) or `all`.
    status: Option<String>,
}

#[derive(Serialize)]
pub struct Reviews {
    pub tasks: Vec<ReviewTask>,
}

/// `GET /v1/reviews[?status=open|all]`: review tasks, by id.
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
                .cloned()
                .collect(),
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub same: bool,
    pub reason: String,
}

/// `POST /v1/reviews/{task_id}/decision` `{same, reason}`.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    pub golden_ids: [String; 2],
    pub reason: String,
}

/// `POST /v1/customers/merge` `{golden_ids: [a, b], reason}`.
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
            if s.record(id).is_none_or(|r| r.entity != CUSTOMER) {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

/// `POST /v1/sources/{system}/{record_id}/split` `{reason}`.
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
        let Some(id) = s.golden_of(&source) else {
            return Err(ApiError::NotFound(format!(
                "source record {}/{} is not linked to a golden record",
                source.system, source.record_id
            )));
        };
        if s.record(id).is_some_and(|r| r.links.len() < 2) {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// The value; `null` clears the override.
    pub value: Value,
    pub reason: String,
}

/// `PUT /v1/customers/{golden_id}/overrides/{field}` `{value, reason}`.
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
        if s.record(golden_id).is_none_or(|r| r.entity != CUSTOMER) {
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
