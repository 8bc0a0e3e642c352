//! Data stewards' actions. Each is an event in the log, like a source
//! system's change, so that replay and a hot standby derive the same state.
//! They reach the log the way change events do: published on
//! `mdhub.in.steward.<entity>` (the API does this for the steward), read in
//! stream order, validated here, appended, derived by `state`.
//!
//! Only the hub (its API) should be allowed to publish on
//! `mdhub.in.steward.>`: restrict it with NATS permissions (deploy/nats/).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use mdhub_schema::Rejection;

/// The reserved system name of steward actions' subjects.
pub const STEWARD_SYSTEM: &str = "steward";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StewardAction {
    /// Unique id (UUIDv7); the log deduplicates on it.
    pub action_id: Uuid,
    pub entity: String,
    /// Who did it: the API token's name.
    pub actor: String,
    /// Why, in the steward's words. Required.
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// The two golden records are one customer. The one created first
    /// survives; the other answers with "merged into".
    Merge { golden_ids: [Uuid; 2] },
    /// This source record is not the customer of its golden record: it gets
    /// a golden record of its own and is not matched back automatically.
    Split { system: String, record_id: String },
    /// Decides a review task: the same customer (merge) or different ones
    /// (kept apart for good).
    Decide { task_id: Uuid, same: bool },
    /// Sets a golden field's value whatever the sources say; `null` clears
    /// the override and the sources' survivor applies again.
    Override {
        golden_id: Uuid,
        field: String,
        value: Value,
    },
}

/// The longest reason an action may give, in bytes of UTF-8. The API checks
/// it too, so that a steward gets a 400 rather than an action in the DLQ.
pub const MAX_REASON: usize = 2_000;

/// Parses a steward action from a bus message, or says why not.
pub fn parse(
    payload: &[u8],
    entity_known: impl Fn(&str) -> bool,
) -> Result<StewardAction, Rejection> {
    let reject = |code: &'static str, message: String| Rejection {
        code,
        message,
        system: Some(STEWARD_SYSTEM.to_string()),
        event_id: None,
        record_id: None,
        field: None,
    };
    let action: StewardAction = serde_json::from_slice(payload)
        .map_err(|e| reject("malformed_action", format!("steward action: {e}")))?;
    let with_id = |mut r: Rejection| {
        r.event_id = Some(action.action_id);
        r
    };
    if !entity_known(&action.entity) {
        return Err(with_id(reject(
            "unknown_entity",
            format!(
                "steward action {}: unknown entity {:?}",
                action.action_id, action.entity
            ),
        )));
    }
    if action.reason.trim().is_empty() || action.reason.len() > MAX_REASON {
        return Err(with_id(reject(
            "missing_reason",
            format!(
                "steward action {}: a reason of 1 to {MAX_REASON} bytes is required",
                action.action_id
            ),
        )));
    }
    Ok(action)
}
