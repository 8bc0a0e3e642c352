//! Given/when/then for the golden-record logic, through the pipeline core and
//! the in-process bus: given these events, when this one arrives, then this
//! golden state and these outbound updates.

use std::collections::BTreeMap;
use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::Hub;
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_schema::{ChangeEvent, GoldenUpdate, Limits, Op, UpdateOp, SCHEMA_VERSION};
use serde_json::{json, Value};
use uuid::Uuid;

struct Given {
    _dir: tempfile::TempDir,
    hub: Hub,
    bus: MemoryBus,
    minute: i64,
}

const CONFIG: &str = r#"
[system.crm]
[system.erp]
[system.bi]
receive_all = true
fields = ["email", "company"]
[survivorship]
source_priority = ["erp", "crm"]
"#;

fn given() -> Given {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig::parse(CONFIG, "test").unwrap();
    let rules = Arc::new(config.rules(config.load_models("test").unwrap()));
    let (hub, pending) = Hub::open(dir.path(), rules, Limits::default()).unwrap();
    assert!(pending.is_empty());
    Given {
        _dir: dir,
        hub,
        bus: MemoryBus::default(),
        minute: 0,
    }
}

impl Given {
    fn event(
        &mut self,
        system: &str,
        record: &str,
        fields: Value,
        base: Option<Vec<String>>,
    ) -> ChangeEvent {
        self.minute += 1;
        let fields: BTreeMap<String, Value> = serde_json::from_value(fields).unwrap();
        ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            system: system.into(),
            entity: "customer".into(),
            record_id: record.into(),
            op: if fields.is_empty() {
                Op::Delete
            } else {
                Op::Upsert
            },
            fields,
            observed_at: time::macros::datetime!(2026-01-01 00:00 UTC)
                + time::Duration::minutes(self.minute),
            base,
            caused_by: None,
        }
    }

    /// Sends one event and returns the updates each system received.
    fn when(
        &mut self,
        system: &str,
        record: &str,
        fields: Value,
    ) -> BTreeMap<String, Vec<GoldenUpdate>> {
        let e = self.event(system, record, fields, None);
        self.send(e)
    }

    fn send(&mut self, e: ChangeEvent) -> BTreeMap<String, Vec<GoldenUpdate>> {
        self.bus.publish(&e);
        let outcome = self.bus.pump(&mut self.hub, 100).unwrap();
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        ["crm", "erp", "bi"]
            .iter()
            .map(|s| (s.to_string(), self.bus.take_updates(s)))
            .filter(|(_, u)| !u.is_empty())
            .collect()
    }

    fn golden(
        &self,
        system: &str,
        record: &str,
    ) -> std::borrow::Cow<'_, mdhub_hub::golden::GoldenRecord> {
        let id = self
            .hub
            .state()
            .golden_of(&SourceKey {
                system: system.into(),
                record_id: record.into(),
            })
            .unwrap()
            .expect("linked");
        self.hub.state().record(id).unwrap().unwrap()
    }
}

#[test]
fn records_with_the_same_email_join_and_each_system_gets_what_it_lacks() {
    let mut g = given();
    let out = g.when(
        "crm",
        "c1",
        json!({"email": "Ann@Example.com", "given_name": "Ann"}),
    );
    // The writer holds everything; the receive_all system gets its fields only.
    assert!(!out.contains_key("crm"));
    assert_eq!(
        out["bi"][0].fields,
        BTreeMap::from([("email".into(), json!("ann@example.com"))])
    );
    assert_eq!(out["bi"][0].record_id, None);

    let out = g.when(
        "erp",
        "e7",
        json!({"email": "ann@example.com ", "company": "Lee GmbH"}),
    );
    assert_eq!(
        out["crm"][0].fields,
        BTreeMap::from([("company".into(), json!("Lee GmbH"))])
    );
    assert_eq!(out["crm"][0].record_id.as_deref(), Some("c1"));
    assert_eq!(
        out["erp"][0].fields,
        BTreeMap::from([("given_name".into(), json!("Ann"))])
    );
    assert_eq!(
        out["bi"][0].fields,
        BTreeMap::from([("company".into(), json!("Lee GmbH"))])
    );
    let r = g.golden("erp", "e7");
    assert_eq!(r.links.len(), 2);
    assert_eq!(r.values["email"], "ann@example.com");
    assert_eq!(out["crm"][0].version, r.version());
}

#[test]
fn a_concurrent_edit_is_a_conflict_decided_by_policy_with_all_candidates_kept() {
    let mut g = given();
    g.when("crm", "c1", json!({"email": "a@x.com", "company": "Lee"}));
    g.when("erp", "e1", json!({"email": "a@x.com"}));
    // Neither has seen the other's company: source_priority says erp wins.
    let out = g.when("erp", "e1", json!({"company": "Lee GmbH & Co. KG"}));
    let r = g.golden("crm", "c1");
    assert_eq!(r.values["company"], "Lee GmbH & Co. KG");
    let cands = &r.candidates["company"];
    assert_eq!(cands.len(), 2);
    assert_eq!(
        cands.iter().map(|c| c.system.as_str()).collect::<Vec<_>>(),
        ["crm", "erp"]
    );
    assert_eq!(out["crm"][0].fields["company"], "Lee GmbH & Co. KG");
    assert!(
        !out.contains_key("erp"),
        "the winner is not told its own value"
    );
}

#[test]
fn an_edit_on_top_of_the_golden_version_supersedes_without_conflict() {
    let mut g = given();
    g.when("erp", "e1", json!({"email": "a@x.com", "company": "Lee"}));
    let out = g.when("crm", "c1", json!({"email": "a@x.com"}));
    let version = out["crm"][0].version.clone();
    // crm applied "Lee" and then changed it: lower priority, but causal.
    let e = g.event("crm", "c1", json!({"company": "Lee AG"}), Some(version));
    let out = g.send(e);
    let r = g.golden("crm", "c1");
    assert_eq!(r.candidates["company"].len(), 1);
    assert_eq!(r.values["company"], "Lee AG");
    assert_eq!(out["erp"][0].fields["company"], "Lee AG");
}

#[test]
fn an_echo_of_an_applied_update_causes_no_update() {
    let mut g = given();
    g.when(
        "crm",
        "c1",
        json!({"email": "a@x.com", "phone": "+49 30 1234"}),
    );
    let out = g.when("erp", "e1", json!({"email": "a@x.com"}));
    let u = &out["erp"][0];
    assert_eq!(u.fields["phone"], "+49301234");
    // The ERP writes it in its own format; its change capture sends it back.
    let e = g.event(
        "erp",
        "e1",
        json!({"phone": "+49 (30) 1234"}),
        Some(u.version.clone()),
    );
    let out = g.send(e);
    assert!(out.is_empty(), "echo answered with {out:?}");
}

#[test]
fn deleting_the_last_source_retires_the_golden_record() {
    let mut g = given();
    g.when("crm", "c1", json!({"email": "a@x.com"}));
    g.when("erp", "e1", json!({"email": "a@x.com"}));
    let id = g.golden("crm", "c1").id;
    let out = g.when("crm", "c1", json!({}));
    assert!(
        out.is_empty(),
        "a golden record with links left changes nothing"
    );
    assert!(!g.hub.state().record(id).unwrap().unwrap().retired);
    let out = g.when("erp", "e1", json!({}));
    assert_eq!(out["bi"][0].op, UpdateOp::Retire);
    let r = g.hub.state().record(id).unwrap().unwrap();
    assert!(r.retired && r.links.is_empty());
    assert_eq!(r.values["email"], "a@x.com", "retired, not erased");
    // A new record with the same email brings it back.
    g.when("crm", "c9", json!({"email": "a@x.com"}));
    assert!(!g.hub.state().record(id).unwrap().unwrap().retired);
}

#[test]
fn replaying_the_log_gives_the_same_state_hash() {
    let mut g = given();
    for i in 0..50 {
        g.when(
            "crm",
            &format!("c{i}"),
            json!({"email": format!("p{}@x.com", i % 20), "phone": format!("+4930{i:04}")}),
        );
        g.when(
            "erp",
            &format!("e{i}"),
            json!({"email": format!("p{}@x.com", i % 30), "company": format!("Co {i}")}),
        );
    }
    let live = g.hub.state().state_hash().unwrap();
    let into = tempfile::tempdir().unwrap();
    let config = HubConfig::parse(CONFIG, "test").unwrap();
    let rules = Arc::new(config.rules(config.load_models("test").unwrap()));
    let dir = g._dir.path().to_path_buf();
    drop(g.hub);
    let (entries, rebuilt) =
        mdhub_hub::hub::rebuild(&dir, &into.path().join("r"), None, rules).unwrap();
    assert_eq!(entries, 100);
    assert_eq!(rebuilt, live);
}
