//! Derivation: the log, entry by entry, into golden records and the outbound
//! updates each entry causes.
//!
//! **Derivation is pure and reads no clock.** `apply` takes a log entry and
//! returns decisions; it does no I/O, draws no random numbers and never
//! iterates a hash map where order could leak into results. Replaying the
//! same log into an empty `State` gives the same state hash.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mdhub_schema::normalize::normalize;
use mdhub_schema::{
    ChangeEvent, GoldenChange, GoldenUpdate, Model, Op, Survivorship, UpdateOp, SCHEMA_VERSION,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{HubConfig, SystemConfig};
use crate::entry::LogPayload;
use crate::golden::{survivorship, FieldWrite, GoldenRecord, SourceKey};
use crate::matcher::Matcher;

/// Namespace of outbound update ids.
const UPDATE_NS: Uuid = Uuid::from_u128(0x6d64_6875_622d_7570_6461_7465_2d69_6473);

/// The parts of the configuration derivation depends on. Changing them
/// changes what a replay derives, like a code change would.
#[derive(Debug, Clone)]
pub struct Rules {
    pub models: BTreeMap<String, Model>,
    pub systems: BTreeMap<String, SystemConfig>,
    pub source_priority: Vec<String>,
    pub field_policy: BTreeMap<String, Survivorship>,
}

impl Rules {
    pub fn from_config(config: &HubConfig, models: BTreeMap<String, Model>) -> Self {
        Rules {
            models,
            systems: config.systems.clone(),
            source_priority: config.survivorship.source_priority.clone(),
            field_policy: config.survivorship.fields.clone(),
        }
    }

    fn policy(&self, model: &Model, field: &str) -> Survivorship {
        self.field_policy
            .get(field)
            .copied()
            .or_else(|| model.field(field).map(|f| f.survivorship))
            .unwrap_or_default()
    }

    /// Does `system` store `field`?
    fn receives(&self, system: &str, field: &str) -> bool {
        match self.systems.get(system) {
            Some(s) if !s.fields.is_empty() => s.fields.iter().any(|f| f == field),
            _ => true,
        }
    }
}

/// A message the hub must publish because of one log entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// To one system: `mdhub.out.<system>.<entity>`.
    Update(GoldenUpdate),
    /// To everyone: `mdhub.golden.<entity>`.
    Golden(GoldenChange),
}

impl Outbound {
    pub fn subject(&self) -> String {
        match self {
            Outbound::Update(u) => format!("mdhub.out.{}.{}", u.system, u.entity),
            Outbound::Golden(g) => format!("mdhub.golden.{}", g.entity),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Outbound::Update(u) => serde_json::to_vec(u),
            Outbound::Golden(g) => serde_json::to_vec(g),
        }
        .expect("outbound messages serialize")
    }
}

/// What one entry did, for the adapters (metrics, logs, publishing).
#[derive(Debug, Default)]
pub struct Applied {
    pub golden_id: Option<Uuid>,
    /// Fields of this entry that ended with more than one candidate.
    pub conflicts: usize,
    pub outbound: Vec<Outbound>,
}

pub struct State {
    rules: Arc<Rules>,
    records: BTreeMap<Uuid, GoldenRecord>,
    matcher: Matcher,
    applied_seq: u64,
}

/// Who receives updates for one golden record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    system: String,
    /// `None`: a `receive_all` system that holds no copy of this record yet.
    record_id: Option<String>,
}

impl State {
    pub fn new(rules: Arc<Rules>) -> Self {
        State {
            rules,
            records: BTreeMap::new(),
            matcher: Matcher::default(),
            applied_seq: 0,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn rules_arc(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// The last log sequence applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    pub fn record(&self, id: Uuid) -> Option<&GoldenRecord> {
        self.records.get(&id)
    }

    pub fn records(&self) -> impl Iterator<Item = &GoldenRecord> {
        self.records.values()
    }

    pub fn golden_of(&self, source: &SourceKey) -> Option<Uuid> {
        self.matcher.golden_of(source)
    }

    pub fn golden_count(&self) -> usize {
        self.records.len()
    }

    /// Golden records whose `field` has this value (normalized like input),
    /// in id order, at most `limit`.
    pub fn find_by_field(
        &self,
        entity: &str,
        field: &str,
        raw: &str,
        limit: usize,
    ) -> Result<Vec<Uuid>, String> {
        let model = self
            .rules
            .models
            .get(entity)
            .ok_or_else(|| format!("unknown entity {entity:?}"))?;
        let def = model
            .field(field)
            .ok_or_else(|| format!("entity {entity:?} has no field {field:?}"))?;
        let wanted = normalize(def, &Value::String(raw.to_string()))
            .map_err(|e| format!("field {field:?}: {e}"))?;
        Ok(self
            .records
            .values()
            .filter(|r| r.entity == entity && r.values.get(field) == Some(&wanted))
            .map(|r| r.id)
            .take(limit)
            .collect())
    }

    /// Applies log entry `seq`. Entries must come in log order, each once.
    pub fn apply(&mut self, seq: u64, payload: &LogPayload) -> Applied {
        debug_assert!(seq > self.applied_seq, "entries are applied in order, once");
        self.applied_seq = seq;
        match payload {
            LogPayload::Change(e) => match e.op {
                Op::Upsert => self.apply_upsert(seq, e),
                Op::Delete => self.apply_delete(seq, e),
            },
        }
    }

    fn apply_upsert(&mut self, seq: u64, e: &ChangeEvent) -> Applied {
        let rules = Arc::clone(&self.rules);
        let Some(model) = rules.models.get(&e.entity) else {
            // Validation refuses unknown entities; a log written under an
            // older model may still hold some. They derive nothing.
            return Applied::default();
        };
        let writes = normalized_writes(model, &e.fields);
        let keys: Vec<(&str, &Value)> = model
            .match_keys()
            .filter_map(|f| {
                writes
                    .iter()
                    .find(|w| w.field == f.name && !w.value.is_null())
                    .map(|w| (f.name.as_str(), &w.value))
            })
            .collect();
        let source = SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        let golden_id = self
            .matcher
            .find(&e.entity, &source, &keys)
            .unwrap_or_else(|| Matcher::new_golden_id(&e.entity, &source, &keys));
        self.matcher.index_keys(&e.entity, &keys, golden_id);
        let newly_linked = self.matcher.golden_of(&source).is_none();
        self.matcher.link(source.clone(), golden_id);

        let record = self
            .records
            .entry(golden_id)
            .or_insert_with(|| GoldenRecord::new(golden_id, &e.entity));
        let before = record.values.clone();
        let was_retired = record.retired;
        record.retired = false;
        record.links.insert(source.clone());
        let sent: BTreeMap<String, Value> = writes
            .iter()
            .map(|w| (w.field.clone(), w.value.clone()))
            .collect();
        let pick = |field: &str, c: &[crate::golden::Candidate]| {
            survivorship::pick(rules.policy(model, field), &rules.source_priority, c)
        };
        let touched = record.write(
            &e.system,
            e.base.as_deref(),
            writes,
            e.event_id,
            observed_ns(e),
            pick,
        );
        let mut conflicts = 0;
        for field in &touched {
            record.resolve(field, |c| pick(field, c));
            if record
                .candidates
                .get(field)
                .is_some_and(|c| crate::golden::is_conflict(c))
            {
                conflicts += 1;
            }
        }

        let version = record.version();
        let mut outbound = Vec::new();
        for target in targets(&rules, record) {
            let writer = target.system == source.system
                && target.record_id.as_deref() == Some(&source.record_id);
            // What the target holds now: every golden value sent so far, and
            // for the writer also what it just wrote. A newly linked writer
            // holds only what it sent.
            let holds = match (writer, newly_linked) {
                (true, true) => sent.clone(),
                (true, false) => overlay(&before, &sent),
                (false, _) => before.clone(),
            };
            let fields = diff(&holds, &record.values, |f| {
                rules.receives(&target.system, f)
            });
            if !fields.is_empty() {
                outbound.push(Outbound::Update(update(
                    record,
                    &target,
                    UpdateOp::Upsert,
                    fields,
                    &version,
                    seq,
                    e.event_id,
                )));
            }
        }
        let changed = diff(&before, &record.values, |_| true);
        if !changed.is_empty() || was_retired {
            outbound.push(Outbound::Golden(GoldenChange {
                schema_version: SCHEMA_VERSION,
                golden_id,
                entity: e.entity.clone(),
                fields: changed,
                retired: false,
                version,
                log_seq: seq,
                caused_by: e.event_id,
            }));
        }
        Applied {
            golden_id: Some(golden_id),
            conflicts,
            outbound,
        }
    }

    fn apply_delete(&mut self, seq: u64, e: &ChangeEvent) -> Applied {
        let source = SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        let Some(golden_id) = self.matcher.unlink(&source) else {
            return Applied::default();
        };
        let record = self
            .records
            .get_mut(&golden_id)
            .expect("linked golden records exist");
        record.links.remove(&source);
        let mut outbound = Vec::new();
        if record.links.is_empty() {
            record.retired = true;
            let version = record.version();
            for target in targets(&self.rules, record) {
                outbound.push(Outbound::Update(update(
                    record,
                    &target,
                    UpdateOp::Retire,
                    Default::default(),
                    &version,
                    seq,
                    e.event_id,
                )));
            }
            outbound.push(Outbound::Golden(GoldenChange {
                schema_version: SCHEMA_VERSION,
                golden_id,
                entity: e.entity.clone(),
                fields: Default::default(),
                retired: true,
                version,
                log_seq: seq,
                caused_by: e.event_id,
            }));
        }
        Applied {
            golden_id: Some(golden_id),
            conflicts: 0,
            outbound,
        }
    }

    /// SHA-256 over all derived state, in a canonical order. Equal for equal
    /// logs, and for any order of arrival of the same concurrent edits.
    pub fn state_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"mdhub-state-v1");
        for record in self.records.values() {
            record.hash_into(&mut h);
        }
        hex::encode(h.finalize())
    }
}

/// An event's field values in canonical form, as golden writes. Values that
/// no longer normalize (the model changed since they were logged) are
/// skipped, the same way on every replay.
pub fn normalized_writes(model: &Model, fields: &mdhub_schema::event::Fields) -> Vec<FieldWrite> {
    fields
        .iter()
        .filter_map(|(name, value)| {
            let def = model.field(name)?;
            normalize(def, value).ok().map(|value| FieldWrite {
                field: name.clone(),
                value,
            })
        })
        .collect()
}

fn observed_ns(e: &ChangeEvent) -> i64 {
    e.observed_at
        .unix_timestamp_nanos()
        .clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Linked source records, plus `receive_all` systems that hold no linked
/// copy, in a fixed order.
fn targets(rules: &Rules, record: &GoldenRecord) -> BTreeSet<Target> {
    let mut out: BTreeSet<Target> = record
        .links
        .iter()
        .map(|s| Target {
            system: s.system.clone(),
            record_id: Some(s.record_id.clone()),
        })
        .collect();
    for (name, system) in &rules.systems {
        if system.receive_all && !record.links.iter().any(|s| s.system == *name) {
            out.insert(Target {
                system: name.clone(),
                record_id: None,
            });
        }
    }
    out
}

fn overlay(
    base: &BTreeMap<String, Value>,
    top: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut out = base.clone();
    for (k, v) in top {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Fields where `to` differs from `from` (absent = null), with their new value.
fn diff(
    from: &BTreeMap<String, Value>,
    to: &BTreeMap<String, Value>,
    wanted: impl Fn(&str) -> bool,
) -> BTreeMap<String, Value> {
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter(|k| wanted(k))
        .filter_map(|k| {
            let old = from.get(k).unwrap_or(&Value::Null);
            let new = to.get(k).unwrap_or(&Value::Null);
            (old != new).then(|| (k.clone(), new.clone()))
        })
        .collect()
}

fn update(
    record: &GoldenRecord,
    target: &Target,
    op: UpdateOp,
    fields: BTreeMap<String, Value>,
    version: &[String],
    seq: u64,
    caused_by: Uuid,
) -> GoldenUpdate {
    let name = format!(
        "{}/{}/{}/{seq}",
        record.id,
        target.system,
        target.record_id.as_deref().unwrap_or("")
    );
    GoldenUpdate {
        schema_version: SCHEMA_VERSION,
        update_id: Uuid::new_v5(&UPDATE_NS, name.as_bytes()),
        golden_id: record.id,
        system: target.system.clone(),
        entity: record.entity.clone(),
        record_id: target.record_id.clone(),
        op,
        fields,
        version: version.to_vec(),
        log_seq: seq,
        caused_by,
    }
}
