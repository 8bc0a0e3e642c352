//! Estimating the u probabilities from the data: how often two unrelated
//! records reach each level of each comparison. Pairs drawn at random from
//! a large set of records are almost all unrelated, so the share of random
//! pairs at a level is its u, the way Fellegi-Sunter tools commonly
//! estimate it.
//!
//! The m probabilities and the prior are estimated by expectation
//! maximisation over the candidate pairs (records sharing a block key),
//! with u held at the random-pair estimate: each pair's match probability
//! given the current m and share of matches, then m and the share as the
//! weighted shares, until nothing moves. The share of matching candidate
//! pairs times the candidate pairs over all pairs is the prior.
//!
//! The draw is seeded and the EM sums in a fixed order, so the same records
//! give the same estimate, bit for bit.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::parallel;
use super::profile::Profile;
use super::rules::{threshold_for, ComparisonConfig, MatchRules};
use super::score::{pattern, Pattern};

/// The estimate for one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct UEstimate {
    /// Index into the rules' comparisons.
    pub comparison: usize,
    /// Random pairs where both records had values to compare.
    pub compared: u64,
    /// Share of those pairs at each level, the disagreement level last.
    pub u: Vec<f64>,
}

/// u of every comparison from `pairs` random pairs of distinct `profiles`.
/// Comparisons no pair could make are left out.
pub fn estimate_u(
    profiles: &[&Profile],
    rules: &MatchRules,
    pairs: u64,
    seed: u64,
) -> Vec<UEstimate> {
    let mut counts: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let n = profiles.len() as u64;
    if n < 2 {
        return Vec::new();
    }
    let mut rng = SplitMix64(seed);
    let drawn: Vec<(usize, usize)> = (0..pairs)
        .map(|_| {
            let a = rng.below(n);
            let b = (a + 1 + rng.below(n - 1)) % n;
            (a as usize, b as usize)
        })
        .collect();
    for (pattern, count) in count_patterns(profiles, rules, &drawn, |_| true) {
        for (c, level) in pattern {
            counts
                .entry(c)
                .or_insert_with(|| vec![0; rules.comparisons[c].level_count()])[level] += count;
        }
    }
    counts
        .into_iter()
        .map(|(comparison, levels)| {
            let compared: u64 = levels.iter().sum();
            UEstimate {
                comparison,
                compared,
                u: levels.iter().map(|&k| k as f64 / compared as f64).collect(),
            }
        })
        .collect()
}

/// Records per family name read for `with_neighbours` (the first ones, by
/// position), and the pairs it reads at most: enough to see how often
/// relatives share an address, bounded on a large hub.
const NEIGHBOUR_GROUP: usize = 20;
const NEIGHBOUR_PAIRS: usize = 300_000;
/// Pairs a comparison needs among neighbours before their u counts.
const NEIGHBOUR_MIN_PAIRS: u64 = 30;
/// The records hold households when neighbours agree exactly on a
/// `household` value at least this many times as often as random pairs,
/// in at least this many neighbour pairs: relatives share an address or
/// landline tens of times as often as strangers (20 to 70 times on the
/// generator), while names common in one region make it 1 to 3 times
/// (FEBRL). Both are counts, not shares of the neighbour pairs read: the
/// more records a hub holds, the more unrelated people share a family
/// name, so the share of relatives among neighbours falls with size (on
/// the generator from 0.9% of pairs at 3,900 records to 0.3% at 19,000)
/// while the ratio to random pairs does not.
const HOUSEHOLD_RATIO: f64 = 5.0;
const HOUSEHOLD_MIN_AGREEING: u64 = 10;

/// u raised where the records a hub compares share more than random pairs
/// do. Random pairs are strangers; the candidates a hub scores are mostly
/// people with the same family name, and among those, relatives (a
/// household, a family business) share an address and a landline without
/// being one customer. So the u of the comparisons marked `household` is
/// also counted among neighbours: pairs of records with the same family
/// name whose given names disagree (the given name comparison's last
/// level) and whose birth dates do not agree (or are missing). Where
/// neighbours agree exactly more often than random pairs, their shares of
/// the levels are the u. On data without households, neighbours are
/// strangers too and nothing changes. Also says whether these records hold
/// households (`HOUSEHOLD_RATIO`).
pub fn with_neighbours(
    profiles: &[&Profile],
    rules: &MatchRules,
    u: Vec<UEstimate>,
) -> (Vec<UEstimate>, bool) {
    let by_name = |name: &str| {
        rules
            .comparisons
            .iter()
            .position(|c| c.fields.iter().any(|f| f == name))
    };
    let (Some(given), birth) = (by_name("given_name"), by_name("birth_date")) else {
        return (u, false);
    };
    let mut families: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in profiles.iter().enumerate() {
        if let Some(f) = p.family.as_deref().filter(|f| !f.is_empty()) {
            let members = families.entry(f).or_default();
            if members.len() < NEIGHBOUR_GROUP {
                members.push(i);
            }
        }
    }
    let mut counts: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut read = 0;
    'families: for members in families.values() {
        for (k, &a) in members.iter().enumerate() {
            for &b in &members[k + 1..] {
                if read == NEIGHBOUR_PAIRS {
                    break 'families;
                }
                read += 1;
                let levels = pattern(profiles[a], profiles[b], rules);
                let level_of = |c: usize| levels.iter().find(|(x, _)| *x == c).map(|(_, l)| *l);
                let last = |c: usize| rules.comparisons[c].levels.len();
                let strangers = level_of(given) == Some(last(given))
                    && birth.is_none_or(|d| level_of(d).is_none_or(|l| l == last(d)));
                if !strangers {
                    continue;
                }
                for (c, level) in levels {
                    let compared = &rules.comparisons[c];
                    if !compared.household {
                        continue;
                    }
                    counts
                        .entry(c)
                        .or_insert_with(|| vec![0; compared.level_count()])[level] += 1;
                }
            }
        }
    }
    let mut households = false;
    let u = u
        .into_iter()
        .map(|mut e| {
            let Some(near) = counts.get(&e.comparison) else {
                return e;
            };
            let total: u64 = near.iter().sum();
            if total < NEIGHBOUR_MIN_PAIRS {
                return e;
            }
            let agreeing = near[0];
            let near: Vec<f64> = near.iter().map(|&k| k as f64 / total as f64).collect();
            households |= agreeing >= HOUSEHOLD_MIN_AGREEING && near[0] >= HOUSEHOLD_RATIO * e.u[0];
            if near[0] > e.u[0] {
                e.u = near;
            }
            e
        })
        .collect();
    (u, households)
}

/// Candidate pairs of `profiles`: pairs that share a block key of at most
/// `max_block` members (the matcher reads no bigger block), each pair once,
/// as indices into `profiles` (smaller first), ascending.
pub fn candidate_pairs(profiles: &[&Profile], max_block: usize) -> Vec<(usize, usize)> {
    candidate_pairs_where(&block_keys(profiles), max_block, |_| true)
}

/// Every profile's block keys, by position.
fn block_keys(profiles: &[&Profile]) -> Vec<Vec<String>> {
    parallel::map(profiles, |p| p.block_keys())
}

/// As `candidate_pairs`, from the profiles' `keys`, over the block keys
/// `keep` accepts only.
fn candidate_pairs_where(
    keys: &[Vec<String>],
    max_block: usize,
    keep: impl Fn(&str) -> bool,
) -> Vec<(usize, usize)> {
    let mut blocks: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, ks) in keys.iter().enumerate() {
        for k in ks.iter().filter(|k| keep(k)) {
            let members = blocks.entry(k).or_default();
            if members.len() <= max_block {
                members.push(i);
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = blocks
        .values()
        .filter(|m| m.len() <= max_block)
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

/// The outcome patterns of `pairs` of `profiles` with their counts, in a
/// fixed order, keeping the comparisons `keep` accepts. Scored on every
/// core (`parallel`); counts add up the same whatever the split.
fn count_patterns(
    profiles: &[&Profile],
    rules: &MatchRules,
    pairs: &[(usize, usize)],
    keep: impl Fn(usize) -> bool + Sync,
) -> BTreeMap<Pattern, u64> {
    let per_slice = parallel::by_slices(pairs, |slice| {
        let mut counts: BTreeMap<Pattern, u64> = BTreeMap::new();
        for &(a, b) in slice {
            let p: Pattern = pattern(profiles[a], profiles[b], rules)
                .into_iter()
                .filter(|&(c, _)| keep(c))
                .collect();
            *counts.entry(p).or_default() += 1;
        }
        counts
    });
    let mut counts: BTreeMap<Pattern, u64> = BTreeMap::new();
    for slice in per_slice {
        for (p, n) in slice {
            *counts.entry(p).or_default() += n;
        }
    }
    counts
}

/// One EM session: the candidate pairs sharing a block key of one family,
/// with the comparisons of the fields those keys are made of left out.
/// Within such a block every pair agrees on those fields, matches or not,
/// so counting that agreement as evidence would call every pair a match
/// (EM then learns m from unrelated pairs); left out, those comparisons
/// say nothing and the others are learned from pairs that can show it.
struct Session {
    /// Block keys of the family start with this.
    prefix: &'static str,
    /// The fields its keys are made of.
    fields: &'static [&'static str],
    /// Only pairs of two companies: a person's company is an employer,
    /// and colleagues sharing one, with the company left out, look like
    /// duplicates to EM (on 500 generator records this session took
    /// colleagues for matches and learned an m of 0 for e-mail and phone).
    companies_only: bool,
}

/// The sessions of `estimate_m_by_sessions`: each person comparison is
/// learned in at least one session that does not block on it.
const SESSIONS: [Session; 5] = [
    Session {
        prefix: "names:",
        fields: &["given_name", "family_name"],
        companies_only: false,
    },
    Session {
        prefix: "born:",
        fields: &["birth_date", "given_name", "family_name"],
        companies_only: false,
    },
    Session {
        prefix: "email:",
        fields: &["email"],
        companies_only: false,
    },
    Session {
        prefix: "phone:",
        fields: &["phone", "mobile"],
        companies_only: false,
    },
    Session {
        prefix: "company:",
        fields: &["company"],
        companies_only: true,
    },
];

/// A session with fewer expected matching pairs than this informs nothing;
/// nor does one whose matches agree exactly, at least this share of the
/// time, on no comparison that random pairs agree on less often than
/// `SESSION_RARE_AGREEMENT`.
const SESSION_MIN_MATCHES: f64 = 5.0;
const SESSION_MIN_AGREEMENT: f64 = 0.2;
const SESSION_RARE_AGREEMENT: f64 = 0.01;

/// m by EM session by session (see `Session`), each comparison's m the
/// mean over the sessions that learned it, weighted by the matching pairs
/// that made the comparison in each; then the share of matching candidate
/// pairs by EM over all candidate pairs with m and u held. A comparison no
/// session learned keeps the m in `rules`.
pub fn estimate_m_by_sessions(
    profiles: &[&Profile],
    u: &[UEstimate],
    rules: &MatchRules,
) -> EmEstimate {
    let keys = block_keys(profiles);
    let mut sums: BTreeMap<usize, (f64, Vec<f64>)> = BTreeMap::new();
    let mut iterations = 0;
    let mut converged = true;
    for session in &SESSIONS {
        // A block on a value relatives share (a landline) gathers
        // relatives, and with that value left out EM takes them for
        // duplicates: such a session learns nothing.
        let shared_by_relatives = rules.comparisons.iter().any(|c| {
            c.household
                && c.fields
                    .iter()
                    .any(|f| session.fields.contains(&f.as_str()))
        });
        if shared_by_relatives {
            continue;
        }
        // A born: key with a name initial is a subset of the plain one.
        let mut pairs = candidate_pairs_where(&keys, rules.max_block, |k| {
            k.starts_with(session.prefix) && !(session.prefix == "born:" && k.contains('|'))
        });
        if session.companies_only {
            pairs.retain(|&(a, b)| profiles[a].is_company() && profiles[b].is_company());
        }
        let left_out = |c: usize| {
            rules.comparisons[c]
                .fields
                .iter()
                .any(|f| session.fields.contains(&f.as_str()))
        };
        let patterns = count_patterns(profiles, rules, &pairs, |c| !left_out(c));
        let em = estimate_m(&patterns, u, rules, 0.1, EM_MAX_ITERATIONS);
        let matches = em.lambda * em.pairs as f64;
        // Matches that share no identifying value: EM took the block's
        // likeness for matching (on a few hundred records, a block of
        // strangers with common names, all called matches), and its m is
        // theirs, not a match's.
        let identifies = em.m.iter().any(|(&c, m)| {
            held_u(c, u, rules)[0] < SESSION_RARE_AGREEMENT && m[0] >= SESSION_MIN_AGREEMENT
        });
        if matches < SESSION_MIN_MATCHES || !identifies {
            continue;
        }
        iterations += em.iterations;
        converged &= em.converged;
        for (c, m) in em.m {
            // Learned from the matches that made the comparison: too few
            // of them (tax ids on a few companies), or exact agreement
            // rarer among them than among random pairs (EM took some
            // other likeness for matching), and this session says nothing
            // of `c`.
            let compared = em.compared_matches.get(&c).copied().unwrap_or(0.0);
            if compared < SESSION_MIN_MATCHES || m[0] < held_u(c, u, rules)[0] {
                continue;
            }
            let (weight, sum) = sums.entry(c).or_insert_with(|| (0.0, vec![0.0; m.len()]));
            *weight += compared;
            for (s, x) in sum.iter_mut().zip(&m) {
                *s += x * compared;
            }
        }
    }
    let compared_matches: BTreeMap<usize, f64> =
        sums.iter().map(|(&c, (weight, _))| (c, *weight)).collect();
    let m: BTreeMap<usize, Vec<f64>> = sums
        .into_iter()
        .map(|(c, (weight, sum))| (c, sum.into_iter().map(|s| s / weight).collect()))
        .collect();
    let pairs = candidate_pairs_where(&keys, rules.max_block, |_| true);
    let patterns = count_patterns(profiles, rules, &pairs, |_| true);
    let (lambda, lambda_iterations, lambda_converged) = estimate_lambda(&patterns, &m, u, rules);
    EmEstimate {
        households: false,
        lambda,
        m,
        pairs: patterns.values().sum(),
        iterations: iterations + lambda_iterations,
        converged: converged && lambda_converged,
        compared_matches,
    }
}

/// u of comparison `c` as EM holds it: the random-pair estimate in `u`
/// (a level no pair reached at one in the pairs compared), else as in
/// `rules`; kept off 0 and 1.
fn held_u(c: usize, u: &[UEstimate], rules: &MatchRules) -> Vec<f64> {
    match u.iter().find(|e| e.comparison == c) {
        Some(e) => clamp_levels(&e.u, (1.0 / e.compared.max(1) as f64).min(EM_FLOOR)),
        None => clamp_levels(&rules.comparisons[c].u_levels(), EM_FLOOR),
    }
}

/// The share of matching pairs among `patterns` by EM with m (from `m`,
/// else as in `rules`) and u (from `u`, else as in `rules`) held.
fn estimate_lambda(
    patterns: &BTreeMap<Pattern, u64>,
    m: &BTreeMap<usize, Vec<f64>>,
    u: &[UEstimate],
    rules: &MatchRules,
) -> (f64, usize, bool) {
    // log(m/u) of every comparison level, once.
    let ratio: Vec<Vec<f64>> = (0..rules.comparisons.len())
        .map(|c| {
            let comparison = &rules.comparisons[c];
            let ms = clamp_levels(
                m.get(&c)
                    .cloned()
                    .as_deref()
                    .unwrap_or(&comparison.m_levels()),
                EM_FLOOR,
            );
            let us = held_u(c, u, rules);
            ms.iter().zip(&us).map(|(m, u)| (m / u).ln()).collect()
        })
        .collect();
    let total: u64 = patterns.values().sum();
    let mut lambda: f64 = 0.1;
    for iteration in 1..=EM_MAX_ITERATIONS {
        if total == 0 {
            return (lambda, iteration - 1, true);
        }
        let mut matched = 0.0;
        for (pattern, &count) in patterns {
            let mut log_ratio = (lambda / (1.0 - lambda)).ln();
            for &(c, l) in pattern {
                log_ratio += ratio[c][l];
            }
            matched += count as f64 / (1.0 + (-log_ratio).exp());
        }
        let new = (matched / total as f64).clamp(EM_FLOOR, 1.0 - EM_FLOOR);
        let moved = (new - lambda).abs();
        lambda = new;
        if moved < EM_TOLERANCE {
            return (lambda, iteration, true);
        }
    }
    (lambda, EM_MAX_ITERATIONS, false)
}

/// The EM result: the share of matching candidate pairs and m of each
/// comparison the pairs made.
#[derive(Debug, Clone, PartialEq)]
pub struct EmEstimate {
    /// Share of the candidate pairs that match.
    pub lambda: f64,
    /// By comparison index: m of each level, the disagreement level last.
    pub m: BTreeMap<usize, Vec<f64>>,
    /// Candidate pairs the estimate was made from.
    pub pairs: u64,
    pub iterations: usize,
    pub converged: bool,
    /// Relatives share the `household` values here (`with_neighbours`):
    /// a trained model then counts them once.
    pub households: bool,
    /// By comparison index: the expected matching pairs that made the
    /// comparison (both records had a value), which its m is learned from.
    pub compared_matches: BTreeMap<usize, f64>,
}

impl EmEstimate {
    /// The prior (probability that two random records match) for
    /// `records` records: the matching candidate pairs among all pairs.
    pub fn prior(&self, records: u64) -> f64 {
        let all = (records as f64) * (records as f64 - 1.0) / 2.0;
        (self.lambda * self.pairs as f64 / all.max(1.0)).clamp(EM_FLOOR * EM_FLOOR, 0.5)
    }
}

/// Probabilities are kept this far from 0 and 1: a level no pair showed
/// would otherwise get an infinite weight.
const EM_FLOOR: f64 = 1e-4;
/// EM stops when no parameter moves more than this, or after the cap.
const EM_TOLERANCE: f64 = 1e-7;
pub const EM_MAX_ITERATIONS: usize = 500;

/// Levels kept at least `floor` each, summing to 1.
pub fn clamp_levels(levels: &[f64], floor: f64) -> Vec<f64> {
    let kept: Vec<f64> = levels.iter().map(|l| l.max(floor)).collect();
    let sum: f64 = kept.iter().sum();
    kept.into_iter().map(|l| l / sum).collect()
}

/// m and the share of matches by EM over `patterns` (the candidate pairs'
/// outcome patterns with their counts), u held at `u` (the random-pair
/// estimate; a comparison missing there keeps the u in `rules`). EM starts
/// from the m in `rules` and a share of `start_lambda`, and runs to
/// convergence or `max_iterations`.
pub fn estimate_m(
    patterns: &BTreeMap<Pattern, u64>,
    u: &[UEstimate],
    rules: &MatchRules,
    start_lambda: f64,
    max_iterations: usize,
) -> EmEstimate {
    let used: Vec<usize> = (0..rules.comparisons.len())
        .filter(|c| patterns.keys().any(|p| p.iter().any(|(pc, _)| pc == c)))
        .collect();
    let u_levels: BTreeMap<usize, Vec<f64>> =
        used.iter().map(|&c| (c, held_u(c, u, rules))).collect();
    let mut m: BTreeMap<usize, Vec<f64>> = used
        .iter()
        .map(|&c| (c, clamp_levels(&rules.comparisons[c].m_levels(), EM_FLOOR)))
        .collect();
    let mut lambda = start_lambda.clamp(EM_FLOOR, 1.0 - EM_FLOOR);
    let total: u64 = patterns.values().sum();
    let mut iterations = 0;
    let mut converged = false;
    let mut compared_matches: BTreeMap<usize, f64> = BTreeMap::new();
    while iterations < max_iterations && total > 0 {
        iterations += 1;
        // E: each pattern's match probability; M: the weighted shares.
        let mut matched = 0.0;
        let mut shown: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for (pattern, &count) in patterns {
            let mut log_ratio = (lambda / (1.0 - lambda)).ln();
            for &(c, l) in pattern {
                log_ratio += (m[&c][l] / u_levels[&c][l]).ln();
            }
            let posterior = 1.0 / (1.0 + (-log_ratio).exp());
            let weight = posterior * count as f64;
            matched += weight;
            for &(c, l) in pattern {
                shown
                    .entry(c)
                    .or_insert_with(|| vec![0.0; rules.comparisons[c].level_count()])[l] += weight;
            }
        }
        compared_matches = shown.iter().map(|(&c, s)| (c, s.iter().sum())).collect();
        let new_lambda = (matched / total as f64).clamp(EM_FLOOR, 1.0 - EM_FLOOR);
        let mut moved = (new_lambda - lambda).abs();
        lambda = new_lambda;
        for (c, levels) in m.iter_mut() {
            let Some(s) = shown.get(c) else { continue };
            let n: f64 = s.iter().sum();
            if n <= 0.0 {
                continue;
            }
            let shares: Vec<f64> = s.iter().map(|x| x / n).collect();
            for (old, new) in levels.iter_mut().zip(clamp_levels(&shares, EM_FLOOR)) {
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
        households: false,
        lambda,
        m,
        pairs: total,
        iterations,
        converged,
        compared_matches,
    }
}

/// The comparisons of `rules` as `[[match.comparison]]` sections for the
/// hub config, with u from `u` (a u of 0, no random pair at the level, is
/// written as one in `compared`, the most the sample can rule out) and m
/// from `m` where given, else as in force.
fn comparisons_config(
    u: &[UEstimate],
    m: Option<&BTreeMap<usize, Vec<f64>>>,
    rules: &MatchRules,
) -> String {
    let mut out = String::new();
    for (i, config) in rules.configs.iter().enumerate() {
        let mut c: ComparisonConfig = config.clone();
        let mut note = Vec::new();
        if let Some(e) = u.iter().find(|e| e.comparison == i) {
            let levels = clamp_levels(&e.u, 1.0 / e.compared.max(1) as f64);
            for (l, level) in c.levels.iter_mut().enumerate() {
                level.u = levels[l];
            }
            note.push(format!("u from {} random pairs", e.compared));
        }
        if let Some(levels) = m.and_then(|m| m.get(&i)) {
            for (l, level) in c.levels.iter_mut().enumerate() {
                level.m = levels[l];
            }
            note.push("m by EM".to_string());
        }
        #[derive(Serialize)]
        struct One<'a> {
            comparison: [&'a ComparisonConfig; 1],
        }
        #[derive(Serialize)]
        struct Section<'a> {
            #[serde(rename = "match")]
            matching: One<'a>,
        }
        let text = toml::to_string(&Section {
            matching: One { comparison: [&c] },
        })
        .expect("a comparison serializes");
        let _ = writeln!(
            out,
            "# {}: {}\n{text}",
            c.name,
            if note.is_empty() {
                "as configured".to_string()
            } else {
                note.join(", ")
            }
        );
    }
    out
}

/// The estimate as `[[match.comparison]]` sections for the hub config, with
/// the m probabilities in force.
pub fn as_config(estimates: &[UEstimate], rules: &MatchRules) -> String {
    comparisons_config(estimates, None, rules)
}

/// Both estimates as a `[match]` section (the prior from EM, m by EM, u
/// from random pairs), with the thresholds the prior implies as comments.
/// Comparisons the candidate pairs never made keep the m in force.
pub fn as_config_em(u: &[UEstimate], em: &EmEstimate, records: u64, rules: &MatchRules) -> String {
    let prior = em.prior(records);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# EM over {} candidate pairs of {records} records: {:.4e} of them match \
         ({} iterations{})\n\
         # score needed for a match probability of 0.9: {:.1} bits, of 0.99: {:.1} bits\n\
         [match]\nprior = {prior:.4e}\n",
        em.pairs,
        em.lambda,
        em.iterations,
        if em.converged { "" } else { ", not converged" },
        threshold_for(0.9, prior),
        threshold_for(0.99, prior),
    );
    out.push_str(&comparisons_config(u, Some(&em.m), rules));
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
    use serde_json::Value;

    fn person(rules: &MatchRules, given: &str, family: &str, kind: &str, email: &str) -> Profile {
        let values: BTreeMap<&str, Value> = [
            ("given_name", given),
            ("family_name", family),
            ("customer_type", kind),
            ("email", email),
        ]
        .into_iter()
        .map(|(k, v)| (k, Value::String(v.to_string())))
        .collect();
        Profile::from_fields(rules, |f| values.get(f))
    }

    fn index(rules: &MatchRules, name: &str) -> usize {
        rules
            .comparisons
            .iter()
            .position(|c| c.name == name)
            .unwrap()
    }

    /// Forty families of three, each person with a given name and birth
    /// date of their own; `shared` says whether a family shares a street.
    fn families(rules: &MatchRules, shared: bool) -> Vec<Profile> {
        let given = ["Anna", "Boris", "Clemens"];
        let mut out = Vec::new();
        for f in 0..40 {
            for (i, g) in given.iter().enumerate() {
                let street = if shared {
                    format!("Family Street {f}")
                } else {
                    format!("Lonely Lane {}", f * 3 + i)
                };
                let values: BTreeMap<&str, Value> = [
                    ("given_name", g.to_string()),
                    ("family_name", format!("Family{f}")),
                    ("customer_type", "person".to_string()),
                    ("birth_date", format!("19{}-0{}-1{i}", 50 + f, 1 + i)),
                    ("street", street),
                ]
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
                out.push(Profile::from_fields(rules, |f| values.get(f)));
            }
        }
        out
    }

    #[test]
    fn relatives_who_share_a_street_raise_its_u_and_strangers_do_not() {
        let rules = MatchRules::default();
        let street = index(&rules, "street");
        let exact_u = |shared: bool| {
            let profiles = families(&rules, shared);
            let refs: Vec<&Profile> = profiles.iter().collect();
            let random = estimate_u(&refs, &rules, 20_000, 7);
            let before = random.iter().find(|e| e.comparison == street).unwrap().u[0];
            let (raised, households) = with_neighbours(&refs, &rules, random);
            let e = raised.iter().find(|e| e.comparison == street).unwrap();
            assert!((e.u.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{:?}", e.u);
            (before, e.u[0], households)
        };
        // Three relatives per family, all on one street: every neighbour
        // pair agrees, while random pairs almost never do.
        let (before, after, households) = exact_u(true);
        assert!(before < 0.05, "{before}");
        assert_eq!(after, 1.0);
        assert!(households);
        // Relatives on streets of their own: nothing to raise.
        let (before, after, households) = exact_u(false);
        assert_eq!(after, before);
        assert!(!households);
    }

    #[test]
    fn u_is_the_share_of_random_pairs_at_each_level() {
        // 200 records: half companies, half persons (names are compared
        // between persons only); persons' given names from 4, family names
        // and emails all different.
        let rules = MatchRules::default();
        let profiles: Vec<Profile> = (0..200)
            .map(|i| {
                person(
                    &rules,
                    ["Anna", "Bernd", "Clara", "Dieter"][(i / 2) % 4],
                    &format!("Family{i:03}x"),
                    if i % 2 == 0 { "company" } else { "person" },
                    &format!("user{i}@example.org"),
                )
            })
            .collect();
        let refs: Vec<&Profile> = profiles.iter().collect();
        let estimates = estimate_u(&refs, &rules, 20_000, 7);
        let get = |name| {
            estimates
                .iter()
                .find(|e| e.comparison == index(&rules, name))
                .unwrap()
        };
        assert_eq!(get("email").u[0], 0.0);
        let kind = get("customer_type").u[0];
        assert!(
            (0.45..0.55).contains(&kind),
            "customer type agrees half the time: {kind}"
        );
        let given = get("given_name").u[0];
        assert!(
            (0.20..0.30).contains(&given),
            "one given name in four: {given}"
        );
        assert_eq!(
            estimates,
            estimate_u(&refs, &rules, 20_000, 7),
            "seeded draw"
        );

        let config = as_config(&estimates, &rules);
        let parsed: toml::Value = toml::from_str(&config).unwrap();
        let comparisons = parsed["match"]["comparison"].as_array().unwrap();
        let email = comparisons
            .iter()
            .find(|c| c["name"].as_str() == Some("email"))
            .unwrap();
        let u = email["levels"][0]["u"].as_float().unwrap();
        assert!((u - 5e-5).abs() < 1e-8, "email floor 1/20000: {config}");
    }

    /// Pairs drawn from known m, u and prior; some fields missing.
    fn synthetic_pairs(
        truth: &[(usize, [f64; 3], [f64; 3])],
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
                let l = if r < p[0] {
                    0
                } else if r < p[0] + p[1] {
                    1
                } else {
                    2
                };
                pattern.push((c, l));
            }
            *patterns.entry(pattern).or_default() += 1;
        }
        patterns
    }

    /// Rules with three comparisons of two levels each (and else).
    fn three_level_rules() -> MatchRules {
        let text = r#"
            default_comparisons = false
            [[comparison]]
            name = "a"
            fields = ["given_name"]
            comparator = "jaro_winkler"
            levels = [{ exact = true, m = 0.6, u = 0.1 }, { similarity = 0.9, m = 0.2, u = 0.1 }]
            [[comparison]]
            name = "b"
            fields = ["family_name"]
            comparator = "jaro_winkler"
            levels = [{ exact = true, m = 0.6, u = 0.1 }, { similarity = 0.9, m = 0.2, u = 0.1 }]
            [[comparison]]
            name = "c"
            fields = ["birth_date"]
            comparator = "date"
            levels = [{ exact = true, m = 0.6, u = 0.1 }, { similarity = 0.7, m = 0.2, u = 0.1 }]
        "#;
        let config: super::super::rules::MatchConfig = toml::from_str(text).unwrap();
        assert_eq!(config.problems(), Vec::<String>::new());
        MatchRules::from_config(&config)
    }

    #[test]
    fn em_recovers_m_and_the_prior_and_is_deterministic() {
        let rules = three_level_rules();
        let truth = [
            (0, [0.80, 0.12, 0.08], [0.02, 0.05, 0.93]),
            (1, [0.75, 0.15, 0.10], [0.01, 0.04, 0.95]),
            (2, [0.70, 0.20, 0.10], [0.001, 0.05, 0.949]),
        ];
        let lambda = 0.3;
        let patterns = synthetic_pairs(&truth, lambda);
        let u: Vec<UEstimate> = truth
            .iter()
            .map(|&(comparison, _, u)| UEstimate {
                comparison,
                compared: 1_000_000,
                u: u.to_vec(),
            })
            .collect();
        let em = estimate_m(&patterns, &u, &rules, 0.1, EM_MAX_ITERATIONS);
        assert!(em.converged, "{em:?}");
        assert_eq!(em.pairs, 40_000);
        assert!((em.lambda - lambda).abs() < 0.01, "share {}", em.lambda);
        for &(c, m, _) in &truth {
            let got = &em.m[&c];
            assert!(
                (got[0] - m[0]).abs() < 0.02 && (got[1] - m[1]).abs() < 0.02,
                "{c}: {got:?}, truth {m:?}"
            );
        }
        // The same input gives the same output, bit for bit.
        let again = estimate_m(&patterns, &u, &rules, 0.1, EM_MAX_ITERATIONS);
        assert_eq!(em.lambda.to_bits(), again.lambda.to_bits());
        assert_eq!(em.m, again.m);
        // The config holds the prior and the estimates, and is a valid
        // [match] section.
        let config = as_config_em(&u, &em, 1000, &rules);
        #[derive(serde::Deserialize)]
        struct Wrapper {
            #[serde(rename = "match")]
            matching: super::super::rules::MatchConfig,
        }
        let parsed: Wrapper = toml::from_str(&config).unwrap();
        let prior = parsed.matching.prior.unwrap();
        assert!((prior - em.prior(1000)).abs() < 1e-3 * em.prior(1000));
        let a = &parsed.matching.comparison[0];
        assert!((a.levels[0].m - em.m[&0][0]).abs() < 1e-9, "{config}");
        assert!((a.levels[0].u - 0.02).abs() < 1e-9, "{config}");
    }

    #[test]
    fn em_keeps_probabilities_off_zero_and_one() {
        // Every pair agrees on everything: m of the first level would reach 1.
        let rules = three_level_rules();
        let mut patterns = BTreeMap::new();
        patterns.insert(vec![(0, 0), (2, 0)], 100u64);
        let em = estimate_m(&patterns, &[], &rules, 0.5, 50);
        assert!(em.iterations <= 50);
        for m in em.m.values() {
            assert!(m[0] < 1.0 && m[1] > 0.0, "{m:?}");
        }
        assert!(em.lambda < 1.0);
    }
}
