//! Derivation: the log, entry by entry, into golden records and the outbound
//! updates each entry causes.
//!
//! **Derivation is pure and reads no clock.** `apply` takes a log entry and
//! returns decisions; it does no I/O, draws no random numbers and never
//! iterates a hash map where order could leak into results. Replaying the
//! same log into an empty `State` gives the same state hash.

use std::borrow::Cow;
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

use crate::entry::LogPayload;
use crate::golden::{survivorship, GoldenRecord, QualityIssue, SourceKey};
use crate::resolve::profile::Profile;
use crate::resolve::rules::MatchRules;
use crate::resolve::{Decision, Resolver};
use crate::store::{MemoryStorage, Storage, StoreError};

mod checkpoint;
pub mod history;
mod records;
mod regroup;
mod steward;

pub use checkpoint::{
    read_unacked, rules_hash, unacked_write, Checkpoint, Unacked, DEFAULT_CHECKPOINT_ENTRIES,
};

use records::Records;

/// Decoded golden records kept in memory by default (`[store]
/// cache_records`): about 300 MB at 25 to 50 KiB each. The store's page
/// cache holds more of them encoded (about 1 KiB each), so a record that
/// left this cache is read back in about 70 us without a disk read.
pub const DEFAULT_CACHE_RECORDS: usize = 10_000;

/// Namespace of outbound update ids.
const UPDATE_NS: Uuid = Uuid::from_u128(0x6d64_6875_622d_7570_6461_7465_2d69_6473);

/// A source system as the hub's configuration describes it (`[system.NAME]`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// Receive every golden record, not only those it holds a copy of
    /// (e.g. a data warehouse or an ERP that must know all customers).
    #[serde(default)]
    pub receive_all: bool,
    /// Canonical fields this system stores; it receives updates for these
    /// only. Empty: all fields of the model.
    #[serde(default)]
    pub fields: Vec<String>,
    /// ISO 3166-1 alpha-2 region for this system's national phone numbers
    /// ("030 1234567" is read as German with "DE"). Unset: national
    /// numbers are flagged as quality issues.
    #[serde(default)]
    pub region: Option<String>,
}

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    records: Records,
    resolver: Resolver,
    applied_seq: u64,
}

/// Why `State::find_by_field` found nothing.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// The question is wrong: an unknown entity or field, a value the
    /// field cannot hold.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who receives updates for one golden record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    system: String,
    /// `None`: a `receive_all` system that holds no copy of this record yet.
    record_id: Option<String>,
}

impl Target {
    fn new(system: &str, record_id: Option<&str>) -> Self {
        Target {
            system: system.to_string(),
            record_id: record_id.map(str::to_string),
        }
    }
}

impl State {
    /// An empty state in memory, with the default cache.
    pub fn new(rules: Arc<Rules>) -> Self {
        Self::open(
            rules,
            MemoryStorage::shared().as_ref(),
            DEFAULT_CACHE_RECORDS,
        )
        .expect("a new in-memory store opens")
    }

    /// An empty state kept in `storage` (its tables are cleared, its
    /// checkpoint first: state is derived anew from the log), with room for
    /// `cache_records` decoded golden records in memory.
    pub fn open(
        rules: Arc<Rules>,
        storage: &dyn Storage,
        cache_records: usize,
    ) -> Result<Self, StoreError> {
        storage.table(checkpoint::TABLE)?.clear()?;
        let golden = storage.table("golden")?;
        let by_value = storage.table("golden_by_value")?;
        let history = storage.table(history::TABLE)?;
        for table in [&golden, &by_value, &history] {
            table.clear()?;
        }
        for name in crate::resolve::tables::TABLES {
            storage.table(name)?.clear()?;
        }
        Ok(State {
            resolver: Resolver::new(rules.matching.clone(), storage)?,
            rules,
            records: Records::new(golden, by_value, history, cache_records),
            applied_seq: 0,
        })
    }

    /// The state `checkpoint` left in `storage` (read with
    /// `Checkpoint::read`, found usable by the caller). `model` is the
    /// trained model of log entry `checkpoint.model_seq`, if it names one.
    pub fn resume(
        rules: Arc<Rules>,
        storage: &dyn Storage,
        cache_records: usize,
        checkpoint: &Checkpoint,
        model: Option<&crate::resolve::trained::TrainedModel>,
    ) -> Result<Self, StoreError> {
        let matcher = checkpoint::matcher_bytes(storage)?;
        let resolver = Resolver::restore(rules.matching.clone(), storage, &matcher, model)?;
        Ok(State {
            resolver,
            records: Records::resume(
                storage.table("golden")?,
                storage.table("golden_by_value")?,
                storage.table(history::TABLE)?,
                cache_records,
                checkpoint.golden_records as usize,
            ),
            rules,
            applied_seq: checkpoint.seq,
        })
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

    /// Golden record `id`: from the cache, or read from storage.
    pub fn record(&self, id: Uuid) -> Result<Option<Cow<'_, GoldenRecord>>, StoreError> {
        self.records.peek(id)
    }

    /// Calls `f` on every golden record, in id order.
    pub fn for_each_record(&self, f: impl FnMut(&GoldenRecord)) -> Result<(), StoreError> {
        self.records.for_each(f)
    }

    /// The golden record a source record is linked to now, if any.
    pub fn golden_of(&self, source: &SourceKey) -> Result<Option<Uuid>, StoreError> {
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

    /// Golden record `id`'s history after log entry `after_seq`, in log
    /// order, at most `limit` steps, each with the record it is of: a
    /// record merged into another continues in its survivor's history
    /// after the merge.
    pub fn history(
        &self,
        id: Uuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(Uuid, u64, history::Step)>, StoreError> {
        let mut out = Vec::new();
        let mut current = id;
        // Steps of `current` after this entry.
        let mut from = 0;
        let mut visited = std::collections::BTreeSet::new();
        while visited.insert(current) {
            let steps = self.records.history(current, from, usize::MAX)?;
            let merge = steps
                .iter()
                .find(|(_, step)| step.merged_into.is_some())
                .map(|(seq, step)| (*seq, step.merged_into.expect("found")));
            let last = merge.map_or(u64::MAX, |(seq, _)| seq);
            out.extend(
                steps
                    .into_iter()
                    .filter(|(seq, _)| *seq > after_seq && *seq <= last)
                    .map(|(seq, step)| (current, seq, step)),
            );
            match merge {
                Some((seq, survivor)) if out.len() < limit => {
                    // From the merge on: the survivor's own step of it too.
                    current = survivor;
                    from = seq - 1;
                }
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Golden record `id` as it was after log entry `seq`: `None` if it
    /// did not exist yet.
    pub fn as_of(&self, id: Uuid, seq: u64) -> Result<Option<history::AsOf>, StoreError> {
        let mut state = history::AsOf::default();
        let mut any = false;
        for (at, step) in self.records.history(id, 0, usize::MAX)? {
            if at > seq {
                break;
            }
            state.apply(at, &step);
            any = true;
        }
        Ok(any.then_some(state))
    }

    /// The survivorship rule of `field` of `entity`: its snake_case name
    /// (`source_priority`, `most_recent`, `most_complete`).
    pub fn rule_of(&self, entity: &str, field: &str) -> Option<String> {
        let model = self.rules.models.get(entity)?;
        serde_json::to_value(self.rules.policy(model, field))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// The golden record an id stands for now (itself, or its survivor).
    pub fn survivor(&self, id: Uuid) -> Uuid {
        self.resolver.survivor(id)
    }

    pub fn golden_count(&self) -> usize {
        self.records.count()
    }

    /// Golden records whose `field` has this value (normalized like input),
    /// in id order, at most `limit`: read from an index of golden values,
    /// never by a scan.
    pub fn find_by_field(
        &self,
        entity: &str,
        field: &str,
        raw: &str,
        limit: usize,
    ) -> Result<Vec<Uuid>, FindError> {
        let model = self
            .rules
            .models
            .get(entity)
            .ok_or_else(|| FindError::Invalid(format!("unknown entity {entity:?}")))?;
        let def = model.field(field).ok_or_else(|| {
            FindError::Invalid(format!("entity {entity:?} has no field {field:?}"))
        })?;
        let wanted = normalize(def, &Value::String(raw.to_string()))
            .map_err(|e| FindError::Invalid(format!("field {field:?}: {e}")))?;
        Ok(self.records.find(entity, field, &wanted, limit)?)
    }

    /// Applies log entry `seq`. Entries must come in log order, each once.
    /// A storage error leaves the state unusable: derive anew from the log.
    pub fn apply(&mut self, seq: u64, payload: &LogPayload) -> Result<Applied, StoreError> {
        self.apply_cleansed(seq, payload, None)
    }

    /// `apply`, with the change event's fields already cleansed by
    /// `cleanse_event` (the ingest check stage does it off the commit path).
    pub fn apply_cleansed(
        &mut self,
        seq: u64,
        payload: &LogPayload,
        cleansed: Option<CleansedRecord>,
    ) -> Result<Applied, StoreError> {
        debug_assert!(seq > self.applied_seq, "entries are applied in order, once");
        self.applied_seq = seq;
        #[cfg(feature = "failpoints")]
        crate::failpoint::check_derive(payload);
        let applied = match payload {
            LogPayload::Change(e) => match e.op {
                Op::Upsert => {
                    let cleansed = cleansed.or_else(|| cleanse_event(&self.rules, e));
                    match cleansed {
                        Some(c) => self.apply_upsert(seq, e, c)?,
                        // An entity the model no longer knows derives nothing.
                        None => Applied::default(),
                    }
                }
                Op::Delete => self.apply_delete(seq, e)?,
            },
            LogPayload::Steward(a) => self.apply_steward(seq, a)?,
            LogPayload::MatchModel(m) => {
                self.resolver.use_model(seq, m)?;
                Applied::default()
            }
            LogPayload::Regroup(r) => self.apply_regroup(seq, r)?,
        };
        self.remember_sent(&applied.outbound)?;
        self.records.finish_entry(seq)?;
        Ok(applied)
    }

    /// Notes each update to a linked record on its golden record, so that
    /// the record's echo of it is known for one (see `GoldenRecord::write`).
    fn remember_sent(&mut self, outbound: &[Outbound]) -> Result<(), StoreError> {
        for o in outbound {
            let Outbound::Update(u) = o else { continue };
            let (Some(record_id), UpdateOp::Upsert) = (&u.record_id, u.op) else {
                continue;
            };
            if let Some(record) = self.records.get_mut(u.golden_id)? {
                let target = SourceKey {
                    system: u.system.clone(),
                    record_id: record_id.clone(),
                };
                record.note_sent(target, &u.version, &u.fields);
            }
        }
        Ok(())
    }

    fn apply_upsert(
        &mut self,
        seq: u64,
        e: &ChangeEvent,
        cleansed: CleansedRecord,
    ) -> Result<Applied, StoreError> {
        let rules = Arc::clone(&self.rules);
        let Some(model) = rules.models.get(&e.entity) else {
            return Ok(Applied::default());
        };
        let source = SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        let CleansedRecord {
            values: sent,
            issues: new_issues,
        } = cleansed;
        // The source record's whole current image (events may carry only the
        // fields that changed) and its quality issues: taken out of the
        // golden record it was linked to, updated, and put into the one it
        // is linked to after this entry.
        let current = self.resolver.golden_of(&source)?;
        let linked = match current {
            Some(g) => self.records.get_mut(g)?,
            None => None,
        };
        let (mut image, mut issues) = match linked {
            Some(r) => (
                r.source_values.remove(&source).unwrap_or_default(),
                r.quality.remove(&source).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        issues.retain(|i| !sent.contains_key(&i.field));
        issues.extend(new_issues);
        // Whether a value matching reads changed (cleansing is a function of
        // the value, so a field's flag only changes with its value).
        let mut identity_changed = false;
        for (f, v) in &sent {
            let changes = if v.is_null() {
                image.remove(f).is_some()
            } else if image.get(f) != Some(v) {
                image.insert(f.clone(), v.clone());
                true
            } else {
                false
            };
            identity_changed |= changes && rules.matching.reads(f);
        }
        let (golden_id, merge) = match current {
            // Nothing to match again: `decide` would keep it where it is.
            Some(golden) if !identity_changed => (golden, Vec::new()),
            _ => {
                let profile = profile_of(&rules.matching, &image, &issues);
                let exact_email = model.match_keys().any(|f| f.name == "email");
                match self
                    .resolver
                    .decide(&e.entity, &source, &profile, exact_email, seq)?
                {
                    Decision::Link { golden, merge } => (golden, merge),
                    Decision::New { golden, .. } => (golden, Vec::new()),
                }
            }
        };
        let time_ns = observed_ns(e);

        // Targets that do not hold the survivor's golden values: those of
        // the records merged into it.
        let held = self.held_by_merged(&merge)?;
        let mut outbound = Vec::new();
        for loser in &merge {
            outbound.extend(self.merge_records(*loser, golden_id, seq, e.event_id, time_ns)?);
        }

        let record = self.records.get_or_create(golden_id, &e.entity)?;
        let was_retired = record.retired;
        record.retired = false;
        if !record.links.contains(&source) {
            record.links.insert(source.clone());
        }
        record.source_values.insert(source.clone(), image);
        if !issues.is_empty() {
            record.quality.insert(source.clone(), issues);
        }
        let pick = |field: &str, c: &[crate::golden::Candidate]| {
            survivorship::pick(rules.policy(model, field), &rules.source_priority, c)
        };
        let mut touched =
            record.write(&source, e.base.as_deref(), &sent, e.event_id, time_ns, pick);
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
        // Golden values only change here, so these are all that changed.
        let mut changed = BTreeMap::new();
        let mut conflicts = 0;
        for field in touched {
            if record.resolve(&field, |c| pick(&field, c)) {
                let now = record.values.get(&field).cloned().unwrap_or(Value::Null);
                changed.insert(field.clone(), now);
            }
            if record
                .candidates
                .get(&field)
                .is_some_and(|c| crate::golden::is_conflict(c))
            {
                conflicts += 1;
            }
        }

        let record = self.records.get(golden_id)?.expect("just written");
        let version = record.version();
        // The writer holds what it just sent, on top of what it held (a newly
        // linked writer holds only what it sent).
        let writer = Writer {
            system: &source.system,
            record_id: &source.record_id,
            sent: &sent,
            newly_linked: current.is_none(),
        };
        outbound.extend(updates_for(
            &rules,
            record,
            &Holdings {
                changed: &changed,
                held: &held,
                writer: Some(writer),
            },
            &version,
            seq,
            e.event_id,
        ));
        if !changed.is_empty() || was_retired || !merge.is_empty() {
            outbound.push(golden_change(record, changed, &version, seq, e.event_id));
        }
        Ok(Applied {
            golden_id: Some(golden_id),
            conflicts,
            outbound,
        })
    }

    /// What each target of a golden record holds: its golden values.
    fn held_by_targets(
        &mut self,
        golden: Uuid,
    ) -> Result<BTreeMap<Target, BTreeMap<String, Value>>, StoreError> {
        Ok(match self.records.get(golden)? {
            Some(r) => targets(&self.rules, r)
                .into_iter()
                .map(|(system, record_id)| (Target::new(system, record_id), r.values.clone()))
                .collect(),
            None => BTreeMap::new(),
        })
    }

    /// What the linked targets of golden records about to be merged away
    /// hold: their records' values. (A `receive_all` system without a copy
    /// holds each golden record under its own id; for the survivor's, that
    /// is the survivor's values.)
    fn held_by_merged(
        &mut self,
        merged: &[Uuid],
    ) -> Result<BTreeMap<Target, BTreeMap<String, Value>>, StoreError> {
        let mut held = BTreeMap::new();
        for golden in merged {
            held.extend(
                self.held_by_targets(*golden)?
                    .into_iter()
                    .filter(|(t, _)| t.record_id.is_some()),
            );
        }
        Ok(held)
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
    ) -> Result<Vec<Outbound>, StoreError> {
        let Some(mut gone) = self.records.take(loser)? else {
            return Ok(Vec::new());
        };
        let record = self.records.get_or_create(survivor, &gone.entity)?;
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
        record.rewrite(&sets, &["merge".into(), loser.into()], time_ns);
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
        let change = golden_change(&gone, BTreeMap::new(), &gone.version(), seq, caused_by);
        self.records.put_back(gone);
        Ok(vec![change])
    }

    fn apply_delete(&mut self, seq: u64, e: &ChangeEvent) -> Result<Applied, StoreError> {
        let source = SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        let Some(golden_id) = self.resolver.unlink(&source)? else {
            return Ok(Applied::default());
        };
        let record = self
            .records
            .get_mut(golden_id)?
            .expect("linked golden records exist");
        record.links.remove(&source);
        record.source_values.remove(&source);
        record.quality.remove(&source);
        let mut outbound = Vec::new();
        if record.links.is_empty() {
            record.retired = true;
            let version = record.version();
            for (system, record_id) in targets(&self.rules, record) {
                outbound.push(Outbound::Update(update(
                    record,
                    (system, record_id),
                    UpdateOp::Retire,
                    Default::default(),
                    &version,
                    seq,
                    e.event_id,
                )));
            }
            outbound.push(golden_change(
                record,
                BTreeMap::new(),
                &version,
                seq,
                e.event_id,
            ));
        }
        Ok(Applied {
            golden_id: Some(golden_id),
            conflicts: 0,
            outbound,
        })
    }

    /// SHA-256 over all derived state, in a canonical order. Equal for equal
    /// logs, and for any order of arrival of the same concurrent edits.
    pub fn state_hash(&self) -> Result<String, StoreError> {
        let mut h = Sha256::new();
        h.update(b"mdhub-state-v2");
        self.records.for_each(|record| record.hash_into(&mut h))?;
        self.resolver.hash_into(&mut h);
        Ok(hex::encode(h.finalize()))
    }
}

/// An event's field values in canonical form, as golden writes. Values that
/// no longer normalize (the model changed since they were logged) are
/// skipped, the same way on every replay.
pub fn normalized_writes(
    model: &Model,
    fields: &mdhub_schema::event::Fields,
) -> BTreeMap<String, Value> {
    fields
        .iter()
        .filter_map(|(name, value)| {
            let def = model.field(name)?;
            normalize(def, value)
                .ok()
                .map(|value| (name.clone(), value))
        })
        .collect()
}

/// The matching profile of a source record's image: its values that passed
/// cleansing (a flagged value is shown, never matched on).
pub fn profile_of(
    rules: &MatchRules,
    image: &BTreeMap<String, Value>,
    issues: &[QualityIssue],
) -> Profile {
    Profile::from_fields(rules, |field| {
        if issues.iter().any(|i| i.field == field) {
            None
        } else {
            image.get(field)
        }
    })
}

fn observed_ns(e: &ChangeEvent) -> i64 {
    e.observed_at
        .unix_timestamp_nanos()
        .clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Who receives updates for a golden record: each linked source record
/// (system, record id), and each `receive_all` system that holds no linked
/// copy (system, `None`), in a fixed order.
fn targets<'a>(rules: &'a Rules, record: &'a GoldenRecord) -> Vec<(&'a str, Option<&'a str>)> {
    let mut out: Vec<(&str, Option<&str>)> = record
        .links
        .iter()
        .map(|s| (s.system.as_str(), Some(s.record_id.as_str())))
        .collect();
    for (name, system) in &rules.systems {
        if system.receive_all && !record.links.iter().any(|s| s.system == *name) {
            out.push((name.as_str(), None));
        }
    }
    out.sort_unstable();
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

/// What the targets of a golden record held before an entry.
struct Holdings<'a> {
    /// The golden fields the entry changed, with their new values (null:
    /// cleared). A target that held the old golden values lacks just these.
    changed: &'a BTreeMap<String, Value>,
    /// Targets that held other values (those of a record merged away).
    held: &'a BTreeMap<Target, BTreeMap<String, Value>>,
    /// The source record that sent the entry, if one did.
    writer: Option<Writer<'a>>,
}

/// The source record that sent an entry: it holds what it sent.
#[derive(Clone, Copy)]
struct Writer<'a> {
    system: &'a str,
    record_id: &'a str,
    sent: &'a BTreeMap<String, Value>,
    /// Linked by this entry: it holds nothing but what it sent.
    newly_linked: bool,
}

/// Updates for every target of `record` that lacks some of its golden
/// values after an entry, each with just the fields it lacks and stores.
fn updates_for(
    rules: &Rules,
    record: &GoldenRecord,
    holdings: &Holdings<'_>,
    version: &[String],
    seq: u64,
    caused_by: Uuid,
) -> Vec<Outbound> {
    let nothing = BTreeMap::new();
    let mut out = Vec::new();
    for (system, record_id) in targets(rules, record) {
        let writer = holdings
            .writer
            .filter(|w| w.system == system && Some(w.record_id) == record_id);
        let sent = |f: &str| writer.is_some_and(|w| w.sent.contains_key(f));
        let wanted = |f: &str| rules.receives(system, f) && !sent(f);
        let held = match writer {
            Some(w) if w.newly_linked => Some(&nothing),
            _ if holdings.held.is_empty() => None,
            _ => holdings.held.get(&Target::new(system, record_id)),
        };
        let mut fields = match held {
            Some(held) => diff(held, &record.values, wanted),
            None => holdings
                .changed
                .iter()
                .filter(|(f, _)| wanted(f))
                .map(|(f, v)| (f.clone(), v.clone()))
                .collect(),
        };
        // What the writer sent and the golden record does not hold.
        for (f, v) in writer.map(|w| w.sent).into_iter().flatten() {
            let now = record.values.get(f).unwrap_or(&Value::Null);
            if now != v && rules.receives(system, f) {
                fields.insert(f.clone(), now.clone());
            }
        }
        if !fields.is_empty() {
            out.push(Outbound::Update(update(
                record,
                (system, record_id),
                UpdateOp::Upsert,
                fields,
                version,
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
    version: &[String],
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
        version: version.to_vec(),
        log_seq: seq,
        caused_by,
    })
}

fn update(
    record: &GoldenRecord,
    (system, record_id): (&str, Option<&str>),
    op: UpdateOp,
    fields: BTreeMap<String, Value>,
    version: &[String],
    seq: u64,
    caused_by: Uuid,
) -> GoldenUpdate {
    // A system without a copy is told under the golden id alone.
    let to = match record_id {
        Some(id) => ["record".into(), id.into()],
        None => ["no record".into(), "".into()],
    };
    let update_id = crate::ids::uuid(
        &UPDATE_NS,
        &[
            &["update".into(), record.id.into(), system.into()],
            &to[..],
            &[seq.into()],
        ]
        .concat(),
    );
    GoldenUpdate {
        schema_version: SCHEMA_VERSION,
        update_id,
        golden_id: record.id,
        system: system.to_string(),
        entity: record.entity.clone(),
        record_id: record_id.map(str::to_string),
        op,
        fields,
        version: version.to_vec(),
        log_seq: seq,
        caused_by,
    }
}
