//! Checkpoints: the derived state as of one log entry, kept in the derived
//! state store so that a start derives only the entries after it.
//!
//! Derivation's writes between checkpoints are held in memory
//! (`store::Buffered`); a checkpoint writes them, the matcher's state and
//! the `Checkpoint` record below in one atomic commit. So the store holds
//! the state of exactly one log entry, whole, whenever the hub stops.
//!
//! A checkpoint is used only by the build of the hub and the rules that
//! wrote it, and only on the log it was derived from (the chain hash of
//! its entry must match): anything else derives the state anew.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Outbound, Rules, State};
use crate::store::{Storage, StoreError, TableWrite};

/// Log entries between two checkpoints, by default (`[store]
/// checkpoint_entries`).
pub const DEFAULT_CHECKPOINT_ENTRIES: u64 = 20_000;

/// The table checkpoints are kept in.
pub const TABLE: &str = "checkpoint";
/// Key of the `Checkpoint` record.
const INFO: &[u8] = b"info";
/// Key of the matcher's state (`Resolver::snapshot`).
const MATCHER: &[u8] = b"matcher";
/// Key of the outbound messages not yet acknowledged by the bus.
const UNACKED: &[u8] = b"unacked";

/// Outbound messages by the log entry they were derived up to (a batch's
/// last entry): those the bus had not acknowledged when the checkpoint was
/// written. A start publishes them again; the entries they came from are
/// not derived again.
pub type Unacked = Vec<(u64, Vec<Outbound>)>;

/// Bumped when what a checkpoint holds changes shape.
const FORMAT: u32 = 1;

/// What a checkpoint reflects and what wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// The build of the hub that derived it (the caller's `build` id):
    /// another build may derive otherwise, so it derives anew.
    pub build: String,
    /// Hash of the rules it was derived with (`rules_hash`).
    pub rules: String,
    /// The last log entry the state reflects.
    pub seq: u64,
    /// That entry's chain hash, hex.
    pub log_hash: String,
    pub golden_records: u64,
    /// The log entry of the trained model in force, which the matcher is
    /// restored with.
    pub model_seq: Option<u64>,
}

impl Checkpoint {
    /// The checkpoint in `storage`, if there is one.
    pub fn read(storage: &dyn Storage) -> Result<Option<Checkpoint>, StoreError> {
        let Some(bytes) = storage.table(TABLE)?.get(INFO)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::new("reading the checkpoint", e))
    }

    /// Why this hub, of build `build`, cannot resume from it, or `None` if
    /// it can (the log is checked by the caller).
    pub fn unusable(&self, rules: &Rules, build: &str) -> Option<String> {
        if self.format != FORMAT {
            return Some(format!(
                "it has format {}, this hub writes {FORMAT}",
                self.format
            ));
        }
        if self.build != build {
            return Some(format!(
                "another build of the hub wrote it ({}; this is {build})",
                self.build
            ));
        }
        if self.rules != rules_hash(rules) {
            return Some(
                "the models, systems, survivorship or match settings changed since".to_string(),
            );
        }
        None
    }
}

/// A hash of everything in the rules (they hold no hash maps, so their
/// debug form is stable).
pub fn rules_hash(rules: &Rules) -> String {
    hex::encode(Sha256::digest(format!("{rules:?}").as_bytes()))
}

impl State {
    /// The writes of a checkpoint of this state, whose last entry has the
    /// chain hash `log_hash`, by the hub build `build`: changed records and
    /// match blocks go to their tables first (held with the other writes
    /// until the commit).
    pub fn checkpoint(
        &mut self,
        log_hash: &[u8],
        build: &str,
    ) -> Result<Vec<TableWrite>, StoreError> {
        self.records.flush()?;
        let matcher = self.resolver.snapshot()?;
        let info = Checkpoint {
            format: FORMAT,
            build: build.to_string(),
            rules: rules_hash(&self.rules),
            seq: self.applied_seq,
            log_hash: hex::encode(log_hash),
            golden_records: self.records.count() as u64,
            model_seq: self.resolver.model_seq(),
        };
        let info = serde_json::to_vec(&info).expect("checkpoints serialize");
        Ok(vec![
            (TABLE.to_string(), MATCHER.to_vec(), Some(matcher)),
            (TABLE.to_string(), INFO.to_vec(), Some(info)),
        ])
    }
}

/// The matcher's state of the checkpoint in `storage`.
pub(super) fn matcher_bytes(storage: &dyn Storage) -> Result<Vec<u8>, StoreError> {
    storage
        .table(TABLE)?
        .get(MATCHER)?
        .ok_or_else(|| StoreError::new("reading the checkpoint", "the matcher's state is missing"))
}

/// The write that keeps `unacked` with a checkpoint.
pub fn unacked_write(unacked: &Unacked) -> TableWrite {
    let bytes = serde_json::to_vec(unacked).expect("outbound messages serialize");
    (TABLE.to_string(), UNACKED.to_vec(), Some(bytes))
}

/// The outbound messages the checkpoint in `storage` kept.
pub fn read_unacked(storage: &dyn Storage) -> Result<Unacked, StoreError> {
    match storage.table(TABLE)?.get(UNACKED)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::new("reading the checkpoint's outbound messages", e)),
        None => Ok(Vec::new()),
    }
}
