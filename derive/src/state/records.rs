//! Golden records: kept in a derived state table (`store::Table`), with a
//! bounded cache of decoded records in front of it. Derivation reads and
//! changes records through the cache; a record it changed is written back
//! to the table when it leaves the cache. So the hub's memory holds at most
//! `capacity` decoded records (plus those one entry touches), whatever the
//! number of golden records.
//!
//! The cache never changes what derivation derives: a record written and
//! read back behaves exactly as the one that stayed (`GoldenRecord::encode`),
//! and `finish_entry` trims it only between entries.
//!
//! Beside the records, an index of their golden values (`by_value`: entity,
//! field, value → golden ids), brought up to date at the end of every
//! entry, so that finding records by a value reads a few keys instead of
//! decoding every record; and each record's history (`history`), one step
//! per entry that changed it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::history::{self, Before};
use crate::golden::GoldenRecord;
use crate::store::{StoreError, Table, Write};

pub struct Records {
    table: Arc<dyn Table>,
    /// (entity, field, value, golden id) of every golden value: see
    /// `value_key`.
    by_value: Arc<dyn Table>,
    /// Golden id and log sequence → what that entry did to the record.
    history: Arc<dyn Table>,
    /// Each record the current entry may have changed, as it was before
    /// (empty for a record it created).
    before: HashMap<Uuid, Before>,
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

/// The `by_value` key prefix of a value: entity, field and the value's JSON,
/// each followed by a zero byte (names hold none, and JSON escapes it).
/// The golden id follows it.
fn value_key(entity: &str, field: &str, value: &Value) -> Vec<u8> {
    let mut key = Vec::with_capacity(entity.len() + field.len() + 32);
    key.extend_from_slice(entity.as_bytes());
    key.push(0);
    key.extend_from_slice(field.as_bytes());
    key.push(0);
    serde_json::to_writer(&mut key, value).expect("JSON values serialize");
    key.push(0);
    key
}

fn decode(id: Uuid, bytes: &[u8]) -> Result<GoldenRecord, StoreError> {
    GoldenRecord::decode(bytes)
        .map_err(|e| StoreError::new(format!("decoding golden record {id}"), e))
}

impl Records {
    /// The records of an empty `table`, with an empty value index
    /// `by_value`, an empty `history` and room for `capacity` decoded ones.
    pub fn new(
        table: Arc<dyn Table>,
        by_value: Arc<dyn Table>,
        history: Arc<dyn Table>,
        capacity: usize,
    ) -> Self {
        Records {
            table,
            by_value,
            history,
            before: HashMap::new(),
            hot: HashMap::new(),
            capacity: capacity.max(1),
            count: 0,
            clock: 0,
        }
    }

    /// The records a checkpoint left in `table` (`count` of them), its
    /// value index `by_value` and the records' `history`.
    pub fn resume(
        table: Arc<dyn Table>,
        by_value: Arc<dyn Table>,
        history: Arc<dyn Table>,
        capacity: usize,
        count: usize,
    ) -> Self {
        Records {
            count,
            ..Self::new(table, by_value, history, capacity)
        }
    }

    /// Writes every changed record in the cache to the table, where a
    /// checkpoint takes it; they stay cached. Between entries only.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        debug_assert!(self.before.is_empty(), "flushed between entries");
        let mut dirty: Vec<(&Uuid, &mut Hot)> =
            self.hot.iter_mut().filter(|(_, h)| h.dirty).collect();
        dirty.sort_unstable_by_key(|(id, _)| **id);
        let mut writes = Vec::with_capacity(dirty.len());
        for (id, hot) in dirty {
            hot.dirty = false;
            writes.push((key(*id), Some(hot.record.encode())));
        }
        self.table.apply(writes)
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
            let hot = self.hot.get_mut(&id).expect("loaded");
            self.before
                .entry(id)
                .or_insert_with(|| Before::of(&hot.record));
            hot.dirty = true;
            Some(&mut hot.record)
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
            self.insert_new(GoldenRecord::new(id, entity));
        }
        Ok(self.get_mut(id)?.expect("loaded or inserted"))
    }

    /// Adds a record whose id is new (one derived from the entry that
    /// creates it).
    pub fn insert_new(&mut self, record: GoldenRecord) {
        self.count += 1;
        self.before.entry(record.id).or_default();
        self.put_back(record);
    }

    /// Takes record `id` out to change it by value; `put_back` returns it
    /// (until then the table may hold an older copy).
    pub fn take(&mut self, id: Uuid) -> Result<Option<GoldenRecord>, StoreError> {
        if !self.load(id)? {
            return Ok(None);
        }
        let hot = self.hot.remove(&id).expect("loaded");
        self.before
            .entry(id)
            .or_insert_with(|| Before::of(&hot.record));
        Ok(Some(hot.record))
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

    /// The entity of record `id`, without decoding a record that is not in
    /// the cache, and without bringing it in.
    pub fn entity_of(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        if let Some(hot) = self.hot.get(&id) {
            return Ok(Some(hot.record.entity.clone()));
        }
        match self.table.get(&key(id))? {
            Some(bytes) => crate::golden::decode_entity(&bytes)
                .map(Some)
                .map_err(|e| StoreError::new(format!("decoding golden record {id}"), e)),
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

    /// Golden records of `entity` whose `field` holds `value`, in id order,
    /// at most `limit`.
    pub fn find(
        &self,
        entity: &str,
        field: &str,
        value: &Value,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let prefix = value_key(entity, field, value);
        self.by_value
            .keys_with_prefix(&prefix)
            .take(limit)
            .map(|key| {
                let key = key?;
                Uuid::from_slice(&key[prefix.len()..])
                    .map_err(|e| StoreError::new("reading the value index", e))
            })
            .collect()
    }

    /// Ends entry `seq`: the value index takes the golden values it
    /// changed, each record it changed gets a step in its history, then the
    /// cache is trimmed.
    pub fn finish_entry(&mut self, seq: u64) -> Result<(), StoreError> {
        let mut writes: Vec<Write> = Vec::new();
        let mut steps: Vec<Write> = Vec::new();
        let mut touched: Vec<(Uuid, Before)> = self.before.drain().collect();
        touched.sort_unstable_by_key(|(id, _)| *id);
        let ids: Vec<Uuid> = touched.iter().map(|(id, _)| *id).collect();
        for (id, before) in touched {
            let Some(hot) = self.hot.get(&id) else {
                continue;
            };
            let others = ids.iter().copied().filter(|o| *o != id).collect();
            let step = history::step(&before, &hot.record, others);
            steps.push((history::key(id, seq), Some(history::encode(&step))));
            let (entity, after) = (&hot.record.entity, &hot.record.values);
            let before = before.values;
            for (field, old) in &before {
                if after.get(field) != Some(old) {
                    let mut key = value_key(entity, field, old);
                    key.extend_from_slice(id.as_bytes());
                    writes.push((key, None));
                }
            }
            for (field, new) in after {
                if before.get(field) != Some(new) {
                    let mut key = value_key(entity, field, new);
                    key.extend_from_slice(id.as_bytes());
                    writes.push((key, Some(Vec::new())));
                }
            }
        }
        if !writes.is_empty() {
            self.by_value.apply(writes)?;
        }
        if !steps.is_empty() {
            self.history.apply(steps)?;
        }
        self.trim()
    }

    /// Record `id`'s history after log entry `after_seq`, at most `limit`
    /// steps.
    pub fn history(
        &self,
        id: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, history::Step)>, StoreError> {
        history::read(self.history.as_ref(), id, after_seq, limit)
    }

    /// Brings the cache back to its capacity, between entries: the records
    /// used longest ago leave it (a quarter of the capacity at a time, so
    /// that choosing them is rare), and those changed are written to the
    /// table in one batch.
    fn trim(&mut self) -> Result<(), StoreError> {
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
