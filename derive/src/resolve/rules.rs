//! Match rules: the comparisons the matcher makes, each with its levels and
//! their Fellegi-Sunter m and u probabilities, the prior, the decision
//! probabilities and the block cap; declared in the `[match]` section of
//! the hub config, with defaults (`default_comparisons.toml`) that suit
//! customer data.
//!
//! A comparison compares the values of one or more canonical fields with a
//! comparator. Its levels are tried in order; the first that holds adds
//! log2(m/u) bits to the pair's score; when none holds the pair disagrees
//! and adds log2((1 - sum of m) / (1 - sum of u)). A value missing on either
//! side adds nothing. The match probability of a pair is that of the prior
//! odds times 2^score; a record links at or above `link_probability` and
//! gets a review task at or above `review_probability`.
//!
//! The prior, the probability that two records drawn at random are the same
//! customer, falls with the number of records: with `matches_per_record`
//! other records of the same customer per record (1 by default), it is
//! that over the records held when the record is matched (at least
//! `PRIOR_MIN_RECORDS`), so a fixed score means less in a larger hub. The
//! count is a function of the log position, so replay decides alike. A
//! fixed `prior` replaces it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a comparison compares two values, and which level tests it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// Equal text. Levels: `exact`.
    Exact,
    /// Jaro-Winkler similarity, case-insensitive. Levels: `exact`,
    /// `similarity`.
    JaroWinkler,
    /// Given names: nicknames, initials, accents, Han as pinyin. Levels:
    /// `exact`, `similarity`.
    GivenName,
    /// Family or full names: umlaut spellings, swapped parts, Han vs pinyin.
    /// Levels: `exact`, `similarity`.
    FamilyName,
    /// Company names without legal forms, as sets of words. Levels:
    /// `exact`, `similarity`.
    Company,
    /// ISO dates. Levels: `exact`, `day_month_swapped`, `within_days`,
    /// `similarity` (typo-aware: one digit, adjacent digits swapped, days
    /// apart).
    Date,
    /// Numbers. Levels: `exact`, `within` (absolute difference).
    Numeric,
    /// E-mail addresses, case-insensitive: the same mailbox at another
    /// provider or with a typo is similar. Levels: `exact`, `similarity`.
    Email,
    /// Tax ids without spaces and punctuation, case-insensitive. Levels:
    /// `exact`.
    TaxId,
    /// The web domain of a website; of an e-mail address only for records
    /// of the comparison's `only_kind` (a person's e-mail domain is an
    /// employer's). Levels: `exact`.
    WebDomain,
}

impl Comparator {
    fn name(self) -> &'static str {
        match self {
            Comparator::Exact => "exact",
            Comparator::JaroWinkler => "jaro_winkler",
            Comparator::GivenName => "given_name",
            Comparator::FamilyName => "family_name",
            Comparator::Company => "company",
            Comparator::Date => "date",
            Comparator::Numeric => "numeric",
            Comparator::Email => "email",
            Comparator::TaxId => "tax_id",
            Comparator::WebDomain => "web_domain",
        }
    }

    fn takes(self, test: &Test) -> bool {
        match test {
            Test::Exact => true,
            Test::Similarity(_) => matches!(
                self,
                Comparator::JaroWinkler
                    | Comparator::GivenName
                    | Comparator::FamilyName
                    | Comparator::Company
                    | Comparator::Date
                    | Comparator::Email
            ),
            Test::WithinDays(_) | Test::DayMonthSwapped | Test::OtherYear => {
                self == Comparator::Date
            }
            Test::Within(_) => self == Comparator::Numeric,
        }
    }
}

/// One level of a comparison as configured: exactly one test, and m and u.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// The values are equal (after the comparator's preparation).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exact: bool,
    /// The comparator's similarity is at least this (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// Dates at most this many days apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<u32>,
    /// Dates of one year with day and month swapped.
    #[serde(default, skip_serializing_if = "is_false")]
    pub day_month_swapped: bool,
    /// Dates with the same day and month in another year (a wrong year).
    #[serde(default, skip_serializing_if = "is_false")]
    pub other_year: bool,
    /// Numbers at most this far apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<f64>,
    /// Share of true matches at this level.
    pub m: f64,
    /// Share of unrelated pairs at this level.
    pub u: f64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A level's test, as checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Test {
    Exact,
    Similarity(f64),
    WithinDays(u32),
    DayMonthSwapped,
    OtherYear,
    Within(f64),
}

impl LevelConfig {
    /// The one test this level sets, or the problem with it.
    fn test(&self) -> Result<Test, String> {
        let mut tests = Vec::new();
        if self.exact {
            tests.push(Test::Exact);
        }
        if let Some(s) = self.similarity {
            tests.push(Test::Similarity(s));
        }
        if let Some(d) = self.within_days {
            tests.push(Test::WithinDays(d));
        }
        if self.day_month_swapped {
            tests.push(Test::DayMonthSwapped);
        }
        if self.other_year {
            tests.push(Test::OtherYear);
        }
        if let Some(x) = self.within {
            tests.push(Test::Within(x));
        }
        match tests.as_slice() {
            [t] => Ok(*t),
            [] => Err(
                "sets no test (exact, similarity, within_days, day_month_swapped, other_year or within)"
                    .to_string(),
            ),
            _ => Err("sets more than one test".to_string()),
        }
    }
}

/// One comparison as configured (`[[match.comparison]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonConfig {
    /// Shown in score explanations; a configured comparison replaces the
    /// default one of the same name.
    pub name: String,
    /// Canonical fields compared; with several, the values of all of them
    /// on each side (a pair agrees when any two agree).
    pub fields: Vec<String>,
    pub comparator: Comparator,
    /// In order: the first level that holds counts.
    pub levels: Vec<LevelConfig>,
    /// u of an exact agreement is the share of the records the hub holds
    /// that have this value (term frequency), not the level's u.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tf: bool,
    /// Another comparison whose values may have been entered in this one's
    /// fields and back (given and family name): both are compared crossed
    /// when that is clearly better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_with: Option<String>,
    /// Compared only when either record's `customer_type` is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_kind: Option<String>,
    /// Compared only when neither record's `customer_type` is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except_kind: Option<String>,
    /// Values relatives share without being one customer (an address, a
    /// landline): training counts their u among relatives as well as among
    /// random pairs, and takes the larger (`estimate::with_neighbours`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub household: bool,
}

#[derive(Deserialize)]
struct DefaultComparisons {
    comparison: Vec<ComparisonConfig>,
}

/// The comparisons made when the config declares none of its own.
pub fn default_comparisons() -> Vec<ComparisonConfig> {
    let d: DefaultComparisons = toml::from_str(include_str!("default_comparisons.toml"))
        .expect("the default comparisons parse");
    d.comparison
}

/// The `[match]` section of the hub config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Match probability at or above which a record links automatically.
    #[serde(default = "default_link_probability")]
    pub link_probability: f64,
    /// Match probability at or above which (and below the link
    /// probability) a record gets its own golden record and a review task
    /// naming the candidate.
    #[serde(default = "default_review_probability")]
    pub review_probability: f64,
    /// Probability that two records drawn at random are the same customer;
    /// unset: `matches_per_record` over the records held.
    #[serde(default)]
    pub prior: Option<f64>,
    /// Other records of the same customer a record has, on average (0.2
    /// when one record in ten is a duplicate of another; 1 when every
    /// customer is in two systems): the prior when `prior` is unset.
    #[serde(default = "default_matches_per_record")]
    pub matches_per_record: f64,
    /// Largest block the matcher reads; bigger blocks (a common name in a
    /// big city, a shared switchboard number) are not read, only counted
    /// in `mdhub_match_blocks_capped_total`.
    #[serde(default = "default_max_block")]
    pub max_block: usize,
    /// The hub trains its match model by itself (`resolve::trained`) when
    /// it first holds this many source records, then each time their
    /// count has doubled, and re-resolves the records it holds with each
    /// new model (`resolve::regroup`); 0: only when asked (`mdhub match
    /// train`). The default, 500, is where EM has seen enough duplicate
    /// pairs on the public benchmark sets to beat the configured weights.
    #[serde(default = "default_train_at")]
    pub train_at: u64,
    /// Whether the default comparisons are made (those not replaced by a
    /// configured one of the same name).
    #[serde(default = "default_true")]
    pub default_comparisons: bool,
    /// Comparisons added to (or replacing) the defaults.
    #[serde(default)]
    pub comparison: Vec<ComparisonConfig>,
    /// Keys of earlier versions, refused with the name of their successor.
    #[serde(default)]
    link: Option<toml::Value>,
    #[serde(default)]
    review: Option<toml::Value>,
    #[serde(default)]
    weights: Option<toml::Value>,
}

/// 0.95: with a trained model, the public benchmark sets lose no precision
/// between 0.99 and 0.9 and gain recall down to 0.95 (RLdata500 0.958 to
/// 0.990 F1); the generator's households cost nothing more at 0.95.
fn default_link_probability() -> f64 {
    0.95
}
fn default_review_probability() -> f64 {
    0.5
}
fn default_matches_per_record() -> f64 {
    1.0
}

/// While fewer records are held, the prior is that of this many: the first
/// records of a hub must not link on little evidence.
pub const PRIOR_MIN_RECORDS: u64 = 1_000;
fn default_max_block() -> usize {
    64
}
fn default_train_at() -> u64 {
    500
}
fn default_true() -> bool {
    true
}

impl Default for MatchConfig {
    fn default() -> Self {
        toml::from_str("").expect("an empty [match] takes every default")
    }
}

impl MatchConfig {
    /// The comparisons in force: the defaults (unless turned off) with
    /// configured ones of the same name in their place, then the other
    /// configured ones in their order.
    pub fn comparisons(&self) -> Vec<ComparisonConfig> {
        let mut out: Vec<ComparisonConfig> = if self.default_comparisons {
            default_comparisons()
        } else {
            Vec::new()
        };
        for c in &self.comparison {
            match out.iter_mut().find(|d| d.name == c.name) {
                Some(slot) => *slot = c.clone(),
                None => out.push(c.clone()),
            }
        }
        out
    }

    /// Every problem with the section, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, old, successor) in [
            (
                "link",
                &self.link,
                "match.link_probability (a match probability; the prior is match.prior \
                 or match.matches_per_record)",
            ),
            ("review", &self.review, "match.review_probability"),
            (
                "weights",
                &self.weights,
                "[[match.comparison]] sections, whose levels carry m and u",
            ),
        ] {
            if old.is_some() {
                out.push(format!("match.{key}: replaced by {successor}"));
            }
        }
        let probability = |v: f64| v > 0.0 && v < 1.0;
        for (key, v) in [
            ("link_probability", self.link_probability),
            ("review_probability", self.review_probability),
        ]
        .into_iter()
        .chain(self.prior.map(|p| ("prior", p)))
        {
            if !probability(v) {
                out.push(format!(
                    "match.{key}: {v} is not a probability between 0 and 1"
                ));
            }
        }
        if self.review_probability > self.link_probability {
            out.push(format!(
                "match.review_probability ({}) must not exceed match.link_probability ({})",
                self.review_probability, self.link_probability
            ));
        }
        if !(self.matches_per_record > 0.0 && self.matches_per_record < 1e6) {
            out.push(format!(
                "match.matches_per_record: {} must be above 0 (and sane)",
                self.matches_per_record
            ));
        }
        if self.max_block == 0 {
            out.push("match.max_block must be at least 1".to_string());
        }
        let mut seen = BTreeMap::new();
        for (i, c) in self.comparison.iter().enumerate() {
            if let Some(first) = seen.insert(c.name.as_str(), i) {
                out.push(format!(
                    "match.comparison[{i}].name: {:?} is also match.comparison[{first}]",
                    c.name
                ));
            }
        }
        let all = self.comparisons();
        for c in &all {
            let at = match self.comparison.iter().position(|x| x.name == c.name) {
                Some(i) => format!("match.comparison[{i}]"),
                None => format!("match default comparison {:?}", c.name),
            };
            out.extend(comparison_problems(c, &at, &all));
        }
        out
    }
}

fn comparison_problems(c: &ComparisonConfig, at: &str, all: &[ComparisonConfig]) -> Vec<String> {
    let mut out = Vec::new();
    if !mdhub_schema::model::is_token(&c.name) {
        out.push(format!(
            "{at}.name: {:?}: names are lower-case letters, digits and '_'",
            c.name
        ));
    }
    if c.fields.is_empty() {
        out.push(format!("{at}.fields: name at least one field"));
    }
    if c.levels.is_empty() {
        out.push(format!("{at}.levels: name at least one level"));
    }
    let (mut m_sum, mut u_sum) = (0.0, 0.0);
    for (j, l) in c.levels.iter().enumerate() {
        let at = format!("{at}.levels[{j}]");
        match l.test() {
            Err(e) => out.push(format!("{at}: {e}")),
            Ok(t) if !c.comparator.takes(&t) => out.push(format!(
                "{at}: comparator {} takes no {}",
                c.comparator.name(),
                test_key(&t)
            )),
            Ok(Test::Similarity(s)) if !(0.0..=1.0).contains(&s) => {
                out.push(format!("{at}.similarity: {s} is not between 0 and 1"))
            }
            Ok(Test::Within(x)) if x.is_nan() || x < 0.0 => {
                out.push(format!("{at}.within: {x} is not a distance"))
            }
            Ok(_) => {}
        }
        for (key, v) in [("m", l.m), ("u", l.u)] {
            if !(v > 0.0 && v < 1.0) {
                out.push(format!(
                    "{at}.{key}: {v} is not a probability between 0 and 1"
                ));
            }
        }
        m_sum += l.m;
        u_sum += l.u;
    }
    if m_sum >= 1.0 || u_sum >= 1.0 {
        out.push(format!(
            "{at}.levels: m adds up to {m_sum}, u to {u_sum}; each must stay below 1 (the rest is the disagreement level)"
        ));
    }
    if c.tf && !c.levels.first().is_some_and(|l| l.exact) {
        out.push(format!(
            "{at}.tf: term frequencies adjust an exact first level, and this comparison has none"
        ));
    }
    if let Some(other) = &c.swap_with {
        if other == &c.name || !all.iter().any(|x| &x.name == other) {
            out.push(format!(
                "{at}.swap_with: {other:?} is not another comparison"
            ));
        }
    }
    out
}

fn test_key(t: &Test) -> &'static str {
    match t {
        Test::Exact => "exact",
        Test::Similarity(_) => "similarity",
        Test::WithinDays(_) => "within_days",
        Test::DayMonthSwapped => "day_month_swapped",
        Test::OtherYear => "other_year",
        Test::Within(_) => "within",
    }
}

/// A level as the matcher uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub test: Test,
    pub m: f64,
    pub u: f64,
    /// log2(m/u), in bits.
    pub weight: f64,
}

/// A comparison as the matcher uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub fields: Vec<String>,
    pub comparator: Comparator,
    pub levels: Vec<Level>,
    /// m and u of the disagreement level (what the levels leave).
    pub else_m: f64,
    pub else_u: f64,
    pub else_weight: f64,
    pub tf: bool,
    /// See `ComparisonConfig::household`.
    pub household: bool,
    /// Index of the `swap_with` comparison.
    pub swap_with: Option<usize>,
    /// Another comparison swaps with this one and compares both.
    pub swap_target: bool,
    pub only_kind: Option<String>,
    pub except_kind: Option<String>,
}

impl Comparison {
    /// Number of levels including the disagreement level (the last).
    pub fn level_count(&self) -> usize {
        self.levels.len() + 1
    }

    /// (m, u) of level `i`, the disagreement level being `levels.len()`.
    pub fn m_u(&self, i: usize) -> (f64, f64) {
        match self.levels.get(i) {
            Some(l) => (l.m, l.u),
            None => (self.else_m, self.else_u),
        }
    }

    /// m of every level, the disagreement level last.
    pub fn m_levels(&self) -> Vec<f64> {
        (0..self.level_count()).map(|l| self.m_u(l).0).collect()
    }

    /// u of every level, the disagreement level last.
    pub fn u_levels(&self) -> Vec<f64> {
        (0..self.level_count()).map(|l| self.m_u(l).1).collect()
    }

    pub fn weight(&self, i: usize) -> f64 {
        self.levels.get(i).map_or(self.else_weight, |l| l.weight)
    }

    /// The level's name in explanations: its test, or "else".
    pub fn level_label(&self, i: usize) -> String {
        match self.levels.get(i).map(|l| l.test) {
            Some(Test::Exact) => "exact".to_string(),
            Some(Test::Similarity(s)) => format!("similarity >= {s}"),
            Some(Test::WithinDays(d)) => format!("within {d} days"),
            Some(Test::DayMonthSwapped) => "day and month swapped".to_string(),
            Some(Test::OtherYear) => "same day and month, other year".to_string(),
            Some(Test::Within(x)) => format!("within {x}"),
            None => "else".to_string(),
        }
    }
}

/// log2(m/u) with both kept off zero.
pub fn bits(m: f64, u: f64) -> f64 {
    (m.max(1e-12) / u.max(1e-12)).log2()
}

/// The rules the matcher runs with.
#[derive(Debug, Clone)]
pub struct MatchRules {
    pub link_probability: f64,
    pub review_probability: f64,
    /// A fixed prior, or none: `matches_per_record` over the records held.
    pub prior: Option<f64>,
    pub matches_per_record: f64,
    pub max_block: usize,
    /// See `MatchConfig::train_at`.
    pub train_at: u64,
    /// Agreements on `household` comparisons count once, as the largest
    /// of their weights (set by a trained model that found relatives
    /// sharing them; `TrainedModel::households`).
    pub households_once: bool,
    pub comparisons: Vec<Comparison>,
    /// The config the rules were made from (for `mdhub match estimate`).
    pub configs: Vec<ComparisonConfig>,
}

/// The score (bits, without the prior) at which a pair's match
/// probability reaches `p`, given the prior.
pub fn threshold_for(p: f64, prior: f64) -> f64 {
    (p / (1.0 - p)).log2() - (prior / (1.0 - prior)).log2()
}

/// A pair's match probability from its score and the prior.
pub fn probability(score: f64, prior: f64) -> f64 {
    let w = score + (prior / (1.0 - prior)).log2();
    1.0 / (1.0 + (-w).exp2())
}

impl MatchRules {
    /// The rules of a config that `MatchConfig::problems` found nothing
    /// wrong with.
    pub fn from_config(config: &MatchConfig) -> Self {
        let configs = config.comparisons();
        let comparisons = configs
            .iter()
            .map(|c| {
                let levels: Vec<Level> = c
                    .levels
                    .iter()
                    .map(|l| Level {
                        test: l.test().unwrap_or(Test::Exact),
                        m: l.m,
                        u: l.u,
                        weight: bits(l.m, l.u),
                    })
                    .collect();
                let else_m = 1.0 - levels.iter().map(|l| l.m).sum::<f64>();
                let else_u = 1.0 - levels.iter().map(|l| l.u).sum::<f64>();
                Comparison {
                    name: c.name.clone(),
                    fields: c.fields.clone(),
                    comparator: c.comparator,
                    levels,
                    else_m,
                    else_u,
                    else_weight: bits(else_m, else_u),
                    tf: c.tf,
                    household: c.household,
                    swap_with: c
                        .swap_with
                        .as_ref()
                        .and_then(|s| configs.iter().position(|x| &x.name == s)),
                    swap_target: configs
                        .iter()
                        .any(|x| x.swap_with.as_ref() == Some(&c.name)),
                    only_kind: c.only_kind.clone(),
                    except_kind: c.except_kind.clone(),
                }
            })
            .collect();
        MatchRules {
            link_probability: config.link_probability,
            review_probability: config.review_probability,
            prior: config.prior,
            matches_per_record: config.matches_per_record,
            max_block: config.max_block,
            train_at: config.train_at,
            households_once: false,
            comparisons,
            configs,
        }
    }

    /// The prior when `records` source records are held.
    pub fn prior_at(&self, records: u64) -> f64 {
        self.prior.unwrap_or_else(|| {
            (self.matches_per_record / records.max(PRIOR_MIN_RECORDS) as f64).min(0.5)
        })
    }

    /// The scores (bits, without the prior) at or above which a record
    /// links, and gets a review task, when `records` are held.
    pub fn thresholds(&self, records: u64) -> (f64, f64) {
        let prior = self.prior_at(records);
        (
            threshold_for(self.link_probability, prior),
            threshold_for(self.review_probability, prior),
        )
    }

    /// Does matching read field `f`? (A change of any other field leaves a
    /// record's profile as it was.)
    pub fn reads(&self, f: &str) -> bool {
        super::profile::Profile::BLOCK_FIELDS.contains(&f)
            || self
                .comparisons
                .iter()
                .any(|c| c.fields.iter().any(|x| x == f))
    }

    pub fn comparison(&self, name: &str) -> Option<&Comparison> {
        self.comparisons.iter().find(|c| c.name == name)
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

    fn parse(text: &str) -> MatchConfig {
        #[derive(Deserialize)]
        struct Wrapper {
            #[serde(rename = "match")]
            matching: MatchConfig,
        }
        toml::from_str::<Wrapper>(text).unwrap().matching
    }

    #[test]
    fn the_defaults_are_sound() {
        let c = MatchConfig::default();
        assert_eq!(c.problems(), Vec::<String>::new());
        let rules = MatchRules::default();
        let names: Vec<&str> = rules.comparisons.iter().map(|c| c.name.as_str()).collect();
        for n in [
            "given_name",
            "family_name",
            "birth_date",
            "postal_code",
            "city",
            "street",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let (link, review) = rules.thresholds(10_000);
        assert!(review < link);
    }

    #[test]
    fn weights_are_log_likelihood_ratios() {
        let rules = MatchRules::default();
        let email = rules.comparison("email").unwrap();
        assert!((email.weight(0) - (0.8f64 / 0.000_01).log2()).abs() < 1e-9);
        assert!((email.weight(1) - (0.2f64 / 0.999_99).log2()).abs() < 1e-9);
    }

    #[test]
    fn thresholds_follow_from_the_probabilities_and_the_prior() {
        let c = parse("[match]\nlink_probability = 0.9\nprior = 0.5\n");
        let rules = MatchRules::from_config(&c);
        let (link, _) = rules.thresholds(1_000_000);
        assert!((link - 9f64.log2()).abs() < 1e-12);
        assert!((probability(link, 0.5) - 0.9).abs() < 1e-12);
        // By default the prior is one match per record over the records
        // held, so the same score means less among more records.
        let default = MatchRules::default();
        assert_eq!(default.prior_at(10), 1.0 / PRIOR_MIN_RECORDS as f64);
        assert_eq!(default.prior_at(20_000), 1.0 / 20_000.0);
        let (small, _) = default.thresholds(20_000);
        let (large, _) = default.thresholds(2_000_000);
        assert!((probability(small, default.prior_at(20_000)) - 0.95).abs() < 1e-9);
        assert!(
            (large - small - 100f64.log2()).abs() < 0.01,
            "{small} {large}"
        );
    }

    #[test]
    fn a_configured_comparison_is_added_or_replaces_the_default() {
        let c = parse(
            r#"
            [match]
            [[match.comparison]]
            name = "second_given_name"
            fields = ["second_given_name"]
            comparator = "given_name"
            levels = [{ exact = true, m = 0.7, u = 0.01 }, { similarity = 0.9, m = 0.1, u = 0.01 }]
            [[match.comparison]]
            name = "postal_code"
            fields = ["postal_code"]
            comparator = "exact"
            levels = [{ exact = true, m = 0.9, u = 0.001 }]
            "#,
        );
        assert_eq!(c.problems(), Vec::<String>::new());
        let rules = MatchRules::from_config(&c);
        assert_eq!(rules.comparisons.last().unwrap().name, "second_given_name");
        let pc = rules.comparison("postal_code").unwrap();
        assert_eq!(pc.comparator, Comparator::Exact);
        assert_eq!(pc.levels.len(), 1);
        assert!(rules.reads("second_given_name"));
        assert!(!rules.reads("shoe_size"));
    }

    #[test]
    fn every_problem_is_named_with_its_key() {
        let c = parse(
            r#"
            [match]
            link = 28
            review_probability = 0.995
            prior = 0
            matches_per_record = 0
            [[match.comparison]]
            name = "region"
            fields = []
            comparator = "exact"
            swap_with = "nothing"
            tf = true
            levels = [
                { similarity = 0.9, m = 0.7, u = 0.01 },
                { exact = true, within = 3, m = 0.2, u = 1.5 },
                { m = 0.2, u = 0.01 },
            ]
            "#,
        );
        let p = c.problems().join("\n");
        for expected in [
            "match.link: replaced by match.link_probability",
            "match.prior: 0 is not a probability",
            "match.matches_per_record: 0 must be above 0",
            "match.review_probability (0.995) must not exceed match.link_probability (0.95)",
            "match.comparison[0].fields: name at least one field",
            "match.comparison[0].levels[0]: comparator exact takes no similarity",
            "match.comparison[0].levels[1]: sets more than one test",
            "match.comparison[0].levels[1].u: 1.5 is not a probability",
            "match.comparison[0].levels[2]: sets no test",
            "match.comparison[0].levels: m adds up to 1.0999",
            "match.comparison[0].tf: term frequencies adjust an exact first level",
            "match.comparison[0].swap_with: \"nothing\" is not another comparison",
        ] {
            assert!(p.contains(expected), "{expected:?} missing in:\n{p}");
        }
    }
}
