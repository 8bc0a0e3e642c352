//! Record ids drawn to collide, through the real pipeline core and log:
//! derivation never fails (the hub stays healthy), and replaying the log
//! into an empty store gives the live state hash.
//!
//! Derived ids (golden ids, task ids, update ids, Automerge actors) were once
//! joined with "/": record "r/4" and record "r" re-created at entry 4 shared
//! a golden id, and derivation panicked at every start.

use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::{Health, Hub, Inbound};
use mdhub_hub::state::Rules;
use mdhub_schema::Limits;
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

const CONFIG: &str = r#"
[system.crm]
[system.erp]
[system.oa]
receive_all = true
"#;

const SYSTEMS: [&str; 3] = ["crm", "erp", "oa"];

fn rules() -> Arc<Rules> {
    let config = HubConfig::parse(CONFIG, "test").unwrap();
    Arc::new(config.rules(config.load_models("test").unwrap()))
}

/// Ids that join, split and nest into each other, look empty, or are long.
fn record_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "/",
        "//",
        ".",
        "..",
        "r",
        "r/4",
        "r/4/5",
        "r/",
        "/r",
        "r//4",
        "4",
        "r.4",
        "r\\4",
        "ü",
        "u\u{308}",
        "日本/1",
        "\u{200b}",
        "x\u{0}y",
        "\u{feff}r",
        "%2F",
        "null",
        "🦀/🦀",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("a".repeat(255));
    ids.push(format!("{}/", "a".repeat(254)));
    ids.push("é".repeat(128));
    ids
}

struct Run {
    _dir: tempfile::TempDir,
    hub: Hub,
    minute: u32,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let (hub, _) = Hub::open(dir.path(), rules(), Limits::default()).unwrap();
        Run {
            _dir: dir,
            hub,
            minute: 0,
        }
    }

    fn send(&mut self, subject: &str, payload: Value) {
        let batch = [Inbound::new(
            subject.to_string(),
            serde_json::to_vec(&payload).unwrap(),
        )];
        let outcome = self.hub.ingest(&batch).unwrap();
        assert!(
            outcome.rejected.is_empty(),
            "refused: {:?}",
            outcome.rejected
        );
        assert_eq!(self.hub.health(), &Health::Ok, "after {payload}");
    }

    fn change(&mut self, system: &str, record_id: &str, op: &str, fields: Value) {
        self.minute += 1;
        let payload = json!({
            "schema_version": 1,
            "event_id": Uuid::now_v7(),
            "system": system,
            "entity": "customer",
            "record_id": record_id,
            "op": op,
            "fields": fields,
            "observed_at": format!("2026-01-01T00:00:00Z"),
        });
        let mut payload = payload;
        // Distinct times so that most_recent has something to decide.
        payload["observed_at"] = json!(format!(
            "2026-01-{:02}T{:02}:{:02}:00Z",
            1 + self.minute / 1440 % 28,
            self.minute / 60 % 24,
            self.minute % 60
        ));
        self.send(&format!("mdhub.in.{system}.customer"), payload);
    }

    fn steward(&mut self, command: Value) {
        let payload = json!({
            "action_id": Uuid::now_v7(),
            "entity": "customer",
            "actor": "test",
            "reason": "property test",
            "at": "2026-02-01T00:00:00Z",
            "command": command,
        });
        self.send("mdhub.in.steward.customer", payload);
    }

    fn golden_of(&self, system: &str, record_id: &str) -> Option<Uuid> {
        self.hub
            .state()
            .golden_of(&SourceKey {
                system: system.to_string(),
                record_id: record_id.to_string(),
            })
            .unwrap()
    }

    /// Replays the log into an empty store, and reopens the live store:
    /// both give the live state hash.
    fn assert_replay_gives_the_same_state(self) {
        let live = self.hub.state().state_hash().unwrap();
        let entries = self.hub.log().last_seq();
        let dir = self._dir.path().to_path_buf();
        drop(self.hub);
        let into = tempfile::tempdir().unwrap();
        let (replayed, hash) =
            mdhub_hub::hub::rebuild(&dir, &into.path().join("replay"), None, rules()).unwrap();
        assert_eq!(replayed, entries);
        assert_eq!(hash, live, "replay from the log");
        let (reopened, _) = Hub::open(&dir, rules(), Limits::default()).unwrap();
        assert_eq!(reopened.health(), &Health::Ok);
        assert_eq!(
            reopened.state().state_hash().unwrap(),
            live,
            "reopened store"
        );
    }
}

#[derive(Debug, Clone)]
enum Step {
    Upsert {
        system: usize,
        record: usize,
        fields: Vec<(usize, usize)>,
    },
    Delete {
        system: usize,
        record: usize,
    },
    Merge {
        a: (usize, usize),
        b: (usize, usize),
    },
    Split {
        source: (usize, usize),
    },
    Override {
        source: (usize, usize),
        value: usize,
    },
}

/// Field values from small pools, so that records match, merge and conflict.
fn field_value(field: usize, pick: usize) -> (&'static str, Value) {
    match field % 5 {
        0 => ("job_title", json!(["a", "b", "c", "d/e"][pick % 4])),
        1 => ("email", json!(format!("p{}@example.org", pick % 3))),
        2 => ("given_name", json!(["Ann", "Bob", "Ann"][pick % 3])),
        3 => ("family_name", json!(["Lee", "Li", "Lee"][pick % 3])),
        _ => ("phone", json!(format!("+49301234{}", pick % 4))),
    }
}

fn step() -> impl Strategy<Value = Step> {
    let n = record_ids().len();
    let source = (0..3usize, 0..n);
    prop_oneof![
        6 => (0..3usize, 0..n, prop::collection::vec((0..5usize, 0..6usize), 0..4))
            .prop_map(|(system, record, fields)| Step::Upsert { system, record, fields }),
        3 => (0..3usize, 0..n).prop_map(|(system, record)| Step::Delete { system, record }),
        1 => (source.clone(), source.clone()).prop_map(|(a, b)| Step::Merge { a, b }),
        1 => source.clone().prop_map(|source| Step::Split { source }),
        1 => (source, 0..3usize).prop_map(|(source, value)| Step::Override { source, value }),
    ]
}

fn run(steps: &[Step]) {
    let ids = record_ids();
    let mut r = Run::new();
    for s in steps {
        match s {
            Step::Upsert {
                system,
                record,
                fields,
            } => {
                let fields: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(f, v)| {
                        let (name, value) = field_value(*f, *v);
                        (name.to_string(), value)
                    })
                    .collect();
                r.change(
                    SYSTEMS[*system],
                    &ids[*record],
                    "upsert",
                    Value::Object(fields),
                );
            }
            Step::Delete { system, record } => {
                r.change(SYSTEMS[*system], &ids[*record], "delete", json!({}))
            }
            Step::Merge { a, b } => {
                let (Some(x), Some(y)) = (
                    r.golden_of(SYSTEMS[a.0], &ids[a.1]),
                    r.golden_of(SYSTEMS[b.0], &ids[b.1]),
                ) else {
                    continue;
                };
                if x != y {
                    r.steward(json!({"type": "merge", "golden_ids": [x, y]}));
                }
            }
            Step::Split { source } => {
                if r.golden_of(SYSTEMS[source.0], &ids[source.1]).is_some() {
                    r.steward(json!({"type": "split", "system": SYSTEMS[source.0], "record_id": ids[source.1]}));
                }
            }
            Step::Override { source, value } => {
                if let Some(g) = r.golden_of(SYSTEMS[source.0], &ids[source.1]) {
                    let value = [json!("CEO"), json!("a/b"), Value::Null][*value].clone();
                    r.steward(json!({"type": "override", "golden_id": g, "field": "job_title", "value": value}));
                }
            }
        }
    }
    r.assert_replay_gives_the_same_state();
}

fn cases() -> u32 {
    if std::env::var("MDHUB_SLOW").is_ok_and(|v| v == "1") {
        2_000
    } else {
        48
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn sequences_over_colliding_record_ids_derive_and_replay_to_the_same_state(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        run(&steps);
    }
}

/// The four events that made `mdhub serve` panic at every start.
#[test]
fn a_record_recreated_after_a_record_named_like_its_id_and_sequence_gets_its_own_golden_record() {
    let mut r = Run::new();
    r.change("crm", "r", "upsert", json!({"job_title": "a"}));
    let first = r.golden_of("crm", "r").unwrap();
    r.change("crm", "r", "delete", json!({}));
    r.change("crm", "r/4", "upsert", json!({"job_title": "b"}));
    r.change("crm", "r", "upsert", json!({"job_title": "c"}));
    let other = r.golden_of("crm", "r/4").unwrap();
    let again = r.golden_of("crm", "r").unwrap();
    assert_eq!(r.hub.log().last_seq(), 4);
    assert_ne!(again, other);
    assert_ne!(
        again, first,
        "the deleted record's golden record stays retired"
    );
    assert_eq!(
        r.hub
            .state()
            .record(again)
            .unwrap()
            .unwrap()
            .values
            .get("job_title"),
        Some(&json!("c"))
    );
    assert_eq!(
        r.hub
            .state()
            .record(other)
            .unwrap()
            .unwrap()
            .values
            .get("job_title"),
        Some(&json!("b"))
    );
    r.assert_replay_gives_the_same_state();
}
