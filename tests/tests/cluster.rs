//! The hub ingests through a three-node NATS cluster with R3 streams, shaped
//! like deploy/nats/cluster/, and keeps going when one node dies.

use std::time::Duration;

use mdhub_connectors::connect::NatsConnect;
use mdhub_tests::fixtures::{hub_config_toml, workload};
use mdhub_tests::hub_runner::{config, publish_events, reference_run, InProcessHub};
use mdhub_tests::nats::NatsCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_a_three_node_cluster_with_r3_streams() -> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(3)?;
    let dir = tempfile::tempdir()?;
    let w = workload(300, 2_000, 5);
    let toml = format!("{}\n[stream]\nreplicas = 3\n", hub_config_toml());
    let (_, ref_hash) = reference_run(&toml, &w.events)?;
    let urls = cluster.client_urls_joined();
    let mut hub = InProcessHub::start(config(&toml, &urls, dir.path())?).await?;
    let client = mdhub_hub::nats_bus::connect(&NatsConnect::with_urls(&urls), "test").await?;
    publish_events(&client, &w.events[..1_000]).await?;
    hub.wait_caught_up(1_000, Duration::from_secs(120)).await?;

    let js = async_nats::jetstream::new(client.clone());
    let info = js.get_stream("MDHUB_IN").await?.info().await?.clone();
    assert_eq!(info.config.num_replicas, 3);

    // One node dies; the other two keep a quorum.
    cluster.kill_node(2)?;
    cluster.wait_ready().await?;
    publish_events(&client, &w.events[1_000..]).await?;
    hub.wait_caught_up(2_000, Duration::from_secs(120)).await?;
    assert_eq!(hub.state_hash().unwrap(), ref_hash);
    hub.stop().await?;
    Ok(())
}
