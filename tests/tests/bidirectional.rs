//! Bidirectional sync on real parts: an ERP on PostgreSQL (Odoo's
//! `res_partner`), a CRM on MariaDB (SuiteCRM's contacts and e-mail
//! tables) and an OA system behind a REST API (json-server), each with its
//! connector, through a real nats-server and the hub.
//!
//! 2,000 customers start in the ERP and reach the other two by the initial
//! load and inserts. Then one writer per system edits customers
//! concurrently for a bounded time, some customers in two or three systems
//! at once, each writer keeping its own record of what it wrote. After the
//! writers stop: every system holds, for each field it maps, exactly the
//! golden value; the change events stop growing (no ping-pong); and no
//! write was lost (the golden value of every edited customer is the last
//! write of one of the writers that edited it, of the only one where only
//! one did).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::publish::Publisher;
use mdhub_connectors::runner::metrics::ConnectorMetrics;
use mdhub_connectors::runner::{self, RunContext, RunError};
use mdhub_hub::golden::SourceKey;
use mdhub_hub::nats_bus::{IN_STREAM, OUT_STREAM};
use mdhub_schema::Model;
use mdhub_tests::compliance::{Fields, SystemUnderTest};
use mdhub_tests::er_generator::rng::Rng;
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::systems::odoo::Odoo;
use mdhub_tests::systems::rest::RestApi;
use mdhub_tests::systems::suitecrm::SuiteCrm;
use mdhub_tests::systems::UserEdits;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const CUSTOMERS: usize = 2_000;
/// How long the writers edit.
const WRITING: Duration = Duration::from_secs(8);
/// Customers every writer edits now and then, so that the same customer is
/// edited in two or three systems at once.
const HOT: usize = 10;
const LOAD_DEADLINE: Duration = Duration::from_secs(240);
const CONVERGE_DEADLINE: Duration = Duration::from_secs(180);

fn customer(n: usize) -> Fields {
    [
        ("given_name", json!(format!("Zoë{n}"))),
        ("family_name", json!(format!("O'Brien-{n}"))),
        ("email", json!(format!("customer{n}@example.org"))),
        ("city", json!("Start")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

fn start<S: SystemUnderTest>(
    sys: &S,
    publisher: &Publisher,
    dir: &std::path::Path,
) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    let ctx = RunContext {
        system: sys.name().to_string(),
        entity: "customer".into(),
        mapping: Mapping::parse(&sys.mapping(), sys.name(), &Model::default_customer())?,
        publisher: publisher.clone(),
        state_dir: dir.join(sys.name()),
        metrics: Arc::new(ConnectorMetrics::default()),
        shutdown: shutdown.clone(),
        write_back: true,
        max_write_batch: 200,
    };
    let connector: S::Connector = sys.connector();
    let task = tokio::spawn(runner::run(connector, ctx));
    Ok(Running { shutdown, task })
}

async fn stop(running: Running) -> anyhow::Result<()> {
    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running.task).await???;
    Ok(())
}

/// Each customer's key in the system, by e-mail.
async fn keys_by_email<S: UserEdits>(sys: &mut S) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(sys
        .read_all()
        .await?
        .into_iter()
        .filter_map(|(id, f)| Some((f.get("email")?.as_str()?.to_string(), id)))
        .collect())
}

/// One writer's record of what it wrote: customer number → values in
/// order, each with when it was written (to explain a failure).
type Written = BTreeMap<usize, Vec<(String, OffsetDateTime)>>;

async fn write_for<S: UserEdits>(
    sys: &mut S,
    keys: &BTreeMap<String, String>,
    seed: u64,
) -> anyhow::Result<Written> {
    let mut rng = Rng::seeded(seed);
    let mut written = Written::new();
    let name = sys.name().to_string();
    let end = Instant::now() + WRITING;
    let mut n = 0;
    while Instant::now() < end {
        let c = if rng.below(4) == 0 {
            rng.below(HOT)
        } else {
            rng.below(CUSTOMERS)
        };
        let key = &keys[&format!("customer{c}@example.org")];
        n += 1;
        let value = format!("{name}-{n}");
        let fields: Fields = [("city".to_string(), Value::String(value.clone()))].into();
        sys.set_fields(key, &fields).await?;
        written
            .entry(c)
            .or_default()
            .push((value, OffsetDateTime::now_utc()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(written)
}

/// Fields of `record` that differ from the golden record's: a value the
/// golden record holds otherwise or not at all. (A field the system leaves
/// empty and the golden record does not hold is no difference.)
fn differences(golden: &BTreeMap<String, Value>, record: &Fields) -> Vec<String> {
    record
        .iter()
        .filter(|(f, v)| match golden.get(*f) {
            Some(g) => g != *v,
            None => !v.is_null(),
        })
        .map(|(f, v)| format!("{f}: system {v} golden {:?}", golden.get(f)))
        .collect()
}

/// What happened to customer `c`, in time order, to explain a failure:
/// each writer's writes, each change event of its records (with its base)
/// and each golden update sent to them (with its version).
async fn trace(
    js: &jetstream::Context,
    c: usize,
    records: &[(&str, String)],
    writers: &[(&str, Written)],
) -> anyhow::Result<String> {
    let short = |v: &[String]| {
        v.iter()
            .map(|h| h.get(..6).unwrap_or(h))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut lines: Vec<(OffsetDateTime, String)> = Vec::new();
    for (system, written) in writers {
        for (value, at) in written.get(&c).into_iter().flatten() {
            lines.push((*at, format!("{system} writer wrote {value}")));
        }
    }
    let ours = |system: &str, id: &str| records.iter().any(|(s, r)| *s == system && r == id);
    for stream in [IN_STREAM, OUT_STREAM] {
        let last = js
            .get_stream(stream)
            .await?
            .info()
            .await?
            .state
            .last_sequence;
        let s = js.get_stream(stream).await?;
        for seq in 1..=last {
            let Ok(m) = s.get_raw_message(seq).await else {
                continue;
            };
            if stream == IN_STREAM {
                let Ok(e) = serde_json::from_slice::<mdhub_schema::ChangeEvent>(&m.payload) else {
                    continue;
                };
                if ours(&e.system, &e.record_id) {
                    lines.push((
                        m.time,
                        format!(
                            "IN  {} event {} city={} base=[{}] caused_by={:?}",
                            e.system,
                            &e.event_id.to_string()[..8],
                            e.fields.get("city").unwrap_or(&Value::Null),
                            e.base.as_deref().map(short).unwrap_or_default(),
                            e.caused_by.map(|u| u.to_string()[..8].to_string()),
                        ),
                    ));
                }
            } else {
                let Ok(u) = serde_json::from_slice::<mdhub_schema::GoldenUpdate>(&m.payload) else {
                    continue;
                };
                if u.record_id.as_deref().is_some_and(|id| ours(&u.system, id)) {
                    lines.push((
                        m.time,
                        format!(
                            "OUT {} city={} version=[{}] log_seq={} caused_by={}",
                            u.system,
                            u.fields.get("city").unwrap_or(&Value::Null),
                            short(&u.version),
                            u.log_seq,
                            &u.caused_by.to_string()[..8],
                        ),
                    ));
                }
            }
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    let start = lines.first().map(|(t, _)| *t);
    Ok(lines
        .into_iter()
        .map(|(t, l)| {
            let ms = start.map_or(0, |s| (t - s).whole_milliseconds());
            format!("  +{ms:>6} ms  {l}")
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erp_crm_and_oa_converge_on_the_golden_record_with_no_ping_pong() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let hub_toml = "[system.erp]\nreceive_all = true\n[system.crm]\nreceive_all = true\n\
                    [system.oa]\nreceive_all = true\n\
                    [survivorship]\nsource_priority = []\n[survivorship.fields]\n\
                    city = \"most_recent\"\n";
    let hub = InProcessHub::start(config(
        hub_toml,
        nats.client_url(),
        &dir.path().join("hub"),
    )?)
    .await?;
    let client = nats.connect().await?;
    let js = jetstream::new(client.clone());
    let publisher = Publisher::for_server(client);

    let mut erp = Odoo::start("erp").await?;
    let mut crm = SuiteCrm::start("crm").await?;
    let mut oa = RestApi::start("oa").await?;
    let seeds: Vec<Fields> = (0..CUSTOMERS).map(customer).collect();
    erp.insert_many(&seeds).await?;

    let started = Instant::now();
    let running = vec![
        start(&erp, &publisher, dir.path())?,
        start(&crm, &publisher, dir.path())?,
        start(&oa, &publisher, dir.path())?,
    ];
    let end = Instant::now() + LOAD_DEADLINE;
    loop {
        let (c, o) = (crm.read_all().await?.len(), oa.read_all().await?.len());
        if c >= CUSTOMERS && o >= CUSTOMERS {
            break;
        }
        anyhow::ensure!(
            Instant::now() < end,
            "after {LOAD_DEADLINE:?} the CRM holds {c} and the OA system {o} of {CUSTOMERS} customers"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "initial load into all three systems: {:?}",
        started.elapsed()
    );

    let (erp_keys, crm_keys, oa_keys) = (
        keys_by_email(&mut erp).await?,
        keys_by_email(&mut crm).await?,
        keys_by_email(&mut oa).await?,
    );
    for (name, keys) in [("crm", &crm_keys), ("oa", &oa_keys)] {
        anyhow::ensure!(
            keys.len() == CUSTOMERS,
            "{name} holds {} distinct customers",
            keys.len()
        );
    }
    let (w_erp, w_crm, w_oa) = tokio::join!(
        write_for(&mut erp, &erp_keys, 1),
        write_for(&mut crm, &crm_keys, 2),
        write_for(&mut oa, &oa_keys, 3),
    );
    let writers = [("erp", w_erp?), ("crm", w_crm?), ("oa", w_oa?)];
    let edits: usize = writers
        .iter()
        .map(|(_, w)| w.values().map(Vec::len).sum::<usize>())
        .sum();
    let both = (0..CUSTOMERS)
        .filter(|c| writers.iter().filter(|(_, w)| w.contains_key(c)).count() > 1)
        .count();
    eprintln!("{edits} edits written; {both} customers edited in more than one system");
    anyhow::ensure!(both > 0, "no customer was edited in two systems at once");

    // Every system converges on the golden record.
    let golden_of = |system: &str, id: &str| {
        let hub = hub.hub.read().unwrap();
        let state = hub.state();
        state
            .golden_of(&SourceKey {
                system: system.into(),
                record_id: id.into(),
            })
            .unwrap()
            .and_then(|g| state.record(g).unwrap().map(|r| (g, r.values.clone())))
    };
    let end = Instant::now() + CONVERGE_DEADLINE;
    let mut last_problem;
    loop {
        let mut problems = Vec::new();
        for (name, rows) in [
            ("erp", erp.read_all().await?),
            ("crm", crm.read_all().await?),
            ("oa", oa.read_all().await?),
        ] {
            if rows.len() != CUSTOMERS {
                problems.push(format!("{name} holds {} customers", rows.len()));
            }
            for (id, fields) in &rows {
                match golden_of(name, id) {
                    None => problems.push(format!("{name} record {id} is not linked")),
                    Some((_, golden)) => {
                        let d = differences(&golden, fields);
                        if !d.is_empty() {
                            problems.push(format!("{name} record {id}: {}", d.join(", ")));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            break;
        }
        last_problem = format!("{} problems, first: {}", problems.len(), problems[0]);
        anyhow::ensure!(
            Instant::now() < end,
            "not converged after {CONVERGE_DEADLINE:?}: {last_problem}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "converged {:?} after the writers stopped",
        CONVERGE_DEADLINE.saturating_sub(end.saturating_duration_since(Instant::now()))
    );

    // No ping-pong: the change events stop growing.
    let count =
        || async { anyhow::Ok(js.get_stream(IN_STREAM).await?.info().await?.state.messages) };
    let mut before = count().await?;
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = count().await?;
        if now == before {
            break;
        }
        anyhow::ensure!(
            Instant::now() < end,
            "change events keep growing: {before} then {now}"
        );
        before = now;
    }

    // Nothing missed: each edited customer's golden city is the last write
    // of one of its writers (of the only one, when one system edited it).
    for c in 0..CUSTOMERS {
        let last: BTreeSet<&String> = writers
            .iter()
            .filter_map(|(_, w)| w.get(&c).and_then(|v| v.last()).map(|(v, _)| v))
            .collect();
        if last.is_empty() {
            continue;
        }
        let id = &erp_keys[&format!("customer{c}@example.org")];
        let (_, golden) =
            golden_of("erp", id).ok_or_else(|| anyhow::anyhow!("customer {c} not linked"))?;
        let city = golden
            .get("city")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !last.contains(&city) {
            let records = [("erp", &erp_keys), ("crm", &crm_keys), ("oa", &oa_keys)]
                .map(|(s, keys)| (s, keys[&format!("customer{c}@example.org")].clone()));
            let story = trace(&js, c, &records, &writers).await?;
            anyhow::bail!(
                "customer {c}: golden city {city:?} is none of the writers' last writes \
                 {last:?}; what happened to it:\n{story}"
            );
        }
    }
    for r in running {
        stop(r).await?;
    }
    drop(hub);
    Ok(())
}
