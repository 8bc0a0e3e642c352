//! Bytes from the bus → a checked `ChangeEvent`, or a `Rejection` that says
//! exactly what is wrong and where. Nothing here panics on any input.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::cleanse::{enum_value, type_name};
use crate::event::{ChangeEvent, Op, Rejection};
use crate::model::{is_token, FieldDef, FieldType, Model};

/// Wire versions this build reads.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Longest accepted `record_id`, in bytes.
pub const MAX_RECORD_ID_BYTES: usize = 256;

/// How far `observed_at` may lie after the time the bus stored the event.
/// Clocks drift and connectors batch, but an event stamped far in the
/// future would win `most_recent` against every real change until then.
pub const MAX_CLOCK_AHEAD: time::Duration = time::Duration::hours(24);

/// Refuses an event observed more than `MAX_CLOCK_AHEAD` after `stored_at`,
/// the time the bus stored it (a JetStream message's own timestamp, part of
/// the stream: the same message gets the same verdict on every read).
pub fn check_observed_at(
    event: &ChangeEvent,
    stored_at: time::OffsetDateTime,
) -> Result<(), Rejection> {
    let limit = stored_at.saturating_add(MAX_CLOCK_AHEAD);
    if event.observed_at <= limit {
        return Ok(());
    }
    let text = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    Err(Rejection {
        code: "invalid_value",
        message: format!(
            "event {} record {:?}: field \"observed_at\" is {}, more than {} hours after the bus stored the event ({}); fix the system's clock or the connector's time field",
            event.event_id,
            event.record_id,
            text(event.observed_at),
            MAX_CLOCK_AHEAD.whole_hours(),
            text(stored_at),
        ),
        system: Some(event.system.clone()),
        event_id: Some(event.event_id),
        record_id: Some(event.record_id.clone()),
        field: Some("observed_at".to_string()),
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted event, in bytes. Larger payloads go to the DLQ
    /// untouched.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 256 * 1024,
        }
    }
}

/// What the hub knows about systems and entities, for validation.
pub struct Catalog<'a> {
    pub models: &'a BTreeMap<String, Model>,
    /// Is this system configured?
    pub known_system: &'a dyn Fn(&str) -> bool,
}

struct Context {
    system: Option<String>,
    event_id: Option<Uuid>,
    record_id: Option<String>,
}

impl Context {
    fn reject(&self, code: &'static str, field: Option<&str>, message: String) -> Rejection {
        let mut where_ = Vec::new();
        if let Some(id) = self.event_id {
            where_.push(format!("event {id}"));
        }
        if let (Some(s), Some(r)) = (&self.system, &self.record_id) {
            where_.push(format!("record {s}/{r}"));
        }
        if let Some(f) = field {
            where_.push(format!("field {f:?}"));
        }
        let message = if where_.is_empty() {
            message
        } else {
            format!("{}: {message}", where_.join(", "))
        };
        Rejection {
            code,
            message,
            system: self.system.clone(),
            event_id: self.event_id,
            record_id: self.record_id.clone(),
            field: field.map(str::to_string),
        }
    }
}

/// The subject a system publishes an entity's changes on:
/// `mdhub.in.<system>.<entity>`.
pub fn in_subject(system: &str, entity: &str) -> String {
    format!("mdhub.in.{system}.{entity}")
}

/// The system token of a subject under `mdhub.in.`, whatever follows it
/// (a subject too short or too long for an event still names its sender).
pub fn in_subject_system(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("mdhub.in.")?;
    rest.split('.').next().filter(|s| !s.is_empty())
}

/// Splits `mdhub.in.<system>.<entity>`.
pub fn parse_in_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("mdhub.in.")?;
    let (system, entity) = rest.split_once('.')?;
    (!system.is_empty() && !entity.is_empty() && !entity.contains('.')).then_some((system, entity))
}

/// Validates one message received on `subject`. On success the event's field
/// values are as sent (the log keeps what the system said) and fit the
/// model's structure: known fields, JSON types, `max_len`, enum values.
/// Whether a value is a real e-mail, phone, date, country or postcode is not
/// checked here: such values are kept and flagged by `cleanse`, so one bad
/// cell does not lose the rest of the event.
pub fn validate_event(
    bytes: &[u8],
    subject: &str,
    catalog: &Catalog<'_>,
    limits: Limits,
) -> Result<ChangeEvent, Rejection> {
    let subject_parts = parse_in_subject(subject);
    let mut cx = Context {
        system: subject_parts.map(|(s, _)| s.to_string()),
        event_id: None,
        record_id: None,
    };
    if bytes.len() > limits.max_event_bytes {
        return Err(cx.reject(
            "oversize",
            None,
            format!(
                "payload is {} bytes, the limit is {} bytes (ingest.max_event_bytes)",
                bytes.len(),
                limits.max_event_bytes
            ),
        ));
    }
    let Some((subject_system, subject_entity)) = subject_parts else {
        return Err(cx.reject(
            "bad_subject",
            None,
            format!("subject {subject:?} is not mdhub.in.<system>.<entity>"),
        ));
    };
    let raw: Value = serde_json::from_slice(bytes)
        .map_err(|e| cx.reject("malformed_json", None, format!("not valid JSON: {e}")))?;
    // Pick out ids first so that every later rejection can name the event.
    if let Some(obj) = raw.as_object() {
        cx.event_id = obj
            .get("event_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        cx.record_id = obj
            .get("record_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(s) = obj.get("system").and_then(Value::as_str) {
            cx.system = Some(s.to_string());
        }
        if let Some(v) = obj.get("schema_version").and_then(Value::as_u64) {
            if !SUPPORTED_VERSIONS.contains(&(v as u32)) || v > u32::MAX as u64 {
                return Err(cx.reject(
                    "unsupported_version",
                    None,
                    format!(
                        "schema_version {v} is not supported (supported: {SUPPORTED_VERSIONS:?})"
                    ),
                ));
            }
        }
    } else {
        return Err(cx.reject(
            "wrong_type",
            None,
            format!("expected a JSON object, got {}", type_name(&raw)),
        ));
    }
    let event: ChangeEvent = serde_json::from_value(raw).map_err(|e| {
        let text = e.to_string();
        let code = if text.starts_with("unknown field") {
            "unknown_field"
        } else if text.starts_with("missing field") {
            "missing_field"
        } else {
            "wrong_type"
        };
        cx.reject(code, None, text)
    })?;

    if !is_token(&event.system) {
        return Err(cx.reject(
            "invalid_system",
            None,
            format!(
                "system {:?} must be lower-case letters, digits and '_'",
                event.system
            ),
        ));
    }
    if event.system != subject_system || event.entity != subject_entity {
        return Err(cx.reject(
            "subject_mismatch",
            None,
            format!(
                "event says {}/{} but was published on {subject:?}",
                event.system, event.entity
            ),
        ));
    }
    if !(catalog.known_system)(&event.system) {
        return Err(cx.reject(
            "unknown_system",
            None,
            format!("system {:?} is not configured in the hub", event.system),
        ));
    }
    let Some(model) = catalog.models.get(&event.entity) else {
        return Err(cx.reject(
            "unknown_entity",
            None,
            format!("entity {:?} has no model", event.entity),
        ));
    };
    if event.record_id.trim().is_empty() || event.record_id.len() > MAX_RECORD_ID_BYTES {
        return Err(cx.reject(
            "invalid_record_id",
            None,
            format!("record_id must be 1 to {MAX_RECORD_ID_BYTES} bytes and not blank"),
        ));
    }
    if event.op == Op::Delete && !event.fields.is_empty() {
        return Err(cx.reject(
            "invalid_delete",
            None,
            "a delete carries no fields".to_string(),
        ));
    }
    for (name, value) in &event.fields {
        let Some(field) = model.field(name) else {
            return Err(cx.reject(
                "unknown_field",
                Some(name),
                format!("entity {:?} has no field {name:?}", model.entity),
            ));
        };
        if !type_fits(field.kind, value) {
            return Err(cx.reject(
                "wrong_type",
                Some(name),
                format!(
                    "expected {}, got {}",
                    expected(field.kind),
                    type_name(value)
                ),
            ));
        }
        if let Err(problem) = fits_contract(field, value) {
            return Err(cx.reject("invalid_value", Some(name), problem));
        }
    }
    if let Some(base) = &event.base {
        if let Some(bad) = base
            .iter()
            .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(cx.reject(
                "invalid_base",
                None,
                format!("base entry {bad:?} is not a 64-digit hex change hash"),
            ));
        }
    }
    Ok(event)
}

fn type_fits(kind: FieldType, value: &Value) -> bool {
    match (kind, value) {
        (_, Value::Null) => true,
        (FieldType::Number, v) => v.is_number(),
        (FieldType::Bool, v) => v.is_boolean(),
        (_, v) => v.is_string(),
    }
}

/// The parts of the model that are a contract with producers rather than
/// data quality: a string within `max_len` (counted on the trimmed value as
/// sent), and for an `enum` one of its declared values, because consumers
/// branch on those values and an unknown one has no meaning to keep.
fn fits_contract(field: &FieldDef, value: &Value) -> Result<(), String> {
    let Some(raw) = value.as_str() else {
        return Ok(());
    };
    let len = raw.trim().chars().count();
    if let Some(max) = field.max_len.filter(|&max| len > max) {
        return Err(format!("{len} characters, at most {max} allowed"));
    }
    if field.kind == FieldType::Enum {
        enum_value(field, raw).map_err(|p| format!("{value}: {p}"))?;
    }
    Ok(())
}

fn expected(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Number => "a number",
        FieldType::Bool => "true or false",
        _ => "a string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> BTreeMap<String, Model> {
        BTreeMap::from([("customer".to_string(), Model::default_customer())])
    }

    fn check(bytes: &[u8]) -> Result<ChangeEvent, Rejection> {
        let models = models();
        let known = |s: &str| s == "crm" || s == "erp";
        let catalog = Catalog {
            models: &models,
            known_system: &known,
        };
        validate_event(bytes, "mdhub.in.crm.customer", &catalog, Limits::default())
    }

    const GOOD: &str = r#"{"schema_version":1,"event_id":"01900000-0000-7000-8000-000000000001",
        "system":"crm","entity":"customer","record_id":"c-1","op":"upsert",
        "fields":{"email":"Ann@Example.com","phone":"+49 30 1234"},
        "observed_at":"2026-01-02T03:04:05Z"}"#;

    #[test]
    fn a_good_event_passes() {
        let e = check(GOOD.as_bytes()).unwrap();
        assert_eq!(e.record_id, "c-1");
        assert_eq!(e.fields["email"], "Ann@Example.com");
    }

    fn code_of(text: &str) -> (&'static str, String) {
        let r = check(text.as_bytes()).unwrap_err();
        (r.code, r.message)
    }

    #[test]
    fn each_problem_has_its_code_and_names_the_place() {
        assert_eq!(code_of("{not json").0, "malformed_json");
        assert_eq!(code_of("[1]").0, "wrong_type");
        let (code, msg) = code_of(&GOOD.replace("\"op\"", "\"colour\":1,\"op\""));
        assert_eq!(code, "unknown_field");
        assert!(msg.contains("colour") && msg.contains("c-1"), "{msg}");
        let (code, msg) = code_of(&GOOD.replace("\"record_id\":\"c-1\",", ""));
        assert_eq!(code, "missing_field");
        assert!(msg.contains("record_id"), "{msg}");
        let (code, msg) = code_of(&GOOD.replace("\"+49 30 1234\"", "4930"));
        assert_eq!(code, "wrong_type");
        assert!(
            msg.contains("\"phone\"") && msg.contains("crm/c-1"),
            "{msg}"
        );
        let (code, msg) = code_of(&GOOD.replace("\"+49 30 1234\"", "{\"n\":1}"));
        assert_eq!(code, "wrong_type");
        assert!(msg.contains("an object"), "{msg}");
        let (code, msg) =
            code_of(&GOOD.replace("\"+49 30 1234\"", "\"person\",\"customer_type\":\"robot\""));
        assert_eq!(code, "invalid_value");
        assert!(
            msg.contains("\"customer_type\"") && msg.contains("not one of person, company"),
            "{msg}"
        );
        let long = format!("\"{}\"", "x".repeat(17));
        let (code, msg) =
            code_of(&GOOD.replace("\"+49 30 1234\"", &format!("\"\",\"lang\":{long}")));
        assert_eq!(code, "invalid_value");
        assert!(
            msg.contains("\"lang\"") && msg.contains("17 characters, at most 16"),
            "{msg}"
        );
        assert_eq!(
            code_of(&GOOD.replace("\"email\"", "\"shoe_size\"")).0,
            "unknown_field"
        );
        assert_eq!(
            code_of(&GOOD.replace("\"system\":\"crm\"", "\"system\":\"erp\"")).0,
            "subject_mismatch"
        );
        assert_eq!(
            code_of(&GOOD.replace("\"schema_version\":1", "\"schema_version\":9")).0,
            "unsupported_version"
        );
    }

    #[test]
    fn values_of_the_right_type_that_do_not_cleanse_are_accepted() {
        // Kept in the log as sent; the hub flags them for a data steward.
        let bad_values = r#"{"email":"nobody","phone":"12345","birth_date":"2024-02-30",
            "country":"Atlantis","postal_code":"ABCDEFG","customer_type":" Person "}"#;
        let e = check(
            GOOD.replace(
                r#"{"email":"Ann@Example.com","phone":"+49 30 1234"}"#,
                bad_values,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(e.fields["email"], "nobody");
        assert_eq!(e.fields["birth_date"], "2024-02-30");
        assert_eq!(e.fields.len(), 6);
    }

    #[test]
    fn unknown_systems_and_oversize_payloads_are_refused() {
        let models = models();
        let known = |_: &str| false;
        let catalog = Catalog {
            models: &models,
            known_system: &known,
        };
        let r = validate_event(
            GOOD.as_bytes(),
            "mdhub.in.crm.customer",
            &catalog,
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(r.code, "unknown_system");
        let big = vec![b' '; 300_000];
        let r =
            validate_event(&big, "mdhub.in.crm.customer", &catalog, Limits::default()).unwrap_err();
        assert_eq!(r.code, "oversize");
        assert_eq!(r.system.as_deref(), Some("crm"));
    }
}
