//! A golden record's history as auditors read it (`GET
//! /v1/customers/{id}/history`, `mdhub audit history`): each step that
//! derivation recorded (`state::history`), joined with its log entry, which
//! says who made the change: the system and source record of a change
//! event, the steward and reason of an action, or the hub itself (a
//! trained model's re-resolution).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::entry::LogPayload;
use crate::hub::Hub;
use crate::log::LogError;

/// Steps per page when the caller names no limit, and the most it may ask.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;

/// A page of a golden record's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub golden_id: Uuid,
    /// In log order. After a merge, the steps of the record it was merged
    /// into follow.
    pub steps: Vec<HistoryStep>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_seq: Option<u64>,
}

/// What one log entry did to one golden record, and who did it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryStep {
    pub log_seq: u64,
    /// The golden record this step changed (the survivor, after a merge).
    pub golden_id: Uuid,
    /// `change` (a source system's event), `steward` (a steward's action),
    /// `regroup` (the hub's re-resolution with a trained model).
    pub kind: &'static str,
    /// A change event's system, source record, op, event id and time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// When the source system observed the change, or the steward acted
    /// (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    /// A steward action's actor (token name), reason and command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub action: Option<Value>,
    /// Fields whose golden value changed: `{before, after}` (null: none).
    #[schema(value_type = Object)]
    pub changes: BTreeMap<String, Value>,
    /// Source records linked and unlinked by this entry.
    pub linked: Vec<SourceRef>,
    pub unlinked: Vec<SourceRef>,
    /// This entry retired the record.
    pub retired: bool,
    /// This entry merged it into that record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    /// Other golden records the same entry changed (a merge's partner, a
    /// split's new record).
    pub others: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceRef {
    pub system: String,
    pub record_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("no golden record {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Golden record `id`'s history after log entry `after_seq`, at most
/// `limit` steps.
pub fn history(hub: &Hub, id: Uuid, after_seq: u64, limit: usize) -> Result<History, HistoryError> {
    if hub.state().record(id)?.is_none() {
        return Err(HistoryError::NotFound(id));
    }
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut found = hub.state().history(id, after_seq, limit + 1)?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next_after_seq = more.then(|| found.last().map(|(_, seq, _)| *seq)).flatten();
    let mut steps = Vec::with_capacity(found.len());
    for (golden_id, seq, step) in found {
        let entry = hub.log().get(seq)?.ok_or(LogError::Damaged {
            seq,
            reason: "missing, though derived state names it".to_string(),
        })?;
        let sources = |keys: Vec<crate::golden::SourceKey>| {
            keys.into_iter()
                .map(|k| SourceRef {
                    system: k.system,
                    record_id: k.record_id,
                })
                .collect()
        };
        let mut out = HistoryStep {
            log_seq: seq,
            golden_id,
            kind: "change",
            system: None,
            record_id: None,
            op: None,
            event_id: None,
            observed_at: None,
            actor: None,
            reason: None,
            action: None,
            changes: step
                .changes
                .into_iter()
                .map(|(field, c)| {
                    let c = serde_json::json!({"before": c.before, "after": c.after});
                    (field, c)
                })
                .collect(),
            linked: sources(step.linked),
            unlinked: sources(step.unlinked),
            retired: step.retired,
            merged_into: step.merged_into,
            others: step.others,
        };
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        };
        match entry.payload {
            LogPayload::Change(e) => {
                out.system = Some(e.system);
                out.record_id = Some(e.record_id);
                out.op = serde_json::to_value(e.op)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string));
                out.event_id = Some(e.event_id);
                out.observed_at = rfc3339(e.observed_at);
            }
            LogPayload::Steward(a) => {
                out.kind = "steward";
                out.actor = Some(a.actor);
                out.reason = Some(a.reason);
                out.event_id = Some(a.action_id);
                out.observed_at = rfc3339(a.at);
                out.action = serde_json::to_value(a.command).ok();
            }
            LogPayload::Regroup(r) => {
                out.kind = "regroup";
                out.event_id = Some(r.regroup_id);
                out.observed_at = rfc3339(r.at);
            }
            LogPayload::MatchModel(_) => out.kind = "match_model",
        }
        steps.push(out);
    }
    Ok(History {
        golden_id: id,
        steps,
        next_after_seq,
    })
}
