//! Cleansing: every field value of an event brought to its canonical form
//! before matching, as the model file declares per field (type, `casefold`,
//! `slash_dates`, `country_field`), or, when it cannot be, kept as sent and
//! reported as a quality issue for a data steward.
//!
//! One module per kind of value: `text` (every string), `email`, `phone`,
//! `country` (with its name table `country_names`), `date`, `postcode`.
//!
//! Pure functions: the hub calls them again on every replay of the log and
//! must get the same answer (no clock, no hash-map order, no I/O).

mod country;
mod country_names;
mod date;
mod email;
pub(crate) mod phone;
mod postcode;
mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Fields;
use crate::model::{FieldDef, FieldType, Model};

/// What cleansing needs to know about the event's source system.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanseContext<'a> {
    /// ISO 3166-1 alpha-2 country in which the system's national phone
    /// numbers are written (`"DE"` for `030 1234567`).
    pub default_region: Option<&'a str>,
}

/// A value kept as sent because it could not be cleansed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityIssue {
    pub field: String,
    /// The value as the event carried it.
    pub value: Value,
    /// For a data steward: the field, the value and what is wrong with it,
    /// e.g. `phone "12345": not a valid number for region DE`.
    pub reason: String,
}

/// An event's fields after cleansing: every value of a model field is in
/// `values` (canonical, or trimmed as sent when it has an issue).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CleansedRecord {
    pub values: BTreeMap<String, Value>,
    pub issues: Vec<QualityIssue>,
}

/// Cleanses every field of an event. A value that fails is not dropped: it
/// stays in `values` trimmed and gets an issue. Fields the model does not
/// know (the model changed since the event was logged) are left out, with
/// an issue.
pub fn cleanse_record(model: &Model, fields: &Fields, ctx: &CleanseContext) -> CleansedRecord {
    let mut out = CleansedRecord::default();
    for (name, value) in fields {
        let Some(def) = model.field(name) else {
            out.issues.push(QualityIssue {
                field: name.clone(),
                value: value.clone(),
                reason: format!("{name}: not a field of entity {:?}, ignored", model.entity),
            });
            continue;
        };
        let country = record_country(model, def, fields, ctx);
        let cleansed = match cleanse_value(def, value, ctx, country.as_deref()) {
            Ok(v) => v,
            Err(problem) => {
                out.issues.push(QualityIssue {
                    field: name.clone(),
                    value: value.clone(),
                    reason: format!("{name} {problem}"),
                });
                match value {
                    Value::String(s) => Value::String(s.trim().to_string()),
                    other => other.clone(),
                }
            }
        };
        out.values.insert(name.clone(), cleansed);
    }
    out
}

/// For a postcode field: the record's own country, cleansed, if the event
/// carries a valid one.
fn record_country(
    model: &Model,
    def: &FieldDef,
    fields: &Fields,
    ctx: &CleanseContext,
) -> Option<String> {
    let name = def.country_field.as_deref()?;
    let value = cleanse_value(model.field(name)?, fields.get(name)?, ctx, None).ok()?;
    value.as_str().map(str::to_string)
}

/// Canonical form of one value of `field`, or what is wrong with it,
/// starting with the value (`"12345": not a valid number for region DE`).
/// `country` (alpha-2) is the record's country, for postcodes. `null` means
/// "cleared" and is always valid.
pub fn cleanse_value(
    field: &FieldDef,
    value: &Value,
    ctx: &CleanseContext,
    country: Option<&str>,
) -> Result<Value, String> {
    let out = match field.kind {
        _ if value.is_null() => return Ok(Value::Null),
        FieldType::Number if value.is_number() => value.clone(),
        FieldType::Number => {
            return Err(format!(
                "{value}: expected a number, got {}",
                type_name(value)
            ))
        }
        FieldType::Bool if value.is_boolean() => value.clone(),
        FieldType::Bool => {
            return Err(format!(
                "{value}: expected true or false, got {}",
                type_name(value)
            ))
        }
        kind => {
            let raw = value
                .as_str()
                .ok_or_else(|| format!("{value}: expected a string, got {}", type_name(value)))?;
            Value::String(
                cleanse_text(field, kind, raw, ctx, country)
                    .map_err(|p| format!("{value}: {p}"))?,
            )
        }
    };
    within_max_len(field, out)
}

fn cleanse_text(
    field: &FieldDef,
    kind: FieldType,
    raw: &str,
    ctx: &CleanseContext,
    country: Option<&str>,
) -> Result<String, String> {
    let typed = !matches!(kind, FieldType::String | FieldType::Enum);
    if typed && raw.trim().is_empty() {
        return Err("is blank (send null to clear the field)".to_string());
    }
    match kind {
        FieldType::Email => email::email(raw),
        FieldType::Phone => phone::e164(raw, ctx.default_region),
        FieldType::Date => date::date(raw, field.slash_dates.unwrap_or_default()),
        FieldType::Country => country::country(raw),
        FieldType::Postcode => postcode::postcode(raw, country),
        FieldType::Enum => enum_value(field, raw),
        _ => Ok(text::clean(raw, field.casefold)),
    }
}

/// An `enum` value: cleansed, lower-cased and one of the declared values.
pub(crate) fn enum_value(field: &FieldDef, raw: &str) -> Result<String, String> {
    let v = text::clean(raw, true);
    if field.values.contains(&v) {
        Ok(v)
    } else {
        Err(format!("not one of {}", field.values.join(", ")))
    }
}

/// `out` if it is within the field's `max_len` (in characters).
pub(crate) fn within_max_len(field: &FieldDef, out: Value) -> Result<Value, String> {
    if let (Some(max), Value::String(s)) = (field.max_len, &out) {
        let len = s.chars().count();
        if len > max {
            return Err(format!("{out}: {len} characters, at most {max} allowed"));
        }
    }
    Ok(out)
}

/// The JSON type of `value`, as a steward reads it in a message.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        serde_json::from_value(v).unwrap()
    }

    const DE: CleanseContext<'static> = CleanseContext {
        default_region: Some("DE"),
    };

    #[test]
    fn a_clean_record_has_no_issues() {
        let model = Model::default_customer();
        let r = cleanse_record(
            &model,
            &fields(json!({
                "email": " Ann@Example.COM ",
                "given_name": "  Ann   Marie ",
                "phone": "030 1234567",
                "country": "Deutschland",
                "postal_code": "10115",
                "birth_date": "01.03.1980",
                "customer_type": "Person",
                "website": "WWW.Example.com",
                "street": null,
            })),
            &DE,
        );
        assert_eq!(r.issues, []);
        assert_eq!(
            Value::Object(r.values.into_iter().collect()),
            json!({
                "email": "ann@example.com",
                "given_name": "Ann Marie",
                "phone": "+49301234567",
                "country": "DE",
                "postal_code": "10115",
                "birth_date": "1980-03-01",
                "customer_type": "person",
                "website": "www.example.com",
                "street": null,
            })
        );
    }

    #[test]
    fn a_bad_value_is_kept_trimmed_and_flagged() {
        let model = Model::default_customer();
        let r = cleanse_record(
            &model,
            &fields(json!({"phone": " 12345 ", "email": "ann@example.com"})),
            &DE,
        );
        assert_eq!(r.values["phone"], "12345");
        assert_eq!(r.values["email"], "ann@example.com");
        assert_eq!(
            r.issues,
            [QualityIssue {
                field: "phone".into(),
                value: json!(" 12345 "),
                reason: "phone \" 12345 \": not a valid number for region DE".into(),
            }]
        );
    }

    #[test]
    fn postcodes_are_read_in_the_records_own_country() {
        let model = Model::default_customer();
        let gb = cleanse_record(
            &model,
            &fields(json!({"country": "UK", "postal_code": "sw1a1aa"})),
            &DE,
        );
        assert_eq!(gb.values["postal_code"], "SW1A 1AA");
        assert_eq!(gb.issues, []);
        let nl = cleanse_record(
            &model,
            &fields(json!({"country": "NL", "postal_code": "10115"})),
            &DE,
        );
        assert_eq!(nl.values["postal_code"], "10115");
        assert_eq!(
            nl.issues[0].reason,
            "postal_code \"10115\": not a postcode of NL (expected 9999 AA)"
        );
        // No country in the event, or an unknown one: nothing to check against.
        let none = cleanse_record(&model, &fields(json!({"postal_code": "ab1 2cd"})), &DE);
        assert_eq!(none.values["postal_code"], "AB1 2CD");
        let bad = cleanse_record(
            &model,
            &fields(json!({"country": "Atlantis", "postal_code": "x1"})),
            &DE,
        );
        assert_eq!(bad.values["postal_code"], "X1");
        assert_eq!(bad.issues.len(), 1, "only the country: {:?}", bad.issues);
    }

    #[test]
    fn unknown_fields_are_left_out_with_an_issue() {
        let model = Model::default_customer();
        let r = cleanse_record(&model, &fields(json!({"shoe_size": "42"})), &DE);
        assert!(r.values.is_empty());
        assert_eq!(r.issues[0].field, "shoe_size");
    }

    #[test]
    fn single_values() {
        let model = Model::default_customer();
        let run = |name: &str, value: &Value, region: Option<&str>, country: Option<&str>| {
            let ctx = CleanseContext {
                default_region: region,
            };
            cleanse_value(model.field(name).unwrap(), value, &ctx, country)
        };
        let good = [
            (
                "phone",
                json!("+49 30 1234567"),
                None,
                None,
                json!("+49301234567"),
            ),
            ("country", json!("中国"), None, None, json!("CN")),
            (
                "postal_code",
                json!("1234ab"),
                None,
                Some("NL"),
                json!("1234 AB"),
            ),
            ("email", Value::Null, Some("DE"), None, Value::Null),
        ];
        for (name, value, region, country, want) in good {
            assert_eq!(
                run(name, &value, region, country),
                Ok(want),
                "{name} {value}"
            );
        }
        let bad = [
            (
                "phone",
                json!("030 1234567"),
                None,
                "\"030 1234567\": national number, and no default region",
            ),
            ("phone", json!(""), Some("DE"), "\"\": is blank"),
            (
                "birth_date",
                json!("2024-02-30"),
                None,
                "\"2024-02-30\": day 30 does not exist",
            ),
            (
                "customer_type",
                json!("robot"),
                None,
                "\"robot\": not one of person, company",
            ),
            (
                "given_name",
                json!(7),
                None,
                "7: expected a string, got a number",
            ),
            (
                "lang",
                json!("x".repeat(17)),
                None,
                "17 characters, at most 16 allowed",
            ),
        ];
        for (name, value, region, want) in bad {
            let err = run(name, &value, region, None).unwrap_err();
            assert!(err.contains(want), "{name} {value}: {err}");
        }
    }
}
