//! Re-resolution after a trained model: the records decided before the
//! model came into force are clustered again with it, and where the new
//! clusters differ from the golden records, the hub writes regroupings to
//! the log (this module's `Regrouping`): "these source records are one
//! customer, and share their golden record with no other record".
//! Deriving one (`State::apply_regroup`) splits the named records out of
//! golden records they share with others and merges the golden records
//! that hold only them, as a steward's split and merge would, and sends
//! every system the result. Old golden ids answer "merged into".
//!
//! Why a plan outside derivation and its result in the log: the plan reads
//! every record's candidates once, which takes seconds on a large hub; the
//! log keeps only its outcome, so replay derives the same merges and
//! splits without planning again, and an auditor sees which model made
//! them. The plan itself is a function of the state, so a hub that stops
//! half-way plans the rest again at its next start.
//!
//! What the plan leaves alone: golden records a steward merged or split
//! (`Resolver::pin`), and pairs a steward said are different customers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{parallel, Resolver};
use crate::golden::SourceKey;
use crate::store::StoreError;

/// At most this many source records per regrouping entry, so that one log
/// entry stays small; a plan for more is written as several entries.
pub const RECORDS_PER_ENTRY: usize = 1_000;

/// Records whose candidates the plan gathers, then scores on every core,
/// at a time: their candidate lists are held meanwhile.
const PLAN_WINDOW: usize = 8_192;

/// One step of re-resolution, as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regrouping {
    /// Unique id (UUIDv7); the log deduplicates on it.
    pub regroup_id: Uuid,
    /// The model the plan was made with, and its log entry.
    pub model_id: Uuid,
    pub model_seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Each group: source records that are one customer and share their
    /// golden record with no other.
    pub groups: Vec<Vec<SourceKey>>,
    /// Records of the plan in later entries: 0 in its last entry (and in
    /// the only entry of a plan that changes nothing).
    pub remaining: u64,
}

/// How far re-resolution for the model in force has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The model's log entry.
    pub model_seq: u64,
    pub model_id: Uuid,
    /// Records still to be regrouped (before the plan: every record held).
    pub records: u64,
}

/// A cluster of the plan: its members' source numbers, ascending.
type Cluster = Vec<u64>;

impl Resolver {
    /// Re-resolution waiting for the model in force, if any.
    pub fn reresolution(&self) -> Option<&Pending> {
        self.reresolution.as_ref()
    }

    /// Keeps the golden records of a steward's merge or split out of
    /// re-resolution: a person decided them.
    pub fn pin(&mut self, golden: Uuid) {
        self.pinned.insert(golden);
    }

    /// The golden records (survivors) a steward merged or split.
    pub fn pinned_survivors(&self) -> BTreeSet<Uuid> {
        self.pinned.iter().map(|g| self.survivor(*g)).collect()
    }

    /// Derives a regrouping entry's progress (its groups are applied by
    /// `State`). An entry for another model than the one in force is stale
    /// and counts for nothing.
    pub fn regrouped(&mut self, r: &Regrouping) {
        if let Some(p) = &mut self.reresolution {
            if p.model_seq == r.model_seq {
                p.records = r.remaining;
                if r.remaining == 0 {
                    self.reresolution = None;
                }
            }
        }
    }

    /// The records whose golden record the model in force would decide
    /// otherwise, as groups (see `Regrouping::groups`), in the order of
    /// their first record.
    ///
    /// The records are clustered again as `decide` clusters them, in the
    /// order they came (source number), each against the records before
    /// it: link to the best cluster at `link`, merge other clusters at
    /// `link` only when they support the record (at least half their
    /// members at `link`). Term frequencies are those of all records held.
    /// `entity` gives a golden record's entity and whether email is its
    /// match key; records of different entities are never compared.
    pub fn regroup_plan(
        &mut self,
        mut entity: impl FnMut(Uuid) -> Result<Option<(String, bool)>, StoreError>,
    ) -> Result<Vec<Vec<SourceKey>>, StoreError> {
        // Every record at once: the plan compares them all.
        let all = self.tables.load()?;
        let n = all.slots.len();
        let profile = |no: u64| all.profiles[no as usize].as_ref().expect("taking part");
        let (link, _) = self.rules.thresholds(n as u64);
        let pinned = self.pinned_survivors();
        // Each record taking part: its current golden record and entity.
        let current: Vec<Option<(Uuid, String, bool)>> = (0..n as u64)
            .map(|no| {
                let slot = &all.slots[no as usize];
                if !slot.linked || all.profiles[no as usize].is_none() {
                    return Ok(None);
                }
                let Some(golden) = slot.golden.map(|g| self.survivor(g)) else {
                    return Ok(None);
                };
                if pinned.contains(&golden) {
                    return Ok(None);
                }
                Ok(entity(golden)?.map(|(name, exact_email)| (golden, name, exact_email)))
            })
            .collect::<Result<_, StoreError>>()?;

        let mut cluster_of: Vec<Option<usize>> = vec![None; n];
        let mut clusters: Vec<Cluster> = Vec::new();
        let taking_part: Vec<u64> = (0..n as u64)
            .filter(|&no| current[no as usize].is_some())
            .collect();
        for window in taking_part.chunks(PLAN_WINDOW) {
            // Each record's candidates among the records before it (the
            // index reads need `&mut`), then their scores on every core:
            // a score does not depend on the clusters, only the linking
            // below does, record after record.
            let candidates: Vec<(u64, Vec<u64>)> = window
                .iter()
                .map(|&no| {
                    let keys = profile(no).block_keys();
                    let found = self.index.candidates(&keys)?.sources;
                    Ok((no, self.comparable(no, found, &current)))
                })
                .collect::<Result<_, StoreError>>()?;
            let scores: Vec<Vec<(u64, f64)>> = parallel::map(&candidates, |(no, others)| {
                let (_, _, exact_email) = current[*no as usize].as_ref().expect("taking part");
                let mine = profile(*no);
                others
                    .iter()
                    .map(|&other| {
                        let s = self
                            .member_score(mine, profile(other), *exact_email, link)
                            .0;
                        (other, s)
                    })
                    .collect()
            });
            for ((no, _), scored) in candidates.iter().zip(scores) {
                let no = *no;
                // Best score per cluster of the records before this one.
                let mut best: BTreeMap<usize, f64> = BTreeMap::new();
                for (other, s) in scored {
                    let c = cluster_of[other as usize].expect("an earlier record has a cluster");
                    let slot = best.entry(c).or_insert(f64::NEG_INFINITY);
                    *slot = slot.max(s);
                }
                let mut linked: Vec<(usize, f64)> =
                    best.into_iter().filter(|(_, s)| *s >= link).collect();
                linked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let Some(&(first, _)) = linked.first() else {
                    cluster_of[no as usize] = Some(clusters.len());
                    clusters.push(vec![no]);
                    continue;
                };
                let (_, _, exact_email) = current[no as usize].as_ref().expect("taking part");
                let mine = profile(no);
                for &(c, _) in &linked[1..] {
                    let members = clusters[c].iter().copied();
                    if self.members_support(mine, members, *exact_email, link)? {
                        let moved = std::mem::take(&mut clusters[c]);
                        for m in &moved {
                            cluster_of[*m as usize] = Some(first);
                        }
                        clusters[first].extend(moved);
                    }
                }
                cluster_of[no as usize] = Some(first);
                clusters[first].push(no);
            }
        }

        // A cluster is settled when its records are exactly the records
        // (taking part) of one golden record.
        let mut held: BTreeMap<Uuid, usize> = BTreeMap::new();
        for (golden, _, _) in current.iter().flatten() {
            *held.entry(*golden).or_default() += 1;
        }
        let keys = self.tables.source_keys()?;
        let mut groups: Vec<(u64, Vec<SourceKey>)> = Vec::new();
        for mut members in clusters.into_iter().filter(|c| !c.is_empty()) {
            members.sort_unstable();
            let goldens: BTreeSet<Uuid> = members
                .iter()
                .filter_map(|m| current[*m as usize].as_ref().map(|c| c.0))
                .collect();
            let settled =
                goldens.len() == 1 && goldens.iter().all(|g| held.get(g) == Some(&members.len()));
            if !settled {
                let group = members
                    .iter()
                    .filter_map(|m| keys[*m as usize].clone())
                    .collect();
                groups.push((members[0], group));
            }
        }
        groups.sort_by_key(|(first, _)| *first);
        Ok(groups.into_iter().map(|(_, g)| g).collect())
    }

    /// Of record `no`'s candidates `found`, those it is compared with in
    /// the plan: records before it that take part, of its entity, whose
    /// golden record a steward did not keep apart from its own.
    fn comparable(
        &self,
        no: u64,
        found: Vec<u64>,
        current: &[Option<(Uuid, String, bool)>],
    ) -> Vec<u64> {
        let (golden, name, _) = current[no as usize].as_ref().expect("taking part");
        found
            .into_iter()
            .filter(|&other| other < no)
            .filter(|&other| match &current[other as usize] {
                Some((theirs, their_name, _)) => {
                    their_name == name && !self.is_distinct(*golden, *theirs)
                }
                None => false,
            })
            .collect()
    }
}

/// The plan as log entries of at most `RECORDS_PER_ENTRY` records each (a
/// group is never cut), each saying how many records follow it. A plan
/// that changes nothing is one entry without groups, so that the log says
/// the model's re-resolution is done.
pub fn entries(
    pending: &Pending,
    groups: Vec<Vec<SourceKey>>,
    at: OffsetDateTime,
) -> Vec<Regrouping> {
    let mut remaining: u64 = groups.iter().map(|g| g.len() as u64).sum();
    let entry = |groups: Vec<Vec<SourceKey>>, remaining: u64| Regrouping {
        regroup_id: Uuid::now_v7(),
        model_id: pending.model_id,
        model_seq: pending.model_seq,
        at,
        groups,
        remaining,
    };
    let mut out: Vec<Regrouping> = Vec::new();
    let mut current: Vec<Vec<SourceKey>> = Vec::new();
    let mut size = 0;
    for group in groups {
        if size > 0 && size + group.len() > RECORDS_PER_ENTRY {
            // `remaining` counts the records after `current`.
            out.push(entry(std::mem::take(&mut current), remaining));
            size = 0;
        }
        size += group.len();
        remaining -= group.len() as u64;
        current.push(group);
    }
    if size > 0 || out.is_empty() {
        out.push(entry(current, remaining));
    }
    out
}
