//! Training, in-process, where it went wrong at scale: a model trained on
//! the first few hundred records of a large stream (few true matches among
//! many strangers with common names), and a model trained while another
//! is in force. Both derive the generator's records as the hub does.

use std::collections::BTreeMap;
use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::resolve::trained::{TrainedModel, Trigger};
use mdhub_hub::state::State;
use mdhub_schema::ChangeEvent;
use mdhub_tests::er_generator::{generate_iter, systems_toml, Profile};
use time::OffsetDateTime;

fn config() -> HubConfig {
    HubConfig::parse(&systems_toml(), "estimation").unwrap()
}

/// The state after `events`, one log entry each, with no training.
fn derived(config: &HubConfig, events: &[ChangeEvent]) -> State {
    let rules = config.rules(config.load_models("estimation").unwrap());
    let mut state = State::new(Arc::new(rules));
    for (i, e) in events.iter().enumerate() {
        state
            .apply(i as u64 + 1, &LogPayload::Change(e.clone()))
            .unwrap();
    }
    state
}

fn m_of(model: &TrainedModel, comparison: &str) -> f64 {
    model
        .comparisons
        .iter()
        .find(|c| c.name == comparison)
        .unwrap_or_else(|| panic!("no comparison {comparison}"))
        .m[0]
}

#[test]
fn a_model_from_the_first_500_records_of_a_large_stream_calls_few_pairs_matches() {
    // The first 500 records of about 300,000: almost every customer in
    // them is there once. Their name blocks hold strangers with common
    // names, which EM once called matches (0.38 matches per record, an m
    // of 0 for e-mail and phone).
    let profile = Profile::default_profile(154_958);
    let (events, entities): (Vec<ChangeEvent>, Vec<u64>) =
        generate_iter(&profile).take(500).unzip();
    let mut per_entity: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &entities {
        *per_entity.entry(*e).or_default() += 1;
    }
    let true_pairs: u64 = per_entity.values().map(|k| k * (k - 1) / 2).sum();
    let truth = true_pairs as f64 / events.len() as f64;

    let config = config();
    let model = derived(&config, &events)
        .resolver()
        .train(Trigger::Automatic, OffsetDateTime::UNIX_EPOCH)
        .unwrap();
    assert!(
        model.matches_per_record <= (5.0 * truth).max(0.05),
        "{} matches per record trained, {truth} true",
        model.matches_per_record
    );
    for identifying in ["email", "phone", "mobile"] {
        let m = m_of(&model, identifying);
        assert!(m >= 0.5, "m of {identifying} agreeing: {m}");
    }
}

#[test]
fn training_starts_from_the_configured_rules_not_from_the_model_in_force() {
    let config = config();
    let events: Vec<ChangeEvent> = generate_iter(&Profile::default_profile(2_000))
        .map(|(e, _)| e)
        .collect();
    let mut state = derived(&config, &events);
    let first = state
        .resolver()
        .train(Trigger::Automatic, OffsetDateTime::UNIX_EPOCH)
        .unwrap();

    // A poor model in force: agreement on e-mail, phones and names says
    // almost nothing, and half of all candidate pairs match.
    let mut poor = first.clone();
    for c in &mut poor.comparisons {
        c.m = c.u.clone();
    }
    poor.matches_per_record = 30.0;
    state
        .apply(events.len() as u64 + 1, &LogPayload::MatchModel(poor))
        .unwrap();
    assert!(
        state.resolver().model().is_some(),
        "the poor model is in force"
    );

    let second = state
        .resolver()
        .train(Trigger::Automatic, OffsetDateTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(second.matches_per_record, first.matches_per_record);
    assert_eq!(second.households, first.households);
    for (a, b) in first.comparisons.iter().zip(&second.comparisons) {
        assert_eq!((&a.name, &a.m, &a.u), (&b.name, &b.m, &b.u));
    }
}
