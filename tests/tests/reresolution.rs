//! Re-resolution after a trained model (`resolve::regroup`): the hub
//! clusters the records it holds again with each new model and logs the
//! difference as regroupings, which split and merge golden records as a
//! steward's actions would; a replay of such a log gives the live state.

use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::{state_of, Hub};
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_hub::resolve::regroup::Regrouping;
use mdhub_hub::resolve::trained::{TrainedModel, Trigger};
use mdhub_hub::state::{Outbound, Rules, State};
use mdhub_hub::steward::{Command, StewardAction};
use mdhub_schema::{ChangeEvent, Limits, Op, SCHEMA_VERSION};
use mdhub_tests::er_generator::{clusters, generate, pairwise_f1, systems_toml, Profile};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

fn rules(toml: &str) -> Arc<Rules> {
    let config = HubConfig::parse(toml, "test").expect("valid config");
    Arc::new(config.rules(config.load_models("test").unwrap()))
}

fn key(system: &str, record_id: &str) -> SourceKey {
    SourceKey {
        system: system.into(),
        record_id: record_id.into(),
    }
}

fn upsert(n: u128, system: &str, record_id: &str, fields: serde_json::Value) -> LogPayload {
    LogPayload::Change(ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::from_u128(n),
        system: system.into(),
        entity: "customer".into(),
        record_id: record_id.into(),
        op: Op::Upsert,
        fields: serde_json::from_value(fields).unwrap(),
        observed_at: OffsetDateTime::UNIX_EPOCH,
        base: None,
        caused_by: None,
    })
}

/// A model that keeps the configured weights: re-resolution waits for it
/// like for any other.
fn model(id: u128) -> LogPayload {
    LogPayload::MatchModel(TrainedModel {
        model_id: Uuid::from_u128(id),
        trigger: Trigger::Automatic,
        at: OffsetDateTime::UNIX_EPOCH,
        records: 4,
        candidate_pairs: 0,
        matches_per_record: 0.1,
        comparisons: Vec::new(),
        households: false,
    })
}

fn regrouping(id: u128, model_seq: u64, groups: Vec<Vec<SourceKey>>) -> LogPayload {
    LogPayload::Regroup(Regrouping {
        regroup_id: Uuid::from_u128(id),
        model_id: Uuid::from_u128(900),
        model_seq,
        at: OffsetDateTime::UNIX_EPOCH,
        groups,
        remaining: 0,
    })
}

/// Anna twice in the CRM (one golden record by her email), Bob in the
/// ERP, Carl in the CRM: three golden records.
fn three_customers(state: &mut State) {
    let person = |email: &str, given: &str| {
        json!({"customer_type": "person", "email": email, "given_name": given,
               "family_name": "Schmidt"})
    };
    state
        .apply(
            1,
            &upsert(1, "crm", "c1", person("anna@example.org", "Anna")),
        )
        .unwrap();
    state
        .apply(
            2,
            &upsert(2, "crm", "c2", person("anna@example.org", "Anna")),
        )
        .unwrap();
    state
        .apply(3, &upsert(3, "erp", "e1", person("bob@example.org", "Bob")))
        .unwrap();
    state
        .apply(
            4,
            &upsert(4, "crm", "c3", person("carl@example.org", "Carl")),
        )
        .unwrap();
}

const TWO_SYSTEMS: &str = "[system.crm]\n[system.erp]\n";

/// The source records linked to golden record `id`, in order.
fn links(state: &State, id: Uuid) -> Vec<SourceKey> {
    let record = state.record(id).unwrap().expect("the golden record exists");
    record.links.iter().cloned().collect()
}

#[test]
fn a_regrouping_splits_the_named_records_out_and_merges_them() {
    let mut state = State::new(rules(TWO_SYSTEMS));
    three_customers(&mut state);
    let golden =
        |s: &State, system: &str, id: &str| s.golden_of(&key(system, id)).unwrap().unwrap();
    let (anna, bob) = (golden(&state, "crm", "c1"), golden(&state, "erp", "e1"));
    assert_eq!(golden(&state, "crm", "c2"), anna);
    assert_ne!(anna, bob);

    // A regrouping for a model that is not in force changes nothing.
    let before = state.state_hash().unwrap();
    state
        .apply(
            5,
            &regrouping(10, 99, vec![vec![key("crm", "c2"), key("erp", "e1")]]),
        )
        .unwrap();
    assert_eq!(golden(&state, "crm", "c2"), anna, "a stale regrouping");

    state.apply(6, &model(900)).unwrap();
    assert_eq!(
        state.resolver().reresolution().map(|p| p.records),
        Some(4),
        "every linked record waits for the new model"
    );
    assert_ne!(state.state_hash().unwrap(), before);
    // c2 with Bob: c2 leaves Anna's golden record, and the golden record
    // it got for a moment is merged into Bob's (created first).
    let applied = state
        .apply(
            7,
            &regrouping(11, 6, vec![vec![key("crm", "c2"), key("erp", "e1")]]),
        )
        .unwrap();
    assert_eq!(golden(&state, "crm", "c2"), bob);
    assert_eq!(golden(&state, "erp", "e1"), bob);
    assert_eq!(golden(&state, "crm", "c1"), anna, "c1 stays");
    assert_eq!(links(&state, anna), vec![key("crm", "c1")]);
    assert_eq!(links(&state, bob), vec![key("crm", "c2"), key("erp", "e1")]);
    assert!(
        state.resolver().reresolution().is_none(),
        "the last entry of the plan settles it"
    );
    // The systems hear about it: the golden feed says the moment's golden
    // record was merged into Bob's, and Bob's ERP record gets the values
    // survivorship now picks over both.
    let merged: Vec<Uuid> = applied
        .outbound
        .iter()
        .filter_map(|o| match o {
            Outbound::Golden(g) if g.merged_into == Some(bob) => Some(g.golden_id),
            _ => None,
        })
        .collect();
    assert_eq!(merged.len(), 1, "{:?}", applied.outbound);
    assert!(
        applied.outbound.iter().any(|o| matches!(o,
            Outbound::Update(u) if u.system == "erp" && u.golden_id == bob)),
        "{:?}",
        applied.outbound
    );
    // The moment's golden record answers "merged into" Bob's.
    let mut retired: Vec<Uuid> = Vec::new();
    state
        .for_each_record(|r| {
            if r.merged_into == Some(bob) {
                retired.push(r.id);
            }
        })
        .unwrap();
    assert_eq!(retired, merged);
    assert_eq!(state.survivor(retired[0]), bob);
}

#[test]
fn re_resolution_leaves_what_a_steward_decided() {
    let mut state = State::new(rules(TWO_SYSTEMS));
    three_customers(&mut state);
    let golden =
        |s: &State, system: &str, id: &str| s.golden_of(&key(system, id)).unwrap().unwrap();
    let (bob, carl) = (golden(&state, "erp", "e1"), golden(&state, "crm", "c3"));
    // A steward merges Bob and Carl.
    state
        .apply(
            5,
            &LogPayload::Steward(StewardAction {
                action_id: Uuid::from_u128(50),
                entity: "customer".into(),
                actor: "steward".into(),
                reason: "same person, new email".into(),
                at: OffsetDateTime::UNIX_EPOCH,
                command: Command::Merge {
                    golden_ids: [bob, carl],
                },
            }),
        )
        .unwrap();
    let merged = golden(&state, "erp", "e1");
    assert_eq!(golden(&state, "crm", "c3"), merged);
    state.apply(6, &model(900)).unwrap();
    // A plan naming the steward's record changes nothing there.
    state
        .apply(
            7,
            &regrouping(11, 6, vec![vec![key("crm", "c3"), key("crm", "c1")]]),
        )
        .unwrap();
    assert_eq!(golden(&state, "crm", "c3"), merged);
    assert_eq!(golden(&state, "erp", "e1"), merged);
    assert_ne!(golden(&state, "crm", "c1"), merged);
    // And the hub's own plan does not name it.
    for group in state.regroup_plan().unwrap() {
        assert!(
            !group.contains(&key("crm", "c3")) && !group.contains(&key("erp", "e1")),
            "{group:?}"
        );
    }
}

/// The generator's default profile through the in-process bus with a hub
/// that trains at 400 records: every model is followed by its
/// re-resolution, some of which regroup records, and a replay of the log
/// gives the live state hash. (How well it matches is the matching
/// pipeline test's question.)
#[test]
fn trainings_and_regroupings_replay_to_the_live_state() -> anyhow::Result<()> {
    let data = generate(&Profile::default_profile(1_500));
    let toml = systems_toml() + "[match]\ntrain_at = 400\n";
    let dir = tempfile::tempdir()?;
    let (mut hub, _) = Hub::open(dir.path(), rules(&toml), Limits::default())?;
    let mut bus = MemoryBus::default();
    for e in &data.events {
        bus.publish(e);
    }
    bus.pump(&mut hub, 200)?;
    assert!(hub.state().resolver().reresolution().is_none());
    assert!(bus.dead_letters.is_empty());

    let (mut models, mut regrouped_records, mut ended) = (Vec::new(), 0usize, Vec::new());
    for entry in hub.log().iter_from(1) {
        let entry = entry?;
        match entry.payload {
            LogPayload::MatchModel(_) => models.push(entry.seq),
            LogPayload::Regroup(r) => {
                regrouped_records += r.groups.iter().map(Vec::len).sum::<usize>();
                if r.remaining == 0 {
                    ended.push(r.model_seq);
                }
            }
            _ => {}
        }
    }
    assert!(
        models.len() >= 3,
        "trained at 400, 800, 1,600...: {models:?}"
    );
    assert_eq!(ended, models, "each model's re-resolution ended");
    assert!(regrouped_records > 0, "some records were decided otherwise");

    let score = pairwise_f1(&data.truth, &clusters(hub.state(), &data.truth));
    eprintln!(
        "{} records, {} models, {regrouped_records} records regrouped: precision {:.4}, recall {:.4}, F1 {:.4}",
        data.events.len(),
        models.len(),
        score.precision,
        score.recall,
        score.f1
    );

    let live = hub.state().state_hash().unwrap();
    drop(hub);
    let replayed = state_of(dir.path(), rules(&toml))?;
    assert_eq!(replayed.state_hash().unwrap(), live);
    Ok(())
}
