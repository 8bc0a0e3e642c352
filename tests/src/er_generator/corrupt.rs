//! The small damage that data entry does to text: one-key typos,
//! transposed letters, umlauts spelled out, abbreviated street types. Han
//! text is left alone (keyboard typos there are whole wrong characters, a
//! different problem).

use super::rng::Rng;

const KEYBOARD_ROWS: [&str; 3] = ["qwertzuiop", "asdfghjkl", "yxcvbnm"];

fn is_han_text(s: &str) -> bool {
    s.chars().any(|c| c as u32 >= 0x2E80)
}

/// A letter next to `c` on a German keyboard (or `c`'s neighbour in the
/// alphabet for letters outside the three rows).
fn neighbour(c: char, rng: &mut Rng) -> char {
    let lower = c.to_ascii_lowercase();
    let replacement = KEYBOARD_ROWS
        .iter()
        .find_map(|row| {
            let i = row.find(lower)?;
            let bytes = row.as_bytes();
            let j = if i == 0 || (i + 1 < bytes.len() && rng.chance(0.5)) {
                i + 1
            } else {
                i - 1
            };
            Some(bytes[j] as char)
        })
        .unwrap_or('e');
    if c.is_uppercase() {
        replacement.to_ascii_uppercase()
    } else {
        replacement
    }
}

/// One substitution, deletion or insertion at a letter of `s`.
pub fn typo(s: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = s.chars().collect();
    let letters: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_alphabetic())
        .collect();
    if letters.len() < 3 || is_han_text(s) {
        return s.to_string();
    }
    let at = letters[rng.below(letters.len())];
    let mut out = chars;
    match rng.below(3) {
        0 => out[at] = neighbour(out[at], rng),
        1 => {
            out.remove(at);
        }
        _ => {
            let extra = neighbour(out[at], rng).to_ascii_lowercase();
            out.insert(at + 1, extra);
        }
    }
    out.into_iter().collect()
}

/// Two adjacent, different letters swapped.
pub fn transpose(s: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let spots: Vec<usize> = (1..chars.len())
        .filter(|&i| {
            chars[i - 1].is_alphabetic()
                && chars[i].is_alphabetic()
                && chars[i - 1].to_lowercase().ne(chars[i].to_lowercase())
        })
        .collect();
    if spots.is_empty() || is_han_text(s) {
        return s.to_string();
    }
    let i = spots[rng.below(spots.len())];
    chars.swap(i - 1, i);
    chars.into_iter().collect()
}

/// Umlauts and ß written without them: `ü` as `ue` (or, on a careless
/// keyboard, `u`), `ß` as `ss`.
pub fn transliterate(s: &str, drop_dots: bool) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        let (base, e) = match c {
            'ä' => ('a', "e"),
            'ö' => ('o', "e"),
            'ü' => ('u', "e"),
            'Ä' => ('A', "e"),
            'Ö' => ('O', "e"),
            'Ü' => ('U', "e"),
            'ß' => {
                out.push_str("ss");
                continue;
            }
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push(base);
        if !drop_dots {
            out.push_str(e);
        }
    }
    out
}

pub fn has_umlaut(s: &str) -> bool {
    // UTF-8 of ä ö ü Ä Ö Ü ß: 0xC3 then one of these (a byte scan, as this
    // runs on every name, street and city).
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == 0xC3 && matches!(w[1], 0xA4 | 0xB6 | 0xBC | 0x84 | 0x96 | 0x9C | 0x9F))
}

/// `Hauptstraße` → `Hauptstr.`, `Große Straße` → `Große Str.`.
pub fn abbreviate_street(s: &str) -> String {
    s.replace("straße", "str.").replace("Straße", "Str.")
}

/// Lower-case ASCII for e-mail addresses and domains: transliterated, with
/// spaces, dots and apostrophes removed.
pub fn slug(s: &str) -> String {
    transliterate(s, false)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_change_one_letter_and_leave_han_alone() {
        let mut rng = Rng::keyed(1, super::super::rng::Stream::Record, 0, 0);
        for _ in 0..200 {
            let t = typo("Schmidt", &mut rng);
            let diff = t.chars().count() as i64 - 7;
            assert!(diff.abs() <= 1, "{t}");
            assert_ne!(t, "Schmidt");
        }
        assert_eq!(typo("王伟", &mut rng), "王伟");
        assert_eq!(transpose("王伟", &mut rng), "王伟");
        let t = transpose("Anna", &mut rng);
        assert!(["nAna", "Anan"].contains(&t.as_str()), "{t}");
    }

    #[test]
    fn transliteration_and_slugs() {
        assert_eq!(transliterate("Müller Straße", false), "Mueller Strasse");
        assert_eq!(transliterate("Müller", true), "Muller");
        assert_eq!(slug("Jörg Groß-Weiß"), "joerggrossweiss");
        assert_eq!(abbreviate_street("Hauptstraße 5"), "Hauptstr. 5");
        assert!(has_umlaut("Groß") && has_umlaut("Ärzte") && !has_umlaut("Genève"));
    }
}
