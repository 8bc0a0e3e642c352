//! Scores a pair of profiles: each comparison's outcome adds its weight
//! (Fellegi-Sunter, see `rules`), a field missing on either side adds 0.

use serde::Serialize;

use super::compare;
use super::profile::Profile;
use super::rules::{Comparison, MatchRules};

/// How one comparison came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Agree,
    Partial,
    Disagree,
}

/// One line of a score's explanation (shown on review tasks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub comparison: Comparison,
    pub outcome: Outcome,
    pub weight: f64,
}

/// Similarity at or above which names agree, and partly agree.
const NAME_AGREE: f64 = 0.93;
const NAME_PARTIAL: f64 = 0.82;
const COMPANY_AGREE: f64 = 0.90;
const COMPANY_PARTIAL: f64 = 0.75;
const STREET_AGREE: f64 = 0.90;
const DATE_PARTIAL: f64 = 0.70;

/// The pair's total score in bits, and its parts in comparison order.
pub fn score(a: &Profile, b: &Profile, rules: &MatchRules) -> (f64, Vec<Part>) {
    let parts: Vec<Part> = outcomes(a, b)
        .into_iter()
        .map(|(comparison, outcome)| {
            let w = rules.weights(comparison);
            let weight = match outcome {
                Outcome::Agree => w.agree,
                Outcome::Partial => w.partial,
                Outcome::Disagree => w.disagree,
            };
            Part {
                comparison,
                outcome,
                weight,
            }
        })
        .collect();
    let total = parts.iter().map(|p| p.weight).sum();
    (total, parts)
}

/// How each comparison comes out for the pair, in comparison order; those
/// with a field missing on either side are left out.
pub fn outcomes(a: &Profile, b: &Profile) -> Vec<(Comparison, Outcome)> {
    let mut out = Vec::with_capacity(Comparison::ALL.len());
    let mut add = |c: Comparison, outcome: Option<Outcome>| {
        if let Some(outcome) = outcome {
            out.push((c, outcome));
        }
    };
    add(
        Comparison::Email,
        both(&a.email, &b.email, |x, y| exact(x == y)),
    );
    if !a.phones.is_empty() && !b.phones.is_empty() {
        add(
            Comparison::Phone,
            Some(exact(a.phones.iter().any(|p| b.phones.contains(p)))),
        );
    }
    add(
        Comparison::TaxId,
        both(&a.tax_id, &b.tax_id, |x, y| exact(x == y)),
    );
    if a.is_company() || b.is_company() {
        add(
            Comparison::CompanyName,
            both(&a.company_key, &b.company_key, |x, y| {
                graded(
                    compare::company_key_similarity(x, y),
                    COMPANY_AGREE,
                    COMPANY_PARTIAL,
                )
            }),
        );
    } else {
        let (given, family) = names(a, b);
        add(Comparison::GivenName, given);
        add(Comparison::FamilyName, family);
    }
    add(
        Comparison::BirthDate,
        both(&a.birth_date, &b.birth_date, |x, y| {
            graded(compare::date_similarity(x, y), 1.0, DATE_PARTIAL)
        }),
    );
    add(Comparison::Address, address(a, b));
    add(
        Comparison::WebDomain,
        both(&a.domain, &b.domain, |x, y| exact(x == y)),
    );
    add(
        Comparison::CustomerType,
        both(&a.kind, &b.kind, |x, y| exact(x == y)),
    );
    out
}

fn both(
    a: &Option<String>,
    b: &Option<String>,
    f: impl Fn(&str, &str) -> Outcome,
) -> Option<Outcome> {
    Some(f(a.as_deref()?, b.as_deref()?))
}

fn exact(equal: bool) -> Outcome {
    if equal {
        Outcome::Agree
    } else {
        Outcome::Disagree
    }
}

fn graded(similarity: f64, agree: f64, partial: f64) -> Outcome {
    if similarity >= agree {
        Outcome::Agree
    } else if similarity >= partial {
        Outcome::Partial
    } else {
        Outcome::Disagree
    }
}

/// Given and family name outcomes, taking the better of the names as
/// written and swapped (given and family names are often entered in the
/// other field, especially for Chinese names).
fn names(a: &Profile, b: &Profile) -> (Option<Outcome>, Option<Outcome>) {
    let sim = |x: &Option<String>, y: &Option<String>, given: bool| -> Option<f64> {
        let (x, y) = (x.as_deref()?, y.as_deref()?);
        // The same name on both sides (most true pairs) needs no folding.
        if x == y {
            return Some(1.0);
        }
        Some(if given {
            compare::given_name_similarity(&latin(x), &latin(y))
        } else {
            compare::full_name_similarity(x, y)
        })
    };
    let straight = (
        sim(&a.given, &b.given, true),
        sim(&a.family, &b.family, false),
    );
    let swapped = (
        sim(&a.given, &b.family, false),
        sim(&a.family, &b.given, false),
    );
    let total = |(g, f): (Option<f64>, Option<f64>)| g.unwrap_or(0.0) + f.unwrap_or(0.0);
    let (g, f) = if total(swapped) > total(straight) + 0.2 {
        swapped
    } else {
        straight
    };
    (
        g.map(|s| graded(s, NAME_AGREE, NAME_PARTIAL)),
        f.map(|s| graded(s, NAME_AGREE, NAME_PARTIAL)),
    )
}

/// A given name in Latin script: Han characters as one pinyin word
/// (伟 → "wei", 小明 → "xiaoming", as pinyin given names are written).
fn latin(name: &str) -> String {
    match compare::han_to_pinyin(name) {
        Some(p) => p.replace(' ', ""),
        None => name.to_string(),
    }
}

/// Street, postcode and city as one comparison: they move together (a
/// household shares all three), so counting them apart would overstate a
/// shared address.
fn address(a: &Profile, b: &Profile) -> Option<Outcome> {
    let same_place = match (&a.postcode, &b.postcode, &a.city, &b.city) {
        (Some(x), Some(y), _, _) => Some(x == y),
        (_, _, Some(x), Some(y)) => Some(compare::jaro_winkler(x, y) >= STREET_AGREE),
        _ => None,
    };
    let same_street = match (&a.street, &b.street) {
        (Some(x), Some(y)) => Some(compare::jaro_winkler(x, y) >= STREET_AGREE),
        _ => None,
    };
    match (same_place, same_street) {
        (None, None) => None,
        (Some(true), Some(true)) => Some(Outcome::Agree),
        (Some(true), _) | (None, Some(true)) => Some(Outcome::Partial),
        _ => Some(Outcome::Disagree),
    }
}
