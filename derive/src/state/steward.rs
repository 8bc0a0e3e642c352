//! Deriving steward actions: merge, split, review decisions, overrides.
//! Each one changes golden records and sends every affected system the
//! golden values it does not hold yet. An action that no longer applies (a
//! task already decided, a record already split) changes nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use super::{golden_change, targets, updates_for, Applied, Holdings, Outbound, State, Target};
use crate::golden::{survivorship, Candidate, GoldenRecord, SourceKey};
use crate::resolve::TaskStatus;
use crate::steward::{Command, StewardAction};
use crate::store::StoreError;

/// Namespace of golden ids made by splits.
const SPLIT_NS: Uuid = Uuid::from_u128(0x6d64_6875_622d_7370_6c69_742d_6964_7321);

impl State {
    pub(super) fn apply_steward(
        &mut self,
        seq: u64,
        a: &StewardAction,
    ) -> Result<Applied, StoreError> {
        let time_ns =
            a.at.unix_timestamp_nanos()
                .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        // What a steward decided, re-resolution leaves as decided.
        match &a.command {
            Command::Merge { golden_ids } => {
                for g in golden_ids {
                    self.resolver.pin(*g);
                }
            }
            Command::Decide {
                task_id,
                same: true,
            } => {
                if let Some(task) = self.resolver.task(*task_id) {
                    let (g, c) = (task.golden_id, task.candidate);
                    self.resolver.pin(g);
                    self.resolver.pin(c);
                }
            }
            Command::Split { system, record_id } => {
                let source = SourceKey {
                    system: system.clone(),
                    record_id: record_id.clone(),
                };
                if let Some(g) = self.resolver.golden_of(&source)? {
                    self.resolver.pin(g);
                }
            }
            _ => {}
        }
        match &a.command {
            Command::Merge { golden_ids } => {
                self.steward_merge(golden_ids[0], golden_ids[1], seq, a.action_id, time_ns)
            }
            Command::Decide { task_id, same } => {
                let Some(task) = self.resolver.task(*task_id).cloned() else {
                    return Ok(Applied::default());
                };
                if task.status != TaskStatus::Open {
                    return Ok(Applied::default());
                }
                if *same {
                    let applied = self.steward_merge(
                        task.golden_id,
                        task.candidate,
                        seq,
                        a.action_id,
                        time_ns,
                    )?;
                    self.resolver.set_task_status(*task_id, TaskStatus::Same);
                    Ok(applied)
                } else {
                    self.resolver.mark_distinct(
                        self.resolver.survivor(task.golden_id),
                        self.resolver.survivor(task.candidate),
                    );
                    self.resolver
                        .set_task_status(*task_id, TaskStatus::Different);
                    Ok(Applied::default())
                }
            }
            Command::Split { system, record_id } => {
                let applied = self.steward_split(
                    SourceKey {
                        system: system.clone(),
                        record_id: record_id.clone(),
                    },
                    seq,
                    a.action_id,
                    time_ns,
                    true,
                )?;
                if let Some(g) = applied.golden_id {
                    self.resolver.pin(g);
                }
                Ok(applied)
            }
            Command::Override {
                golden_id,
                field,
                value,
            } => self.steward_override(*golden_id, field, value, seq, a.action_id),
        }
    }

    /// Merges golden records `a` and `b` (by their survivors); the one
    /// created first survives.
    pub(super) fn steward_merge(
        &mut self,
        a: Uuid,
        b: Uuid,
        seq: u64,
        caused_by: Uuid,
        time_ns: i64,
    ) -> Result<Applied, StoreError> {
        let (a, b) = (self.resolver.survivor(a), self.resolver.survivor(b));
        if a == b || !self.records.contains(a)? || !self.records.contains(b)? {
            return Ok(Applied::default());
        }
        let (survivor, loser) = if self.resolver.created_before(a, b)? {
            (a, b)
        } else {
            (b, a)
        };
        let held = self.held_by_merged(&[loser])?;
        let before = self.existing(survivor)?.values.clone();
        self.resolver.record_merge(loser, survivor);
        let mut outbound = self.merge_records(loser, survivor, seq, caused_by, time_ns)?;
        self.resolve_all(survivor)?;
        outbound.extend(self.announce(survivor, &before, &held, seq, caused_by)?);
        Ok(Applied {
            golden_id: Some(survivor),
            conflicts: 0,
            outbound,
        })
    }

    /// Golden record `id`, which the resolver says exists.
    fn existing(&mut self, id: Uuid) -> Result<&mut GoldenRecord, StoreError> {
        self.records.get_mut(id)?.ok_or_else(|| {
            StoreError::new("reading a linked golden record", format!("{id} is missing"))
        })
    }

    /// Gives `source` a golden record of its own, out of the one it shares
    /// with other records. `keep_apart`: matching never brings the two
    /// together again (a steward's split; re-resolution's are not).
    pub(super) fn steward_split(
        &mut self,
        source: SourceKey,
        seq: u64,
        caused_by: Uuid,
        time_ns: i64,
        keep_apart: bool,
    ) -> Result<Applied, StoreError> {
        let Some(old_id) = self.resolver.golden_of(&source)? else {
            return Ok(Applied::default());
        };
        let old = self.existing(old_id)?;
        if old.links.len() < 2 {
            return Ok(Applied::default());
        }
        let entity = old.entity.clone();
        let before_old = old.values.clone();
        let values = old.source_values.get(&source).cloned().unwrap_or_default();
        let quality = old.quality.get(&source).cloned();

        // The split record: a golden record of its own from its last image.
        let new_id = crate::ids::uuid(
            &SPLIT_NS,
            &[
                "split".into(),
                (&entity).into(),
                (&source.system).into(),
                (&source.record_id).into(),
                seq.into(),
            ],
        );
        self.resolver.create_golden(new_id, seq)?;
        self.resolver.relink(&source, new_id)?;
        if keep_apart {
            self.resolver.mark_distinct(old_id, new_id);
        }
        let rules = std::sync::Arc::clone(&self.rules);
        let model = rules.models.get(&entity);
        let mut record = GoldenRecord::new(new_id, &entity);
        record.links.insert(source.clone());
        record.source_values.insert(source.clone(), values.clone());
        if let Some(q) = quality {
            record.quality.insert(source.clone(), q);
        }
        let pick = |field: &str, c: &[Candidate]| match model {
            Some(m) => survivorship::pick(rules.policy(m, field), &rules.source_priority, c),
            None => 0,
        };
        for field in record.write(&source, None, &values, caused_by, time_ns, pick) {
            record.resolve(&field, |c| pick(&field, c));
        }
        self.records.insert_new(record);

        // The old record: without the split record's link and, where no other
        // record of that system stays linked, without that system's values.
        let old = self.existing(old_id)?;
        old.links.remove(&source);
        old.source_values.remove(&source);
        old.quality.remove(&source);
        let system_stays = old.links.iter().any(|l| l.system == source.system);
        if !system_stays {
            let sets: BTreeMap<String, Vec<Candidate>> = old
                .candidates
                .iter()
                .filter(|(_, c)| c.iter().any(|c| c.system == source.system))
                .map(|(f, c)| {
                    let rest = c
                        .iter()
                        .filter(|c| c.system != source.system)
                        .cloned()
                        .collect();
                    (f.clone(), rest)
                })
                .collect();
            old.rewrite(
                &sets,
                &[
                    "split".into(),
                    (&source.system).into(),
                    (&source.record_id).into(),
                    seq.into(),
                ],
                time_ns,
            );
        }
        self.resolve_all(old_id)?;

        // The split record's system holds the values it sent, now under the
        // new golden id, and nothing under that id yet: tell it the id (and
        // any value it lacks).
        let rules = std::sync::Arc::clone(&self.rules);
        let held_new = targets(&rules, self.existing(new_id)?)
            .into_iter()
            .map(|(system, record_id)| (Target::new(system, record_id), BTreeMap::new()))
            .collect();
        let mut outbound = self.announce(new_id, &BTreeMap::new(), &held_new, seq, caused_by)?;
        outbound.extend(self.announce(old_id, &before_old, &BTreeMap::new(), seq, caused_by)?);
        Ok(Applied {
            golden_id: Some(new_id),
            conflicts: 0,
            outbound,
        })
    }

    fn steward_override(
        &mut self,
        golden_id: Uuid,
        field: &str,
        value: &Value,
        seq: u64,
        caused_by: Uuid,
    ) -> Result<Applied, StoreError> {
        let id = self.resolver.survivor(golden_id);
        let rules = std::sync::Arc::clone(&self.rules);
        let Some(record) = self.records.get_mut(id)? else {
            return Ok(Applied::default());
        };
        let Some(def) = rules
            .models
            .get(&record.entity)
            .and_then(|m| m.field(field))
        else {
            return Ok(Applied::default());
        };
        // The API checked the value; a log from an older model may hold one
        // that no longer cleanses: it is kept as sent.
        let value = if value.is_null() {
            Value::Null
        } else {
            mdhub_schema::cleanse_value(def, value, &Default::default(), None)
                .unwrap_or_else(|_| value.clone())
        };
        let before = record.values.clone();
        if value.is_null() {
            record.overrides.remove(field);
        } else {
            record.overrides.insert(field.to_string(), value);
        }
        self.resolve_all(id)?;
        Ok(Applied {
            golden_id: Some(id),
            conflicts: 0,
            outbound: self.announce(id, &before, &BTreeMap::new(), seq, caused_by)?,
        })
    }

    /// What a steward action that changed golden record `id` sends: each
    /// target the golden values it lacks, and the change feed message.
    /// Targets held `before` (its values before the action) unless `held`
    /// says otherwise.
    fn announce(
        &mut self,
        id: Uuid,
        before: &BTreeMap<String, Value>,
        held: &BTreeMap<Target, BTreeMap<String, Value>>,
        seq: u64,
        caused_by: Uuid,
    ) -> Result<Vec<Outbound>, StoreError> {
        let rules = std::sync::Arc::clone(&self.rules);
        let record = &*self.existing(id)?;
        let changed = super::diff(before, &record.values, |_| true);
        let version = record.version();
        let holdings = Holdings {
            changed: &changed,
            held,
            writer: None,
        };
        let mut outbound = updates_for(&rules, record, &holdings, &version, seq, caused_by);
        outbound.push(golden_change(record, changed, &version, seq, caused_by));
        Ok(outbound)
    }

    /// Re-picks every field of a golden record (after a merge, split or
    /// override changed its candidates).
    pub(super) fn resolve_all(&mut self, id: Uuid) -> Result<(), StoreError> {
        let rules = std::sync::Arc::clone(&self.rules);
        let Some(record) = self.records.get_mut(id)? else {
            return Ok(());
        };
        let Some(model) = rules.models.get(&record.entity) else {
            return Ok(());
        };
        let fields: Vec<String> = record
            .candidates
            .keys()
            .chain(record.overrides.keys())
            .chain(record.values.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for field in fields {
            record.resolve(&field, |c| {
                survivorship::pick(rules.policy(model, &field), &rules.source_priority, c)
            });
        }
        Ok(())
    }
}
