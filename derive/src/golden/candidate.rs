//! A candidate value for one golden field: what one system wrote, with where
//! and when it came from. Concurrent writes keep all their candidates; none is
//! ever lost.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Normalized value.
    #[serde(rename = "v")]
    pub value: Value,
    #[serde(rename = "s")]
    pub system: String,
    #[serde(rename = "e")]
    pub event_id: Uuid,
    /// `observed_at` of the event, nanoseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub observed_at_ns: i64,
}

impl Candidate {
    /// Compact JSON, as stored in the Automerge register of the field.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("candidates serialize")
    }

    pub fn decode(s: &str) -> Option<Candidate> {
        serde_json::from_str(s).ok()
    }

    pub fn observed_at_rfc3339(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(self.observed_at_ns as i128)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}
