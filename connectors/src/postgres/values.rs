//! A column's text (PostgreSQL's output function, under the session
//! settings pinned in `config::SESSION_OPTIONS`) to JSON, by type OID.
//!
//! Every way a row is read goes through [`text_to_json`]: the snapshot
//! load and the sink read columns through the output function
//! (`format('%s', col)`), and pgoutput sends the
//! same text. So a row reads the same whether it was loaded, streamed,
//! fetched or returned by a write, which echo suppression by content
//! relies on.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const OID: u32 = 26;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const NUMERIC: u32 = 1700;
const JSONB: u32 = 3802;

/// A column value as JSON: numbers as numbers, booleans as booleans,
/// json/jsonb parsed, timestamps in ISO 8601 with `T` (as `to_jsonb`
/// writes them), everything else as its text. A text the type's form does
/// not fit (`NaN`, `infinity`, a BC date) stays text.
pub(crate) fn text_to_json(type_oid: u32, text: &str) -> Value {
    match type_oid {
        BOOL => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        INT2 | INT4 | INT8 | OID | FLOAT4 | FLOAT8 | NUMERIC => {
            match serde_json::from_str::<Value>(text) {
                Ok(n @ Value::Number(_)) => n,
                _ => Value::String(text.to_string()),
            }
        }
        JSON | JSONB => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        TIMESTAMP => Value::String(iso_timestamp(text).unwrap_or_else(|| text.to_string())),
        TIMESTAMPTZ => Value::String(iso_timestamptz(text).unwrap_or_else(|| text.to_string())),
        _ => Value::String(text.to_string()),
    }
}

/// `2024-03-01 10:00:00.5` → `2024-03-01T10:00:00.5`; `None` for any
/// other shape (infinity, BC dates).
fn iso_timestamp(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let ok = b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && (b.len() == 19 || (b[19] == b'.' && b[20..].iter().all(u8::is_ascii_digit)));
    ok.then(|| format!("{}T{}", &text[..10], &text[11..]))
}

/// `2024-03-01 10:00:00+00` → `2024-03-01T10:00:00+00:00` (offsets with
/// seconds are left as text).
fn iso_timestamptz(text: &str) -> Option<String> {
    let split = text.rfind(['+', '-']).filter(|&i| i >= 19)?;
    let (local, offset) = text.split_at(split);
    let local = iso_timestamp(local)?;
    let o = offset.as_bytes();
    let offset = match o.len() {
        3 if o[1..].iter().all(u8::is_ascii_digit) => format!("{offset}:00"),
        6 if o[3] == b':' && o[1..3].iter().chain(&o[4..]).all(u8::is_ascii_digit) => {
            offset.to_string()
        }
        _ => return None,
    };
    Some(format!("{local}{offset}"))
}

/// The time in a modified-column value as read by [`text_to_json`]:
/// timestamps without a zone are UTC (Odoo's convention), dates are
/// midnight UTC. `None` for anything else.
pub(crate) fn observed_time(value: &Value) -> Option<OffsetDateTime> {
    let text = value.as_str()?;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let with_fraction = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(text, with_fraction) {
        return Some(t.assume_utc());
    }
    let date = format_description!("[year]-[month]-[day]");
    time::Date::parse(text, date)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DATE: u32 = 1082;

    #[test]
    fn types_map_to_json_kinds() {
        assert_eq!(text_to_json(INT4, "42"), json!(42));
        assert_eq!(
            text_to_json(INT8, "-9007199254740993"),
            json!(-9007199254740993i64)
        );
        assert_eq!(text_to_json(NUMERIC, "12.50"), json!(12.5));
        assert_eq!(text_to_json(NUMERIC, "NaN"), json!("NaN"));
        assert_eq!(text_to_json(FLOAT8, "Infinity"), json!("Infinity"));
        assert_eq!(text_to_json(BOOL, "t"), json!(true));
        assert_eq!(text_to_json(BOOL, "f"), json!(false));
        assert_eq!(text_to_json(JSONB, r#"{"a": [1]}"#), json!({"a": [1]}));
        assert_eq!(text_to_json(DATE, "2024-03-01"), json!("2024-03-01"));
        assert_eq!(text_to_json(25, "it's"), json!("it's"));
    }

    #[test]
    fn timestamps_take_the_iso_form() {
        assert_eq!(
            text_to_json(TIMESTAMP, "2024-03-01 10:00:00.25"),
            json!("2024-03-01T10:00:00.25")
        );
        assert_eq!(
            text_to_json(TIMESTAMPTZ, "2024-03-01 10:00:00+00"),
            json!("2024-03-01T10:00:00+00:00")
        );
        assert_eq!(
            text_to_json(TIMESTAMPTZ, "2024-03-01 10:00:00.5-03:30"),
            json!("2024-03-01T10:00:00.5-03:30")
        );
        assert_eq!(text_to_json(TIMESTAMP, "infinity"), json!("infinity"));
        assert_eq!(
            text_to_json(TIMESTAMP, "0044-03-15 10:00:00 BC"),
            json!("0044-03-15 10:00:00 BC")
        );
    }

    #[test]
    fn observed_times_read_zoneless_as_utc() {
        let t = observed_time(&json!("2024-03-01T10:00:00.5")).unwrap();
        assert_eq!(t.unix_timestamp(), 1_709_287_200);
        let t = observed_time(&json!("2024-03-01T10:00:00+01:00")).unwrap();
        assert_eq!(t.unix_timestamp(), 1_709_283_600);
        assert!(observed_time(&json!("infinity")).is_none());
        assert!(observed_time(&json!(5)).is_none());
    }
}
