//! Fuzzing validation plus derivation: arbitrary bytes on arbitrary
//! subjects, events whose every value is arbitrary, and well-formed
//! sequences of changes and steward actions. Nothing may panic: a bad
//! message is refused with a reason, a good one is derived.
//!
//! 2,000 cases per property by default; 100,000 with `MDHUB_SLOW=1`.

use std::cell::RefCell;
use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::hub::{Inbound, Validator};
use mdhub_hub::state::{Rules, State};
use mdhub_schema::Limits;
use proptest::prelude::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[system.crm]
region = "DE"
[system.erp]
region = "US"
[system.oa]
receive_all = true
"#;

fn rules() -> Arc<Rules> {
    let config = HubConfig::parse(CONFIG, "test").unwrap();
    Arc::new(config.rules(config.load_models("test").unwrap()))
}

fn cases() -> u32 {
    if std::env::var("MDHUB_SLOW").is_ok_and(|v| v == "1") {
        100_000
    } else {
        2_000
    }
}

/// One derivation state per test thread, fed by every case in turn: cases
/// build on each other's records (links, merges, conflicts), and no case
/// pays for a fresh match index.
struct Fed {
    validator: Validator,
    state: State,
    seq: u64,
}

thread_local! {
    static FED: RefCell<Fed> = RefCell::new({
        let rules = rules();
        Fed {
            validator: Validator::new(Arc::clone(&rules), Limits::default()),
            state: State::new(rules),
            seq: 0,
        }
    });
}

/// Validates `batch` and derives what passes. Every message is either
/// refused with a code and a message, or derived.
fn feed(batch: &[Inbound]) {
    FED.with(|fed| {
        let mut fed = fed.borrow_mut();
        let validated = fed.validator.validate(batch);
        assert_eq!(
            validated.valid.len() + validated.rejected.len(),
            batch.len()
        );
        for (_, r) in &validated.rejected {
            assert!(!r.code.is_empty() && !r.message.is_empty());
            assert_ne!(
                r.code, "internal_error",
                "validation panicked: {}",
                r.message
            );
        }
        for entry in validated.valid {
            fed.seq += 1;
            let seq = fed.seq;
            fed.state
                .apply_cleansed(seq, &entry.payload, entry.cleansed)
                .unwrap();
        }
    });
}

fn subject() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("mdhub.in.crm.customer".to_string()),
        Just("mdhub.in.erp.customer".to_string()),
        Just("mdhub.in.steward.customer".to_string()),
        Just("mdhub.in.crm".to_string()),
        Just("mdhub.in..customer".to_string()),
        "[a-z.>*]{0,30}",
        any::<String>(),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        // Strings that look like what cleansing parses.
        "[0-9+() ./-]{0,24}".prop_map(Value::from),
        "[A-Za-z0-9@._+-]{0,30}".prop_map(Value::from),
        "[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: [&str; 17] = [
    "email",
    "given_name",
    "family_name",
    "full_name",
    "company",
    "job_title",
    "phone",
    "mobile",
    "street",
    "city",
    "postal_code",
    "country",
    "birth_date",
    "tax_id",
    "website",
    "lang",
    "customer_type",
];

/// A change event whose envelope is mostly right and whose values are
/// anything: every field of the model with an arbitrary value, ids and
/// times that collide or overflow, now and then a key replaced.
fn hostile_event() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        prop::sample::select(vec!["crm", "erp", "oa", "steward", "", "CRM", "x.y"]),
        prop_oneof![
            Just("upsert".to_string()),
            Just("delete".to_string()),
            "[a-z]{0,6}"
        ],
        prop_oneof![
            Just("r".to_string()),
            Just("r/4".to_string()),
            Just("/".to_string()),
            any::<String>()
        ],
        prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), any_json(), 0..6),
        prop_oneof![
            Just(json!("2026-01-01T00:00:00Z")),
            Just(json!("9999-12-31T23:59:59Z")),
            Just(json!("0000-01-01T00:00:00Z")),
            any_json()
        ],
        prop_oneof![
            Just(Value::Null),
            prop::collection::vec("[0-9a-f]{64}", 0..3).prop_map(|v| json!(v)),
            any_json()
        ],
        prop::option::of(("[a-z_]{1,14}", any_json())),
        0u8..4,
    )
        .prop_map(
            |(system, op, record_id, fields, observed_at, base, extra, id)| {
                let ids = [
                    "0190b5d6-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                    "0190b5d6-1a2b-7c3d-8e4f-5a6b7c8d9e10",
                    "00000000-0000-0000-0000-000000000000",
                    "not-a-uuid",
                ];
                let mut event = json!({
                    "schema_version": 1,
                    "event_id": ids[id as usize],
                    "system": system,
                    "entity": "customer",
                    "record_id": record_id,
                    "op": op,
                    "fields": fields,
                    "observed_at": observed_at,
                });
                if !base.is_null() {
                    event["base"] = base;
                }
                if let Some((key, value)) = extra {
                    event[key] = value;
                }
                let subject = format!("mdhub.in.{system}.customer");
                (subject, serde_json::to_vec(&event).unwrap())
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_are_refused_or_derived_without_a_panic(
        subject in subject(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        feed(&[Inbound::new(subject, bytes)]);
    }

    #[test]
    fn events_with_arbitrary_values_are_refused_or_derived_without_a_panic(
        batch in prop::collection::vec(hostile_event(), 1..4),
    ) {
        let batch: Vec<Inbound> = batch.into_iter().map(|(s, b)| Inbound::new(s, b)).collect();
        feed(&batch);
    }

    #[test]
    fn well_formed_sequences_of_changes_and_steward_actions_derive_without_a_panic(
        steps in prop::collection::vec(
            (0..3usize, 0..6usize, prop::collection::btree_map(
                prop::sample::select(FIELDS.to_vec()),
                prop_oneof!["[A-Za-z0-9 @.+-]{0,12}".prop_map(Value::from), Just(Value::Null)],
                0..5), 0..8u8, any::<u32>()),
            1..20),
    ) {
        let systems = ["crm", "erp", "oa"];
        let records = ["r", "r/4", "/", "ü", "a b", "r/4/5"];
        let mut batch = Vec::new();
        for (system, record, fields, kind, n) in steps {
            let (subject, payload) = match kind {
                // Mostly changes; now and then a steward action on whatever
                // golden record the state holds for a record.
                0..=4 => {
                    let fields: serde_json::Map<String, Value> = fields
                        .into_iter()
                        .map(|(f, v)| (f.to_string(), v))
                        .collect();
                    (
                        format!("mdhub.in.{}.customer", systems[system]),
                        json!({
                            "schema_version": 1,
                            "event_id": uuid::Uuid::now_v7(),
                            "system": systems[system],
                            "entity": "customer",
                            "record_id": records[record],
                            "op": "upsert",
                            "fields": fields,
                            "observed_at": format!("2026-01-01T00:{:02}:00Z", n % 60),
                        }),
                    )
                }
                5 => (
                    format!("mdhub.in.{}.customer", systems[system]),
                    json!({
                        "schema_version": 1,
                        "event_id": uuid::Uuid::now_v7(),
                        "system": systems[system],
                        "entity": "customer",
                        "record_id": records[record],
                        "op": "delete",
                        "fields": {},
                        "observed_at": "2026-01-01T01:00:00Z",
                    }),
                ),
                _ => {
                    let ids = FED.with(|f| {
                        let mut ids = Vec::new();
                        f.borrow().state.for_each_record(|r| ids.push(r.id)).unwrap();
                        ids
                    });
                    let golden = ids.get(n as usize % 50).copied();
                    let other = ids.get((n as usize / 7) % 50).copied();
                    let Some(golden) = golden else { continue };
                    let command = match (kind, other) {
                        (6, Some(other)) => json!({"type": "merge", "golden_ids": [golden, other]}),
                        (6, None) => continue,
                        _ => json!({"type": "override", "golden_id": golden,
                                    "field": FIELDS[n as usize % FIELDS.len()], "value": "x"}),
                    };
                    (
                        "mdhub.in.steward.customer".to_string(),
                        json!({
                            "action_id": uuid::Uuid::now_v7(),
                            "entity": "customer",
                            "actor": "fuzz",
                            "reason": "fuzz",
                            "at": "2026-01-02T00:00:00Z",
                            "command": command,
                        }),
                    )
                }
            };
            batch.push(Inbound::new(subject, serde_json::to_vec(&payload).unwrap()));
        }
        feed(&batch);
    }
}
