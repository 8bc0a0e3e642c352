//! Postcodes checked against the shape used in the record's country and
//! written the way that country's post writes them (`SW1A 1AA`, `1234 AB`,
//! `123-4567`).

use super::text;

/// Shapes per country: `9` a digit, `A` a letter, `X` either; a space or
/// `-` is the separator written at that place. The input may leave the
/// separators out or use a different one.
const SHAPES: &[(&str, &[&str])] = &[
    ("AR", &["A9999AAA", "9999"]),
    ("AT", &["9999"]),
    ("AU", &["9999"]),
    ("BE", &["9999"]),
    ("BG", &["9999"]),
    ("BR", &["99999-999"]),
    ("CA", &["A9A 9A9"]),
    ("CH", &["9999"]),
    ("CN", &["999999"]),
    ("CZ", &["999 99"]),
    ("DE", &["99999"]),
    ("DK", &["9999"]),
    ("EE", &["99999"]),
    ("ES", &["99999"]),
    ("FI", &["99999"]),
    ("FR", &["99999"]),
    // Outward code (area and district), then the inward code.
    (
        "GB",
        &[
            "A9 9AA", "A99 9AA", "AA9 9AA", "AA99 9AA", "A9A 9AA", "AA9A 9AA",
        ],
    ),
    ("GR", &["999 99"]),
    ("HR", &["99999"]),
    ("HU", &["9999"]),
    ("IE", &["A99 XXXX", "A9A XXXX"]),
    ("IN", &["999999"]),
    ("IT", &["99999"]),
    ("JP", &["999-9999"]),
    ("KR", &["99999"]),
    ("LI", &["9999"]),
    ("LU", &["9999"]),
    ("MX", &["99999"]),
    ("NL", &["9999 AA"]),
    ("NO", &["9999"]),
    ("NZ", &["9999"]),
    ("PL", &["99-999"]),
    ("PT", &["9999-999"]),
    ("RO", &["999999"]),
    ("RU", &["999999"]),
    ("SE", &["999 99"]),
    ("SG", &["999999"]),
    ("SI", &["9999"]),
    ("SK", &["999 99"]),
    ("TW", &["999", "99999", "999999"]),
    ("US", &["99999", "99999-9999"]),
    ("ZA", &["9999"]),
];

/// The postcode in its country's written form. With no country, or one
/// without a known shape, the trimmed upper-cased value passes: there is
/// nothing to check it against.
pub fn postcode(raw: &str, country: Option<&str>) -> Result<String, String> {
    let t = text::clean(raw, false).to_uppercase();
    let Some((code, shapes)) = country.and_then(|c| SHAPES.iter().find(|(code, _)| *code == c))
    else {
        return Ok(t);
    };
    let compact: Vec<char> = t.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    shapes
        .iter()
        .find_map(|shape| fit(&compact, shape))
        .ok_or_else(|| {
            format!(
                "not a postcode of {code} (expected {})",
                shapes.join(" or ")
            )
        })
}

/// `compact` written in `shape`, if it has that shape.
fn fit(compact: &[char], shape: &str) -> Option<String> {
    let mut out = String::with_capacity(shape.len());
    let mut chars = compact.iter();
    for s in shape.chars() {
        if matches!(s, ' ' | '-') {
            out.push(s);
            continue;
        }
        let &c = chars.next()?;
        let fits = match s {
            '9' => c.is_ascii_digit(),
            'A' => c.is_ascii_uppercase(),
            _ => c.is_ascii_digit() || c.is_ascii_uppercase(),
        };
        if !fits {
            return None;
        }
        out.push(c);
    }
    chars.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::postcode;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("DE", " 10115 ", "10115"),
            ("AT", "1010", "1010"),
            ("CH", "8001", "8001"),
            ("FR", "75008", "75008"),
            ("US", "94105", "94105"),
            ("US", "94105-1234", "94105-1234"),
            ("US", "941051234", "94105-1234"),
            ("GB", "sw1a1aa", "SW1A 1AA"),
            ("GB", "SW1A  1AA", "SW1A 1AA"),
            ("GB", "m1 1ae", "M1 1AE"),
            ("GB", "B33 8TH", "B33 8TH"),
            ("GB", "CR2 6XH", "CR2 6XH"),
            ("GB", "DN55 1PT", "DN55 1PT"),
            ("NL", "1234ab", "1234 AB"),
            ("NL", "1234 AB", "1234 AB"),
            ("CN", "100000", "100000"),
            ("JP", "1000001", "100-0001"),
            ("JP", "100-0001", "100-0001"),
            ("CA", "k1a0b1", "K1A 0B1"),
            ("IT", "00184", "00184"),
            ("ES", "28013", "28013"),
            ("PL", "00950", "00-950"),
            ("SE", "11455", "114 55"),
            ("DE", "１０１１５", "10115"),
        ];
        for (country, raw, want) in cases {
            assert_eq!(
                postcode(raw, Some(country)).as_deref(),
                Ok(want),
                "{country} {raw:?}"
            );
        }
    }

    #[test]
    fn wrong_shapes_say_what_was_expected() {
        let cases = [
            ("DE", "1011", "not a postcode of DE (expected 99999)"),
            ("DE", "101155", "DE"),
            ("DE", "1O115", "DE"),
            ("AT", "10101", "expected 9999"),
            ("US", "9410", "expected 99999 or 99999-9999"),
            ("GB", "SW1A", "GB"),
            ("GB", "1SW 1AA", "GB"),
            ("NL", "AB 1234", "expected 9999 AA"),
            ("CA", "123 456", "CA"),
            ("JP", "100-001", "JP"),
        ];
        for (country, raw, want) in cases {
            let err = postcode(raw, Some(country)).unwrap_err();
            assert!(err.contains(want), "{country} {raw:?}: {err}");
        }
    }

    #[test]
    fn unknown_country_passes_trimmed_and_upper_cased() {
        assert_eq!(postcode(" ab-12 ", None).as_deref(), Ok("AB-12"));
        assert_eq!(postcode("ec1a 1bb", Some("ZZ")).as_deref(), Ok("EC1A 1BB"));
    }
}
