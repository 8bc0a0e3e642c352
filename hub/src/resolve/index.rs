//! The match index: blocking key → source records, kept in sled so that the
//! blocks (several keys per record, the bulk of the index) do not grow the
//! hub's memory with the number of records; and source record → profile,
//! held in memory by source number, because every candidate's profile is
//! read for scoring and a sled read plus decoding per candidate was a third
//! of the matching time. It is derived state: built anew from the log at
//! every start, in a temporary store that sled removes when the hub stops.
//!
//! Layout of the sled tree: block key → the block's source numbers (u64
//! big-endian each, in the order they joined). One entry per block, so a
//! lookup is one read, not a scan (a sled range scan re-descends the tree
//! at every step). A block holds at most `max_block + 1` members: the extra
//! one says that the block is over the cap, and later records are not
//! added to a block nobody reads past the cap.

use super::profile::Profile;

pub struct MatchIndex {
    _db: sled::Db,
    blocks: sled::Tree,
    max_block: usize,
    /// By source number.
    profiles: Vec<Option<Profile>>,
}

/// Candidates of one record, and how many of its blocks were over the cap.
pub struct Candidates {
    /// Source numbers, ascending, without repeats.
    pub sources: Vec<u64>,
    pub capped_blocks: usize,
}

/// The index lives beside the process, not in the hub's data dir: it is
/// rebuilt at every start, and sled's cache bounds its memory.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

fn storage_failed(e: sled::Error) -> ! {
    // The index is derived and local; losing its storage mid-run leaves
    // nothing sound to continue with. A restart rebuilds it from the log.
    panic!("match index storage failed: {e}")
}

fn members(value: &[u8]) -> impl Iterator<Item = u64> + '_ {
    value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
}

impl MatchIndex {
    /// A new, empty index; blocks are read up to `max_block` members.
    pub fn temporary(max_block: usize) -> MatchIndex {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .segment_size(8 << 20)
            .open()
            .unwrap_or_else(|e| storage_failed(e));
        let blocks = db.open_tree("blocks").unwrap_or_else(|e| storage_failed(e));
        MatchIndex {
            _db: db,
            blocks,
            max_block,
            profiles: Vec::new(),
        }
    }

    /// The stored profile of a source record.
    pub fn profile(&self, source: u64) -> Option<&Profile> {
        self.profiles.get(source as usize)?.as_ref()
    }

    /// Stores `profile` for `source`, replacing its earlier one and blocks.
    /// `new_keys` are `profile.block_keys()`, computed once by the caller.
    pub fn put(&mut self, source: u64, profile: &Profile, new_keys: &[String]) {
        let slot = source as usize;
        if self.profiles.len() <= slot {
            self.profiles.resize(slot + 1, None);
        }
        if self.profiles[slot].as_ref() == Some(profile) {
            return;
        }
        let old_keys = self.profiles[slot]
            .as_ref()
            .map(Profile::block_keys)
            .unwrap_or_default();
        // Single writes, not a sled batch: a batch seals sled's write buffer
        // to stay atomic, and the index needs no atomicity (it is rebuilt
        // from the log at every start).
        for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            self.update_block(k, |list| {
                list.retain(|&n| n != source);
            });
        }
        let cap = self.max_block + 1;
        for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            self.update_block(k, |list| {
                if list.len() < cap && !list.contains(&source) {
                    list.push(source);
                }
            });
        }
        self.profiles[slot] = Some(profile.clone());
    }

    fn update_block(&self, key: &str, change: impl FnOnce(&mut Vec<u64>)) {
        let old = self
            .blocks
            .get(key.as_bytes())
            .unwrap_or_else(|e| storage_failed(e));
        let mut list: Vec<u64> = old.as_deref().map(members).into_iter().flatten().collect();
        let before = list.len();
        change(&mut list);
        if list.len() == before {
            return;
        }
        let result = if list.is_empty() {
            self.blocks.remove(key.as_bytes()).map(drop)
        } else {
            let value: Vec<u8> = list.iter().flat_map(|n| n.to_be_bytes()).collect();
            self.blocks.insert(key.as_bytes(), value).map(drop)
        };
        result.unwrap_or_else(|e| storage_failed(e));
    }

    /// Source records in the blocks `keys` (a profile's block keys): at most
    /// `max_block` per block, the earliest indexed first.
    pub fn candidates(&self, keys: &[String]) -> Candidates {
        let mut sources = Vec::new();
        let mut capped_blocks = 0;
        for key in keys {
            let Some(value) = self
                .blocks
                .get(key.as_bytes())
                .unwrap_or_else(|e| storage_failed(e))
            else {
                continue;
            };
            let mut list = members(&value);
            sources.extend(list.by_ref().take(self.max_block));
            if list.next().is_some() {
                capped_blocks += 1;
            }
        }
        sources.sort_unstable();
        sources.dedup();
        Candidates {
            sources,
            capped_blocks,
        }
    }
}
