//! The context-free canonical form of a value, for callers that know no
//! source system: the hub's search by field, and golden writes until the
//! hub calls `cleanse::cleanse_record` with each system's region.
//! Pure functions, like `cleanse`.

use serde_json::Value;

use crate::cleanse::{cleanse_value, phone, within_max_len, CleanseContext};
use crate::model::{FieldDef, FieldType};

/// Normalizes one value for `field` as `cleanse_value` does with no source
/// system and no record country, except phone numbers: without a region a
/// national number cannot become E.164, so every number keeps the
/// region-less shape (digits, `+` when international) and two spellings of
/// one number still compare equal. `null` means "cleared" and is always
/// valid.
pub fn normalize(field: &FieldDef, value: &Value) -> Result<Value, String> {
    match (field.kind, value) {
        (FieldType::Phone, Value::String(raw)) => {
            let shaped = phone::digits(raw).map_err(|p| format!("{value}: {p}"))?;
            within_max_len(field, Value::String(shaped))
        }
        _ => cleanse_value(field, value, &CleanseContext::default(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use serde_json::json;

    #[test]
    fn context_free_forms() {
        let model = Model::default_customer();
        let cases = [
            (
                "email",
                json!("  Ann@Example.COM "),
                json!("ann@example.com"),
            ),
            ("phone", json!("+49 (30) 123-456"), json!("+4930123456")),
            ("phone", json!("030 123456"), json!("030123456")),
            ("country", json!("de"), json!("DE")),
            ("country", json!("Germany"), json!("DE")),
            ("birth_date", json!("29.02.1980"), json!("1980-02-29")),
            ("postal_code", json!(" sw1a 1aa "), json!("SW1A 1AA")),
            ("city", json!(" Berlin "), json!("Berlin")),
            ("phone", Value::Null, Value::Null),
        ];
        for (name, raw, want) in cases {
            assert_eq!(
                normalize(model.field(name).unwrap(), &raw),
                Ok(want),
                "{name} {raw}"
            );
        }
    }

    #[test]
    fn failures_name_the_value() {
        let model = Model::default_customer();
        let f = |name: &str| model.field(name).unwrap();
        let err = normalize(f("phone"), &json!("call me")).unwrap_err();
        assert_eq!(err, "\"call me\": contains 'c'");
        let err = normalize(f("email"), &json!("nobody")).unwrap_err();
        assert_eq!(err, "\"nobody\": has no '@'");
        let err = normalize(f("birth_date"), &json!("1981-02-29")).unwrap_err();
        assert!(err.contains("day 29 does not exist"), "{err}");
    }
}
