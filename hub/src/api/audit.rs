//! Signed checkpoints of the log's head over HTTP: an auditor lists them
//! (to keep a copy), an admin has one signed now (before an export, a
//! migration, the end of a period).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ErrorBody};
use super::routes::read_hub;
use super::ApiState;
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
