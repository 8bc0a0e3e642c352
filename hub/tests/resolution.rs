//! Entity resolution, given/when/then: link, review, merge, split,
//! override, a "different" decision, and a retired id that answers with
//! its survivor. All through log entries applied to the derived state.

use std::collections::BTreeMap;
use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::{rebuild, Hub, Inbound};
use mdhub_hub::resolve::TaskStatus;
use mdhub_hub::state::{Outbound, Rules, State};
use mdhub_hub::steward::{Command, StewardAction};
use mdhub_schema::{ChangeEvent, Limits, Op, SCHEMA_VERSION};
use serde_json::{json, Value};
use uuid::Uuid;

struct Given {
    state: State,
    seq: u64,
}

fn given() -> Given {
    given_with("")
}

/// `given()` with more configuration (e.g. another system).
fn given_with(more_toml: &str) -> Given {
    Given {
        state: State::new(rules_with(more_toml)),
        seq: 0,
    }
}

/// The config of these tests: links at 0.99, where Anne (another street)
/// is a review task rather than a link.
fn rules_with(more_toml: &str) -> Arc<Rules> {
    let config = HubConfig::parse(
        &format!("[system.crm]\nregion = \"DE\"\n[system.erp]\nregion = \"DE\"\n{more_toml}[survivorship]\nsource_priority = [\"erp\", \"crm\"]\n[match]\nlink_probability = 0.99\n"),
        "test",
    )
    .unwrap();
    let models = config.load_models("test").unwrap();
    Arc::new(config.rules(models))
}

/// The `seq`th change event of a test: ids and times follow from `seq`.
fn change_event(seq: u64, system: &str, record_id: &str, fields: Value) -> ChangeEvent {
    let fields: BTreeMap<String, Value> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("event/{seq}").as_bytes()),
        system: system.into(),
        entity: "customer".into(),
        record_id: record_id.into(),
        op: Op::Upsert,
        fields,
        observed_at: time::macros::datetime!(2026-01-01 00:00 UTC)
            + time::Duration::minutes(seq as i64),
        base: None,
        caused_by: None,
    }
}

fn steward_action(seq: u64, command: Command) -> StewardAction {
    StewardAction {
        action_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("action/{seq}").as_bytes()),
        entity: "customer".into(),
        actor: "dana".into(),
        reason: "checked with the customer".into(),
        at: time::macros::datetime!(2026-02-01 00:00 UTC),
        command,
    }
}

/// Anna Schmidt as a system would send her, without an email (so that only
/// fuzzy matching can link her).
fn anna() -> Value {
    json!({
        "customer_type": "person",
        "given_name": "Anna",
        "family_name": "Schmidt",
        "birth_date": "1985-03-01",
        "street": "Hauptstraße 5",
        "postal_code": "10115",
        "city": "Berlin",
        "phone": "030 1234567",
    })
}

impl Given {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn when(&mut self, system: &str, record_id: &str, fields: Value) -> Vec<Outbound> {
        let seq = self.next();
        let e = change_event(seq, system, record_id, fields);
        self.state
            .apply(seq, &LogPayload::Change(e))
            .unwrap()
            .outbound
    }

    fn steward(&mut self, command: Command) -> Vec<Outbound> {
        let seq = self.next();
        let a = steward_action(seq, command);
        self.state
            .apply(seq, &LogPayload::Steward(a))
            .unwrap()
            .outbound
    }

    fn golden(&self, system: &str, record_id: &str) -> Uuid {
        self.state
            .golden_of(&SourceKey {
                system: system.into(),
                record_id: record_id.into(),
            })
            .unwrap()
            .expect("linked")
    }
}

fn updates_to(out: &[Outbound], system: &str) -> Vec<mdhub_schema::GoldenUpdate> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Update(u) if u.system == system => Some(u.clone()),
            _ => None,
        })
        .collect()
}

/// crm holds Anna twice, once by email and once by tax id (two golden
/// records); then an erp record carrying both arrives. Returns the two
/// golden ids, in creation order, and what the erp record caused.
fn two_records_bridged_by_a_third(g: &mut Given) -> (Uuid, Uuid, Vec<Outbound>) {
    g.when(
        "crm",
        "c1",
        json!({"email": "anna@example.org", "given_name": "Anna", "family_name": "Schmidt"}),
    );
    g.when(
        "crm",
        "c2",
        json!({"tax_id": "DE123456789", "given_name": "Anna", "family_name": "Schmidt"}),
    );
    let (first, second) = (g.golden("crm", "c1"), g.golden("crm", "c2"));
    assert_ne!(first, second);
    // The erp record carries both the email and the tax id.
    let out = g.when(
        "erp",
        "e1",
        json!({"email": "anna@example.org", "tax_id": "DE 123 456 789", "given_name": "Anna", "family_name": "Schmidt"}),
    );
    (first, second, out)
}

#[test]
fn a_close_match_links_automatically_despite_nickname_typo_and_phone_format() {
    let mut g = given();
    g.when("crm", "c1", anna());
    let mut erp = anna();
    erp["given_name"] = json!("Ana");
    erp["phone"] = json!("+49 30 1234567");
    erp["street"] = json!("Hauptstr. 5");
    let out = g.when("erp", "e1", erp);
    assert_eq!(g.golden("crm", "c1"), g.golden("erp", "e1"));
    assert_eq!(g.state.golden_count(), 1);
    // The crm record is told the golden values it lacks (erp wins names).
    assert!(!updates_to(&out, "crm").is_empty());
}

#[test]
fn a_doubtful_match_gets_its_own_record_and_a_review_task_naming_the_candidate() {
    let mut g = given();
    g.when("crm", "c1", anna());
    // A similar name, same family name and town, no birth date, other
    // street and phone.
    g.when(
        "erp",
        "e1",
        json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
               "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
    );
    let (a, b) = (g.golden("crm", "c1"), g.golden("erp", "e1"));
    assert_ne!(a, b);
    let tasks: Vec<_> = g.state.review_tasks().collect();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].golden_id, b);
    assert_eq!(tasks[0].candidate, a);
    assert_eq!(tasks[0].status, TaskStatus::Open);
    assert!(!tasks[0].parts.is_empty(), "the task explains its score");
}

#[test]
fn a_record_matching_two_golden_records_merges_them_and_the_old_id_answers_with_the_survivor() {
    let mut g = given();
    let (first, second, out) = two_records_bridged_by_a_third(&mut g);
    let survivor = g.golden("erp", "e1");
    assert_eq!(survivor, first, "the golden record created first survives");
    assert_eq!(g.golden("crm", "c2"), survivor);
    let retired = g.state.record(second).unwrap().unwrap();
    assert!(retired.retired);
    assert_eq!(retired.merged_into, Some(survivor));
    assert_eq!(g.state.survivor(second), survivor);
    // Every source value is kept: the survivor has all three links and the
    // retired record's tax id candidate.
    let r = g.state.record(survivor).unwrap().unwrap();
    assert_eq!(r.links.len(), 3);
    assert_eq!(r.values["tax_id"], "DE 123 456 789");
    assert!(r.candidates["tax_id"]
        .iter()
        .any(|c| c.value == "DE123456789"));
    // The feed says where the retired id went.
    assert!(out.iter().any(|o| matches!(o, Outbound::Golden(c) if c.golden_id == second && c.merged_into == Some(survivor))));
}

#[test]
fn after_a_merge_a_system_receiving_all_records_is_sent_what_changed_in_the_survivor() {
    let mut g = given_with("[system.oa]\nreceive_all = true\n");
    let (_, _, out) = two_records_bridged_by_a_third(&mut g);
    let survivor = g.golden("erp", "e1");
    // oa holds no copy of either record: it holds each golden record under
    // its own id, so for the survivor it lacks only what the merge changed.
    let to_oa: Vec<_> = updates_to(&out, "oa")
        .into_iter()
        .filter(|u| u.golden_id == survivor)
        .collect();
    assert_eq!(to_oa.len(), 1, "{to_oa:?}");
    let fields: Vec<&str> = to_oa[0].fields.keys().map(String::as_str).collect();
    assert_eq!(fields, ["tax_id"]);
}

#[test]
fn a_steward_merge_and_a_same_decision_join_records() {
    let mut g = given();
    g.when("crm", "c1", anna());
    g.when(
        "erp",
        "e1",
        json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
               "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
    );
    let task = g.state.review_tasks().next().unwrap().task_id;
    let out = g.steward(Command::Decide {
        task_id: task,
        same: true,
    });
    assert_eq!(g.golden("crm", "c1"), g.golden("erp", "e1"));
    assert_eq!(g.state.review_task(task).unwrap().status, TaskStatus::Same);
    assert!(
        !updates_to(&out, "erp").is_empty(),
        "erp hears of its new golden id"
    );

    // A plain merge of two unrelated records.
    g.when("crm", "c7", json!({"email": "x@example.org"}));
    g.when("crm", "c8", json!({"email": "y@example.org"}));
    let (x, y) = (g.golden("crm", "c7"), g.golden("crm", "c8"));
    g.steward(Command::Merge { golden_ids: [y, x] });
    assert_eq!(g.golden("crm", "c8"), x, "the first created survives");
    assert_eq!(g.state.survivor(y), x);
}

#[test]
fn a_different_decision_keeps_the_pair_apart_for_good() {
    let mut g = given();
    g.when("crm", "c1", anna());
    g.when(
        "erp",
        "e1",
        json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
               "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
    );
    let task = g.state.review_tasks().next().unwrap().task_id;
    g.steward(Command::Decide {
        task_id: task,
        same: false,
    });
    assert_eq!(
        g.state.review_task(task).unwrap().status,
        TaskStatus::Different
    );
    // erp's record later gains everything that would link it automatically.
    g.when("erp", "e1", anna());
    assert_ne!(g.golden("crm", "c1"), g.golden("erp", "e1"));
}

#[test]
fn a_split_gives_the_source_record_its_own_golden_record_and_it_is_not_matched_back() {
    let mut g = given();
    g.when("crm", "c1", anna());
    let mut erp = anna();
    erp["job_title"] = json!("Buyer");
    g.when("erp", "e1", erp);
    let joined = g.golden("crm", "c1");
    assert_eq!(joined, g.golden("erp", "e1"));
    let out = g.steward(Command::Split {
        system: "erp".into(),
        record_id: "e1".into(),
    });
    let own = g.golden("erp", "e1");
    assert_ne!(own, joined);
    assert_eq!(
        g.state.record(own).unwrap().unwrap().values["job_title"],
        "Buyer"
    );
    // The old record no longer has erp's values (no erp record stays).
    assert!(!g
        .state
        .record(joined)
        .unwrap()
        .unwrap()
        .values
        .contains_key("job_title"));
    let to_erp = updates_to(&out, "erp");
    assert!(
        to_erp.iter().any(|u| u.golden_id == own),
        "erp hears of its new golden id"
    );
    // The next change of the erp record does not rejoin it.
    let mut again = anna();
    again["job_title"] = json!("Head of Buying");
    g.when("erp", "e1", again);
    assert_eq!(g.golden("erp", "e1"), own);
}

#[test]
fn an_override_wins_over_every_source_until_cleared() {
    let mut g = given();
    g.when("crm", "c1", anna());
    let id = g.golden("crm", "c1");
    let out = g.steward(Command::Override {
        golden_id: id,
        field: "city".into(),
        value: json!("Berlin-Mitte"),
    });
    assert_eq!(
        g.state.record(id).unwrap().unwrap().values["city"],
        "Berlin-Mitte"
    );
    assert_eq!(updates_to(&out, "crm")[0].fields["city"], "Berlin-Mitte");
    let mut moved = anna();
    moved["city"] = json!("Potsdam");
    g.when("crm", "c1", moved);
    assert_eq!(
        g.state.record(id).unwrap().unwrap().values["city"],
        "Berlin-Mitte",
        "the override holds"
    );
    g.steward(Command::Override {
        golden_id: id,
        field: "city".into(),
        value: Value::Null,
    });
    assert_eq!(
        g.state.record(id).unwrap().unwrap().values["city"],
        "Potsdam"
    );
}

#[test]
fn a_value_that_fails_cleansing_is_kept_and_flagged_not_matched_on() {
    let mut g = given();
    g.when(
        "crm",
        "c1",
        json!({"email": "anna(at)example.org", "phone": "n/a", "given_name": "Anna"}),
    );
    g.when(
        "erp",
        "e1",
        json!({"email": "anna(at)example.org", "given_name": "Bert"}),
    );
    let id = g.golden("crm", "c1");
    assert_ne!(id, g.golden("erp", "e1"), "an invalid email links nothing");
    let r = g.state.record(id).unwrap().unwrap();
    assert_eq!(r.values["email"], "anna(at)example.org", "kept as sent");
    let issues = &r.quality[&SourceKey {
        system: "crm".into(),
        record_id: "c1".into(),
    }];
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["email", "phone"]);
    assert!(issues[1].reason.contains("phone"), "{}", issues[1].reason);
}

/// A hub on a real store in a temp dir, fed as the bus adapters feed it:
/// message bytes on their subjects.
struct LiveHub {
    hub: Hub,
    seq: u64,
    last: Option<Inbound>,
}

impl LiveHub {
    fn ingest(&mut self, subject: &str, payload: Vec<u8>) {
        let message = Inbound::new(subject, payload);
        let outcome = self.hub.ingest(std::slice::from_ref(&message)).unwrap();
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        self.last = Some(message);
    }

    /// The last message once more, as the bus redelivers it after a lost ack.
    fn redeliver_last(&mut self) {
        let message = self.last.clone().expect("something was sent");
        let outcome = self.hub.ingest(&[message]).unwrap();
        assert_eq!((outcome.appended, outcome.duplicates), (0, 1));
    }

    fn when(&mut self, system: &str, record_id: &str, fields: Value) {
        self.seq += 1;
        let e = change_event(self.seq, system, record_id, fields);
        self.ingest(
            &format!("mdhub.in.{system}.customer"),
            serde_json::to_vec(&e).unwrap(),
        );
    }

    fn steward(&mut self, command: Command) {
        self.seq += 1;
        let a = steward_action(self.seq, command);
        self.ingest("mdhub.in.steward.customer", serde_json::to_vec(&a).unwrap());
    }

    fn golden(&self, system: &str, record_id: &str) -> Uuid {
        self.hub
            .state()
            .golden_of(&SourceKey {
                system: system.into(),
                record_id: record_id.into(),
            })
            .unwrap()
            .expect("linked")
    }
}

#[test]
fn replaying_merges_splits_and_decisions_gives_the_same_state_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (live, copy) = (dir.path().join("live"), dir.path().join("copy"));
    let rules = rules_with("");
    let (hub, pending) = Hub::open(&live, Arc::clone(&rules), Limits::default()).unwrap();
    assert!(pending.is_empty());
    let mut g = LiveHub {
        hub,
        seq: 0,
        last: None,
    };

    // A review task decided "same", then split apart again.
    g.when("crm", "c1", anna());
    g.when(
        "erp",
        "e1",
        json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
               "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
    );
    let task = g.hub.state().review_tasks().next().unwrap().task_id;
    g.steward(Command::Decide {
        task_id: task,
        same: true,
    });
    assert_eq!(g.golden("crm", "c1"), g.golden("erp", "e1"));
    g.steward(Command::Split {
        system: "erp".into(),
        record_id: "e1".into(),
    });
    assert_ne!(g.golden("crm", "c1"), g.golden("erp", "e1"));
    // A steward merge of two unrelated records, and an override on the
    // survivor.
    g.when("crm", "c7", json!({"email": "x@example.org"}));
    g.when("crm", "c8", json!({"email": "y@example.org"}));
    let (x, y) = (g.golden("crm", "c7"), g.golden("crm", "c8"));
    g.steward(Command::Merge { golden_ids: [x, y] });
    assert_eq!(g.golden("crm", "c8"), x);
    g.steward(Command::Override {
        golden_id: x,
        field: "city".into(),
        value: json!("Hamburg"),
    });
    g.redeliver_last();

    let entries = g.hub.log().last_seq();
    assert_eq!(entries, 8, "every event and action once in the log");
    let live_hash = g.hub.state().state_hash().unwrap();
    // redb locks the log file: the live hub must be gone before the log is
    // read again.
    drop(g);

    let (copied, rebuilt_hash) = rebuild(&live, &copy, None, Arc::clone(&rules)).unwrap();
    assert_eq!(copied, entries, "the rebuilt log holds every entry");
    assert_eq!(
        rebuilt_hash, live_hash,
        "deriving the copied log from nothing gives the live state"
    );

    let (reopened, _) = Hub::open(&live, rules, Limits::default()).unwrap();
    assert_eq!(reopened.log().last_seq(), entries);
    assert_eq!(
        reopened.state().state_hash().unwrap(),
        live_hash,
        "a restart derives the live state from its own log"
    );
    let survivor = reopened.state().record(x).unwrap().unwrap();
    assert_eq!(survivor.values["city"], "Hamburg");
    assert_eq!(
        reopened.state().record(y).unwrap().unwrap().merged_into,
        Some(x)
    );
}
