//! Country names and codes to ISO 3166-1 alpha-2 (`DE`). Codes and English
//! names come from the ISO list (crate `rust_iso3166`); the names people
//! actually type, in English and the languages of our source systems, come
//! from `country_names`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::country_names::VARIANTS;

/// The alpha-2 code for a country code (alpha-2, alpha-3, numeric) or name.
pub fn country(raw: &str) -> Result<String, String> {
    let key = fold(raw);
    if key.is_empty() {
        return Err("is empty".to_string());
    }
    lookup()
        .get(&key)
        .map(|code| code.to_string())
        .ok_or_else(|| "not a known country name or ISO 3166-1 code".to_string())
}

/// Folded spelling → alpha-2, built once. A BTreeMap, not a HashMap: the
/// hub replays through this and must see the same table every time.
fn lookup() -> &'static BTreeMap<String, &'static str> {
    static TABLE: OnceLock<BTreeMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = BTreeMap::new();
        // Codes first, so no name variant can shadow a code.
        for c in rust_iso3166::ALL {
            table.insert(fold(c.alpha2), c.alpha2);
            table.insert(fold(c.alpha3), c.alpha2);
            table.insert(c.numeric_str(), c.alpha2);
        }
        for c in rust_iso3166::ALL {
            table.entry(fold(c.name)).or_insert(c.alpha2);
        }
        for (code, names) in VARIANTS {
            for name in *names {
                table.entry(fold(name)).or_insert(code);
            }
        }
        table
    })
}

/// One spelling per name: accents, case, dots ("U.S.A."), apostrophes,
/// other punctuation, extra spaces and a leading "the" do not count.
fn fold(raw: &str) -> String {
    let mut plain = String::with_capacity(raw.len());
    for c in raw.nfkd().filter(|&c| !is_combining_mark(c)) {
        match c {
            '.' | '\'' | '’' => {}
            'ß' => plain.push_str("ss"),
            c if c.is_alphanumeric() => plain.extend(c.to_lowercase()),
            _ => plain.push(' '),
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let words = match words.split_first() {
        Some((&"the", rest)) if !rest.is_empty() => rest,
        _ => &words[..],
    };
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_to_alpha2() {
        let cases = [
            ("DE", "DE"),
            ("de", "DE"),
            (" DEU ", "DE"),
            ("276", "DE"),
            ("Germany", "DE"),
            ("Deutschland", "DE"),
            ("Federal Republic of Germany", "DE"),
            ("UK", "GB"),
            ("U.K.", "GB"),
            ("United Kingdom", "GB"),
            ("Great Britain", "GB"),
            ("Großbritannien", "GB"),
            ("USA", "US"),
            ("U.S.A.", "US"),
            ("United States", "US"),
            ("united states of america", "US"),
            ("China", "CN"),
            ("中国", "CN"),
            ("PRC", "CN"),
            ("People's Republic of China", "CN"),
            ("France", "FR"),
            ("Frankreich", "FR"),
            ("The Netherlands", "NL"),
            ("Holland", "NL"),
            ("Österreich", "AT"),
            ("Osterreich", "AT"),
            ("Schweiz", "CH"),
            ("España", "ES"),
            ("Turkey", "TR"),
            ("Türkiye", "TR"),
            ("South Korea", "KR"),
            ("Korea, Republic of", "KR"),
            ("Viet Nam", "VN"),
            ("Côte d'Ivoire", "CI"),
            ("ＤＥ", "DE"),
            ("日本", "JP"),
            ("Åland Islands", "AX"),
        ];
        for (raw, want) in cases {
            assert_eq!(country(raw).as_deref(), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn unknown_countries_say_so() {
        for raw in ["XX", "Atlantis", "Germany!!x", "", "  "] {
            assert!(country(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn every_variant_is_a_real_iso_code() {
        for (code, _) in VARIANTS {
            assert!(rust_iso3166::from_alpha2(code).is_some(), "{code}");
        }
    }
}
