//! Derivation: the log, entry by entry, into golden records and the outbound
//! updates each entry causes.
//!
//! **Derivation is pure and reads no clock.** `apply` takes a log entry and
//! returns decisions; it does no I/O, draws no random numbers and never
//! iterates a hash map where order could leak into results. Replaying the
//! same log into an empty `State` gives the same state hash.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mdhub_schema::cleanse::{cleanse_record, CleanseContext};
use mdhub_schema::normalize::normalize;
use mdhub_schema::{
    ChangeEvent, CleansedRecord, GoldenChange, GoldenUpdate, Model, Op, Survivorship, UpdateOp,
    SCHEMA_VERSION,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{HubConfig, SystemConfig};
use crate::entry::LogPayload;
use crate::golden::{survivorship, FieldWrite, GoldenRecord, QualityIssue, SourceKey};
use crate::resolve::profile::Profile;
use crate::resolve::rules::MatchRules;
use crate::resolve::{Decision, Resolver};

mod steward;

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
    pub matching: MatchRules,
}

impl Rules {
    pub fn from_config(config: &HubConfig, models: BTreeMap<String, Model>) -> Self {
        Rules {
            models,
            systems: config.systems.clone(),
            source_priority: config.survivorship.source_priority.clone(),
            field_policy: config.survivorship.fields.clone(),
            matching: MatchRules::from_config(&config.matching),
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
    resolver: Resolver,
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
            resolver: Resolver::new(rules.matching.clone()),
            rules,
            records: BTreeMap::new(),
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
        self.resolver.golden_of(source)
    }

    /// Review tasks, open and decided, by id.
    /// The matcher, for reports on the data (u estimates).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    pub fn review_tasks(&self) -> impl Iterator<Item = &crate::resolve::ReviewTask> {
        self.resolver.tasks()
    }

    pub fn review_task(&self, id: Uuid) -> Option<&crate::resolve::ReviewTask> {
        self.resolver.task(id)
    }

    /// The golden record an id stands for now (itself, or its survivor).
    pub fn survivor(&self, id: Uuid) -> Uuid {
        self.resolver.survivor(id)
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
        self.apply_cleansed(seq, payload, None)
    }

    /// `apply`, with the change event's fields already cleansed by
    /// `cleanse_event` (the ingest check stage does it off the commit path).
    pub fn apply_cleansed(
        &mut self,
        seq: u64,
        payload: &LogPayload,
        cleansed: Option<CleansedRecord>,
    ) -> Applied {
        debug_assert!(seq > self.applied_seq, "entries are applied in order, once");
        self.applied_seq = seq;
        match payload {
            LogPayload::Change(e) => match e.op {
                Op::Upsert => {
                    let cleansed = cleansed.or_else(|| cleanse_event(&self.rules, e));
                    match cleansed {
                        Some(c) => self.apply_upsert(seq, e, c),
                        // An entity the model no longer knows derives nothing.
                        None => Applied::default(),
                    }
                }
                Op::Delete => self.apply_delete(seq, e),
            },
            LogPayload::Steward(a) => self.apply_steward(seq, a),
        }
    }

    fn apply_upsert(&mut self, seq: u64, e: &ChangeEvent, cleansed: CleansedRecord) -> Applied {
        let rules = Arc::clone(&self.rules);
        let Some(model) = rules.models.get(&e.entity) else {
            return Applied::default();
        };
        let source = SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        // The source record's whole current image: events may carry only the
        // fields that changed. Its quality issues likewise.
        let previous = self
            .resolver
            .golden_of(&source)
            .and_then(|g| self.records.get(&g));
        let mut image = previous
            .and_then(|r| r.source_values.get(&source))
            .cloned()
            .unwrap_or_default();
        let mut issues: Vec<QualityIssue> = previous
            .and_then(|r| r.quality.get(&source))
            .map(|q| {
                q.iter()
                    .filter(|i| !cleansed.values.contains_key(&i.field))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        issues.extend(cleansed.issues.iter().cloned());
        for (f, v) in &cleansed.values {
            if v.is_null() {
                image.remove(f);
            } else {
                image.insert(f.clone(), v.clone());
            }
        }
        let flagged: BTreeSet<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        let valid: BTreeMap<String, Value> = image
            .iter()
            .filter(|(f, _)| !flagged.contains(f.as_str()))
            .map(|(f, v)| (f.clone(), v.clone()))
            .collect();
        let newly_linked = self.resolver.golden_of(&source).is_none();
        let profile = Profile::from_values(&valid);
        let exact_email = model.match_keys().any(|f| f.name == "email");
        let (golden_id, merge) =
            match self
                .resolver
                .decide(&e.entity, &source, &profile, exact_email, seq)
            {
                Decision::Link { golden, merge } => (golden, merge),
                Decision::New { golden, .. } => (golden, Vec::new()),
            };
        let time_ns = observed_ns(e);

        // What every target holds now, before this entry: the values of the
        // golden record it is linked to (a merged one's, for its sources).
        // Without a merge that is `before` for all, which `updates_for`
        // assumes for targets missing here: no copy per target then.
        let mut held = BTreeMap::new();
        if !merge.is_empty() {
            held = self.held_by_targets(golden_id);
            for loser in &merge {
                held.extend(self.held_by_targets(*loser));
            }
        }
        let before = self
            .records
            .get(&golden_id)
            .map(|r| r.values.clone())
            .unwrap_or_default();
        let mut outbound = Vec::new();
        for loser in &merge {
            outbound.extend(self.merge_records(*loser, golden_id, seq, e.event_id, time_ns));
        }

        let record = self
            .records
            .entry(golden_id)
            .or_insert_with(|| GoldenRecord::new(golden_id, &e.entity));
        let was_retired = record.retired;
        record.retired = false;
        record.links.insert(source.clone());
        record.source_values.insert(source.clone(), image);
        if issues.is_empty() {
            record.quality.remove(&source);
        } else {
            record.quality.insert(source.clone(), issues);
        }
        let sent = cleansed.values;
        let writes: Vec<FieldWrite> = sent
            .iter()
            .map(|(f, v)| FieldWrite {
                field: f.clone(),
                value: v.clone(),
            })
            .collect();
        let pick = |field: &str, c: &[crate::golden::Candidate]| {
            survivorship::pick(rules.policy(model, field), &rules.source_priority, c)
        };
        let mut touched = record.write(
            &e.system,
            e.base.as_deref(),
            writes,
            e.event_id,
            time_ns,
            pick,
        );
        if !merge.is_empty() {
            touched = record
                .candidates
                .keys()
                .chain(record.overrides.keys())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
        }
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

        let record = &self.records[&golden_id];
        let writer = Target {
            system: source.system.clone(),
            record_id: Some(source.record_id.clone()),
        };
        // The writer holds what it just sent, on top of what it held (a newly
        // linked writer holds only what it sent).
        let writer_holds = if newly_linked {
            sent
        } else {
            overlay(held.get(&writer).unwrap_or(&before), &sent)
        };
        held.insert(writer, writer_holds);
        outbound.extend(updates_for(&rules, record, &held, &before, seq, e.event_id));
        let changed = diff(&before, &record.values, |_| true);
        if !changed.is_empty() || was_retired || !merge.is_empty() {
            outbound.push(golden_change(record, changed, seq, e.event_id));
        }
        Applied {
            golden_id: Some(golden_id),
            conflicts,
            outbound,
        }
    }

    /// What each target of a golden record holds: its golden values.
    fn held_by_targets(&self, golden: Uuid) -> BTreeMap<Target, BTreeMap<String, Value>> {
        match self.records.get(&golden) {
            Some(r) => targets(&self.rules, r)
                .into_iter()
                .map(|t| (t, r.values.clone()))
                .collect(),
            None => BTreeMap::new(),
        }
    }

    /// Merges golden record `loser` into `survivor` (the resolver already
    /// knows): links, source values and quality issues move, every candidate
    /// of the loser joins the survivor's, the loser is retired with
    /// "merged into". Returns the loser's golden change.
    fn merge_records(
        &mut self,
        loser: Uuid,
        survivor: Uuid,
        seq: u64,
        caused_by: Uuid,
        time_ns: i64,
    ) -> Vec<Outbound> {
        let Some(mut gone) = self.records.remove(&loser) else {
            return Vec::new();
        };
        let record = self
            .records
            .entry(survivor)
            .or_insert_with(|| GoldenRecord::new(survivor, &gone.entity));
        let mut sets: BTreeMap<String, Vec<crate::golden::Candidate>> = BTreeMap::new();
        for (field, cands) in &gone.candidates {
            let mut all = record.candidates.get(field).cloned().unwrap_or_default();
            for c in cands {
                if !all
                    .iter()
                    .any(|a| a.system == c.system && a.event_id == c.event_id)
                {
                    all.push(c.clone());
                }
            }
            sets.insert(field.clone(), all);
        }
        record.rewrite(&sets, &format!("merge/{loser}"), time_ns);
        for (system, values) in gone.written() {
            record.adopt_written(system, values);
        }
        record.links.append(&mut gone.links);
        record.source_values.append(&mut gone.source_values);
        record.quality.append(&mut gone.quality);
        for (f, v) in std::mem::take(&mut gone.overrides) {
            record.overrides.entry(f).or_insert(v);
        }
        gone.retired = true;
        gone.merged_into = Some(survivor);
        let change = golden_change(&gone, BTreeMap::new(), seq, caused_by);
        self.records.insert(loser, gone);
        vec![change]
    }

    fn apply_delete(&mut self, seq: u64, e: &ChangeEvent) -> Applied {
        let source = SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        let Some(golden_id) = self.resolver.unlink(&source) else {
            return Applied::default();
        };
        let record = self
            .records
            .get_mut(&golden_id)
            .expect("linked golden records exist");
        record.links.remove(&source);
        record.source_values.remove(&source);
        record.quality.remove(&source);
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
            outbound.push(golden_change(record, BTreeMap::new(), seq, e.event_id));
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
        h.update(b"mdhub-state-v2");
        for record in self.records.values() {
            record.hash_into(&mut h);
        }
        self.resolver.hash_into(&mut h);
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

/// Updates for every target of `record` that does not hold its golden
/// values: `held` says what each target holds (targets not in it, such as a
/// `receive_all` system new to the record, hold `before`).
/// An upsert's fields cleansed for the system's region; `None` for an
/// entity the model does not know (validation refuses those; a log written
/// under an older model may still hold some).
pub fn cleanse_event(rules: &Rules, e: &ChangeEvent) -> Option<CleansedRecord> {
    let model = rules.models.get(&e.entity)?;
    let region = rules
        .systems
        .get(&e.system)
        .and_then(|s| s.region.as_deref());
    Some(cleanse_record(
        model,
        &e.fields,
        &CleanseContext {
            default_region: region,
        },
    ))
}

fn updates_for(
    rules: &Rules,
    record: &GoldenRecord,
    held: &BTreeMap<Target, BTreeMap<String, Value>>,
    before: &BTreeMap<String, Value>,
    seq: u64,
    caused_by: Uuid,
) -> Vec<Outbound> {
    let version = record.version();
    let mut out = Vec::new();
    for target in targets(rules, record) {
        let holds = held.get(&target).unwrap_or(before);
        let fields = diff(holds, &record.values, |f| rules.receives(&target.system, f));
        if !fields.is_empty() {
            out.push(Outbound::Update(update(
                record,
                &target,
                UpdateOp::Upsert,
                fields,
                &version,
                seq,
                caused_by,
            )));
        }
    }
    out
}

/// The change feed message for `record`.
fn golden_change(
    record: &GoldenRecord,
    fields: BTreeMap<String, Value>,
    seq: u64,
    caused_by: Uuid,
) -> Outbound {
    Outbound::Golden(GoldenChange {
        schema_version: SCHEMA_VERSION,
        golden_id: record.id,
        entity: record.entity.clone(),
        fields,
        retired: record.retired,
        merged_into: record.merged_into,
        version: record.version(),
        log_seq: seq,
        caused_by,
    })
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
