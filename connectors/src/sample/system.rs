//! The sample system of `mdhub demo`: a table of rows kept in memory, with
//! the change capture and write-back a real connector does, and nothing
//! else. It shows the connector contract (docs/specs/connector.md) at its
//! smallest: an edit becomes a change event; an applied golden update is
//! captured again, carrying the update's version as `base` and its id as
//! `caused_by` (the echo the hub must recognise and not bounce back).

use std::collections::BTreeMap;

use mdhub_schema::{ChangeEvent, GoldenUpdate, Op, SCHEMA_VERSION};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A record's columns, by canonical field name (the sample system needs no
/// mapping).
pub type Row = BTreeMap<String, Value>;

pub struct SampleSystem {
    name: String,
    rows: BTreeMap<String, Row>,
    /// For each row, the golden version it last applied.
    versions: BTreeMap<String, Vec<String>>,
}

impl SampleSystem {
    pub fn new(name: &str) -> Self {
        SampleSystem {
            name: name.to_string(),
            rows: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rows by record id.
    pub fn rows(&self) -> &BTreeMap<String, Row> {
        &self.rows
    }

    /// A user edits a row; the change is captured as an event carrying the
    /// fields set.
    pub fn edit(
        &mut self,
        record_id: &str,
        fields: &[(&str, &str)],
        at: OffsetDateTime,
    ) -> ChangeEvent {
        let row = self.rows.entry(record_id.to_string()).or_default();
        let mut changed = BTreeMap::new();
        for (k, v) in fields {
            row.insert(k.to_string(), Value::String(v.to_string()));
            changed.insert(k.to_string(), Value::String(v.to_string()));
        }
        self.event(record_id, changed, at, None)
    }

    /// Applies a golden update to its row and returns what change capture
    /// then sees: the echo. An update for no record of this system (a
    /// `receive_all` system without a copy) is not applied here.
    pub fn apply(&mut self, update: &GoldenUpdate, at: OffsetDateTime) -> Option<ChangeEvent> {
        let record_id = update.record_id.clone()?;
        let row = self.rows.entry(record_id.clone()).or_default();
        for (k, v) in &update.fields {
            row.insert(k.clone(), v.clone());
        }
        self.versions
            .insert(record_id.clone(), update.version.clone());
        Some(self.event(
            &record_id,
            update.fields.clone(),
            at,
            Some(update.update_id),
        ))
    }

    fn event(
        &self,
        record_id: &str,
        fields: BTreeMap<String, Value>,
        at: OffsetDateTime,
        caused_by: Option<Uuid>,
    ) -> ChangeEvent {
        ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            system: self.name.clone(),
            entity: "customer".to_string(),
            record_id: record_id.to_string(),
            op: Op::Upsert,
            fields,
            observed_at: at,
            base: self.versions.get(record_id).cloned(),
            caused_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use mdhub_schema::UpdateOp;
    use serde_json::json;

    use super::*;

    #[test]
    fn an_applied_update_comes_back_as_an_echo_with_its_version_as_base() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let mut crm = SampleSystem::new("crm");
        let edit = crm.edit("c/1", &[("city", "Berlin")], at);
        assert_eq!(edit.base, None);
        assert_eq!(edit.fields["city"], json!("Berlin"));
        let update = GoldenUpdate {
            schema_version: SCHEMA_VERSION,
            update_id: Uuid::now_v7(),
            golden_id: Uuid::now_v7(),
            system: "crm".into(),
            entity: "customer".into(),
            record_id: Some("c/1".into()),
            op: UpdateOp::Upsert,
            fields: [("phone".to_string(), json!("+49301234567"))].into(),
            version: vec!["ab".repeat(32)],
            log_seq: 7,
            caused_by: edit.event_id,
        };
        let echo = crm.apply(&update, at).expect("a row of this system");
        assert_eq!(echo.caused_by, Some(update.update_id));
        assert_eq!(echo.base.as_ref(), Some(&update.version));
        assert_eq!(crm.rows()["c/1"]["phone"], json!("+49301234567"));
        assert_eq!(crm.rows()["c/1"]["city"], json!("Berlin"));
        let next = crm.edit("c/1", &[("city", "Potsdam")], at);
        assert_eq!(
            next.base.as_ref(),
            Some(&update.version),
            "later edits saw the update"
        );
        let without_record = GoldenUpdate {
            record_id: None,
            ..update
        };
        assert!(crm.apply(&without_record, at).is_none());
    }
}
