//! The hub against input that once stopped it, over a real nats-server:
//! record ids that collide when joined, a derivation that fails, event ids
//! reused with other content, clocks far ahead, payloads naming another
//! system, and an input stream that lost messages while the hub was down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use mdhub_hub::config::token_hash;
use mdhub_hub::nats_bus::{DLQ_STREAM, IN_STREAM, REJECT_CODE, REJECT_REASON};
use mdhub_tests::hub_runner::{config, HubProcess, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::streams::read_all;
use mdhub_tests::wait::wait_until_blocking;
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);
const READER: &str = "reader-token-for-tests";
const STEWARD: &str = "steward-token-for-tests";

fn hub_toml() -> String {
    format!(
        "[system.crm]\n[system.erp]\n\
         [[token]]\nname = \"ops\"\nrole = \"reader\"\nsha256 = \"{}\"\n\
         [[token]]\nname = \"ann\"\nrole = \"steward\"\nsha256 = \"{}\"\n",
        token_hash(READER),
        token_hash(STEWARD)
    )
}

fn event(system: &str, record_id: &str, op: &str, fields: Value, observed_at: &str) -> Value {
    json!({
        "schema_version": 1,
        "event_id": Uuid::now_v7(),
        "system": system,
        "entity": "customer",
        "record_id": record_id,
        "op": op,
        "fields": fields,
        "observed_at": observed_at,
    })
}

async fn publish(js: &jetstream::Context, subject: &str, payload: &Value) -> anyhow::Result<()> {
    js.publish(subject.to_string(), serde_json::to_vec(payload)?.into())
        .await?
        .await?;
    Ok(())
}

/// One HTTP/1.0 request with a bearer token: (status, body as JSON or text).
fn http(port: u16, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, body)
}

fn golden_of(hub: &HubProcess, system: &str, record_path: &str) -> Option<String> {
    let (status, body) = http(
        hub.api_port,
        "GET",
        &format!("/v1/sources/{system}/{record_path}"),
        READER,
        None,
    );
    (status == 200).then(|| body["golden_id"].as_str().unwrap_or_default().to_string())
}

/// The four events that made `mdhub serve` panic, and panic again at every
/// restart, because record "r/4" and record "r" re-created at entry 4 got
/// one golden id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_events_that_crashed_the_hub_are_applied_and_a_restart_answers_at_once(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let mut hub = HubProcess::start(&hub_toml(), nats.client_url(), dir.path())?;
    let js = jetstream::new(async_nats::connect(nats.client_url()).await?);
    let subject = "mdhub.in.crm.customer";
    let t = "2026-01-01T00:00:00Z";
    publish(
        &js,
        subject,
        &event("crm", "r", "upsert", json!({"job_title": "a"}), t),
    )
    .await?;
    publish(&js, subject, &event("crm", "r", "delete", json!({}), t)).await?;
    publish(
        &js,
        subject,
        &event("crm", "r/4", "upsert", json!({"job_title": "b"}), t),
    )
    .await?;
    publish(
        &js,
        subject,
        &event("crm", "r", "upsert", json!({"job_title": "c"}), t),
    )
    .await?;
    wait_until_blocking("the hub to apply all four", DEADLINE, || {
        hub.health()
            .is_ok_and(|h| h["log_seq"] == 4 && h["published_seq"] == 4)
    })
    .map_err(|e| e.context(hub.log_tail()))?;
    assert!(hub.is_running(), "the hub is up:\n{}", hub.log_tail());
    assert_eq!(hub.health()?["status"], "ok");
    let r = golden_of(&hub, "crm", "r").expect("r is linked");
    let r4 = golden_of(&hub, "crm", "r%2F4").expect("r/4 is linked");
    assert_ne!(r, r4, "two records, two golden records");
    let (_, record) = http(
        hub.api_port,
        "GET",
        &format!("/v1/customers/{r}"),
        READER,
        None,
    );
    assert_eq!(record["values"]["job_title"], "c", "{record}");

    hub.stop()?;
    let started = Instant::now();
    hub.restart(nats.client_url())?; // returns once /healthz answers 200
    let took = started.elapsed();
    println!(
        "restart: /healthz answered {} ms after the start",
        took.as_millis()
    );
    assert_eq!(hub.health()?["status"], "ok");
    assert_eq!(hub.health()?["log_seq"], 4);
    assert!(
        took < Duration::from_secs(20),
        "a start on four entries took {took:?}"
    );
    assert_eq!(golden_of(&hub, "crm", "r").as_deref(), Some(r.as_str()));
    Ok(())
}

/// Derivation that fails (a bug, here the test-only failpoint) leaves the
/// hub up and degraded at that entry: reads go on, steward actions get 503,
/// /healthz and /metrics say so; a fixed binary resumes from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_derivation_degrades_the_hub_and_a_fixed_binary_resumes() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let failing = mdhub_hub::failpoint::DERIVE_FAILS_ON;
    let mut hub = HubProcess::start_with_env(
        &hub_toml(),
        nats.client_url(),
        dir.path(),
        &[("MDHUB_FAILPOINTS", "derive")],
    )?;
    assert!(
        std::fs::read_to_string(&hub.log_path)?.contains("failpoint armed"),
        "the mdhub binary has no failpoints: build it with \
         `cargo build --bins --features mdhub-hub/failpoints` (scripts/test.sh does)"
    );
    let js = jetstream::new(async_nats::connect(nats.client_url()).await?);
    let subject = "mdhub.in.crm.customer";
    let t = "2026-01-01T00:00:00Z";
    let fields = |name: &str| json!({"given_name": name, "email": format!("{name}@example.org")});
    publish(
        &js,
        subject,
        &event("crm", "ann", "upsert", fields("ann"), t),
    )
    .await?;
    wait_until_blocking("the first event", DEADLINE, || hub.log_seq() == 1)?;
    publish(
        &js,
        subject,
        &event("crm", failing, "upsert", fields("bob"), t),
    )
    .await?;
    publish(
        &js,
        subject,
        &event("crm", "cid", "upsert", fields("cid"), t),
    )
    .await?;

    wait_until_blocking("the hub to report degraded", DEADLINE, || {
        hub.health().is_ok_and(|h| h["status"] == "degraded")
    })
    .map_err(|e| e.context(hub.log_tail()))?;
    let health = hub.health()?;
    assert_eq!(health["degraded_seq"], 2, "{health}");
    assert!(
        health["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failpoint"),
        "{health}"
    );
    assert_eq!(health["published_seq"], 1, "{health}");
    assert!(hub.is_running(), "the hub stays up");
    let (status, metrics) = http(hub.api_port, "GET", "/metrics", READER, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("mdhub_degraded 1"), "{metrics}");
    assert!(metrics.contains("mdhub_degraded_seq 2"), "{metrics}");
    // Reads go on.
    let ann = golden_of(&hub, "crm", "ann").expect("ann was derived before the failure");
    assert!(
        golden_of(&hub, "crm", "cid").is_none(),
        "nothing after it is derived"
    );
    // Steward actions are refused.
    let (status, body) = http(
        hub.api_port,
        "PUT",
        &format!("/v1/customers/{ann}/overrides/job_title"),
        STEWARD,
        Some(&json!({"value": "CEO", "reason": "checked by phone"})),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "degraded", "{body}");
    // Still degraded after a restart with the same binary: the entry fails
    // again, and the hub still answers.
    hub.stop()?;
    hub.restart(nats.client_url())?;
    assert_eq!(hub.health()?["status"], "degraded");
    assert_eq!(hub.health()?["degraded_seq"], 2);

    // The fixed binary: the same one without the failpoint.
    hub.stop()?;
    hub.env.clear();
    hub.restart(nats.client_url())?;
    wait_until_blocking("the fixed hub to catch up", DEADLINE, || {
        hub.health()
            .is_ok_and(|h| h["status"] == "ok" && h["log_seq"] == 3 && h["published_seq"] == 3)
    })
    .map_err(|e| e.context(hub.log_tail()))?;
    assert!(golden_of(&hub, "crm", failing).is_some());
    assert!(golden_of(&hub, "crm", "cid").is_some());
    let (_, metrics) = http(hub.api_port, "GET", "/metrics", READER, None);
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("mdhub_degraded 0"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_ids_clocks_ahead_and_payloads_naming_other_systems_go_to_the_senders_dlq(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let mut hub = InProcessHub::start(config(&hub_toml(), nats.client_url(), dir.path())?).await?;
    let js = jetstream::new(async_nats::connect(nats.client_url()).await?);
    let crm = "mdhub.in.crm.customer";
    let now = time::OffsetDateTime::now_utc();
    let at = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };

    let first = event("crm", "r/1", "upsert", json!({"job_title": "a"}), &at(now));
    publish(&js, crm, &first).await?;
    // A byte-identical copy: a silent no-op.
    publish(&js, crm, &first).await?;
    // The same id with another record: refused.
    let mut reused = first.clone();
    reused["record_id"] = json!("r/2");
    publish(&js, crm, &reused).await?;
    // The same id with other fields, sent with Nats-Msg-Id as a plain
    // publisher would: the server must not drop it unseen; refused.
    let mut refilled = first.clone();
    refilled["fields"] = json!({"job_title": "b"});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", first["event_id"].as_str().unwrap());
    js.publish_with_headers(crm, headers, serde_json::to_vec(&refilled)?.into())
        .await?
        .await?;
    // Stamped far in the future: refused, naming observed_at.
    let future = event(
        "crm",
        "r/3",
        "upsert",
        json!({"job_title": "x"}),
        "9999-12-31T23:59:59Z",
    );
    publish(&js, crm, &future).await?;
    // An hour ahead: a clock that drifts, accepted.
    let ahead = event(
        "crm",
        "r/4",
        "upsert",
        json!({"job_title": "y"}),
        &at(now + time::Duration::hours(1)),
    );
    publish(&js, crm, &ahead).await?;
    // Sent on crm's subject, claiming to be erp: dead-lettered to crm.
    let claims_erp = event("erp", "e/1", "upsert", json!({"job_title": "z"}), &at(now));
    publish(&js, crm, &claims_erp).await?;
    let last = event("crm", "r/5", "upsert", json!({"job_title": "w"}), &at(now));
    publish(&js, crm, &last).await?;
    hub.wait_caught_up(3, DEADLINE).await?;

    let dlq = read_all(&js, DLQ_STREAM, ">").await?;
    let mut seen: Vec<(String, String, String)> = dlq
        .iter()
        .map(|m| {
            let h = m.headers.as_ref().expect("headers");
            (
                m.subject.to_string(),
                h.get(REJECT_CODE)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                h.get(REJECT_REASON)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    let codes: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        codes,
        [
            "conflicting_duplicate",
            "conflicting_duplicate",
            "invalid_value",
            "subject_mismatch"
        ],
        "{seen:#?}"
    );
    for (subject, code, reason) in &seen {
        assert_eq!(
            subject, "mdhub.dlq.crm",
            "{code}: the DLQ of the subject it arrived on"
        );
        if code == "invalid_value" {
            assert!(reason.contains("observed_at"), "{reason}");
        }
        if code == "conflicting_duplicate" {
            assert!(
                reason.contains(first["event_id"].as_str().unwrap()),
                "{reason}"
            );
        }
    }
    // The originals of the refused duplicates are kept byte for byte.
    let payloads: Vec<Value> = dlq
        .iter()
        .filter_map(|m| serde_json::from_slice(&m.payload).ok())
        .collect();
    assert!(payloads.contains(&reused) && payloads.contains(&refilled));
    assert_eq!(
        hub.last_seq(),
        3,
        "first, the hour-ahead event and the last"
    );
    {
        let state = hub.hub.read().unwrap();
        let linked = |r: &str| {
            state
                .state()
                .golden_of(&mdhub_hub::golden::SourceKey {
                    system: "crm".into(),
                    record_id: r.into(),
                })
                .unwrap()
        };
        assert!(linked("r/1").is_some() && linked("r/4").is_some() && linked("r/5").is_some());
        assert!(linked("r/2").is_none() && linked("r/3").is_none());
        let golden = state
            .state()
            .record(linked("r/1").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(golden.values["job_title"], "a", "the first content stays");
    }
    hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_lost_unread_messages_refuses_the_start_unless_the_gap_is_accepted(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let cfg = || config(&hub_toml(), nats.client_url(), dir.path());
    let js = jetstream::new(async_nats::connect(nats.client_url()).await?);
    let crm = "mdhub.in.crm.customer";
    let t = "2026-01-01T00:00:00Z";
    let send = |n: usize| {
        let js = js.clone();
        async move {
            publish(
                &js,
                crm,
                &event(
                    "crm",
                    &format!("c{n}"),
                    "upsert",
                    json!({"job_title": "a"}),
                    t,
                ),
            )
            .await
        }
    };

    let mut hub = InProcessHub::start(cfg()?).await?;
    for n in 0..3 {
        send(n).await?;
    }
    hub.wait_caught_up(3, DEADLINE).await?;
    hub.stop().await?;

    // While the hub is down: two messages arrive, then the stream is purged.
    send(3).await?;
    send(4).await?;
    js.get_stream(IN_STREAM).await?.purge().await?;
    let refused = InProcessHub::start(cfg()?).await?.stop().await;
    let error = format!("{:#}", refused.err().expect("the start is refused"));
    assert!(error.contains("stored position is 3"), "{error}");
    assert!(
        error.contains("first sequence 6") && error.contains("last sequence 5"),
        "{error}"
    );
    assert!(error.contains("--accept-input-gap"), "{error}");

    // Accepted once: the hub starts and reads what comes next.
    let mut accepting = cfg()?;
    accepting.ingest.accept_input_gap = true;
    let mut hub = InProcessHub::start(accepting).await?;
    send(5).await?;
    hub.wait_caught_up(4, DEADLINE).await?;
    hub.stop().await?;
    // With nothing lost since, a plain start works again.
    let hub = InProcessHub::start(cfg()?).await?;
    send(6).await?;
    let mut hub = hub;
    hub.wait_caught_up(5, DEADLINE).await?;
    hub.stop().await?;

    // Deleted and created again (the hub re-creates it empty at start).
    js.delete_stream(IN_STREAM).await?;
    let refused = InProcessHub::start(cfg()?).await?.stop().await;
    let error = format!("{:#}", refused.err().expect("the start is refused"));
    assert!(error.contains("created again"), "{error}");
    Ok(())
}
