//! The append-only event log, kept in sled behind this narrow interface.
//!
//! **The log is never updated or deleted.** Each entry gets the next sequence
//! number and commits to the previous entry's hash (a hash chain), so any
//! change to a stored entry is detected by `verify`. An index by `event_id`
//! makes a second copy of an event a no-op however late it arrives; a Bloom
//! filter of the indexed ids spares the index read for the ids it has
//! never seen (nearly every event). It is saved at each checkpoint; an
//! open reads it and adds the ids of the entries after it.
//!
//! Layout in one sled tree (one tree so that an entry and its index key are
//! written in one atomic batch):
//! - `e` + seq (u64 big-endian) → prev_hash (32 bytes) ‖ hash (32) ‖ payload
//! - `i` + event_id (16 bytes)  → seq (u64 big-endian)
//! - `p` → the input position (JetStream stream sequence) up to which input
//!   has been appended, written in the same atomic batch as the entries, so
//!   that after a crash the hub resumes reading exactly where its log ends.
//!
//! A second tree, `meta`, holds bookkeeping that is not part of the log
//! (e.g. up to which sequence outbound updates have been published). The
//! file `seen_ids` beside them holds the saved filter of ids.

use std::path::Path;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entry::{Encoded, LogPayload};

pub type Hash = [u8; 32];

/// Hash of "no previous entry".
pub const GENESIS: Hash = [0; 32];

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("event log entry {seq} is damaged: {reason}")]
    Damaged { seq: u64, reason: String },
    /// A file the log keeps beside its store (the saved filter of ids).
    #[error("event log file {path}: {error}")]
    File { path: String, error: std::io::Error },
    /// Not the log's own storage: the derived state's, which the hub
    /// writes beside it.
    #[error(transparent)]
    DerivedStore(#[from] crate::store::StoreError),
}

/// One stored entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    pub payload: LogPayload,
}

/// What happened to one event offered for append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    New(u64),
    /// Already in the log at this sequence, with the same content; nothing
    /// written.
    Duplicate(u64),
    /// Its id is in the log at this sequence with other content (another
    /// system, record or fields); nothing written.
    Conflicting(u64),
}

pub struct EventLog {
    /// The directory the log is kept in.
    dir: std::path::PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    meta: sled::Tree,
    last_seq: u64,
    last_hash: Hash,
    /// Every event id in the log (and some that are not): spares the index
    /// read for ids the log cannot hold.
    seen: SeenIds,
}

const POSITION_KEY: &[u8] = b"p";

/// sled's page cache for the log.
const LOG_CACHE_BYTES: u64 = 64 * 1024 * 1024;

fn entry_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'e';
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn index_key(event_id: Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'i';
    k[1..].copy_from_slice(event_id.as_bytes());
    k
}

/// Checks the chain of the entries after `seq` (whose chain hash is `hash`)
/// up to `until`: see `EventLog::verify`. Returns the last entry checked.
fn verify_chain(tree: &sled::Tree, seq: u64, hash: Hash, until: u64) -> Result<u64, LogError> {
    let mut expected_prev = hash;
    let mut expected_seq = seq + 1;
    let entries = tree.range(entry_key(seq + 1)..=entry_key(until));
    for kv in entries {
        let (k, v) = kv?;
        let entry = decode(u64::from_be_bytes(k[1..9].try_into().expect("8 bytes")), &v)?;
        if entry.seq != expected_seq {
            return Err(LogError::Damaged {
                seq: expected_seq,
                reason: format!("missing; the next entry is {}", entry.seq),
            });
        }
        if entry.prev_hash != expected_prev {
            return Err(LogError::Damaged {
                seq: entry.seq,
                reason: "does not commit to the previous entry's hash".to_string(),
            });
        }
        if !tree.contains_key(index_key(entry.payload.event_id()))? {
            return Err(LogError::Damaged {
                seq: entry.seq,
                reason: "its event_id is not indexed".to_string(),
            });
        }
        expected_prev = entry.hash;
        expected_seq += 1;
    }
    Ok(expected_seq - 1)
}

/// Reads the log beside a running hub: the check of the entries a start
/// resumed past (the hub checks the rest at start).
#[derive(Clone)]
pub struct LogReader {
    tree: sled::Tree,
}

impl LogReader {
    /// `EventLog::verify` for the entries up to `until`, which must all
    /// be there: returns `until`.
    pub fn verify_until(&self, until: u64) -> Result<u64, LogError> {
        let last = verify_chain(&self.tree, 0, GENESIS, until)?;
        if last < until {
            return Err(LogError::Damaged {
                seq: last + 1,
                reason: "missing".to_string(),
            });
        }
        Ok(last)
    }
}

/// The chain hash: commits to the previous hash, the sequence and the payload.
pub fn chain_hash(prev: &Hash, seq: u64, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(payload);
    h.finalize().into()
}

fn decode(seq: u64, bytes: &[u8]) -> Result<LogEntry, LogError> {
    let damaged = |reason: String| LogError::Damaged { seq, reason };
    if bytes.len() < 64 {
        return Err(damaged(format!(
            "{} bytes, shorter than its header",
            bytes.len()
        )));
    }
    let prev_hash: Hash = bytes[..32].try_into().expect("32 bytes");
    let hash: Hash = bytes[32..64].try_into().expect("32 bytes");
    let body = &bytes[64..];
    if chain_hash(&prev_hash, seq, body) != hash {
        return Err(damaged("hash does not match its content".to_string()));
    }
    let payload = serde_json::from_slice(body).map_err(|e| damaged(format!("payload: {e}")))?;
    Ok(LogEntry {
        seq,
        prev_hash,
        hash,
        payload,
    })
}

/// Opens a sled database. sled releases its file lock a moment after the
/// last handle in this process is dropped (its threads hold the store
/// briefly), so reopening at once (a restart in tests, an audit rebuild)
/// may find it still held: wait for it, up to two seconds.
fn open_waiting_for_lock(config: &sled::Config) -> sled::Result<sled::Db> {
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

impl EventLog {
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let config = sled::Config::new()
            .path(dir)
            // The log is appended and read in order; id lookups mostly stop
            // at the Bloom filter. sled's default page cache (1 GiB) would
            // grow the hub's memory with the log's size for nothing.
            .cache_capacity(LOG_CACHE_BYTES)
            // Durability comes from our explicit flush before each ack, not
            // from sled's background timer.
            .flush_every_ms(None);
        let db = open_waiting_for_lock(&config)?;
        let tree = db.open_tree("log")?;
        let meta = db.open_tree("meta")?;
        let (last_seq, last_hash) = match tree.scan_prefix(b"e").next_back() {
            Some(kv) => {
                let (k, v) = kv?;
                let seq = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
                let entry = decode(seq, &v)?;
                (seq, entry.hash)
            }
            None => (0, GENESIS),
        };
        let seen = open_seen_ids(&tree, dir, last_seq)?;
        Ok(EventLog {
            dir: dir.to_path_buf(),
            db,
            tree,
            meta,
            last_seq,
            last_hash,
            seen,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// Appends the payloads that are not in the log yet, in order, in one
    /// atomic sled batch, together with the input `position` they were read
    /// up to (if the input has positions). Not durable until `flush`. Takes
    /// the bodies of the new entries (see `prepare_append`).
    pub fn append(
        &mut self,
        entries: &mut [Encoded],
        position: Option<u64>,
    ) -> Result<Vec<Appended>, LogError> {
        let (prepared, outcomes, tail) = self.prepare_append(entries, position)?;
        self.tree.apply_batch(prepared.into_batch())?;
        self.advance(tail);
        Ok(outcomes)
    }

    /// `append` up to the write: the new entries with their place in the
    /// chain, what becomes of each payload, and the chain's new tail, for
    /// `advance` once they are written. The new entries' bodies move into
    /// the prepared append. Lets the caller write (`writer`) on another
    /// thread while it derives from the outcomes. Nothing changes until then.
    pub fn prepare_append(
        &mut self,
        entries: &mut [Encoded],
        position: Option<u64>,
    ) -> Result<(PreparedAppend, Vec<Appended>, ChainTail), LogError> {
        let mut rows: Vec<NewEntry> = Vec::with_capacity(entries.len());
        let mut outcomes = Vec::with_capacity(entries.len());
        // Ids appended earlier in this same batch are not in the tree yet:
        // their sequence and row.
        let mut in_batch: std::collections::HashMap<Uuid, (u64, usize)> = Default::default();
        let (mut seq, mut prev) = (self.last_seq, self.last_hash);
        for entry in entries {
            let id = entry.payload.event_id();
            if let Some(&(dup, row)) = in_batch.get(&id) {
                outcomes.push(if rows[row].body == entry.body {
                    Appended::Duplicate(dup)
                } else {
                    Appended::Conflicting(dup)
                });
                continue;
            }
            let indexed = if self.seen.may_hold(id) {
                self.tree.get(index_key(id))?
            } else {
                None
            };
            if let Some(found) = indexed {
                let dup = u64::from_be_bytes(found.as_ref().try_into().map_err(|_| {
                    LogError::Damaged {
                        seq: 0,
                        reason: format!("index entry for {id} is not 8 bytes"),
                    }
                })?);
                // A second copy is rare (a redelivery, a retry): reading the
                // logged entry to compare costs only then.
                let same = match self.tree.get(entry_key(dup))? {
                    Some(logged) => logged.get(64..) == Some(&entry.body[..]),
                    None => false,
                };
                outcomes.push(if same {
                    Appended::Duplicate(dup)
                } else {
                    Appended::Conflicting(dup)
                });
                continue;
            }
            seq += 1;
            let hash = chain_hash(&prev, seq, &entry.body);
            rows.push(NewEntry {
                seq,
                id,
                prev,
                hash,
                body: std::mem::take(&mut entry.body),
            });
            in_batch.insert(id, (seq, rows.len() - 1));
            self.seen.insert(id);
            outcomes.push(Appended::New(seq));
            prev = hash;
        }
        let prepared = PreparedAppend { rows, position };
        Ok((prepared, outcomes, ChainTail { seq, hash: prev }))
    }

    /// Moves the chain's tail past a prepared append that was written.
    pub fn advance(&mut self, tail: ChainTail) {
        self.last_seq = tail.seq;
        self.last_hash = tail.hash;
    }

    /// The input position recorded with the last append (0: none yet).
    pub fn position(&self) -> Result<u64, LogError> {
        Ok(self
            .tree
            .get(POSITION_KEY)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Makes everything appended so far durable (fsync).
    pub fn flush(&self) -> Result<(), LogError> {
        self.db.flush()?;
        Ok(())
    }

    /// A handle that writes a prepared append and flushes it from another
    /// thread, so that the write and the fsync's wait overlap with work that
    /// does not need durability yet.
    pub fn writer(&self) -> Writer {
        Writer {
            db: self.db.clone(),
            tree: self.tree.clone(),
        }
    }

    pub fn get(&self, seq: u64) -> Result<Option<LogEntry>, LogError> {
        match self.tree.get(entry_key(seq))? {
            Some(v) => Ok(Some(decode(seq, &v)?)),
            None => Ok(None),
        }
    }

    pub fn contains_event(&self, event_id: Uuid) -> Result<bool, LogError> {
        Ok(self.tree.contains_key(index_key(event_id))?)
    }

    /// Entries from `from` (inclusive) on, in order, each checked against its
    /// own hash. Use `verify` to check the links between entries too.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<LogEntry, LogError>> + '_ {
        self.tree
            .range(entry_key(from.max(1))..=entry_key(u64::MAX))
            .map(|kv| {
                let (k, v) = kv?;
                let seq = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
                decode(seq, &v)
            })
    }

    /// Checks the whole chain: every entry's hash, that each entry commits to
    /// its predecessor, that sequence numbers have no gaps, and that every
    /// entry is indexed. Returns the number of entries.
    pub fn verify(&self) -> Result<u64, LogError> {
        self.verify_after(0, GENESIS)
    }

    /// `verify` for the entries after `seq`, whose chain hash is `hash`
    /// (a point checked before: a start checks the log's tail since its
    /// checkpoint). Returns the number of entries.
    pub fn verify_after(&self, seq: u64, hash: Hash) -> Result<u64, LogError> {
        verify_chain(&self.tree, seq, hash, u64::MAX)
    }

    /// The log's entries for a check that runs beside the hub, which goes
    /// on appending (`LogReader::verify_until`).
    pub fn reader(&self) -> LogReader {
        LogReader {
            tree: self.tree.clone(),
        }
    }

    /// Saves the Bloom filter of logged ids as of now in a file beside the
    /// log (`SEEN_IDS_FILE`), so that the next open reads it and the ids of
    /// the entries after it, instead of every id in the index
    /// (`open_seen_ids`). Written to a new file renamed over the old one,
    /// with a hash of its content: a file lost or torn in a crash fails the
    /// hash, and the next open reads the index instead. Not in sled: a
    /// value of megabytes there would be written again at every flush.
    pub fn save_seen_ids(&self) -> Result<(), LogError> {
        let payload =
            postcard::to_stdvec(&(self.last_seq, &self.seen)).map_err(|e| LogError::Damaged {
                seq: self.last_seq,
                reason: format!("the filter of logged ids does not encode: {e}"),
            })?;
        let mut content = Sha256::digest(&payload).to_vec();
        content.extend_from_slice(&payload);
        let path = self.dir.join(SEEN_IDS_FILE);
        let new = self.dir.join(format!("{SEEN_IDS_FILE}.new"));
        let failed = |error| LogError::File {
            path: path.display().to_string(),
            error,
        };
        std::fs::write(&new, content).map_err(failed)?;
        std::fs::rename(&new, &path).map_err(failed)
    }

    /// A counter kept beside the log (not part of it), usable without
    /// holding the log.
    pub fn marker(&self, key: &'static str) -> Marker {
        Marker {
            tree: self.meta.clone(),
            key,
        }
    }
}

/// The file beside the log holding the saved filter of logged ids: the
/// SHA-256 of the rest, then (the log entry it was saved at, the filter).
const SEEN_IDS_FILE: &str = "seen_ids";

/// The filter saved in `dir`, if the file is there and whole.
fn read_seen_ids(dir: &Path) -> Option<(u64, SeenIds)> {
    let content = std::fs::read(dir.join(SEEN_IDS_FILE)).ok()?;
    let (hash, payload) = content.split_at_checked(32)?;
    if Sha256::digest(payload).as_slice() != hash {
        return None;
    }
    postcard::from_bytes(payload).ok()
}

/// The filter of logged ids for a log ending at `last_seq`: the one saved
/// (`save_seen_ids`) with the ids of the entries after it, or, without a
/// usable save, every id in the index. Either way it holds every logged id.
fn open_seen_ids(tree: &sled::Tree, dir: &Path, last_seq: u64) -> Result<SeenIds, LogError> {
    let saved = read_seen_ids(dir).filter(|(seq, _)| *seq <= last_seq);
    if let Some((seq, mut seen)) = saved {
        for kv in tree.range(entry_key(seq + 1)..=entry_key(u64::MAX)) {
            let (k, v) = kv?;
            let seq = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
            seen.insert(decode(seq, &v)?.payload.event_id());
        }
        return Ok(seen);
    }
    let mut seen = SeenIds::default();
    for key in tree.scan_prefix(b"i").keys() {
        let key = key?;
        if let Ok(id) = Uuid::from_slice(&key[1..]) {
            seen.insert(id);
        }
    }
    Ok(seen)
}

/// Event ids as a growing chain of Bloom filters: an id never inserted is
/// reported absent with a 1% chance of error per filter; an inserted id is
/// never reported absent. When the newest filter holds as many ids as it
/// was made for, a filter twice its size takes the next ones, so the
/// error rate stays bounded as the log grows.
#[derive(serde::Serialize, serde::Deserialize)]
struct SeenIds {
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

    fn insert(&mut self, id: Uuid) {
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
    fn may_hold(&self, id: Uuid) -> bool {
        self.filters.iter().any(|(f, _)| f.contains(&id))
    }
}

/// Writes prepared appends to the log it came from and flushes them (see
/// `EventLog::writer`).
pub struct Writer {
    db: sled::Db,
    tree: sled::Tree,
}

impl Writer {
    /// Writes an append from `prepare_append` and makes it durable (fsync).
    pub fn write_durably(&self, prepared: PreparedAppend) -> Result<(), LogError> {
        self.tree.apply_batch(prepared.into_batch())?;
        self.db.flush()?;
        Ok(())
    }
}

/// New entries placed in the chain, not written yet (`prepare_append`).
pub struct PreparedAppend {
    rows: Vec<NewEntry>,
    position: Option<u64>,
}

struct NewEntry {
    seq: u64,
    id: Uuid,
    prev: Hash,
    hash: Hash,
    body: Vec<u8>,
}

impl PreparedAppend {
    /// The entries, their index keys and the input position, as one atomic
    /// sled batch (the layout at the top of this file).
    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for row in self.rows {
            let mut value = Vec::with_capacity(64 + row.body.len());
            value.extend_from_slice(&row.prev);
            value.extend_from_slice(&row.hash);
            value.extend_from_slice(&row.body);
            batch.insert(&entry_key(row.seq)[..], value);
            batch.insert(&index_key(row.id)[..], &row.seq.to_be_bytes()[..]);
        }
        if let Some(p) = self.position {
            batch.insert(POSITION_KEY, &p.to_be_bytes()[..]);
        }
        batch
    }
}

/// The hash chain's end after a prepared append: its last sequence number
/// and entry hash.
#[derive(Debug, Clone, Copy)]
pub struct ChainTail {
    seq: u64,
    hash: Hash,
}

/// Bookkeeping beside the log, e.g. up to which entry outbound messages are
/// published. Shares sled's store; durable with the log's next flush.
#[derive(Clone)]
pub struct Marker {
    tree: sled::Tree,
    key: &'static str,
}

impl Marker {
    pub fn get(&self) -> Result<u64, LogError> {
        Ok(self
            .tree
            .get(self.key)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    pub fn set(&self, value: u64) -> Result<(), LogError> {
        self.tree.insert(self.key, &value.to_be_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::sample_event;

    fn enc(payloads: &[LogPayload]) -> Vec<Encoded> {
        payloads.iter().cloned().map(Encoded::new).collect()
    }

    #[test]
    fn an_event_id_with_other_content_is_a_conflict_not_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let a = sample_event("crm", "1", "a@x.com");
        let mut other_record = a.clone();
        other_record.record_id = "2".into();
        let mut other_system = a.clone();
        other_system.system = "erp".into();
        let out = log
            .append(
                &mut enc(&[
                    LogPayload::Change(a.clone()),
                    LogPayload::Change(other_record.clone()),
                ]),
                None,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![Appended::New(1), Appended::Conflicting(1)],
            "in one batch"
        );
        log.flush().unwrap();
        drop(log);
        let mut log = EventLog::open(dir.path()).unwrap();
        let out = log
            .append(
                &mut enc(&[
                    LogPayload::Change(other_system),
                    LogPayload::Change(a.clone()),
                ]),
                None,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![Appended::Conflicting(1), Appended::Duplicate(1)],
            "across batches and restarts"
        );
        assert_eq!(log.last_seq(), 1);
        assert_eq!(log.get(1).unwrap().unwrap().payload, LogPayload::Change(a));
    }

    #[test]
    fn appends_dedupes_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let a = LogPayload::Change(sample_event("crm", "1", "a@x.com"));
        let b = LogPayload::Change(sample_event("erp", "9", "a@x.com"));
        let out = log
            .append(&mut enc(&[a.clone(), b.clone(), a.clone()]), Some(7))
            .unwrap();
        assert_eq!(
            out,
            vec![Appended::New(1), Appended::New(2), Appended::Duplicate(1)]
        );
        log.flush().unwrap();
        assert_eq!(
            log.append(&mut enc(&[b]), None).unwrap(),
            vec![Appended::Duplicate(2)]
        );
        assert_eq!(log.verify().unwrap(), 2);
        drop(log);
        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.last_seq(), 2);
        assert_eq!(log.position().unwrap(), 7);
        assert_eq!(log.get(1).unwrap().unwrap().payload, a);
        assert_eq!(
            log.append(&mut enc(&[a]), None).unwrap(),
            vec![Appended::Duplicate(1)],
            "still a duplicate after a restart"
        );
    }

    #[test]
    fn an_open_reads_the_saved_filter_of_ids_and_the_entries_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let event = |id: &str| LogPayload::Change(sample_event("crm", id, "a@x.com"));
        log.append(&mut enc(&[event("1"), event("2")]), None)
            .unwrap();
        log.save_seen_ids().unwrap();
        log.append(&mut enc(&[event("3")]), None).unwrap();
        log.flush().unwrap();
        // With their index keys gone, only the saved filter (1, 2) and the
        // entries after it (3) can tell the open about these ids.
        let ids: Vec<Uuid> = (1..=3)
            .map(|seq| log.get(seq).unwrap().unwrap().payload.event_id())
            .collect();
        for id in &ids {
            log.tree.remove(index_key(*id)).unwrap();
        }
        drop(log);
        let log = EventLog::open(dir.path()).unwrap();
        for id in &ids {
            assert!(log.seen.may_hold(*id), "{id} is in the filter");
        }

        // A save newer than the log (it lost its tail) is not used: every
        // id of the index is read instead.
        let log = EventLog {
            last_seq: 99,
            seen: SeenIds::default(),
            ..log
        };
        log.save_seen_ids().unwrap();
        log.tree
            .insert(index_key(ids[0]), &1u64.to_be_bytes())
            .unwrap();
        log.flush().unwrap();
        drop(log);
        let log = EventLog::open(dir.path()).unwrap();
        assert!(log.seen.may_hold(ids[0]));

        // A torn file is not used either.
        log.save_seen_ids().unwrap();
        let path = dir.path().join(SEEN_IDS_FILE);
        let mut content = std::fs::read(&path).unwrap();
        content.truncate(content.len() - 1);
        std::fs::write(&path, content).unwrap();
        assert!(read_seen_ids(dir.path()).is_none());
    }

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
    fn the_reader_checks_the_chain_up_to_a_point_beside_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let events: Vec<LogPayload> = (1..=3)
            .map(|i| LogPayload::Change(sample_event("crm", &i.to_string(), "a@x.com")))
            .collect();
        log.append(&mut enc(&events), None).unwrap();
        let reader = log.reader();
        assert_eq!(reader.verify_until(2).unwrap(), 2);
        let missing = reader.verify_until(4).unwrap_err().to_string();
        assert!(
            missing.contains("entry 4") && missing.contains("missing"),
            "{missing}"
        );
        let mut raw = log.tree.get(entry_key(2)).unwrap().unwrap().to_vec();
        let n = raw.len();
        raw[n - 3] ^= 1;
        log.tree.insert(entry_key(2), raw).unwrap();
        assert_eq!(reader.verify_until(1).unwrap(), 1);
        let changed = reader.verify_until(3).unwrap_err().to_string();
        assert!(changed.contains("entry 2"), "{changed}");
    }

    #[test]
    fn a_changed_entry_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        log.append(
            &mut enc(&[LogPayload::Change(sample_event("crm", "1", "a@x.com"))]),
            None,
        )
        .unwrap();
        let mut raw = log.tree.get(entry_key(1)).unwrap().unwrap().to_vec();
        let n = raw.len();
        raw[n - 3] ^= 1;
        log.tree.insert(entry_key(1), raw).unwrap();
        let err = log.verify().unwrap_err().to_string();
        assert!(err.contains("entry 1 is damaged"), "{err}");
    }
}
