//! The history of each golden record: for every log entry that changed
//! it, its golden values before and after, the source records linked to it
//! and unlinked from it, whether the entry retired it and into which record
//! it was merged, and the other golden records the same entry changed (a
//! merge's partner, a split's new record).
//!
//! Written at the end of each entry into a table of derived state keyed by
//! golden id and log sequence, so that a record's history is one prefix
//! read. Like all derived state it is a function of the log. Who made a
//! change (system and source record, or steward and reason) is in the log
//! entry itself, which a reader joins by sequence.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::golden::{Candidate, GoldenRecord, SourceKey};
use crate::store::{StoreError, Table};

/// The name of the table.
pub const TABLE: &str = "golden_history";

/// What one log entry did to one golden record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Step {
    /// Fields whose golden value changed: before and after (null: none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, FieldChange>,
    /// Source records linked to the golden record by this entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<SourceKey>,
    /// Source records no longer linked to it after this entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlinked: Vec<SourceKey>,
    /// This entry retired it (no source record is linked any more).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// This entry merged it into that golden record, which continues its
    /// history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    /// The other golden records this entry changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<Uuid>,
    /// Fields whose candidates changed: all of them after this entry
    /// (empty: none left).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub candidates: BTreeMap<String, Vec<Candidate>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A golden record as it was before the current entry changed it.
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub values: BTreeMap<String, Value>,
    pub links: BTreeSet<SourceKey>,
    pub retired: bool,
    pub merged_into: Option<Uuid>,
    pub candidates: BTreeMap<String, Vec<Candidate>>,
}

impl Before {
    pub fn of(record: &GoldenRecord) -> Before {
        Before {
            values: record.values.clone(),
            links: record.links.clone(),
            retired: record.retired,
            merged_into: record.merged_into,
            candidates: record.candidates.clone(),
        }
    }
}

/// What the entry did to `after`, which was `before` (for a record the
/// entry created: `Before::default()`).
pub fn step(before: &Before, after: &GoldenRecord, others: Vec<Uuid>) -> Step {
    let mut changes = BTreeMap::new();
    for (field, old) in &before.values {
        if after.values.get(field) != Some(old) {
            changes.insert(
                field.clone(),
                FieldChange {
                    before: Some(old.clone()),
                    after: after.values.get(field).cloned(),
                },
            );
        }
    }
    for (field, new) in &after.values {
        if !before.values.contains_key(field) {
            changes.insert(
                field.clone(),
                FieldChange {
                    before: None,
                    after: Some(new.clone()),
                },
            );
        }
    }
    let mut candidates = BTreeMap::new();
    for (field, now) in &after.candidates {
        if before.candidates.get(field) != Some(now) {
            candidates.insert(field.clone(), now.clone());
        }
    }
    for field in before.candidates.keys() {
        if !after.candidates.contains_key(field) {
            candidates.insert(field.clone(), Vec::new());
        }
    }
    Step {
        changes,
        candidates,
        linked: after.links.difference(&before.links).cloned().collect(),
        unlinked: before.links.difference(&after.links).cloned().collect(),
        retired: after.retired && !before.retired,
        merged_into: after.merged_into.filter(|_| before.merged_into.is_none()),
        others,
    }
}

/// A golden record as it was after some log entry, from its steps up to
/// that entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AsOf {
    pub values: BTreeMap<String, Value>,
    /// The entry that set each value.
    pub set_by: BTreeMap<String, u64>,
    pub links: BTreeSet<SourceKey>,
    pub retired: bool,
    pub merged_into: Option<Uuid>,
    /// Every field's candidates.
    pub candidates: BTreeMap<String, Vec<Candidate>>,
    /// The last step taken: the record's newest change up to then.
    pub last_seq: u64,
}

impl AsOf {
    /// Takes one more step, that of entry `seq`.
    pub fn apply(&mut self, seq: u64, step: &Step) {
        for (field, change) in &step.changes {
            match &change.after {
                Some(v) => {
                    self.values.insert(field.clone(), v.clone());
                    self.set_by.insert(field.clone(), seq);
                }
                None => {
                    self.values.remove(field);
                    self.set_by.remove(field);
                }
            }
        }
        for source in &step.linked {
            self.links.insert(source.clone());
        }
        for source in &step.unlinked {
            self.links.remove(source);
        }
        self.retired |= step.retired;
        if step.merged_into.is_some() {
            self.merged_into = step.merged_into;
        }
        for (field, now) in &step.candidates {
            if now.is_empty() {
                self.candidates.remove(field);
            } else {
                self.candidates.insert(field.clone(), now.clone());
            }
        }
        self.last_seq = seq;
    }
}

/// The key of record `id`'s step at log entry `seq`.
pub fn key(id: Uuid, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub fn encode(step: &Step) -> Vec<u8> {
    serde_json::to_vec(step).expect("a history step serializes")
}

/// Record `id`'s steps after log entry `after_seq`, in log order, at most
/// `limit`.
pub fn read(
    table: &dyn Table,
    id: Uuid,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<(u64, Step)>, StoreError> {
    let mut out = Vec::new();
    for key in table.keys_with_prefix(id.as_bytes()) {
        if out.len() >= limit {
            break;
        }
        let key = key?;
        let seq = key
            .get(16..24)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::new("reading a golden record's history", "a short key"))?;
        if seq <= after_seq {
            continue;
        }
        let bytes = table.get(&key)?.ok_or_else(|| {
            StoreError::new(
                "reading a golden record's history",
                format!("step {seq} vanished"),
            )
        })?;
        let step = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::new(format!("decoding the history of {id} at entry {seq}"), e)
        })?;
        out.push((seq, step));
    }
    Ok(out)
}
