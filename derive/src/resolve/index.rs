//! The match index: blocking key → source records, kept in a derived state
//! table (`store::Table`: redb in the hub's data dir) so that the blocks
//! (several keys per record, the bulk of the index) do not grow the hub's
//! memory with the number of records. The profiles the blocks are made of
//! are kept by the caller (`tables.rs`). It is derived state: built anew
//! from the log.
//!
//! Layout of the table: block key → the block's source numbers (u64
//! big-endian each, in the order they joined). One entry per block, so a
//! lookup is one read, not a scan. A block holds at most `max_block + 1`
//! members: the extra one says that the block is over the cap, and later
//! records are not added to a block nobody reads past the cap.
//!
//! A bounded cache of recent blocks sits in front of the table
//! (`BlockCache`): edits come in bursts per customer, and their blocks are
//! read and changed again and again. Changed blocks are written to the
//! table in one batch when their cache generation is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use super::profile::Profile;
use crate::store::{StoreError, Table};

pub struct MatchIndex {
    blocks: Arc<dyn Table>,
    /// Recently read or changed blocks, in front of the table; a changed
    /// block is newer here than in the table until its generation is
    /// dropped.
    cache: BlockCache,
    max_block: usize,
}

/// Candidates of one record, and how many of its blocks were over the cap.
pub struct Candidates {
    /// Source numbers, ascending, without repeats.
    pub sources: Vec<u64>,
    pub capped_blocks: usize,
}

/// A block as stored: its members, or no row for an empty block.
fn block_value(members: &[u64]) -> Option<Vec<u8>> {
    (!members.is_empty()).then(|| members.iter().flat_map(|n| n.to_be_bytes()).collect())
}

fn members(value: &[u8]) -> impl Iterator<Item = u64> + '_ {
    value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
}

impl MatchIndex {
    /// An index over the empty table `blocks`; blocks are read up to
    /// `max_block` members.
    pub fn new(max_block: usize, blocks: Arc<dyn Table>) -> MatchIndex {
        Self::with_cache_generation(max_block, blocks, CACHE_GENERATION)
    }

    fn with_cache_generation(
        max_block: usize,
        blocks: Arc<dyn Table>,
        generation: usize,
    ) -> MatchIndex {
        MatchIndex {
            blocks,
            cache: BlockCache {
                generation,
                current: HashMap::new(),
                older: HashMap::new(),
            },
            max_block,
        }
    }

    /// Writes every changed block in the cache to the table (a checkpoint
    /// takes the table); they stay cached.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for (key, block) in self
            .cache
            .current
            .iter_mut()
            .chain(self.cache.older.iter_mut())
        {
            if block.dirty {
                block.dirty = false;
                writes.push((key.clone().into_bytes(), block_value(&block.members)));
            }
        }
        // Keys in both generations cannot be: `block` moves a block out of
        // the older one. Order does not matter for distinct keys.
        writes.sort_unstable();
        self.blocks.apply(writes)
    }

    /// Moves `source` from the blocks of its profile `old` (if it had one)
    /// to those of `profile`. `new_keys` are `profile.block_keys()`,
    /// computed once by the caller.
    pub fn put(
        &mut self,
        source: u64,
        old: Option<&Profile>,
        profile: &Profile,
        new_keys: &[String],
    ) -> Result<(), StoreError> {
        if old == Some(profile) {
            return Ok(());
        }
        let old_keys = old.map(Profile::block_keys).unwrap_or_default();
        for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            self.update_block(k, |list| {
                list.retain(|&n| n != source);
            })?;
        }
        let cap = self.max_block + 1;
        for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            self.update_block(k, |list| {
                if list.len() < cap && !list.contains(&source) {
                    list.push(source);
                }
            })?;
        }
        Ok(())
    }

    fn update_block(
        &mut self,
        key: &str,
        change: impl FnOnce(&mut Vec<u64>),
    ) -> Result<(), StoreError> {
        let mut list = self.block(key)?.to_vec();
        let before = list.len();
        change(&mut list);
        if list.len() != before {
            self.cache_put(key, list, true)?;
        }
        Ok(())
    }

    /// The members of block `key`, brought into the cache's current
    /// generation from the older one or from the table.
    fn block(&mut self, key: &str) -> Result<&[u64], StoreError> {
        if self.cache.get(key).is_none() {
            let (list, dirty) = match self.cache.take_older(key) {
                Some(older) => (older.members, older.dirty),
                None => {
                    let stored = self.blocks.get(key.as_bytes())?;
                    (
                        stored
                            .as_deref()
                            .map(members)
                            .into_iter()
                            .flatten()
                            .collect(),
                        false,
                    )
                }
            };
            self.cache_put(key, list, dirty)?;
        }
        Ok(self.cache.get(key).expect("just cached"))
    }

    /// Caches a block; changed blocks (`dirty`) reach the table when their
    /// cache generation is dropped, in one batch.
    fn cache_put(&mut self, key: &str, list: Vec<u64>, dirty: bool) -> Result<(), StoreError> {
        let Some(dropped) = self.cache.put(key, list, dirty) else {
            return Ok(());
        };
        let writes = dropped
            .into_iter()
            .filter(|(_, block)| block.dirty)
            .map(|(key, block)| (key.into_bytes(), block_value(&block.members)))
            .collect();
        self.blocks.apply(writes)
    }

    /// Source records in the blocks `keys` (a profile's block keys). A
    /// block over the cap (`max_block` members) gives none: its key is too
    /// common to tell records apart (a family name's sound in a big city),
    /// and reading its first members would compare every later record with
    /// the same early arrivals, work that grows with the data and finds a
    /// match only by chance. The record's other, narrower keys find its
    /// matches.
    pub fn candidates(&mut self, keys: &[String]) -> Result<Candidates, StoreError> {
        let mut sources = Vec::new();
        let mut capped_blocks = 0;
        let max_block = self.max_block;
        for key in keys {
            let list = self.block(key)?;
            if list.len() > max_block {
                capped_blocks += 1;
            } else {
                sources.extend_from_slice(list);
            }
        }
        sources.sort_unstable();
        sources.dedup();
        Ok(Candidates {
            sources,
            capped_blocks,
        })
    }
}

/// Blocks by key, bounded, in front of the table: two generations, the current
/// one and the one before; a block read from the older is moved to the
/// current one, and when the current one is full the older is dropped (its
/// changed blocks written to the table by the caller). Roughly LRU, with no
/// bookkeeping per read. Reads always see the newest members: a block is
/// either here, or in the table as last written.
struct BlockCache {
    /// Blocks per generation (`CACHE_GENERATION`; small in tests).
    generation: usize,
    current: HashMap<String, CachedBlock>,
    older: HashMap<String, CachedBlock>,
}

struct CachedBlock {
    members: Vec<u64>,
    /// Changed since read from the table.
    dirty: bool,
}

/// Blocks per generation: at most twice this many are held (about a
/// hundred bytes each), enough for the blocks of the records being edited
/// now; writing changed ones to the table in bulk coalesces repeated changes.
const CACHE_GENERATION: usize = 200_000;

impl BlockCache {
    fn get(&self, key: &str) -> Option<&Vec<u64>> {
        self.current.get(key).map(|b| &b.members)
    }

    /// Takes a block out of the older generation (to be put again).
    fn take_older(&mut self, key: &str) -> Option<CachedBlock> {
        self.older.remove(key)
    }

    /// Stores a block; returns the generation it pushed out, if any.
    fn put(
        &mut self,
        key: &str,
        members: Vec<u64>,
        dirty: bool,
    ) -> Option<HashMap<String, CachedBlock>> {
        let mut dropped = None;
        if self.current.len() >= self.generation && !self.current.contains_key(key) {
            dropped = Some(std::mem::replace(
                &mut self.older,
                std::mem::take(&mut self.current),
            ));
        }
        let dirty = dirty || self.current.get(key).is_some_and(|b| b.dirty);
        self.current
            .insert(key.to_string(), CachedBlock { members, dirty });
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(i: u64, version: u64) -> Profile {
        Profile {
            email: Some(format!("p{}@example.org", i % 7)),
            phones: vec![format!("+4930{}", (i + version) % 5)],
            postcode: Some(format!("{}", i % 3)),
            family: Some(["Schmidt", "Meyer"][(i % 2) as usize].to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn a_tiny_cache_gives_the_same_candidates_as_a_big_one() {
        // Generations of 3 blocks turn over all the time, so changed blocks
        // go to the table and come back: the answers must not change.
        let storage = crate::store::MemoryStorage::shared();
        let table = |name| storage.table(name).unwrap();
        // Blocks of 6 at most: the email blocks stay under the cap, the
        // phone blocks go over it.
        let mut tiny = MatchIndex::with_cache_generation(6, table("tiny"), 3);
        let mut big = MatchIndex::with_cache_generation(6, table("big"), 1_000_000);
        let mut before: Vec<Option<Profile>> = vec![None; 40];
        for round in 0..3 {
            for i in 0..40 {
                let p = profile(i, round * (i % 4));
                let keys = p.block_keys();
                let a = tiny.candidates(&keys).unwrap();
                let b = big.candidates(&keys).unwrap();
                assert_eq!(a.sources, b.sources, "record {i}, round {round}");
                assert_eq!(a.capped_blocks, b.capped_blocks);
                let old = before[i as usize].as_ref();
                tiny.put(i, old, &p, &keys).unwrap();
                big.put(i, old, &p, &keys).unwrap();
                before[i as usize] = Some(p);
            }
        }
        let everything = profile(0, 0).block_keys();
        let candidates = big.candidates(&everything).unwrap();
        assert!(!candidates.sources.is_empty());
        assert!(candidates.capped_blocks > 0);
    }

    #[test]
    fn a_block_over_the_cap_gives_no_candidates() {
        let storage = crate::store::MemoryStorage::shared();
        let mut index = MatchIndex::new(3, storage.table("blocks").unwrap());
        let keys = |k: &str| vec![k.to_string()];
        for i in 0..3 {
            index.put(i, None, &profile(i, 0), &keys("common")).unwrap();
        }
        index.put(10, None, &profile(10, 0), &keys("rare")).unwrap();
        let at_cap = index.candidates(&keys("common")).unwrap();
        assert_eq!(at_cap.sources, vec![0, 1, 2]);
        assert_eq!(at_cap.capped_blocks, 0);
        index.put(3, None, &profile(3, 0), &keys("common")).unwrap();
        let both = index
            .candidates(&["common".to_string(), "rare".to_string()])
            .unwrap();
        assert_eq!(both.sources, vec![10], "the block over the cap is not read");
        assert_eq!(both.capped_blocks, 1);
    }
}
