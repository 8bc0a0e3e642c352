//! One API record as a captured change: its id as text, its change time,
//! archived or not, and the position text the runner derives event ids
//! from.

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::Record;
use crate::contract::{Captured, Row, RowChange};

/// How a collection's records are read: which fields are the id, the
/// change time and the archive flag.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub key: String,
    pub updated: String,
    pub archive: Option<String>,
}

impl Fields {
    /// The record's id as text: a string as it is, a number in JSON's
    /// spelling. `None` for anything else (no usable id).
    pub(crate) fn id(&self, record: &Record) -> Option<String> {
        id_text(record.get(&self.key)?)
    }

    /// The record's change time as the API wrote it, if it is text.
    pub(crate) fn stamp<'r>(&self, record: &'r Record) -> Option<&'r str> {
        record.get(&self.updated)?.as_str()
    }

    /// Whether the archive flag is set (`true`).
    pub(crate) fn archived(&self, record: &Record) -> bool {
        self.archive
            .as_ref()
            .is_some_and(|f| record.get(f) == Some(&Value::Bool(true)))
    }

    /// The record as one captured change: an upsert with every field (nested
    /// objects stay JSON values), or a delete when it is archived.
    pub(crate) fn captured(&self, id: String, record: Record) -> Captured {
        let observed_at = self.stamp(&record).and_then(parse_time);
        let change = if self.archived(&record) {
            RowChange::Delete
        } else {
            RowChange::Upsert(to_row(record))
        };
        Captured {
            record_id: id,
            change,
            observed_at,
        }
    }
}

/// A JSON id as text.
pub(crate) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The record's fields as a row (the sink's images are rows too).
pub(crate) fn to_row(record: Record) -> Row {
    record.into_iter().collect()
}

/// An API change time as a time, if it is RFC 3339 (`2024-05-01T10:00:00.123Z`).
pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The position of one version of one record: its change time and id as a
/// JSON array (unambiguous whatever the id holds). The same version read
/// again, after a restart or by a full listing, gives the same text. A
/// record without a change time is told apart by a hash of its content.
pub(crate) fn version_position(stamp: Option<&str>, id: &str, record: &Record) -> String {
    let array = match stamp {
        Some(stamp) => Value::from(vec![stamp, id]),
        None => Value::from(vec![
            "content".to_string(),
            id.to_string(),
            content_hash(std::slice::from_ref(record)),
        ]),
    };
    array.to_string()
}

/// The position of a delete found by a full listing at `at`: deletes have
/// no version to name, so the time of the listing tells two deletes of the
/// same id apart.
pub(crate) fn delete_position(id: &str, at: OffsetDateTime) -> String {
    let at = at
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp_nanos().to_string());
    Value::from(vec!["deleted", id, &at]).to_string()
}

/// The position of one page of the initial load: a hash of the records it
/// holds, so the same page read again gives the same text and a page with
/// other content (a record changed in between) other text.
pub(crate) fn load_position(records: &[Record]) -> String {
    format!("[\"load\",\"{}\"]", content_hash(records))
}

/// SHA-256 of the records' JSON (serde_json's maps are sorted by key, so
/// the text is canonical), in hex.
fn content_hash(records: &[Record]) -> String {
    let mut hasher = Sha256::new();
    for record in records {
        // Writing a `Map` to a hasher cannot fail.
        if let Ok(bytes) = serde_json::to_vec(record) {
            hasher.update(&bytes);
        }
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test records are objects"),
        }
    }

    #[test]
    fn ids_positions_and_archive() {
        let fields = Fields {
            key: "id".into(),
            updated: "updatedAt".into(),
            archive: Some("archived".into()),
        };
        let r = record(json!({"id": 7, "updatedAt": "2024-05-01T10:00:00.123Z", "archived": true}));
        assert_eq!(fields.id(&r).as_deref(), Some("7"));
        let c = fields.captured("7".into(), r.clone());
        assert_eq!(c.change, RowChange::Delete);
        assert_eq!(c.observed_at.map(|t| t.millisecond()), Some(123));
        assert_eq!(
            version_position(fields.stamp(&r), "a \"b\"", &r),
            r#"["2024-05-01T10:00:00.123Z","a \"b\""]"#
        );
        let no_stamp = record(json!({"id": "x", "name": "A"}));
        let other = record(json!({"id": "x", "name": "B"}));
        assert_ne!(
            version_position(None, "x", &no_stamp),
            version_position(None, "x", &other)
        );
        assert_eq!(fields.id(&record(json!({"id": null}))), None);
        assert_ne!(
            load_position(std::slice::from_ref(&no_stamp)),
            load_position(std::slice::from_ref(&other)),
            "a page with other content has another position"
        );
    }
}
