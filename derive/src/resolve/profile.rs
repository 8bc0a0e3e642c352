//! What the matcher knows of a source record: its cleansed, valid values of
//! the fields that identify a customer, the blocking keys they give, and
//! the values each comparison of the rules compares, prepared once.
//! Values that failed cleansing never get here (they are flagged on the
//! golden record instead), so a bad phone cannot link two customers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compare;
use super::rules::{Comparator, MatchRules};

/// The identifying values of one source record (customer model field names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub kind: Option<String>,
    pub email: Option<String>,
    pub phones: Vec<String>,
    pub tax_id: Option<String>,
    pub given: Option<String>,
    pub family: Option<String>,
    /// The company name without legal forms, as compared and blocked on
    /// (see `compare::company_key`); kept rather than the name because
    /// every candidate pair compares it.
    pub company_key: Option<String>,
    pub birth_date: Option<String>,
    pub postcode: Option<String>,
    /// The city's letters and digits in lower case, blocked on with the
    /// family name's sound.
    pub city: Option<String>,
    pub domain: Option<String>,
    /// By comparison of the rules (same order): the values it compares,
    /// prepared for its comparator; empty when the record has none.
    pub values: Vec<Vec<String>>,
}

impl Profile {
    /// The fields blocking and the match key read, whatever the
    /// comparisons (see `MatchRules::reads`).
    pub const BLOCK_FIELDS: [&'static str; 13] = [
        "given_name",
        "family_name",
        "full_name",
        "email",
        "customer_type",
        "website",
        "phone",
        "mobile",
        "company",
        "tax_id",
        "birth_date",
        "postal_code",
        "city",
    ];

    /// From a record's cleansed valid values, looked up by field name (only
    /// fields the rules read). A record with a full name and neither given
    /// nor family name is compared on the parts of its full name.
    pub fn from_fields<'a>(
        rules: &MatchRules,
        value_of: impl Fn(&str) -> Option<&'a Value>,
    ) -> Profile {
        let plain = |f: &str| {
            value_of(f)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.trim().to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
        };
        let (split_given, split_family) = match (plain("given_name"), plain("family_name")) {
            (None, None) => plain("full_name")
                .map(|full| split_full_name(&full))
                .unwrap_or_default(),
            _ => (None, None),
        };
        let text = |f: &str| match f {
            "given_name" if split_given.is_some() => split_given.clone(),
            "family_name" if split_family.is_some() => split_family.clone(),
            _ => plain(f),
        };
        let given = text("given_name");
        let family = text("family_name");
        let email = text("email").map(|e| e.to_lowercase());
        let kind = text("customer_type");
        // A company's email domain is its own; a person's is an employer's,
        // shared with colleagues, so it identifies nobody.
        let domain = text("website")
            .and_then(|w| compare::web_domain(&w))
            .or_else(|| match kind.as_deref() {
                Some("company") => email.as_deref().and_then(compare::web_domain),
                _ => None,
            });
        let mut phones: Vec<String> = ["phone", "mobile"].iter().filter_map(|f| text(f)).collect();
        phones.sort();
        phones.dedup();
        let company_key = text("company")
            .map(|c| compare::company_key(&c))
            .filter(|k| !k.is_empty());
        let values = rules
            .comparisons
            .iter()
            .map(|c| {
                let mut vs: Vec<String> = c
                    .fields
                    .iter()
                    .filter_map(|f| text(f))
                    .filter_map(|v| {
                        prepare(c.comparator, &v, kind.as_deref(), c.only_kind.as_deref())
                    })
                    .collect();
                if c.comparator == Comparator::WebDomain {
                    // The first field that gives a domain (the website before
                    // the e-mail address).
                    vs.truncate(1);
                }
                vs.sort();
                vs.dedup();
                vs
            })
            .collect();
        Profile {
            kind,
            email,
            phones,
            tax_id: text("tax_id").map(|t| {
                t.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_uppercase)
                    .collect()
            }),
            given,
            family,
            company_key,
            birth_date: text("birth_date"),
            postcode: text("postal_code").map(|p| p.to_uppercase()),
            city: text("city")
                .map(|c| exact_key(&c))
                .filter(|c| !c.is_empty()),
            domain,
            values,
        }
    }

    pub fn is_company(&self) -> bool {
        self.kind.as_deref() == Some("company")
    }

    /// The blocking keys: records sharing one are compared. Each key says
    /// what it is built from, so unrelated values cannot collide.
    pub fn block_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(e) = &self.email {
            keys.push(format!("email:{e}"));
        }
        for p in &self.phones {
            keys.push(format!("phone:{p}"));
        }
        if let Some(t) = &self.tax_id {
            keys.push(format!("tax:{t}"));
        }
        if let Some(d) = &self.domain {
            keys.push(format!("web:{d}"));
        }
        if let Some(key) = &self.company_key {
            keys.push(format!("company:{key}"));
        }
        // Several keys per person, so that a pair with one damaged or
        // missing value still shares one: sound-alike names with the
        // postcode; the family name's sound with the city (a postcode with
        // a typo, and a given name replaced by another); both names'
        // sounds together; a name's sound with the other name's initial or
        // the birth year; the birth date with a name initial, and alone.
        // Family and given name both take each role, so that swapped names
        // still meet (not with the city: a given name's sound in a city
        // is a block of strangers, soon over `max_block` and not read).
        let names: Vec<&String> = [&self.family, &self.given].into_iter().flatten().collect();
        let sounds: Vec<String> = names
            .iter()
            .map(|n| compare::sound_key(n))
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(pc) = &self.postcode {
            for s in &sounds {
                keys.push(format!("name:{s}|{pc}"));
            }
        }
        if let (Some(family), Some(city)) = (&self.family, &self.city) {
            let s = compare::sound_key(family);
            if !s.is_empty() {
                keys.push(format!("city:{s}|{city}"));
            }
        }
        if let [a, b] = sounds.as_slice() {
            let (x, y) = if a <= b { (a, b) } else { (b, a) };
            keys.push(format!("names:{x}|{y}"));
        }
        if let (Some(family), Some(given)) = (&self.family, &self.given) {
            // The full name as written (letters and digits, any case, in
            // either order): sound keys drop digits and fold alike-sounding
            // names together, so many different names can fill one sound
            // block past `max_block` (no longer read); records with the
            // same full name still meet in this one.
            let (a, b) = (exact_key(family), exact_key(given));
            if !a.is_empty() && !b.is_empty() {
                let (x, y) = if a <= b { (a, b) } else { (b, a) };
                keys.push(format!("full:{x}|{y}"));
            }
            for (sound_of, initial_of) in [(family, given), (given, family)] {
                let s = compare::sound_key(sound_of);
                if let (false, Some(i)) = (s.is_empty(), initial(initial_of)) {
                    keys.push(format!("initial:{s}|{i}"));
                }
            }
        }
        if let Some(d) = &self.birth_date {
            keys.push(format!("born:{d}"));
            for n in &names {
                if let Some(i) = initial(n) {
                    keys.push(format!("born:{d}|{i}"));
                }
            }
            if let Some(year) = d.get(..4) {
                for s in &sounds {
                    keys.push(format!("year:{year}|{s}"));
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A name's letters and digits, lower case.
fn exact_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A value as comparator `c` compares it; `None` when it gives nothing to
/// compare (a company name of legal forms only, a website without domain).
fn prepare(
    c: Comparator,
    value: &str,
    kind: Option<&str>,
    only_kind: Option<&str>,
) -> Option<String> {
    let v = match c {
        Comparator::Email => value.to_lowercase(),
        Comparator::TaxId => value
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect(),
        Comparator::Company => compare::company_key(value),
        Comparator::WebDomain => {
            if value.contains('@') && (only_kind.is_none() || kind != only_kind) {
                return None;
            }
            compare::web_domain(value)?
        }
        Comparator::Numeric => {
            let n: f64 = value.parse().ok().filter(|n: &f64| n.is_finite())?;
            n.to_string()
        }
        Comparator::Exact
        | Comparator::JaroWinkler
        | Comparator::GivenName
        | Comparator::FamilyName
        | Comparator::Date => value.to_string(),
    };
    (!v.is_empty()).then_some(v)
}

/// Given and family name from a full name: Han names put the family name
/// first (one character, two for the few compound surnames is left to the
/// comparison), Latin-script names last.
fn split_full_name(full: &str) -> (Option<String>, Option<String>) {
    let is_han = full.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    if is_han && !full.contains(' ') {
        let mut chars = full.chars();
        let family = chars.next().map(String::from);
        let given: String = chars.collect();
        return ((!given.is_empty()).then_some(given), family);
    }
    match full.rsplit_once(' ') {
        Some((given, family)) => (Some(given.trim().to_string()), Some(family.to_string())),
        None => (None, Some(full.to_string())),
    }
}

/// First letter of a name, in Latin script (Han via pinyin), lower case.
fn initial(name: &str) -> Option<char> {
    let latin = compare::han_to_pinyin(name).unwrap_or_else(|| name.to_string());
    deunicode::deunicode(&latin)
        .chars()
        .find(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn profile(values: &BTreeMap<String, Value>) -> Profile {
        let rules = MatchRules::default();
        Profile::from_fields(&rules, |f| {
            assert!(rules.reads(f), "{f} is not read by the rules");
            values.get(f)
        })
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn emails_fold_case_and_phones_are_a_set() {
        let p = profile(&values(&[
            ("email", "Anna@Example.org"),
            ("phone", "+4930123456"),
            ("mobile", "+4930123456"),
            ("given_name", "Anna"),
            ("family_name", "Schmidt"),
            ("postal_code", "10115"),
            ("customer_type", "person"),
        ]));
        assert_eq!(p.email.as_deref(), Some("anna@example.org"));
        assert_eq!(p.phones, vec!["+4930123456".to_string()]);
    }

    #[test]
    fn swapped_names_share_a_name_block() {
        let a = profile(&values(&[
            ("given_name", "Anna"),
            ("family_name", "Schmidt"),
            ("postal_code", "10115"),
        ]));
        let b = profile(&values(&[
            ("given_name", "Schmidt"),
            ("family_name", "Anna"),
            ("postal_code", "10115"),
        ]));
        assert_eq!(a.block_keys(), b.block_keys());
    }

    #[test]
    fn a_han_full_name_splits_family_first() {
        let p = profile(&values(&[("full_name", "王小明")]));
        assert_eq!(p.family.as_deref(), Some("王"));
        assert_eq!(p.given.as_deref(), Some("小明"));
    }

    #[test]
    fn a_company_without_a_website_is_known_by_its_email_domain() {
        let p = profile(&values(&[
            ("customer_type", "company"),
            ("email", "info@acme-handel.de"),
            ("company", "ACME Handel GmbH"),
            ("tax_id", "de 123 456 789"),
        ]));
        assert_eq!(p.domain.as_deref(), Some("acme-handel.de"));
        assert_eq!(p.tax_id.as_deref(), Some("DE123456789"));
    }
}
