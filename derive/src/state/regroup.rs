//! Deriving a regrouping (`resolve::regroup`): for each group, the records
//! that share a golden record with records outside the group are split out
//! of it, then the golden records holding only records of the group are
//! merged into one, the one created first surviving. Both go the way a
//! steward's split and merge go (outbound updates, "merged into"), without
//! keeping anything apart for good: a later model may regroup again.
//!
//! The plan was made against the state when the model came into force;
//! records deleted since, golden records a steward touched since, and
//! pairs a steward keeps apart are left as they are.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{Applied, State};
use crate::golden::SourceKey;
use crate::resolve::regroup::Regrouping;
use crate::store::StoreError;

impl State {
    /// The groups re-resolution would regroup now (`Resolver::regroup_plan`).
    pub fn regroup_plan(&mut self) -> Result<Vec<Vec<SourceKey>>, StoreError> {
        let (records, rules) = (&self.records, &self.rules);
        self.resolver.regroup_plan(|g| {
            let Some(entity) = records.entity_of(g)? else {
                return Ok(None);
            };
            let Some(model) = rules.models.get(&entity) else {
                return Ok(None);
            };
            let exact_email = model.match_keys().any(|f| f.name == "email");
            Ok(Some((entity, exact_email)))
        })
    }

    pub(super) fn apply_regroup(
        &mut self,
        seq: u64,
        r: &Regrouping,
    ) -> Result<Applied, StoreError> {
        let time_ns =
            r.at.unix_timestamp_nanos()
                .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        let mut applied = Applied::default();
        let stale = self
            .resolver
            .reresolution()
            .is_none_or(|p| p.model_seq != r.model_seq);
        if !stale {
            for group in &r.groups {
                self.regroup(group, seq, r.regroup_id, time_ns, &mut applied)?;
            }
        }
        self.resolver.regrouped(r);
        Ok(applied)
    }

    fn regroup(
        &mut self,
        group: &[SourceKey],
        seq: u64,
        caused_by: Uuid,
        time_ns: i64,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let pinned = self.resolver.pinned_survivors();
        let mut members: Vec<(&SourceKey, Uuid)> = Vec::new();
        for k in group {
            if let Some(g) = self.resolver.golden_of(k)? {
                if !pinned.contains(&g) {
                    members.push((k, g));
                }
            }
        }
        let named: BTreeSet<&SourceKey> = members.iter().map(|(k, _)| *k).collect();
        let mut parts: Vec<Uuid> = Vec::new();
        let mut mixed: Vec<SourceKey> = Vec::new();
        for (k, g) in &members {
            let holds_only_group = self
                .records
                .get(*g)?
                .is_some_and(|r| r.links.iter().all(|l| named.contains(l)));
            if holds_only_group {
                if !parts.contains(g) {
                    parts.push(*g);
                }
            } else {
                mixed.push((*k).clone());
            }
        }
        for source in mixed {
            let split = self.steward_split(source, seq, caused_by, time_ns, false)?;
            applied.outbound.extend(split.outbound);
            parts.extend(split.golden_id);
        }
        let Some(&first) = parts.first() else {
            return Ok(());
        };
        for &other in &parts[1..] {
            let (a, b) = (self.resolver.survivor(first), self.resolver.survivor(other));
            if self.resolver.is_distinct(a, b) {
                continue;
            }
            let merged = self.steward_merge(a, b, seq, caused_by, time_ns)?;
            applied.outbound.extend(merged.outbound);
        }
        applied.golden_id = Some(self.resolver.survivor(first));
        Ok(())
    }
}
