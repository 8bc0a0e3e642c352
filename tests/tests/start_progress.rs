//! A start that must derive a long log says how far it has got: `/healthz`
//! answers 503 with the entries derived, the rate and the time left while
//! it runs, then 200; the hub's log says so too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mdhub_hub::config::HubConfig;
use mdhub_hub::hub::Hub;
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_schema::Limits;
use mdhub_tests::fixtures::{hub_config_toml, workload};
use mdhub_tests::hub_runner::HubProcess;
use mdhub_tests::nats::{http_get, NatsServer};
use mdhub_tests::ports::free_port;

const EVENTS: usize = 10_000;

#[test]
fn a_long_start_answers_healthz_with_its_progress() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let toml = hub_config_toml();

    // The log, written in process into the data dir `mdhub serve` opens.
    let config = HubConfig::parse(&toml, "test")?;
    let rules = Arc::new(config.rules(config.load_models("test")?));
    {
        let (mut hub, _) = Hub::open(&dir.path().join("data"), rules, Limits::default())?;
        let mut bus = MemoryBus::default();
        for e in &workload(5_000, EVENTS, 7).events {
            bus.publish(e);
        }
        assert!(!bus.pump(&mut hub, 500)?.degraded);
        assert_eq!(hub.log().last_seq(), EVENTS as u64);
    }

    // Every answer of /healthz from the moment the port opens until 200.
    let port = free_port();
    let poller = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen: Vec<(u16, String)> = Vec::new();
        while Instant::now() < deadline {
            if let Ok((status, body)) = http_get(port, "/healthz") {
                seen.push((status, body));
                if status == 200 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    let hub = HubProcess::start_on(&toml, nats.client_url(), dir.path(), port)?;
    let seen = poller.join().expect("the poller does not panic");

    let starting: Vec<&String> = seen
        .iter()
        .filter(|(status, _)| *status == 503)
        .map(|(_, body)| body)
        .collect();
    assert!(!starting.is_empty(), "no answer while starting: {seen:?}");
    for body in &starting {
        assert!(
            body.contains("\"unavailable\"") && body.contains("the hub is starting: "),
            "{body}"
        );
    }
    let deriving = format!(" of {EVENTS} log entries (");
    assert!(
        starting
            .iter()
            .any(|b| b.contains("derived ") && b.contains(&deriving) && b.contains("/s, about ")),
        "some answer gives the entries derived, the rate and the time left: {starting:?}"
    );
    assert_eq!(seen.last().map(|(s, _)| *s), Some(200), "{seen:?}");

    let log = std::fs::read_to_string(&hub.log_path)?;
    assert!(
        log.contains("deriving the state from the log"),
        "{}",
        hub.log_tail()
    );
    assert!(
        log.contains("state derived from the log"),
        "{}",
        hub.log_tail()
    );
    Ok(())
}
