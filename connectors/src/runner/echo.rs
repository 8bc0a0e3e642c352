//! Echo suppression and the `base` of captured changes, per record: what
//! the connector last wrote, and which golden version the system's next
//! captured change was made with in view.
//!
//! Two kinds of source:
//! - A source that marks its own writes (PostgreSQL's replication origin,
//!   MariaDB's `skip_replication`) hands every transaction over in commit
//!   order, the connector's writes flagged. A written version becomes the
//!   record's `base` only when that write's own transaction passes capture:
//!   a real edit committed before the write but captured after it was made
//!   without the written version in view, and must not claim it (the hub
//!   would take its older values for edits on top of that version). The
//!   write then overwrote that edit, so when a real edit was published
//!   while the write waited for its capture, the write's own capture is
//!   published too: the hub learns what the system holds and sends it the
//!   golden values again if they differ.
//! - A source that reads the current state (a REST poll, a CSV export) sees
//!   every write committed before the read began. Each read is stamped with
//!   the count of writes noted when it began; a read that began before the
//!   record's last write was noted may predate it, and its change keeps the
//!   version before that write as `base`.
//!
//! For both, a captured image equal to the one the system returned when the
//! last write committed is an echo (nothing else changed) and is dropped;
//! once a different image is captured, the same image later is a real edit.
//!
//! Held in memory: after a restart the first echo of a write made before it
//! goes to the hub, which recognizes it by its content against the golden
//! record and changes nothing.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Canonical fields of one record.
pub type Fields = BTreeMap<String, Value>;

/// How long a write may wait for its own capture before its version counts
/// as seen anyway. A write that changed nothing leaves no transaction in
/// some systems' logs (MariaDB logs no row for an update to equal values);
/// without this the record's `base` would stay behind for good.
const OWN_CAPTURE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Pending {
    version: Vec<String>,
    at: Instant,
    /// A real edit of the record was published while this write waited.
    overtaken: bool,
}

#[derive(Debug, Default)]
struct Record {
    /// The version the system's next captured change was made with in view.
    base: Option<Vec<String>>,
    /// Writes whose own transaction has not passed capture yet, oldest
    /// first (sources that mark their own writes).
    pending: VecDeque<Pending>,
    /// Own transactions captured before the runner noted their write.
    early: usize,
    /// The base before the last write, and the write count when it was
    /// noted (sources that read the current state).
    base_before: Option<Vec<String>>,
    image_before: Option<u64>,
    written_at: u64,
    /// Hash of the canonical image after the last write; `None` once a
    /// captured change differed from it.
    image: Option<u64>,
    retired: bool,
}

impl Record {
    /// Pending writes that waited too long count as captured.
    fn expire(&mut self, now: Instant) {
        while let Some(p) = self.pending.front() {
            if now.duration_since(p.at) < OWN_CAPTURE_WAIT {
                break;
            }
            self.base = self.pending.pop_front().map(|p| p.version);
        }
    }
}

/// What to do with a captured change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The system returned what the connector wrote: drop it.
    Echo,
    /// A change to publish, with the version it was made with in view as
    /// its `base` (if the connector wrote or saw one).
    Publish { base: Option<Vec<String>> },
}

#[derive(Debug, Default)]
pub struct EchoStore {
    records: HashMap<String, Record>,
    /// The source marks its own writes (see the module comment).
    marks_own_writes: bool,
    /// Writes noted so far; reads are stamped with it when they begin.
    writes: Arc<AtomicU64>,
}

fn hash(fields: &Fields) -> u64 {
    let mut h = DefaultHasher::new();
    // BTreeMap: keys in order; serde_json's output of a Value is stable.
    for (k, v) in fields {
        k.hash(&mut h);
        v.to_string().hash(&mut h);
    }
    h.finish()
}

impl EchoStore {
    /// Set when the source opens: whether it marks its own writes.
    pub fn set_marks_own_writes(&mut self, marks: bool) {
        self.marks_own_writes = marks;
    }

    /// The count of writes noted, for stamping reads as they begin.
    pub fn write_count(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.writes)
    }

    /// The connector wrote `version` to the record, which now reads `image`.
    pub fn wrote(&mut self, record_id: &str, image: &Fields, version: &[String]) {
        self.applied(record_id, Some(hash(image)), false, version, Instant::now());
    }

    /// The connector deleted or archived the record for `version`.
    pub fn retired(&mut self, record_id: &str, version: &[String]) {
        self.applied(record_id, None, true, version, Instant::now());
    }

    fn applied(
        &mut self,
        record_id: &str,
        image: Option<u64>,
        retired: bool,
        version: &[String],
        now: Instant,
    ) {
        let count = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let r = self.records.entry(record_id.to_string()).or_default();
        let image_before = std::mem::replace(&mut r.image, image);
        r.retired = retired;
        if !self.marks_own_writes {
            r.image_before = image_before;
            r.base_before = r.base.replace(version.to_vec());
            r.written_at = count;
        } else if r.early > 0 {
            // Its own transaction already passed capture.
            r.early -= 1;
            r.base = Some(version.to_vec());
        } else {
            r.pending.push_back(Pending {
                version: version.to_vec(),
                at: now,
                overtaken: false,
            });
        }
    }

    /// The connector received `version` for the record without writing
    /// anything (the update carried only fields it does not write): its
    /// next captured change after the writes before it was made with that
    /// version in view.
    pub fn saw_version(&mut self, record_id: &str, version: &[String]) {
        let r = self.records.entry(record_id.to_string()).or_default();
        match r.pending.back_mut() {
            Some(p) => p.version = version.to_vec(),
            None => r.base = Some(version.to_vec()),
        }
    }

    /// A transaction of the connector's own writes passed capture with a
    /// change of the record: the oldest pending write is now in view.
    /// Returns that write's version when a real edit overtook it: the
    /// change is then published with it as `base`, since the write replaced
    /// what the hub was last told.
    pub fn own_captured(&mut self, record_id: &str) -> Option<Vec<String>> {
        let r = self.records.entry(record_id.to_string()).or_default();
        match r.pending.pop_front() {
            Some(p) => {
                r.base = Some(p.version.clone());
                p.overtaken.then_some(p.version)
            }
            None => {
                r.early += 1;
                None
            }
        }
    }

    /// A captured change of the record made by someone else (as far as
    /// the source can tell): its canonical image, `None` for a delete;
    /// `read_began` is the write count when the read began.
    pub fn captured(
        &mut self,
        record_id: &str,
        image: Option<&Fields>,
        read_began: u64,
    ) -> Verdict {
        self.captured_at(record_id, image, read_began, Instant::now())
    }

    fn captured_at(
        &mut self,
        record_id: &str,
        image: Option<&Fields>,
        read_began: u64,
        now: Instant,
    ) -> Verdict {
        let Some(r) = self.records.get_mut(record_id) else {
            return Verdict::Publish { base: None };
        };
        let echo = match image {
            None => r.retired,
            Some(fields) => r.image == Some(hash(fields)),
        };
        if echo {
            return Verdict::Echo;
        }
        if !self.marks_own_writes && read_began < r.written_at {
            // The read may predate the last write. The echo of the write
            // before it is dropped; another change was made with the
            // version before the last write in view, and that write
            // replaced it: its echo is published, so that the hub learns
            // what the system holds.
            if image.is_some_and(|f| r.image_before == Some(hash(f))) {
                return Verdict::Echo;
            }
            r.image = None;
            return Verdict::Publish {
                base: r.base_before.clone(),
            };
        }
        // From now on the record holds someone else's edit: the same image
        // captured again later is not an echo.
        r.image = None;
        r.retired = false;
        r.expire(now);
        for p in &mut r.pending {
            p.overtaken = true;
        }
        Verdict::Publish {
            base: r.base.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(pairs: &[(&str, Value)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn the_capture_of_a_write_is_an_echo_and_a_real_edit_carries_the_base() {
        let mut store = EchoStore::default();
        let v = vec!["aa".to_string()];
        let written = fields(&[("city", json!("Berlin")), ("phone", json!("+4930"))]);
        store.wrote("r/1", &written, &v);
        assert_eq!(
            store.captured("r/1", Some(&written), u64::MAX),
            Verdict::Echo
        );
        let edited = fields(&[("city", json!("Potsdam")), ("phone", json!("+4930"))]);
        assert_eq!(
            store.captured("r/1", Some(&edited), u64::MAX),
            Verdict::Publish {
                base: Some(v.clone())
            }
        );
        // Reverting to the written values is a real edit now.
        assert_eq!(
            store.captured("r/1", Some(&written), u64::MAX),
            Verdict::Publish { base: Some(v) }
        );
        assert_eq!(
            store.captured("other", Some(&written), u64::MAX),
            Verdict::Publish { base: None }
        );
    }

    #[test]
    fn a_delete_after_a_retire_is_an_echo_and_after_a_write_it_is_not() {
        let mut store = EchoStore::default();
        let v = vec!["bb".to_string()];
        store.retired("r", &v);
        assert_eq!(store.captured("r", None, u64::MAX), Verdict::Echo);
        store.wrote("s", &Fields::new(), &v);
        assert_eq!(
            store.captured("s", None, u64::MAX),
            Verdict::Publish { base: Some(v) }
        );
    }

    #[test]
    fn values_of_other_types_do_not_hash_alike() {
        let mut store = EchoStore::default();
        store.wrote("r", &fields(&[("zip", json!("10115"))]), &[]);
        assert_ne!(
            store.captured("r", Some(&fields(&[("zip", json!(10115))])), u64::MAX),
            Verdict::Echo
        );
    }

    fn log_source() -> EchoStore {
        let mut store = EchoStore::default();
        store.set_marks_own_writes(true);
        store
    }

    #[test]
    fn an_edit_committed_before_a_write_but_captured_after_it_keeps_the_older_base() {
        let mut store = log_source();
        let v1 = vec!["v1".to_string()];
        let v2 = vec!["v2".to_string()];
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v1);
        store.own_captured("r");
        store.wrote("r", &fields(&[("city", json!("Bonn"))]), &v2);
        // The edit was committed before the write of v2: it saw v1.
        let edit = fields(&[("city", json!("Potsdam"))]);
        assert_eq!(
            store.captured("r", Some(&edit), u64::MAX),
            Verdict::Publish {
                base: Some(v1.clone())
            }
        );
        // The write's own transaction passes: v2 is in view from now on.
        store.own_captured("r");
        assert_eq!(
            store.captured("r", Some(&edit), u64::MAX),
            Verdict::Publish { base: Some(v2) }
        );
    }

    #[test]
    fn an_own_transaction_captured_before_its_write_was_noted_still_moves_the_base() {
        let mut store = log_source();
        let v = vec!["v".to_string()];
        store.own_captured("r");
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v);
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Ulm"))])), u64::MAX),
            Verdict::Publish { base: Some(v) }
        );
    }

    #[test]
    fn a_write_whose_own_capture_never_comes_counts_as_seen_after_the_wait() {
        let mut store = log_source();
        let v = vec!["v".to_string()];
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v);
        let edit = fields(&[("city", json!("Ulm"))]);
        let soon = Instant::now();
        assert_eq!(
            store.captured_at("r", Some(&edit), u64::MAX, soon),
            Verdict::Publish { base: None }
        );
        let later = soon + OWN_CAPTURE_WAIT + Duration::from_secs(1);
        assert_eq!(
            store.captured_at("r", Some(&edit), u64::MAX, later),
            Verdict::Publish { base: Some(v) }
        );
    }

    #[test]
    fn a_version_seen_without_writing_follows_the_pending_write() {
        let mut store = log_source();
        let (v1, v2) = (vec!["v1".to_string()], vec!["v2".to_string()]);
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v1);
        store.saw_version("r", &v2);
        store.own_captured("r");
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Ulm"))])), u64::MAX),
            Verdict::Publish { base: Some(v2) }
        );
    }

    #[test]
    fn the_own_capture_of_a_write_overtaken_by_a_real_edit_is_published_with_its_version() {
        let mut store = log_source();
        let v = vec!["v".to_string()];
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v);
        store.wrote("s", &fields(&[("city", json!("Bonn"))]), &v);
        // An edit of r committed before the write, captured before it.
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Ulm"))])), u64::MAX),
            Verdict::Publish { base: None }
        );
        assert_eq!(store.own_captured("r"), Some(v.clone()));
        assert_eq!(store.own_captured("s"), None);
    }

    #[test]
    fn a_read_that_began_before_a_write_was_noted_keeps_the_base_before_it() {
        let mut store = EchoStore::default();
        let (v1, v2) = (vec!["v1".to_string()], vec!["v2".to_string()]);
        let berlin = fields(&[("city", json!("Berlin"))]);
        store.wrote("r", &berlin, &v1);
        let began = store.write_count().load(Ordering::SeqCst);
        store.wrote("r", &fields(&[("city", json!("Bonn"))]), &v2);
        // Reads that began before the write of v2, handled after it was
        // noted: the echo of v1, and an edit made with v1 in view.
        assert_eq!(store.captured("r", Some(&berlin), began), Verdict::Echo);
        let stale = fields(&[("city", json!("Ulm"))]);
        assert_eq!(
            store.captured("r", Some(&stale), began),
            Verdict::Publish {
                base: Some(v1.clone())
            }
        );
        // The write of v2 replaced that edit: its echo tells the hub so.
        let now = store.write_count().load(Ordering::SeqCst);
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Bonn"))])), now),
            Verdict::Publish { base: Some(v2) }
        );
    }
}
