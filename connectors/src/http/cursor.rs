//! The HTTP source's cursor: the last change time read and the ids already
//! read at that very time, so that records with equal change times are
//! neither skipped nor read twice, whatever the page boundaries.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::contract::{ConnectorError, Cursor};

/// Where change capture has got to. Saved by the runner as JSON.
///
/// Its size is one change time plus the ids that share it: small, unless
/// the API stamps very many records with one time (a bulk import), and
/// then only until a later change moves it on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollCursor {
    /// The change time of the last record read, as the API wrote it (sent
    /// back as `<updated_field>_gte`); `None` before any.
    pub since: Option<String>,
    /// Ids of the records read whose change time is `since`.
    pub seen: BTreeSet<String>,
    /// Counts the transactions handed out, so that `confirm` can tell which
    /// of them JetStream has acknowledged (the known-ids file may drop a
    /// deleted id only then).
    pub seq: u64,
}

impl PollCursor {
    /// The cursor from what the runner saved.
    pub fn from_value(value: Cursor) -> Result<Self, ConnectorError> {
        serde_json::from_value(value).map_err(|e| {
            ConnectorError::Fatal(format!(
                "the saved cursor is not an HTTP connector's cursor ({e}); \
                 remove it to start over from a full load"
            ))
        })
    }

    /// As the runner saves it.
    pub fn to_value(&self) -> Cursor {
        // A struct of strings and a number always serializes.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Whether the record with change time `stamp` and `id` was read
    /// already.
    pub fn has_seen(&self, stamp: &str, id: &str) -> bool {
        self.since.as_deref() == Some(stamp) && self.seen.contains(id)
    }

    /// Moves past the record with change time `stamp` and `id` (read in
    /// ascending order of change time).
    pub fn advance(&mut self, stamp: &str, id: &str) {
        if self.since.as_deref() != Some(stamp) {
            self.since = Some(stamp.to_string());
            self.seen.clear();
        }
        self.seen.insert(id.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_are_remembered_until_time_moves() {
        let mut c = PollCursor::default();
        c.advance("2024-01-01T00:00:00.000Z", "a");
        c.advance("2024-01-01T00:00:00.000Z", "b");
        assert!(c.has_seen("2024-01-01T00:00:00.000Z", "a"));
        assert!(!c.has_seen("2024-01-01T00:00:00.001Z", "a"));
        c.advance("2024-01-01T00:00:00.001Z", "a");
        assert_eq!(c.seen.len(), 1);
        let back = PollCursor::from_value(c.to_value()).expect("round trip");
        assert_eq!(back, c);
        assert!(matches!(
            PollCursor::from_value(serde_json::json!({"lsn": 1})),
            Err(ConnectorError::Fatal(_))
        ));
    }
}
