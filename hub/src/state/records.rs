//! Golden records: kept in a derived state table (`store::Table`), with a
//! bounded cache of decoded records in front of it. Derivation reads and
//! changes records through the cache; a record it changed is written back
//! to the table when it leaves the cache. So the hub's memory holds at most
//! `capacity` decoded records (plus those one entry touches), whatever the
//! number of golden records.
//!
//! The cache never changes what derivation derives: a record written and
//! read back behaves exactly as the one that stayed (`GoldenRecord::encode`),
//! and `trim` only runs between entries.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::golden::GoldenRecord;
use crate::store::{StoreError, Table};

pub struct Records {
    table: Arc<dyn Table>,
    hot: HashMap<Uuid, Hot>,
    /// Decoded records kept after `trim`.
    capacity: usize,
    /// Golden records in all, in the table or only here.
    count: usize,
    /// Bumped at every access: a record's last use, for eviction.
    clock: u64,
}

struct Hot {
    record: GoldenRecord,
    /// Changed since read from the table (or never written to it).
    dirty: bool,
    used: u64,
}

fn key(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

fn decode(id: Uuid, bytes: &[u8]) -> Result<GoldenRecord, StoreError> {
    GoldenRecord::decode(bytes)
        .map_err(|e| StoreError::new(format!("decoding golden record {id}"), e))
}

impl Records {
    /// The records of an empty table, with room for `capacity` decoded ones.
    pub fn new(table: Arc<dyn Table>, capacity: usize) -> Self {
        Records {
            table,
            hot: HashMap::new(),
            capacity: capacity.max(1),
            count: 0,
            clock: 0,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Brings record `id` into the cache, if it exists.
    fn load(&mut self, id: Uuid) -> Result<bool, StoreError> {
        self.clock += 1;
        if let Some(hot) = self.hot.get_mut(&id) {
            hot.used = self.clock;
            return Ok(true);
        }
        let Some(bytes) = self.table.get(&key(id))? else {
            return Ok(false);
        };
        let record = decode(id, &bytes)?;
        self.hot.insert(
            id,
            Hot {
                record,
                dirty: false,
                used: self.clock,
            },
        );
        Ok(true)
    }

    pub fn contains(&mut self, id: Uuid) -> Result<bool, StoreError> {
        self.load(id)
    }

    /// Record `id`, to read.
    pub fn get(&mut self, id: Uuid) -> Result<Option<&GoldenRecord>, StoreError> {
        Ok(if self.load(id)? {
            self.hot.get(&id).map(|h| &h.record)
        } else {
            None
        })
    }

    /// Record `id`, to change.
    pub fn get_mut(&mut self, id: Uuid) -> Result<Option<&mut GoldenRecord>, StoreError> {
        Ok(if self.load(id)? {
            self.hot.get_mut(&id).map(|h| {
                h.dirty = true;
                &mut h.record
            })
        } else {
            None
        })
    }

    /// Record `id` to change, created empty for `entity` if it does not
    /// exist.
    pub fn get_or_create(
        &mut self,
        id: Uuid,
        entity: &str,
    ) -> Result<&mut GoldenRecord, StoreError> {
        if !self.load(id)? {
            self.count += 1;
            self.put_back(GoldenRecord::new(id, entity));
        }
        let hot = self.hot.get_mut(&id).expect("loaded or inserted");
        hot.dirty = true;
        Ok(&mut hot.record)
    }

    /// Adds a record whose id is new (one derived from the entry that
    /// creates it).
    pub fn insert_new(&mut self, record: GoldenRecord) {
        self.count += 1;
        self.put_back(record);
    }

    /// Takes record `id` out to change it by value; `put_back` returns it
    /// (until then the table may hold an older copy).
    pub fn take(&mut self, id: Uuid) -> Result<Option<GoldenRecord>, StoreError> {
        if !self.load(id)? {
            return Ok(None);
        }
        Ok(self.hot.remove(&id).map(|h| h.record))
    }

    /// Puts back a record from `take`, changed.
    pub fn put_back(&mut self, record: GoldenRecord) {
        self.clock += 1;
        self.hot.insert(
            record.id,
            Hot {
                record,
                dirty: true,
                used: self.clock,
            },
        );
    }

    /// Record `id` without changing the cache: the cached record, or the
    /// stored one decoded (for readers, who hold `&self`).
    pub fn peek(&self, id: Uuid) -> Result<Option<Cow<'_, GoldenRecord>>, StoreError> {
        if let Some(hot) = self.hot.get(&id) {
            return Ok(Some(Cow::Borrowed(&hot.record)));
        }
        match self.table.get(&key(id))? {
            Some(bytes) => Ok(Some(Cow::Owned(decode(id, &bytes)?))),
            None => Ok(None),
        }
    }

    /// Calls `f` on every record, in id order.
    pub fn for_each(&self, mut f: impl FnMut(&GoldenRecord)) -> Result<(), StoreError> {
        let mut hot: Vec<Uuid> = self.hot.keys().copied().collect();
        hot.sort_unstable();
        let mut hot = hot.into_iter().peekable();
        for stored in self.table.keys() {
            let stored = stored?;
            let id = Uuid::from_slice(&stored)
                .map_err(|e| StoreError::new("reading golden record ids", e))?;
            while let Some(h) = hot.next_if(|h| *h <= id) {
                f(&self.hot[&h].record);
            }
            if self.hot.contains_key(&id) {
                continue;
            }
            let bytes = self.table.get(&stored)?.ok_or_else(|| {
                StoreError::new("scanning golden records", format!("{id} vanished"))
            })?;
            f(&decode(id, &bytes)?);
        }
        for h in hot {
            f(&self.hot[&h].record);
        }
        Ok(())
    }

    /// Brings the cache back to its capacity, between entries: the records
    /// used longest ago leave it (a quarter of the capacity at a time, so
    /// that choosing them is rare), and those changed are written to the
    /// table in one batch.
    pub fn trim(&mut self) -> Result<(), StoreError> {
        if self.hot.len() <= self.capacity {
            return Ok(());
        }
        let keep = self.capacity - self.capacity / 4;
        let mut by_use: Vec<(u64, Uuid)> = self.hot.iter().map(|(id, h)| (h.used, *id)).collect();
        by_use.sort_unstable();
        let leaving = by_use.len() - keep;
        let mut writes = Vec::new();
        for (_, id) in by_use.into_iter().take(leaving) {
            let hot = self.hot.remove(&id).expect("listed above");
            if hot.dirty {
                writes.push((key(id), Some(hot.record.encode())));
            }
        }
        self.table.apply(writes)
    }
}
