//! Person names: given names with nicknames and initials, family names with
//! umlaut spellings, swapped name parts, and Han names against pinyin.

use std::borrow::Cow;

use super::fold::{fold, Umlaut, Variants};
use super::nicknames;
use super::pinyin::{contains_han, given_pinyin, split_han_name, surname_pinyin};

/// One given name is only the other's initial ("J." vs "John"): consistent,
/// but many names share an initial.
const INITIAL_SCORE: f64 = 0.75;
/// The names match only with given and family name swapped: a common data
/// entry slip (and the usual order for Chinese names), but a slip all the same.
const SWAP_FACTOR: f64 = 0.95;
/// One name has parts the other lacks ("Hans Peter Müller" vs "Hans
/// Müller"): consistent, not proof.
const EXTRA_PART_FACTOR: f64 = 0.85;

/// Similarity of two given names in [0, 1]: 1.0 when they are variants of
/// one name (Bill/William, Sepp/Josef, see `nicknames`), `INITIAL_SCORE`
/// when one is the other's initial, else Jaro-Winkler of the folded names
/// with spaces removed ("Hans-Peter" = "Hanspeter"). Case, accents and
/// umlaut spellings (Jürgen/Juergen/Jurgen) do not count.
pub fn given_name_similarity(a: &str, b: &str) -> f64 {
    Variants::new(a).best(&Variants::new(b), folded_similarity)
}

/// The canonical form of a given name for blocking: the first group's
/// canonical name from the nickname table ("Bill" → "william"), else the
/// folded name itself ("Zoë" → "zoe"). A nickname of several names maps to
/// the first group only ("Chris" → "christopher").
pub fn canonical_given_name(name: &str) -> String {
    let folded = fold(name, Umlaut::Strip);
    match nicknames::canonical(&folded) {
        Some(canonical) => canonical.to_owned(),
        None => folded,
    }
}

/// Similarity of two persons' names given as separate given and family
/// names, in [0, 1]. Scores given names with [`given_name_similarity`] and
/// family names alike (umlauts both ways, Jaro-Winkler) and multiplies the
/// two, so a different given name with the same family name stays low. Also
/// tries the parts swapped (times `SWAP_FACTOR`). Han names are compared in
/// pinyin, given name syllables joined (张小明 matches "Xiaoming Zhang"); a
/// Han full name in one field is split after the surname. When a part is
/// missing on either side, compares the names as in [`full_name_similarity`].
pub fn person_name_similarity(given_a: &str, family_a: &str, given_b: &str, family_b: &str) -> f64 {
    let a = PersonName::new(given_a, family_a);
    let b = PersonName::new(given_b, family_b);
    if a.given.is_empty() || a.family.is_empty() || b.given.is_empty() || b.family.is_empty() {
        return align(&a.into_parts(), &b.into_parts());
    }
    let direct =
        a.given.best(&b.given, folded_similarity) * a.family.best(&b.family, folded_similarity);
    let swapped =
        a.given.best(&b.family, folded_similarity) * a.family.best(&b.given, folded_similarity);
    direct.max(SWAP_FACTOR * swapped)
}

/// Similarity of two full names written in one string each, in [0, 1]. The
/// names are split into words (a Han name into surname and given name, in
/// pinyin), each word of the shorter name is paired with its best match in
/// the other, and the product of the pairs' scores is discounted when the
/// names differ in their number of words (`EXTRA_PART_FACTOR`) or the pairs
/// cross ("Wei Wang" vs "Wang Wei", `SWAP_FACTOR`). Word scores are those of
/// [`given_name_similarity`], so nicknames and initials count here too.
pub fn full_name_similarity(a: &str, b: &str) -> f64 {
    align(&full_name_parts(a), &full_name_parts(b))
}

/// Given and family name, folded, Han in pinyin.
struct PersonName {
    given: Variants,
    family: Variants,
}

impl PersonName {
    fn new(given: &str, family: &str) -> Self {
        let (given, family) = (given.trim(), family.trim());
        let han_full_name = match (given.is_empty(), family.is_empty()) {
            (true, false) if contains_han(family) => Some(family),
            (false, true) if contains_han(given) => Some(given),
            _ => None,
        };
        if let Some(name) = han_full_name {
            let (family, given) = split_han_name(name);
            return Self {
                given: Variants::single(given_pinyin(given)),
                family: Variants::single(surname_pinyin(family)),
            };
        }
        Self {
            given: if contains_han(given) {
                Variants::single(given_pinyin(given))
            } else {
                Variants::new(given)
            },
            family: if contains_han(family) {
                Variants::single(surname_pinyin(family))
            } else {
                Variants::new(family)
            },
        }
    }

    /// The words of the name, given name first.
    fn into_parts(self) -> Vec<Variants> {
        let mut parts = words(self.given);
        parts.extend(words(self.family));
        parts
    }
}

/// A folded name split into words, keeping the two umlaut spellings paired.
fn words(name: Variants) -> Vec<Variants> {
    let alts: Vec<Option<String>> = match &name.alt {
        Some(alt) => alt.split(' ').map(|w| Some(w.to_owned())).collect(),
        None => Vec::new(),
    };
    name.main
        .split(' ')
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, w)| Variants {
            main: w.to_owned(),
            alt: alts.get(i).cloned().flatten(),
        })
        .collect()
}

/// The words of a one-string full name. A single Han word is a full name,
/// surname first; otherwise a Han word is read as a surname when it comes
/// first and as a given name after.
fn full_name_parts(name: &str) -> Vec<Variants> {
    let name = name.trim();
    if !contains_han(name) {
        return words(Variants::new(name));
    }
    if !name.contains(char::is_whitespace) {
        let (family, given) = split_han_name(name);
        return [surname_pinyin(family), given_pinyin(given)]
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(Variants::single)
            .collect();
    }
    let mut parts = Vec::new();
    for (i, word) in name.split_whitespace().enumerate() {
        if !contains_han(word) {
            parts.extend(words(Variants::new(word)));
        } else if i == 0 {
            parts.push(Variants::single(surname_pinyin(word)));
        } else {
            parts.push(Variants::single(given_pinyin(word)));
        }
    }
    parts
}

/// Pairs each word of the shorter name with its best unused match in the
/// other, best pairs first, and scores the product of the pairs (see
/// [`full_name_similarity`] for the discounts). A product, not a mean: one
/// word that does not match at all makes different persons.
fn align(a: &[Variants], b: &[Variants]) -> f64 {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return 0.0;
    }
    let scores: Vec<f64> = short
        .iter()
        .flat_map(|s| long.iter().map(move |l| s.best(l, folded_similarity)))
        .collect();
    let mut short_used = vec![false; short.len()];
    let mut long_used = vec![false; long.len()];
    let mut pairs = Vec::with_capacity(short.len());
    let mut score = 1.0;
    for _ in 0..short.len() {
        let mut best: Option<(usize, usize, f64)> = None;
        for (i, _) in short_used.iter().enumerate().filter(|(_, used)| !**used) {
            for (j, _) in long_used.iter().enumerate().filter(|(_, used)| !**used) {
                let cell = scores[i * long.len() + j];
                if best.is_none_or(|(_, _, top)| cell > top) {
                    best = Some((i, j, cell));
                }
            }
        }
        let Some((i, j, top)) = best else { break };
        short_used[i] = true;
        long_used[j] = true;
        pairs.push((i, j));
        score *= top;
    }
    if short.len() != long.len() {
        score *= EXTRA_PART_FACTOR;
    }
    pairs.sort_unstable();
    if pairs.windows(2).any(|w| w[0].1 > w[1].1) {
        score *= SWAP_FACTOR;
    }
    score
}

/// [`given_name_similarity`] on names already folded.
fn folded_similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b || nicknames::equivalent(a, b) {
        return 1.0;
    }
    if is_initial(a) || is_initial(b) {
        return if a.as_bytes()[0] == b.as_bytes()[0] {
            INITIAL_SCORE
        } else {
            0.0
        };
    }
    strsim::jaro_winkler(&without_spaces(a), &without_spaces(b))
}

/// A folded name that is a single letter, as "J." folds to.
fn is_initial(name: &str) -> bool {
    name.len() == 1
}

fn without_spaces(s: &str) -> Cow<'_, str> {
    if s.contains(' ') {
        Cow::Owned(s.replace(' ', ""))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names() {
        let cases: &[(&str, &str, f64, f64)] = &[
            ("Bill", "William", 0.95, 1.0),
            ("bob", "ROBERT", 0.95, 1.0),
            ("Liz", "Elizabeth", 0.95, 1.0),
            ("Kate", "Catherine", 0.95, 1.0),
            ("Hans", "Johannes", 0.95, 1.0),
            ("Sepp", "Josef", 0.95, 1.0),
            ("Fritz", "Friedrich", 0.95, 1.0),
            ("Grete", "Margarete", 0.95, 1.0),
            ("Nick", "Klaus", 0.95, 1.0),
            ("José", "Jose", 1.0, 1.0),
            ("Jürgen", "Juergen", 1.0, 1.0),
            ("Jürgen", "Jurgen", 1.0, 1.0),
            ("Hans-Peter", "Hanspeter", 1.0, 1.0),
            ("Johnathan", "Jonathan", 0.9, 1.0),
            ("J.", "John", 0.7, 0.8),
            ("J.", "Peter", 0.0, 0.0),
            ("Peter", "Paul", 0.0, 0.7),
            ("Michael", "Martin", 0.0, 0.7),
            ("Christopher", "Christine", 0.0, 0.95),
            ("Anna", "", 0.0, 0.0),
        ];
        for &(a, b, lo, hi) in cases {
            let s = given_name_similarity(a, b);
            assert!((lo..=hi).contains(&s), "{a} vs {b}: {s}");
            assert_eq!(s, given_name_similarity(b, a), "symmetric: {a} vs {b}");
        }
    }

    #[test]
    fn canonical_given_names() {
        let cases: &[(&str, &str)] = &[
            ("Bill", "william"),
            ("WILLIAM", "william"),
            ("Sepp", "joseph"),
            ("Jürgen", "george"),
            ("Zoë", "zoe"),
            ("Hans-Peter", "hans peter"),
        ];
        for &(name, want) in cases {
            assert_eq!(canonical_given_name(name), want, "{name}");
        }
    }

    #[test]
    fn person_names() {
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            f64,
            f64,
        );
        let cases: &[Case] = &[
            ("Hans", "Schmidt", "Hans", "Schmidt", 1.0, 1.0),
            ("Hans", "Schmidt", "hans", "SCHMIDT", 1.0, 1.0),
            ("Hans", "Schmidt", "Hans", "Schmdit", 0.9, 1.0),
            ("Hans", "Schmidt", "Schmidt", "Hans", 0.9, 0.96),
            ("Bill", "Gates", "William", "Gates", 0.95, 1.0),
            ("Anna", "Müller", "Anna", "Mueller", 1.0, 1.0),
            ("Anna", "Müller", "Anna", "Muller", 1.0, 1.0),
            ("Anna", "Mueller", "Anna", "Muller", 0.9, 1.0),
            ("J.", "Smith", "John", "Smith", 0.7, 0.8),
            ("伟", "王", "Wei", "Wang", 1.0, 1.0),
            ("", "王伟", "Wei", "Wang", 1.0, 1.0),
            ("伟", "王", "Wang", "Wei", 0.9, 1.0),
            ("小明", "张", "Xiaoming", "Zhang", 1.0, 1.0),
            ("小明", "张", "Xiao Ming", "Zhang", 1.0, 1.0),
            ("", "张小明", "Xiaoming", "Zhang", 1.0, 1.0),
            ("", "Hans Schmidt", "Hans", "Schmidt", 1.0, 1.0),
            ("Peter", "Müller", "Anna", "Müller", 0.0, 0.5),
            ("Hans", "Schmidt", "Hans", "Becker", 0.0, 0.7),
            ("Hans", "Schmidt", "Karl", "Becker", 0.0, 0.3),
            ("伟", "王", "Wei", "Zhang", 0.0, 0.8),
        ];
        for &(ga, fa, gb, fb, lo, hi) in cases {
            let s = person_name_similarity(ga, fa, gb, fb);
            assert!((lo..=hi).contains(&s), "{ga} {fa} vs {gb} {fb}: {s}");
            let r = person_name_similarity(gb, fb, ga, fa);
            assert!((s - r).abs() < 1e-12, "symmetric: {ga} {fa} vs {gb} {fb}");
        }
    }

    #[test]
    fn full_names() {
        let cases: &[(&str, &str, f64, f64)] = &[
            ("王伟", "Wang Wei", 0.9, 1.0),
            ("王伟", "Wei Wang", 0.9, 1.0),
            ("张小明", "Xiaoming Zhang", 0.9, 1.0),
            ("欧阳修", "Ouyang Xiu", 1.0, 1.0),
            ("Hans Schmidt", "Schmidt Hans", 0.9, 0.96),
            ("Hans Schmidt", "Hans Schmdit", 0.9, 1.0),
            ("Bill Gates", "William Gates", 0.95, 1.0),
            ("Hans Peter Müller", "Hans Mueller", 0.8, 0.9),
            (
                "Jürgen Müller-Lüdenscheidt",
                "Juergen Mueller Luedenscheidt",
                1.0,
                1.0,
            ),
            ("J. Smith", "John Smith", 0.7, 0.8),
            ("Peter Müller", "Anna Schulz", 0.0, 0.5),
            ("王伟", "张伟", 0.0, 0.8),
            ("", "Anna", 0.0, 0.0),
        ];
        for &(a, b, lo, hi) in cases {
            let s = full_name_similarity(a, b);
            assert!((lo..=hi).contains(&s), "{a} vs {b}: {s}");
            let r = full_name_similarity(b, a);
            assert!((s - r).abs() < 1e-12, "symmetric: {a} vs {b}");
        }
    }
}
