//! Canonical forms of field values. A normalizer either returns the canonical
//! value or says, in words a data steward understands, what is wrong with it.
//! Pure functions: the hub calls them again during derivation and must get
//! the same answer on every replay.

use serde_json::Value;

use crate::model::{FieldDef, FieldType};

/// Normalizes one value for `field`. `null` means "cleared" and is always valid.
pub fn normalize(field: &FieldDef, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let out = match field.kind {
        FieldType::String => Value::String(text(value)?.trim().to_string()),
        FieldType::Email => Value::String(email(text(value)?)?),
        FieldType::Phone => Value::String(phone(text(value)?)?),
        FieldType::Date => Value::String(date(text(value)?)?),
        FieldType::Country => Value::String(country(text(value)?)?),
        FieldType::Enum => {
            let v = text(value)?.trim().to_lowercase();
            if !field.values.contains(&v) {
                return Err(format!("{v:?} is not one of {:?}", field.values));
            }
            Value::String(v)
        }
        FieldType::Number => match value {
            Value::Number(_) => value.clone(),
            other => return Err(format!("expected a number, got {}", type_name(other))),
        },
        FieldType::Bool => match value {
            Value::Bool(_) => value.clone(),
            other => return Err(format!("expected true or false, got {}", type_name(other))),
        },
    };
    if let (Some(max), Value::String(s)) = (field.max_len, &out) {
        let len = s.chars().count();
        if len > max {
            return Err(format!("{len} characters, at most {max} allowed"));
        }
    }
    Ok(out)
}

fn text(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a string, got {}", type_name(value)))
}

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Trimmed, lower-cased, and shaped like `local@domain.tld`.
pub fn email(raw: &str) -> Result<String, String> {
    let v = raw.trim().to_lowercase();
    let Some((local, domain)) = v.split_once('@') else {
        return Err(format!("{v:?} has no '@'"));
    };
    let bad_char = |c: char| c.is_whitespace() || c == '@' || c.is_control();
    if local.is_empty() || local.chars().any(bad_char) {
        return Err(format!("{v:?} has an invalid local part"));
    }
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.chars().any(bad_char)
    {
        return Err(format!("{v:?} has an invalid domain"));
    }
    Ok(v)
}

/// Digits only, with a leading `+` for international numbers (`00` prefix
/// becomes `+`). Full E.164 with a default region per system is the entity
/// resolution issue's work.
pub fn phone(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let mut digits = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' | '/' => {}
            '+' if digits.is_empty() => {}
            _ => return Err(format!("{t:?} contains {c:?}")),
        }
    }
    let international = t.starts_with('+') || digits.starts_with("00");
    if digits.starts_with("00") {
        digits.drain(..2);
    }
    if !(4..=15).contains(&digits.len()) {
        return Err(format!(
            "{t:?} has {} digits, expected 4 to 15",
            digits.len()
        ));
    }
    Ok(if international {
        format!("+{digits}")
    } else {
        digits
    })
}

/// ISO 8601 calendar date `YYYY-MM-DD`.
pub fn date(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(t, &format)
        .map(|d| d.format(&format).expect("date formats"))
        .map_err(|_| format!("{t:?} is not a date in YYYY-MM-DD form"))
}

/// ISO 3166-1 alpha-2, upper case.
pub fn country(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.len() == 2 && t.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(t.to_ascii_uppercase())
    } else {
        Err(format!("{t:?} is not an ISO 3166-1 alpha-2 country code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("  Ann@Example.COM ").unwrap(), "ann@example.com");
        assert!(email("ann.example.com").unwrap_err().contains("no '@'"));
        assert!(email("ann@example").unwrap_err().contains("domain"));
        assert!(email("a b@example.com").is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(phone("+49 (30) 123-456").unwrap(), "+4930123456");
        assert_eq!(phone("0049 30 123456").unwrap(), "+4930123456");
        assert_eq!(phone("030 123456").unwrap(), "030123456");
        assert!(phone("call me").is_err());
        assert!(phone("12").is_err());
    }

    #[test]
    fn dates_and_countries() {
        assert_eq!(date("1980-02-29").unwrap(), "1980-02-29");
        assert!(date("1981-02-29").is_err());
        assert!(date("29.02.1980").is_err());
        assert_eq!(country("de").unwrap(), "DE");
        assert!(country("Germany").is_err());
    }
}
