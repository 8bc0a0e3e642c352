//! Entity resolution on the generator's default profile: pairwise precision,
//! recall and F1 of the hub's clusters against the ground truth.

use mdhub_hub::config::HubConfig;
use mdhub_tests::er_generator::{clusters, derive, generate, pairwise_f1, Profile, SYSTEM_REGIONS};

/// The hub config for the generator's systems, with their phone regions.
fn er_config() -> HubConfig {
    let mut toml = String::new();
    for (system, region) in SYSTEM_REGIONS {
        toml.push_str(&format!("[system.{system}]\nregion = \"{region}\"\n"));
    }
    HubConfig::parse(&toml, "er-test").expect("valid config")
}

#[test]
fn the_default_profile_is_matched_with_f1_of_at_least_0_95() {
    let data = generate(&Profile::default_profile(4_000));
    let config = er_config();
    let state = derive(&config, "er-test", &data.events);
    let predicted = clusters(&state, &data.truth);
    assert_eq!(predicted.len(), data.truth.len(), "every record is linked");
    let score = pairwise_f1(&data.truth, &predicted);
    eprintln!(
        "{} records: precision {:.4}, recall {:.4}, F1 {:.4} ({} true pairs, {} predicted, {} correct); {} review tasks, {} merges prevented",
        data.events.len(),
        score.precision,
        score.recall,
        score.f1,
        score.true_pairs,
        score.predicted_pairs,
        score.correct_pairs,
        state.review_tasks().count(),
        state.resolver().merges_prevented(),
    );
    assert!(score.f1 >= 0.95, "F1 {:.4} below 0.95", score.f1);
}
