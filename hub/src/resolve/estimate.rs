//! Estimating the u probabilities from the data: how often two unrelated
//! records agree on each comparison. Pairs drawn at random from a large set
//! of records are almost all unrelated, so the share of random pairs that
//! agree (or partly agree) is u, the way Fellegi-Sunter tools commonly
//! estimate it. The m probabilities need known matches and stay as
//! configured.
//!
//! The draw is seeded, so the same records give the same estimate.

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
}
