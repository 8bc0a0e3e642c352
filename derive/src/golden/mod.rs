//! Golden records: one Automerge document per real-world customer.
//!
//! Each source system writes as its own Automerge actor (derived from the
//! system name). A write is made on top of what the system had seen (`base`
//! plus its own previous writes): if that covers another system's value, the
//! new value supersedes it; if not, both stay as concurrent candidates and the
//! field's survivorship policy picks the golden value.
//!
//! Each field's register holds an encoded `Candidate` (value, system, event id,
//! observed time) so the candidates of a conflict carry their provenance.

pub mod candidate;
pub mod survivorship;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, PatchLog, ReadDoc, ScalarValue, ROOT};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use candidate::Candidate;
pub use mdhub_schema::QualityIssue;

/// A record in a source system.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceKey {
    pub system: String,
    pub record_id: String,
}

/// The Automerge actor of a system: the same bytes in every hub, every replay.
pub fn actor_for(system: &str) -> ActorId {
    crate::ids::actor(&["system".into(), system.into()])
}

#[derive(Clone)]
pub struct GoldenRecord {
    pub id: Uuid,
    pub entity: String,
    doc: Automerge,
    pub links: BTreeSet<SourceKey>,
    /// No source record is linked any more. Kept, never erased.
    pub retired: bool,
    /// The golden value of each field that has one.
    pub values: BTreeMap<String, Value>,
    /// Current candidates per field, sorted by (system, event id); more than
    /// one means a conflict that survivorship decided.
    pub candidates: BTreeMap<String, Vec<Candidate>>,
    /// Each system's latest changes in this document (one after its own
    /// write, several after a merge re-stated its values): a system always
    /// writes on top of its own history.
    own_last: BTreeMap<String, Vec<ChangeHash>>,
    /// Retired by a merge: the golden record that now stands for this one.
    pub merged_into: Option<Uuid>,
    /// The last cleansed image each linked source record sent.
    pub source_values: BTreeMap<SourceKey, BTreeMap<String, Value>>,
    /// Values that failed cleansing, per source record: kept and shown,
    /// never used for matching.
    pub quality: BTreeMap<SourceKey, Vec<QualityIssue>>,
    /// Field values set by a data steward; they win over every candidate
    /// until the steward clears them.
    pub overrides: BTreeMap<String, Value>,
    /// The values each system last wrote, to skip re-statements of unchanged
    /// fields (full-image connectors send every field every time).
    written: BTreeMap<String, BTreeMap<String, Value>>,
    /// Per linked source record, the updates sent to it that none of its
    /// changes has shown in view yet (its `base` does not cover their
    /// version), oldest first, at most [`MAX_UNCONFIRMED`]. A change whose
    /// base lags behind them and that carries a value one of them sent is
    /// that update coming back, not an edit: a connector cannot always
    /// tell which version a captured image was made with (a poll that
    /// overlapped a write), and an old value must not come back as new.
    unconfirmed: BTreeMap<SourceKey, VecDeque<SentUpdate>>,
}

/// The updates remembered per source record until one of its changes shows
/// them in view; older ones are forgotten (their echoes have long come).
const MAX_UNCONFIRMED: usize = 8;

/// An update sent to a source record: the golden version and the values.
#[derive(Debug, Clone)]
struct SentUpdate {
    version: Vec<ChangeHash>,
    fields: BTreeMap<String, Value>,
}

impl GoldenRecord {
    pub fn new(id: Uuid, entity: &str) -> Self {
        GoldenRecord {
            id,
            entity: entity.to_string(),
            doc: Automerge::new(),
            links: BTreeSet::new(),
            retired: false,
            values: BTreeMap::new(),
            candidates: BTreeMap::new(),
            own_last: BTreeMap::new(),
            written: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            merged_into: None,
            source_values: BTreeMap::new(),
            quality: BTreeMap::new(),
            overrides: BTreeMap::new(),
        }
    }

    /// Golden version: the document heads, hex, sorted.
    pub fn version(&self) -> Vec<String> {
        let mut heads: Vec<String> = self.doc.get_heads().iter().map(|h| h.to_string()).collect();
        heads.sort();
        heads
    }

    /// Writes `fields` as `source`'s system, on top of `base` (hex heads the
    /// system had applied) and its own earlier writes. Fields whose value
    /// equals what the system saw at that version, or what an update sent
    /// to the record after it carried, are skipped: a full-image re-send or
    /// an echo of an applied update changes nothing. `pick` is the field's
    /// survivorship. Returns the fields whose candidates changed.
    pub fn write<'a>(
        &mut self,
        source: &SourceKey,
        base: Option<&[String]>,
        fields: impl IntoIterator<Item = (&'a String, &'a Value)>,
        event_id: Uuid,
        observed_at_ns: i64,
        pick: impl Fn(&str, &[Candidate]) -> usize,
    ) -> Vec<String> {
        let system = source.system.as_str();
        // What the system had seen: its base (hashes this document knows;
        // an unknown hash can only come from another record's history) and
        // its own last change.
        let mut known_base: Vec<ChangeHash> = base
            .unwrap_or_default()
            .iter()
            .filter_map(|h| h.parse::<ChangeHash>().ok())
            .filter(|h| self.doc.get_change_by_hash(h).is_some())
            .collect();
        known_base.sort();
        known_base.dedup();
        let mut heads = self.doc.get_heads();
        heads.sort();
        // A system always writes on top of its own history too.
        let mut deps = known_base.clone();
        if let Some(own) = self.own_last.get(system) {
            deps.extend(own.iter().copied());
        }
        deps.sort();
        deps.dedup();
        // Only a change that names its base claims to have seen what came
        // before it; without one, every value is the system's own.
        self.forget_confirmed(source, &known_base);
        let echoed = (!known_base.is_empty())
            .then(|| self.unconfirmed.get(source))
            .flatten();

        // Skip what the system merely re-states: the value it saw at its
        // base (an echo of an applied update, even a stale one), or without
        // a base, the value it last wrote itself (a full-image re-send).
        let own_written = self.written.get(system);
        let fields: Vec<(&String, &Value)> = fields
            .into_iter()
            .filter(|(field, value)| {
                let sent_after_base = echoed
                    .is_some_and(|sent| sent.iter().any(|u| u.fields.get(*field) == Some(*value)));
                if sent_after_base {
                    false
                } else if known_base.is_empty() {
                    own_written.and_then(|m| m.get(*field)).unwrap_or(NULL) != *value
                } else if known_base == heads {
                    self.values.get(*field).unwrap_or(NULL) != *value
                } else {
                    self.value_at(field, &known_base, &pick)
                        .as_ref()
                        .unwrap_or(NULL)
                        != *value
                }
            })
            .collect();
        if fields.is_empty() {
            return Vec::new();
        }

        self.doc.set_actor(actor_for(system));
        // On top of every head, the new values supersede all others.
        let supersedes_all = deps == heads;
        let mut tx = if supersedes_all {
            self.doc.transaction()
        } else {
            self.doc.transaction_at(PatchLog::null(), &deps)
        };
        let mut puts = Vec::with_capacity(fields.len());
        for (field, value) in fields {
            let candidate = Candidate {
                value: value.clone(),
                system: system.to_string(),
                event_id,
                observed_at_ns,
            };
            let encoded = candidate.encode();
            tx.put(
                ROOT,
                field.as_str(),
                ScalarValue::Str(encoded.as_str().into()),
            )
            .expect("put on the root map cannot fail");
            puts.push((field, candidate, encoded));
        }
        let time_secs = observed_at_ns.div_euclid(1_000_000_000);
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(time_secs));
        if let Some(hash) = hash {
            self.own_last.insert(system.to_string(), vec![hash]);
        }
        let mut touched = Vec::with_capacity(puts.len());
        for (field, candidate, encoded) in puts {
            if supersedes_all {
                set(&mut self.candidates, field, vec![candidate.clone()]);
            } else {
                self.add_candidate(field, &candidate, &encoded);
            }
            match self.written.get_mut(system) {
                Some(own) => set(own, field, candidate.value),
                None => {
                    self.written.insert(
                        system.to_string(),
                        BTreeMap::from([(field.to_string(), candidate.value)]),
                    );
                }
            }
            touched.push(field.to_string());
        }
        touched
    }

    /// The golden value `field` had at version `heads`.
    fn value_at(
        &self,
        field: &str,
        heads: &[ChangeHash],
        pick: impl Fn(&str, &[Candidate]) -> usize,
    ) -> Option<Value> {
        let cands = decode_all(
            self.doc
                .get_all_at(ROOT, field, heads)
                .expect("root map read cannot fail"),
        );
        (!cands.is_empty()).then(|| cands[pick(field, &cands)].value.clone())
    }

    /// Remembers an update sent to `target` at `version` (hex heads).
    pub fn note_sent(
        &mut self,
        target: SourceKey,
        version: &[String],
        fields: &BTreeMap<String, Value>,
    ) {
        let version = version
            .iter()
            .filter_map(|h| h.parse::<ChangeHash>().ok())
            .collect();
        let sent = self.unconfirmed.entry(target).or_default();
        if sent.len() == MAX_UNCONFIRMED {
            sent.pop_front();
        }
        sent.push_back(SentUpdate {
            version,
            fields: fields.clone(),
        });
    }

    /// Drops the updates sent to `source` that `base` has in view: the
    /// record's changes from now on were made after them.
    fn forget_confirmed(&mut self, source: &SourceKey, base: &[ChangeHash]) {
        let Some(sent) = self.unconfirmed.get(source) else {
            return;
        };
        if base.is_empty() {
            return;
        }
        // The ancestors of `base` among the sent versions' hashes, walking
        // back only until all of those are found.
        let mut wanted: BTreeSet<ChangeHash> = sent
            .iter()
            .flat_map(|u| u.version.iter().copied())
            .collect();
        let mut seen: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut covered: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut stack: Vec<ChangeHash> = base.to_vec();
        while let Some(h) = stack.pop() {
            if wanted.is_empty() {
                break;
            }
            if !seen.insert(h) {
                continue;
            }
            if wanted.remove(&h) {
                covered.insert(h);
            }
            if let Some(change) = self.doc.get_change_by_hash(&h) {
                stack.extend(change.deps().iter().copied());
            }
        }
        let sent = self.unconfirmed.get_mut(source).expect("checked above");
        sent.retain(|u| !u.version.iter().all(|h| covered.contains(h)));
        if sent.is_empty() {
            self.unconfirmed.remove(source);
        }
    }

    /// Updates the candidates of `field` after `candidate` (stored as
    /// `encoded`) was put concurrently with some of them. The document now
    /// holds the new one and the old ones it did not supersede: when that
    /// is all or none of them, no stored value needs decoding.
    fn add_candidate(&mut self, field: &str, candidate: &Candidate, encoded: &str) {
        let held = self
            .doc
            .get_all(ROOT, field)
            .expect("root map read cannot fail");
        let old = self.candidates.get(field).map_or(0, Vec::len);
        let is_new = |(v, _): &(automerge::Value<'_>, automerge::ObjId)| matches!(v, automerge::Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Str(t) if t.as_str() == encoded));
        if held.len() == 1 && held.iter().all(is_new) {
            set(&mut self.candidates, field, vec![candidate.clone()]);
        } else if held.len() == old + 1 && held.iter().any(is_new) {
            let cands = self.candidates.get_mut(field).expect("old > 0 candidates");
            cands.push(candidate.clone());
            sort_candidates(cands);
        } else {
            set(&mut self.candidates, field, decode_all(held));
        }
    }

    fn refresh_candidates(&mut self, field: &str) {
        let cands = self.candidates_in_doc(field);
        set(&mut self.candidates, field, cands);
    }

    /// The candidates of `field` as the document holds them.
    fn candidates_in_doc(&self, field: &str) -> Vec<Candidate> {
        decode_all(
            self.doc
                .get_all(ROOT, field)
                .expect("root map read cannot fail"),
        )
    }

    /// Makes the candidates of each field in `sets` exactly the given ones
    /// (an empty set clears the field), superseding what the document holds.
    /// Used by merges and splits. Each system's candidates are re-put by a
    /// change of their own, concurrent with the others', so conflicts stay
    /// conflicts and the system's next write supersedes its own values only.
    /// `tag` names the operation (deterministic actors).
    pub fn rewrite(
        &mut self,
        sets: &BTreeMap<String, Vec<Candidate>>,
        tag: &[crate::ids::Part<'_>],
        time_ns: i64,
    ) {
        let heads = self.doc.get_heads();
        let time_secs = time_ns.div_euclid(1_000_000_000);
        // (system, k) → fields whose k-th candidate from that system it puts.
        let mut changes: BTreeMap<(&str, usize), Vec<(&str, &Candidate)>> = BTreeMap::new();
        let mut cleared = Vec::new();
        for (field, cands) in sets {
            if cands.is_empty() {
                cleared.push(field.as_str());
            }
            let mut per_system: BTreeMap<&str, usize> = BTreeMap::new();
            for c in cands {
                let k = per_system.entry(c.system.as_str()).or_insert(0);
                changes
                    .entry((c.system.as_str(), *k))
                    .or_default()
                    .push((field.as_str(), c));
                *k += 1;
            }
        }
        let mut own: BTreeMap<String, Vec<ChangeHash>> = BTreeMap::new();
        for ((system, k), puts) in &changes {
            self.doc.set_actor(crate::ids::actor(
                &[tag, &[(*system).into(), (*k as u64).into()]].concat(),
            ));
            let mut tx = self.doc.transaction_at(PatchLog::null(), &heads);
            for (field, c) in puts {
                tx.put(ROOT, *field, ScalarValue::Str(c.encode().into()))
                    .expect("put on the root map cannot fail");
            }
            let (hash, _) = tx.commit_with(CommitOptions::default().with_time(time_secs));
            if let Some(hash) = hash {
                own.entry(system.to_string()).or_default().push(hash);
            }
        }
        if !cleared.is_empty() {
            self.doc
                .set_actor(crate::ids::actor(&[tag, &["clear".into()]].concat()));
            let mut tx = self.doc.transaction_at(PatchLog::null(), &heads);
            for field in &cleared {
                tx.delete(ROOT, *field)
                    .expect("delete on the root map cannot fail");
            }
            tx.commit_with(CommitOptions::default().with_time(time_secs));
        }
        for (system, hashes) in own {
            self.own_last.insert(system, hashes);
        }
        for field in sets.keys() {
            self.refresh_candidates(field);
        }
    }

    /// What each system last wrote (to carry over in a merge).
    pub fn written(&self) -> &BTreeMap<String, BTreeMap<String, Value>> {
        &self.written
    }

    /// Takes over what `system` last wrote, where this record has nothing
    /// from it yet (a merge).
    pub fn adopt_written(&mut self, system: &str, values: &BTreeMap<String, Value>) {
        let mine = self.written.entry(system.to_string()).or_default();
        for (f, v) in values {
            mine.entry(f.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Sets the golden value of `field` from its override or candidates.
    /// Returns true if it changed.
    pub fn resolve(&mut self, field: &str, pick: impl Fn(&[Candidate]) -> usize) -> bool {
        let new = match (self.overrides.get(field), self.candidates.get(field)) {
            (Some(v), _) => v.clone(),
            (None, Some(c)) if !c.is_empty() => c[pick(c)].value.clone(),
            _ => Value::Null,
        };
        let old = self.values.get(field).cloned().unwrap_or(Value::Null);
        if new == old {
            return false;
        }
        if new.is_null() {
            self.values.remove(field);
        } else {
            self.values.insert(field.to_string(), new);
        }
        true
    }

    /// Fields whose concurrent candidates disagree, with all candidates.
    pub fn conflicts(&self) -> impl Iterator<Item = (&String, &Vec<Candidate>)> {
        self.candidates.iter().filter(|(_, c)| is_conflict(c))
    }

    /// Canonical summary of everything derived about this record, for the
    /// state hash. Automerge heads are left out on purpose: op counters are
    /// Lamport clocks, so the same edits arriving in another order give other
    /// change hashes for the same content.
    pub fn hash_into(&self, h: &mut Sha256) {
        #[derive(Serialize)]
        struct Summary<'a> {
            id: Uuid,
            entity: &'a str,
            retired: bool,
            links: &'a BTreeSet<SourceKey>,
            values: &'a BTreeMap<String, Value>,
            candidates: &'a BTreeMap<String, Vec<Candidate>>,
            written: &'a BTreeMap<String, BTreeMap<String, Value>>,
            merged_into: Option<Uuid>,
            // A list of pairs: JSON map keys must be strings.
            quality: Vec<(&'a SourceKey, &'a Vec<QualityIssue>)>,
            overrides: &'a BTreeMap<String, Value>,
        }
        let s = Summary {
            id: self.id,
            entity: &self.entity,
            retired: self.retired,
            links: &self.links,
            values: &self.values,
            candidates: &self.candidates,
            written: &self.written,
            merged_into: self.merged_into,
            quality: self.quality.iter().collect(),
            overrides: &self.overrides,
        };
        serde_json::to_writer(HashWriter(h), &s).expect("summary serializes");
    }
}

/// A golden record as stored (`encode`): everything but the document, which
/// follows as Automerge bytes. Maps keyed by source record are lists of
/// pairs (JSON keys are strings); change hashes are hex.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: Uuid,
    entity: String,
    links: BTreeSet<SourceKey>,
    retired: bool,
    values: BTreeMap<String, Value>,
    candidates: BTreeMap<String, Vec<Candidate>>,
    own_last: BTreeMap<String, Vec<String>>,
    merged_into: Option<Uuid>,
    source_values: Vec<(SourceKey, BTreeMap<String, Value>)>,
    quality: Vec<(SourceKey, Vec<QualityIssue>)>,
    overrides: BTreeMap<String, Value>,
    written: BTreeMap<String, BTreeMap<String, Value>>,
    unconfirmed: Vec<(SourceKey, Vec<StoredUpdate>)>,
}

/// `Stored`, borrowed from a record to encode it.
#[derive(Serialize)]
struct StoredRef<'a> {
    id: Uuid,
    entity: &'a str,
    links: &'a BTreeSet<SourceKey>,
    retired: bool,
    values: &'a BTreeMap<String, Value>,
    candidates: &'a BTreeMap<String, Vec<Candidate>>,
    own_last: BTreeMap<&'a String, Vec<String>>,
    merged_into: Option<Uuid>,
    source_values: Vec<(&'a SourceKey, &'a BTreeMap<String, Value>)>,
    quality: Vec<(&'a SourceKey, &'a Vec<QualityIssue>)>,
    overrides: &'a BTreeMap<String, Value>,
    written: &'a BTreeMap<String, BTreeMap<String, Value>>,
    unconfirmed: Vec<(&'a SourceKey, Vec<StoredUpdateRef<'a>>)>,
}

/// `StoredUpdate`, borrowed.
type StoredUpdateRef<'a> = (Vec<String>, &'a BTreeMap<String, Value>);

/// A `SentUpdate` as stored: its version (hex) and fields.
type StoredUpdate = (Vec<String>, BTreeMap<String, Value>);

/// The JSON part and the document part of `encode`'s bytes.
fn split_encoded(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("shorter than its length prefix")?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!(
            "{} bytes after the prefix, {len} expected",
            rest.len()
        ));
    }
    Ok(rest.split_at(len))
}

/// The entity of an encoded record, read without loading its document
/// (the re-resolution plan asks it of every golden record).
pub fn decode_entity(bytes: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct EntityOnly {
        entity: String,
    }
    let (json, _) = split_encoded(bytes)?;
    let only: EntityOnly = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(only.entity)
}

fn hex_hashes(hashes: &[ChangeHash]) -> Vec<String> {
    hashes.iter().map(ChangeHash::to_string).collect()
}

fn parse_hashes(hex: Vec<String>) -> Result<Vec<ChangeHash>, String> {
    hex.iter()
        .map(|h| {
            h.parse::<ChangeHash>()
                .map_err(|e| format!("change hash {h:?}: {e}"))
        })
        .collect()
}

impl GoldenRecord {
    /// The stored form: a 4-byte big-endian length, that many bytes of JSON
    /// (everything but the document), then the document saved by Automerge.
    /// `decode` gives back a record that behaves the same in every way.
    pub fn encode(&self) -> Vec<u8> {
        let doc = self.doc.save_nocompress();
        let stored = StoredRef {
            id: self.id,
            entity: &self.entity,
            links: &self.links,
            retired: self.retired,
            values: &self.values,
            candidates: &self.candidates,
            own_last: self
                .own_last
                .iter()
                .map(|(s, h)| (s, hex_hashes(h)))
                .collect(),
            merged_into: self.merged_into,
            source_values: self.source_values.iter().collect(),
            quality: self.quality.iter().collect(),
            overrides: &self.overrides,
            written: &self.written,
            unconfirmed: self
                .unconfirmed
                .iter()
                .map(|(k, sent)| {
                    let sent = sent
                        .iter()
                        .map(|u| (hex_hashes(&u.version), &u.fields))
                        .collect();
                    (k, sent)
                })
                .collect(),
        };
        let json = serde_json::to_vec(&stored).expect("golden records serialize");
        let mut out = Vec::with_capacity(4 + json.len() + doc.len());
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&doc);
        out
    }

    /// A record from `encode`'s bytes; an error says what is wrong with them.
    pub fn decode(bytes: &[u8]) -> Result<GoldenRecord, String> {
        let (json, doc) = split_encoded(bytes)?;
        let stored: Stored = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let doc = Automerge::load(doc).map_err(|e| format!("document: {e}"))?;
        let own_last = stored
            .own_last
            .into_iter()
            .map(|(s, h)| Ok((s, parse_hashes(h)?)))
            .collect::<Result<_, String>>()?;
        let unconfirmed = stored
            .unconfirmed
            .into_iter()
            .map(|(k, sent)| {
                let sent = sent
                    .into_iter()
                    .map(|(version, fields)| {
                        Ok(SentUpdate {
                            version: parse_hashes(version)?,
                            fields,
                        })
                    })
                    .collect::<Result<_, String>>()?;
                Ok((k, sent))
            })
            .collect::<Result<_, String>>()?;
        Ok(GoldenRecord {
            id: stored.id,
            entity: stored.entity,
            doc,
            links: stored.links,
            retired: stored.retired,
            values: stored.values,
            candidates: stored.candidates,
            own_last,
            merged_into: stored.merged_into,
            source_values: stored.source_values.into_iter().collect(),
            quality: stored.quality.into_iter().collect(),
            overrides: stored.overrides,
            written: stored.written,
            unconfirmed,
        })
    }
}

const NULL: &Value = &Value::Null;

/// Inserts or replaces `map[key]`, allocating the key only when it is new.
fn set<V>(map: &mut BTreeMap<String, V>, key: &str, value: V) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

/// More than one distinct value among the candidates.
pub fn is_conflict(candidates: &[Candidate]) -> bool {
    candidates.iter().any(|c| c.value != candidates[0].value)
}

/// Candidates from a register's values, sorted by (system, event id) so
/// that nothing depends on Automerge's op order.
fn decode_all(values: Vec<(automerge::Value<'_>, automerge::ObjId)>) -> Vec<Candidate> {
    let mut cands: Vec<Candidate> = values
        .into_iter()
        .filter_map(|(v, _)| match v {
            automerge::Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(text) => Candidate::decode(text),
                _ => None,
            },
            _ => None,
        })
        .collect();
    sort_candidates(&mut cands);
    cands
}

/// In (system, event id) order, so that nothing depends on Automerge's op
/// order.
fn sort_candidates(cands: &mut [Candidate]) {
    cands.sort_by(|a, b| (&a.system, a.event_id).cmp(&(&b.system, b.event_id)));
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdhub_schema::Survivorship;

    fn w(field: &str, v: &str) -> BTreeMap<String, Value> {
        BTreeMap::from([(field.to_string(), Value::String(v.into()))])
    }

    fn src(system: &str) -> SourceKey {
        SourceKey {
            system: system.into(),
            record_id: "1".into(),
        }
    }

    /// `g.write` of one field value as `system`'s record 1, event `id`.
    fn put(
        g: &mut GoldenRecord,
        system: &str,
        base: Option<&[String]>,
        (field, value): (&str, &str),
        id: u128,
        time: i64,
    ) -> Vec<String> {
        g.write(
            &src(system),
            base,
            &w(field, value),
            Uuid::from_u128(id),
            time,
            pick,
        )
    }

    fn most_recent(c: &[Candidate]) -> usize {
        survivorship::pick(Survivorship::MostRecent, &[], c)
    }

    fn pick(_: &str, c: &[Candidate]) -> usize {
        most_recent(c)
    }

    #[test]
    fn concurrent_writes_keep_both_candidates() {
        let mut g = GoldenRecord::new(Uuid::nil(), "customer");
        put(&mut g, "crm", None, ("phone", "1"), 1, 10);
        put(&mut g, "erp", None, ("phone", "2"), 2, 5);
        assert!(g.resolve("phone", most_recent));
        assert_eq!(g.candidates["phone"].len(), 2);
        assert_eq!(g.values["phone"], "1", "most recent wins");
    }

    #[test]
    fn a_write_on_top_of_the_other_supersedes_it() {
        let mut g = GoldenRecord::new(Uuid::nil(), "customer");
        put(&mut g, "crm", None, ("phone", "1"), 1, 10);
        let seen = g.version();
        put(&mut g, "erp", Some(&seen), ("phone", "2"), 2, 5);
        g.resolve("phone", most_recent);
        assert_eq!(g.candidates["phone"].len(), 1, "no conflict");
        assert_eq!(
            g.values["phone"], "2",
            "the causal overwrite wins though older"
        );
    }

    #[test]
    fn own_writes_are_sequential_and_restatements_are_skipped() {
        let mut g = GoldenRecord::new(Uuid::nil(), "customer");
        put(&mut g, "crm", None, ("phone", "1"), 1, 10);
        put(&mut g, "erp", None, ("city", "Bonn"), 2, 11);
        put(&mut g, "crm", None, ("phone", "3"), 3, 12);
        assert_eq!(g.candidates["phone"].len(), 1);
        let v = g.version();
        assert!(put(&mut g, "crm", None, ("phone", "3"), 4, 13).is_empty());
        assert_eq!(g.version(), v, "unchanged re-statement writes nothing");
    }

    #[test]
    fn setting_a_value_back_after_seeing_another_is_a_change() {
        let mut g = GoldenRecord::new(Uuid::nil(), "customer");
        put(&mut g, "crm", None, ("title", "A"), 1, 10);
        let v1 = g.version();
        put(&mut g, "erp", Some(&v1), ("title", "B"), 2, 11);
        g.resolve("title", most_recent);
        let v2 = g.version();
        // The echo of B: seen at v2, so it changes nothing.
        assert!(put(&mut g, "crm", Some(&v2), ("title", "B"), 3, 12).is_empty());
        // The user sets A again: crm last wrote A, but it had seen B since.
        let touched = put(&mut g, "crm", Some(&v2), ("title", "A"), 4, 13);
        assert_eq!(touched, vec!["title".to_string()]);
        g.resolve("title", most_recent);
        assert_eq!(g.values["title"], "A");
        assert_eq!(g.candidates["title"].len(), 1);
    }

    #[test]
    fn kept_candidates_are_what_the_document_holds() {
        // Writes from three systems, some on top of an older version, in a
        // fixed pseudo-random order: after each one, the candidates kept
        // without reading the document equal those read from it.
        let mut g = GoldenRecord::new(Uuid::nil(), "customer");
        let mut versions = vec![Vec::new()];
        let mut x = 7u64;
        for i in 0..300u128 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let system = ["crm", "erp", "oa"][(x >> 33) as usize % 3];
            let field = ["phone", "city"][(x >> 40) as usize % 2];
            let seen = &versions[(x >> 20) as usize % versions.len()];
            let base = (x >> 50).is_multiple_of(2).then_some(seen.as_slice());
            let value = format!("v{}", (x >> 24) % 5);
            put(&mut g, system, base, (field, &value), i, i as i64);
            for f in ["phone", "city"] {
                if let Some(kept) = g.candidates.get(f) {
                    assert_eq!(kept, &g.candidates_in_doc(f), "{f} after write {i}");
                }
            }
            versions.push(g.version());
        }
        assert!(g.candidates.values().any(|c| c.len() > 1), "some conflicts");
    }

    #[test]
    fn an_update_coming_back_with_a_lagging_base_is_not_an_edit() {
        // The OA record was sent "A" at v1; a poll that overlapped the
        // write reports "A" with the base before it. Then the CRM writes
        // "B" on top of its own history only.
        let mut g = GoldenRecord::new(Uuid::nil(), "customer");
        put(&mut g, "erp", None, ("city", "Start"), 1, 1);
        let v0 = g.version();
        put(&mut g, "crm", Some(&v0), ("city", "A"), 2, 2);
        g.resolve("city", most_recent);
        let v1 = g.version();
        g.note_sent(src("oa"), &v1, &w("city", "A"));
        assert!(
            put(&mut g, "oa", Some(&v0), ("city", "A"), 3, 4).is_empty(),
            "the echo of the update sent at v1 is no edit"
        );
        put(&mut g, "crm", Some(&v0), ("city", "B"), 4, 3);
        g.resolve("city", most_recent);
        assert_eq!(g.values["city"], "B", "the later edit is not lost");
        assert_eq!(g.candidates["city"].len(), 1);

        // Once a change of the OA record shows v1 in view, a value equal to
        // what was sent is an edit again (set back by a user).
        let v2 = g.version();
        g.note_sent(src("oa"), &v2, &w("city", "B"));
        let touched = put(&mut g, "oa", Some(&v2), ("city", "A"), 5, 5);
        assert_eq!(touched, vec!["city".to_string()]);
        assert!(g.unconfirmed.is_empty(), "both updates confirmed");

        // A change without a base claims nothing seen: a value the record
        // was sent is an edit all the same.
        g.resolve("city", most_recent);
        let v3 = g.version();
        g.note_sent(src("erp"), &v3, &w("city", "A"));
        put(&mut g, "crm", None, ("city", "C"), 6, 6);
        g.resolve("city", most_recent);
        let touched = put(&mut g, "erp", None, ("city", "A"), 7, 7);
        assert_eq!(touched, vec!["city".to_string()]);
        g.resolve("city", most_recent);
        assert_eq!(g.values["city"], "A");
    }
}
