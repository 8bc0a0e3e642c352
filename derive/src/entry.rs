//! What the log holds: one payload per entry: a `ChangeEvent` from a
//! system, a steward action (merge, split, override, review decision) or a
//! trained match model or a regrouping after one, so that all of them are
//! replayed.

use mdhub_schema::{ChangeEvent, CleansedRecord};

use crate::resolve::regroup::Regrouping;
use crate::resolve::trained::TrainedModel;
use crate::steward::StewardAction;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "event", rename_all = "snake_case")]
pub enum LogPayload {
    /// A source system changed or deleted a record.
    Change(ChangeEvent),
    /// A data steward merged, split, decided or overrode.
    Steward(StewardAction),
    /// The hub trained its match model; matching uses it from here on.
    MatchModel(TrainedModel),
    /// The hub re-resolved records with the model in force: merges and
    /// splits it made.
    Regroup(Regrouping),
}

/// A payload with its serialized form, as the log stores it. Encoding is done
/// where validation runs (in parallel with the previous batch's commit), not
/// on the commit path.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub payload: LogPayload,
    pub body: Vec<u8>,
    /// The change event's fields cleansed, when the check stage did it (a
    /// pure function of the event and the rules, so deriving gives the
    /// same either way; replay cleanses as it goes).
    pub cleansed: Option<CleansedRecord>,
}

impl Encoded {
    pub fn new(payload: LogPayload) -> Self {
        let body = serde_json::to_vec(&payload).expect("log payloads serialize");
        Encoded {
            payload,
            body,
            cleansed: None,
        }
    }
}

impl LogPayload {
    /// The id the log deduplicates on.
    pub fn event_id(&self) -> Uuid {
        match self {
            LogPayload::Change(e) => e.event_id,
            LogPayload::Steward(a) => a.action_id,
            LogPayload::MatchModel(m) => m.model_id,
            LogPayload::Regroup(r) => r.regroup_id,
        }
    }
}

/// Events for tests, here and in the hub's (feature `samples`).
#[cfg(any(test, feature = "samples"))]
pub mod samples {
    use mdhub_schema::{Op, SCHEMA_VERSION};

    use super::*;

    /// A valid upsert with one email, for unit tests. The event id is derived
    /// from the arguments so that equal calls give equal events.
    pub fn sample_event(system: &str, record_id: &str, email: &str) -> ChangeEvent {
        ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("{system}/{record_id}/{email}").as_bytes(),
            ),
            system: system.to_string(),
            entity: "customer".to_string(),
            record_id: record_id.to_string(),
            op: Op::Upsert,
            fields: [(
                "email".to_string(),
                serde_json::Value::String(email.to_string()),
            )]
            .into(),
            observed_at: time::macros::datetime!(2026-01-01 00:00 UTC),
            base: None,
            caused_by: None,
        }
    }
}
