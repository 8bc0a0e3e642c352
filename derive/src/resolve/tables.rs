//! The matcher's state per source record, in derived-state tables:
//! source record → number, number → link (golden record, linked or not)
//! and match profile, golden record → its members and the log entry that
//! created it. Written as it changes, so a checkpoint costs what changed
//! since the last one; read on demand through bounded caches, so a start
//! reads nothing of it and the hub's memory does not grow with the number
//! of source records.
//!
//! The caches only ever hold what the tables hold (every write goes to
//! both), so they change nothing derived, only how often a table is read.
//! Whole-population work (training, re-resolution, reports) reads the
//! tables through (`load`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::profile::Profile;
use crate::golden::SourceKey;
use crate::store::{Storage, StoreError, Table};

/// The tables of the matcher, the match index's blocks included: a state
/// derived anew clears them all.
pub const TABLES: [&str; 6] = [
    "blocks",
    "match_numbers",
    "match_links",
    "match_profiles",
    "match_created",
    "match_members",
];

/// Entries per cache generation: a cache holds up to twice as many.
/// Matching reads the records of a customer's blocks again and again while
/// its edits come in, then rarely.
const CACHE_ENTRIES: usize = 50_000;

/// A source record's link: its golden record as linked (read through
/// merges), and whether it is linked now. A deleted record keeps its
/// golden record for matching: a record matching it later brings the
/// retired golden record back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub golden: Option<Uuid>,
    pub linked: bool,
}

const UNLINKED: Slot = Slot {
    golden: None,
    linked: false,
};

pub(super) struct SourceTables {
    /// system, a zero byte, record id → number (u64 big-endian). System
    /// names hold no zero byte, so the first one splits the key.
    numbers: Arc<dyn Table>,
    /// number → 1 if linked, then the golden id's 16 bytes if it has one.
    links: Arc<dyn Table>,
    /// number → profile (postcard).
    profiles: Arc<dyn Table>,
    /// golden id → log sequence that created it.
    created: Arc<dyn Table>,
    /// golden id as linked ‖ number → nothing: the source records whose
    /// link names the golden record, for `members`.
    members: Arc<dyn Table>,
    /// Numbers given so far: the next record gets this one.
    count: u64,
    cached_numbers: Cache<SourceKey, Option<u64>>,
    cached_slots: Cache<u64, Slot>,
    cached_profiles: Cache<u64, Option<Arc<Profile>>>,
    cached_created: Cache<Uuid, Option<u64>>,
}

/// Every link and profile, by number, for whole-population work.
pub(super) struct Loaded {
    pub slots: Vec<Slot>,
    pub profiles: Vec<Option<Profile>>,
}

fn number_key(no: u64) -> Vec<u8> {
    no.to_be_bytes().to_vec()
}

fn number_of(key: &[u8], table: &str) -> Result<u64, StoreError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::new(format!("reading {table}"), "a key is not a number"))
}

fn source_key(source: &SourceKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(source.system.len() + 1 + source.record_id.len());
    key.extend_from_slice(source.system.as_bytes());
    key.push(0);
    key.extend_from_slice(source.record_id.as_bytes());
    key
}

fn member_key(golden: Uuid, no: u64) -> Vec<u8> {
    [&golden.as_bytes()[..], &no.to_be_bytes()].concat()
}

fn decode_slot(value: &[u8]) -> Result<Slot, StoreError> {
    Ok(Slot {
        linked: value.first() == Some(&1),
        golden: match value.get(1..) {
            Some(id) if !id.is_empty() => {
                Some(Uuid::from_slice(id).map_err(|e| StoreError::new("reading match_links", e))?)
            }
            _ => None,
        },
    })
}

fn decode_profile(value: &[u8]) -> Result<Profile, StoreError> {
    postcard::from_bytes(value).map_err(|e| StoreError::new("reading match_profiles", e))
}

impl SourceTables {
    /// The tables in `storage`, holding `count` numbered source records
    /// (0 for empty tables; a checkpoint keeps the count).
    pub fn open(storage: &dyn Storage, count: u64) -> Result<Self, StoreError> {
        Ok(SourceTables {
            numbers: storage.table(TABLES[1])?,
            links: storage.table(TABLES[2])?,
            profiles: storage.table(TABLES[3])?,
            created: storage.table(TABLES[4])?,
            members: storage.table(TABLES[5])?,
            count,
            cached_numbers: Cache::default(),
            cached_slots: Cache::default(),
            cached_profiles: Cache::default(),
            cached_created: Cache::default(),
        })
    }

    /// Source records numbered so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The number of a source record, if it has one.
    pub fn number(&self, source: &SourceKey) -> Result<Option<u64>, StoreError> {
        self.cached_numbers.get_or_read(source, || {
            self.numbers
                .get(&source_key(source))?
                .map(|v| number_of(&v, "match_numbers"))
                .transpose()
        })
    }

    /// The number of a source record, given the next one if it has none.
    pub fn number_or_new(&mut self, source: &SourceKey) -> Result<u64, StoreError> {
        if let Some(no) = self.number(source)? {
            return Ok(no);
        }
        let no = self.count;
        self.numbers
            .apply(vec![(source_key(source), Some(number_key(no)))])?;
        self.count += 1;
        self.cached_numbers.put(source.clone(), Some(no));
        Ok(no)
    }

    pub fn slot(&self, no: u64) -> Result<Slot, StoreError> {
        self.cached_slots.get_or_read(&no, || {
            self.links
                .get(&number_key(no))?
                .map_or(Ok(UNLINKED), |v| decode_slot(&v))
        })
    }

    /// Sets the link of record `no`, and moves it between the members of
    /// the golden records linked before and now.
    pub fn set_slot(&mut self, no: u64, slot: Slot) -> Result<(), StoreError> {
        let before = self.slot(no)?;
        let mut value = vec![u8::from(slot.linked)];
        if let Some(golden) = slot.golden {
            value.extend_from_slice(golden.as_bytes());
        }
        self.links.apply(vec![(number_key(no), Some(value))])?;
        if before.golden != slot.golden {
            let mut writes = Vec::new();
            if let Some(old) = before.golden {
                writes.push((member_key(old, no), None));
            }
            if let Some(new) = slot.golden {
                writes.push((member_key(new, no), Some(Vec::new())));
            }
            self.members.apply(writes)?;
        }
        self.cached_slots.put(no, slot);
        Ok(())
    }

    /// The source records whose link names `golden` (as linked, not read
    /// through merges), ascending.
    pub fn members(&self, golden: Uuid) -> Result<Vec<u64>, StoreError> {
        self.members
            .keys_with_prefix(golden.as_bytes())
            .map(|key| number_of(&key?[16..], "match_members"))
            .collect()
    }

    pub fn profile(&self, no: u64) -> Result<Option<Arc<Profile>>, StoreError> {
        self.cached_profiles.get_or_read(&no, || {
            self.profiles
                .get(&number_key(no))?
                .map(|v| decode_profile(&v).map(Arc::new))
                .transpose()
        })
    }

    pub fn set_profile(&mut self, no: u64, profile: &Profile) -> Result<(), StoreError> {
        let value = postcard::to_stdvec(profile)
            .map_err(|e| StoreError::new("encoding a match profile", e))?;
        self.profiles.apply(vec![(number_key(no), Some(value))])?;
        self.cached_profiles
            .put(no, Some(Arc::new(profile.clone())));
        Ok(())
    }

    /// The log entry that created golden record `id`, if it was created.
    pub fn created(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.cached_created.get_or_read(&id, || {
            self.created
                .get(id.as_bytes())?
                .map(|v| number_of(&v, "match_created"))
                .transpose()
        })
    }

    pub fn set_created(&mut self, id: Uuid, seq: u64) -> Result<(), StoreError> {
        self.created.apply(vec![(
            id.as_bytes().to_vec(),
            Some(seq.to_be_bytes().to_vec()),
        )])?;
        self.cached_created.put(id, Some(seq));
        Ok(())
    }

    /// Source records linked now, counted through the table.
    pub fn linked_count(&self) -> Result<u64, StoreError> {
        let mut linked = 0;
        for entry in self.links.entries() {
            if decode_slot(&entry?.1)?.linked {
                linked += 1;
            }
        }
        Ok(linked)
    }

    /// Every source record by its number (`source_keys[no]`): memory for
    /// the whole population, while it is used.
    pub fn source_keys(&self) -> Result<Vec<Option<SourceKey>>, StoreError> {
        let mut keys = vec![None; self.count as usize];
        for entry in self.numbers.entries() {
            let (key, value) = entry?;
            let split = key.iter().position(|&b| b == 0).ok_or_else(|| {
                StoreError::new("reading match_numbers", "a key without its separator")
            })?;
            let text = |bytes: &[u8]| {
                String::from_utf8(bytes.to_vec())
                    .map_err(|e| StoreError::new("reading match_numbers", e))
            };
            let source = SourceKey {
                system: text(&key[..split])?,
                record_id: text(&key[split + 1..])?,
            };
            let no = number_of(&value, "match_numbers")? as usize;
            *keys.get_mut(no).ok_or_else(|| {
                StoreError::new("reading match_numbers", format!("number {no} out of range"))
            })? = Some(source);
        }
        Ok(keys)
    }

    /// Every source record's link and profile, by number, read through the
    /// tables: memory for the whole population, while it is used.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let size = self.count as usize;
        let mut slots = vec![UNLINKED; size];
        for entry in self.links.entries() {
            let (key, value) = entry?;
            let no = number_of(&key, "match_links")? as usize;
            *slots.get_mut(no).ok_or_else(|| {
                StoreError::new("reading match_links", format!("number {no} has no source"))
            })? = decode_slot(&value)?;
        }
        let mut profiles = vec![None; size];
        for entry in self.profiles.entries() {
            let (key, value) = entry?;
            let no = number_of(&key, "match_profiles")? as usize;
            *profiles.get_mut(no).ok_or_else(|| {
                StoreError::new(
                    "reading match_profiles",
                    format!("number {no} has no source"),
                )
            })? = Some(decode_profile(&value)?);
        }
        Ok(Loaded { slots, profiles })
    }
}

/// Values read from a table, kept in two generations of at most
/// `CACHE_ENTRIES` each: a value read or written goes into the current
/// one; when it is full it becomes the older one and the older one is
/// dropped. A value found in the older generation moves to the current.
/// Behind a lock so that reads (`&self`) can fill it.
struct Cache<K, V> {
    generations: Mutex<(HashMap<K, V>, HashMap<K, V>)>,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache {
            generations: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    fn get_or_read(
        &self,
        key: &K,
        read: impl FnOnce() -> Result<V, StoreError>,
    ) -> Result<V, StoreError> {
        {
            let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
            let (current, older) = &mut *generations;
            if let Some(value) = current.get(key) {
                return Ok(value.clone());
            }
            if let Some(value) = older.remove(key) {
                Self::insert(&mut generations, key.clone(), value.clone());
                return Ok(value);
            }
        }
        let value = read()?;
        self.put(key.clone(), value.clone());
        Ok(value)
    }

    fn put(&self, key: K, value: V) {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        Self::insert(&mut generations, key, value);
    }

    fn insert(generations: &mut (HashMap<K, V>, HashMap<K, V>), key: K, value: V) {
        let (current, older) = generations;
        if current.len() >= CACHE_ENTRIES && !current.contains_key(&key) {
            *older = std::mem::take(current);
        }
        older.remove(&key);
        current.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_two_generations_and_moves_older_values_up() {
        let cache: Cache<u64, u64> = Cache::default();
        let reads = std::cell::Cell::new(0);
        let read = |v: u64| {
            reads.set(reads.get() + 1);
            Ok(v)
        };
        for k in 0..CACHE_ENTRIES as u64 {
            cache.get_or_read(&k, || read(k)).unwrap();
        }
        // Full: the next key starts a generation; 0 moves up from the older.
        cache.get_or_read(&u64::MAX, || read(7)).unwrap();
        assert_eq!(cache.get_or_read(&0, || read(99)).unwrap(), 0);
        assert_eq!(
            reads.get(),
            CACHE_ENTRIES + 1,
            "0 came from the older generation"
        );
        // Filling the current generation again drops the older one: 1 is
        // read from the table again, 0 (moved up) is not.
        for k in 0..CACHE_ENTRIES as u64 {
            cache.get_or_read(&(k + 1_000_000), || read(k)).unwrap();
        }
        let before = reads.get();
        cache.get_or_read(&1, || read(1)).unwrap();
        assert_eq!(reads.get(), before + 1);
        let (current, older) = &*cache.generations.lock().unwrap();
        assert!(current.len() + older.len() <= 2 * CACHE_ENTRIES);
    }
}
