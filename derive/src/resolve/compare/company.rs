//! Company names: the core name without legal form and with unified
//! abbreviations, compared as sets of words.

use std::borrow::Cow;

use super::fold::{fold, Umlaut};
use super::pinyin::is_han;

/// One name only shares words with a longer one ("Siemens" vs "Siemens
/// Healthineers"): a strong hint, but a group's companies share their name
/// too. fuzzywuzzy's token_set_ratio would score 1.0 here.
const SUBSET_FACTOR: f64 = 0.85;
/// One name is the acronym of the other ("IBM" vs "International Business
/// Machines"): likely the same company, but short acronyms collide.
const ACRONYM_SCORE: f64 = 0.9;

/// Legal forms of several words, as folded and with abbreviations unified
/// (so "& Co." is "and co"). Single-word legal forms are in
/// [`is_legal_form`].
const LEGAL_PHRASES: &[&[&str]] = &[
    &["gesellschaft", "mit", "beschraenkter", "haftung"],
    &["offene", "handelsgesellschaft"],
    &["eingetragener", "kaufmann"],
    &["eingetragene", "kauffrau"],
    &["eingetragene", "genossenschaft"],
    &["eingetragener", "verein"],
    &["limited", "liability", "company"],
    &["limited", "liability", "partnership"],
    &["public", "limited", "company"],
    &["societe", "anonyme"],
    &["societa", "per", "azioni"],
    &["sociedad", "anonima"],
    &["besloten", "vennootschap"],
    &["naamloze", "vennootschap"],
    &["and", "co"],
    &["and", "cie"],
];

/// Legal-form suffixes of Chinese company names, longest first.
const HAN_LEGAL_SUFFIXES: &[&str] = &[
    "股份有限公司",
    "有限责任公司",
    "有限責任公司",
    "有限公司",
    "集团",
    "集團",
    "公司",
];

/// Words that do not count towards an acronym ("Bank of America" is BOA).
const ACRONYM_STOPWORDS: &[&str] = &[
    "and", "of", "the", "for", "fur", "fuer", "de", "der", "die", "das", "des", "du", "la", "le",
    "von", "van",
];

/// The core of a company name, for blocking and comparing: lower-case words
/// with accents folded (ä → ae), punctuation dropped, abbreviations unified
/// (Intl → international, Mfg → manufacturing, & / und → and, ...), a
/// leading "the" and trailing legal forms dropped ("Acme Intl. GmbH & Co. KG"
/// → "acme international"; "华为技术有限公司" → "华为技术"). A name that is
/// nothing but a legal form keeps its first word.
pub fn company_key(name: &str) -> String {
    let name = if name.contains('&') {
        Cow::Owned(name.replace('&', " and "))
    } else {
        Cow::Borrowed(name)
    };
    let folded = fold(&name, Umlaut::Expand);
    let mut words: Vec<&str> = Vec::new();
    for run in folded.split(' ').flat_map(script_runs) {
        let word = if run.starts_with(is_han) {
            strip_han_legal_suffixes(run)
        } else {
            unify_abbreviation(run)
        };
        if !word.is_empty() {
            words.push(word);
        }
    }
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    strip_legal_forms(&mut words);
    words.join(" ")
}

/// Similarity of two company names in [0, 1], compared by their
/// [`company_key`]s as sets of words, like fuzzywuzzy's token_set_ratio: the
/// shared words, and each name's other words after them, are compared with
/// the normalized Levenshtein similarity; word order does not count. A name
/// whose words are all in the other scores `SUBSET_FACTOR`, one that is the
/// acronym of the other's remaining words `ACRONYM_SCORE`.
pub fn company_similarity(a: &str, b: &str) -> f64 {
    company_key_similarity(&company_key(a), &company_key(b))
}

/// [`company_similarity`] of two names already made keys by
/// [`company_key`]: the matcher keeps each record's key, as every candidate
/// pair compares it.
pub fn company_key_similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b {
        return 1.0;
    }
    let a_words: Vec<&str> = a.split(' ').collect();
    let b_words: Vec<&str> = b.split(' ').collect();
    let a_set = sorted_set(&a_words);
    let b_set = sorted_set(&b_words);
    if a_set == b_set {
        return 1.0;
    }
    let only_a = |w: &&str| b_set.binary_search(w).is_err();
    let only_b = |w: &&str| a_set.binary_search(w).is_err();
    let rest_a: Vec<&str> = a_words.iter().copied().filter(only_a).collect();
    let rest_b: Vec<&str> = b_words.iter().copied().filter(only_b).collect();
    if is_acronym_of(&rest_a, &rest_b) || is_acronym_of(&rest_b, &rest_a) {
        return ACRONYM_SCORE;
    }
    let common: Vec<&str> = a_set.iter().copied().filter(|w| !only_a(w)).collect();
    let after_common = |rest: Vec<&str>| {
        let mut words = common.clone();
        words.extend(rest);
        words.join(" ")
    };
    let t0 = common.join(" ");
    let t1 = after_common(a_set.iter().copied().filter(only_a).collect());
    let t2 = after_common(b_set.iter().copied().filter(only_b).collect());
    let mut score = strsim::normalized_levenshtein(&t1, &t2);
    if !common.is_empty() {
        let subset =
            strsim::normalized_levenshtein(&t0, &t1).max(strsim::normalized_levenshtein(&t0, &t2));
        score = score.max(SUBSET_FACTOR * subset);
    }
    score
}

fn sorted_set<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let mut set = words.to_vec();
    set.sort_unstable();
    set.dedup();
    set
}

/// Whether `short` is one word spelling the initials of `long`'s words (at
/// least two), with or without its stopwords (IBM, BoA).
fn is_acronym_of(short: &[&str], long: &[&str]) -> bool {
    let [acronym] = short else {
        return false;
    };
    if !(2..=6).contains(&acronym.len())
        || long.len() < 2
        || !acronym.bytes().all(|c| c.is_ascii_alphabetic())
    {
        return false;
    }
    let initials = |skip_stopwords: bool| {
        long.iter()
            .filter(move |w| !(skip_stopwords && ACRONYM_STOPWORDS.contains(w)))
            .map(|w| w.as_bytes()[0])
    };
    initials(true).eq(acronym.bytes()) || initials(false).eq(acronym.bytes())
}

/// Splits a folded word where it changes between Han and other script
/// ("abc公司" → "abc", "公司"), since Han text has no spaces.
fn script_runs(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        let han = is_han(rest.chars().next()?);
        let end = rest.find(|c| is_han(c) != han).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

fn strip_han_legal_suffixes(mut word: &str) -> &str {
    while let Some(stripped) = HAN_LEGAL_SUFFIXES.iter().find_map(|s| word.strip_suffix(s)) {
        word = stripped;
    }
    word
}

/// One spelling for common abbreviations and their long forms.
fn unify_abbreviation(word: &str) -> &str {
    match word {
        "intl" | "internat" | "internatl" => "international",
        "mfg" | "mfrs" | "manufacturers" => "manufacturing",
        "svc" | "svcs" | "serv" | "service" => "services",
        "tech" | "techn" | "technology" | "technologie" => "technologies",
        "sys" | "system" => "systems",
        "mgmt" | "mgt" => "management",
        "assoc" | "assocs" => "associates",
        "bros" => "brothers",
        "natl" => "national",
        "hldg" | "hldgs" | "holdings" => "holding",
        "grp" => "group",
        "und" | "et" => "and",
        _ => word,
    }
}

/// Single-word legal forms, as folded ("S.p.A." is "spa", "e.K." is "ek").
/// Group words count too, like 集团: a group is rarely told apart from its
/// parent company by that word alone.
fn is_legal_form(word: &str) -> bool {
    matches!(
        word,
        "gmbh"
            | "mbh"
            | "ag"
            | "kg"
            | "ohg"
            | "kgaa"
            | "se"
            | "ek"
            | "ev"
            | "eg"
            | "gbr"
            | "ug"
            | "haftungsbeschraenkt"
            | "aktiengesellschaft"
            | "kommanditgesellschaft"
            | "ltd"
            | "limited"
            | "llc"
            | "llp"
            | "lp"
            | "plc"
            | "pty"
            | "inc"
            | "incorporated"
            | "corp"
            | "corporation"
            | "co"
            | "company"
            | "cie"
            | "sa"
            | "sarl"
            | "sas"
            | "spa"
            | "srl"
            | "sl"
            | "bv"
            | "nv"
            | "ab"
            | "oy"
            | "as"
            | "aps"
            | "group"
            | "gruppe"
            | "groupe"
    )
}

/// Drops legal forms from the end, repeatedly ("gmbh and co kg"), keeping at
/// least one word.
fn strip_legal_forms(words: &mut Vec<&str>) {
    loop {
        let n = words.len();
        let phrase = LEGAL_PHRASES
            .iter()
            .find(|p| p.len() < n && words.ends_with(p))
            .map(|p| p.len());
        let single = (n > 1 && is_legal_form(words[n - 1])).then_some(1);
        match phrase.or(single) {
            Some(k) => words.truncate(n - k),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let cases: &[(&str, &str)] = &[
            ("Acme Intl. GmbH & Co. KG", "acme international"),
            ("Siemens Aktiengesellschaft", "siemens"),
            ("Müller Gesellschaft mit beschränkter Haftung", "mueller"),
            ("Schmidt e.K.", "schmidt"),
            ("Ferrari S.p.A.", "ferrari"),
            ("The Coca-Cola Company", "coca cola"),
            ("Acme Mfg. Co., Ltd.", "acme manufacturing"),
            ("Foo UG (haftungsbeschränkt)", "foo"),
            ("Johnson & Johnson", "johnson and johnson"),
            ("Société Générale S.A.", "societe generale"),
            ("华为技术有限公司", "华为技术"),
            ("阿里巴巴集团", "阿里巴巴"),
            ("ABC公司", "abc"),
            ("AG", "ag"),
            ("", ""),
        ];
        for &(name, want) in cases {
            assert_eq!(company_key(name), want, "{name}");
        }
    }

    #[test]
    fn similarity_thresholds() {
        let cases: &[(&str, &str, f64, f64)] = &[
            ("Siemens AG", "SIEMENS Aktiengesellschaft", 0.9, 1.0),
            ("Acme Intl. GmbH", "ACME International", 0.9, 1.0),
            ("Acme Mfg. Co.", "ACME Manufacturing Company", 0.9, 1.0),
            (
                "Foo Tech Svc Ltd",
                "Foo Technologies Services Limited",
                0.9,
                1.0,
            ),
            ("Müller GmbH & Co. KG", "Mueller GmbH", 0.9, 1.0),
            ("Deutsche Bank AG", "Bank Deutsche", 0.9, 1.0),
            ("Johnson & Johnson", "Johnson and Johnson Inc.", 0.9, 1.0),
            ("IBM", "International Business Machines Corp.", 0.85, 1.0),
            (
                "IBM Deutschland GmbH",
                "International Business Machines Deutschland",
                0.85,
                1.0,
            ),
            ("BMW AG", "Bayerische Motoren Werke", 0.85, 1.0),
            ("Bank of America", "BOA", 0.85, 1.0),
            ("华为技术有限公司", "华为技术", 0.9, 1.0),
            ("Siemens", "Siemens Healthineers AG", 0.8, 0.9),
            ("Acme GmbH", "Apex GmbH", 0.0, 0.8),
            ("Acme Widgets", "Zeta Consulting", 0.0, 0.5),
            ("IBM", "Intel", 0.0, 0.5),
            ("", "Acme", 0.0, 0.0),
        ];
        for &(a, b, lo, hi) in cases {
            let s = company_similarity(a, b);
            assert!((lo..=hi).contains(&s), "{a} vs {b}: {s}");
            assert_eq!(s, company_similarity(b, a), "symmetric: {a} vs {b}");
        }
    }
}
