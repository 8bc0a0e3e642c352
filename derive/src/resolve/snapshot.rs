//! The matcher's state in a checkpoint: what the resolver holds in memory
//! beside its tables (term counts, merges, steward decisions, review
//! tasks, the model in force and counters), as one postcard value. The
//! state per source record is in tables written as it changes and read on
//! demand (`tables.rs`), and the match index's blocks in a table of their
//! own, flushed to it before (`MatchIndex::flush`).
//!
//! The rules in force are not in it either: they are the configured rules
//! with the trained model of the log entry `model.seq`, which the caller
//! reads from the log and hands to `restore`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::index::MatchIndex;
use super::regroup::Pending;
use super::rules::MatchRules;
use super::score::Terms;
use super::tables::SourceTables;
use super::trained::TrainedModel;
use super::{ModelInForce, Resolver, ReviewTask};
use crate::store::{Storage, StoreError};

/// Written from borrowed parts, read back as `Owned`: the same fields in
/// the same order (postcard has no field names).
#[derive(Serialize)]
struct Borrowed<'a> {
    numbered: u64,
    terms: &'a Terms,
    merged_into: &'a BTreeMap<Uuid, Uuid>,
    distinct: &'a BTreeSet<(Uuid, Uuid)>,
    tasks: &'a BTreeMap<Uuid, ReviewTask>,
    model: &'a Option<ModelInForce>,
    last_trained: u64,
    merges_prevented: u64,
    blocks_capped: u64,
    candidates_compared: u64,
    pinned: &'a BTreeSet<Uuid>,
    reresolution: &'a Option<Pending>,
}

#[derive(Deserialize)]
struct Owned {
    numbered: u64,
    terms: Terms,
    merged_into: BTreeMap<Uuid, Uuid>,
    distinct: BTreeSet<(Uuid, Uuid)>,
    tasks: BTreeMap<Uuid, ReviewTask>,
    model: Option<ModelInForce>,
    last_trained: u64,
    merges_prevented: u64,
    blocks_capped: u64,
    candidates_compared: u64,
    pinned: BTreeSet<Uuid>,
    reresolution: Option<Pending>,
}

impl Resolver {
    /// The matcher's state for a checkpoint. Changed match blocks are
    /// written to their table first, so the checkpoint that takes the
    /// table takes them.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, StoreError> {
        self.index.flush()?;
        let borrowed = Borrowed {
            numbered: self.tables.count(),
            terms: &self.terms,
            merged_into: &self.merged_into,
            distinct: &self.distinct,
            tasks: &self.tasks,
            model: &self.model,
            last_trained: self.last_trained,
            merges_prevented: self.merges_prevented,
            blocks_capped: self.blocks_capped,
            candidates_compared: self.candidates_compared,
            pinned: &self.pinned,
            reresolution: &self.reresolution,
        };
        postcard::to_stdvec(&borrowed)
            .map_err(|e| StoreError::new("encoding the matcher's checkpoint", e))
    }

    /// The matcher a checkpoint left in `storage`, with `bytes` (from
    /// `snapshot`). `configured` are the rules as configured; `model` the
    /// trained model of the log entry the checkpoint names as in force
    /// (`model_seq`), read from the log by the caller.
    pub fn restore(
        configured: MatchRules,
        storage: &dyn Storage,
        bytes: &[u8],
        model: Option<&TrainedModel>,
    ) -> Result<Resolver, StoreError> {
        let owned: Owned = postcard::from_bytes(bytes)
            .map_err(|e| StoreError::new("decoding the matcher's checkpoint", e))?;
        let rules = match (&owned.model, model) {
            (Some(_), Some(m)) => configured.with_model(m),
            (None, _) => configured.clone(),
            (Some(m), None) => {
                return Err(StoreError::new(
                    "restoring the matcher",
                    format!("the trained model of log entry {} was not given", m.seq),
                ))
            }
        };
        let blocks = storage.table(super::tables::TABLES[0])?;
        Ok(Resolver {
            index: MatchIndex::new(configured.max_block, blocks),
            tables: SourceTables::open(storage, owned.numbered)?,
            terms: owned.terms,
            configured,
            rules,
            merged_into: owned.merged_into,
            distinct: owned.distinct,
            tasks: owned.tasks,
            model: owned.model,
            last_trained: owned.last_trained,
            merges_prevented: owned.merges_prevented,
            blocks_capped: owned.blocks_capped,
            candidates_compared: owned.candidates_compared,
            pinned: owned.pinned,
            reresolution: owned.reresolution,
        })
    }

    /// The log entry of the trained model in force, which `restore` needs.
    pub fn model_seq(&self) -> Option<u64> {
        self.model.as_ref().map(|m| m.seq)
    }
}
