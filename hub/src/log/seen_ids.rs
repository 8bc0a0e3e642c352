//! The log's filter of event ids: every id the log holds (and some it does
//! not), so that an append reads the id index only for the ids it may hold.
//! Saved in a file beside the log at each checkpoint, so that an open reads
//! it and the ids of the entries after it instead of the whole index.

use std::path::Path;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::LogError;

/// The file beside the log holding the saved filter of logged ids: the
/// SHA-256 of the rest, then (the log entry it was saved at, the filter).
pub(super) const SEEN_IDS_FILE: &str = "seen_ids";

/// Event ids as a growing chain of Bloom filters: an id never inserted is
/// reported absent with a 1% chance of error per filter; an inserted id is
/// never reported absent. When the newest filter holds as many ids as it
/// was made for, a filter twice its size takes the next ones, so the
/// error rate stays bounded as the log grows.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SeenIds {
    filters: Vec<(fastbloom::BloomFilter, usize)>,
    /// Ids in the newest filter.
    in_newest: usize,
}

/// Ids the first filter is made for (about 1.2 MB).
const FIRST_FILTER_IDS: usize = 1 << 20;

impl Default for SeenIds {
    fn default() -> Self {
        SeenIds::starting_with(FIRST_FILTER_IDS)
    }
}

fn bloom(ids: usize) -> (fastbloom::BloomFilter, usize) {
    (
        fastbloom::BloomFilter::with_false_pos(0.01).expected_items(ids),
        ids,
    )
}

impl SeenIds {
    fn starting_with(ids: usize) -> Self {
        SeenIds {
            filters: vec![bloom(ids)],
            in_newest: 0,
        }
    }

    pub(super) fn insert(&mut self, id: Uuid) {
        let (_, capacity) = self.filters[self.filters.len() - 1];
        if self.in_newest >= capacity {
            self.filters.push(bloom(capacity * 2));
            self.in_newest = 0;
        }
        let (newest, _) = self.filters.last_mut().expect("at least one filter");
        newest.insert(&id);
        self.in_newest += 1;
    }

    /// False only for ids never inserted.
    pub(super) fn may_hold(&self, id: Uuid) -> bool {
        self.filters.iter().any(|(f, _)| f.contains(&id))
    }

    /// Saves the filter, as of log entry `seq`, in `dir`: written to a new
    /// file renamed over the old one, with a hash of its content, so that a
    /// file lost or torn in a crash fails the hash and is not used.
    pub(super) fn save(&self, dir: &Path, seq: u64) -> Result<(), LogError> {
        let payload = postcard::to_stdvec(&(seq, self)).map_err(|e| LogError::Damaged {
            seq,
            reason: format!("the filter of logged ids does not encode: {e}"),
        })?;
        let mut content = Sha256::digest(&payload).to_vec();
        content.extend_from_slice(&payload);
        let path = dir.join(SEEN_IDS_FILE);
        let new = dir.join(format!("{SEEN_IDS_FILE}.new"));
        let failed = |error| LogError::File {
            path: path.display().to_string(),
            error,
        };
        std::fs::write(&new, content).map_err(failed)?;
        std::fs::rename(&new, &path).map_err(failed)
    }

    /// The filter saved in `dir` and the log entry it was saved at, if the
    /// file is there and whole.
    pub(super) fn read(dir: &Path) -> Option<(u64, SeenIds)> {
        let content = std::fs::read(dir.join(SEEN_IDS_FILE)).ok()?;
        let (hash, payload) = content.split_at_checked(32)?;
        if Sha256::digest(payload).as_slice() != hash {
            return None;
        }
        postcard::from_bytes(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_hold_every_id_inserted_as_they_grow() {
        let mut seen = SeenIds::starting_with(100);
        let id =
            |i: u128| Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        for i in 0..1_000 {
            seen.insert(id(i));
        }
        assert!(seen.filters.len() > 1, "grew past its first filter");
        assert!((0..1_000).all(|i| seen.may_hold(id(i))));
        let false_hits = (1_000..11_000).filter(|i| seen.may_hold(id(*i))).count();
        assert!(false_hits < 500, "{false_hits} of 10,000 fresh ids held");
    }

    #[test]
    fn a_torn_save_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = SeenIds::default();
        seen.insert(Uuid::from_u128(7));
        seen.save(dir.path(), 3).unwrap();
        let (seq, read) = SeenIds::read(dir.path()).unwrap();
        assert_eq!(seq, 3);
        assert!(read.may_hold(Uuid::from_u128(7)));
        let path = dir.path().join(SEEN_IDS_FILE);
        let mut content = std::fs::read(&path).unwrap();
        content.truncate(content.len() - 1);
        std::fs::write(&path, content).unwrap();
        assert!(SeenIds::read(dir.path()).is_none());
    }
}
