//! Entity resolution on public person-data sets with ground truth, sent
//! through the real pipeline, beside Splink on the same records.
//!
//! Run with `cargo bench -p mdhub-tests --bench public_sets`. For each set
//! (FEBRL1, FEBRL2, RLdata500; `tests/src/public_sets.rs`):
//!
//! 1. mdhub (`mdhub_tests::set_pipeline`): a fresh nats-server and the
//!    `mdhub serve` binary with the default config (one system `crm`, no
//!    `[match]` section, API tokens); every record is published as one
//!    upsert on `mdhub.in.crm.customer` (atomic batches, as a connector
//!    does); then the API is polled until every event is logged and its
//!    updates published with no re-resolution pending, every record answers
//!    `GET /v1/sources/crm/{id}` and two full reads of the links agree. Wall
//!    time runs from the first publish to the end of the first read that
//!    gave the final links (so it includes one full read, N requests).
//! 2. Splink: `scripts/splink_baseline.py` on the same set file, in a venv
//!    under `~/.local/share/mdhub/splink-venv` (created with pip when
//!    missing; the Splink column is skipped when pip cannot install it).
//!    Its time is its own (reading the file to the clusters, no imports).
//!
//! Both clusterings are scored by `er_generator::pairwise_f1`. Beside them,
//! the reach of blocking: the candidate pairs (records sharing a block key,
//! blocks read up to `max_block`) of the default rules, computed in-process
//! from the same records, and how many true pairs are among them: no
//! threshold can link a pair that is never compared. Environment:
//! `MDHUB_ER_SETS` (comma-separated set names, default all),
//! `MDHUB_ER_SETS_DIR` (default `~/.local/share/mdhub/er-sets`),
//! `MDHUB_BIN` (the `mdhub` binary; default the one in this target
//! directory, release if built, else debug), `MDHUB_ER_NO_SPLINK=1` skips
//! Splink, `MDHUB_ER_CONFIG=path` appends the file to the hub config (a
//! `{set}` in the path becomes the set name: weights per set), and
//! `MDHUB_ER_KEEP=dir` keeps each hub's directory as `dir/<set>` (for
//! `mdhub match estimate --data-dir dir/<set>/data`). Progress goes to
//! stderr, the table to stdout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mdhub_hub::resolve::estimate::candidate_pairs;
use mdhub_hub::resolve::rules::MatchRules;
use mdhub_hub::state::profile_of;
use mdhub_schema::{cleanse_record, CleanseContext, Model};
use mdhub_tests::er_generator::{pairwise_f1, PairwiseScore};
use mdhub_tests::public_sets::{self, clusters_from_labels, PublicSet, SetSpec, SETS, SYSTEM};
use mdhub_tests::set_pipeline::{Pipeline, PipelineOutcome, SetRecords};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long one set may take to settle in the hub.
const SETTLE_DEADLINE: Duration = Duration::from_secs(600);
/// What pip installs into the venv.
const SPLINK_REQUIREMENT: &str = "splink>=4,<6";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
}

/// What `MDHUB_ER_CONFIG` names for `set`, appended to the default config;
/// empty without it.
fn extra_config(set: &str) -> anyhow::Result<String> {
    match std::env::var("MDHUB_ER_CONFIG") {
        Ok(path) if !path.is_empty() => {
            let path = path.replace("{set}", set);
            std::fs::read_to_string(&path).with_context(|| format!("MDHUB_ER_CONFIG: {path}"))
        }
        _ => Ok(String::new()),
    }
}

/// The `mdhub` binary: `MDHUB_BIN`, else this target directory's release
/// build, else its debug build (`cargo build -p mdhub-hub`).
fn mdhub_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("MDHUB_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("MDHUB_BIN={}: no such file", bin.display());
        }
        return Ok(bin);
    }
    let exe = std::env::current_exe()?;
    // target/release/deps/public_sets-… → target/
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .context("the bench executable has no target directory")?;
    for profile in ["release", "debug"] {
        let bin = target.join(profile).join("mdhub");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    bail!(
        "no mdhub binary in {}/{{release,debug}}: run `cargo build -p mdhub-hub \
         --features mdhub-hub/failpoints` (or set MDHUB_BIN)",
        target.display()
    )
}

/// What one clustering scored, and how long it took.
struct Outcome {
    score: PairwiseScore,
    seconds: f64,
}

/// `set` through nats-server and `bin` serve (`mdhub_tests::set_pipeline`).
async fn run_hub(set: &PublicSet, bin: &Path) -> anyhow::Result<PipelineOutcome> {
    let pipeline = Pipeline {
        binary: bin.to_path_buf(),
        extra_config: extra_config(set.spec.name)?,
        keep_dir: std::env::var_os("MDHUB_ER_KEEP")
            .filter(|v| !v.is_empty())
            .map(|keep| PathBuf::from(keep).join(set.spec.name)),
        deadline: SETTLE_DEADLINE,
    };
    pipeline.run(&SetRecords::public(set)).await
}

/// The venv's python with Splink importable, creating the venv when
/// needed; None (said on stdout) when pip cannot install Splink.
fn splink_python() -> Option<(PathBuf, String)> {
    let venv = home().join(".local/share/mdhub/splink-venv");
    let python = venv.join("bin/python");
    let version = |python: &Path| {
        Command::new(python)
            .args(["-c", "import splink; print(splink.__version__)"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(v) = version(&python) {
        return Some((python, v));
    }
    eprintln!(
        "  creating {} and installing {SPLINK_REQUIREMENT} with pip",
        venv.display()
    );
    let steps: [(&str, Command); 2] = [
        ("python3 -m venv", {
            let mut c = Command::new("python3");
            c.args(["-m", "venv"]).arg(&venv);
            c
        }),
        ("pip install", {
            let mut c = Command::new(&python);
            c.args(["-m", "pip", "install", "--quiet", SPLINK_REQUIREMENT]);
            c
        }),
    ];
    for (what, mut cmd) in steps {
        match cmd.stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                println!(
                    "Splink skipped: {what} failed ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return None;
            }
            Err(e) => {
                println!("Splink skipped: {what} could not run: {e}");
                return None;
            }
        }
    }
    match version(&python) {
        Some(v) => Some((python, v)),
        None => {
            println!(
                "Splink skipped: pip installed {SPLINK_REQUIREMENT} into {} but `import splink` fails",
                venv.display()
            );
            None
        }
    }
}

fn run_splink(set: &PublicSet, python: &Path) -> anyhow::Result<Outcome> {
    let script = repo_root().join("scripts/splink_baseline.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(set.spec.kind.splink_arg())
        .arg(&set.records_path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        bail!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: stdout is not JSON", script.display()))?;
    let labels: BTreeMap<String, String> = serde_json::from_value(json["clusters"].clone())
        .with_context(|| format!("{}: no clusters object", script.display()))?;
    let predicted = clusters_from_labels(&labels);
    // Splink must have clustered exactly the records the hub was sent.
    if predicted.len() != set.truth.len() || predicted.keys().ne(set.truth.keys()) {
        bail!(
            "{} clustered {} records, the set has {} (or other ids)",
            script.display(),
            predicted.len(),
            set.truth.len()
        );
    }
    Ok(Outcome {
        score: pairwise_f1(&set.truth, &predicted),
        seconds: json["seconds"].as_f64().unwrap_or(f64::NAN),
    })
}

fn cells(o: Option<&Outcome>) -> String {
    match o {
        Some(o) => format!(
            "{:>6.4} {:>6.4} {:>6.4} {:>7.2}",
            o.score.precision, o.score.recall, o.score.f1, o.seconds
        ),
        None => format!("{:>6} {:>6} {:>6} {:>7}", "-", "-", "-", "-"),
    }
}

fn fetch_sets(dir: &Path) -> anyhow::Result<()> {
    let script = repo_root().join("scripts/fetch-er-sets.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} {} failed ({status})", script.display(), dir.display());
    }
    Ok(())
}

fn selected_sets() -> anyhow::Result<Vec<&'static SetSpec>> {
    let Ok(list) = std::env::var("MDHUB_ER_SETS") else {
        return Ok(SETS.iter().collect());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            public_sets::spec(name).ok_or_else(|| {
                anyhow!(
                    "MDHUB_ER_SETS: no set {name:?} (sets: {})",
                    SETS.map(|s| s.name).join(", ")
                )
            })
        })
        .collect()
}

/// The candidate pairs of the set under the default rules, and how many of
/// them are true pairs.
fn blocking_reach(set: &PublicSet) -> (usize, usize) {
    let model = Model::default_customer();
    let rules = MatchRules::default();
    let profiles: Vec<_> = set
        .events
        .iter()
        .map(|e| {
            let c = cleanse_record(&model, &e.fields, &CleanseContext::default());
            profile_of(&rules, &c.values, &c.issues)
        })
        .collect();
    let refs: Vec<_> = profiles.iter().collect();
    let pairs = candidate_pairs(&refs, rules.max_block);
    let entity = |i: usize| {
        set.truth
            .get(&(SYSTEM.to_string(), set.events[i].record_id.clone()))
    };
    let reachable = pairs
        .iter()
        .filter(|&&(a, b)| entity(a) == entity(b))
        .count();
    (pairs.len(), reachable)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sets = selected_sets()?;
    let dir = std::env::var_os("MDHUB_ER_SETS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(public_sets::default_dir);
    fetch_sets(&dir)?;
    let bin = mdhub_bin()?;
    let splink = if std::env::var("MDHUB_ER_NO_SPLINK").is_ok_and(|v| v == "1") {
        println!("Splink skipped: MDHUB_ER_NO_SPLINK=1");
        None
    } else {
        splink_python()
    };

    println!("== entity resolution on public sets: mdhub end to end vs Splink ==");
    println!(
        "mdhub: {} serve, default config (one system {SYSTEM}, default [match]{}), \
         nats-server, events over JetStream, links read from /v1/sources",
        bin.display(),
        std::env::var("MDHUB_ER_CONFIG")
            .ok()
            .filter(|p| !p.is_empty())
            .map(|p| format!(" + {p}"))
            .unwrap_or_default()
    );
    match &splink {
        Some((python, version)) => println!(
            "Splink {version} ({}): DuckDB, unsupervised (u by random sampling, m by EM, \
             prior from deterministic rules), clusters at match probability 0.9",
            python.display()
        ),
        None => println!("Splink: not run"),
    }
    println!(
        "pairwise precision / recall / F1; wall s: mdhub first publish -> links settled, \
         Splink file read -> clusters; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let header = format!(
        "{:<10} {:>7} {:>6} | {:>6} {:>6} {:>6} {:>7} | {:>6} {:>6} {:>6} {:>7}",
        "set", "records", "pairs", "P", "R", "F1", "wall s", "P", "R", "F1", "wall s"
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for spec in sets {
        let set = public_sets::load(spec, &dir)?;
        eprintln!("[{}] {} records", spec.name, set.events.len());
        let (candidates, reachable) = blocking_reach(&set);
        let hub = run_hub(&set, &bin)
            .await
            .with_context(|| format!("set {}: mdhub", spec.name))?;
        eprintln!("[{}] mdhub done; running Splink", spec.name);
        let sp = match &splink {
            Some((python, _)) => match run_splink(&set, python) {
                Ok(o) => Some(o),
                Err(e) => {
                    println!("Splink skipped for {}: {e:#}", spec.name);
                    None
                }
            },
            None => None,
        };
        let row = format!(
            "{:<10} {:>7} {:>6} | {} | {}",
            spec.name,
            set.events.len(),
            hub.score.true_pairs,
            cells(Some(&Outcome {
                score: hub.score,
                seconds: hub.settled.as_secs_f64(),
            })),
            cells(sp.as_ref())
        );
        println!("{row}");
        rows.push(row);
        let s = &hub.score;
        notes.push(format!(
            "{}: blocking {} candidate pairs holding {} of {} true pairs; \
             mdhub {} golden records, {} open review tasks, {} predicted pairs ({} correct), \
             caught up (all logged and published) {:.2} s after the first publish{}",
            spec.name,
            candidates,
            reachable,
            s.true_pairs,
            hub.golden_records,
            hub.open_reviews,
            s.predicted_pairs,
            s.correct_pairs,
            hub.caught_up.as_secs_f64(),
            sp.as_ref()
                .map(|o| format!(
                    "; Splink {} predicted pairs ({} correct)",
                    o.score.predicted_pairs, o.score.correct_pairs
                ))
                .unwrap_or_default()
        ));
    }
    println!();
    println!("{:<26}| {:<29} | Splink", "", "mdhub");
    println!("{header}");
    for row in &rows {
        println!("{row}");
    }
    for note in &notes {
        println!("  {note}");
    }
    Ok(())
}
