//! Generic string similarities, case-insensitive. The other comparators build
//! on these.

use std::borrow::Cow;

/// Jaro-Winkler similarity in [0, 1], ignoring case. Rewards a shared prefix,
/// which suits names: typos cluster at the end, not the start.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    // Equal values are common (the same street in two systems), and the
    // general algorithm allocates.
    if a == b {
        return 1.0;
    }
    strsim::jaro_winkler(&lower(a), &lower(b))
}

/// `1 - levenshtein(a, b) / max(len a, len b)` in characters, ignoring case;
/// two empty strings are identical (1.0).
pub fn levenshtein_similarity(a: &str, b: &str) -> f64 {
    strsim::normalized_levenshtein(&lower(a), &lower(b))
}

/// Lower-cases only when needed: most inputs reaching the comparators are
/// already lower case, and these run millions of times.
pub(super) fn lower(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaro_winkler_thresholds() {
        let cases: &[(&str, &str, f64, f64)] = &[
            ("Schmidt", "Schmidt", 1.0, 1.0),
            ("Schmidt", "SCHMIDT", 1.0, 1.0),
            ("Schmidt", "Schmdit", 0.9, 1.0),
            ("Martha", "Marhta", 0.9, 1.0),
            ("Peter", "Paul", 0.0, 0.7),
            ("Michael", "Martin", 0.0, 0.7),
            ("", "Anna", 0.0, 0.0),
        ];
        for &(a, b, lo, hi) in cases {
            let s = jaro_winkler(a, b);
            assert!((lo..=hi).contains(&s), "{a} vs {b}: {s}");
            assert_eq!(s, jaro_winkler(b, a), "symmetric: {a} vs {b}");
        }
    }

    #[test]
    fn levenshtein_thresholds() {
        let cases: &[(&str, &str, f64)] = &[
            ("Acme", "ACME", 1.0),
            ("kitten", "sitting", 1.0 - 3.0 / 7.0),
            ("abc", "", 0.0),
            ("", "", 1.0),
            ("Müller", "Muller", 1.0 - 1.0 / 6.0),
        ];
        for &(a, b, want) in cases {
            let s = levenshtein_similarity(a, b);
            assert!((s - want).abs() < 1e-9, "{a} vs {b}: {s}, want {want}");
        }
    }

    #[test]
    fn lower_borrows_when_already_lower() {
        assert!(matches!(lower("acme gmbh"), Cow::Borrowed(_)));
        assert_eq!(lower("Acme GmbH"), "acme gmbh");
    }
}
