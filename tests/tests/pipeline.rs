//! The core pipeline end to end over a real nats-server: change events in,
//! golden records, golden updates out, the DLQ, duplicates and redelivery.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::nats_bus::{DLQ_STREAM, OUT_STREAM, REJECT_CODE, REJECT_REASON};
use mdhub_schema::GoldenUpdate;
use mdhub_tests::fixtures::{hub_config_toml, subject_of, workload};
use mdhub_tests::hub_runner::{config, publish_events, reference_run, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::streams::read_all;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_from_three_systems_become_the_expected_golden_records(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let w = workload(2_000, 10_000, 7);
    assert_eq!(w.events.len(), 10_000);
    let mut hub =
        InProcessHub::start(config(&hub_config_toml(), nats.client_url(), dir.path())?).await?;
    let client = async_nats::connect(nats.client_url()).await?;
    publish_events(&client, &w.events).await?;
    hub.wait_caught_up(10_000, DEADLINE).await?;

    {
        let shared = hub.hub.read().unwrap();
        let state = shared.state();
        assert_eq!(
            state.golden_count(),
            2_000,
            "one golden record per customer"
        );
        for (email, expected) in &w.expected {
            let (system, record_id) = &w.links[email][0];
            let id = state
                .golden_of(&SourceKey {
                    system: system.clone(),
                    record_id: record_id.clone(),
                })
                .unwrap()
                .unwrap_or_else(|| panic!("{system}/{record_id} is linked"));
            let r = state.record(id).unwrap().unwrap();
            let links: Vec<(String, String)> = r
                .links
                .iter()
                .map(|l| (l.system.clone(), l.record_id.clone()))
                .collect();
            assert_eq!(&links, &w.links[email], "links of {email}");
            for (field, value) in expected {
                assert_eq!(r.values.get(field), Some(value), "{email}: field {field}");
            }
        }
    }

    // The updates on MDHUB_OUT bring every linked record to the golden
    // values: replay what each record held, in log order (event n is log
    // entry n+1: one publisher, in order), then the updates that entry caused.
    let js = jetstream::new(client.clone());
    let mut updates_by_seq: BTreeMap<u64, Vec<GoldenUpdate>> = BTreeMap::new();
    let out = read_all(&js, OUT_STREAM, "mdhub.out.>").await?;
    assert!(!out.is_empty());
    for m in &out {
        let u: GoldenUpdate = serde_json::from_slice(&m.payload)?;
        updates_by_seq.entry(u.log_seq).or_default().push(u);
    }
    let mut held: BTreeMap<(String, String), BTreeMap<String, Value>> = BTreeMap::new();
    for (i, e) in w.events.iter().enumerate() {
        let row = held
            .entry((e.system.clone(), e.record_id.clone()))
            .or_default();
        for (k, v) in &e.fields {
            row.insert(k.clone(), v.clone());
        }
        for u in updates_by_seq.remove(&(i as u64 + 1)).unwrap_or_default() {
            let row = held
                .entry((u.system.clone(), u.record_id.clone().unwrap()))
                .or_default();
            for (k, v) in u.fields {
                row.insert(k, v);
            }
        }
    }
    assert!(
        updates_by_seq.is_empty(),
        "every update belongs to a log entry"
    );
    let model = mdhub_schema::Model::default_customer();
    {
        let shared = hub.hub.read().unwrap();
        for ((system, record_id), row) in &held {
            let id = shared
                .state()
                .golden_of(&SourceKey {
                    system: system.clone(),
                    record_id: record_id.clone(),
                })
                .unwrap()
                .unwrap();
            let golden = &shared.state().record(id).unwrap().unwrap().values;
            for field in ["phone", "job_title", "city", "email"] {
                let held_value = row.get(field).map(|v| {
                    mdhub_schema::normalize::normalize(model.field(field).unwrap(), v).unwrap()
                });
                assert_eq!(
                    held_value.as_ref(),
                    golden.get(field),
                    "{system}/{record_id} holds the golden {field}"
                );
            }
        }
    }
    hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_redelivery_after_a_consumer_crash_leave_one_entry_each(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let w = workload(500, 3_000, 11);
    let (ref_len, ref_hash) = reference_run(&hub_config_toml(), &w.events)?;
    assert_eq!(ref_len, 3_000);

    let client = async_nats::connect(nats.client_url()).await?;
    let cfg = || config(&hub_config_toml(), nats.client_url(), dir.path());
    mdhub_hub::nats_bus::ensure_streams(&client, &cfg()?).await?;
    // Every event twice, the second copies published as plain publishes
    // long after the first (outside any JetStream duplicate window logic:
    // no Nats-Msg-Id at all).
    publish_events(&client, &w.events).await?;
    let js = jetstream::new(client.clone());
    for e in &w.events[..1_500] {
        js.publish(subject_of(e), serde_json::to_vec(e)?.into())
            .await?
            .await?;
    }

    // The hub crashes mid-way: some batches appended but not acked.
    let hub = InProcessHub::start(cfg()?).await?;
    mdhub_tests::wait::wait_until("a first part to be ingested", DEADLINE, || async {
        hub.last_seq() >= 500
    })
    .await?;
    hub.crash().await?;

    let mut hub = InProcessHub::start(cfg()?).await?;
    for e in &w.events[1_500..] {
        js.publish(subject_of(e), serde_json::to_vec(e)?.into())
            .await?
            .await?;
    }
    hub.wait_caught_up(3_000, DEADLINE).await?;
    // Wait until the consumer has seen all 4,500 messages (3,000 + 1,500 copies).
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream("MDHUB_IN")
        .await?
        .get_consumer("mdhub-hub")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    mdhub_tests::wait::wait_until("every message to be acked", DEADLINE, || {
        let mut c = consumer.clone();
        async move {
            c.info()
                .await
                .is_ok_and(|i| i.ack_floor.stream_sequence >= 4_500 && i.num_ack_pending == 0)
        }
    })
    .await?;
    assert_eq!(hub.last_seq(), 3_000, "one log entry per event");
    assert_eq!(
        hub.state_hash().unwrap(),
        ref_hash,
        "same state as a clean run"
    );

    // Updates re-sent after the crash are the same updates: one payload per id.
    let out = read_all(&js, OUT_STREAM, "mdhub.>").await?;
    let mut by_id: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for m in &out {
        let v: Value = serde_json::from_slice(&m.payload)?;
        let id = v
            .get("update_id")
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("golden {}/{}", v["golden_id"], v["log_seq"]));
        if let Some(previous) = by_id.insert(id.clone(), m.payload.to_vec()) {
            assert_eq!(
                previous,
                m.payload.to_vec(),
                "update {id} re-sent with other content"
            );
        }
    }
    hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_goes_to_the_dlq_with_its_reason_and_the_good_events_around_it_are_applied(
) -> anyhow::Result<()> {
    let nats = NatsServer::builder().max_payload(8 * 1024 * 1024).start()?;
    let dir = tempfile::tempdir()?;
    let w = workload(40, 100, 3);
    let mut hub =
        InProcessHub::start(config(&hub_config_toml(), nats.client_url(), dir.path())?).await?;
    let client = async_nats::connect(nats.client_url()).await?;
    let js = jetstream::new(client.clone());

    let good = serde_json::to_value(&w.events[0])?;
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = good.clone();
        f(v.as_object_mut().unwrap());
        serde_json::to_vec(&v).unwrap()
    };
    let big_value = "x".repeat(2 * 1024 * 1024);
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "mdhub.in.erp.customer",
            b"{\"schema_version\": 1, \"event_id\": ".to_vec(),
            "malformed_json",
        ),
        (
            "mdhub.in.erp.customer",
            with(&|o| {
                o.insert("colour".into(), "red".into());
            }),
            "unknown_field",
        ),
        (
            "mdhub.in.erp.customer",
            with(&|o| {
                o["fields"]["phone"] = Value::from(4930123);
            }),
            "wrong_type",
        ),
        (
            "mdhub.in.erp.customer",
            with(&|o| {
                o.remove("record_id");
            }),
            "missing_field",
        ),
        (
            "mdhub.in.erp.customer",
            with(&|o| {
                o["fields"]["city"] = Value::from(big_value.clone());
            }),
            "oversize",
        ),
        (
            "mdhub.in.hr.customer",
            with(&|o| {
                o["system"] = "hr".into();
            }),
            "unknown_system",
        ),
    ];
    // Good events with the bad ones in between.
    let mut sent_good = 0;
    for (i, e) in w.events.iter().enumerate() {
        js.publish(subject_of(e), serde_json::to_vec(e)?.into())
            .await?
            .await?;
        sent_good += 1;
        if i % 15 == 0 {
            if let Some((subject, payload, _)) = bad.get(i / 15) {
                js.publish(subject.to_string(), payload.clone().into())
                    .await?
                    .await?;
            }
        }
    }
    assert_eq!(sent_good, 100);
    hub.wait_caught_up(100, DEADLINE).await?;

    let dlq = read_all(&js, DLQ_STREAM, "mdhub.dlq.>").await?;
    assert_eq!(
        dlq.len(),
        bad.len(),
        "every bad message, and only those, in the DLQ"
    );
    for ((subject, payload, code), m) in bad.iter().zip(&dlq) {
        let headers = m.headers.as_ref().expect("DLQ messages carry headers");
        assert_eq!(
            headers.get(REJECT_CODE).map(|v| v.as_str()),
            Some(*code),
            "reason code for {subject}"
        );
        let reason = headers.get(REJECT_REASON).unwrap().as_str().to_string();
        assert!(reason.len() > 10, "a readable reason: {reason}");
        assert_eq!(&m.payload.to_vec(), payload, "the original bytes are kept");
        let expected_subject = if subject.contains(".hr.") {
            "mdhub.dlq.hr"
        } else {
            "mdhub.dlq.erp"
        };
        assert_eq!(m.subject.as_str(), expected_subject);
        if *code == "wrong_type" {
            assert!(reason.contains("\"phone\""), "names the field: {reason}");
        }
        if *code == "missing_field" {
            assert!(reason.contains("record_id"), "names the field: {reason}");
        }
    }
    let codes: BTreeSet<&str> = bad.iter().map(|b| b.2).collect();
    assert_eq!(codes.len(), 6);
    assert_eq!(hub.last_seq(), 100, "all valid events applied");
    hub.stop().await?;
    Ok(())
}
