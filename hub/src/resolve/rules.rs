//! Match rules: the thresholds, the block cap and the Fellegi-Sunter m/u
//! probabilities of each comparison, with defaults that suit customer data
//! and overrides from the `[match]` section of the hub config.
//!
//! A comparison's outcome (agree, partly agree, disagree) adds log2(m/u) of
//! that outcome to the pair's score: m is how often true matches show the
//! outcome, u how often unrelated records do. A field missing on either side
//! adds nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The comparisons the matcher makes, in scoring order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Email,
    Phone,
    TaxId,
    GivenName,
    FamilyName,
    CompanyName,
    BirthDate,
    Address,
    WebDomain,
    CustomerType,
}

impl Comparison {
    /// The comparison's name in the config (`[match.weights.<name>]`).
    pub fn name(self) -> &'static str {
        match self {
            Comparison::Email => "email",
            Comparison::Phone => "phone",
            Comparison::TaxId => "tax_id",
            Comparison::GivenName => "given_name",
            Comparison::FamilyName => "family_name",
            Comparison::CompanyName => "company_name",
            Comparison::BirthDate => "birth_date",
            Comparison::Address => "address",
            Comparison::WebDomain => "web_domain",
            Comparison::CustomerType => "customer_type",
        }
    }

    pub const ALL: [Comparison; 10] = [
        Comparison::Email,
        Comparison::Phone,
        Comparison::TaxId,
        Comparison::GivenName,
        Comparison::FamilyName,
        Comparison::CompanyName,
        Comparison::BirthDate,
        Comparison::Address,
        Comparison::WebDomain,
        Comparison::CustomerType,
    ];

    /// Default m and u for (agree, partly agree); disagreement takes what
    /// is left (1 - m_agree - m_partial, 1 - u_agree - u_partial).
    fn default_probabilities(self) -> Probabilities {
        let p = |m_agree, m_partial, u_agree, u_partial| Probabilities {
            m_agree,
            m_partial,
            u_agree,
            u_partial,
        };
        match self {
            // People keep a private and a work address: a differing email
            // says little, an equal one says much.
            Comparison::Email => p(0.80, 0.0, 0.000_01, 0.0),
            // Landlines are shared by households and offices.
            Comparison::Phone => p(0.70, 0.0, 0.001, 0.0),
            Comparison::TaxId => p(0.97, 0.0, 0.000_001, 0.0),
            Comparison::GivenName => p(0.88, 0.08, 0.01, 0.02),
            Comparison::FamilyName => p(0.88, 0.08, 0.003, 0.01),
            Comparison::CompanyName => p(0.85, 0.10, 0.001, 0.01),
            Comparison::BirthDate => p(0.88, 0.09, 0.000_3, 0.002),
            Comparison::Address => p(0.75, 0.17, 0.000_5, 0.02),
            Comparison::WebDomain => p(0.80, 0.0, 0.000_5, 0.0),
            Comparison::CustomerType => p(0.99, 0.0, 0.5, 0.0),
        }
    }
}

/// Probabilities of one comparison's outcomes among true matches (m) and
/// among unrelated pairs (u).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probabilities {
    pub m_agree: f64,
    #[serde(default)]
    pub m_partial: f64,
    pub u_agree: f64,
    #[serde(default)]
    pub u_partial: f64,
}

/// The score each outcome adds, in bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub agree: f64,
    pub partial: f64,
    pub disagree: f64,
}

impl Probabilities {
    fn weights(&self) -> Weights {
        let bits = |m: f64, u: f64| (m.max(1e-9) / u.max(1e-9)).log2();
        Weights {
            agree: bits(self.m_agree, self.u_agree),
            partial: bits(self.m_partial, self.u_partial),
            disagree: bits(
                1.0 - self.m_agree - self.m_partial,
                1.0 - self.u_agree - self.u_partial,
            ),
        }
    }

    fn problems(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (what, v) in [
            ("m_agree", self.m_agree),
            ("m_partial", self.m_partial),
            ("u_agree", self.u_agree),
            ("u_partial", self.u_partial),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!(
                    "match.weights.{name}.{what}: {v} is not a probability"
                ));
            }
        }
        if self.m_agree + self.m_partial > 1.0 || self.u_agree + self.u_partial > 1.0 {
            out.push(format!("match.weights.{name}: agree + partial exceeds 1"));
        }
        out
    }
}

/// The `[match]` section of the hub config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Score (bits) at or above which a record links automatically.
    #[serde(default = "default_link")]
    pub link: f64,
    /// Score at or above which (and below `link`) a record gets its own
    /// golden record and a review task naming the candidate.
    #[serde(default = "default_review")]
    pub review: f64,
    /// Largest block the matcher reads; bigger blocks (a common name in a
    /// big city, a shared switchboard number) are capped and counted in
    /// `mdhub_match_blocks_capped_total`.
    #[serde(default = "default_max_block")]
    pub max_block: usize,
    /// m/u overrides per comparison, e.g. `[match.weights.phone]`.
    #[serde(default)]
    pub weights: BTreeMap<Comparison, Probabilities>,
}

fn default_link() -> f64 {
    28.0
}
fn default_review() -> f64 {
    16.0
}
fn default_max_block() -> usize {
    64
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            link: default_link(),
            review: default_review(),
            max_block: default_max_block(),
            weights: BTreeMap::new(),
        }
    }
}

impl MatchConfig {
    /// Every problem with the section, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.review.is_nan() || self.link.is_nan() || self.review > self.link {
            out.push(format!(
                "match.review ({}) must not exceed match.link ({})",
                self.review, self.link
            ));
        }
        if self.max_block == 0 {
            out.push("match.max_block must be at least 1".to_string());
        }
        for (c, p) in &self.weights {
            out.extend(p.problems(c.name()));
        }
        out
    }
}

/// The rules the matcher runs with.
#[derive(Debug, Clone)]
pub struct MatchRules {
    pub link: f64,
    pub review: f64,
    pub max_block: usize,
    probabilities: BTreeMap<Comparison, Probabilities>,
    weights: BTreeMap<Comparison, Weights>,
}

impl MatchRules {
    pub fn from_config(config: &MatchConfig) -> Self {
        let probabilities: BTreeMap<Comparison, Probabilities> = Comparison::ALL
            .iter()
            .map(|&c| {
                let p = config
                    .weights
                    .get(&c)
                    .copied()
                    .unwrap_or_else(|| c.default_probabilities());
                (c, p)
            })
            .collect();
        let weights = probabilities
            .iter()
            .map(|(&c, p)| (c, p.weights()))
            .collect();
        MatchRules {
            link: config.link,
            review: config.review,
            max_block: config.max_block,
            probabilities,
            weights,
        }
    }

    /// The m/u probabilities in force for `c` (configured or default).
    pub fn probabilities(&self, c: Comparison) -> Probabilities {
        self.probabilities[&c]
    }

    pub fn weights(&self, c: Comparison) -> Weights {
        self.weights[&c]
    }
}

impl Default for MatchRules {
    fn default() -> Self {
        MatchRules::from_config(&MatchConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_log_likelihood_ratios() {
        let w = Probabilities {
            m_agree: 0.8,
            m_partial: 0.0,
            u_agree: 0.01,
            u_partial: 0.0,
        }
        .weights();
        assert!((w.agree - (80f64).log2()).abs() < 1e-9);
        assert!((w.disagree - (0.2f64 / 0.99).log2()).abs() < 1e-9);
    }

    #[test]
    fn names_are_the_config_keys() {
        for c in Comparison::ALL {
            let serde_name = serde_json::to_value(c).unwrap();
            assert_eq!(serde_name.as_str(), Some(c.name()));
        }
    }

    #[test]
    fn bad_probabilities_and_thresholds_are_named() {
        let mut c = MatchConfig {
            review: 30.0,
            ..Default::default()
        };
        c.weights.insert(
            Comparison::Phone,
            Probabilities {
                m_agree: 1.5,
                m_partial: 0.0,
                u_agree: 0.1,
                u_partial: 0.0,
            },
        );
        let p = c.problems().join("\n");
        assert!(p.contains("match.review"), "{p}");
        assert!(p.contains("match.weights.phone.m_agree"), "{p}");
    }
}
