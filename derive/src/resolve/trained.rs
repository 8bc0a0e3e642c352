//! Trained match models: m and u of each comparison level and the prior,
//! estimated from the records the hub holds (`estimate`), written to the
//! log as an entry of their own and in force for every entry after it.
//!
//! The log holds the model, not a request to train: replay reads the
//! numbers back instead of estimating again, so it derives what the live
//! hub derived, and an auditor sees which model decided each link.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::estimate::{clamp_levels, EmEstimate, UEstimate};
use super::rules::{MatchConfig, MatchRules, PRIOR_MIN_RECORDS};

/// Random pairs drawn for u when training.
/// Random pairs drawn for u when training: enough to see a level one
/// unrelated pair in 100,000 reaches a few times, few enough that training
/// holds ingest for seconds, not minutes.
pub const TRAINING_PAIRS: u64 = 300_000;

/// Why a model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// The hub trained by itself: it first held `[match] train_at` records,
    /// or twice the records of the last training.
    Automatic,
    /// Asked for over the admin API (`mdhub match train`), by this token.
    Requested { by: String },
}

/// The m and u of one comparison's levels, the disagreement level left out
/// (it is what the levels leave).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainedComparison {
    pub name: String,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

/// One training, as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainedModel {
    /// Unique id (UUIDv7); the log deduplicates on it.
    pub model_id: Uuid,
    pub trigger: Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Source records the model was trained on.
    pub records: u64,
    /// Candidate pairs EM ran over.
    pub candidate_pairs: u64,
    /// The estimated prior times the records (at least `PRIOR_MIN_RECORDS`)
    /// it was estimated at: the prior then shrinks as records come, as the
    /// configured `matches_per_record` does. Unused when `[match] prior`
    /// fixes the prior.
    pub matches_per_record: f64,
    /// Comparisons no pair could inform keep their configured m and u and
    /// are not listed.
    pub comparisons: Vec<TrainedComparison>,
    /// Relatives in these records share the `household` values (an
    /// address, a landline): a pair's agreements on them are one piece of
    /// evidence, and count as the largest of their weights, not their sum
    /// (`score::score`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub households: bool,
}

impl TrainedModel {
    /// The model of an estimate over `records` records (see
    /// `Resolver::estimate_m_u`).
    pub fn from_estimate(
        u: &[UEstimate],
        em: &EmEstimate,
        records: u64,
        rules: &MatchRules,
        trigger: Trigger,
        at: OffsetDateTime,
    ) -> Self {
        let comparisons = rules
            .comparisons
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let levels = c.levels.len();
                let u_of = u.iter().find(|e| e.comparison == i);
                let m_of = em.m.get(&i);
                if u_of.is_none() && m_of.is_none() {
                    return None;
                }
                // Each level and the disagreement level kept off 0 and 1 (a
                // level no random pair reached has a u of at most one in
                // the pairs compared; one every pair reached, likewise), so
                // that no weight is infinite.
                let m = clamp_levels(m_of.cloned().as_deref().unwrap_or(&c.m_levels()), 1e-4);
                let u = match u_of {
                    Some(e) => clamp_levels(&e.u, (1.0 / e.compared.max(1) as f64).min(1e-4)),
                    None => clamp_levels(&c.u_levels(), 1e-6),
                };
                Some(TrainedComparison {
                    name: c.name.clone(),
                    m: m[..levels].to_vec(),
                    u: u[..levels].to_vec(),
                })
            })
            .collect();
        TrainedModel {
            model_id: Uuid::now_v7(),
            trigger,
            at,
            records,
            candidate_pairs: em.pairs,
            matches_per_record: em.prior(records) * records.max(PRIOR_MIN_RECORDS) as f64,
            comparisons,
            households: em.households,
        }
    }

    /// What is wrong with the model for `rules`, if anything: a comparison
    /// they do not make, levels of another count, a probability out of
    /// (0, 1), levels summing over 1.
    pub fn problem(&self, rules: &MatchRules) -> Option<String> {
        let valid = |p: f64| p.is_finite() && p > 0.0 && p < 1.0;
        if !(self.matches_per_record.is_finite() && self.matches_per_record > 0.0) {
            return Some(format!(
                "matches_per_record {} is not a positive number",
                self.matches_per_record
            ));
        }
        for t in &self.comparisons {
            let Some(c) = rules.comparison(&t.name) else {
                return Some(format!("comparison {:?} is not one the rules make", t.name));
            };
            if t.m.len() != c.levels.len() || t.u.len() != c.levels.len() {
                return Some(format!(
                    "comparison {:?} has {} levels, the model gives {} m and {} u",
                    t.name,
                    c.levels.len(),
                    t.m.len(),
                    t.u.len()
                ));
            }
            for (what, ps) in [("m", &t.m), ("u", &t.u)] {
                if !ps.iter().all(|&p| valid(p)) || ps.iter().sum::<f64>() >= 1.0 {
                    return Some(format!(
                        "comparison {:?}: {what} {ps:?} are not probabilities of levels \
                         (each in (0, 1), less than 1 together)",
                        t.name
                    ));
                }
            }
        }
        None
    }
}

impl MatchRules {
    /// These rules with the m and u of `model` and its prior (unless the
    /// config fixes the prior). A model with a `problem` leaves them as
    /// they are.
    pub fn with_model(&self, model: &TrainedModel) -> MatchRules {
        if model.problem(self).is_some() {
            return self.clone();
        }
        let mut configs = self.configs.clone();
        for t in &model.comparisons {
            if let Some(c) = configs.iter_mut().find(|c| c.name == t.name) {
                for (l, level) in c.levels.iter_mut().enumerate() {
                    level.m = t.m[l];
                    level.u = t.u[l];
                }
            }
        }
        let mut config = MatchConfig::default();
        config.link_probability = self.link_probability;
        config.review_probability = self.review_probability;
        config.prior = self.prior;
        config.matches_per_record = model.matches_per_record;
        config.max_block = self.max_block;
        config.train_at = self.train_at;
        config.default_comparisons = false;
        config.comparison = configs;
        let mut rules = MatchRules::from_config(&config);
        rules.households_once = model.households;
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(rules: &MatchRules) -> TrainedModel {
        let m = TrainedModel {
            model_id: Uuid::nil(),
            trigger: Trigger::Automatic,
            at: OffsetDateTime::UNIX_EPOCH,
            records: 2_000,
            candidate_pairs: 10_000,
            matches_per_record: 0.4,
            comparisons: vec![TrainedComparison {
                name: "birth_date".into(),
                m: vec![0.9, 0.01, 0.05, 0.01],
                u: vec![0.001, 0.0001, 0.01, 0.003],
            }],
            households: true,
        };
        assert_eq!(m.problem(rules), None);
        m
    }

    #[test]
    fn a_model_sets_the_levels_and_prior_it_names_and_leaves_the_rest() {
        let rules = MatchRules::default();
        let trained = rules.with_model(&model(&rules));
        let birth = trained.comparison("birth_date").unwrap();
        assert_eq!((birth.levels[0].m, birth.levels[0].u), (0.9, 0.001));
        assert!((birth.levels[0].weight - (0.9f64 / 0.001).log2()).abs() < 1e-9);
        assert!((birth.else_m - 0.03).abs() < 1e-9);
        assert_eq!(trained.matches_per_record, 0.4);
        assert!(trained.households_once && !rules.households_once);
        let email = |r: &MatchRules| r.comparison("email").unwrap().levels[0].m;
        assert_eq!(email(&trained), email(&rules));
        assert_eq!(trained.link_probability, rules.link_probability);
        assert_eq!(trained.comparisons.len(), rules.comparisons.len());
    }

    #[test]
    fn a_model_that_does_not_fit_the_rules_is_refused_by_name() {
        let rules = MatchRules::default();
        let mut m = model(&rules);
        m.comparisons[0].m.pop();
        assert!(m.problem(&rules).unwrap().contains("birth_date"));
        assert_eq!(
            rules
                .with_model(&m)
                .comparison("birth_date")
                .unwrap()
                .levels[0]
                .m,
            rules.comparison("birth_date").unwrap().levels[0].m
        );
        let mut m = model(&rules);
        m.comparisons[0].name = "shoe_size".into();
        assert!(m.problem(&rules).unwrap().contains("shoe_size"));
        let mut m = model(&rules);
        m.comparisons[0].u = vec![0.5, 0.3, 0.4, 0.1];
        assert!(m.problem(&rules).unwrap().contains("less than 1 together"));
        let mut m = model(&rules);
        m.matches_per_record = f64::NAN;
        assert!(m.problem(&rules).is_some());
    }

    #[test]
    fn a_model_reads_back_from_the_log_as_written() {
        let rules = MatchRules::default();
        let mut m = model(&rules);
        // Floats of every magnitude a probability takes, drawn as bits.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p =
                f64::from_bits(0x3c00_0000_0000_0000 | (x >> 12) | ((x & 0x3f) << 52)).min(0.999);
            m.comparisons[0].m = vec![p, p / 3.0, 1.0 - p];
            m.matches_per_record = 1.0 / p;
            let back: TrainedModel =
                serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
            assert_eq!(
                back, m,
                "floats read back as written, so replay uses the same numbers"
            );
        }
    }
}
