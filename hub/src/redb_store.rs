//! Derived state on disk: the `store::Storage` tables in one redb file,
//! `<data_dir>/derived.redb`, each table a redb table of its own.
//!
//! A checkpoint (`Storage::commit`) is one redb write transaction over all
//! the tables it touches: atomic, and durable when it returns. It also
//! records redb's allocator state ("quick repair"), so that opening the
//! file after a kill costs about as much as opening it after a clean stop,
//! whatever its size. Other writes (`Table::apply`, `Table::clear`) are
//! committed without a sync: they become durable with the next checkpoint,
//! and a kill before it leaves the last checkpoint's state, whole.
//!
//! redb keeps a page cache of its own (`CACHE_BYTES`), the only memory it
//! holds beyond the transaction being written.

use std::path::Path;
use std::sync::Arc;

use redb::{Durability, ReadableDatabase, TableDefinition, TableError};

use crate::store::{Entry, Storage, StoreError, Table, TableWrite, Write};

/// redb's page cache for derived state. Golden records have a cache of
/// their own, decoded (`[store] cache_records`); this one holds pages of
/// encoded records, matcher tables and match blocks.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A table as read: bytes to bytes.
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
/// A table as written.
type WriteTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

fn definition(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

pub struct RedbStorage {
    db: Arc<redb::Database>,
}

impl RedbStorage {
    /// Opens (or creates) the derived store in the file `path`.
    pub fn open(path: &Path) -> Result<Arc<dyn Storage>, StoreError> {
        let doing = format!("opening {}", path.display());
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::new(&doing, e))?;
        Ok(Arc::new(RedbStorage { db: Arc::new(db) }))
    }
}

impl Storage for RedbStorage {
    fn table(&self, name: &str) -> Result<Arc<dyn Table>, StoreError> {
        Ok(Arc::new(RedbTable {
            name: name.to_string(),
            db: Arc::clone(&self.db),
        }))
    }

    fn commit(&self, mut writes: Vec<TableWrite>) -> Result<(), StoreError> {
        let failed = |e: &dyn std::fmt::Display| StoreError::new("writing a checkpoint", e);
        // Grouped by table, in key order within each, so that each table is
        // opened once and its pages are written in order.
        writes.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut txn = self.db.begin_write().map_err(|e| failed(&e))?;
        txn.set_quick_repair(true);
        {
            let mut writes = writes.into_iter().peekable();
            while let Some((name, key, value)) = writes.next() {
                let mut table = txn.open_table(definition(&name)).map_err(|e| failed(&e))?;
                put(&mut table, &key, value.as_deref()).map_err(|e| failed(&e))?;
                while let Some((_, key, value)) = writes.next_if(|w| w.0 == name) {
                    put(&mut table, &key, value.as_deref()).map_err(|e| failed(&e))?;
                }
            }
        }
        txn.commit().map_err(|e| failed(&e))
    }
}

fn put(
    table: &mut WriteTable<'_>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), redb::StorageError> {
    match value {
        Some(value) => table.insert(key, value).map(drop),
        None => table.remove(key).map(drop),
    }
}

struct RedbTable {
    name: String,
    db: Arc<redb::Database>,
}

impl RedbTable {
    fn failed(&self, doing: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(format!("{doing} table {}", self.name), e)
    }

    /// The table as of now, or `None` if nothing was ever written to it.
    fn read(&self) -> Result<Option<ReadTable>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.failed("reading", e))?;
        match txn.open_table(definition(&self.name)) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.failed("reading", e)),
        }
    }

    /// Commits what `write` does in a transaction without a sync (see the
    /// module note).
    fn write(
        &self,
        doing: &str,
        write: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.failed(doing, e))?;
        txn.set_durability(Durability::None)
            .map_err(|e| self.failed(doing, e))?;
        write(&txn)?;
        txn.commit().map_err(|e| self.failed(doing, e))
    }

    /// Entries from `prefix` on while their keys start with it.
    fn scan(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_> {
        let table = match self.read() {
            Ok(Some(table)) => table,
            Ok(None) => return Box::new(std::iter::empty()),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let range = match table.range_owned(prefix..) {
            Ok(range) => range,
            Err(e) => return Box::new(std::iter::once(Err(self.failed("scanning", e)))),
        };
        let prefix = prefix.to_vec();
        Box::new(
            range
                .map(move |kv| {
                    kv.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                        .map_err(|e| self.failed("scanning", e))
                })
                .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix))),
        )
    }
}

impl Table for RedbTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(table) = self.read()? else {
            return Ok(None);
        };
        let value = redb::ReadableTable::get(&table, key).map_err(|e| self.failed("reading", e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write("writing", |txn| {
            let mut table = txn
                .open_table(definition(&self.name))
                .map_err(|e| self.failed("writing", e))?;
            for (key, value) in writes {
                put(&mut table, &key, value.as_deref()).map_err(|e| self.failed("writing", e))?;
            }
            Ok(())
        })
    }

    fn keys(&self) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        Box::new(self.scan(&[]).map(|kv| kv.map(|(k, _)| k)))
    }

    fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + '_> {
        Box::new(self.scan(prefix).map(|kv| kv.map(|(k, _)| k)))
    }

    fn entries(&self) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_> {
        self.scan(&[])
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.write("clearing", |txn| {
            txn.delete_table(definition(&self.name))
                .map(drop)
                .map_err(|e| self.failed("clearing", e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(table: &dyn Table, prefix: &[u8]) -> Vec<Vec<u8>> {
        table
            .keys_with_prefix(prefix)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_commit_spans_tables_and_outlives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("derived.redb");
        {
            let storage = RedbStorage::open(&path).unwrap();
            let never = storage.table("never written").unwrap();
            assert_eq!(never.get(b"k").unwrap(), None);
            assert_eq!(never.entries().count(), 0);
            storage
                .commit(vec![
                    ("b".into(), b"ab\0".to_vec(), Some(b"1".to_vec())),
                    ("a".into(), b"x".to_vec(), Some(b"2".to_vec())),
                    ("b".into(), b"a".to_vec(), Some(b"3".to_vec())),
                    ("b".into(), b"ab".to_vec(), Some(b"4".to_vec())),
                    ("b".into(), b"b".to_vec(), Some(b"5".to_vec())),
                ])
                .unwrap();
            storage
                .commit(vec![("b".into(), b"b".to_vec(), None)])
                .unwrap();
        }
        let storage = RedbStorage::open(&path).unwrap();
        let b = storage.table("b").unwrap();
        assert_eq!(
            keys(b.as_ref(), b"a"),
            [b"a".to_vec(), b"ab".to_vec(), b"ab\0".to_vec()]
        );
        assert_eq!(keys(b.as_ref(), b"ab"), [b"ab".to_vec(), b"ab\0".to_vec()]);
        assert_eq!(keys(b.as_ref(), b"c"), Vec::<Vec<u8>>::new());
        assert_eq!(b.get(b"b").unwrap(), None, "removed by the second commit");
        let a = storage.table("a").unwrap();
        assert_eq!(a.get(b"x").unwrap(), Some(b"2".to_vec()));
        let entries: Vec<Entry> = b.entries().collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], (b"a".to_vec(), b"3".to_vec()));

        b.clear().unwrap();
        assert_eq!(b.keys().count(), 0);
        assert_eq!(a.keys().count(), 1, "clearing one table leaves the others");
        b.apply(vec![(b"z".to_vec(), Some(b"6".to_vec()))]).unwrap();
        assert_eq!(b.get(b"z").unwrap(), Some(b"6".to_vec()));
    }
}
