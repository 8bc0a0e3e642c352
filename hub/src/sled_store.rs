//! Derived state on disk: the `store::Storage` tables in
//! `<data_dir>/derived`, a sled database of its own beside the log's, with
//! its own page cache (`SLED_CACHE_BYTES`).
//!
//! Every table lives in one sled tree, its keys prefixed with the table's
//! name and a zero byte, so that a checkpoint (`Storage::commit`) is one
//! sled batch: atomic across tables, and flushed to disk before it returns.
//! Other writes are not flushed; only checkpoints are resumed from.

use std::path::Path;
use std::sync::Arc;

use crate::store::{Entry, Storage, StoreError, Table, TableWrite, Write};

/// sled's page cache for derived state. Golden records have a cache of
/// their own, decoded (`[store] cache_records`); this one holds pages of
/// encoded records and match blocks.
const SLED_CACHE_BYTES: u64 = 128 * 1024 * 1024;

pub struct SledStorage {
    db: sled::Db,
}

impl SledStorage {
    /// Opens (or creates) the derived store in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<dyn Storage>, StoreError> {
        let doing = format!("opening {}", dir.display());
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None);
        let db = open_waiting_for_lock(&config).map_err(|e| StoreError::new(&doing, e))?;
        // Tables were sled trees of their own before checkpoints: drop them.
        for name in db.tree_names() {
            if name != db.name() {
                db.drop_tree(&name)
                    .map_err(|e| StoreError::new(&doing, e))?;
            }
        }
        Ok(Arc::new(SledStorage { db }))
    }
}

/// Opens a sled database. sled releases its file lock a moment after the
/// last handle in this process is dropped (its threads hold the store
/// briefly), so reopening at once (a restart in tests, an audit rebuild)
/// may find it still held: wait for it, up to two seconds. The log and the
/// derived store both open through here.
pub fn open_waiting_for_lock(config: &sled::Config) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && attempts < 100 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl Storage for SledStorage {
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, StoreError> {
        Ok(Arc::new(SledTable {
            name: name.to_string(),
            prefix: table_prefix(name),
            tree: sled::Tree::clone(&self.db),
        }))
    }

    fn commit(&self, writes: Vec<TableWrite>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (name, key, value) in writes {
            let key = [table_prefix(&name), key].concat();
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        let failed = |e| StoreError::new("writing a checkpoint", e);
        self.db.apply_batch(batch).map_err(failed)?;
        self.db.flush().map_err(failed)?;
        Ok(())
    }
}

fn table_prefix(name: &str) -> Vec<u8> {
    let mut prefix = name.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

struct SledTable {
    name: String,
    /// The table's name and a zero byte, before every key.
    prefix: Vec<u8>,
    tree: sled::Tree,
}

impl SledTable {
    fn failed(&self, doing: &str, e: sled::Error) -> StoreError {
        StoreError::new(format!("{doing} in table {}", self.name), e)
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        [&self.prefix[..], key].concat()
    }

    /// The keys under `prefix` (within the table), without the table's.
    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        let skip = self.prefix.len();
        Box::new(
            self.tree
                .scan_prefix(self.key(prefix))
                .keys()
                .map(move |k| {
                    k.map(|k| k[skip..].to_vec())
                        .map_err(|e| self.failed("scanning", e))
                }),
        )
    }
}

impl Table for SledTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree
            .get(self.key(key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.failed("reading", e))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            let key = self.key(&key);
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.failed("writing", e))
    }

    fn keys(&self) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        self.scan(&[])
    }

    fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        self.scan(prefix)
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_> {
        let skip = self.prefix.len();
        Box::new(self.tree.scan_prefix(&self.prefix).map(move |kv| {
            kv.map(|(k, v)| (k[skip..].to_vec(), v.to_vec()))
                .map_err(|e| self.failed("scanning", e))
        }))
    }

    fn clear(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in self.tree.scan_prefix(&self.prefix).keys() {
            batch.remove(key.map_err(|e| self.failed("clearing", e))?);
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.failed("clearing", e))
    }
}
