//! A golden record's history over a scenario with a conflict, an override,
//! a merge and a split, checked against what each entry did by hand.

use std::sync::Arc;

use mdhub_hub::audit::history::{history, History};
use mdhub_hub::config::HubConfig;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::Hub;
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_hub::steward::{Command, StewardAction};
use mdhub_schema::{ChangeEvent, Limits, Op, SCHEMA_VERSION};
use serde_json::{json, Value};
use uuid::Uuid;

struct Scenario {
    dir: tempfile::TempDir,
    rules: Arc<mdhub_hub::state::Rules>,
    hub: Hub,
    bus: MemoryBus,
    n: u64,
}

impl Scenario {
    fn new() -> Scenario {
        let config = HubConfig::parse(
            "[system.erp]\n[system.crm]\n[system.oa]\n\
             [survivorship]\nsource_priority = [\"erp\", \"crm\", \"oa\"]\n[match]\ntrain_at = 0\n",
            "history",
        )
        .unwrap();
        let rules = Arc::new(config.rules(config.load_models("history").unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let (hub, _) = Hub::open(dir.path(), Arc::clone(&rules), Limits::default()).unwrap();
        Scenario {
            dir,
            rules,
            hub,
            bus: MemoryBus::default(),
            n: 0,
        }
    }

    fn send(&mut self, system: &str, record_id: &str, fields: Value) -> Uuid {
        self.n += 1;
        let event = ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("history/{}", self.n).as_bytes(),
            ),
            system: system.into(),
            entity: "customer".into(),
            record_id: record_id.into(),
            op: Op::Upsert,
            fields: serde_json::from_value(fields).unwrap(),
            observed_at: time::macros::datetime!(2026-03-01 09:00 UTC)
                + time::Duration::minutes(self.n as i64),
            base: None,
            caused_by: None,
        };
        self.bus.publish(&event);
        self.pump();
        event.event_id
    }

    fn steward(&mut self, command: Command, reason: &str) -> Uuid {
        self.n += 1;
        let action = StewardAction {
            action_id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("history/{}", self.n).as_bytes(),
            ),
            entity: "customer".into(),
            actor: "dana".into(),
            reason: reason.into(),
            at: time::macros::datetime!(2026-03-02 10:00 UTC),
            command,
        };
        self.bus.publish_raw(
            "mdhub.in.steward.customer".into(),
            serde_json::to_vec(&action).unwrap(),
        );
        self.pump();
        action.action_id
    }

    /// Stops the hub (its derived state checkpointed) and opens it again.
    fn restart(&mut self) {
        self.hub.checkpoint().unwrap();
        // The old hub must let go of its log before the new one opens it:
        // a hub on a scratch dir takes its place meanwhile.
        let placeholder = tempfile::tempdir().unwrap();
        let (other, _) = Hub::open(
            placeholder.path(),
            Arc::clone(&self.rules),
            Limits::default(),
        )
        .unwrap();
        drop(std::mem::replace(&mut self.hub, other));
        let (hub, _) =
            Hub::open(self.dir.path(), Arc::clone(&self.rules), Limits::default()).unwrap();
        self.hub = hub;
        // On the memory store (`MDHUB_STORE=memory`) nothing outlives the
        // hub: the start derives the whole log again.
        let persisted = std::env::var("MDHUB_STORE").as_deref() != Ok("memory");
        let expected = if persisted { self.n } else { 0 };
        assert_eq!(self.hub.started_from_seq(), expected);
    }

    fn pump(&mut self) {
        let outcome = self.bus.pump(&mut self.hub, 10).unwrap();
        assert!(
            !outcome.degraded && outcome.rejected.is_empty(),
            "{outcome:?}"
        );
        assert_eq!(self.hub.log().last_seq(), self.n, "each input is one entry");
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

    fn history(&self, id: Uuid, after_seq: u64, limit: usize) -> History {
        history(&self.hub, id, after_seq, limit).unwrap()
    }
}

fn change(before: Value, after: Value) -> Value {
    json!({"before": before, "after": after})
}

fn source(system: &str, record_id: &str) -> Value {
    json!({"system": system, "record_id": record_id})
}

/// The steps of a history page as JSON, without the `golden_id` of the
/// page (each step names its own).
fn steps(page: &History) -> Vec<Value> {
    serde_json::to_value(page).unwrap()["steps"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn history_follows_a_conflict_an_override_a_merge_and_a_split() {
    let mut s = Scenario::new();
    // 1: crm creates Ada.
    let e1 = s.send(
        "crm",
        "crm-1",
        json!({"email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace", "city": "Berlin"}),
    );
    let ada = s.golden("crm", "crm-1");
    // 2: erp has her too, in another city: erp ranks first.
    let e2 = s.send(
        "erp",
        "erp-1",
        json!({"email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace", "city": "Hamburg"}),
    );
    assert_eq!(s.golden("erp", "erp-1"), ada, "matched by email and name");
    // 3: oa creates Bob.
    s.send(
        "oa",
        "oa-7",
        json!({"email": "bob@example.org", "given_name": "Bob", "family_name": "Byron", "city": "Köln"}),
    );
    let bob = s.golden("oa", "oa-7");
    assert_ne!(bob, ada);
    // 4: a steward overrides Ada's city.
    let a4 = s.steward(
        Command::Override {
            golden_id: ada,
            field: "city".into(),
            value: json!("München"),
        },
        "she moved, said so on the phone",
    );
    // 5: a steward merges Bob into Ada (the older record survives).
    s.steward(
        Command::Merge {
            golden_ids: [bob, ada],
        },
        "one customer",
    );
    assert_eq!(s.hub.state().survivor(bob), ada);
    // 6: a steward splits crm-1 off again.
    s.steward(
        Command::Split {
            system: "crm".into(),
            record_id: "crm-1".into(),
        },
        "crm-1 is her daughter",
    );
    let daughter = s.golden("crm", "crm-1");
    assert_ne!(daughter, ada);

    let ada_steps = steps(&s.history(ada, 0, 100));
    let seqs: Vec<u64> = ada_steps
        .iter()
        .map(|st| st["log_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        vec![1, 2, 4, 5, 6],
        "every entry that changed Ada, and only those"
    );

    // 1: created from crm-1.
    let first = &ada_steps[0];
    assert_eq!(first["kind"], "change");
    assert_eq!(first["system"], "crm");
    assert_eq!(first["record_id"], "crm-1");
    assert_eq!(first["op"], "upsert");
    assert_eq!(first["event_id"], json!(e1));
    assert_eq!(first["observed_at"], "2026-03-01T09:01:00Z");
    assert_eq!(first["linked"], json!([source("crm", "crm-1")]));
    assert_eq!(
        first["changes"],
        json!({
            "city": change(Value::Null, json!("Berlin")),
            "email": change(Value::Null, json!("ada@example.com")),
            "family_name": change(Value::Null, json!("Lovelace")),
            "given_name": change(Value::Null, json!("Ada")),
        })
    );
    // 2: erp's city wins the conflict; erp-1 is linked.
    let second = &ada_steps[1];
    assert_eq!(second["system"], "erp");
    assert_eq!(second["event_id"], json!(e2));
    assert_eq!(second["linked"], json!([source("erp", "erp-1")]));
    assert_eq!(
        second["changes"],
        json!({"city": change(json!("Berlin"), json!("Hamburg"))})
    );
    // 4: the override, with who and why.
    let fourth = &ada_steps[2];
    assert_eq!(fourth["kind"], "steward");
    assert_eq!(fourth["actor"], "dana");
    assert_eq!(fourth["reason"], "she moved, said so on the phone");
    assert_eq!(fourth["event_id"], json!(a4));
    assert_eq!(fourth["action"]["type"], "override");
    assert_eq!(
        fourth["changes"],
        json!({"city": change(json!("Hamburg"), json!("München"))})
    );
    // 5: the merge brings oa-7 and its values. The customer model keeps
    // the most recent email (oa's, 09:03), the longest given name (Ada
    // and Bob tie at 3 letters: the most recent, Bob) and family name
    // (Lovelace); the city stays overridden.
    let fifth = &ada_steps[3];
    assert_eq!(fifth["action"]["type"], "merge");
    assert_eq!(fifth["linked"], json!([source("oa", "oa-7")]));
    assert_eq!(
        fifth["changes"],
        json!({
            "email": change(json!("ada@example.com"), json!("bob@example.org")),
            "given_name": change(json!("Ada"), json!("Bob")),
        })
    );
    assert_eq!(fifth["others"], json!([bob]));
    // 6: the split takes crm-1 to a record of its own.
    let sixth = &ada_steps[4];
    assert_eq!(sixth["action"]["type"], "split");
    assert_eq!(sixth["unlinked"], json!([source("crm", "crm-1")]));
    // erp-1 and oa-7 stay: the same winners, nothing changes.
    assert_eq!(sixth["changes"], json!({}));
    assert_eq!(sixth["others"], json!([daughter]));

    // Bob's history continues in Ada's after the merge: his steps, the
    // merge from both sides, then Ada's.
    let bob_steps = steps(&s.history(bob, 0, 100));
    let of: Vec<(u64, Uuid)> = bob_steps
        .iter()
        .map(|st| {
            (
                st["log_seq"].as_u64().unwrap(),
                serde_json::from_value(st["golden_id"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(of, vec![(3, bob), (5, bob), (5, ada), (6, ada)]);
    assert_eq!(bob_steps[1]["merged_into"], json!(ada));
    assert_eq!(bob_steps[1]["retired"], true);
    assert_eq!(bob_steps[1]["unlinked"], json!([source("oa", "oa-7")]));

    // The daughter's record starts at the split, with crm-1's values.
    let daughter_steps = steps(&s.history(daughter, 0, 100));
    assert_eq!(daughter_steps.len(), 1);
    assert_eq!(daughter_steps[0]["log_seq"], 6);
    assert_eq!(daughter_steps[0]["linked"], json!([source("crm", "crm-1")]));
    assert_eq!(
        daughter_steps[0]["changes"]["city"],
        change(Value::Null, json!("Berlin"))
    );
    assert_eq!(daughter_steps[0]["others"], json!([ada]));

    // As of each entry: Ada's values, links and conflicts then, and the
    // entry that set each value.
    let state = s.hub.state();
    let then = state.as_of(ada, 2).unwrap().unwrap();
    assert_eq!(then.values["city"], json!("Hamburg"));
    assert_eq!(then.set_by["city"], 2);
    assert_eq!(then.set_by["email"], 1);
    assert_eq!(
        then.links
            .iter()
            .map(|k| k.record_id.as_str())
            .collect::<Vec<_>>(),
        vec!["crm-1", "erp-1"]
    );
    let cities: Vec<(&str, &Value)> = then.candidates["city"]
        .iter()
        .map(|c| (c.system.as_str(), &c.value))
        .collect();
    assert_eq!(
        cities,
        vec![("crm", &json!("Berlin")), ("erp", &json!("Hamburg"))],
        "the conflict as it stood"
    );
    let then = state.as_of(ada, 3).unwrap().unwrap();
    assert_eq!(then.last_seq, 2, "entry 3 did not touch Ada");
    let then = state.as_of(ada, 4).unwrap().unwrap();
    assert_eq!(
        (then.values["city"].clone(), then.set_by["city"]),
        (json!("München"), 4)
    );
    let then = state.as_of(ada, 5).unwrap().unwrap();
    assert_eq!(then.links.len(), 3);
    assert_eq!(then.set_by["email"], 5);
    let then = state.as_of(ada, 6).unwrap().unwrap();
    assert_eq!(
        then.links
            .iter()
            .map(|k| k.record_id.as_str())
            .collect::<Vec<_>>(),
        vec!["erp-1", "oa-7"]
    );
    let bob_then = state.as_of(bob, 5).unwrap().unwrap();
    assert!(bob_then.retired && bob_then.merged_into == Some(ada));
    assert!(
        state.as_of(bob, 2).unwrap().is_none(),
        "Bob came at entry 3"
    );
    assert!(state.as_of(daughter, 5).unwrap().is_none());

    // Pages of two: the same steps, cut where `next_after_seq` says.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s.history(ada, after, 2);
        assert!(page.steps.len() <= 2);
        paged.extend(steps(&page));
        match page.next_after_seq {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(paged, ada_steps);
}

#[test]
fn the_history_is_the_same_after_a_restart_and_unknown_ids_are_not_found() {
    let mut s = Scenario::new();
    s.send(
        "crm",
        "c",
        json!({"email": "x@example.com", "given_name": "X"}),
    );
    s.send(
        "crm",
        "c",
        json!({"email": "x@example.com", "given_name": "Xavier"}),
    );
    let id = s.golden("crm", "c");
    let before = serde_json::to_value(s.history(id, 0, 10)).unwrap();
    assert_eq!(before["steps"].as_array().unwrap().len(), 2);
    s.restart();
    assert_eq!(serde_json::to_value(s.history(id, 0, 10)).unwrap(), before);
    assert_eq!(
        before["steps"][1]["changes"],
        json!({"given_name": change(json!("X"), json!("Xavier"))})
    );
    assert!(history(&s.hub, Uuid::nil(), 0, 10).is_err());
}
