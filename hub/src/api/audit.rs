//! The audit routes: a golden record's history; signed checkpoints of the
//! log's head, which an auditor lists (to keep a copy) and an admin has
//! signed now (before an export, a migration, the end of a period).

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::routes::{parse_golden_id, path_error, query_error, read_hub};
use super::ApiState;
use crate::audit::history::{history, History, HistoryError, DEFAULT_LIMIT, MAX_LIMIT};
use crate::audit::signer::CheckpointSigner;
use crate::audit::signing::SignedCheckpoint;

fn signer(state: &ApiState) -> Result<Arc<CheckpointSigner>, ApiError> {
    state.audit.clone().ok_or_else(|| {
        ApiError::NotFound(
            "this hub signs no checkpoints: set [audit] signing_key in its config (mdhub audit keygen writes a key)".into(),
        )
    })
}

/// The signed checkpoints of the log's head, oldest first.
///
/// Keep a copy: `mdhub audit verify --checkpoints FILE --public-key KEY`
/// shows with it that the log was not cut short or rewritten since. The
/// same list is in `checkpoints.jsonl` in the hub's data dir, one per line,
/// and on the JetStream stream `MDHUB_AUDIT`.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints",
    tag = "audit",
    responses(
        (status = 200, description = "Every signed checkpoint, oldest first", body = Vec<SignedCheckpoint>),
        (status = 404, description = "`not_found`: the hub has no signing key", body = ErrorBody),
    )
)]
pub async fn list_checkpoints(
    State(state): State<ApiState>,
) -> Result<Json<Vec<SignedCheckpoint>>, ApiError> {
    let signer = signer(&state)?;
    tokio::task::spawn_blocking(move || signer.all())
        .await
        .map_err(|e| ApiError::Internal(format!("reading the checkpoints: {e}")))?
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Signs a checkpoint of the log's head now.
#[utoipa::path(
    post,
    path = "/v1/admin/audit/checkpoints",
    tag = "audit",
    responses(
        (status = 200, description = "The checkpoint signed", body = SignedCheckpoint),
        (status = 404, description = "`not_found`: the hub has no signing key", body = ErrorBody),
    )
)]
pub async fn sign_checkpoint(
    State(state): State<ApiState>,
) -> Result<Json<SignedCheckpoint>, ApiError> {
    let signer = signer(&state)?;
    read_hub(&state.hub, move |hub| {
        signer
            .sign_now(hub)
            .map(Json)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Steps after this log entry (a page's `next_after_seq`).
    #[serde(default)]
    after_seq: u64,
    /// Steps per page (default 100, at most 1,000).
    limit: Option<usize>,
}

/// A golden record's history: every log entry that changed it, in log
/// order, with each changed field's value before and after, the source
/// records linked and unlinked, and who made the change (the system and
/// source record of a change event, the actor and reason of a steward
/// action). A record merged into another continues in its survivor's
/// history. Paged with `after_seq`.
#[utoipa::path(
    get,
    path = "/v1/customers/{golden_id}/history",
    tag = "audit",
    params(
        ("golden_id" = Uuid, Path, description = "Golden id (a retired one too)"),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "A page of the record's history", body = History),
        (status = 400, description = "`bad_request`: the id is not a UUID, or a bad query parameter", body = ErrorBody),
        (status = 404, description = "`not_found`: no golden record has this id", body = ErrorBody),
    )
)]
pub async fn customer_history(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    let id = parse_golden_id(&raw)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit {limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    read_hub(&state.hub, move |hub| {
        history(hub, id, query.after_seq, limit)
            .map(Json)
            .map_err(|e| match e {
                HistoryError::NotFound(_) => ApiError::NotFound(e.to_string()),
                other => ApiError::Unavailable(other.to_string()),
            })
    })
    .await
}
