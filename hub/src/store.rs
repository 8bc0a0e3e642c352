//! Where derived state is kept: ordered key-value tables behind a trait of
//! our own, so that derivation (`state`, `resolve`) reads and writes it
//! without knowing the storage. Two implementations: `MemoryStorage` here
//! (tests, reports, single runs) and the sled one in `sled_store.rs` (the
//! hub, in its data dir).
//!
//! A storage failure is a value (`StoreError`), never a panic: derivation
//! hands it back and the hub stops consuming, the way it does when an entry
//! cannot be derived.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A storage operation that failed, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("derived state storage failed ({doing}): {error}")]
pub struct StoreError {
    pub doing: String,
    pub error: String,
}

impl StoreError {
    pub fn new(doing: impl Into<String>, error: impl std::fmt::Display) -> Self {
        StoreError {
            doing: doing.into(),
            error: error.to_string(),
        }
    }
}

/// One write of a batch: a value to put, or `None` to remove the key.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// An ordered table of derived state: keys and values are bytes.
pub trait Table: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies the writes in order, all or none.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Every key, ascending.
    fn keys(&self) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_>;
    /// The keys that start with `prefix`, ascending.
    fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_>;
    /// Removes every key.
    fn clear(&self) -> Result<(), StoreError>;
}

/// Opens the tables derivation keeps its state in.
pub trait Storage: Send + Sync {
    /// The table `name`, created empty if it does not exist.
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, StoreError>;
}

/// Derived state in memory: for tests, reports and replays into a scratch
/// state. Holds encoded values, so what it keeps is what sled would.
#[derive(Default)]
pub struct MemoryStorage {
    tables: RwLock<BTreeMap<String, Arc<MemoryTable>>>,
}

impl MemoryStorage {
    /// An empty storage, ready to share.
    pub fn shared() -> Arc<dyn Storage> {
        Arc::new(MemoryStorage::default())
    }
}

impl Storage for MemoryStorage {
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, StoreError> {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let table = tables.entry(name.to_string()).or_default();
        Ok(Arc::clone(table) as Arc<dyn Table>)
    }
}

#[derive(Default)]
struct MemoryTable {
    rows: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Table for MemoryTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        Ok(rows.get(key).cloned())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        for (key, value) in writes {
            match value {
                Some(v) => rows.insert(key, v),
                None => rows.remove(&key),
            };
        }
        Ok(())
    }

    fn keys(&self) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        // A copy: the lock is not held while the caller reads.
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Vec<u8>> = rows.keys().cloned().collect();
        Box::new(keys.into_iter().map(Ok))
    }

    fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Vec<u8>> = rows
            .range(prefix.to_vec()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        Box::new(keys.into_iter().map(Ok))
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.rows.write().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}
