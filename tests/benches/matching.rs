//! Entity-resolution benchmark: the generator's default profile at 100,000
//! and 1,000,000 source records, matched incrementally one by one, as the
//! hub does: cleanse (with the system's phone region), profile, block in the
//! match index (in memory), score, link / merge / review. Prints precision, recall
//! and F1 against the ground truth, records matched per second, and peak RSS.
//!
//! The golden documents (Automerge) are left out: this measures matching.
//! `MDHUB_MATCH_SIZES` (default `100000,1000000`) sets the sizes.
//!
//! Run: `cargo bench -p mdhub-tests --bench matching`

use std::collections::BTreeMap;
use std::time::Instant;

use mdhub_hub::golden::SourceKey;
use mdhub_hub::resolve::rules::MatchRules;
use mdhub_hub::resolve::{Decision, Resolver};
use mdhub_hub::state::profile_of;
use mdhub_schema::{cleanse_record, CleanseContext, Model};
use mdhub_tests::bench_stats::peak_rss_mib;
use mdhub_tests::er_generator::{
    generate_iter, pairwise_f1, Profile as DataProfile, SYSTEM_REGIONS,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(records: usize) {
    // The generator gives about 1.95 source records per entity.
    let entities = (records as f64 / 1.95).round() as usize;
    let profile = DataProfile::default_profile(entities);
    let model = Model::default_customer();
    let rules = MatchRules::default();
    let storage = mdhub_hub::store::MemoryStorage::shared();
    let mut resolver = Resolver::new(rules.clone(), storage.as_ref()).expect("an in-memory store");
    let mut truth = BTreeMap::new();
    let mut predicted = BTreeMap::new();
    let (mut links, mut news, mut merges, mut reviews) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut matching = std::time::Duration::ZERO;
    let mut last_report = Instant::now();
    let mut n = 0u64;
    for (event, entity) in generate_iter(&profile) {
        n += 1;
        let t = Instant::now();
        let region = SYSTEM_REGIONS
            .iter()
            .find(|(s, _)| *s == event.system)
            .map(|(_, r)| *r);
        let cleansed = cleanse_record(
            &model,
            &event.fields,
            &CleanseContext {
                default_region: region,
            },
        );
        let source = SourceKey {
            system: event.system.clone(),
            record_id: event.record_id.clone(),
        };
        match resolver
            .decide(
                "customer",
                &source,
                &profile_of(&rules, &cleansed.values, &cleansed.issues),
                true,
                n,
            )
            .expect("in-memory storage does not fail")
        {
            Decision::Link { merge, .. } => {
                links += 1;
                merges += merge.len() as u64;
            }
            Decision::New { review, .. } => {
                news += 1;
                reviews += review.is_some() as u64;
            }
        }
        matching += t.elapsed();
        truth.insert((event.system.clone(), event.record_id.clone()), entity);
        if last_report.elapsed().as_secs() >= 10 {
            eprintln!(
                "  [{records}] {n} records matched, {:.0}/s so far",
                n as f64 / matching.as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let total = start.elapsed();
    for (system, record_id) in truth.keys() {
        let source = SourceKey {
            system: system.clone(),
            record_id: record_id.clone(),
        };
        if let Some(g) = resolver.golden_of(&source).unwrap() {
            predicted.insert((system.clone(), record_id.clone()), g);
        }
    }
    let score = pairwise_f1(&truth, &predicted);
    println!("== {n} source records ({entities} entities requested)");
    println!(
        "  precision {:.4}  recall {:.4}  F1 {:.4}  ({} true pairs, {} predicted, {} correct)",
        score.precision,
        score.recall,
        score.f1,
        score.true_pairs,
        score.predicted_pairs,
        score.correct_pairs
    );
    println!(
        "  matched {:.0} records/s (matching alone, {:.1} s); whole run incl. generation {:.1} s",
        n as f64 / matching.as_secs_f64(),
        matching.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "  decisions: {links} linked, {news} new ({reviews} with a review task), {merges} merges"
    );
    println!("  peak RSS (VmHWM) so far: {:.0} MiB", peak_rss_mib());

    // The u probabilities as the data gives them, beside the defaults.
    let t = Instant::now();
    let estimates = resolver.estimate_u(1_000_000).expect("the tables read");
    println!(
        "  u estimated from 1,000,000 random pairs ({:.1} s):",
        t.elapsed().as_secs_f64()
    );
    for e in &estimates {
        let c = &rules.comparisons[e.comparison];
        let levels: Vec<String> = (0..c.levels.len())
            .map(|l| {
                format!(
                    "{} {:.2e} (default {:.2e})",
                    c.level_label(l),
                    e.u[l],
                    c.m_u(l).1
                )
            })
            .collect();
        println!(
            "    {:<14} u: {}  [{} pairs compared]",
            c.name,
            levels.join(", "),
            e.compared
        );
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("MDHUB_MATCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("MDHUB_MATCH_SIZES: comma-separated numbers")
        })
        .collect();
    for size in sizes {
        run(size);
    }
}
