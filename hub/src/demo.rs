//! `mdhub demo`: a CRM and an ERP kept in sync through the hub, step by step.
//!
//! Without `--nats` everything runs in this process on the in-process bus and
//! a temporary store. With `--nats URL` the same script runs over JetStream:
//! the systems publish on `mdhub.in.*`, the hub's ingest loop runs as in
//! `mdhub serve`, and each system reads its updates from `mdhub.out.*`
//! through its own durable consumer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use mdhub_connectors::connect::NatsConnect;
use mdhub_connectors::sample::SampleSystem;
use mdhub_schema::{ChangeEvent, GoldenUpdate, Limits};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::HubConfig;
use crate::golden::SourceKey;
use crate::hub::{Hub, SharedHub};
use crate::memory_bus::MemoryBus;
use crate::nats_bus;
use crate::state::State;

const CONFIG: &str = r#"
[system.crm]
region = "DE"
[system.erp]
region = "DE"
[survivorship]
# The ERP is the system of record for addresses and company names.
source_priority = ["erp", "crm"]
"#;

/// Prints a system's rows.
fn print_rows(system: &SampleSystem) {
    for (id, row) in system.rows() {
        println!("  {:>3} {id:<6} {}", system.name(), show(row));
    }
}

/// A user's edit in `system`, shown as it is captured.
fn edit(
    system: &mut SampleSystem,
    record_id: &str,
    fields: &[(&str, &str)],
    at: OffsetDateTime,
) -> ChangeEvent {
    let event = system.edit(record_id, fields, at);
    println!(
        "  {:>3} {record_id}: user sets {}",
        system.name(),
        show(&event.fields)
    );
    event
}

fn show(fields: &BTreeMap<String, Value>) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the script needs from a bus.
trait DemoBus {
    async fn send(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<()>;
    /// Waits until the hub has ingested everything sent and published its
    /// updates; returns the updates per system.
    async fn settle(&mut self) -> anyhow::Result<BTreeMap<&'static str, Vec<GoldenUpdate>>>;
    fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R;
}

const SYSTEMS: [&str; 2] = ["crm", "erp"];

struct InProcess {
    hub: Hub,
    bus: MemoryBus,
}

impl DemoBus for InProcess {
    async fn send(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<()> {
        events.iter().for_each(|e| self.bus.publish(e));
        Ok(())
    }
    async fn settle(&mut self) -> anyhow::Result<BTreeMap<&'static str, Vec<GoldenUpdate>>> {
        self.bus.pump(&mut self.hub, 500)?;
        Ok(SYSTEMS
            .iter()
            .map(|s| (*s, self.bus.take_updates(s)))
            .collect())
    }
    fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(self.hub.state())
    }
}

struct OverNats {
    hub: SharedHub,
    js: jetstream::Context,
    sent: u64,
    consumers: BTreeMap<&'static str, jetstream::consumer::Consumer<pull::Config>>,
}

impl DemoBus for OverNats {
    async fn send(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<()> {
        for e in events {
            let subject = mdhub_schema::in_subject(&e.system, &e.entity);
            self.js
                .publish(subject, serde_json::to_vec(&e)?.into())
                .await?
                .await?;
            self.sent += 1;
        }
        Ok(())
    }
    async fn settle(&mut self) -> anyhow::Result<BTreeMap<&'static str, Vec<GoldenUpdate>>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (seq, published) = {
                let hub = self.hub.read().expect("hub lock");
                (hub.log().last_seq(), hub.published_seq()?)
            };
            if seq >= self.sent && published >= seq {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the hub did not ingest the demo events within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut out = BTreeMap::new();
        for (system, consumer) in &self.consumers {
            let mut updates = Vec::new();
            let mut batch = consumer.fetch().max_messages(1000).messages().await?;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| anyhow::anyhow!("{e}"))?;
                updates.push(serde_json::from_slice(&msg.payload)?);
                msg.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            out.insert(*system, updates);
        }
        Ok(out)
    }
    fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(self.hub.read().expect("hub lock").state())
    }
}

pub async fn run(nats_url: Option<&str>) -> anyhow::Result<()> {
    let config = HubConfig::parse(CONFIG, "demo")?;
    let rules = Arc::new(config.rules(config.load_models("demo")?));
    let dir = tempfile::tempdir()?;
    let (hub, _) = Hub::open(dir.path(), rules, Limits::default())?;
    match nats_url {
        None => {
            println!(
                "mdhub demo: in-process bus, store in {}\n",
                dir.path().display()
            );
            script(InProcess {
                hub,
                bus: MemoryBus::default(),
            })
            .await
        }
        Some(url) => {
            println!(
                "mdhub demo: over NATS at {url}, store in {}\n",
                dir.path().display()
            );
            let client = nats_bus::connect(&NatsConnect::with_urls(url), "mdhub-demo").await?;
            let hub: SharedHub = Arc::new(RwLock::new(hub));
            let mut config = config;
            config.ingest.consumer = format!("mdhub-demo-{}", Uuid::now_v7().simple());
            nats_bus::ensure_streams(&client, &config).await?;
            let js = jetstream::new(client.clone());
            let out = js.get_stream(nats_bus::OUT_STREAM).await?;
            let mut consumers = BTreeMap::new();
            for system in SYSTEMS {
                let consumer = out
                    .create_consumer(pull::Config {
                        filter_subject: format!("mdhub.out.{system}.>"),
                        deliver_policy: jetstream::consumer::DeliverPolicy::New,
                        ..Default::default()
                    })
                    .await?;
                consumers.insert(system, consumer);
            }
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let ingest = tokio::spawn({
                let hub = hub.clone();
                async move {
                    nats_bus::run_ingest(hub, client, &config, Vec::new(), async {
                        let _ = stopped.await;
                    })
                    .await
                }
            });
            let result = script(OverNats {
                hub,
                js,
                sent: 0,
                consumers,
            })
            .await;
            let _ = stop.send(());
            ingest.await??;
            result
        }
    }
}

async fn script(mut bus: impl DemoBus) -> anyhow::Result<()> {
    let mut crm = SampleSystem::new("crm");
    let mut erp = SampleSystem::new("erp");
    let t0 = time::macros::datetime!(2026-03-02 09:00 UTC);
    let at = |minutes: i64| t0 + time::Duration::minutes(minutes);

    println!("1. Both systems hold the same customer, entered separately:");
    let events = vec![
        edit(
            &mut crm,
            "c-100",
            &[
                ("given_name", "Ann"),
                ("family_name", "Lee"),
                ("email", "ann.lee@example.com"),
                ("phone", "+49 30 1234567"),
            ],
            at(0),
        ),
        edit(
            &mut erp,
            "4711",
            &[
                ("full_name", "Ann Lee"),
                ("email", "ANN.LEE@example.com"),
                ("company", "Lee Consulting GmbH"),
                ("city", "Berlin"),
                ("country", "de"),
            ],
            at(1),
        ),
    ];
    bus.send(events).await?;
    let golden = round_trip(&mut bus, &mut crm, &mut erp, at(2)).await?;
    print_golden(&bus, golden);

    println!("\n2. Both change the phone number at the same time, neither having seen the other:");
    let events = vec![
        edit(&mut crm, "c-100", &[("phone", "+49 30 7654321")], at(10)),
        edit(&mut erp, "4711", &[("phone", "030 5550000")], at(12)),
    ];
    bus.send(events).await?;
    round_trip(&mut bus, &mut crm, &mut erp, at(13)).await?;
    println!("   a true conflict: both values are kept, survivorship (phone: most_recent) picks the ERP's later edit;");
    println!("   the update the ERP got with the CRM's value was stale when it arrived: its echo changed nothing,");
    println!("   and the hub sent the ERP the golden value again");
    print_golden(&bus, golden);

    println!(
        "\n3. The CRM corrects the city after it has seen the ERP's value (a causal overwrite):"
    );
    bus.send(vec![edit(
        &mut crm,
        "c-100",
        &[("city", "Potsdam")],
        at(20),
    )])
    .await?;
    round_trip(&mut bus, &mut crm, &mut erp, at(21)).await?;
    println!(
        "   no conflict: the CRM wrote on top of the ERP's value, so it supersedes it even though"
    );
    println!("   the ERP ranks first for addresses");
    print_golden(&bus, golden);

    println!("\nBoth systems now hold the golden values:");
    print_rows(&crm);
    print_rows(&erp);
    let hash = bus.state(|s| s.state_hash())?;
    println!("\nstate hash {hash}");
    Ok(())
}

/// Delivers what was sent, then lets the systems apply the updates and send
/// their echoes back until the hub has nothing more to say. A stale update
/// (one that crossed a newer edit on the wire) is answered once with the
/// golden value; an echo of a current update with nothing.
async fn round_trip(
    bus: &mut impl DemoBus,
    crm: &mut SampleSystem,
    erp: &mut SampleSystem,
    at: OffsetDateTime,
) -> anyhow::Result<Uuid> {
    let mut updates = bus.settle().await?;
    for round in 1.. {
        let count: usize = updates.values().map(Vec::len).sum();
        if count == 0 {
            println!("   round {round}: hub sent nothing: both systems hold the golden record");
            break;
        }
        anyhow::ensure!(round <= 5, "no convergence after 5 rounds: an echo loop");
        println!("   round {round}: hub sent {count} golden update(s)");
        let mut echoes = Vec::new();
        for (system, list) in &updates {
            let target = if *system == "crm" {
                &mut *crm
            } else {
                &mut *erp
            };
            for u in list {
                if let Some(echo) = target.apply(u, at) {
                    println!(
                        "  {:>3} {}: applies golden update {}",
                        target.name(),
                        echo.record_id,
                        show(&u.fields)
                    );
                    echoes.push(echo);
                }
            }
        }
        println!(
            "   the connectors' change capture sends {} echo(es) back",
            echoes.len()
        );
        bus.send(echoes).await?;
        updates = bus.settle().await?;
    }
    let source = SourceKey {
        system: "crm".to_string(),
        record_id: "c-100".to_string(),
    };
    bus.state(|s| s.golden_of(&source))?
        .context("the CRM record is linked")
}

fn print_golden(bus: &impl DemoBus, id: Uuid) {
    bus.state(|s| {
        let Ok(Some(r)) = s.record(id) else { return };
        println!("   golden {id}:");
        println!("     {}", show(&r.values));
        let links: Vec<String> = r
            .links
            .iter()
            .map(|l| format!("{}/{}", l.system, l.record_id))
            .collect();
        println!("     linked: {}", links.join(", "));
        for (field, cands) in r.conflicts() {
            let all: Vec<String> = cands
                .iter()
                .map(|c| {
                    format!(
                        "{} from {} at {}",
                        c.value,
                        c.system,
                        c.observed_at_rfc3339()
                    )
                })
                .collect();
            println!("     conflict on {field}: {}", all.join(" | "));
        }
    });
}
