//! The match model over HTTP (role `admin`): train it on the records the
//! hub holds now. The trained model becomes a log entry; matching uses it
//! for every entry after it (see `resolve::trained`).

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::hub::Health;
use crate::resolve::trained::Trigger;

/// What a training answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Trained {
    pub model_id: Uuid,
    /// The log entry that holds the model.
    pub log_seq: u64,
    /// Source records it was trained on.
    pub records: u64,
    /// Candidate pairs (records sharing a block key) EM ran over.
    pub candidate_pairs: u64,
    /// The estimated prior times the records it was estimated at.
    pub matches_per_record: f64,
    /// Comparisons the model sets m and u of.
    pub comparisons: Vec<String>,
}

/// Trains the match model now and logs it.
///
/// Holds ingest while it runs (seconds: 300,000 random pairs and the
/// candidate pairs are compared). Records matched before keep their golden
/// record; the model decides the records that come or change after it.
#[utoipa::path(
    post,
    path = "/v1/admin/match/train",
    tag = "matching",
    responses(
        (status = 200, description = "Trained; the log holds the model", body = Trained),
        (status = 400, description = "`bad_request`: the hub holds fewer than two source records", body = ErrorBody),
    )
)]
pub async fn train(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Trained>, ApiError> {
    let hub = state.hub.clone();
    tokio::task::spawn_blocking(move || {
        let mut hub = hub
            .write()
            .map_err(|_| ApiError::Unavailable("the hub's state is unavailable".into()))?;
        if let Health::Degraded { seq, .. } = hub.health() {
            return Err(ApiError::Degraded { seq: *seq });
        }
        let held = hub.state().resolver().records_held();
        if held < 2 {
            return Err(ApiError::BadRequest(format!(
                "the hub holds {held} source records; training needs pairs of them"
            )));
        }
        tracing::info!(by = %caller.name, "match model training requested");
        let (model, outcome) = hub
            .train_match_model(Trigger::Requested { by: caller.name })
            .map_err(|e| ApiError::Internal(format!("logging the model: {e}")))?;
        Ok(Json(Trained {
            model_id: model.model_id,
            log_seq: outcome.last_seq,
            records: model.records,
            candidate_pairs: model.candidate_pairs,
            matches_per_record: model.matches_per_record,
            comparisons: model.comparisons.into_iter().map(|c| c.name).collect(),
        }))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("training task: {e}")))?
}
