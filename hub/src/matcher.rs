//! Finds the golden record a source record belongs to. This rules:
//! the source identity `(system, record_id)` first, then exact match keys
//! (fields marked `match_key` in the model, e.g. normalized email). Fuzzy
//! entity resolution replaces the second step later.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use crate::golden::SourceKey;

/// Namespace of golden ids (UUIDv5), so that ids are a function of the log.
const GOLDEN_NS: Uuid = Uuid::from_u128(0x6d64_6875_622d_676f_6c64_656e_2d69_6473);

#[derive(Default)]
pub struct Matcher {
    by_source: HashMap<SourceKey, Uuid>,
    /// (entity, field, normalized value) → golden id; first record wins.
    by_key: HashMap<(String, String, String), Uuid>,
}

impl Matcher {
    pub fn golden_of(&self, source: &SourceKey) -> Option<Uuid> {
        self.by_source.get(source).copied()
    }

    /// The golden record for an incoming record with these normalized match
    /// key values, if any exists.
    pub fn find(&self, entity: &str, source: &SourceKey, keys: &[(&str, &Value)]) -> Option<Uuid> {
        if let Some(id) = self.golden_of(source) {
            return Some(id);
        }
        keys.iter().find_map(|(field, value)| {
            let v = value.as_str()?;
            self.by_key
                .get(&(entity.to_string(), field.to_string(), v.to_string()))
                .copied()
        })
    }

    /// Id for a new golden record: from its first match key when it has one
    /// (so the same customer gets the same id in every replay, whichever
    /// system came first), else from the source identity.
    pub fn new_golden_id(entity: &str, source: &SourceKey, keys: &[(&str, &Value)]) -> Uuid {
        let name = match keys.iter().find_map(|(f, v)| v.as_str().map(|v| (f, v))) {
            Some((field, value)) => format!("{entity}/key/{field}/{value}"),
            None => format!("{entity}/source/{}/{}", source.system, source.record_id),
        };
        Uuid::new_v5(&GOLDEN_NS, name.as_bytes())
    }

    pub fn link(&mut self, source: SourceKey, golden: Uuid) {
        self.by_source.insert(source, golden);
    }

    pub fn unlink(&mut self, source: &SourceKey) -> Option<Uuid> {
        self.by_source.remove(source)
    }

    pub fn index_keys(&mut self, entity: &str, keys: &[(&str, &Value)], golden: Uuid) {
        for (field, value) in keys {
            if let Some(v) = value.as_str() {
                self.by_key
                    .entry((entity.to_string(), field.to_string(), v.to_string()))
                    .or_insert(golden);
            }
        }
    }

    pub fn links(&self) -> usize {
        self.by_source.len()
    }
}
