//! Where derived state is kept: ordered key-value tables behind a trait of
//! our own, so that derivation (`state`, `resolve`) reads and writes it
//! without knowing the storage. Two implementations: `MemoryStorage` here
//! (tests, reports, single runs) and the redb one in `redb_store.rs` (the
//! hub, in its data dir).
//!
//! Between checkpoints derivation's writes stay in memory (`Buffered`): the
//! storage holds the state as of the last checkpoint, written in one atomic
//! commit with the log position it reflects, so a restart resumes from a
//! consistent state however the hub stopped.
//!
//! A storage failure is a value (`StoreError`), never a panic: derivation
//! hands it back and the hub stops consuming, the way it does when an entry
//! cannot be derived.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

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
    /// Every key with its value, ascending.
    fn entries(&self) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_>;
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write to a named table, for `Storage::commit`.
pub type TableWrite = (String, Vec<u8>, Option<Vec<u8>>);

/// Opens the tables derivation keeps its state in.
pub trait Storage: Send + Sync {
    /// The table `name`, created empty if it does not exist.
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, StoreError>;
    /// Applies writes to any tables at once: after a crash, all of them or
    /// none are there. Durable when it returns.
    fn commit(&self, writes: Vec<TableWrite>) -> Result<(), StoreError>;
}

/// Derived state in memory: for tests, reports and replays into a scratch
/// state. Holds encoded values, so what it keeps is what redb would.
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

    fn commit(&self, writes: Vec<TableWrite>) -> Result<(), StoreError> {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        for (name, key, value) in writes {
            let table = tables.entry(name).or_default();
            table.apply(vec![(key, value)])?;
        }
        Ok(())
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

    fn entries(&self) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let entries: Vec<Entry> = rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Box::new(entries.into_iter().map(Ok))
    }
}

/// Derived state with its writes held in memory until the next checkpoint
/// (`commit`): reads see them, the storage below does not. So the storage
/// always holds the state of one checkpoint, whole, and a hub killed between
/// two checkpoints restarts from the last one. The writes held grow with
/// the entries derived since; the hub checkpoints every `[store]
/// checkpoint_entries` entries.
pub struct Buffered {
    base: Arc<dyn Storage>,
    tables: Mutex<BTreeMap<String, Arc<BufferedTable>>>,
}

impl Buffered {
    pub fn new(base: Arc<dyn Storage>) -> Arc<Buffered> {
        Arc::new(Buffered {
            base,
            tables: Mutex::default(),
        })
    }

    /// Drops every write held: reads see the last checkpoint again.
    pub fn discard(&self) {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        for table in tables.values() {
            table.pending().clear();
        }
    }

    /// Writes held, and their bytes (keys and values).
    pub fn held(&self) -> (usize, usize) {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let mut writes = 0;
        let mut bytes = 0;
        for table in tables.values() {
            let pending = table.pending.read().unwrap_or_else(|e| e.into_inner());
            writes += pending.len();
            bytes += pending
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        }
        (writes, bytes)
    }
}

impl Storage for Buffered {
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, StoreError> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(table) = tables.get(name) {
            return Ok(Arc::clone(table) as Arc<dyn Table>);
        }
        let table = Arc::new(BufferedTable {
            base: self.base.table(name)?,
            pending: RwLock::default(),
        });
        tables.insert(name.to_string(), Arc::clone(&table));
        Ok(table)
    }

    /// The checkpoint: every write held, then `writes`, in one atomic
    /// commit below. If it fails the writes held are lost with it, so the
    /// caller must stop deriving (as after any storage error).
    fn commit(&self, writes: Vec<TableWrite>) -> Result<(), StoreError> {
        let mut all = Vec::new();
        {
            let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
            for (name, table) in tables.iter() {
                let pending = std::mem::take(&mut *table.pending());
                all.extend(pending.into_iter().map(|(k, v)| (name.clone(), k, v)));
            }
        }
        all.extend(writes);
        self.base.commit(all)
    }
}

struct BufferedTable {
    base: Arc<dyn Table>,
    /// Key → value to put, or `None` for a removal.
    pending: RwLock<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl BufferedTable {
    fn pending(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        self.pending.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The held writes' keys from `prefix` on, and whether each is a put.
    fn pending_keys(&self, prefix: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
        pending
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.is_some()))
            .collect()
    }
}

impl Table for BufferedTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        {
            let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
            if let Some(held) = pending.get(key) {
                return Ok(held.clone());
            }
        }
        self.base.get(key)
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut pending = self.pending();
        for (key, value) in writes {
            pending.insert(key, value);
        }
        Ok(())
    }

    fn keys(&self) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        Box::new(Merged {
            base: self.base.keys().peekable(),
            held: self.pending_keys(&[]).into_iter().peekable(),
        })
    }

    fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        Box::new(Merged {
            base: self.base.keys_with_prefix(prefix).peekable(),
            held: self.pending_keys(prefix).into_iter().peekable(),
        })
    }

    /// Clears the table below at once (a state derived anew starts empty),
    /// and the writes held.
    fn clear(&self) -> Result<(), StoreError> {
        self.pending().clear();
        self.base.clear()
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_> {
        let held = !self
            .pending
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if !held {
            return self.base.entries();
        }
        Box::new(self.keys().map(move |key| {
            let key = key?;
            let value = self.get(&key)?.ok_or_else(|| {
                StoreError::new("scanning a table", "a key vanished while it was read")
            })?;
            Ok((key, value))
        }))
    }
}

/// The keys below, with the held writes over them: held puts added, held
/// removals taken out, ascending.
struct Merged<'a> {
    base: std::iter::Peekable<Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a>>,
    held: std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, bool)>>,
}

impl Iterator for Merged<'_> {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let held_first = match (self.base.peek(), self.held.peek()) {
                (Some(Err(_)), _) => return self.base.next(),
                (None, None) => return None,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok(below)), Some((held, _))) => held <= below,
            };
            if !held_first {
                return self.base.next();
            }
            let (key, put) = self.held.next().expect("peeked");
            if matches!(self.base.peek(), Some(Ok(below)) if *below == key) {
                self.base.next();
            }
            if put {
                return Some(Ok(key));
            }
        }
    }
}
