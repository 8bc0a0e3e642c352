//! Scale benchmark: a hub on the redb derived store (default `[store]`
//! settings) ingesting N customers, each sent once by each of 3 systems,
//! plus edits of 20% of them; then stopped and restarted on its
//! checkpoint, and killed and restarted on the checkpoint before.
//!
//! The customers' names and places are drawn like a real customer base's:
//! given names from a list of 100 common ones, family names built from
//! syllables (about 6,500 sounds, as a real base has thousands of
//! surnames), 90,000 postcodes, 900 cities. (An earlier version named
//! every customer `Given{c} Family{c}`: one sound for all, so the blocks
//! of a name's sound with a postcode grew with every customer.) Blocks
//! still grow with the data as they do in a real base, until they reach
//! `max_block` and are no longer read: the report's `candidates/event`
//! (records compared per event, first and last 10%) shows how the
//! matcher's work per event changes with the size.
//!
//! Run with `cargo bench -p mdhub-tests --bench scale`. Parameters from the
//! environment: `MDHUB_SCALE_CUSTOMERS` (comma-separated sizes, default
//! `100000`), `MDHUB_SCALE_READS` (golden records read after each restart,
//! default 2000), `MDHUB_SCALE_CACHE` (`[store] cache_records`, default the
//! default). The hub's own log lines (checkpoints, start phases) go to
//! stderr with the progress. Progress goes to stderr, the report to stdout.
//!
//! In process, without NATS (`MemoryBus`): the hub's own costs, not the
//! broker's. Per size, in a fresh data dir:
//! - ingest: events/s over the whole run, and over the first and the last
//!   10% of the events (the rate as the hub fills up);
//! - peak RSS of this process (`VmHWM`; the events are generated as they
//!   are ingested, so it is the hub's);
//! - a clean stop (`Hub::checkpoint`) and a restart: seconds until the hub
//!   is open, then reading golden records by id: the first read of each
//!   (cold: not in the record cache) and a second read (p50, p99);
//! - a kill: the hub dropped without a checkpoint after ingesting
//!   `checkpoint_entries / 2` more events, and a restart: seconds until open
//!   (it derives the entries after the last checkpoint).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use mdhub_hub::config::{HubConfig, StoreConfig};
use mdhub_hub::golden::SourceKey;
use mdhub_hub::hub::Hub;
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_schema::{ChangeEvent, Limits, Op, SCHEMA_VERSION};
use mdhub_tests::bench_stats::peak_rss_mib;
use mdhub_tests::er_generator::names::GIVEN_DE;
use mdhub_tests::er_generator::rng::mix;
use serde_json::{json, Value};
use uuid::Uuid;

/// The hub's allocator, as in `mdhub serve`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYSTEMS: [&str; 3] = ["erp", "crm", "oa"];
/// Postcodes: customer `c` lives in `10000 + c % POSTCODES`.
const POSTCODES: u64 = 89_999;
/// Cities: a postcode lies in one of them, 100 postcodes each.
const CITIES: u64 = 900;

/// Customer `c`'s given name: one of 100 common names, drawn by a hash of
/// `c` so that it does not follow the postcode.
fn given_name(c: u64) -> &'static str {
    GIVEN_DE[(mix(c ^ 0x6769_7665) % GIVEN_DE.len() as u64) as usize]
}

/// Customer `c`'s family name: four syllables from a hash of `c`. The
/// matcher's sound key keeps four consonants and hears b and p alike, so
/// the ten consonants give about 6,500 sounds.
fn family_name(c: u64) -> String {
    const CONSONANTS: &[u8] = b"bdfklmnprs";
    const VOWELS: &[u8] = b"aeiou";
    let mut h = mix(c ^ 0x6661_6d69);
    let mut name = String::new();
    for _ in 0..4 {
        name.push(CONSONANTS[(h % 10) as usize] as char);
        h /= 10;
        name.push(VOWELS[(h % 5) as usize] as char);
        h /= 5;
    }
    let mut chars = name.chars();
    let first = chars.next().expect("four syllables").to_ascii_uppercase();
    std::iter::once(first).chain(chars).collect()
}

/// The city system `system` holds for customer `c`: the postcode's city,
/// and for the second and third system sometimes the next one (systems
/// disagree, so survivorship has conflicts to resolve).
fn city(c: u64, system: u64) -> String {
    let shift = u64::from(mix(c ^ system).is_multiple_of(4)) * system;
    format!("Stadt {}", ((c % POSTCODES) / 100 + shift) % CITIES)
}

fn config() -> HubConfig {
    HubConfig::parse(
        "[system.erp]\nregion = \"DE\"\n[system.crm]\nregion = \"DE\"\n[system.oa]\nregion = \"DE\"\n\
         [survivorship]\nsource_priority = [\"erp\", \"crm\", \"oa\"]\n[match]\ntrain_at = 0\n",
        "scale",
    )
    .expect("bench config parses")
}

fn event(n: u64, system: usize, c: u64, city: &str) -> ChangeEvent {
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    fields.insert(
        "email".into(),
        json!(format!("customer{c}@example{}.com", c % 97)),
    );
    fields.insert("given_name".into(), json!(given_name(c)));
    fields.insert("family_name".into(), json!(family_name(c)));
    fields.insert("phone".into(), json!(format!("+49 30 {:08}", c)));
    fields.insert("city".into(), json!(city));
    fields.insert(
        "postal_code".into(),
        json!(format!("{:05}", 10_000 + c % POSTCODES)),
    );
    fields.insert("country".into(), json!("DE"));
    ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("scale/{n}").as_bytes()),
        system: SYSTEMS[system].to_string(),
        entity: "customer".to_string(),
        record_id: format!("{}-{c}", SYSTEMS[system]),
        op: Op::Upsert,
        fields: fields.into_iter().collect(),
        observed_at: time::macros::datetime!(2026-01-01 00:00 UTC)
            + time::Duration::milliseconds(n as i64),
        base: None,
        caused_by: None,
    }
}

/// The events of customers `from..to`: each from each system, then an edit
/// of every fifth one by one system. `n` numbers events across calls.
fn events(from: u64, to: u64, n: &mut u64) -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    for c in from..to {
        for s in 0..SYSTEMS.len() {
            *n += 1;
            out.push(event(*n, s, c, &city(c, s as u64)));
        }
    }
    for c in (from..to).filter(|c| c % 5 == 0) {
        *n += 1;
        out.push(event(*n, (c % 3) as usize, c, &city(c + 100, 0)));
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Pumps `batch` through the hub and drops what it published.
fn pump(bus: &mut MemoryBus, hub: &mut Hub, batch: &[ChangeEvent]) {
    for e in batch {
        bus.publish(e);
    }
    let outcome = bus.pump(hub, 500).expect("ingest");
    assert!(!outcome.degraded, "the hub degraded");
    for system in SYSTEMS {
        bus.take_updates(system);
    }
    bus.golden_feed.clear();
}

struct Figures {
    customers: u64,
    events: u64,
    golden: usize,
    rate: f64,
    first_rate: f64,
    last_rate: f64,
    /// Records compared per event over the first and the last 10%.
    first_candidates: f64,
    last_candidates: f64,
    peak_rss: f64,
    stop_checkpoint: f64,
    restart: f64,
    cold: (f64, f64),
    warm: (f64, f64),
    kill_restart: f64,
    kill_tail: u64,
}

fn run(customers: u64, reads: usize) -> Figures {
    let config = config();
    let rules = Arc::new(config.rules(config.load_models("scale").expect("models")));
    let mut store = StoreConfig::default();
    if let Some(cache) = std::env::var("MDHUB_SCALE_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        store.cache_records = cache;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let open =
        || Hub::open_with(dir.path(), Arc::clone(&rules), Limits::default(), &store).expect("open");
    let (mut hub, _) = open();
    let mut bus = MemoryBus::default();
    let total = customers * 3 + customers.div_ceil(5);
    let chunk = 2_000u64;
    let mut n = 0u64;
    let started = Instant::now();
    let compared = |hub: &Hub| hub.state().resolver().candidates_compared() as f64;
    let mut first_rate = 0.0;
    let mut first_candidates = 0.0;
    let mut last_started = None;
    let mut last_from = 0;
    let mut last_compared = 0.0;
    let mut reported = Instant::now();
    let mut c = 0;
    while c < customers {
        let to = (c + chunk).min(customers);
        let batch = events(c, to, &mut n);
        if last_started.is_none() && n >= total * 9 / 10 {
            last_started = Some(Instant::now());
            last_from = n;
            last_compared = compared(&hub);
        }
        pump(&mut bus, &mut hub, &batch);
        if first_rate == 0.0 && n >= total / 10 {
            first_rate = n as f64 / started.elapsed().as_secs_f64();
            first_candidates = compared(&hub) / n as f64;
        }
        if reported.elapsed().as_secs() >= 10 {
            reported = Instant::now();
            eprintln!(
                "  {customers}: {n} of {total} events, {:.0}/s, {:.1} candidates/event, peak RSS {:.0} MiB",
                n as f64 / started.elapsed().as_secs_f64(),
                compared(&hub) / n as f64,
                peak_rss_mib()
            );
        }
        c = to;
    }
    let seconds = started.elapsed().as_secs_f64();
    let last_rate =
        last_started.map_or(0.0, |s| (n - last_from) as f64 / s.elapsed().as_secs_f64());
    let last_candidates = (compared(&hub) - last_compared) / (n - last_from).max(1) as f64;
    let golden = hub.state().golden_count();

    let checkpointing = Instant::now();
    hub.checkpoint().expect("checkpoint");
    let stop_checkpoint = checkpointing.elapsed().as_secs_f64();
    drop(hub);
    let opening = Instant::now();
    let (hub, _) = open();
    let restart = opening.elapsed().as_secs_f64();
    assert_eq!(hub.started_from_seq(), hub.log().last_seq());
    // Golden ids of customers spread over the range.
    let step = (customers / reads as u64).max(1);
    let ids: Vec<Uuid> = (0..customers)
        .step_by(step as usize)
        .filter_map(|c| {
            hub.state()
                .golden_of(&SourceKey {
                    system: "erp".into(),
                    record_id: format!("erp-{c}"),
                })
                .unwrap()
        })
        .collect();
    let read = |ids: &[Uuid]| {
        let mut times: Vec<f64> = ids
            .iter()
            .map(|id| {
                let t = Instant::now();
                let record = hub.state().record(*id).expect("read").expect("exists");
                assert_eq!(record.id, *id);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        (percentile(&times, 0.5), percentile(&times, 0.99))
    };
    let cold = read(&ids);
    let warm = read(&ids);

    // A kill half-way to the next checkpoint.
    let mut hub = hub;
    let kill_tail = store.checkpoint_entries / 2;
    let mut more = 0;
    let mut c = customers;
    while more < kill_tail {
        let batch = events(c, c + 100, &mut n);
        more += batch.len() as u64;
        pump(&mut bus, &mut hub, &batch);
        c += 100;
    }
    let tail = hub.log().last_seq() - hub.checkpoint_seq();
    drop(hub);
    let opening = Instant::now();
    let (hub, _) = open();
    let kill_restart = opening.elapsed().as_secs_f64();
    assert!(hub.started_from_seq() > 0);
    drop(hub);

    Figures {
        customers,
        events: total,
        golden,
        rate: total as f64 / seconds,
        first_rate,
        last_rate,
        first_candidates,
        last_candidates,
        peak_rss: peak_rss_mib(),
        stop_checkpoint,
        restart,
        cold,
        warm,
        kill_restart,
        kill_tail: tail,
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mdhub_hub=info".into()),
        )
        .init();
    let sizes: Vec<u64> = std::env::var("MDHUB_SCALE_CUSTOMERS")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("MDHUB_SCALE_CUSTOMERS: numbers"))
        .collect();
    let reads: usize = std::env::var("MDHUB_SCALE_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    // A row as soon as its size is done: a long run stopped part-way keeps
    // the sizes it finished.
    println!("scale benchmark (in process, redb derived store, default [store] settings)");
    println!(
        "| customers | events | golden | events/s | first 10% | last 10% | candidates/event first / last 10% | peak RSS MiB | stop checkpoint s | restart s | cold read p50/p99 ms | repeat read p50/p99 ms | restart after kill s (tail entries) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for customers in sizes {
        eprintln!("scale: {customers} customers");
        let f = run(customers, reads);
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} / {:.1} | {:.0} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} ({}) |",
            f.customers,
            f.events,
            f.golden,
            f.rate,
            f.first_rate,
            f.last_rate,
            f.first_candidates,
            f.last_candidates,
            f.peak_rss,
            f.stop_checkpoint,
            f.restart,
            f.cold.0,
            f.cold.1,
            f.warm.0,
            f.warm.1,
            f.kill_restart,
            f.kill_tail
        );
        std::io::Write::flush(&mut std::io::stdout()).expect("stdout");
    }
}
