//! Wire types. Every message on the bus is one of these, as JSON, versioned by
//! `schema_version`. Events are named for what happened (past tense) and are
//! never changed after they are written to the log.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The version this build writes. Readers accept every version listed in
/// `validate::SUPPORTED_VERSIONS` and upcast older ones.
pub const SCHEMA_VERSION: u32 = 1;

/// Canonical field name → value. Values are JSON scalars (string, number,
/// bool) or null (the system cleared the field).
pub type Fields = BTreeMap<String, serde_json::Value>;

/// A source system changed (or deleted) one record. Published by connectors
/// on `mdhub.in.<system>.<entity>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEvent {
    /// Wire format version; 1 today.
    pub schema_version: u32,
    /// Unique id of this change, UUIDv7 chosen by the publisher. A second
    /// copy of the same id is ignored by the hub, however late it comes.
    pub event_id: Uuid,
    /// Name of the source system, as configured in the hub (e.g. `crm`).
    pub system: String,
    /// Entity type, e.g. `customer`.
    pub entity: String,
    /// The record's primary key in the source system.
    pub record_id: String,
    /// What happened to the record.
    pub op: Op,
    /// Canonical field name → new value. Only the fields that changed, or a
    /// full image; absent fields are left as they are. Empty for deletes.
    #[serde(default)]
    pub fields: Fields,
    /// When the system made the change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub observed_at: OffsetDateTime,
    /// The golden version (heads, hex change hashes) last applied in this
    /// system for this record: the change was made on top of that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Vec<String>>,
    /// The golden update (its `update_id`) whose application caused this
    /// change, when the connector knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Delete,
}

/// What the hub tells one system to change in one of its records. Published
/// on `mdhub.out.<system>.<entity>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenUpdate {
    pub schema_version: u32,
    /// Deterministic id (UUIDv5 of golden id, system and log sequence): a
    /// re-sent update after a restart carries the same id.
    pub update_id: Uuid,
    pub golden_id: Uuid,
    pub system: String,
    pub entity: String,
    /// The system's own record id when it has one linked; `None` for a system
    /// that receives all golden records but holds no copy of this one yet.
    pub record_id: Option<String>,
    pub op: UpdateOp,
    /// Only the canonical fields whose golden value this system does not hold.
    pub fields: Fields,
    /// Golden version after the change: send it back as `base`.
    pub version: Vec<String>,
    /// The log entry that caused the update.
    pub log_seq: u64,
    /// The event id of that log entry.
    pub caused_by: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOp {
    Upsert,
    /// The golden record has no source left; it is kept but retired.
    Retire,
}

/// A golden record changed. Published on `mdhub.golden.<entity>` for any
/// consumer (search index, warehouse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenChange {
    pub schema_version: u32,
    pub golden_id: Uuid,
    pub entity: String,
    /// Golden values that changed (null: cleared).
    pub fields: Fields,
    pub retired: bool,
    /// Set when this golden record was merged into another: the id that
    /// now stands for it (old ids keep answering in the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    pub version: Vec<String>,
    pub log_seq: u64,
    pub caused_by: Uuid,
}

/// Why an input was refused. Travels in DLQ message headers beside the
/// original bytes, and in logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable machine-readable code, e.g. `malformed_json`, `wrong_type`.
    pub code: &'static str,
    /// Human-readable reason naming the event, record and field.
    pub message: String,
    pub system: Option<String>,
    pub event_id: Option<Uuid>,
    pub record_id: Option<String>,
    pub field: Option<String>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The JSON Schema of `ChangeEvent`, as published in `docs/change-event.schema.json`.
pub fn change_event_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ChangeEvent)).expect("schema serializes")
}
