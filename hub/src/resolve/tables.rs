//! The matcher's state per source record, written to derived-state tables
//! as it changes: source record → number, number → link (golden record,
//! linked or not) and match profile, and golden record → the log entry
//! that created it. A checkpoint takes these writes with the rest, so it
//! costs what changed since the last one, not what the matcher holds;
//! a start reads them back (`load`).
//!
//! The resolver keeps them in memory too, for matching: reading a profile
//! from storage for every candidate would cost a third of matching time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::profile::Profile;
use super::Slot;
use crate::golden::SourceKey;
use crate::store::{Storage, StoreError, Table};

/// The tables of the matcher, the match index's blocks included: a state
/// derived anew clears them all.
pub const TABLES: [&str; 5] = [
    "blocks",
    "match_numbers",
    "match_links",
    "match_profiles",
    "match_created",
];

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
}

/// What `SourceTables::load` reads back.
pub(super) struct Loaded {
    pub numbers: HashMap<SourceKey, u64>,
    pub slots: Vec<Slot>,
    pub profiles: Vec<Option<Profile>>,
    pub created: BTreeMap<Uuid, u64>,
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

impl SourceTables {
    pub fn open(storage: &dyn Storage) -> Result<Self, StoreError> {
        Ok(SourceTables {
            numbers: storage.table(TABLES[1])?,
            links: storage.table(TABLES[2])?,
            profiles: storage.table(TABLES[3])?,
            created: storage.table(TABLES[4])?,
        })
    }

    pub fn put_number(&self, source: &SourceKey, no: u64) -> Result<(), StoreError> {
        self.numbers
            .apply(vec![(source_key(source), Some(number_key(no)))])
    }

    pub fn put_slot(&self, no: u64, slot: &Slot) -> Result<(), StoreError> {
        let mut value = vec![u8::from(slot.linked)];
        if let Some(golden) = slot.golden {
            value.extend_from_slice(golden.as_bytes());
        }
        self.links.apply(vec![(number_key(no), Some(value))])
    }

    pub fn put_profile(&self, no: u64, profile: &Profile) -> Result<(), StoreError> {
        let value = postcard::to_stdvec(profile)
            .map_err(|e| StoreError::new("encoding a match profile", e))?;
        self.profiles.apply(vec![(number_key(no), Some(value))])
    }

    pub fn put_created(&self, golden: Uuid, seq: u64) -> Result<(), StoreError> {
        self.created.apply(vec![(
            golden.as_bytes().to_vec(),
            Some(seq.to_be_bytes().to_vec()),
        )])
    }

    /// Everything the tables hold, for a start from a checkpoint.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut numbers = HashMap::new();
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
            numbers.insert(source, number_of(&value, "match_numbers")?);
        }
        let mut slots: Vec<Slot> = (0..numbers.len())
            .map(|_| Slot {
                golden: None,
                linked: false,
            })
            .collect();
        for entry in self.links.entries() {
            let (key, value) = entry?;
            let no = number_of(&key, "match_links")? as usize;
            let slot = slots.get_mut(no).ok_or_else(|| {
                StoreError::new("reading match_links", format!("number {no} has no source"))
            })?;
            slot.linked = value.first() == Some(&1);
            slot.golden = match value.get(1..) {
                Some(id) if !id.is_empty() => Some(
                    Uuid::from_slice(id).map_err(|e| StoreError::new("reading match_links", e))?,
                ),
                _ => None,
            };
        }
        let mut profiles = Vec::new();
        for entry in self.profiles.entries() {
            let (key, value) = entry?;
            let no = number_of(&key, "match_profiles")? as usize;
            if profiles.len() <= no {
                profiles.resize(no + 1, None);
            }
            profiles[no] = Some(
                postcard::from_bytes(&value)
                    .map_err(|e| StoreError::new("reading match_profiles", e))?,
            );
        }
        let mut created = BTreeMap::new();
        for entry in self.created.entries() {
            let (key, value) = entry?;
            let id =
                Uuid::from_slice(&key).map_err(|e| StoreError::new("reading match_created", e))?;
            created.insert(id, number_of(&value, "match_created")?);
        }
        Ok(Loaded {
            numbers,
            slots,
            profiles,
            created,
        })
    }
}
