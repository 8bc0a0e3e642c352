//! The ids known to exist in the collection, which a full listing is
//! compared with to find deletes (an API lists what is there, not what was
//! deleted).
//!
//! They are kept in memory and, when `known_ids_file` is set, in that file
//! between runs (one JSON array; 100,000 ids of 20 bytes are about 2.5 MB,
//! rewritten when the set has changed and the runner confirms a cursor).
//! An id whose delete was captured stays in the file until JetStream has
//! acknowledged that delete: a crash before then finds the record missing
//! again and captures the delete again, instead of forgetting it. A new id
//! may be written early: after a crash the poll reads it again anyway.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::known_ids_location;
use crate::checkpoint::CheckpointStore;
use crate::contract::ConnectorError;

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownIdsFile {
    ids: BTreeSet<String>,
}

/// The set of known ids and its file.
#[derive(Debug)]
pub(crate) struct KnownIds {
    ids: HashSet<String>,
    /// Ids whose delete was handed out in the transaction numbered `.0`,
    /// not yet acknowledged.
    pending_removals: Vec<(u64, String)>,
    /// Whether `ids` can be compared with a listing: false after a restart
    /// without a file, until the first listing sets them.
    baseline: bool,
    dirty: bool,
    file: Option<(CheckpointStore, String)>,
}

impl KnownIds {
    /// For a source that starts with a full load (`resume` false: the file,
    /// if any, is stale and the load fills the set) or resumes from a cursor
    /// (the file's ids, if there is a file).
    pub(crate) fn open(file: Option<&Path>, resume: bool) -> Result<Self, ConnectorError> {
        let file = match file {
            None => None,
            Some(path) => {
                let (dir, name) = known_ids_location(path).map_err(|reason| {
                    ConnectorError::Fatal(format!("http.known_ids_file: {reason}"))
                })?;
                let store = CheckpointStore::open(dir)
                    .map_err(|e| ConnectorError::Fatal(format!("http.known_ids_file: {e}")))?;
                Some((store, name))
            }
        };
        let saved = match (&file, resume) {
            (Some((store, name)), true) => store
                .load::<KnownIdsFile>(name)
                .map_err(|e| ConnectorError::Fatal(format!("http.known_ids_file: {e}")))?,
            _ => None,
        };
        Ok(KnownIds {
            baseline: saved.is_some() || !resume,
            ids: saved
                .map(|f| f.ids.into_iter().collect())
                .unwrap_or_default(),
            pending_removals: Vec::new(),
            dirty: !resume,
            file,
        })
    }

    pub(crate) fn has_baseline(&self) -> bool {
        self.baseline
    }

    /// The ids a listing found, as the set to compare the next one with.
    pub(crate) fn set_baseline(&mut self, ids: HashSet<String>) {
        self.ids = ids;
        self.baseline = true;
        self.dirty = true;
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Ids known and not in `listed`.
    pub(crate) fn missing_from(&self, listed: &HashSet<String>) -> Vec<String> {
        let mut missing: Vec<String> = self.ids.difference(listed).cloned().collect();
        // In id order, so that the deletes of one listing come in a stable order.
        missing.sort();
        missing
    }

    pub(crate) fn insert(&mut self, id: &str) {
        if !self.ids.contains(id) {
            self.ids.insert(id.to_string());
            self.dirty = true;
        }
    }

    /// The record's delete was handed out in transaction `seq`.
    pub(crate) fn remove(&mut self, id: &str, seq: u64) {
        if self.ids.remove(id) {
            self.pending_removals.push((seq, id.to_string()));
            self.dirty = true;
        }
    }

    /// Transactions up to `seq` are acknowledged: their deletes are final;
    /// the file is rewritten if the set changed.
    pub(crate) fn confirm(&mut self, seq: u64) -> Result<(), ConnectorError> {
        self.pending_removals.retain(|(s, _)| *s > seq);
        if !self.dirty || !self.baseline {
            return Ok(());
        }
        let Some((store, name)) = &self.file else {
            return Ok(());
        };
        let mut ids: BTreeSet<String> = self.ids.iter().cloned().collect();
        ids.extend(self.pending_removals.iter().map(|(_, id)| id.clone()));
        store
            .save(name, &KnownIdsFile { ids })
            .map_err(|e| ConnectorError::Unavailable(format!("http.known_ids_file: {e}")))?;
        // Still dirty while some removals wait: they are in the file.
        self.dirty = !self.pending_removals.is_empty();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_stays_in_the_file_until_acknowledged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("known.json");
        let mut known = KnownIds::open(Some(&path), false).expect("open");
        known.insert("a");
        known.insert("b/ü");
        known.confirm(1).expect("save");
        known.remove("a", 2);
        known.confirm(1).expect("save");
        let reopened = KnownIds::open(Some(&path), true).expect("reopen");
        assert!(reopened.contains("a"), "the unacknowledged delete is kept");
        known.confirm(2).expect("save");
        let reopened = KnownIds::open(Some(&path), true).expect("reopen");
        assert!(!reopened.contains("a") && reopened.contains("b/ü"));
        assert!(reopened.has_baseline());
        let fresh = KnownIds::open(Some(&path), false).expect("load start");
        assert!(!fresh.contains("b/ü"), "a full load starts empty");
        let no_file = KnownIds::open(None, true).expect("no file");
        assert!(!no_file.has_baseline());
    }
}
