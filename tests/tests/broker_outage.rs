//! The broker goes away while the hub is ingesting: nats-server stopped and
//! started again (one node), or the node leading MDHUB_IN stopped (a
//! three-node cluster with R3 streams). The hub and a publisher ride it out:
//! every event ends in the log exactly once, the state is that of a run
//! without NATS, and every outbound update is stored in MDHUB_OUT.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use mdhub_connectors::connect::NatsConnect;
use mdhub_hub::config::HubConfig;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::hub::{Hub, Inbound};
use mdhub_hub::nats_bus::{IN_STREAM, OUT_STREAM};
use mdhub_hub::serve::rules;
use mdhub_schema::{ChangeEvent, Limits};
use mdhub_tests::fixtures::{hub_config_toml, subject_of, workload};
use mdhub_tests::hub_runner::{config, publish_events, InProcessHub};
use mdhub_tests::nats::{NatsCluster, NatsServer};
use mdhub_tests::wait::{wait_for, wait_until};
use uuid::Uuid;

const TOTAL: usize = 4_000;
/// The publisher sends this many events, then waits for the outage to begin
/// and sends the rest into it.
const BEFORE_OUTAGE: usize = 3_000;
/// The hub has logged at least this many entries when the broker goes.
const MID_INGEST: u64 = 600;
const PUBLISH_CHUNK: usize = 100;
/// How long the single server stays down once the clients have noticed. It
/// is the fault being injected, not a wait for something to happen.
const OUTAGE: Duration = Duration::from_secs(3);
const DEADLINE: Duration = Duration::from_secs(60);

/// Outbound messages as `(subject, payload)`.
type OutSet = BTreeSet<(String, Vec<u8>)>;

/// The log length, state hash and outbound messages the hub derives from
/// `events` delivered once each, in order, without NATS.
fn reference(toml: &str, events: &[ChangeEvent]) -> anyhow::Result<(u64, String, OutSet)> {
    let dir = tempfile::tempdir()?;
    let config = HubConfig::parse(toml, "test")?;
    let (mut hub, _) = Hub::open(dir.path(), rules(&config, "test")?, Limits::default())?;
    let mut out = OutSet::new();
    for chunk in events.chunks(500) {
        let batch: Vec<Inbound> = chunk
            .iter()
            .map(|e| Inbound::new(subject_of(e), serde_json::to_vec(e).expect("serializes")))
            .collect();
        let outcome = hub.ingest(&batch)?;
        assert!(outcome.rejected.is_empty(), "the workload is valid");
        out.extend(outcome.outbound.iter().map(|o| (o.subject(), o.to_json())));
    }
    Ok((hub.log().last_seq(), hub.state().state_hash().unwrap(), out))
}

/// Every message stored on `stream`, as `(subject, payload)`, with the
/// number of messages read (copies included). Retried as a whole: after a
/// node stops, creating the reading consumer fails until the survivors
/// have a meta leader.
async fn stored(js: &jetstream::Context, stream: &str) -> anyhow::Result<(OutSet, usize)> {
    let what = format!("every message of {stream}");
    wait_for(&what, DEADLINE, || async {
        let consumer = js
            .get_stream(stream)
            .await?
            .create_consumer(jetstream::consumer::pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await?;
        let mut set = OutSet::new();
        let mut read = 0;
        loop {
            let mut batch = consumer.fetch().max_messages(5_000).messages().await?;
            let before = read;
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| anyhow::anyhow!("reading {stream}: {e}"))?;
                set.insert((m.subject.to_string(), m.payload.to_vec()));
                read += 1;
            }
            if read == before {
                return Ok(Some((set, read)));
            }
        }
    })
    .await
}

/// Publishes `events[..BEFORE_OUTAGE]`, waits for `outage`, then publishes
/// the rest while the broker (or a node of it) is down.
fn spawn_publisher(
    client: async_nats::Client,
    events: Vec<ChangeEvent>,
    outage: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        for chunk in events[..BEFORE_OUTAGE].chunks(PUBLISH_CHUNK) {
            publish_events(&client, chunk).await?;
        }
        outage.await?;
        for chunk in events[BEFORE_OUTAGE..].chunks(PUBLISH_CHUNK) {
            publish_events(&client, chunk).await?;
        }
        Ok(())
    })
}

/// The checks both tests end with: each event logged once, the reference
/// state, and every reference outbound message (and nothing else) stored in
/// MDHUB_OUT.
async fn assert_applied_once(
    hub: &InProcessHub,
    events: &[ChangeEvent],
    ref_hash: &str,
    ref_out: &OutSet,
    js: &jetstream::Context,
) -> anyhow::Result<()> {
    let mut logged: BTreeMap<Uuid, u32> = BTreeMap::new();
    {
        let shared = hub.hub.read().unwrap();
        for entry in shared.log().iter_from(1) {
            match entry?.payload {
                LogPayload::Change(e) => *logged.entry(e.event_id).or_default() += 1,
                other => panic!("only change events were sent: {other:?}"),
            }
        }
    }
    let twice: Vec<_> = logged.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events logged more than once: {twice:?}");
    let missing = events
        .iter()
        .filter(|e| !logged.contains_key(&e.event_id))
        .count();
    assert_eq!(missing, 0, "events missing from the log");
    assert_eq!(hub.last_seq(), events.len() as u64, "one entry per event");
    assert_eq!(
        hub.state_hash().unwrap(),
        ref_hash,
        "the state of a run without NATS"
    );

    let (out, read) = stored(js, OUT_STREAM).await?;
    let lost: Vec<_> = ref_out
        .difference(&out)
        .map(|(s, p)| (s, String::from_utf8_lossy(p)))
        .take(3)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} outbound messages are not in {OUT_STREAM}, e.g. {lost:?}",
        ref_out.difference(&out).count(),
        ref_out.len()
    );
    let foreign = out.difference(ref_out).count();
    assert_eq!(
        foreign, 0,
        "{OUT_STREAM} holds messages a run without NATS does not send"
    );
    // Copies are allowed (a batch re-sent after a lost ack), but only of the
    // same content, which the set comparison above already proves.
    assert!(read >= ref_out.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_and_a_publisher_ride_out_a_nats_server_restart_mid_ingest() -> anyhow::Result<()> {
    let mut nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let toml = hub_config_toml();
    let w = workload(500, TOTAL, 23);
    let (ref_len, ref_hash, ref_out) = reference(&toml, &w.events)?;
    assert_eq!(ref_len, TOTAL as u64);
    assert!(!ref_out.is_empty());

    let mut hub = InProcessHub::start(config(&toml, nats.client_url(), dir.path())?).await?;
    let client = async_nats::connect(nats.client_url()).await?;
    let (outage_begun, outage) = tokio::sync::oneshot::channel();
    let publisher = spawn_publisher(client.clone(), w.events.clone(), outage);

    wait_until("the hub to be part-way through", DEADLINE, || async {
        hub.last_seq() >= MID_INGEST
    })
    .await?;
    nats.stop()?;
    let at_stop = hub.last_seq();
    assert!(
        at_stop < TOTAL as u64,
        "the server stopped mid-ingest (the log held {at_stop} of {TOTAL})"
    );
    let _ = outage_begun.send(());
    wait_until("the publisher to see the server gone", DEADLINE, || async {
        client.connection_state() != async_nats::connection::State::Connected
    })
    .await?;
    tokio::time::sleep(OUTAGE).await;
    assert!(
        hub.last_seq() < TOTAL as u64,
        "events published into the outage cannot be logged before the server is back"
    );
    nats.start_again()?;

    hub.wait_caught_up(TOTAL as u64, DEADLINE).await?;
    tokio::time::timeout(DEADLINE, publisher).await???;
    let js = jetstream::new(client.clone());
    let stream_msgs = js.get_stream(IN_STREAM).await?.info().await?.state.messages;
    assert!(stream_msgs >= TOTAL as u64, "{IN_STREAM} holds every event");
    assert_applied_once(&hub, &w.events, &ref_hash, &ref_out, &js).await?;
    hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_keeps_ingesting_when_the_leader_of_mdhub_in_stops_in_a_three_node_cluster(
) -> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(3)?;
    let dir = tempfile::tempdir()?;
    let toml = format!("{}\n[stream]\nreplicas = 3\n", hub_config_toml());
    let w = workload(500, TOTAL, 29);
    let (ref_len, ref_hash, ref_out) = reference(&toml, &w.events)?;
    assert_eq!(ref_len, TOTAL as u64);

    let urls = cluster.client_urls_joined();
    let mut hub = InProcessHub::start(config(&toml, &urls, dir.path())?).await?;
    let client = mdhub_hub::nats_bus::connect(&NatsConnect::with_urls(&urls), "publisher").await?;
    let js = jetstream::new(client.clone());
    let info = js.get_stream(IN_STREAM).await?.info().await?.clone();
    assert_eq!(info.config.num_replicas, 3);
    let leader = cluster.stream_leader(&js, IN_STREAM, DEADLINE).await?;

    let (outage_begun, outage) = tokio::sync::oneshot::channel();
    let publisher = spawn_publisher(client.clone(), w.events.clone(), outage);
    wait_until("the hub to be part-way through", DEADLINE, || async {
        hub.last_seq() >= MID_INGEST
    })
    .await?;
    cluster.stop_node(leader)?;
    let at_stop = hub.last_seq();
    assert!(
        at_stop < TOTAL as u64,
        "the leader stopped mid-ingest (the log held {at_stop} of {TOTAL})"
    );
    let _ = outage_begun.send(());

    // The two survivors elect a new leader and carry on; the hub finishes
    // with the stopped node still down.
    cluster.wait_ready().await?;
    let new_leader = cluster.stream_leader(&js, IN_STREAM, DEADLINE).await?;
    assert_ne!(new_leader, leader, "a survivor leads {IN_STREAM}");
    hub.wait_caught_up(TOTAL as u64, DEADLINE).await?;
    tokio::time::timeout(DEADLINE, publisher).await???;
    assert!(
        !cluster.is_node_running(leader),
        "still down while ingesting"
    );
    assert_applied_once(&hub, &w.events, &ref_hash, &ref_out, &js).await?;
    hub.stop().await?;

    cluster.restart_node(leader)?;
    cluster.wait_ready().await?;
    Ok(())
}
