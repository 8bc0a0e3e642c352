//! Phone numbers to E.164 (`+4930123456`) with libphonenumber's metadata
//! (crate `phonenumber`), so that one number typed three ways by three
//! systems matches itself.

use std::sync::Once;

use phonenumber::country;
use phonenumber::Mode;

use super::text;

/// E.164 form of `raw`. Numbers written internationally (`+49 …`, `0049 …`)
/// carry their country; national ones (`030 …`) are read in `region`, the
/// source system's country (ISO 3166-1 alpha-2).
pub fn e164(raw: &str, region: Option<&str>) -> Result<String, String> {
    enlarge_regex_cache();
    let t = text::clean(raw, false);
    // libphonenumber reads "00" only as the international prefix of regions
    // that dial it; exports use it for "+" regardless of region.
    let international = match t.strip_prefix("00") {
        Some(rest) => Some(format!("+{rest}")),
        None => t.starts_with('+').then(|| t.clone()),
    };
    let (number, region_id) = match (international, region) {
        (Some(number), _) => (number, None),
        (None, Some(region)) => {
            let id = region
                .to_ascii_uppercase()
                .parse::<country::Id>()
                .map_err(|_| format!("default region {region:?} is not a known country"))?;
            (t, Some(id))
        }
        (None, None) => {
            return Err(
                "national number, and no default region is set for its source system".to_string(),
            )
        }
    };
    let invalid = || match region {
        Some(r) if region_id.is_some() => format!("not a valid number for region {r}"),
        _ => "not a valid international number".to_string(),
    };
    let parsed = phonenumber::parse(region_id, &number).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&parsed) {
        return Err(invalid());
    }
    Ok(parsed.format().mode(Mode::E164).to_string())
}

/// Regexes libphonenumber keeps compiled. The crate's own cache holds 100,
/// fewer than one busy region's patterns, so it recompiled regexes on most
/// numbers: an eighth of all matching time. A few thousand cover every
/// region's patterns, at a few MiB.
const REGEX_CACHE: usize = 4096;

fn enlarge_regex_cache() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        *cache = regex_cache::RegexCache::new(REGEX_CACHE);
    });
}

/// Digits only, with a leading `+` for international numbers (`00` prefix
/// becomes `+`). The region-less fallback for callers that know no source
/// system: it shapes a number but cannot tell whether it exists.
pub fn digits(raw: &str) -> Result<String, String> {
    let t = text::clean(raw, false);
    let mut digits = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' | '/' => {}
            '+' if digits.is_empty() => {}
            _ => return Err(format!("contains {c:?}")),
        }
    }
    let international = t.starts_with('+') || digits.starts_with("00");
    if digits.starts_with("00") {
        digits.drain(..2);
    }
    if !(4..=15).contains(&digits.len()) {
        return Err(format!("has {} digits, expected 4 to 15", digits.len()));
    }
    Ok(if international {
        format!("+{digits}")
    } else {
        digits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_e164() {
        let cases = [
            ("+49 (30) 1234567", None, "+49301234567"),
            ("0049 30 1234567", None, "+49301234567"),
            ("0049 30 1234567", Some("US"), "+49301234567"),
            ("030 1234567", Some("DE"), "+49301234567"),
            ("030 1234567", Some("de"), "+49301234567"),
            ("(415) 555-2671", Some("US"), "+14155552671"),
            ("415.555.2671", Some("US"), "+14155552671"),
            ("138 0013 8000", Some("CN"), "+8613800138000"),
            ("010 6552 9988", Some("CN"), "+861065529988"),
            ("+86 138-0013-8000", Some("DE"), "+8613800138000"),
            ("020 7946 0958", Some("GB"), "+442079460958"),
            ("０３０ １２３４５６７", Some("DE"), "+49301234567"),
        ];
        for (raw, region, want) in cases {
            assert_eq!(
                e164(raw, region).as_deref(),
                Ok(want),
                "{raw:?} in {region:?}"
            );
        }
    }

    #[test]
    fn invalid_numbers_say_why() {
        let cases = [
            ("12345", Some("DE"), "not a valid number for region DE"),
            ("call me", Some("DE"), "not a valid number for region DE"),
            ("555-0000", Some("US"), "not a valid number for region US"),
            ("+1 23", None, "not a valid international number"),
            (
                "+999 1234567",
                Some("DE"),
                "not a valid international number",
            ),
            ("030 1234567", None, "no default region"),
            ("030 1234567", Some("XX"), "\"XX\" is not a known country"),
        ];
        for (raw, region, want) in cases {
            let err = e164(raw, region).unwrap_err();
            assert!(err.contains(want), "{raw:?} in {region:?}: {err}");
        }
    }

    #[test]
    fn region_less_digits() {
        assert_eq!(digits("+49 (30) 123-456").unwrap(), "+4930123456");
        assert_eq!(digits("0049 30 123456").unwrap(), "+4930123456");
        assert_eq!(digits("030 123456").unwrap(), "030123456");
        assert!(digits("call me").is_err());
        assert!(digits("12").is_err());
    }
}
