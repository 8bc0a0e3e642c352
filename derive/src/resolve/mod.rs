//! Entity resolution: which golden record a source record belongs to.
//!
//! Each new or changed source record is matched as it arrives: its blocking
//! keys find candidate source records in the match index (redb, bounded
//! blocks), each candidate is scored (Fellegi-Sunter over the comparisons
//! the rules declare, `score`), and the best match probability per golden
//! record decides:
//! - at or above `link_probability`: link; every other golden record at
//!   that level whose cluster supports the record (at least half of its
//!   members at that level, so that one weak link does not chain two
//!   clusters) is merged into one survivor (the one created first), and a
//!   review task is opened for each one that does not;
//! - between `review_probability` and `link_probability`: a golden record
//!   of its own and a review task naming the best candidate, for a data
//!   steward;
//! - below: a golden record of its own.
//!
//! Term frequencies (`score::Terms`) are counted as records come and
//! change, in log order: a record is scored against the counts of the
//! records before it.
//!
//! Fields the model marks `match_key` (email) link on equality whatever the
//! score: the exact rule of the core pipeline still holds.
//!
//! A steward's "different" decision keeps a pair of golden records apart
//! for good. Everything here is derived from the log in order, and nothing
//! iterates a hash map: replay gives the same links, merges and tasks.

pub mod compare;
pub mod estimate;
pub mod index;
pub mod parallel;
pub mod profile;
pub mod regroup;
pub mod report;
pub mod rules;
pub mod score;
mod snapshot;
pub mod tables;
pub mod trained;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::golden::SourceKey;
use crate::store::{Storage, StoreError};
use index::MatchIndex;
use profile::Profile;
use rules::MatchRules;
use score::{Part, Scored, Terms};
use tables::Slot;

/// Namespace of golden ids and review task ids (UUIDv5), so that ids are a
/// function of the log.
const GOLDEN_NS: Uuid = Uuid::from_u128(0x6d64_6875_622d_676f_6c64_656e_2d69_6473);

/// An open or decided question for a data steward: is this source record
/// the same customer as that golden record?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewTask {
    pub task_id: Uuid,
    pub source: SourceKey,
    /// The golden record the source record got: its own, or the one it
    /// linked to when the merge with `candidate` was not made.
    pub golden_id: Uuid,
    /// The golden record it may belong to.
    pub candidate: Uuid,
    pub score: f64,
    pub parts: Vec<Part>,
    pub opened_seq: u64,
    pub status: TaskStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    /// Decided: the same customer (merged).
    Same,
    /// Decided: different customers (kept apart for good).
    Different,
    /// No longer a question: the two ended up in one golden record anyway.
    Resolved,
}

/// What matching decided for one incoming source record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Belongs to `golden`; the golden records in `merge` are the same
    /// customer and are merged into `golden` (already the survivor).
    Link { golden: Uuid, merge: Vec<Uuid> },
    /// A golden record of its own, with this id (and maybe a review task).
    New { golden: Uuid, review: Option<Uuid> },
}

pub struct Resolver {
    /// The rules matching runs with: the configured ones, with the trained
    /// model in force if there is one.
    rules: MatchRules,
    /// The rules as configured, before any model: training starts from
    /// them every time, so a model is a function of the records held and
    /// the config, never of the model before it (a poor early model, from
    /// a few hundred records, would otherwise seed every later one).
    configured: MatchRules,
    index: MatchIndex,
    /// The state per source record (number, link, profile) and per golden
    /// record (members, the log entry that created it: survivor choice),
    /// in tables read on demand.
    tables: tables::SourceTables,
    terms: Terms,
    /// Retired golden record → the one it was merged into.
    merged_into: BTreeMap<Uuid, Uuid>,
    /// Pairs (smaller id first) a steward decided are different customers.
    distinct: BTreeSet<(Uuid, Uuid)>,
    tasks: BTreeMap<Uuid, ReviewTask>,
    /// The trained model in force, if any: its log entry and id.
    model: Option<ModelInForce>,
    /// Source records the last training saw, whether its model fitted the
    /// rules or not (the next automatic training waits for twice as many).
    last_trained: u64,
    /// Merges `decide` did not make because the record that would have made
    /// them was not supported by the other cluster (`cluster_supports`).
    /// Derived from the log like everything here, and left out of the state
    /// hash: the review tasks it opened are in it.
    merges_prevented: u64,
    /// Blocks over `max_block` that candidate lookups met (none of their
    /// members were read). Left out of the state hash too.
    blocks_capped: u64,
    /// Source records that candidate lookups gave to be scored (the
    /// matcher's work per event). Left out of the state hash too.
    candidates_compared: u64,
    /// Golden records a steward merged or split: re-resolution leaves them
    /// as the steward made them.
    pinned: BTreeSet<Uuid>,
    /// Re-resolution the model in force still waits for (`regroup`).
    reresolution: Option<regroup::Pending>,
}

/// Which trained model the matcher runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInForce {
    pub seq: u64,
    pub model_id: Uuid,
    /// Source records it was trained on.
    pub records: u64,
}

impl Resolver {
    /// A matcher with no records yet, keeping its tables (`tables::TABLES`,
    /// empty) in `storage`.
    pub fn new(rules: MatchRules, storage: &dyn Storage) -> Result<Self, StoreError> {
        Ok(Resolver {
            index: MatchIndex::new(rules.max_block, storage.table(tables::TABLES[0])?),
            tables: tables::SourceTables::open(storage, 0)?,
            terms: Terms::new(&rules),
            configured: rules.clone(),
            rules,
            merged_into: BTreeMap::new(),
            distinct: BTreeSet::new(),
            tasks: BTreeMap::new(),
            model: None,
            last_trained: 0,
            merges_prevented: 0,
            blocks_capped: 0,
            candidates_compared: 0,
            pinned: BTreeSet::new(),
            reresolution: None,
        })
    }

    pub fn rules(&self) -> &MatchRules {
        &self.rules
    }

    /// The term frequencies of the records held now.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    pub fn golden_of(&self, source: &SourceKey) -> Result<Option<Uuid>, StoreError> {
        let Some(no) = self.tables.number(source)? else {
            return Ok(None);
        };
        let slot = self.tables.slot(no)?;
        Ok(slot
            .golden
            .filter(|_| slot.linked)
            .map(|g| self.survivor(g)))
    }

    /// The golden record of a source record by number, linked now or not.
    /// Links are stored as made and read through `survivor`, so a merge
    /// touches no link.
    fn golden_of_number(&self, no: u64) -> Result<Option<Uuid>, StoreError> {
        Ok(self.tables.slot(no)?.golden.map(|g| self.survivor(g)))
    }

    /// The golden record an id answers for now: itself, or the survivor it
    /// was merged into (following merges of merges).
    pub fn survivor(&self, mut id: Uuid) -> Uuid {
        while let Some(&next) = self.merged_into.get(&id) {
            id = next;
        }
        id
    }

    pub fn merged_into(&self, id: Uuid) -> Option<Uuid> {
        self.merged_into.get(&id).copied()
    }

    pub fn tasks(&self) -> impl Iterator<Item = &ReviewTask> {
        self.tasks.values()
    }

    pub fn task(&self, id: Uuid) -> Option<&ReviewTask> {
        self.tasks.get(&id)
    }

    /// How many merges matching did not make since the start of the log:
    /// golden records a record linked to at `link_probability` through one
    /// member but not through enough of the cluster (see `decide`).
    pub fn merges_prevented(&self) -> u64 {
        self.merges_prevented
    }

    /// How many candidate lookups met a block over `max_block` since the
    /// start of the log, one per block.
    pub fn blocks_capped(&self) -> u64 {
        self.blocks_capped
    }

    /// How many source records candidate lookups gave to be compared since
    /// the start of the log.
    pub fn candidates_compared(&self) -> u64 {
        self.candidates_compared
    }

    /// Did a steward decide that `a` and `b` are different customers?
    pub fn is_distinct(&self, a: Uuid, b: Uuid) -> bool {
        self.distinct.contains(&(a.min(b), a.max(b)))
    }

    /// Matches a new or changed source record and records its profile.
    /// `seq` is the log entry; `exact_email` says whether email is a match
    /// key of the model.
    pub fn decide(
        &mut self,
        entity: &str,
        source: &SourceKey,
        profile: &Profile,
        exact_email: bool,
        seq: u64,
    ) -> Result<Decision, StoreError> {
        let no = self.tables.number_or_new(source)?;
        let current = self.golden_of(source)?;
        let old_profile = self.tables.profile(no)?;
        let unchanged = current.is_some() && old_profile.as_deref() == Some(profile);
        let mut best: BTreeMap<Uuid, (f64, Vec<Scored>)> = BTreeMap::new();
        let (link, review) = self.rules.thresholds(self.tables.count());
        let mut new_keys = None;
        if !unchanged {
            let keys = profile.block_keys();
            let candidates = self.index.candidates(&keys)?;
            self.blocks_capped += candidates.capped_blocks as u64;
            self.candidates_compared += candidates.sources.len() as u64;
            for other in candidates.sources {
                if other == no {
                    continue;
                }
                let Some(golden) = self.golden_of_number(other)? else {
                    continue;
                };
                let Some(theirs) = self.tables.profile(other)? else {
                    continue;
                };
                let s = self.member_score(profile, &theirs, exact_email, link);
                let slot = best
                    .entry(golden)
                    .or_insert((f64::NEG_INFINITY, Vec::new()));
                if s.0 > slot.0 {
                    *slot = s;
                }
            }
            new_keys = Some(keys);
        }

        // Golden records this record belongs with, best first (ties: id).
        let mut linked: Vec<(Uuid, f64)> = best
            .iter()
            .filter(|(g, (s, _))| *s >= link && current.is_none_or(|c| !self.is_distinct(c, **g)))
            .map(|(g, (s, _))| (*g, *s))
            .collect();
        linked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(c) = current {
            if !linked.iter().any(|(g, _)| *g == c) {
                linked.insert(0, (c, f64::INFINITY));
            }
        }
        // Keep apart what a steward said is different from the best match.
        let first = linked.first().map(|(g, _)| *g);
        let mut group: Vec<Uuid> = linked
            .iter()
            .map(|(g, _)| *g)
            .filter(|g| first.is_none_or(|f| *g == f || !self.is_distinct(f, *g)))
            .collect();
        // No chaining: each golden record beyond the best one is merged only
        // when the cluster as a whole supports the record, not one member.
        // Scored before the record's own terms count, as the candidates were.
        let mut unsupported: Vec<Uuid> = Vec::new();
        if group.len() > 1 {
            let extra: Vec<Uuid> = group[1..].to_vec();
            for g in extra {
                if !self.cluster_supports(g, no, profile, exact_email, link)? {
                    unsupported.push(g);
                }
            }
            group.retain(|g| !unsupported.contains(g));
        }

        if let Some(keys) = new_keys {
            if let Some(old) = &old_profile {
                self.terms.count(&self.rules, old, false);
            }
            self.terms.count(&self.rules, profile, true);
            self.index.put(no, old_profile.as_deref(), profile, &keys)?;
            self.tables.set_profile(no, profile)?;
        }

        let mut by_age = Vec::with_capacity(group.len());
        for g in group.iter().copied() {
            by_age.push((self.tables.created(g)?, g));
        }
        if let Some(&(_, survivor)) = by_age.iter().min() {
            let merge: Vec<Uuid> = group.into_iter().filter(|g| *g != survivor).collect();
            for &loser in &merge {
                self.record_merge(loser, survivor);
            }
            self.tables.set_slot(
                no,
                Slot {
                    golden: Some(survivor),
                    linked: true,
                },
            )?;
            if !unsupported.is_empty() {
                self.merges_prevented += unsupported.len() as u64;
                for candidate in &unsupported {
                    if let Some((s, parts)) = best.get(candidate) {
                        self.open_review(source, survivor, *candidate, *s, parts, seq);
                    }
                }
            }
            return Ok(Decision::Link {
                golden: survivor,
                merge,
            });
        }

        let golden = self.new_golden_id(entity, source, profile, exact_email, seq)?;
        self.tables.set_slot(
            no,
            Slot {
                golden: Some(golden),
                linked: true,
            },
        )?;
        let review = best
            .iter()
            .filter(|(_, (s, _))| *s >= review)
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(b.0.cmp(a.0)))
            .map(|(candidate, (s, parts))| {
                self.open_review(source, golden, *candidate, *s, parts, seq)
            });
        Ok(Decision::New { golden, review })
    }

    /// The score of a record against one source record (its profile
    /// `theirs`) and its parts; a shared email, where it is a match key,
    /// is a link whatever the score.
    fn member_score(
        &self,
        profile: &Profile,
        theirs: &Profile,
        exact_email: bool,
        link: f64,
    ) -> (f64, Vec<Scored>) {
        let (mut s, parts) = score::score(profile, theirs, &self.rules, Some(&self.terms));
        if exact_email && profile.email.is_some() && profile.email == theirs.email {
            s = s.max(link);
        }
        (s, parts)
    }

    /// Does the cluster of golden record `golden` support linking the
    /// record numbered `no` (profile `profile`) to it? The rule: at least
    /// half of the cluster's members (its source records other than this
    /// one, including those merged in from other golden records) score at
    /// or above `link`.
    ///
    /// Why this rule: one member at link is what made `golden` a candidate
    /// at all, so it cannot be the evidence for merging a whole cluster. A
    /// record that is the same customer as a cluster agrees with most of its
    /// members, since they agree with each other; a household member or a
    /// damaged record agrees with the one member it resembles. A count of
    /// members at link (rather than the mean of their match probabilities)
    /// keeps one damaged member of a true cluster, scoring near zero, from
    /// vetoing the merge, and it needs no new threshold. Clusters of one or
    /// two members are always supported (their best member is at link), so
    /// the rule only acts where chaining joins large clusters; members out
    /// of the record's blocks count as not at link. Members are visited by
    /// number and merged ids kept in a list: no hash-map order anywhere.
    fn cluster_supports(
        &self,
        golden: Uuid,
        no: u64,
        profile: &Profile,
        exact_email: bool,
        link: f64,
    ) -> Result<bool, StoreError> {
        // The ids whose links answer for `golden` now: itself and every
        // golden record merged into it (merges of merges too).
        let mut ids: Vec<Uuid> = vec![golden];
        ids.extend(
            self.merged_into
                .keys()
                .filter(|id| self.survivor(**id) == golden)
                .copied(),
        );
        let mut members = Vec::new();
        for id in ids {
            members.extend(self.tables.members(id)?.into_iter().filter(|m| *m != no));
        }
        members.sort_unstable();
        self.members_support(profile, members, exact_email, link)
    }

    /// The rule of `cluster_supports` over the source records `members`
    /// (by number; those without a profile do not count): at least half
    /// of them score at or above `link` against `profile`.
    fn members_support(
        &self,
        profile: &Profile,
        members: impl IntoIterator<Item = u64>,
        exact_email: bool,
        link: f64,
    ) -> Result<bool, StoreError> {
        let (mut counted, mut at_link) = (0u64, 0u64);
        for m in members {
            let Some(theirs) = self.tables.profile(m)? else {
                continue;
            };
            counted += 1;
            if self.member_score(profile, &theirs, exact_email, link).0 >= link {
                at_link += 1;
            }
        }
        Ok(2 * at_link >= counted)
    }

    /// Opens a review task: is `source` (linked to `golden`) the same
    /// customer as `candidate`? The id is a function of the record and the
    /// candidate, so a replay opens the same task.
    fn open_review(
        &mut self,
        source: &SourceKey,
        golden: Uuid,
        candidate: Uuid,
        score: f64,
        parts: &[Scored],
        seq: u64,
    ) -> Uuid {
        let task_id = crate::ids::uuid(
            &GOLDEN_NS,
            &[
                "review".into(),
                (&source.system).into(),
                (&source.record_id).into(),
                candidate.into(),
            ],
        );
        self.tasks.insert(
            task_id,
            ReviewTask {
                task_id,
                source: source.clone(),
                golden_id: golden,
                candidate,
                score,
                parts: parts.iter().map(|p| p.part(&self.rules)).collect(),
                opened_seq: seq,
                status: TaskStatus::Open,
            },
        );
        task_id
    }

    /// Id for a new golden record: from its email when it has one (so that
    /// the same customer gets the same id in every replay, whichever system
    /// came first), else from the source identity; the first that is free.
    /// A source record deleted and created again, or whose email's id went
    /// to another record, takes one from its identity, the log sequence and
    /// a counter: free after a few tries, and the same in every replay.
    fn new_golden_id(
        &mut self,
        entity: &str,
        source: &SourceKey,
        profile: &Profile,
        exact_email: bool,
        seq: u64,
    ) -> Result<Uuid, StoreError> {
        let system = source.system.as_str();
        let record = source.record_id.as_str();
        let mut names: Vec<Vec<crate::ids::Part<'_>>> = Vec::new();
        if let (true, Some(e)) = (exact_email, &profile.email) {
            names.push(vec!["by email".into(), entity.into(), e.into()]);
        }
        names.push(vec![
            "by source".into(),
            entity.into(),
            system.into(),
            record.into(),
        ]);
        let mut free = None;
        for name in &names {
            let id = crate::ids::uuid(&GOLDEN_NS, name);
            if self.tables.created(id)?.is_none() {
                free = Some(id);
                break;
            }
        }
        let mut n = 0u64;
        while free.is_none() {
            let id = crate::ids::uuid(
                &GOLDEN_NS,
                &[
                    "by source at".into(),
                    entity.into(),
                    system.into(),
                    record.into(),
                    seq.into(),
                    n.into(),
                ],
            );
            if self.tables.created(id)?.is_none() {
                free = Some(id);
            }
            n += 1;
        }
        let id = free.unwrap_or_default();
        self.tables.set_created(id, seq)?;
        Ok(id)
    }

    /// Was `a` created before `b` (the survivor of a merge)?
    pub fn created_before(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
        Ok((self.tables.created(a)?, a) < (self.tables.created(b)?, b))
    }

    /// A new golden record made by a steward (a split), with a given id.
    pub fn create_golden(&mut self, id: Uuid, seq: u64) -> Result<(), StoreError> {
        if self.tables.created(id)?.is_none() {
            self.tables.set_created(id, seq)?;
        }
        Ok(())
    }

    /// Moves `source` to `golden` (a split).
    pub fn relink(&mut self, source: &SourceKey, golden: Uuid) -> Result<(), StoreError> {
        let no = self.tables.number_or_new(source)?;
        self.tables.set_slot(
            no,
            Slot {
                golden: Some(golden),
                linked: true,
            },
        )
    }

    /// Forgets the link of a deleted source record; its profile stays out
    /// of matching from now on.
    pub fn unlink(&mut self, source: &SourceKey) -> Result<Option<Uuid>, StoreError> {
        let Some(golden) = self.golden_of(source)? else {
            return Ok(None);
        };
        let Some(no) = self.tables.number(source)? else {
            return Ok(None);
        };
        let golden_then = self.tables.slot(no)?.golden;
        self.tables.set_slot(
            no,
            Slot {
                golden: golden_then,
                linked: false,
            },
        )?;
        Ok(Some(golden))
    }

    /// Records that `loser` was merged into `survivor`: its source records
    /// move, its tasks follow, steward decisions keep applying.
    pub fn record_merge(&mut self, loser: Uuid, survivor: Uuid) {
        self.merged_into.insert(loser, survivor);
        let moved: Vec<(Uuid, Uuid)> = self
            .distinct
            .iter()
            .filter(|(a, b)| *a == loser || *b == loser)
            .copied()
            .collect();
        for (a, b) in moved {
            self.distinct.remove(&(a, b));
            let other = if a == loser { b } else { a };
            self.distinct
                .insert((other.min(survivor), other.max(survivor)));
        }
        for task in self.tasks.values_mut() {
            if task.golden_id == loser {
                task.golden_id = survivor;
            }
            if task.candidate == loser {
                task.candidate = survivor;
            }
            if task.status == TaskStatus::Open && task.golden_id == task.candidate {
                task.status = TaskStatus::Resolved;
            }
        }
    }

    /// A steward decided that `a` and `b` are different customers.
    pub fn mark_distinct(&mut self, a: Uuid, b: Uuid) {
        self.distinct.insert((a.min(b), a.max(b)));
    }

    pub fn set_task_status(&mut self, task: Uuid, status: TaskStatus) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.status = status;
        }
    }

    /// The u probabilities estimated from `pairs` random pairs of the
    /// source records now linked (see `estimate`).
    pub fn estimate_u(&self, pairs: u64) -> Result<Vec<estimate::UEstimate>, StoreError> {
        let loaded = self.tables.load()?;
        let profiles = linked_profiles(&loaded);
        Ok(estimate::estimate_u(
            &profiles,
            &self.configured,
            pairs,
            0x6d64_6875_6275,
        ))
    }

    /// u from `pairs` random pairs as `estimate_u`, raised where relatives
    /// share more (`estimate::with_neighbours`), then m and the prior by
    /// EM over the candidate pairs of the linked source records; and how
    /// many records that was.
    pub fn estimate_m_u(
        &self,
        pairs: u64,
    ) -> Result<(Vec<estimate::UEstimate>, estimate::EmEstimate, u64), StoreError> {
        let loaded = self.tables.load()?;
        let profiles = linked_profiles(&loaded);
        let rules = &self.configured;
        let u = estimate::estimate_u(&profiles, rules, pairs, 0x6d64_6875_6275);
        let (u, households) = estimate::with_neighbours(&profiles, rules, u);
        let mut em = estimate::estimate_m_by_sessions(&profiles, &u, rules);
        em.households = households;
        Ok((u, em, profiles.len() as u64))
    }

    /// Source records the matcher has seen.
    pub fn records_held(&self) -> u64 {
        self.tables.count()
    }

    /// The trained model in force, if any.
    pub fn model(&self) -> Option<&ModelInForce> {
        self.model.as_ref()
    }

    /// Puts the model of log entry `seq` in force for the entries after it.
    /// A model that does not fit the rules (`TrainedModel::problem`)
    /// changes nothing, the same way in every replay.
    pub fn use_model(&mut self, seq: u64, model: &trained::TrainedModel) -> Result<(), StoreError> {
        self.last_trained = model.records;
        if model.problem(&self.configured).is_some() {
            return Ok(());
        }
        self.rules = self.configured.with_model(model);
        self.model = Some(ModelInForce {
            seq,
            model_id: model.model_id,
            records: model.records,
        });
        // Every record decided before it may be decided otherwise now.
        self.reresolution = Some(regroup::Pending {
            model_seq: seq,
            model_id: model.model_id,
            records: self.tables.linked_count()?,
        });
        Ok(())
    }

    /// Whether the hub should train by itself now: `[match] train_at` is
    /// set and the records held reached it, or twice the records of the
    /// last training.
    pub fn training_due(&self) -> bool {
        let first = self.rules.train_at;
        let next = first.max(self.last_trained.saturating_mul(2));
        first > 0 && self.records_held() >= next
    }

    /// A model trained on the linked source records now held (u from
    /// random pairs, m and the prior by EM; see `estimate`).
    pub fn train(
        &self,
        trigger: trained::Trigger,
        at: time::OffsetDateTime,
    ) -> Result<trained::TrainedModel, StoreError> {
        let (u, em, records) = self.estimate_m_u(trained::TRAINING_PAIRS)?;
        Ok(trained::TrainedModel::from_estimate(
            &u,
            &em,
            records,
            &self.configured,
            trigger,
            at,
        ))
    }

    /// For the state hash: links, merges, decisions and tasks.
    pub fn hash_into(&self, h: &mut sha2::Sha256) {
        use sha2::Digest;
        #[derive(Serialize)]
        struct Summary<'a> {
            merged_into: &'a BTreeMap<Uuid, Uuid>,
            distinct: &'a BTreeSet<(Uuid, Uuid)>,
            tasks: Vec<(&'a Uuid, &'a SourceKey, Uuid, Uuid, String, &'a TaskStatus)>,
            model: &'a Option<ModelInForce>,
            last_trained: u64,
            pinned: &'a BTreeSet<Uuid>,
            reresolution: &'a Option<regroup::Pending>,
        }
        let s = Summary {
            merged_into: &self.merged_into,
            distinct: &self.distinct,
            // Scores as fixed text: float formatting is exact and stable.
            tasks: self
                .tasks
                .iter()
                .map(|(id, t)| {
                    (
                        id,
                        &t.source,
                        t.golden_id,
                        t.candidate,
                        format!("{:.6}", t.score),
                        &t.status,
                    )
                })
                .collect(),
            model: &self.model,
            last_trained: self.last_trained,
            pinned: &self.pinned,
            reresolution: &self.reresolution,
        };
        h.update(serde_json::to_vec(&s).expect("summary serializes"));
    }

    /// For reports: the profiles of the source records numbered so far
    /// (the count the prior is taken at), and one record's profile.
    pub fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        Ok(self.tables.load()?.profiles.into_iter().flatten().collect())
    }

    pub fn profile_of(&self, source: &SourceKey) -> Result<Option<Arc<Profile>>, StoreError> {
        match self.tables.number(source)? {
            Some(no) => self.tables.profile(no),
            None => Ok(None),
        }
    }
}

/// The profiles of the source records linked now, by number.
fn linked_profiles(loaded: &tables::Loaded) -> Vec<&Profile> {
    loaded
        .slots
        .iter()
        .zip(&loaded.profiles)
        .filter(|(slot, _)| slot.linked)
        .filter_map(|(_, profile)| profile.as_ref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn key(record_id: &str) -> SourceKey {
        SourceKey {
            system: "crm".into(),
            record_id: record_id.into(),
        }
    }

    fn profile(rules: &MatchRules, pairs: &[(&str, &str)]) -> Profile {
        let values: BTreeMap<&str, Value> = pairs
            .iter()
            .map(|(k, v)| (*k, Value::String(v.to_string())))
            .collect();
        Profile::from_fields(rules, |f| values.get(f))
    }

    /// Feeds the records in order through `decide` (sequence 1, 2, ...).
    fn run(records: &[(&str, Vec<(&str, &str)>)]) -> (Resolver, Vec<Decision>) {
        let storage = crate::store::MemoryStorage::shared();
        let mut r = Resolver::new(MatchRules::default(), storage.as_ref()).unwrap();
        let decisions = records
            .iter()
            .enumerate()
            .map(|(i, (id, fields))| {
                let p = profile(&MatchRules::default(), fields);
                r.decide("customer", &key(id), &p, false, i as u64 + 1)
                    .unwrap()
            })
            .collect();
        (r, decisions)
    }

    fn golden(r: &Resolver, id: &str) -> Uuid {
        r.golden_of(&key(id)).unwrap().expect("linked")
    }

    /// Two people of three records each. Within a cluster the records
    /// share a tax id (one of them has an e-mail address of its own); the
    /// clusters share nothing. The third of each cluster has a value the
    /// others lack: a3 an e-mail address, b3 a mobile number and a birth
    /// date.
    fn two_people() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
        let person = ("customer_type", "person");
        vec![
            (
                "a1",
                vec![person, ("tax_id", "TA-1"), ("email", "anna@example.org")],
            ),
            (
                "a2",
                vec![person, ("tax_id", "TA-1"), ("email", "anna@example.org")],
            ),
            (
                "a3",
                vec![
                    person,
                    ("tax_id", "TA-1"),
                    ("email", "a.schmidt@example.org"),
                ],
            ),
            (
                "b1",
                vec![person, ("tax_id", "TB-2"), ("email", "peter@example.org")],
            ),
            (
                "b2",
                vec![person, ("tax_id", "TB-2"), ("email", "peter@example.org")],
            ),
            (
                "b3",
                vec![
                    person,
                    ("tax_id", "TB-2"),
                    ("mobile", "+4915100000001"),
                    ("birth_date", "1970-03-04"),
                ],
            ),
        ]
    }

    /// A record at link with a3 (its e-mail address) and with b3 (mobile
    /// number and birth date), and with no other member of either.
    fn weak_link() -> (&'static str, Vec<(&'static str, &'static str)>) {
        (
            "x",
            vec![
                ("customer_type", "person"),
                ("email", "a.schmidt@example.org"),
                ("mobile", "+4915100000001"),
                ("birth_date", "1970-03-04"),
            ],
        )
    }

    #[test]
    fn one_weak_link_does_not_merge_two_clusters() {
        let mut records = two_people();
        records.push(weak_link());
        let (r, decisions) = run(&records);
        let (a, b) = (golden(&r, "a1"), golden(&r, "b1"));
        assert_ne!(a, b, "two people, two golden records");
        for id in ["a2", "a3"] {
            assert_eq!(golden(&r, id), a, "{id}");
        }
        for id in ["b2", "b3"] {
            assert_eq!(golden(&r, id), b, "{id}");
        }
        // The record scores at link with one member of each cluster...
        let rules = MatchRules::default();
        let (link, _) = rules.thresholds(records.len() as u64);
        let x = profile(&rules, &weak_link().1);
        let at_link = |id: &str| {
            let fields = &records.iter().find(|(i, _)| *i == id).unwrap().1;
            score::score(&x, &profile(&rules, fields), &rules, Some(r.terms())).0 >= link
        };
        assert!(at_link("a3") && at_link("b3"));
        assert!(!at_link("a1") && !at_link("b1"));
        // ...so it links to the better one (b3 agrees on more), merges
        // nothing, and asks a steward about the other.
        assert_eq!(
            decisions.last(),
            Some(&Decision::Link {
                golden: b,
                merge: vec![]
            })
        );
        assert_eq!(golden(&r, "x"), b);
        assert_eq!(r.merged_into(a), None);
        assert_eq!(r.merged_into(b), None);
        let tasks: Vec<&ReviewTask> = r.tasks().collect();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        let task = tasks[0];
        assert_eq!(task.source, key("x"));
        assert_eq!(task.golden_id, b);
        assert_eq!(task.candidate, a);
        assert_eq!(task.status, TaskStatus::Open);
        assert!(task.score >= link);
        assert_eq!(task.opened_seq, records.len() as u64);
        assert_eq!(r.merges_prevented(), 1);
    }

    #[test]
    fn a_record_that_matches_both_clusters_throughout_merges_them() {
        // One person whose records were split in two: three by e-mail
        // address, three by tax id, with nothing shared between the halves.
        let person = ("customer_type", "person");
        let mut records: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("e1", vec![person, ("email", "jo@example.org")]),
            ("e2", vec![person, ("email", "jo@example.org")]),
            ("e3", vec![person, ("email", "jo@example.org")]),
            ("t1", vec![person, ("tax_id", "TJ-3")]),
            ("t2", vec![person, ("tax_id", "TJ-3")]),
            ("t3", vec![person, ("tax_id", "TJ-3")]),
        ];
        let (r, _) = run(&records);
        let (e, t) = (golden(&r, "e1"), golden(&r, "t1"));
        assert_ne!(e, t, "the halves are apart before");
        records.push((
            "both",
            vec![person, ("email", "jo@example.org"), ("tax_id", "TJ-3")],
        ));
        let (r, decisions) = run(&records);
        let Some(Decision::Link { golden: g, merge }) = decisions.last() else {
            panic!("linked: {decisions:?}");
        };
        assert_eq!(merge.len(), 1, "{merge:?}");
        for id in ["e1", "e2", "e3", "t1", "t2", "t3", "both"] {
            assert_eq!(golden(&r, id), *g, "{id}");
        }
        assert_eq!(r.merges_prevented(), 0);
        assert_eq!(r.tasks().count(), 0);
    }

    #[test]
    fn the_same_records_give_the_same_decisions_tasks_and_count() {
        let mut records = two_people();
        records.push(weak_link());
        let hash = |r: &Resolver| {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            r.hash_into(&mut h);
            h.finalize().to_vec()
        };
        let (r1, d1) = run(&records);
        let (r2, d2) = run(&records);
        assert_eq!(d1, d2);
        assert_eq!(
            r1.tasks().collect::<Vec<_>>(),
            r2.tasks().collect::<Vec<_>>()
        );
        assert_eq!(r1.merges_prevented(), r2.merges_prevented());
        assert_eq!(hash(&r1), hash(&r2));
    }
}
