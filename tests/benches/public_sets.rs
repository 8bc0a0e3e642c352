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

use uuid::Uuid;

use anyhow::{anyhow, bail, Context};
use mdhub_hub::resolve::estimate::candidate_pairs;
use mdhub_hub::resolve::rules::MatchRules;
use mdhub_hub::state::profile_of;
use mdhub_schema::ChangeEvent;
use mdhub_schema::{cleanse_record, CleanseContext, Model};
use mdhub_tests::er_generator::{generate, pairwise_f1, ErDataset, PairwiseScore, Profile};
use mdhub_tests::public_sets::{self, clusters_from_labels, PublicSet, SetSpec, SETS};
use mdhub_tests::set_pipeline::{Pipeline, PipelineOutcome, SetRecords};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// What one clustering scored, how long it took and its peak memory.
struct Outcome {
    score: PairwiseScore,
    seconds: f64,
    peak_rss_kib: Option<u64>,
}

/// One set the benchmark runs: its change events and truth, and the file
/// Splink reads.
struct BenchSet {
    name: String,
    events: Vec<ChangeEvent>,
    truth: BTreeMap<(String, String), u64>,
    /// System → phone region (the generator's systems).
    regions: BTreeMap<String, String>,
    /// `scripts/splink_baseline.py`'s first argument and the file.
    splink_kind: &'static str,
    splink_file: PathBuf,
    /// Keeps the generator's Splink file until the set is done.
    _scratch: Option<tempfile::TempDir>,
}

impl BenchSet {
    fn public(set: PublicSet) -> BenchSet {
        BenchSet {
            name: set.spec.name.to_string(),
            events: set.events,
            truth: set.truth,
            regions: BTreeMap::new(),
            splink_kind: set.spec.kind.splink_arg(),
            splink_file: set.records_path,
            _scratch: None,
        }
    }

    /// The generator's default profile with about `records` records, and a
    /// CSV of their cleansed values for Splink (see [`write_generator_csv`]).
    fn generator(records: usize) -> anyhow::Result<BenchSet> {
        let entities = (records * GENERATOR_ENTITIES / GENERATOR_RECORDS).max(1);
        let data = generate(&Profile::default_profile(entities));
        let scratch = tempfile::tempdir()?;
        let splink_file = scratch.path().join("generator.csv");
        write_generator_csv(&data, &splink_file)?;
        Ok(BenchSet {
            name: format!("generator-{}", data.events.len()),
            events: data.events,
            truth: data.truth,
            regions: data.system_regions,
            splink_kind: "generator",
            splink_file,
            _scratch: Some(scratch),
        })
    }

    fn records(&self) -> SetRecords<'_> {
        SetRecords {
            name: &self.name,
            events: &self.events,
            truth: &self.truth,
            regions: self.regions.clone(),
        }
    }

    /// The cleansing context of `system`'s records (its phone region).
    fn context(&self, system: &str) -> CleanseContext<'_> {
        CleanseContext {
            default_region: self.regions.get(system).map(String::as_str),
        }
    }
}

/// The generator's default profile gives 3,872 records for 2,000 entities
/// (`matching_pipeline`): the ratio that sizes a run by its records.
const GENERATOR_ENTITIES: usize = 2_000;
const GENERATOR_RECORDS: usize = 3_872;

/// The columns of the generator CSV Splink reads, after `unique_id`.
const GENERATOR_COLUMNS: [&str; 14] = [
    "customer_type",
    "given_name",
    "family_name",
    "company",
    "email",
    "phone",
    "mobile",
    "birth_date",
    "street",
    "city",
    "postal_code",
    "country",
    "website",
    "tax_id",
];

/// Writes the generator's records for Splink: `unique_id` (`system:record
/// id`) and the values the hub stores after cleansing (phones in E.164,
/// e-mails in lower case, dates in ISO), so Splink compares what the hub
/// compares. A record with a `full_name` and no given or family name (as
/// the OA system writes Chinese names) gets it split: Han script family
/// name first (its first character), otherwise the last word is the family
/// name.
fn write_generator_csv(data: &ErDataset, path: &Path) -> anyhow::Result<()> {
    let model = Model::default_customer();
    let mut out = csv::Writer::from_path(path)?;
    let mut header = vec!["unique_id"];
    header.extend(GENERATOR_COLUMNS);
    out.write_record(&header)?;
    for e in &data.events {
        let ctx = CleanseContext {
            default_region: data.system_regions.get(&e.system).map(String::as_str),
        };
        let c = cleanse_record(&model, &e.fields, &ctx);
        let text = |field: &str| match c.values.get(field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let (mut given, mut family) = (text("given_name"), text("family_name"));
        let full = text("full_name");
        if given.is_empty() && family.is_empty() && !full.is_empty() {
            (given, family) = split_full_name(&full);
        }
        let mut row = vec![format!("{}:{}", e.system, e.record_id)];
        for column in GENERATOR_COLUMNS {
            row.push(match column {
                "given_name" => given.clone(),
                "family_name" => family.clone(),
                other => text(other),
            });
        }
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}

/// (given, family) of a full name: Han script family name first (one
/// character), otherwise the last word last.
fn split_full_name(full: &str) -> (String, String) {
    let full = full.trim();
    if full
        .chars()
        .next()
        .is_some_and(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    {
        let mut chars = full.chars();
        let family = chars.next().map(String::from).unwrap_or_default();
        return (chars.as_str().trim().to_string(), family);
    }
    match full.rsplit_once(' ') {
        Some((given, family)) => (given.trim().to_string(), family.trim().to_string()),
        None => (String::new(), full.to_string()),
    }
}

/// How long one wait of a run may take: 10 minutes, plus 2 ms a record
/// for the large generator runs.
fn settle_deadline(records: usize) -> Duration {
    Duration::from_secs(600) + Duration::from_millis(2 * records as u64)
}

/// `set` through nats-server and `bin` serve (`mdhub_tests::set_pipeline`).
async fn run_hub(set: &BenchSet, bin: &Path) -> anyhow::Result<PipelineOutcome> {
    let pipeline = Pipeline {
        binary: bin.to_path_buf(),
        extra_config: extra_config(&set.name)?,
        keep_dir: std::env::var_os("MDHUB_ER_KEEP")
            .filter(|v| !v.is_empty())
            .map(|keep| PathBuf::from(keep).join(&set.name)),
        deadline: settle_deadline(set.events.len()),
    };
    pipeline.run(&set.records()).await
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

fn run_splink(set: &BenchSet, python: &Path) -> anyhow::Result<Outcome> {
    let script = repo_root().join("scripts/splink_baseline.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(set.splink_kind)
        .arg(&set.splink_file)
        .stdin(Stdio::null())
        // Splink's progress and warnings go straight to the terminal.
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}); its errors are above",
            script.display(),
            out.status
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: stdout is not JSON", script.display()))?;
    let labels: BTreeMap<String, String> = serde_json::from_value(json["clusters"].clone())
        .with_context(|| format!("{}: no clusters object", script.display()))?;
    let predicted = if set.splink_kind == "generator" {
        // unique_id is `system:record_id`.
        labels
            .iter()
            .map(|(id, cluster)| {
                let (system, record) = id
                    .split_once(':')
                    .ok_or_else(|| anyhow!("Splink unique_id {id:?} has no `system:`"))?;
                Ok((
                    (system.to_string(), record.to_string()),
                    Uuid::new_v5(&Uuid::NAMESPACE_OID, cluster.as_bytes()),
                ))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?
    } else {
        clusters_from_labels(&labels)
    };
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
        peak_rss_kib: json["peak_rss_kib"].as_u64(),
    })
}

fn cells(o: Option<&Outcome>) -> String {
    match o {
        Some(o) => format!(
            "{:>6.4} {:>6.4} {:>6.4} {:>8.2} {:>7}",
            o.score.precision,
            o.score.recall,
            o.score.f1,
            o.seconds,
            o.peak_rss_kib
                .map_or_else(|| "-".to_string(), |k| format!("{:.0}", k as f64 / 1024.0))
        ),
        None => format!("{:>6} {:>6} {:>6} {:>8} {:>7}", "-", "-", "-", "-", "-"),
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

/// The name of the generated set in `MDHUB_ER_SETS`.
const GENERATOR: &str = "generator";

/// The sets `MDHUB_ER_SETS` names (default all: the public sets, then the
/// generator); None stands for the generator.
fn selected_sets() -> anyhow::Result<Vec<Option<&'static SetSpec>>> {
    let Ok(list) = std::env::var("MDHUB_ER_SETS") else {
        return Ok(SETS.iter().map(Some).chain([None]).collect());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            if name == GENERATOR {
                return Ok(None);
            }
            public_sets::spec(name).map(Some).ok_or_else(|| {
                anyhow!(
                    "MDHUB_ER_SETS: no set {name:?} (sets: {}, {GENERATOR})",
                    SETS.map(|s| s.name).join(", ")
                )
            })
        })
        .collect()
}

/// `MDHUB_ER_GENERATOR_RECORDS`, default 1,000,000.
fn generator_records() -> anyhow::Result<usize> {
    match std::env::var("MDHUB_ER_GENERATOR_RECORDS") {
        Ok(v) if !v.is_empty() => v
            .replace('_', "")
            .parse()
            .with_context(|| format!("MDHUB_ER_GENERATOR_RECORDS={v}: not a number")),
        _ => Ok(1_000_000),
    }
}

/// The candidate pairs of the set under the default rules, and how many of
/// them are true pairs.
fn blocking_reach(set: &BenchSet) -> (usize, usize) {
    let model = Model::default_customer();
    let rules = MatchRules::default();
    let profiles: Vec<_> = set
        .events
        .iter()
        .map(|e| {
            let c = cleanse_record(&model, &e.fields, &set.context(&e.system));
            profile_of(&rules, &c.values, &c.issues)
        })
        .collect();
    let refs: Vec<_> = profiles.iter().collect();
    let pairs = candidate_pairs(&refs, rules.max_block);
    let entity = |i: usize| {
        let e = &set.events[i];
        set.truth.get(&(e.system.clone(), e.record_id.clone()))
    };
    let reachable = pairs
        .iter()
        .filter(|&&(a, b)| entity(a) == entity(b))
        .count();
    (pairs.len(), reachable)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".to_string(),
        |k| format!("{:.0} MiB", k as f64 / 1024.0),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sets = selected_sets()?;
    let dir = std::env::var_os("MDHUB_ER_SETS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(public_sets::default_dir);
    if sets.iter().any(Option::is_some) {
        fetch_sets(&dir)?;
    }
    let generator_size = generator_records()?;
    let bin = mdhub_bin()?;
    let splink = if std::env::var("MDHUB_ER_NO_SPLINK").is_ok_and(|v| v == "1") {
        println!("Splink skipped: MDHUB_ER_NO_SPLINK=1");
        None
    } else {
        splink_python()
    };

    println!(
        "== entity resolution on public sets and the generator: mdhub end to end vs Splink =="
    );
    println!(
        "mdhub: {} serve, default config (one system per source system, default [match]{}), \
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
         Splink file read -> clusters; peak RSS MiB: the hub process, the Splink process; {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let header = format!(
        "{:<17} {:>7} {:>7} | {:>6} {:>6} {:>6} {:>8} {:>7} | {:>6} {:>6} {:>6} {:>8} {:>7}",
        "set",
        "records",
        "pairs",
        "P",
        "R",
        "F1",
        "wall s",
        "RSS MiB",
        "P",
        "R",
        "F1",
        "wall s",
        "RSS MiB"
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for spec in sets {
        let set = match spec {
            Some(spec) => BenchSet::public(public_sets::load(spec, &dir)?),
            None => {
                eprintln!("[{GENERATOR}] generating about {generator_size} records");
                BenchSet::generator(generator_size)?
            }
        };
        let name = set.name.clone();
        eprintln!("[{name}] {} records; blocking reach", set.events.len());
        let (candidates, reachable) = blocking_reach(&set);
        let hub = run_hub(&set, &bin)
            .await
            .with_context(|| format!("set {name}: mdhub"))?;
        eprintln!(
            "[{name}] mdhub done ({:.1} s, peak RSS {}); running Splink",
            hub.settled.as_secs_f64(),
            mib(hub.hub_peak_rss_kib)
        );
        let sp = match &splink {
            Some((python, _)) => match run_splink(&set, python) {
                Ok(o) => Some(o),
                Err(e) => {
                    println!("Splink skipped for {name}: {e:#}");
                    None
                }
            },
            None => None,
        };
        let row = format!(
            "{:<17} {:>7} {:>7} | {} | {}",
            name,
            set.events.len(),
            hub.score.true_pairs,
            cells(Some(&Outcome {
                score: hub.score,
                seconds: hub.settled.as_secs_f64(),
                peak_rss_kib: hub.hub_peak_rss_kib,
            })),
            cells(sp.as_ref())
        );
        println!("{row}");
        rows.push(row);
        let s = &hub.score;
        let prevented = hub.health["match"]["merges_prevented"].as_u64();
        notes.push(format!(
            "{name}: blocking {candidates} candidate pairs holding {reachable} of {} true pairs; \
             mdhub {} golden records, {} open review tasks, {} predicted pairs ({} correct), \
             caught up (all logged and published) {:.2} s after the first publish{}{}",
            s.true_pairs,
            hub.golden_records,
            hub.open_reviews,
            s.predicted_pairs,
            s.correct_pairs,
            hub.caught_up.as_secs_f64(),
            prevented
                .map(|p| format!(", {p} merges prevented by the chaining rule"))
                .unwrap_or_default(),
            sp.as_ref()
                .map(|o| format!(
                    "; Splink {} predicted pairs ({} correct)",
                    o.score.predicted_pairs, o.score.correct_pairs
                ))
                .unwrap_or_default()
        ));
    }
    println!();
    println!("{:<33}| {:<39} | Splink", "", "mdhub");
    println!("{header}");
    for row in &rows {
        println!("{row}");
    }
    for note in &notes {
        println!("  {note}");
    }
    Ok(())
}
