//! kill -9 of `mdhub serve` in the middle of a 50,000-event ingest, then a
//! restart on the derived state it persisted: nothing missing, nothing
//! doubled, the same state as a clean run and as a full replay.

use std::time::Duration;

use mdhub_hub::config::token_hash;
use mdhub_hub::log::EventLog;
use mdhub_tests::fixtures::{hub_config_toml, workload};
use mdhub_tests::hub_runner::{publish_events, reference_run, HubProcess};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::wait::wait_until_blocking;

const TOTAL: u64 = 50_000;
const AUDITOR_TOKEN: &str = "crash-auditor-token";
/// Checkpoints every 2,000 entries: several before the kill.
const CHECKPOINT_ENTRIES: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_ingest_then_restart_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let w = workload(5_000, TOTAL as usize, 42);
    let (ref_len, ref_hash) = reference_run(&hub_config_toml(), &w.events)?;
    assert_eq!(ref_len, TOTAL);

    let config = format!(
        "{}[store]\ncheckpoint_entries = {CHECKPOINT_ENTRIES}\n\
         [[token]]\nname = \"audit\"\nrole = \"auditor\"\nsha256 = \"{}\"\n",
        hub_config_toml(),
        token_hash(AUDITOR_TOKEN)
    );
    let mut hub = HubProcess::start(&config, nats.client_url(), dir.path())?;
    let client = async_nats::connect(nats.client_url()).await?;
    // Publishing goes on beside the kill: were it awaited first, a hub as
    // fast as the publisher would be near the end by the time it is killed.
    let events = w.events.clone();
    let publishing = tokio::spawn(async move { publish_events(&client, &events).await });

    // Kill once a fifth of the events is logged and checkpointed: the
    // condition, not a sleep, picks the moment, so the kill lands inside
    // the ingest however fast the machine (the remaining 40,000 events
    // take far longer than a poll interval).
    wait_until_blocking(
        "the hub to be part-way through, with a checkpoint",
        Duration::from_secs(300),
        || {
            hub.health().is_ok_and(|h| {
                h["log_seq"].as_u64() >= Some(TOTAL / 5)
                    && h["checkpoint_seq"].as_u64() >= Some(CHECKPOINT_ENTRIES)
            })
        },
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
    // It started from a checkpoint of the dead hub, not from the first
    // entry, and ended where a clean run ends.
    // (On the memory store, `MDHUB_STORE=memory`, nothing outlives the
    // hub: the restart derives the whole log.)
    let persisted = std::env::var("MDHUB_STORE").as_deref() != Ok("memory");
    let health = hub.health()?;
    let resumed = health["started_from_seq"].as_u64().unwrap_or(0);
    assert!(
        if persisted {
            resumed >= CHECKPOINT_ENTRIES && resumed <= logged
        } else {
            resumed == 0
        },
        "the restart started from entry {resumed}; the dead hub had logged {logged}: {health}"
    );
    // The entries up to that checkpoint, not checked at the start, are
    // checked beside the running hub.
    if persisted {
        wait_until_blocking(
            "the background check of the log before the checkpoint",
            Duration::from_secs(120),
            || {
                std::fs::read_to_string(&hub.log_path).is_ok_and(|l| {
                    l.contains(
                        "background check: the log's hash chain is intact up to the checkpoint",
                    )
                })
            },
        )
        .map_err(|e| e.context(hub.log_tail()))?;
    }
    let live: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/v1/state-hash", hub.api_port))
        .bearer_auth(AUDITOR_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(
        live["state_hash"], ref_hash,
        "the restarted hub's state differs from the clean run's"
    );
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
