//! Pairwise precision, recall and F1 of a clustering against the truth.
//! Counted from cluster sizes (a cluster of n records holds n(n-1)/2 pairs),
//! never by listing pairs, so it runs on millions of records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::state::State;
use mdhub_schema::ChangeEvent;
use uuid::Uuid;

/// `events` derived in process, as the hub derives its log, under `config`
/// (`label` names it in errors).
pub fn derive(config: &HubConfig, label: &str, events: &[ChangeEvent]) -> State {
    let models = config.load_models(label).unwrap();
    let mut state = State::new(Arc::new(config.rules(models)));
    for (i, e) in events.iter().enumerate() {
        state
            .apply(i as u64 + 1, &LogPayload::Change(e.clone()))
            .unwrap();
    }
    state
}

/// The golden record (cluster) of each record of `truth` that is linked.
pub fn clusters<T>(
    state: &State,
    truth: &BTreeMap<(String, String), T>,
) -> BTreeMap<(String, String), Uuid> {
    truth
        .keys()
        .filter_map(|(system, record_id)| {
            let source = SourceKey {
                system: system.clone(),
                record_id: record_id.clone(),
            };
            state
                .golden_of(&source)
                .expect("the derived store reads")
                .map(|g| ((system.clone(), record_id.clone()), g))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairwiseScore {
    /// Correct pairs over predicted pairs; 1.0 when nothing was merged.
    pub precision: f64,
    /// Correct pairs over true pairs; 1.0 when nothing should be merged.
    pub recall: f64,
    /// Harmonic mean of the two; 0.0 when both are 0.
    pub f1: f64,
    /// Record pairs of one entity.
    pub true_pairs: u64,
    /// Record pairs put in one cluster.
    pub predicted_pairs: u64,
    /// Pairs both of one entity and in one cluster.
    pub correct_pairs: u64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Scores `predicted` ((system, record_id) → cluster id) against `truth`
/// ((system, record_id) → entity). Only the records of `truth` count; those
/// missing from `predicted` are clusters of their own.
pub fn pairwise_f1(
    truth: &BTreeMap<(String, String), u64>,
    predicted: &BTreeMap<(String, String), Uuid>,
) -> PairwiseScore {
    let mut entity_sizes: HashMap<u64, u64> = HashMap::new();
    let mut cluster_sizes: HashMap<Uuid, u64> = HashMap::new();
    let mut cell_sizes: HashMap<(u64, Uuid), u64> = HashMap::new();
    for (record, &entity) in truth {
        *entity_sizes.entry(entity).or_default() += 1;
        if let Some(&cluster) = predicted.get(record) {
            *cluster_sizes.entry(cluster).or_default() += 1;
            *cell_sizes.entry((entity, cluster)).or_default() += 1;
        }
    }
    let sum = |sizes: &mut dyn Iterator<Item = u64>| sizes.map(pairs).sum::<u64>();
    let true_pairs = sum(&mut entity_sizes.into_values());
    let predicted_pairs = sum(&mut cluster_sizes.into_values());
    let correct_pairs = sum(&mut cell_sizes.into_values());
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(correct_pairs, predicted_pairs);
    let recall = ratio(correct_pairs, true_pairs);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    PairwiseScore {
        precision,
        recall,
        f1,
        true_pairs,
        predicted_pairs,
        correct_pairs,
    }
}
