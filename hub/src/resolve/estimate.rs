//! Estimating the u probabilities from the data: how often two unrelated
//! records agree on each comparison. Pairs drawn at random from a large set
//! of records are almost all unrelated, so the share of random pairs that
//! agree (or partly agree) is u, the way Fellegi-Sunter tools commonly
//! estimate it.
//!
//! The m probabilities and the prior (the share of candidate pairs that
//! match) are estimated by expectation maximisation over the candidate
//! pairs (records sharing a block key), with u held at the random-pair
//! estimate: each pair's match probability given the current m and prior,
//! then m and the prior as the weighted shares, until nothing moves.
//!
//! The draw is seeded and the EM sums in a fixed order, so the same records
//! give the same estimate, bit for bit.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::profile::Profile;
use super::rules::{Comparison, MatchRules};
use super::score::{outcomes, Outcome};

/// The estimate for one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct UEstimate {
    pub comparison: Comparison,
    /// Random pairs where both records had the fields to compare.
    pub compared: u64,
    pub u_agree: f64,
    pub u_partial: f64,
}

/// u of every comparison from `pairs` random pairs of distinct `profiles`.
/// Comparisons no pair could make are left out.
pub fn estimate_u(profiles: &[&Profile], pairs: u64, seed: u64) -> Vec<UEstimate> {
    let mut counts: BTreeMap<Comparison, (u64, u64, u64)> = BTreeMap::new();
    let n = profiles.len() as u64;
    if n < 2 {
        return Vec::new();
    }
    let mut rng = SplitMix64(seed);
    for _ in 0..pairs {
        let a = rng.below(n);
        let b = (a + 1 + rng.below(n - 1)) % n;
        for (c, outcome) in outcomes(profiles[a as usize], profiles[b as usize]) {
            let slot = counts.entry(c).or_default();
            slot.0 += 1;
            match outcome {
                Outcome::Agree => slot.1 += 1,
                Outcome::Partial => slot.2 += 1,
                Outcome::Disagree => {}
            }
        }
    }
    counts
        .into_iter()
        .map(|(comparison, (compared, agree, partial))| UEstimate {
            comparison,
            compared,
            u_agree: agree as f64 / compared as f64,
            u_partial: partial as f64 / compared as f64,
        })
        .collect()
}

/// The estimate as `[match.weights.*]` sections for the hub config, with
/// the m probabilities in force. A u of 0 (no random pair agreed) is
/// written as one in `compared`, the most the sample can rule out.
pub fn as_config(estimates: &[UEstimate], rules: &MatchRules) -> String {
    let mut out = String::new();
    for e in estimates {
        let p = rules.probabilities(e.comparison);
        let floor = 1.0 / e.compared.max(1) as f64;
        let u_agree = e.u_agree.max(floor);
        let u_partial = if p.m_partial > 0.0 {
            e.u_partial.max(floor)
        } else {
            0.0
        };
        let name = e.comparison.name();
        let _ = writeln!(
            out,
            "# {name}: {} random pairs compared; configured u_agree {:.3e}, u_partial {:.3e}\n\
             [match.weights.{name}]\n\
             m_agree = {}\nm_partial = {}\nu_agree = {:.3e}\nu_partial = {:.3e}\n",
            e.compared, p.u_agree, p.u_partial, p.m_agree, p.m_partial, u_agree, u_partial
        );
    }
    out
}

/// The outcomes of one pair, in comparison order (see `score::outcomes`).
pub type Pattern = Vec<(Comparison, Outcome)>;

/// Candidate pairs of `profiles`: pairs that share a block key, each block
/// read up to `max_block` members as the matcher reads it, each pair once,
/// as indices into `profiles` (smaller first), ascending.
pub fn candidate_pairs(profiles: &[&Profile], max_block: usize) -> Vec<(usize, usize)> {
    let mut blocks: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in profiles.iter().enumerate() {
        for k in p.block_keys() {
            let members = blocks.entry(k).or_default();
            if members.len() < max_block {
                members.push(i);
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = blocks
        .values()
        .flat_map(|m| {
            m.iter()
                .enumerate()
                .flat_map(move |(x, &a)| m[x + 1..].iter().map(move |&b| (a, b)))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The outcome patterns of the candidate pairs of `profiles` (see
/// `candidate_pairs`) with their counts, in a fixed order.
pub fn candidate_patterns(profiles: &[&Profile], max_block: usize) -> BTreeMap<Pattern, u64> {
    let mut patterns: BTreeMap<Pattern, u64> = BTreeMap::new();
    for (a, b) in candidate_pairs(profiles, max_block) {
        *patterns
            .entry(outcomes(profiles[a], profiles[b]))
            .or_default() += 1;
    }
    patterns
}

/// m of one comparison as estimated by EM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MEstimate {
    pub comparison: Comparison,
    pub m_agree: f64,
    pub m_partial: f64,
}

/// The EM result: the prior and m of each comparison the pairs made.
#[derive(Debug, Clone, PartialEq)]
pub struct EmEstimate {
    /// Share of the candidate pairs that match.
    pub lambda: f64,
    pub m: Vec<MEstimate>,
    /// Candidate pairs the estimate was made from.
    pub pairs: u64,
    pub iterations: usize,
    pub converged: bool,
}

/// Probabilities are kept this far from 0 and 1: a level no pair showed
/// would otherwise get an infinite weight.
const EM_FLOOR: f64 = 1e-4;
/// EM stops when no parameter moves more than this, or after the cap.
const EM_TOLERANCE: f64 = 1e-7;
pub const EM_MAX_ITERATIONS: usize = 500;

/// (agree, partial, disagree) kept at least `floor` each, summing to 1;
/// a comparison without a partial level keeps partial at 0.
fn clamp_levels(agree: f64, partial: f64, has_partial: bool, floor: f64) -> [f64; 3] {
    let partial = if has_partial { partial } else { 0.0 };
    let disagree = 1.0 - agree - partial;
    let levels = [
        agree.max(floor),
        if has_partial { partial.max(floor) } else { 0.0 },
        disagree.max(floor),
    ];
    let sum: f64 = levels.iter().sum();
    levels.map(|l| l / sum)
}

fn level(o: Outcome) -> usize {
    match o {
        Outcome::Agree => 0,
        Outcome::Partial => 1,
        Outcome::Disagree => 2,
    }
}

/// m and the prior by EM over `patterns` (from `candidate_patterns`), u held
/// at `u` (the random-pair estimate; a comparison missing there keeps the
/// u in `rules`). EM starts from the m in `rules` and a prior of
/// `start_lambda`, and runs to convergence or `max_iterations`.
pub fn estimate_m(
    patterns: &BTreeMap<Pattern, u64>,
    u: &[UEstimate],
    rules: &MatchRules,
    start_lambda: f64,
    max_iterations: usize,
) -> EmEstimate {
    let used: Vec<Comparison> = Comparison::ALL
        .into_iter()
        .filter(|c| patterns.keys().any(|p| p.iter().any(|(pc, _)| pc == c)))
        .collect();
    let has_partial = |c: Comparison| rules.probabilities(c).m_partial > 0.0;
    // u per comparison as three levels, floored as in `as_config`.
    let u_levels: BTreeMap<Comparison, [f64; 3]> = used
        .iter()
        .map(|&c| {
            let (agree, partial, floor) = match u.iter().find(|e| e.comparison == c) {
                Some(e) => (e.u_agree, e.u_partial, 1.0 / e.compared.max(1) as f64),
                None => {
                    let p = rules.probabilities(c);
                    (p.u_agree, p.u_partial, EM_FLOOR)
                }
            };
            (
                c,
                clamp_levels(agree, partial, has_partial(c), floor.min(EM_FLOOR)),
            )
        })
        .collect();
    let mut m: BTreeMap<Comparison, [f64; 3]> = used
        .iter()
        .map(|&c| {
            let p = rules.probabilities(c);
            (
                c,
                clamp_levels(p.m_agree, p.m_partial, has_partial(c), EM_FLOOR),
            )
        })
        .collect();
    let mut lambda = start_lambda.clamp(EM_FLOOR, 1.0 - EM_FLOOR);
    let total: u64 = patterns.values().sum();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations && total > 0 {
        iterations += 1;
        // E: each pattern's match probability; M: the weighted shares.
        let mut matched = 0.0;
        let mut shown: BTreeMap<Comparison, [f64; 3]> = BTreeMap::new();
        let mut compared: BTreeMap<Comparison, f64> = BTreeMap::new();
        for (pattern, &count) in patterns {
            let mut log_ratio = (lambda / (1.0 - lambda)).ln();
            for &(c, o) in pattern {
                log_ratio += (m[&c][level(o)] / u_levels[&c][level(o)]).ln();
            }
            let posterior = 1.0 / (1.0 + (-log_ratio).exp());
            let weight = posterior * count as f64;
            matched += weight;
            for &(c, o) in pattern {
                shown.entry(c).or_default()[level(o)] += weight;
                *compared.entry(c).or_default() += weight;
            }
        }
        let new_lambda = (matched / total as f64).clamp(EM_FLOOR, 1.0 - EM_FLOOR);
        let mut moved = (new_lambda - lambda).abs();
        lambda = new_lambda;
        for (&c, levels) in m.iter_mut() {
            let n = compared.get(&c).copied().unwrap_or(0.0);
            if n <= 0.0 {
                continue;
            }
            let s = shown[&c];
            let new = clamp_levels(s[0] / n, s[1] / n, has_partial(c), EM_FLOOR);
            for (old, new) in levels.iter_mut().zip(new) {
                moved = moved.max((*old - new).abs());
                *old = new;
            }
        }
        if moved < EM_TOLERANCE {
            converged = true;
            break;
        }
    }
    EmEstimate {
        lambda,
        m: m.into_iter()
            .map(|(comparison, l)| MEstimate {
                comparison,
                m_agree: l[0],
                m_partial: l[1],
            })
            .collect(),
        pairs: total,
        iterations,
        converged,
    }
}

/// The link threshold (bits) at which a candidate pair's match probability
/// reaches `p`, given the prior `lambda`: the score is the log-likelihood
/// ratio without the prior.
pub fn threshold_for(p: f64, lambda: f64) -> f64 {
    (p / (1.0 - p)).log2() - (lambda / (1.0 - lambda)).log2()
}

/// Both estimates as `[match.weights.*]` sections (m by EM, u from random
/// pairs), with the prior and the thresholds it implies as comments.
/// Comparisons the candidate pairs never made keep the m in force.
pub fn as_config_em(u: &[UEstimate], em: &EmEstimate, rules: &MatchRules) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# EM over {} candidate pairs: prior lambda {:.4e} ({} iterations{})\n\
         # link threshold for a match probability of 0.9: {:.1} bits, of 0.99: {:.1} bits\n",
        em.pairs,
        em.lambda,
        em.iterations,
        if em.converged { "" } else { ", not converged" },
        threshold_for(0.9, em.lambda),
        threshold_for(0.99, em.lambda),
    );
    for e in u {
        let p = rules.probabilities(e.comparison);
        let (m_agree, m_partial) = match em.m.iter().find(|m| m.comparison == e.comparison) {
            Some(m) => (m.m_agree, m.m_partial),
            None => (p.m_agree, p.m_partial),
        };
        let levels = clamp_levels(
            e.u_agree,
            e.u_partial,
            p.m_partial > 0.0,
            1.0 / e.compared.max(1) as f64,
        );
        let name = e.comparison.name();
        let _ = writeln!(
            out,
            "# {name}: {} random pairs compared; configured m_agree {}, m_partial {}\n\
             [match.weights.{name}]\n\
             m_agree = {m_agree:.6}\nm_partial = {m_partial:.6}\n\
             u_agree = {:.3e}\nu_partial = {:.3e}\n",
            e.compared, p.m_agree, p.m_partial, levels[0], levels[1]
        );
    }
    out
}

/// A small, well-mixed generator; enough to draw pairs reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by widening multiplication.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(given: &str, family: &str, kind: &str, email: &str) -> Profile {
        Profile {
            kind: Some(kind.to_string()),
            email: Some(email.to_string()),
            given: Some(given.to_string()),
            family: Some(family.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn u_is_the_share_of_random_pairs_that_agree() {
        // 200 records: half companies, half persons (names are compared
        // between persons only); persons' given names from 4, family names
        // and emails all different.
        let profiles: Vec<Profile> = (0..200)
            .map(|i| {
                person(
                    ["Anna", "Bernd", "Clara", "Dieter"][(i / 2) % 4],
                    &format!("Family{i:03}x"),
                    if i % 2 == 0 { "company" } else { "person" },
                    &format!("user{i}@example.org"),
                )
            })
            .collect();
        let refs: Vec<&Profile> = profiles.iter().collect();
        let estimates = estimate_u(&refs, 20_000, 7);
        let get = |c| estimates.iter().find(|e| e.comparison == c).unwrap();
        assert_eq!(get(Comparison::Email).u_agree, 0.0);
        let kind = get(Comparison::CustomerType).u_agree;
        assert!(
            (0.45..0.55).contains(&kind),
            "customer type agrees half the time: {kind}"
        );
        let given = get(Comparison::GivenName).u_agree;
        assert!(
            (0.20..0.30).contains(&given),
            "one given name in four: {given}"
        );
        assert_eq!(estimates, estimate_u(&refs, 20_000, 7), "seeded draw");

        let config = as_config(&estimates, &MatchRules::default());
        assert!(config.contains("[match.weights.customer_type]"), "{config}");
        assert!(config.contains("[match.weights.email]"), "{config}");
        assert!(
            config.contains("u_agree = 5.000e-5"),
            "email floor 1/20000: {config}"
        );
    }

    /// Pairs drawn from known m, u and prior; some fields missing.
    fn synthetic_pairs(
        truth: &[(Comparison, [f64; 3], [f64; 3])],
        lambda: f64,
    ) -> BTreeMap<Pattern, u64> {
        let mut rng = SplitMix64(42);
        let mut uniform = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut patterns: BTreeMap<Pattern, u64> = BTreeMap::new();
        for _ in 0..40_000 {
            let is_match = uniform() < lambda;
            let mut pattern = Pattern::new();
            for &(c, m, u) in truth {
                if uniform() < 0.1 {
                    continue; // missing on one side
                }
                let p = if is_match { m } else { u };
                let r = uniform();
                let o = if r < p[0] {
                    Outcome::Agree
                } else if r < p[0] + p[1] {
                    Outcome::Partial
                } else {
                    Outcome::Disagree
                };
                pattern.push((c, o));
            }
            *patterns.entry(pattern).or_default() += 1;
        }
        patterns
    }

    #[test]
    fn em_recovers_m_and_the_prior_and_is_deterministic() {
        let truth = [
            (
                Comparison::GivenName,
                [0.80, 0.12, 0.08],
                [0.02, 0.05, 0.93],
            ),
            (
                Comparison::FamilyName,
                [0.75, 0.15, 0.10],
                [0.01, 0.04, 0.95],
            ),
            (
                Comparison::BirthDate,
                [0.70, 0.20, 0.10],
                [0.001, 0.05, 0.949],
            ),
            (
                Comparison::Address,
                [0.60, 0.25, 0.15],
                [0.002, 0.03, 0.968],
            ),
            (Comparison::Email, [0.60, 0.0, 0.40], [0.0001, 0.0, 0.9999]),
        ];
        let lambda = 0.3;
        let patterns = synthetic_pairs(&truth, lambda);
        let u: Vec<UEstimate> = truth
            .iter()
            .map(|&(comparison, _, u)| UEstimate {
                comparison,
                compared: 1_000_000,
                u_agree: u[0],
                u_partial: u[1],
            })
            .collect();
        let rules = MatchRules::default();
        let em = estimate_m(&patterns, &u, &rules, 0.1, EM_MAX_ITERATIONS);
        assert!(em.converged, "{em:?}");
        assert_eq!(em.pairs, 40_000);
        assert!((em.lambda - lambda).abs() < 0.01, "prior {}", em.lambda);
        for &(c, m, _) in &truth {
            let got = em.m.iter().find(|e| e.comparison == c).unwrap();
            assert!(
                (got.m_agree - m[0]).abs() < 0.02 && (got.m_partial - m[1]).abs() < 0.02,
                "{c:?}: {got:?}, truth {m:?}"
            );
        }
        // The same input gives the same output, bit for bit.
        let again = estimate_m(&patterns, &u, &rules, 0.1, EM_MAX_ITERATIONS);
        assert_eq!(em.lambda.to_bits(), again.lambda.to_bits());
        for (a, b) in em.m.iter().zip(&again.m) {
            assert_eq!(a.m_agree.to_bits(), b.m_agree.to_bits());
            assert_eq!(a.m_partial.to_bits(), b.m_partial.to_bits());
        }
        // The config holds both; the thresholds follow from the prior.
        let config = as_config_em(&u, &em, &rules);
        assert!(config.contains("[match.weights.birth_date]"), "{config}");
        let parsed: toml::Value = toml::from_str(&config).unwrap();
        assert!(
            parsed["match"]["weights"]["email"]["m_agree"]
                .as_float()
                .unwrap()
                > 0.5
        );
        assert!((threshold_for(0.9, 0.5) - 9f64.log2()).abs() < 1e-12);
    }

    #[test]
    fn em_keeps_probabilities_off_zero_and_one() {
        // Every pair agrees on everything: m_agree would reach 1.
        let mut patterns = BTreeMap::new();
        patterns.insert(
            vec![
                (Comparison::GivenName, Outcome::Agree),
                (Comparison::BirthDate, Outcome::Agree),
            ],
            100u64,
        );
        let em = estimate_m(&patterns, &[], &MatchRules::default(), 0.5, 50);
        assert!(em.iterations <= 50);
        for m in &em.m {
            assert!(m.m_agree < 1.0 && m.m_partial > 0.0, "{m:?}");
        }
        assert!(em.lambda < 1.0);
    }
}
