//! kill -9 of `mdhub serve` in the middle of a 50,000-event ingest, then a
//! restart: nothing missing, nothing doubled, the same state as a clean run.

use std::time::Duration;

use mdhub_hub::log::EventLog;
use mdhub_tests::fixtures::{hub_config_toml, workload};
use mdhub_tests::hub_runner::{publish_events, reference_run, HubProcess};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::wait::wait_until_blocking;

const TOTAL: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_ingest_then_restart_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let w = workload(5_000, TOTAL as usize, 42);
    let (ref_len, ref_hash) = reference_run(&hub_config_toml(), &w.events)?;
    assert_eq!(ref_len, TOTAL);

    let mut hub = HubProcess::start(&hub_config_toml(), nats.client_url(), dir.path())?;
    let client = async_nats::connect(nats.client_url()).await?;
    // Publishing goes on beside the kill: were it awaited first, a hub as
    // fast as the publisher would be near the end by the time it is killed.
    let events = w.events.clone();
    let publishing = tokio::spawn(async move { publish_events(&client, &events).await });

    // Kill once a fifth of the events is logged: the condition, not a
    // sleep, picks the moment, so the kill lands inside the ingest however
    // fast the machine (the remaining 40,000 events take far longer than a
    // poll interval).
    wait_until_blocking(
        "the hub to be part-way through",
        Duration::from_secs(300),
        || hub.log_seq() >= TOTAL / 5,
    )
    .map_err(|e| e.context(hub.log_tail()))?;
    let reported = hub.log_seq();
    hub.kill9()?;

    // What the dead hub left on disk, read before anything can add to it.
    let logged = {
        let log = EventLog::open(&hub.data_dir)?;
        log.verify()?;
        log.last_seq()
    };
    assert!(
        0 < logged && logged < TOTAL,
        "the kill landed mid-ingest: {logged} of {TOTAL} entries logged"
    );
    assert!(
        logged >= reported,
        "/healthz reported {reported} entries logged, the store holds {logged} after the kill"
    );

    publishing.await??;
    hub.restart(nats.client_url())?;
    wait_until_blocking(
        "the hub to catch up after the restart",
        Duration::from_secs(600),
        || {
            hub.health()
                .is_ok_and(|h| h["log_seq"] == TOTAL && h["published_seq"] == TOTAL)
        },
    )
    .map_err(|e| e.context(hub.log_tail()))?;
    hub.stop()?;

    let data = hub.data_dir.to_str().unwrap().to_string();
    let verify = hub.mdhub(&["audit", "verify", "--data-dir", &data])?;
    assert!(verify.contains("ok: 50000 entries"), "{verify}");
    let config = hub.config_path.to_str().unwrap().to_string();
    let replay = hub.mdhub(&["audit", "replay", "--config", &config, "--data-dir", &data])?;
    assert!(
        replay.contains(&format!("state hash {ref_hash}")),
        "replay {replay} differs from the clean run's {ref_hash}"
    );

    // The u estimate from the same log: config sections, and a customer's
    // email agrees with a random other customer's almost never, while the
    // customer type (all companies here) agrees nearly always.
    let estimate = hub.mdhub(&[
        "match",
        "estimate-u",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--pairs",
        "20000",
    ])?;
    // Each comparison is a `[[match.comparison]]` section: its name, then
    // its levels' m and u, the first level first.
    let u_agree = |name: &str| -> f64 {
        let at = estimate
            .find(&format!("name = \"{name}\""))
            .unwrap_or_else(|| panic!("no comparison {name} in {estimate}"));
        estimate[at..]
            .lines()
            .find_map(|l| l.trim().strip_prefix("u = "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no u for {name} in {estimate}"))
    };
    assert!(u_agree("email") < 0.001, "{estimate}");
    assert!(u_agree("customer_type") > 0.9, "{estimate}");
    Ok(())
}
