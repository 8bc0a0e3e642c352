//! Sound-alike keys for blocking: names that sound the same share a key
//! (Meyer/Maier, Müller/Mueller), so "sound key + postcode" finds them.

use rphonetic::{DoubleMetaphone, Encoder};

use super::fold::{fold, Umlaut};
use super::pinyin::{contains_han, split_han_name, surname_pinyin};

/// The Double Metaphone primary code of each word of `name`, separated by
/// spaces ("Hans Müller" → "HNS MLR"; codes are at most four letters).
/// Accents are folded first (Double Metaphone knows only ASCII). A Han name
/// is keyed by the pinyin of its surname, so 王伟 shares "Wang"'s key; pass
/// family names alone to key persons by family name.
pub fn sound_key(name: &str) -> String {
    let encoder = DoubleMetaphone::default();
    let name = name.trim();
    if contains_han(name) {
        let first_word = name.split_whitespace().next().unwrap_or(name);
        let (surname, _) = split_han_name(first_word);
        return encoder.encode(&surname_pinyin(surname));
    }
    let folded = fold(name, Umlaut::Strip);
    let mut key = String::with_capacity(folded.len());
    for code in folded.split(' ').map(|word| encoder.encode(word)) {
        if code.is_empty() {
            continue;
        }
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(&code);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key() {
        let groups: &[&[&str]] = &[
            &["Müller", "Mueller", "MULLER", "Möller"],
            &["Meyer", "Maier", "Mayer", "Meier"],
            &["Schmidt", "Schmitt", "Schmid"],
            &["Strauß", "Strauss"],
            &["王伟", "王", "Wang", "wang"],
            &["欧阳修", "Ouyang"],
            &["Hans Müller", "hans mueller"],
        ];
        for names in groups {
            let key = sound_key(names[0]);
            assert!(!key.is_empty(), "{}", names[0]);
            for name in names.iter() {
                assert_eq!(sound_key(name), key, "{name} vs {}", names[0]);
            }
        }
    }

    #[test]
    fn different_key() {
        let pairs: &[(&str, &str)] = &[
            ("Müller", "Schmidt"),
            ("王伟", "张伟"),
            ("Wang", "Zhang"),
            ("Becker", "Bauer"),
        ];
        for &(a, b) in pairs {
            assert_ne!(sound_key(a), sound_key(b), "{a} vs {b}");
        }
    }

    #[test]
    fn empty_and_unencodable() {
        assert_eq!(sound_key(""), "");
        assert_eq!(sound_key(" - "), "");
        assert_eq!(sound_key("Hans Müller"), "HNS MLR");
    }
}
