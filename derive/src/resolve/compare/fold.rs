//! Folding names to lower-case ASCII words, so that spellings of one name
//! that differ only in case, accents or punctuation compare equal.

use deunicode::deunicode_char;

use super::pinyin::is_han;

/// How to write German umlauts. "Müller" is "Mueller" in German
/// transliteration but "Muller" wherever the dots were just dropped; records
/// carry either, so name comparators try both (see [`Variants`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Umlaut {
    /// ä → ae, ö → oe, ü → ue.
    Expand,
    /// ä → a, ö → o, ü → u, like every other accent.
    Strip,
}

/// `s` as lower-case words separated by single spaces. Accents are folded
/// (é → e, ß → ss, Cyrillic and Greek transliterated); apostrophes and dots
/// join ("O'Brien" → "obrien", "S.p.A." → "spa", "J." → "j"); any other
/// punctuation separates words ("Hans-Peter" → "hans peter"). Han characters
/// are kept as they are: their reading depends on whether they spell a
/// surname, which only the caller knows (see `pinyin`).
pub(super) fn fold(s: &str, umlaut: Umlaut) -> String {
    let mut words = Words {
        out: String::with_capacity(s.len()),
        gap: false,
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            words.push(c.to_ascii_lowercase());
        } else if matches!(c, '\'' | '’' | 'ʼ' | '`' | '.') {
            continue;
        } else if c.is_ascii() {
            words.gap = true;
        } else if is_han(c) {
            words.push(c);
        } else {
            let folded = match (umlaut, c) {
                (Umlaut::Expand, 'ä' | 'Ä') => Some("ae"),
                (Umlaut::Expand, 'ö' | 'Ö') => Some("oe"),
                (Umlaut::Expand, 'ü' | 'Ü') => Some("ue"),
                _ => deunicode_char(c),
            };
            for f in folded.unwrap_or(" ").chars() {
                if f.is_ascii_alphanumeric() {
                    words.push(f.to_ascii_lowercase());
                } else if f != '\'' {
                    words.gap = true;
                }
            }
        }
    }
    words.out
}

/// Output of [`fold`]: a separator is written only between two words.
struct Words {
    out: String,
    gap: bool,
}

impl Words {
    fn push(&mut self, c: char) {
        if self.gap && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.gap = false;
        self.out.push(c);
    }
}

/// A name folded both ways umlauts are written. `alt` is set only when the
/// two differ, so the common ASCII name costs one fold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Variants {
    pub main: String,
    pub alt: Option<String>,
}

impl Variants {
    pub fn new(s: &str) -> Self {
        let main = fold(s, Umlaut::Expand);
        let alt = s
            .chars()
            .any(|c| matches!(c, 'ä' | 'ö' | 'ü' | 'Ä' | 'Ö' | 'Ü'))
            .then(|| fold(s, Umlaut::Strip));
        Self { main, alt }
    }

    /// A name that needs no second spelling (already ASCII, or pinyin).
    pub fn single(main: String) -> Self {
        Self { main, alt: None }
    }

    pub fn is_empty(&self) -> bool {
        self.main.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.main.as_str()).chain(self.alt.as_deref())
    }

    /// The best `score` over every pair of spellings.
    pub fn best(&self, other: &Self, score: impl Fn(&str, &str) -> f64) -> f64 {
        let mut best = 0.0f64;
        for a in self.iter() {
            for b in other.iter() {
                best = best.max(score(a, b));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_cases() {
        let cases: &[(&str, Umlaut, &str)] = &[
            ("Müller", Umlaut::Expand, "mueller"),
            ("Müller", Umlaut::Strip, "muller"),
            ("MÜLLER", Umlaut::Expand, "mueller"),
            ("Strauß", Umlaut::Strip, "strauss"),
            ("José  García", Umlaut::Strip, "jose garcia"),
            ("François", Umlaut::Expand, "francois"),
            ("O'Brien", Umlaut::Strip, "obrien"),
            ("Hans-Peter", Umlaut::Strip, "hans peter"),
            ("J.", Umlaut::Strip, "j"),
            ("S.p.A.", Umlaut::Strip, "spa"),
            ("Иванов", Umlaut::Strip, "ivanov"),
            ("王伟", Umlaut::Strip, "王伟"),
            (" - ", Umlaut::Strip, ""),
        ];
        for &(input, umlaut, want) in cases {
            assert_eq!(fold(input, umlaut), want, "{input} {umlaut:?}");
        }
    }

    #[test]
    fn variants_only_when_umlauts_differ() {
        assert_eq!(Variants::new("Schmidt").alt, None);
        let v = Variants::new("Jürgen");
        assert_eq!(v.main, "juergen");
        assert_eq!(v.alt.as_deref(), Some("jurgen"));
        let exact = |a: &str, b: &str| f64::from(u8::from(a == b));
        assert_eq!(v.best(&Variants::new("Jurgen"), exact), 1.0);
        assert_eq!(v.best(&Variants::new("Juergen"), exact), 1.0);
    }
}
