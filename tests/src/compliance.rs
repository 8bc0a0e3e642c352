//! The shared compliance test of docs/specs/connector.md: one scenario that
//! every connector runs through, against its real system, the real hub in
//! this process and a real nats-server.
//!
//! A connector takes part by implementing [`SystemUnderTest`]: the
//! connector itself, its mapping, and a user's plain edits of the system
//! (in canonical terms, written in the system's own way: SQL, HTTP, files).
//! The scenario then checks, in order:
//! 1. rows that existed before the connector started are loaded;
//! 2. inserts, updates and deletes are captured;
//! 3. a golden update from another system is applied, and its echo is not
//!    published back;
//! 4. a golden record the system did not hold is inserted (it receives all
//!    records) and the new key is reported back, so the hub links it;
//! 5. a retire deletes or archives the record;
//! 6. after a stop, edits made meanwhile are captured from the saved cursor
//!    with no gap;
//! 7. the metrics report what was captured, applied and suppressed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use mdhub_connectors::contract::Connector;
use mdhub_connectors::mapping::Mapping;
use mdhub_connectors::publish::{OutMessage, Publisher};
use mdhub_connectors::runner::metrics::ConnectorMetrics;
use mdhub_connectors::runner::{self, RunContext, RunError};
use mdhub_hub::nats_bus::IN_STREAM;
use mdhub_schema::{ChangeEvent, GoldenUpdate, Model, Op, UpdateOp, SCHEMA_VERSION};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hub_runner::{config, InProcessHub};
use crate::nats::NatsServer;
use crate::streams::read_all;
use crate::wait::{wait_for, wait_until};

/// Canonical fields of one customer.
pub type Fields = BTreeMap<String, Value>;

const DEADLINE: Duration = Duration::from_secs(30);

/// A system a connector keeps in step, as the compliance test uses it.
/// Edits go straight to the system, as its users make them.
pub trait SystemUnderTest: Send {
    type Connector: Connector + Clone;

    /// The system's name in the hub (`[system.<name>]`).
    fn name(&self) -> &str;
    /// A connector to this system (called again for a restart).
    fn connector(&self) -> Self::Connector;
    /// The connector's mapping file (TOML).
    fn mapping(&self) -> String;
    /// A user inserts a customer with these canonical fields (given_name,
    /// family_name, email, city); returns its key in the system.
    fn insert(&mut self, fields: &Fields) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// A user sets the city of a customer.
    fn set_city(
        &mut self,
        record_id: &str,
        city: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// A user deletes (or archives) a customer.
    fn delete(&mut self, record_id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The customer as the system holds it now, in canonical fields;
    /// `None` when it is deleted or archived.
    fn read(
        &mut self,
        record_id: &str,
    ) -> impl Future<Output = anyhow::Result<Option<Fields>>> + Send;
}

fn customer(n: u32, tag: &str) -> Fields {
    [
        ("given_name", json!(format!("Ann{n}"))),
        ("family_name", json!(format!("O'Lee-{tag}"))),
        ("email", json!(format!("ann{n}.{tag}@example.com"))),
        ("city", json!("Berlin")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A running connector: its shutdown signal and task.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    metrics: Arc<ConnectorMetrics>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<Arc<ConnectorMetrics>> {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .context("the connector to stop")???;
        Ok(self.metrics)
    }
}

struct Bench {
    _nats: NatsServer,
    hub: InProcessHub,
    js: jetstream::Context,
    publisher: Publisher,
    system: String,
    state_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn start_connector<S: SystemUnderTest>(&self, sys: &S) -> anyhow::Result<Running> {
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(ConnectorMetrics::default());
        let ctx = RunContext {
            system: self.system.clone(),
            entity: "customer".into(),
            mapping: Mapping::parse(&sys.mapping(), "compliance", &Model::default_customer())?,
            publisher: self.publisher.clone(),
            state_dir: self.state_dir.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            write_back: true,
            max_write_batch: 100,
        };
        let task = tokio::spawn(runner::run(sys.connector(), ctx));
        Ok(Running {
            shutdown,
            task,
            metrics,
        })
    }

    fn golden_of(&self, system: &str, record_id: &str) -> Option<Uuid> {
        self.hub.golden_of(system, record_id)
    }

    fn golden_value(&self, id: Uuid, field: &str) -> Option<Value> {
        let hub = self.hub.hub.read().unwrap();
        let record = hub.state().record(id).expect("the derived state reads")?;
        record.values.get(field).cloned()
    }

    async fn wait_golden(&self, system: &str, record_id: &str) -> anyhow::Result<Uuid> {
        wait_for(
            &format!("the hub to link {system} record {record_id}"),
            DEADLINE,
            || async { Ok(self.golden_of(system, record_id)) },
        )
        .await
    }

    async fn events_of(&self, record_id: &str) -> anyhow::Result<Vec<ChangeEvent>> {
        let subject = mdhub_schema::in_subject(&self.system, "customer");
        Ok(read_all(&self.js, IN_STREAM, &subject)
            .await?
            .iter()
            .filter_map(|m| serde_json::from_slice::<ChangeEvent>(&m.payload).ok())
            .filter(|e| e.record_id == record_id)
            .collect())
    }

    /// Another system's user edits a customer: a change event on its subject.
    async fn external_edit(&self, record_id: &str, fields: Fields) -> anyhow::Result<()> {
        let event = ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            system: "ext".into(),
            entity: "customer".into(),
            record_id: record_id.into(),
            op: Op::Upsert,
            fields,
            observed_at: OffsetDateTime::now_utc(),
            base: None,
            caused_by: None,
        };
        self.publisher
            .publish_all(vec![OutMessage::new(
                "mdhub.in.ext.customer",
                serde_json::to_vec(&event)?,
            )])
            .await?;
        Ok(())
    }
}

/// Runs the whole compliance scenario against one system.
pub async fn run_compliance<S: SystemUnderTest>(mut sys: S) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let system = sys.name().to_string();
    // The system receives every golden record; "ext" stands for any other
    // system whose edits reach it through the hub. Most recent wins.
    let hub_toml = format!(
        "[system.{system}]\nreceive_all = true\n[system.ext]\n\
         [survivorship]\nsource_priority = []\n[survivorship.fields]\n\
         city = \"most_recent\"\nphone = \"most_recent\"\n"
    );
    let hub = InProcessHub::start(config(
        &hub_toml,
        nats.client_url(),
        &dir.path().join("hub"),
    )?)
    .await?;
    let client = nats.connect().await?;
    let bench = Bench {
        js: jetstream::new(client.clone()),
        publisher: Publisher::for_server(client),
        hub,
        _nats: nats,
        state_dir: dir.path().join("connector"),
        system: system.clone(),
        _dir: dir,
    };

    // 1. Rows that exist before the connector starts are loaded.
    let mut existing = Vec::new();
    for n in 0..3 {
        existing.push(sys.insert(&customer(n, "pre")).await?);
    }
    let running = bench.start_connector(&sys)?;
    for id in &existing {
        bench.wait_golden(&system, id).await?;
    }

    // 2. Inserts, updates and deletes are captured.
    let new_id = sys.insert(&customer(10, "new")).await?;
    let golden = bench.wait_golden(&system, &new_id).await?;
    sys.set_city(&new_id, "Köln \"Süd\"").await?;
    wait_until(
        "the update to reach the golden record",
        DEADLINE,
        || async { bench.golden_value(golden, "city") == Some(json!("Köln \"Süd\"")) },
    )
    .await?;
    let gone = existing[2].clone();
    sys.delete(&gone).await?;
    wait_for("the delete to be captured", DEADLINE, || async {
        let events = bench.events_of(&gone).await?;
        Ok(events.iter().any(|e| e.op == Op::Delete).then_some(()))
    })
    .await?;

    // 3. A golden update from another system is applied; its echo is not
    // published back.
    let target = existing[0].clone();
    let target_golden = bench.wait_golden(&system, &target).await?;
    let mut ext = customer(0, "pre");
    ext.insert("city".into(), json!("Hamburg"));
    let events_before = bench.events_of(&target).await?.len();
    bench.external_edit("x-0", ext).await?;
    wait_for(
        "the ext record to join the same golden record",
        DEADLINE,
        || async { Ok((bench.golden_of("ext", "x-0") == Some(target_golden)).then_some(())) },
    )
    .await?;
    wait_until_city(&mut sys, &target, "Hamburg").await?;
    // A later user edit of another record is captured after the echo
    // would have been: once it is in, the echo would be too.
    sys.set_city(&existing[1], "Bonn").await?;
    let other = bench.wait_golden(&system, &existing[1]).await?;
    wait_until("the later edit to be captured", DEADLINE, || async {
        bench.golden_value(other, "city") == Some(json!("Bonn"))
    })
    .await?;
    let echoes: Vec<ChangeEvent> = bench
        .events_of(&target)
        .await?
        .into_iter()
        .skip(events_before)
        .collect();
    anyhow::ensure!(
        echoes.is_empty(),
        "the write-back of {target} came back as {} change event(s): {echoes:?}",
        echoes.len()
    );
    anyhow::ensure!(
        ConnectorMetrics::get(&running.metrics.updates_applied) >= 1,
        "no update counted as applied"
    );

    // 4. A golden record the system does not hold is inserted, and linked.
    bench.external_edit("x-new", customer(20, "ext")).await?;
    let ext_golden = bench.wait_golden("ext", "x-new").await?;
    let inserted = wait_for("the system's copy to be linked", DEADLINE, || async {
        let hub = bench.hub.hub.read().unwrap();
        Ok(hub.state().record(ext_golden)?.and_then(|r| {
            r.links
                .iter()
                .find(|l| l.system == system)
                .map(|l| l.record_id.clone())
        }))
    })
    .await?;
    let row = sys.read(&inserted).await?.context("the inserted record")?;
    anyhow::ensure!(
        row.get("email") == Some(&json!("ann20.ext@example.com")),
        "inserted record {inserted} holds {row:?}"
    );

    // 5. A retire deletes or archives the record.
    let retired = existing[1].clone();
    let update = GoldenUpdate {
        schema_version: SCHEMA_VERSION,
        update_id: Uuid::now_v7(),
        golden_id: other,
        system: system.clone(),
        entity: "customer".into(),
        record_id: Some(retired.clone()),
        op: UpdateOp::Retire,
        fields: Default::default(),
        version: vec!["00".repeat(32)],
        log_seq: 0,
        caused_by: Uuid::now_v7(),
    };
    bench
        .publisher
        .publish_all(vec![OutMessage::new(
            format!("mdhub.out.{system}.customer"),
            serde_json::to_vec(&update)?,
        )])
        .await?;
    wait_until_gone(&mut sys, &retired).await?;

    // 6. Edits made while the connector is stopped are captured after it
    // starts again, from its cursor.
    let metrics = running.stop().await?;
    let captured_before = ConnectorMetrics::get(&metrics.events_captured);
    anyhow::ensure!(captured_before >= 5, "events captured: {captured_before}");
    anyhow::ensure!(
        ConnectorMetrics::get(&metrics.load_done) == 1,
        "the load is not reported done"
    );
    sys.set_city(&new_id, "Dresden").await?;
    let late = sys.insert(&customer(30, "late")).await?;
    let running = bench.start_connector(&sys)?;
    bench.wait_golden(&system, &late).await?;
    wait_until(
        "the edit made while stopped to arrive",
        DEADLINE,
        || async { bench.golden_value(golden, "city") == Some(json!("Dresden")) },
    )
    .await?;
    // Resumed, not reloaded: the rows loaded at the start are not
    // published again.
    let first = bench.events_of(&existing[0]).await?;
    anyhow::ensure!(
        first.iter().filter(|e| e.base.is_none()).count() == 1,
        "{} was published again after the restart: {first:?}",
        existing[0]
    );
    let metrics = running.stop().await?;
    anyhow::ensure!(
        ConnectorMetrics::get(&metrics.load_done) == 1,
        "a resumed connector reports its load as done"
    );
    Ok(())
}

async fn wait_until_city<S: SystemUnderTest>(
    sys: &mut S,
    record_id: &str,
    city: &str,
) -> anyhow::Result<()> {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let row = sys.read(record_id).await?;
        if row.as_ref().and_then(|r| r.get("city")) == Some(&json!(city)) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < end,
            "record {record_id} never got city {city:?}; it holds {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_gone<S: SystemUnderTest>(sys: &mut S, record_id: &str) -> anyhow::Result<()> {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        if sys.read(record_id).await?.is_none() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < end,
            "record {record_id} was not retired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
