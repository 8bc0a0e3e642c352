//! The match index: blocking key → source records, kept in sled so that the
//! blocks (several keys per record, the bulk of the index) do not grow the
//! hub's memory with the number of records; and source record → profile,
//! held in memory by source number, because every candidate's profile is
//! read for scoring and a sled read plus decoding per candidate was a third
//! of the matching time. It is derived state: built anew from the log at
//! every start, in a temporary store that sled removes when the hub stops.
//!
//! Layout of the sled tree: block key ‖ 0x00 ‖ source number (u64
//! big-endian) → empty.

use super::profile::Profile;

pub struct MatchIndex {
    _db: sled::Db,
    blocks: sled::Tree,
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

fn block_entry(key: &str, source: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 9);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(&source.to_be_bytes());
    k
}

impl MatchIndex {
    pub fn temporary() -> MatchIndex {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()
            .unwrap_or_else(|e| storage_failed(e));
        let blocks = db.open_tree("blocks").unwrap_or_else(|e| storage_failed(e));
        MatchIndex {
            _db: db,
            blocks,
            profiles: Vec::new(),
        }
    }

    /// The stored profile of a source record.
    pub fn profile(&self, source: u64) -> Option<&Profile> {
        self.profiles.get(source as usize)?.as_ref()
    }

    /// Stores `profile` for `source`, replacing its earlier one and blocks.
    pub fn put(&mut self, source: u64, profile: &Profile) {
        let slot = source as usize;
        if self.profiles.len() <= slot {
            self.profiles.resize(slot + 1, None);
        }
        if self.profiles[slot].as_ref() == Some(profile) {
            return;
        }
        let new_keys = profile.block_keys();
        let mut batch = sled::Batch::default();
        if let Some(old) = &self.profiles[slot] {
            for k in old.block_keys() {
                if !new_keys.contains(&k) {
                    batch.remove(block_entry(&k, source));
                }
            }
        }
        for k in &new_keys {
            batch.insert(block_entry(k, source), &[][..]);
        }
        self.blocks
            .apply_batch(batch)
            .unwrap_or_else(|e| storage_failed(e));
        self.profiles[slot] = Some(profile.clone());
    }

    /// Other source records sharing a block with `profile`: at most
    /// `max_block` per block, the earliest indexed first.
    pub fn candidates(&self, profile: &Profile, max_block: usize) -> Candidates {
        let mut sources = Vec::new();
        let mut capped_blocks = 0;
        for key in profile.block_keys() {
            let mut prefix = key.into_bytes();
            prefix.push(0);
            for (n, kv) in self.blocks.scan_prefix(&prefix).enumerate() {
                let (k, _) = kv.unwrap_or_else(|e| storage_failed(e));
                if n == max_block {
                    capped_blocks += 1;
                    break;
                }
                let no = u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8 bytes"));
                sources.push(no);
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
