//! Entity resolution: which golden record a source record belongs to.
//!
//! Each new or changed source record is matched as it arrives: its blocking
//! keys find candidate source records in the match index (sled, bounded
//! blocks), each candidate is scored (Fellegi-Sunter over the comparisons
//! the rules declare, `score`), and the best match probability per golden
//! record decides:
//! - at or above `link_probability`: link; every other golden record at
//!   that level is merged into one survivor (the one created first);
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
pub mod profile;
pub mod report;
pub mod rules;
pub mod score;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use uuid::Uuid;

use crate::golden::SourceKey;
use index::MatchIndex;
use profile::Profile;
use rules::MatchRules;
use score::{Part, Scored, Terms};

/// Namespace of golden ids and review task ids (UUIDv5), so that ids are a
/// function of the log.
const GOLDEN_NS: Uuid = Uuid::from_u128(0x6d64_6875_622d_676f_6c64_656e_2d69_6473);

/// An open or decided question for a data steward: is this source record
/// the same customer as that golden record?
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewTask {
    pub task_id: Uuid,
    pub source: SourceKey,
    /// The golden record the source record got (its own).
    pub golden_id: Uuid,
    /// The golden record it may belong to.
    pub candidate: Uuid,
    pub score: f64,
    pub parts: Vec<Part>,
    pub opened_seq: u64,
    pub status: TaskStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

struct Slot {
    golden: Option<Uuid>,
    linked: bool,
}

pub struct Resolver {
    rules: MatchRules,
    index: MatchIndex,
    terms: Terms,
    /// Source record → its number in the index. Looked up, never iterated.
    numbers: HashMap<SourceKey, u64>,
    /// By number: the source record, its golden record, and whether it is
    /// linked now. A deleted record keeps its golden record for matching: a
    /// record matching it later brings the retired golden record back.
    sources: Vec<Slot>,
    /// Golden record → log sequence that created it (survivor choice).
    created: BTreeMap<Uuid, u64>,
    /// Retired golden record → the one it was merged into.
    merged_into: BTreeMap<Uuid, Uuid>,
    /// Pairs (smaller id first) a steward decided are different customers.
    distinct: BTreeSet<(Uuid, Uuid)>,
    tasks: BTreeMap<Uuid, ReviewTask>,
}

impl Resolver {
    pub fn new(rules: MatchRules) -> Self {
        Resolver {
            index: MatchIndex::temporary(rules.max_block),
            terms: Terms::new(&rules),
            rules,
            numbers: HashMap::new(),
            sources: Vec::new(),
            created: BTreeMap::new(),
            merged_into: BTreeMap::new(),
            distinct: BTreeSet::new(),
            tasks: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &MatchRules {
        &self.rules
    }

    /// The term frequencies of the records held now.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    pub fn golden_of(&self, source: &SourceKey) -> Option<Uuid> {
        let &no = self.numbers.get(source)?;
        if !self.sources[no as usize].linked {
            return None;
        }
        self.golden_of_number(no)
    }

    /// The golden record of a source record by number. Links are stored as
    /// made and read through `survivor`, so a merge touches no link.
    fn golden_of_number(&self, no: u64) -> Option<Uuid> {
        self.sources[no as usize].golden.map(|g| self.survivor(g))
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

    fn number(&mut self, source: &SourceKey) -> u64 {
        if let Some(&no) = self.numbers.get(source) {
            return no;
        }
        let no = self.sources.len() as u64;
        self.sources.push(Slot {
            golden: None,
            linked: false,
        });
        self.numbers.insert(source.clone(), no);
        no
    }

    fn is_distinct(&self, a: Uuid, b: Uuid) -> bool {
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
    ) -> Decision {
        let no = self.number(source);
        let current = self.golden_of(source);
        let unchanged = current.is_some() && self.index.profile(no) == Some(profile);
        let mut best: BTreeMap<Uuid, (f64, Vec<Scored>)> = BTreeMap::new();
        let (link, review) = self.rules.thresholds(self.sources.len() as u64);
        if !unchanged {
            let keys = profile.block_keys();
            let candidates = self.index.candidates(&keys);
            if candidates.capped_blocks > 0 {
                metrics::counter!("mdhub_match_blocks_capped_total")
                    .increment(candidates.capped_blocks as u64);
            }
            for other in candidates.sources {
                if other == no {
                    continue;
                }
                let Some(golden) = self.golden_of_number(other) else {
                    continue;
                };
                let Some(theirs) = self.index.profile(other) else {
                    continue;
                };
                let (mut s, parts) = score::score(profile, theirs, &self.rules, Some(&self.terms));
                if exact_email && profile.email.is_some() && profile.email == theirs.email {
                    s = s.max(link);
                }
                let slot = best
                    .entry(golden)
                    .or_insert((f64::NEG_INFINITY, Vec::new()));
                if s > slot.0 {
                    *slot = (s, parts);
                }
            }
            if let Some(old) = self.index.profile(no) {
                self.terms.count(&self.rules, old, false);
            }
            self.terms.count(&self.rules, profile, true);
            self.index.put(no, profile, &keys);
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
        let group: Vec<Uuid> = linked
            .iter()
            .map(|(g, _)| *g)
            .filter(|g| first.is_none_or(|f| *g == f || !self.is_distinct(f, *g)))
            .collect();
        if let Some(&survivor) = group.iter().min_by_key(|g| (self.created[*g], **g)) {
            let merge: Vec<Uuid> = group.into_iter().filter(|g| *g != survivor).collect();
            for &loser in &merge {
                self.record_merge(loser, survivor);
            }
            self.sources[no as usize] = Slot {
                golden: Some(survivor),
                linked: true,
            };
            return Decision::Link {
                golden: survivor,
                merge,
            };
        }

        let golden = self.new_golden_id(entity, source, profile, exact_email, seq);
        self.sources[no as usize] = Slot {
            golden: Some(golden),
            linked: true,
        };
        let review = best
            .iter()
            .filter(|(_, (s, _))| *s >= review)
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(b.0.cmp(a.0)))
            .map(|(candidate, (s, parts))| {
                let task_id = crate::ids::uuid(
                    &GOLDEN_NS,
                    &[
                        "review".into(),
                        (&source.system).into(),
                        (&source.record_id).into(),
                        (*candidate).into(),
                    ],
                );
                self.tasks.insert(
                    task_id,
                    ReviewTask {
                        task_id,
                        source: source.clone(),
                        golden_id: golden,
                        candidate: *candidate,
                        score: *s,
                        parts: parts.iter().map(|p| p.part(&self.rules)).collect(),
                        opened_seq: seq,
                        status: TaskStatus::Open,
                    },
                );
                task_id
            });
        Decision::New { golden, review }
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
    ) -> Uuid {
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
        let free = names
            .iter()
            .map(|n| crate::ids::uuid(&GOLDEN_NS, n))
            .find(|id| !self.created.contains_key(id));
        let id = free.unwrap_or_else(|| {
            (0u64..)
                .map(|n| {
                    crate::ids::uuid(
                        &GOLDEN_NS,
                        &[
                            "by source at".into(),
                            entity.into(),
                            system.into(),
                            record.into(),
                            seq.into(),
                            n.into(),
                        ],
                    )
                })
                .find(|id| !self.created.contains_key(id))
                .unwrap_or_default()
        });
        self.created.insert(id, seq);
        id
    }

    /// Was `a` created before `b` (the survivor of a merge)?
    pub fn created_before(&self, a: Uuid, b: Uuid) -> bool {
        (self.created.get(&a), a) < (self.created.get(&b), b)
    }

    /// A new golden record made by a steward (a split), with a given id.
    pub fn create_golden(&mut self, id: Uuid, seq: u64) {
        self.created.entry(id).or_insert(seq);
    }

    /// Moves `source` to `golden` (a split).
    pub fn relink(&mut self, source: &SourceKey, golden: Uuid) {
        let no = self.number(source);
        self.sources[no as usize] = Slot {
            golden: Some(golden),
            linked: true,
        };
    }

    /// Forgets the link of a deleted source record; its profile stays out
    /// of matching from now on.
    pub fn unlink(&mut self, source: &SourceKey) -> Option<Uuid> {
        let golden = self.golden_of(source)?;
        let no = self.numbers[source];
        self.sources[no as usize].linked = false;
        Some(golden)
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
    pub fn estimate_u(&self, pairs: u64) -> Vec<estimate::UEstimate> {
        let profiles: Vec<&Profile> = (0..self.sources.len() as u64)
            .filter(|&no| self.sources[no as usize].linked)
            .filter_map(|no| self.index.profile(no))
            .collect();
        estimate::estimate_u(&profiles, &self.rules, pairs, 0x6d64_6875_6275)
    }

    /// u from `pairs` random pairs as `estimate_u`, then m and the prior by
    /// EM over the candidate pairs of the linked source records; and how
    /// many records that was.
    pub fn estimate_m_u(
        &self,
        pairs: u64,
    ) -> (Vec<estimate::UEstimate>, estimate::EmEstimate, u64) {
        let profiles: Vec<&Profile> = (0..self.sources.len() as u64)
            .filter(|&no| self.sources[no as usize].linked)
            .filter_map(|no| self.index.profile(no))
            .collect();
        let u = estimate::estimate_u(&profiles, &self.rules, pairs, 0x6d64_6875_6275);
        let patterns = estimate::candidate_patterns(&profiles, &self.rules);
        let em = estimate::estimate_m(&patterns, &u, &self.rules, 0.1, estimate::EM_MAX_ITERATIONS);
        (u, em, profiles.len() as u64)
    }

    /// For the state hash: links, merges, decisions and tasks.
    pub fn hash_into(&self, h: &mut sha2::Sha256) {
        use sha2::Digest;
        #[derive(Serialize)]
        struct Summary<'a> {
            merged_into: &'a BTreeMap<Uuid, Uuid>,
            distinct: &'a BTreeSet<(Uuid, Uuid)>,
            tasks: Vec<(&'a Uuid, &'a SourceKey, Uuid, Uuid, String, &'a TaskStatus)>,
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
        };
        h.update(serde_json::to_vec(&s).expect("summary serializes"));
    }

    /// For reports: the source records numbered so far (the count the
    /// prior is taken at), their profiles, and one record's profile.
    pub fn source_count(&self) -> u64 {
        self.sources.len() as u64
    }

    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        (0..self.sources.len() as u64).filter_map(|no| self.index.profile(no))
    }

    pub fn profile_of(&self, source: &SourceKey) -> Option<&Profile> {
        self.numbers
            .get(source)
            .and_then(|&no| self.index.profile(no))
    }
}
