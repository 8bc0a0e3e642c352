//! Value conversions, one value at a time: casts between a column's JSON type
//! and the canonical one, and the transforms. Pure functions; errors say what
//! is wrong without repeating the value (it is customer data).

use std::collections::BTreeMap;

use mdhub_schema::cleanse::{cleanse_value, type_name, CleanseContext};
use mdhub_schema::{FieldDef, FieldType};
use serde::Deserialize;
use serde_json::{Number, Value};

/// The JSON type a column holds, when it differs from the canonical field's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Number,
    Bool,
    /// A date in any shape the model's date cleansing reads (`01.03.2024`,
    /// `2024-03-01T10:00:00Z`, `20240301`, ...); written back as ISO
    /// `YYYY-MM-DD`.
    Date,
}

/// The JSON type of a value on the canonical side of a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Json {
    String,
    Number,
    Bool,
}

impl Json {
    pub(crate) fn of(kind: FieldType) -> Json {
        match kind {
            FieldType::Number => Json::Number,
            FieldType::Bool => Json::Bool,
            _ => Json::String,
        }
    }
}

/// A transform between one entry's columns and its canonical fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transform {
    /// The value as is: only the name changes.
    Rename,
    /// Read lower-cased; written as the hub holds it.
    Lowercase,
    /// Read through the model's cleansing for the canonical field's type
    /// (e-mail, phone in the mapping's region, country); written as the hub
    /// holds it, which is already that form.
    Normalize,
    /// One full-name column ⇄ given name and family name.
    SplitName,
    /// Given-name and family-name columns ⇄ one full name.
    JoinName,
    /// System code ⇄ canonical value through a table.
    Lookup(Lookup),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lookup {
    pub to_canonical: BTreeMap<String, String>,
    /// Empty when the table is not one-to-one (the entry is then read-only).
    pub to_system: BTreeMap<String, String>,
}

/// A column value read into the canonical-side type `target`. `null` stays
/// `null`. Without a column type the column must already hold `target`.
pub(crate) fn cast_in(
    value: &Value,
    column: Option<ColumnType>,
    target: Json,
    date_field: Option<&FieldDef>,
) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let Some(column) = column else {
        return expect(value, target).map_err(|e| format!("{e} (set column_type to convert)"));
    };
    if column == ColumnType::Date {
        let text = scalar_text(value)?;
        // A date the cleansing cannot read goes on as sent: the hub keeps it
        // and flags it for a data steward rather than losing it here.
        let Some(def) = date_field else {
            return Ok(Value::String(text));
        };
        return Ok(cleanse_value(
            def,
            &Value::String(text.clone()),
            &CleanseContext::default(),
            None,
        )
        .unwrap_or(Value::String(text)));
    }
    convert(value, target)
}

/// A canonical-side value written as the column's type.
pub(crate) fn cast_out(value: &Value, column: Option<ColumnType>) -> Result<Value, String> {
    match column {
        _ if value.is_null() => Ok(Value::Null),
        None => Ok(value.clone()),
        Some(ColumnType::String | ColumnType::Date) => convert(value, Json::String),
        Some(ColumnType::Number) => convert(value, Json::Number),
        Some(ColumnType::Bool) => convert(value, Json::Bool),
    }
}

/// `value` if it is already of type `want`.
pub(crate) fn expect(value: &Value, want: Json) -> Result<Value, String> {
    let ok = match want {
        Json::String => value.is_string(),
        Json::Number => value.is_number(),
        Json::Bool => value.is_boolean(),
    };
    if ok || value.is_null() {
        Ok(value.clone())
    } else {
        Err(format!(
            "expected {}, got {}",
            json_name(want),
            type_name(value)
        ))
    }
}

fn json_name(j: Json) -> &'static str {
    match j {
        Json::String => "a string",
        Json::Number => "a number",
        Json::Bool => "a boolean",
    }
}

fn scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a scalar, got {}", type_name(other))),
    }
}

/// Scalar conversion: string ⇄ number ⇄ bool (`true`/`false`, `1`/`0`,
/// `yes`/`no` read as booleans).
fn convert(value: &Value, target: Json) -> Result<Value, String> {
    match (target, value) {
        (Json::String, v) => scalar_text(v).map(Value::String),
        (Json::Number, Value::Number(_)) => Ok(value.clone()),
        (Json::Number, Value::Bool(b)) => Ok(Value::from(u8::from(*b))),
        (Json::Number, Value::String(s)) => parse_number(s.trim())
            .map(Value::Number)
            .ok_or_else(|| "text that is not a number".to_string()),
        (Json::Bool, Value::Bool(_)) => Ok(value.clone()),
        (Json::Bool, Value::Number(n)) => match n.as_f64() {
            Some(0.0) => Ok(Value::Bool(false)),
            Some(1.0) => Ok(Value::Bool(true)),
            _ => Err("a number other than 0 or 1 for a boolean".to_string()),
        },
        (Json::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "t" | "y" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "f" | "n" => Ok(Value::Bool(false)),
            _ => Err("text that is not a boolean".to_string()),
        },
        (_, other) => Err(format!("expected a scalar, got {}", type_name(other))),
    }
}

fn parse_number(s: &str) -> Option<Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::from(i));
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Reads a normalizing transform's value; one the model's cleansing cannot
/// read goes on as sent for the hub to flag, as the hub does with any source.
pub(crate) fn normalize(def: &FieldDef, value: &Value, region: Option<&str>) -> Value {
    let ctx = CleanseContext {
        default_region: region,
    };
    cleanse_value(def, value, &ctx, None).unwrap_or_else(|_| value.clone())
}

/// `Ann van Berg` → (`Ann`, `van Berg`): the first word is the given name,
/// the rest the family name, so joining with one space gives the name back.
/// A single word is a given name with no family name.
pub(crate) fn split_name(full: &str) -> (Value, Value) {
    let full = full.trim();
    if full.is_empty() {
        return (Value::Null, Value::Null);
    }
    match full.split_once(char::is_whitespace) {
        Some((given, family)) => (
            Value::String(given.to_string()),
            Value::String(family.trim_start().to_string()),
        ),
        None => (Value::String(full.to_string()), Value::Null),
    }
}

/// The parts that are present, joined with one space; `null` when none is.
pub(crate) fn join_name(parts: &[&Value]) -> Result<Value, String> {
    let mut words = Vec::new();
    for part in parts {
        match part {
            Value::Null => {}
            Value::String(s) if s.trim().is_empty() => {}
            Value::String(s) => words.push(s.trim()),
            other => return Err(format!("expected a string, got {}", type_name(other))),
        }
    }
    Ok(if words.is_empty() {
        Value::Null
    } else {
        Value::String(words.join(" "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn casts_between_scalars_both_ways() {
        let n = Some(ColumnType::Number);
        assert_eq!(cast_in(&json!(76), n, Json::String, None), Ok(json!("76")));
        assert_eq!(cast_out(&json!("76"), n), Ok(json!(76)));
        assert_eq!(cast_out(&json!("1.5"), n), Ok(json!(1.5)));
        let b = Some(ColumnType::Bool);
        assert_eq!(
            cast_in(&json!(true), b, Json::String, None),
            Ok(json!("true"))
        );
        assert_eq!(cast_out(&json!("false"), b), Ok(json!(false)));
        assert_eq!(cast_in(&json!("Yes"), n, Json::Bool, None), Ok(json!(true)));
        assert_eq!(cast_in(&json!(0), n, Json::Bool, None), Ok(json!(false)));
        let s = Some(ColumnType::String);
        assert_eq!(cast_in(&json!("42"), s, Json::Number, None), Ok(json!(42)));
        assert_eq!(cast_out(&json!(42), s), Ok(json!("42")));
        assert_eq!(
            cast_in(&Value::Null, n, Json::String, None),
            Ok(Value::Null)
        );
    }

    #[test]
    fn failed_casts_do_not_repeat_the_value() {
        let err = cast_out(&json!("Ann Secret"), Some(ColumnType::Number)).unwrap_err();
        assert!(!err.contains("Secret"), "{err}");
        assert!(err.contains("not a number"), "{err}");
        let err = cast_in(&json!(7), None, Json::String, None).unwrap_err();
        assert_eq!(
            err,
            "expected a string, got a number (set column_type to convert)"
        );
    }

    #[test]
    fn split_name_splits_at_the_first_space_and_join_reverses_it() {
        let (g, f) = split_name(" Ann  van Berg ");
        assert_eq!((g, f), (json!("Ann"), json!("van Berg")));
        assert_eq!(split_name("Cher"), (json!("Cher"), Value::Null));
        assert_eq!(split_name("  "), (Value::Null, Value::Null));
        let joined = join_name(&[&json!("Ann"), &json!("van Berg")]).unwrap();
        assert_eq!(joined, json!("Ann van Berg"));
        assert_eq!(
            join_name(&[&Value::Null, &json!("Berg")]),
            Ok(json!("Berg"))
        );
        assert_eq!(join_name(&[&Value::Null, &Value::Null]), Ok(Value::Null));
    }
}
