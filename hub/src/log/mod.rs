//! The append-only event log, kept in one redb file behind this narrow
//! interface.
//!
//! **The log is never updated or deleted.** Each entry gets the next sequence
//! number and commits to the previous entry's hash (a hash chain), so any
//! change to a stored entry is detected by `verify`. An index by `event_id`
//! makes a second copy of an event a no-op however late it arrives; a Bloom
//! filter of the indexed ids (`seen_ids`) spares the index read for the ids
//! it has never seen (nearly every event).
//!
//! Layout, in `<dir>/log.redb` (one file, so that an entry, its index key
//! and the input position are written in one transaction):
//! - `entries`: seq → prev_hash (32 bytes) ‖ hash (32) ‖ payload
//! - `event_ids`: event_id (as u128) → seq
//! - `meta`: name → u64. `input_position` is the input position (JetStream
//!   stream sequence) up to which input has been appended, written with the
//!   entries, so that after a crash the hub resumes reading exactly where
//!   its log ends. The other names are bookkeeping that is not part of the
//!   log (`Marker`, e.g. up to which entry outbound updates are published).
//!
//! Every commit that must be durable also records redb's allocator state
//! ("quick repair"), so that opening the log after a kill costs what
//! opening it after a clean stop costs, however long the log is. Reads go
//! in chunks of `CHUNK` entries, each in a read transaction of its own: a
//! long read beside appends (the background chain check) would otherwise
//! keep redb from reusing the pages freed meanwhile.

mod from_sled;
mod seen_ids;

use std::path::Path;
use std::sync::Arc;

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entry::{Encoded, LogPayload};
use seen_ids::SeenIds;

pub type Hash = [u8; 32];

/// Hash of "no previous entry".
pub const GENESIS: Hash = [0; 32];

/// The file the log is kept in, in the hub's data dir.
pub const LOG_FILE: &str = "log.redb";

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const EVENT_IDS: TableDefinition<u128, u64> = TableDefinition::new("event_ids");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The name in `meta` of the input position.
const INPUT_POSITION: &str = "input_position";

/// redb's page cache for the log. The log is appended and read in order;
/// id lookups mostly stop at the Bloom filter.
const LOG_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Entries read per read transaction.
const CHUNK: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log storage: {0}")]
    Storage(String),
    /// redb holds a lock on the file while it is open: another hub, or
    /// another `mdhub` command, has this data dir open.
    #[error("the event log {path} is open in another hub or mdhub command on this data dir; stop it first")]
    InUse { path: String },
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

/// redb's errors, one type per kind of call, all become `Storage`.
macro_rules! storage_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for LogError {
            fn from(e: $error) -> Self {
                LogError::Storage(e.to_string())
            }
        }
    )*};
}
storage_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

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
    db: Arc<redb::Database>,
    last_seq: u64,
    last_hash: Hash,
    /// Every event id in the log (and some that are not): spares the index
    /// read for ids the log cannot hold.
    seen: SeenIds,
}

/// The log's tables as written in one transaction.
struct Tables<'txn> {
    entries: redb::Table<'txn, u64, &'static [u8]>,
    event_ids: redb::Table<'txn, u128, u64>,
    meta: redb::Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, LogError> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES)?,
            event_ids: txn.open_table(EVENT_IDS)?,
            meta: txn.open_table(META)?,
        })
    }
}

/// A write transaction that is durable when it commits (fsync), with the
/// allocator state recorded (see the module note).
fn durable_write(db: &redb::Database) -> Result<redb::WriteTransaction, LogError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// A write transaction that becomes durable with the next durable one.
fn quick_write(db: &redb::Database) -> Result<redb::WriteTransaction, LogError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    Ok(txn)
}

/// The stored entries from `from` up to `until` (both inclusive), at most
/// `CHUNK` of them, read in one transaction: (seq, stored bytes).
fn read_chunk(db: &redb::Database, from: u64, until: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    if from > until {
        return Ok(Vec::new());
    }
    let table = db.begin_read()?.open_table(ENTRIES)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    for kv in table.range(from..=until)?.take(CHUNK) {
        let (k, v) = kv?;
        chunk.push((k.value(), v.value().to_vec()));
    }
    Ok(chunk)
}

/// The stored entries from `from` on, in order, read a chunk at a time.
fn entries_from(
    db: Arc<redb::Database>,
    from: u64,
) -> impl Iterator<Item = Result<(u64, Vec<u8>), LogError>> {
    let mut next = from.max(1);
    let mut chunk = Vec::new().into_iter();
    let mut done = false;
    std::iter::from_fn(move || loop {
        if let Some(entry) = chunk.next() {
            return Some(Ok(entry));
        }
        if done {
            return None;
        }
        match read_chunk(&db, next, u64::MAX) {
            Ok(read) => {
                done = read.len() < CHUNK;
                if let Some((seq, _)) = read.last() {
                    next = seq + 1;
                }
                chunk = read.into_iter();
            }
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
        }
    })
}

/// Checks the chain of the entries after `seq` (whose chain hash is `hash`)
/// up to `until`: see `EventLog::verify`. Returns the last entry checked.
fn verify_chain(db: &redb::Database, seq: u64, hash: Hash, until: u64) -> Result<u64, LogError> {
    let mut expected_prev = hash;
    let mut expected_seq = seq + 1;
    loop {
        let chunk = read_chunk(db, expected_seq, until)?;
        let event_ids = db.begin_read()?.open_table(EVENT_IDS)?;
        for (seq, bytes) in &chunk {
            let entry = decode(*seq, bytes)?;
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
            if event_ids.get(entry.payload.event_id().as_u128())?.is_none() {
                return Err(LogError::Damaged {
                    seq: entry.seq,
                    reason: "its event_id is not indexed".to_string(),
                });
            }
            expected_prev = entry.hash;
            expected_seq += 1;
        }
        if chunk.len() < CHUNK {
            return Ok(expected_seq - 1);
        }
    }
}

/// Reads the log beside a running hub: the check of the entries a start
/// resumed past (the hub checks the rest at start).
#[derive(Clone)]
pub struct LogReader {
    db: Arc<redb::Database>,
}

impl LogReader {
    /// `EventLog::verify` for the entries up to `until`, which must all
    /// be there: returns `until`.
    pub fn verify_until(&self, until: u64) -> Result<u64, LogError> {
        let last = verify_chain(&self.db, 0, GENESIS, until)?;
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

impl EventLog {
    /// Opens the log in `dir` (`LOG_FILE`), creating it if there is none.
    /// A log an earlier build wrote in sled there is moved into it first
    /// (`from_sled`).
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|error| LogError::File {
            path: dir.display().to_string(),
            error,
        })?;
        let path = dir.join(LOG_FILE);
        if !path.exists() && from_sled::present(dir) {
            from_sled::migrate(dir, &path)?;
        }
        let db = redb::Database::builder()
            .set_cache_size(LOG_CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => LogError::InUse {
                    path: path.display().to_string(),
                },
                e => LogError::Storage(format!("opening {}: {e}", path.display())),
            })?;
        // A new file gets its tables; an existing one is not written to
        // (a read-only command on the log writes nothing).
        let has_tables = {
            let read = db.begin_read()?;
            read.open_table(ENTRIES).is_ok()
                && read.open_table(EVENT_IDS).is_ok()
                && read.open_table(META).is_ok()
        };
        if !has_tables {
            let txn = durable_write(&db)?;
            Tables::open(&txn)?;
            txn.commit()?;
        }
        let entries = db.begin_read()?.open_table(ENTRIES)?;
        let (last_seq, last_hash) = match entries.last()? {
            Some((k, v)) => {
                let seq = k.value();
                (seq, decode(seq, v.value())?.hash)
            }
            None => (0, GENESIS),
        };
        let db = Arc::new(db);
        let seen = open_seen_ids(&db, dir, last_seq)?;
        Ok(EventLog {
            dir: dir.to_path_buf(),
            db,
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
    /// transaction, together with the input `position` they were read up
    /// to (if the input has positions). Not durable until `flush`. Takes
    /// the bodies of the new entries (see `prepare_append`).
    pub fn append(
        &mut self,
        entries: &mut [Encoded],
        position: Option<u64>,
    ) -> Result<Vec<Appended>, LogError> {
        let (prepared, outcomes, tail) = self.prepare_append(entries, position)?;
        let txn = quick_write(&self.db)?;
        prepared.write(&txn)?;
        txn.commit()?;
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
        // Ids appended earlier in this same batch are not in the log yet:
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
                self.logged_seq(id)?
            } else {
                None
            };
            if let Some(dup) = indexed {
                // A second copy is rare (a redelivery, a retry): reading the
                // logged entry to compare costs only then.
                let same = match read_chunk(&self.db, dup, dup)?.pop() {
                    Some((_, logged)) => logged.get(64..) == Some(&entry.body[..]),
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

    /// The sequence of the entry holding event `id`, if the log holds it.
    fn logged_seq(&self, id: Uuid) -> Result<Option<u64>, LogError> {
        let event_ids = self.db.begin_read()?.open_table(EVENT_IDS)?;
        let seq = event_ids.get(id.as_u128())?.map(|seq| seq.value());
        Ok(seq)
    }

    /// The input position recorded with the last append (0: none yet).
    pub fn position(&self) -> Result<u64, LogError> {
        self.marker(INPUT_POSITION).get()
    }

    /// Makes everything appended so far durable (fsync).
    pub fn flush(&self) -> Result<(), LogError> {
        durable_write(&self.db)?.commit()?;
        Ok(())
    }

    /// A handle that writes a prepared append and flushes it from another
    /// thread, so that the write and the fsync's wait overlap with work that
    /// does not need durability yet.
    pub fn writer(&self) -> Writer {
        Writer {
            db: Arc::clone(&self.db),
        }
    }

    pub fn get(&self, seq: u64) -> Result<Option<LogEntry>, LogError> {
        match read_chunk(&self.db, seq, seq)?.pop() {
            Some((seq, bytes)) => Ok(Some(decode(seq, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn contains_event(&self, event_id: Uuid) -> Result<bool, LogError> {
        Ok(self.logged_seq(event_id)?.is_some())
    }

    /// Entries from `from` (inclusive) on, in order, each checked against its
    /// own hash. Use `verify` to check the links between entries too.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<LogEntry, LogError>> + '_ {
        entries_from(Arc::clone(&self.db), from)
            .map(|entry| entry.and_then(|(seq, bytes)| decode(seq, &bytes)))
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
        verify_chain(&self.db, seq, hash, u64::MAX)
    }

    /// The log's entries for a check that runs beside the hub, which goes
    /// on appending (`LogReader::verify_until`).
    pub fn reader(&self) -> LogReader {
        LogReader {
            db: Arc::clone(&self.db),
        }
    }

    /// Saves the Bloom filter of logged ids as of now in a file beside the
    /// log, so that the next open reads it and the ids of the entries after
    /// it, instead of every id in the index (`open_seen_ids`). Not in the
    /// log's store: a value of megabytes there would be written again at
    /// each save.
    pub fn save_seen_ids(&self) -> Result<(), LogError> {
        self.seen.save(&self.dir, self.last_seq)
    }

    /// A counter kept beside the log (not part of it), usable without
    /// holding the log.
    pub fn marker(&self, key: &'static str) -> Marker {
        Marker {
            db: Arc::clone(&self.db),
            key,
        }
    }
}

/// The filter of logged ids for a log ending at `last_seq`: the one saved
/// (`save_seen_ids`) with the ids of the entries after it, or, without a
/// usable save, every id in the index. Either way it holds every logged id.
fn open_seen_ids(db: &Arc<redb::Database>, dir: &Path, last_seq: u64) -> Result<SeenIds, LogError> {
    let saved = SeenIds::read(dir).filter(|(seq, _)| *seq <= last_seq);
    if let Some((seq, mut seen)) = saved {
        for entry in entries_from(Arc::clone(db), seq + 1) {
            let (seq, bytes) = entry?;
            seen.insert(decode(seq, &bytes)?.payload.event_id());
        }
        return Ok(seen);
    }
    let mut seen = SeenIds::default();
    let event_ids = db.begin_read()?.open_table(EVENT_IDS)?;
    for kv in event_ids.iter()? {
        seen.insert(Uuid::from_u128(kv?.0.value()));
    }
    Ok(seen)
}

/// Writes prepared appends to the log it came from and flushes them (see
/// `EventLog::writer`).
pub struct Writer {
    db: Arc<redb::Database>,
}

impl Writer {
    /// Writes an append from `prepare_append` and makes it durable (fsync).
    pub fn write_durably(&self, prepared: PreparedAppend) -> Result<(), LogError> {
        let txn = durable_write(&self.db)?;
        prepared.write(&txn)?;
        txn.commit()?;
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
    /// Writes the entries, their index keys and the input position in
    /// `txn` (the layout at the top of this file).
    fn write(self, txn: &redb::WriteTransaction) -> Result<(), LogError> {
        let mut tables = Tables::open(txn)?;
        let mut value = Vec::new();
        for row in self.rows {
            value.clear();
            value.extend_from_slice(&row.prev);
            value.extend_from_slice(&row.hash);
            value.extend_from_slice(&row.body);
            tables.entries.insert(row.seq, &value[..])?;
            tables.event_ids.insert(row.id.as_u128(), row.seq)?;
        }
        if let Some(p) = self.position {
            tables.meta.insert(INPUT_POSITION, p)?;
        }
        Ok(())
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
/// published. In the log's store; durable with the log's next flush.
#[derive(Clone)]
pub struct Marker {
    db: Arc<redb::Database>,
    key: &'static str,
}

impl Marker {
    pub fn get(&self) -> Result<u64, LogError> {
        let meta = self.db.begin_read()?.open_table(META)?;
        let value = meta.get(self.key)?.map_or(0, |v| v.value());
        Ok(value)
    }

    pub fn set(&self, value: u64) -> Result<(), LogError> {
        let txn = quick_write(&self.db)?;
        txn.open_table(META)?.insert(self.key, value)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::samples::sample_event;

    fn enc(payloads: &[LogPayload]) -> Vec<Encoded> {
        payloads.iter().cloned().map(Encoded::new).collect()
    }

    /// Entry `seq` as stored.
    fn raw_entry(log: &EventLog, seq: u64) -> Vec<u8> {
        read_chunk(&log.db, seq, seq).unwrap().pop().unwrap().1
    }

    /// Changes the log behind its back, as a tamperer would.
    fn tamper(log: &EventLog, change: impl FnOnce(&mut Tables<'_>)) {
        let txn = log.db.begin_write().unwrap();
        change(&mut Tables::open(&txn).unwrap());
        txn.commit().unwrap();
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
        tamper(&log, |t| {
            for id in &ids {
                t.event_ids.remove(id.as_u128()).unwrap();
            }
        });
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
        tamper(&log, |t| {
            t.event_ids.insert(ids[0].as_u128(), 1).unwrap();
        });
        drop(log);
        let log = EventLog::open(dir.path()).unwrap();
        assert!(log.seen.may_hold(ids[0]));
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
        let mut raw = raw_entry(&log, 2);
        let n = raw.len();
        raw[n - 3] ^= 1;
        tamper(&log, |t| {
            t.entries.insert(2, &raw[..]).unwrap();
        });
        assert_eq!(reader.verify_until(1).unwrap(), 1);
        let changed = reader.verify_until(3).unwrap_err().to_string();
        assert!(changed.contains("entry 2"), "{changed}");
    }

    #[test]
    fn reads_and_checks_go_on_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let n = CHUNK as u64 + 5;
        let events: Vec<LogPayload> = (1..=n)
            .map(|i| LogPayload::Change(sample_event("crm", &i.to_string(), "a@x.com")))
            .collect();
        log.append(&mut enc(&events), None).unwrap();
        assert_eq!(log.verify().unwrap(), n);
        let seqs: Vec<u64> = log.iter_from(1).map(|e| e.unwrap().seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        let tail: Vec<u64> = log
            .iter_from(CHUNK as u64)
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(tail, (CHUNK as u64..=n).collect::<Vec<_>>());
        tamper(&log, |t| {
            t.entries.remove(CHUNK as u64 + 2).unwrap();
        });
        let err = log.verify().unwrap_err().to_string();
        assert!(err.contains(&format!("entry {}", CHUNK + 2)), "{err}");
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
        let mut raw = raw_entry(&log, 1);
        let n = raw.len();
        raw[n - 3] ^= 1;
        tamper(&log, |t| {
            t.entries.insert(1, &raw[..]).unwrap();
        });
        let err = log.verify().unwrap_err().to_string();
        assert!(err.contains("entry 1 is damaged"), "{err}");
    }
}
