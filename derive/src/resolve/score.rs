//! Scores a pair of profiles: each comparison of the rules (see `rules`)
//! finds the first of its levels that holds and adds that level's weight;
//! a comparison with a value missing on either side adds 0. An exact
//! agreement of a `tf` comparison weighs by how rare the shared value is
//! among the records the hub holds (`Terms`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::compare;
use super::profile::Profile;
use super::rules::{bits, Comparator, Comparison, MatchRules, Test};

/// How one comparison came out, coarsely: its first level, a later level,
/// or none (disagreement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Agree,
    Partial,
    Disagree,
}

/// One line of a score's explanation (shown on review tasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub comparison: String,
    /// The level that held ("exact", "similarity >= 0.9", ..., "else").
    pub level: String,
    pub outcome: Outcome,
    pub weight: f64,
}

/// One comparison's result within a score: indices into the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub comparison: usize,
    pub level: usize,
    pub weight: f64,
}

impl Scored {
    /// The explanation line, with the names the rules give.
    pub fn part(&self, rules: &MatchRules) -> Part {
        let c = &rules.comparisons[self.comparison];
        Part {
            comparison: c.name.clone(),
            level: c.level_label(self.level),
            outcome: if self.level == 0 {
                Outcome::Agree
            } else if self.level < c.levels.len() {
                Outcome::Partial
            } else {
                Outcome::Disagree
            },
            weight: self.weight,
        }
    }
}

/// How often each value of the `tf` comparisons occurs among the records
/// the matcher holds. Kept by the resolver as records come and change, in
/// log order, so it is a function of the log position; read by lookup
/// only.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Terms {
    /// By comparison; empty for comparisons without `tf`.
    tables: Vec<TermTable>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TermTable {
    counts: HashMap<String, u64>,
    /// Records with a value for the comparison.
    records: u64,
}

/// Records' worth of the configured u that the frequency of a value is
/// mixed with: while few records are held, a value's share says little,
/// and the configured u stands; with many, the share decides.
const TF_PSEUDO_RECORDS: f64 = 100.0;

impl Terms {
    pub fn new(rules: &MatchRules) -> Terms {
        Terms {
            tables: rules
                .comparisons
                .iter()
                .map(|_| TermTable::default())
                .collect(),
        }
    }

    /// Counts `profile`'s values in (`add`) or out (`!add`).
    pub fn count(&mut self, rules: &MatchRules, profile: &Profile, add: bool) {
        for (i, c) in rules.comparisons.iter().enumerate() {
            let values = &profile.values[i];
            if !c.tf || values.is_empty() {
                continue;
            }
            let t = &mut self.tables[i];
            if add {
                t.records += 1;
            } else {
                t.records = t.records.saturating_sub(1);
            }
            for v in values {
                if add {
                    *t.counts.entry(v.clone()).or_default() += 1;
                } else if let Some(n) = t.counts.get_mut(v) {
                    *n -= 1;
                    if *n == 0 {
                        t.counts.remove(v);
                    }
                }
            }
        }
    }

    /// u of an exact agreement on `value` in comparison `c` whose level u
    /// is `u`: the value's share among the records with a value, mixed
    /// with `u` as `TF_PSEUDO_RECORDS` records.
    pub fn u(&self, c: usize, value: &str, u: f64) -> f64 {
        let Some(t) = self.tables.get(c) else {
            return u;
        };
        let n = t.counts.get(value).copied().unwrap_or(0) as f64;
        (n + TF_PSEUDO_RECORDS * u) / (t.records as f64 + TF_PSEUDO_RECORDS)
    }
}

/// The pair's total score in bits (without the prior), and its parts in
/// comparison order. `terms`: `None` scores without term frequencies.
pub fn score(
    a: &Profile,
    b: &Profile,
    rules: &MatchRules,
    terms: Option<&Terms>,
) -> (f64, Vec<Scored>) {
    let mut parts = Vec::with_capacity(rules.comparisons.len());
    for (i, level, value) in levels(a, b, rules) {
        let c = &rules.comparisons[i];
        let weight = match (terms, value) {
            (Some(t), Some(v)) if c.tf && level == 0 => {
                bits(c.levels[0].m, t.u(i, v, c.levels[0].u))
            }
            _ => c.weight(level),
        };
        parts.push(Scored {
            comparison: i,
            level,
            weight,
        });
    }
    if rules.households_once {
        count_household_once(&mut parts, rules);
    }
    let total = parts.iter().map(|p| p.weight).sum();
    (total, parts)
}

/// Relatives share an address and a landline, so agreeing on the street,
/// the postal code, the city and the phone is one fact (one household),
/// not four: of the agreements on `household` comparisons only the one of
/// largest weight counts, the others weigh 0. Disagreements still count.
fn count_household_once(parts: &mut [Scored], rules: &MatchRules) {
    let household = |p: &Scored| rules.comparisons[p.comparison].household && p.weight > 0.0;
    let largest = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| household(p))
        .max_by(|a, b| a.1.weight.total_cmp(&b.1.weight).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i);
    for (i, p) in parts.iter_mut().enumerate() {
        if household(p) && Some(i) != largest {
            p.weight = 0.0;
        }
    }
}

/// The outcome pattern of a pair: (comparison, level) of each comparison
/// made, in comparison order (the disagreement level is `levels.len()`).
pub type Pattern = Vec<(usize, usize)>;

pub fn pattern(a: &Profile, b: &Profile, rules: &MatchRules) -> Pattern {
    levels(a, b, rules)
        .into_iter()
        .map(|(c, l, _)| (c, l))
        .collect()
}

/// (comparison, level, the value both share when the level is exact) of
/// each comparison made, in comparison order.
fn levels<'p>(
    a: &'p Profile,
    b: &'p Profile,
    rules: &MatchRules,
) -> Vec<(usize, usize, Option<&'p str>)> {
    let mut out = Vec::with_capacity(rules.comparisons.len());
    let kind_is = |k: &str| a.kind.as_deref() == Some(k) || b.kind.as_deref() == Some(k);
    for (i, c) in rules.comparisons.iter().enumerate() {
        if c.only_kind.as_deref().is_some_and(|k| !kind_is(k))
            || c.except_kind.as_deref().is_some_and(kind_is)
            || c.swap_target
        {
            continue;
        }
        let (va, vb) = (&a.values[i], &b.values[i]);
        match c.swap_with {
            Some(j) => {
                let other = &rules.comparisons[j];
                let (wa, wb) = (&a.values[j], &b.values[j]);
                let sim = |cmp: Comparator, x: &[String], y: &[String]| -> f64 {
                    best_similarity(cmp, x, y).unwrap_or(0.0)
                };
                let straight = sim(c.comparator, va, vb) + sim(other.comparator, wa, wb);
                let swapped = sim(other.comparator, va, wb) + sim(other.comparator, wa, vb);
                let (mine, theirs) = if swapped > straight + 0.2 {
                    (
                        level_of(c, other.comparator, va, wb),
                        level_of(other, other.comparator, wa, vb),
                    )
                } else {
                    (
                        level_of(c, c.comparator, va, vb),
                        level_of(other, other.comparator, wa, wb),
                    )
                };
                if let Some((l, v)) = mine {
                    out.push((i, l, v));
                }
                if let Some((l, v)) = theirs {
                    out.push((j, l, v));
                }
            }
            None => {
                if let Some((l, v)) = level_of(c, c.comparator, va, vb) {
                    out.push((i, l, v));
                }
            }
        }
    }
    out.sort_by_key(|(i, _, _)| *i);
    out
}

/// The first level of `c` that holds for any pair of values (similarity by
/// `cmp`), with the shared value when it is an exact level; `None` when
/// either side has no value.
fn level_of<'p>(
    c: &Comparison,
    cmp: Comparator,
    xs: &'p [String],
    ys: &[String],
) -> Option<(usize, Option<&'p str>)> {
    if xs.is_empty() || ys.is_empty() {
        return None;
    }
    let mut best = (c.levels.len(), None);
    for x in xs {
        for y in ys {
            let mut similarity = None;
            for (l, level) in c.levels.iter().enumerate().take(best.0) {
                let holds = match level.test {
                    Test::Exact => x == y,
                    Test::Similarity(t) => {
                        *similarity.get_or_insert_with(|| similarity_of(cmp, x, y)) >= t
                    }
                    Test::WithinDays(d) => compare::days_apart(x, y).is_some_and(|n| n <= d.into()),
                    Test::DayMonthSwapped => compare::day_month_swapped(x, y),
                    Test::OtherYear => compare::other_year(x, y),
                    Test::Within(d) => match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(p), Ok(q)) => (p - q).abs() <= d,
                        _ => false,
                    },
                };
                if holds {
                    best = (l, (level.test == Test::Exact).then_some(x.as_str()));
                    break;
                }
            }
        }
    }
    Some(best)
}

fn best_similarity(cmp: Comparator, xs: &[String], ys: &[String]) -> Option<f64> {
    xs.iter()
        .flat_map(|x| ys.iter().map(move |y| similarity_of(cmp, x, y)))
        .reduce(f64::max)
}

/// The comparator's similarity of two prepared values in [0, 1].
fn similarity_of(cmp: Comparator, x: &str, y: &str) -> f64 {
    if x == y {
        return 1.0;
    }
    match cmp {
        Comparator::JaroWinkler => compare::jaro_winkler(x, y),
        Comparator::GivenName => compare::given_name_similarity(&latin(x), &latin(y)),
        Comparator::FamilyName => compare::full_name_similarity(x, y),
        Comparator::Company => compare::company_key_similarity(x, y),
        Comparator::Date => compare::date_similarity(x, y),
        Comparator::Email => compare::email_similarity(x, y),
        Comparator::Exact | Comparator::Numeric | Comparator::TaxId | Comparator::WebDomain => 0.0,
    }
}

/// A given name in Latin script: Han characters as one pinyin word
/// (伟 → "wei", 小明 → "xiaoming", as pinyin given names are written).
fn latin(name: &str) -> String {
    match compare::han_to_pinyin(name) {
        Some(p) => p.replace(' ', ""),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::rules::MatchConfig;
    use serde_json::Value;

    fn profile(rules: &MatchRules, pairs: &[(&str, &str)]) -> Profile {
        let values: std::collections::BTreeMap<&str, Value> = pairs
            .iter()
            .map(|(k, v)| (*k, Value::String(v.to_string())))
            .collect();
        Profile::from_fields(rules, |f| values.get(f))
    }

    fn level_of_named(rules: &MatchRules, parts: &[Scored], name: &str) -> Option<String> {
        parts
            .iter()
            .map(|p| p.part(rules))
            .find(|p| p.comparison == name)
            .map(|p| p.level)
    }

    #[test]
    fn with_households_an_address_and_landline_count_once() {
        let mut rules = MatchRules::default();
        let person = |given: &str, mobile: &str| {
            profile(
                &rules,
                &[
                    ("customer_type", "person"),
                    ("given_name", given),
                    ("family_name", "Evans"),
                    ("mobile", mobile),
                    ("phone", "+441419463461"),
                    ("postal_code", "G3 5RB"),
                    ("city", "Glasgow"),
                    ("street", "34 Station Road"),
                ],
            )
        };
        let (jennifer, matthew) = (
            person("Jennifer", "+447700964505"),
            person("Matthew", "+447800707058"),
        );
        let (summed, parts) = score(&jennifer, &matthew, &rules, None);
        let household = |parts: &[Scored]| -> Vec<f64> {
            parts
                .iter()
                .filter(|p| rules.comparisons[p.comparison].household)
                .map(|p| p.weight)
                .collect()
        };
        let each = household(&parts);
        assert_eq!(each.len(), 4, "phone, postal code, city, street: {each:?}");
        assert!(each.iter().all(|w| *w > 0.0));
        rules.households_once = true;
        let (once, parts) = score(&jennifer, &matthew, &rules, None);
        let largest = each.iter().cloned().fold(f64::MIN, f64::max);
        let rest: f64 = each.iter().sum::<f64>() - largest;
        assert!(
            (summed - once - rest).abs() < 1e-9,
            "{summed} {once} {rest}"
        );
        // The parts still add up to the score: the others weigh 0.
        assert_eq!(household(&parts).iter().filter(|w| **w == 0.0).count(), 3);
        assert!((parts.iter().map(|p| p.weight).sum::<f64>() - once).abs() < 1e-9);
        // A disagreement still counts in full.
        let moved = profile(
            &rules,
            &[
                ("customer_type", "person"),
                ("given_name", "Jennifer"),
                ("family_name", "Evans"),
                ("postal_code", "EH1 1AA"),
                ("city", "Edinburgh"),
                ("street", "34 Station Road"),
            ],
        );
        let (_, parts) = score(&jennifer, &moved, &rules, None);
        assert!(household(&parts).iter().any(|w| *w < 0.0), "{parts:?}");
    }

    #[test]
    fn a_postcode_typo_leaves_street_and_city_agreeing() {
        let rules = MatchRules::default();
        let a = profile(
            &rules,
            &[
                ("postal_code", "10115"),
                ("city", "Berlin"),
                ("street", "Hauptstraße 5"),
            ],
        );
        let b = profile(
            &rules,
            &[
                ("postal_code", "10151"),
                ("city", "Berlin"),
                ("street", "Hauptstraße 5"),
            ],
        );
        let (_, parts) = score(&a, &b, &rules, None);
        assert_eq!(
            level_of_named(&rules, &parts, "street").as_deref(),
            Some("exact")
        );
        assert_eq!(
            level_of_named(&rules, &parts, "city").as_deref(),
            Some("exact")
        );
        assert_ne!(
            level_of_named(&rules, &parts, "postal_code").as_deref(),
            Some("exact")
        );
    }

    #[test]
    fn dates_agree_by_level_and_a_missing_value_adds_nothing() {
        let rules = MatchRules::default();
        let born = |d: &str| profile(&rules, &[("birth_date", d)]);
        let level = |a: &str, b: &str| {
            let (_, parts) = score(&born(a), &born(b), &rules, None);
            level_of_named(&rules, &parts, "birth_date")
        };
        assert_eq!(level("1980-03-04", "1980-03-04").as_deref(), Some("exact"));
        assert_eq!(
            level("1980-03-04", "1980-04-03").as_deref(),
            Some("day and month swapped")
        );
        assert_eq!(
            level("1980-03-04", "1980-03-05").as_deref(),
            Some("similarity >= 0.7")
        );
        assert_eq!(level("1980-03-04", "1955-11-23").as_deref(), Some("else"));
        let (s, parts) = score(&born("1980-03-04"), &profile(&rules, &[]), &rules, None);
        assert_eq!((s, parts.len()), (0.0, 0));
    }

    #[test]
    fn swapped_names_are_compared_crossed() {
        let rules = MatchRules::default();
        let a = profile(
            &rules,
            &[("given_name", "Anna"), ("family_name", "Schmidt")],
        );
        let b = profile(
            &rules,
            &[("given_name", "Schmidt"), ("family_name", "Anna")],
        );
        let (_, parts) = score(&a, &b, &rules, None);
        assert_eq!(
            level_of_named(&rules, &parts, "given_name").as_deref(),
            Some("exact")
        );
        assert_eq!(
            level_of_named(&rules, &parts, "family_name").as_deref(),
            Some("exact")
        );
    }

    #[test]
    fn a_model_field_is_matched_by_config_alone() {
        let config: MatchConfig = toml::from_str(
            r#"
            [[comparison]]
            name = "street_number"
            fields = ["street_number"]
            comparator = "numeric"
            levels = [{ exact = true, m = 0.9, u = 0.01 }, { within = 2, m = 0.05, u = 0.04 }]
            "#,
        )
        .unwrap();
        assert_eq!(config.problems(), Vec::<String>::new());
        let rules = MatchRules::from_config(&config);
        assert!(rules.reads("street_number"));
        let number = |n: &str| profile(&rules, &[("street_number", n)]);
        let (exact, _) = score(&number("12"), &number("12.0"), &rules, None);
        let (near, _) = score(&number("12"), &number("14"), &rules, None);
        let (far, _) = score(&number("12"), &number("90"), &rules, None);
        assert!((exact - (0.9f64 / 0.01).log2()).abs() < 1e-9);
        assert!((near - (0.05f64 / 0.04).log2()).abs() < 1e-9);
        assert!((far - (0.05f64 / 0.95).log2()).abs() < 1e-9);
    }

    #[test]
    fn a_rare_shared_name_weighs_more_than_a_common_one_and_counts_go_both_ways() {
        let rules = MatchRules::default();
        let family = rules
            .comparisons
            .iter()
            .position(|c| c.name == "family_name")
            .unwrap();
        let mut terms = Terms::new(&rules);
        let people: Vec<Profile> = (0..1000)
            .map(|i| {
                let name = if i % 10 == 0 {
                    "Smith".to_string()
                } else {
                    format!("Rare{i}")
                };
                profile(&rules, &[("family_name", &name)])
            })
            .collect();
        for p in &people {
            terms.count(&rules, p, true);
        }
        let weight = |terms: &Terms, name: &str| {
            let p = profile(&rules, &[("family_name", name)]);
            let (s, _) = score(&p, &p, &rules, Some(terms));
            s
        };
        let (common, rare) = (weight(&terms, "Smith"), weight(&terms, "Rare7"));
        let untouched = rules.comparisons[family].weight(0);
        assert!(
            common < untouched && untouched < rare,
            "{common} {untouched} {rare}"
        );
        // Counting every record out again leaves the configured u.
        for p in &people {
            terms.count(&rules, p, false);
        }
        assert_eq!(terms.u(family, "Smith", 0.002), 0.002);
        assert!((weight(&terms, "Smith") - untouched).abs() < 1e-9);
    }
}
