//! Echo suppression and the `base` of captured changes, per record: what
//! the connector last wrote, and which golden version the system's next
//! captured change was made with in view.
//!
//! Two kinds of source:
//! - A source that marks its own writes (PostgreSQL's replication origin,
//!   MariaDB's `skip_replication`) hands every transaction over in commit
//!   order, the connector's writes flagged. An update is noted as pending
//!   before it is applied; its version becomes the record's `base` only
//!   when the write's own transaction passes capture. A real edit committed
//!   before the write but captured after it was made without the written
//!   version in view, and must not claim it (the hub would take its older
//!   values for edits on top of that version).
//! - A source that reads the current state (a REST poll, a CSV export) sees
//!   every write committed before the read began. Each read is stamped with
//!   the count of writes noted when it began. A read that began before
//!   some of the record's writes were noted may show the record as it was
//!   then or as any of those writes left it (the last [`KEPT_WRITES`] are
//!   kept): those images are echoes, and another change keeps the version
//!   before those writes as `base`.
//!
//! For both, a captured image equal to the one the system returned when the
//! last write committed is an echo (nothing else changed) and is dropped.
//! But a write the hub computed before it saw a real edit of the record may
//! have replaced that edit in the system. The connector cannot see when the
//! hub computed a write, so when a real edit of the record was published
//! less than [`EDIT_WINDOW`] before the write was noted, or after, the
//! write's capture is published, with the write's version as `base`: the
//! hub learns what the system holds and sends the golden values again if
//! they differ (at the cost of an event that changes nothing otherwise).
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

/// How long after a real edit was published the hub may still compute a
/// write without it (its lag behind the broker, with margin).
const EDIT_WINDOW: Duration = Duration::from_secs(60);

/// Writes remembered per record for sources that read the current state.
const KEPT_WRITES: usize = 8;

/// A write noted for a source that reads the current state.
#[derive(Debug)]
struct Noted {
    /// The write count once it was noted.
    count: u64,
    /// The record's image after it (`None`: retired).
    image: Option<u64>,
    /// The record's base and image before it.
    base_before: Option<Vec<String>>,
    image_before: Option<u64>,
}

#[derive(Debug, Default)]
struct Record {
    /// The version the system's next captured change was made with in view.
    base: Option<Vec<String>>,
    /// Updates applied or being applied whose own transaction has not
    /// passed capture yet, oldest first, with when they were noted
    /// (sources that mark their own writes).
    pending: VecDeque<(Vec<String>, Instant)>,
    /// The last writes noted, oldest first, at most [`KEPT_WRITES`]
    /// (sources that read the current state): a read queued behind
    /// several write-backs may show the record as any of them left it.
    noted: VecDeque<Noted>,
    /// Hash of the canonical image after the last write; `None` once a
    /// captured change differed from it.
    image: Option<u64>,
    retired: bool,
    /// When the last write was noted (sources that read the current state).
    noted_at: Option<Instant>,
}

/// Whether a write noted at `noted` may have replaced a real edit
/// published at `edited` that the hub had not seen when it computed the
/// write.
fn may_have_replaced(edited: Option<&Instant>, noted: Option<Instant>) -> bool {
    match (edited, noted) {
        (Some(edit), Some(noted)) => noted.saturating_duration_since(*edit) < EDIT_WINDOW,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// When real edits were published, per record, for [`EDIT_WINDOW`]: older
/// entries are dropped as the map grows.
#[derive(Debug)]
struct RecentEdits {
    at: HashMap<String, Instant>,
    prune_at: usize,
}

impl Default for RecentEdits {
    fn default() -> Self {
        RecentEdits {
            at: HashMap::new(),
            prune_at: 1024,
        }
    }
}

impl RecentEdits {
    fn note(&mut self, record_id: &str, now: Instant, loading: bool) {
        if loading {
            return;
        }
        self.at.insert(record_id.to_string(), now);
        if self.at.len() >= self.prune_at {
            self.at
                .retain(|_, t| now.saturating_duration_since(*t) < EDIT_WINDOW);
            self.prune_at = (self.at.len() * 2).max(1024);
        }
    }

    fn get(&self, record_id: &str) -> Option<&Instant> {
        self.at.get(record_id)
    }
}

impl Record {
    /// Pending writes that waited too long count as captured.
    fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.pending.front() {
            if now.duration_since(*at) < OWN_CAPTURE_WAIT {
                break;
            }
            self.base = self.pending.pop_front().map(|(v, _)| v);
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
    recent_edits: RecentEdits,
    /// Changes come from the initial load: not noted as recent edits (a
    /// load of millions of rows would fill the map).
    loading: bool,
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

    /// Whether the changes captured next come from the initial load.
    pub fn set_loading(&mut self, loading: bool) {
        self.loading = loading;
    }

    /// The count of writes noted, for stamping reads as they begin.
    pub fn write_count(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.writes)
    }

    /// The connector is about to write `version` to an existing record.
    pub fn will_write(&mut self, record_id: &str, version: &[String]) {
        if self.marks_own_writes {
            let r = self.records.entry(record_id.to_string()).or_default();
            r.pending.push_back((version.to_vec(), Instant::now()));
        }
    }

    /// The write of `version` to the record was refused: it left nothing.
    pub fn write_failed(&mut self, record_id: &str, version: &[String]) {
        if let Some(r) = self.records.get_mut(record_id) {
            if let Some(i) = r.pending.iter().rposition(|(v, _)| v == version) {
                r.pending.remove(i);
            }
        }
    }

    /// The write of `version` left the record as it was, and the system
    /// logs nothing for it: it is in view as soon as the writes before it
    /// are.
    pub fn unchanged(&mut self, record_id: &str, version: &[String]) {
        let Some(r) = self.records.get_mut(record_id) else {
            return;
        };
        let Some(i) = r.pending.iter().rposition(|(v, _)| v == version) else {
            return;
        };
        r.pending.remove(i);
        match i
            .checked_sub(1)
            .and_then(|before| r.pending.get_mut(before))
        {
            Some((pending, _)) => *pending = version.to_vec(),
            None => r.base = Some(version.to_vec()),
        }
    }

    /// The connector wrote `version` to the record, which now reads `image`.
    pub fn wrote(&mut self, record_id: &str, image: &Fields, version: &[String]) {
        self.applied(record_id, Some(hash(image)), false, version);
    }

    /// The connector deleted or archived the record for `version`.
    pub fn retired(&mut self, record_id: &str, version: &[String]) {
        self.applied(record_id, None, true, version);
    }

    fn applied(&mut self, record_id: &str, image: Option<u64>, retired: bool, version: &[String]) {
        let count = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let r = self.records.entry(record_id.to_string()).or_default();
        let image_before = std::mem::replace(&mut r.image, image);
        r.retired = retired;
        if !self.marks_own_writes {
            if r.noted.len() == KEPT_WRITES {
                r.noted.pop_front();
            }
            r.noted.push_back(Noted {
                count,
                image,
                base_before: r.base.replace(version.to_vec()),
                image_before,
            });
            r.noted_at = Some(Instant::now());
        } else if r.pending.is_empty() && r.base.is_none() {
            // A record the connector inserted: nothing was edited before
            // it existed.
            r.base = Some(version.to_vec());
        }
    }

    /// The connector received `version` for the record without writing
    /// anything (the update carried only fields it does not write): its
    /// next captured change after the writes before it was made with that
    /// version in view.
    pub fn saw_version(&mut self, record_id: &str, version: &[String]) {
        let r = self.records.entry(record_id.to_string()).or_default();
        match r.pending.back_mut() {
            Some((pending, _)) => *pending = version.to_vec(),
            None => r.base = Some(version.to_vec()),
        }
    }

    /// A transaction of the connector's own writes passed capture with a
    /// change of the record: the oldest pending write is now in view.
    /// Returns that write's version when it may have replaced a real edit:
    /// the change is then published with it as `base`.
    pub fn own_captured(&mut self, record_id: &str) -> Option<Vec<String>> {
        let r = self.records.entry(record_id.to_string()).or_default();
        // Without a pending write, the base is not this write's version and
        // publishing the change with it would claim an older view.
        let (version, noted) = r.pending.pop_front()?;
        r.base = Some(version.clone());
        may_have_replaced(self.recent_edits.get(record_id), Some(noted)).then_some(version)
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
            self.recent_edits.note(record_id, now, self.loading);
            return Verdict::Publish { base: None };
        };
        let hashed = image.map(hash);
        let echo = match hashed {
            None => r.retired,
            Some(h) => r.image == Some(h),
        };
        if echo {
            if may_have_replaced(self.recent_edits.get(record_id), r.noted_at) {
                // Once: the same image again is the system standing still.
                r.noted_at = None;
                self.recent_edits.at.remove(record_id);
                return Verdict::Publish {
                    base: r.base.clone(),
                };
            }
            return Verdict::Echo;
        }
        // The first write noted after the read began, if one was.
        let after_read = r.noted.iter().position(|n| n.count > read_began);
        if let (false, Some(first)) = (self.marks_own_writes, after_read) {
            // The read may show the record as it was when the read began or
            // as any write since left it (their echoes are still to come):
            // those images are echoes. Another change was made with the
            // version before those writes in view.
            let seen = std::iter::once(r.noted[first].image_before)
                .chain(r.noted.iter().skip(first).map(|n| n.image));
            if hashed.is_some() && seen.into_iter().any(|i| i == hashed) {
                return Verdict::Echo;
            }
            self.recent_edits.note(record_id, now, self.loading);
            return Verdict::Publish {
                base: r.noted[first].base_before.clone(),
            };
        }
        // From now on the record holds someone else's edit: the same image
        // captured again later is not an echo.
        r.image = None;
        r.retired = false;
        self.recent_edits.note(record_id, now, self.loading);
        r.expire(now);
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
    fn an_edit_committed_before_a_write_keeps_the_older_base_and_the_write_is_published() {
        let mut store = log_source();
        let v1 = vec!["v1".to_string()];
        let v2 = vec!["v2".to_string()];
        store.will_write("r", &v1);
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v1);
        assert_eq!(store.own_captured("r"), None, "nothing edited: dropped");
        store.will_write("r", &v2);
        // The edit was committed before the write of v2: it saw v1. It is
        // handled before the runner noted the write as applied.
        let edit = fields(&[("city", json!("Potsdam"))]);
        assert_eq!(
            store.captured("r", Some(&edit), 0),
            Verdict::Publish {
                base: Some(v1.clone())
            }
        );
        store.wrote("r", &fields(&[("city", json!("Bonn"))]), &v2);
        // The write replaced the edit: its own capture goes to the hub.
        assert_eq!(store.own_captured("r"), Some(v2.clone()));
        assert_eq!(
            store.captured("r", Some(&edit), 0),
            Verdict::Publish { base: Some(v2) }
        );
    }

    #[test]
    fn an_own_transaction_captured_before_its_write_was_noted_still_moves_the_base() {
        let mut store = log_source();
        let v = vec!["v".to_string()];
        store.will_write("r", &v);
        assert_eq!(store.own_captured("r"), None);
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v);
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Ulm"))])), 0),
            Verdict::Publish { base: Some(v) }
        );
    }

    #[test]
    fn an_insert_is_in_view_at_once_and_a_refused_write_never_is() {
        let mut store = log_source();
        let (v1, v2) = (vec!["v1".to_string()], vec!["v2".to_string()]);
        store.wrote("new", &fields(&[("city", json!("Berlin"))]), &v1);
        store.will_write("new", &v2);
        store.write_failed("new", &v2);
        let later = Instant::now() + OWN_CAPTURE_WAIT + Duration::from_secs(1);
        assert_eq!(
            store.captured_at("new", Some(&fields(&[("city", json!("Ulm"))])), 0, later),
            Verdict::Publish { base: Some(v1) }
        );
    }

    #[test]
    fn a_write_whose_own_capture_never_comes_counts_as_seen_after_the_wait() {
        let mut store = log_source();
        let v = vec!["v".to_string()];
        store.will_write("r", &v);
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v);
        let edit = fields(&[("city", json!("Ulm"))]);
        let soon = Instant::now();
        assert_eq!(
            store.captured_at("r", Some(&edit), 0, soon),
            Verdict::Publish { base: None }
        );
        let later = soon + OWN_CAPTURE_WAIT + Duration::from_secs(1);
        assert_eq!(
            store.captured_at("r", Some(&edit), 0, later),
            Verdict::Publish { base: Some(v) }
        );
    }

    #[test]
    fn a_version_seen_without_writing_follows_the_pending_write() {
        let mut store = log_source();
        let (v1, v2) = (vec!["v1".to_string()], vec!["v2".to_string()]);
        store.will_write("r", &v1);
        store.wrote("r", &fields(&[("city", json!("Berlin"))]), &v1);
        store.saw_version("r", &v2);
        assert_eq!(store.own_captured("r"), None);
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Ulm"))])), 0),
            Verdict::Publish { base: Some(v2) }
        );
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

    #[test]
    fn a_read_queued_behind_several_writes_shows_none_of_them_as_an_edit() {
        let mut store = EchoStore::default();
        let versions: Vec<Vec<String>> = (1..=3).map(|i| vec![format!("v{i}")]).collect();
        let city = |c: &str| fields(&[("city", json!(c))]);
        store.wrote("r", &city("A"), &versions[0]);
        let began = store.write_count().load(Ordering::SeqCst);
        store.wrote("r", &city("B"), &versions[1]);
        store.wrote("r", &city("C"), &versions[2]);
        // A read begun before B and C were written, judged after both:
        // it may show A (the state when it began) or B; neither is an edit.
        assert_eq!(store.captured("r", Some(&city("A")), began), Verdict::Echo);
        assert_eq!(store.captured("r", Some(&city("B")), began), Verdict::Echo);
        // Anything else was edited with A's version in view.
        assert_eq!(
            store.captured("r", Some(&city("Ulm")), began),
            Verdict::Publish {
                base: Some(versions[0].clone())
            }
        );
    }

    #[test]
    fn a_write_soon_after_a_published_edit_comes_back_to_the_hub_once() {
        let mut store = EchoStore::default();
        let v = vec!["v".to_string()];
        let edit = fields(&[("city", json!("Ulm"))]);
        assert_eq!(
            store.captured("r", Some(&edit), 0),
            Verdict::Publish { base: None }
        );
        store.wrote("r", &edit, &[]);
        let bonn = fields(&[("city", json!("Bonn"))]);
        let now = store.write_count().load(Ordering::SeqCst);
        assert_eq!(
            store.captured("r", Some(&bonn), now),
            Verdict::Publish { base: Some(vec![]) }
        );
        store.wrote("r", &bonn, &v);
        let now = store.write_count().load(Ordering::SeqCst);
        assert_eq!(
            store.captured("r", Some(&bonn), now),
            Verdict::Publish {
                base: Some(v.clone())
            },
            "the write may have replaced the edit"
        );
        assert_eq!(store.captured("r", Some(&bonn), now), Verdict::Echo);
    }

    #[test]
    fn a_write_that_changed_nothing_is_in_view_once_the_writes_before_it_are() {
        let mut store = log_source();
        let (v1, v2, v3) = (
            vec!["v1".to_string()],
            vec!["v2".to_string()],
            vec!["v3".to_string()],
        );
        let berlin = fields(&[("city", json!("Berlin"))]);
        store.will_write("r", &v1);
        store.will_write("r", &v2);
        store.wrote("r", &berlin, &v1);
        store.unchanged("r", &v2);
        store.wrote("r", &berlin, &v2);
        // The capture of v1 passes: v2, which logged nothing, is in view.
        assert_eq!(store.own_captured("r"), None);
        let edit = fields(&[("city", json!("Ulm"))]);
        assert_eq!(
            store.captured("r", Some(&edit), 0),
            Verdict::Publish { base: Some(v2) }
        );
        // Alone in the queue, at once; and the next own capture is the
        // next write's.
        store.will_write("r", &v3);
        store.unchanged("r", &v3);
        assert_eq!(
            store.captured("r", Some(&fields(&[("city", json!("Bonn"))])), 0),
            Verdict::Publish { base: Some(v3) }
        );
    }
}
