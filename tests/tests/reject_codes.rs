//! The reject codes of a change event's identity and subject, end to end
//! over a real nats-server: `invalid_record_id`, `invalid_delete`,
//! `invalid_base`, `bad_subject`, `invalid_system`, `unknown_entity`. One
//! bad message per code, between good events whose record ids are as awkward
//! as valid ids get ("/", unicode, 255 characters, 256 bytes): each bad one
//! lands in MDHUB_DLQ with its code, its original bytes and subject; every
//! good one is applied, and a bad one changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::nats_bus::{DLQ_STREAM, ORIGINAL_SUBJECT, REJECT_CODE, REJECT_REASON};
use mdhub_tests::fixtures::hub_config_toml;
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::streams::read_all;
use mdhub_tests::wait::wait_until;
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(120);

/// The `n`th event of this test, as a connector would send it.
fn event(n: u64, system: &str, entity: &str, record_id: &str, fields: Value) -> Value {
    json!({
        "schema_version": 1,
        "event_id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("reject-codes/{n}").as_bytes()),
        "system": system,
        "entity": entity,
        "record_id": record_id,
        "op": "upsert",
        "fields": fields,
        "observed_at": format!("2026-03-01T00:{:02}:00Z", n),
    })
}

/// Valid record ids at the edges of what is valid.
fn awkward_ids() -> Vec<String> {
    let ascii_255 = format!("long/{}", "0123456789".repeat(25));
    assert_eq!(ascii_255.chars().count(), 255);
    // 128 two-byte characters: exactly the 256-byte limit.
    let bytes_256 = "é".repeat(128);
    assert_eq!(bytes_256.len(), 256);
    vec![
        "kunde/4711".to_string(),
        "Müller & Söhne/東京/🦀".to_string(),
        ascii_255,
        bytes_256,
        "  padded id with spaces  ".to_string(),
        "a.b>c*d".to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_and_subject_reject_code_reaches_the_dlq_with_the_original_and_good_events_around_it_apply(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let mut hub =
        InProcessHub::start(config(&hub_config_toml(), nats.client_url(), dir.path())?).await?;
    let client = async_nats::connect(nats.client_url()).await?;
    let js = jetstream::new(client.clone());

    let ids = awkward_ids();
    let target = ids[0].clone();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    // The good events: one per awkward id, each its own customer.
    let good: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let e = event(
                next(),
                "crm",
                "customer",
                id,
                json!({"email": format!("customer{i}@example.org"), "city": "Berlin"}),
            );
            (id.clone(), serde_json::to_vec(&e).unwrap())
        })
        .collect();

    let bytes = |v: Value| serde_json::to_vec(&v).unwrap();
    // 129 characters but 257 bytes: the limit counts bytes.
    let too_long = format!("x{}", "ü".repeat(128));
    let mut delete_with_fields = event(next(), "crm", "customer", &target, json!({"city": "Kiel"}));
    delete_with_fields["op"] = json!("delete");
    let mut bad_base = event(
        next(),
        "crm",
        "customer",
        &target,
        json!({"city": "Bremen"}),
    );
    // One digit short of a change hash, and a letter that is not hex.
    bad_base["base"] = json!([format!("{}z", "a".repeat(63))]);
    let bad: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "invalid_record_id",
            "mdhub.in.crm.customer".into(),
            bytes(event(
                next(),
                "crm",
                "customer",
                &too_long,
                json!({"city": "Ulm"}),
            )),
        ),
        (
            "invalid_delete",
            "mdhub.in.crm.customer".into(),
            bytes(delete_with_fields),
        ),
        (
            "invalid_base",
            "mdhub.in.crm.customer".into(),
            bytes(bad_base),
        ),
        (
            "bad_subject",
            // A valid event on a subject with one token too many.
            "mdhub.in.crm.customer.extra".into(),
            bytes(event(
                next(),
                "crm",
                "customer",
                "kunde/4712",
                json!({"city": "Jena"}),
            )),
        ),
        (
            "invalid_system",
            "mdhub.in.crm.customer".into(),
            bytes(event(
                next(),
                "CRM",
                "customer",
                "kunde/4713",
                json!({"city": "Gera"}),
            )),
        ),
        (
            "unknown_entity",
            "mdhub.in.crm.order".into(),
            bytes(event(
                next(),
                "crm",
                "order",
                "order/1",
                json!({"city": "Suhl"}),
            )),
        ),
    ];

    // Good, bad, good, bad, ...: each bad message has good ones on both sides.
    for (i, (id, payload)) in good.iter().enumerate() {
        js.publish("mdhub.in.crm.customer", payload.clone().into())
            .await?
            .await?;
        if let Some((code, subject, payload)) = bad.get(i) {
            js.publish(subject.clone(), payload.clone().into())
                .await
                .map_err(|e| anyhow::anyhow!("publishing the {code} case after {id:?}: {e}"))?
                .await?;
        }
    }
    // One more good event after the last bad one.
    let closing = event(
        next(),
        "erp",
        "customer",
        "ERP/0001/ä",
        json!({"email": "closing@example.org"}),
    );
    js.publish("mdhub.in.erp.customer", bytes(closing).into())
        .await?
        .await?;
    assert_eq!(bad.len(), good.len(), "one bad message after each good one");
    let good_count = good.len() as u64 + 1;

    // Input is read in stream order and a batch's dead letters are stored
    // before it is committed: once the closing event is applied, every bad
    // message before it has been judged. (A count of log entries would not
    // do: a bad event wrongly accepted would make it up early.)
    wait_until("the closing event to be applied", DEADLINE, || async {
        hub.hub
            .read()
            .unwrap()
            .state()
            .golden_of(&SourceKey {
                system: "erp".into(),
                record_id: "ERP/0001/ä".into(),
            })
            .unwrap()
            .is_some()
    })
    .await?;
    hub.wait_caught_up(good_count, DEADLINE).await?;
    let dlq = read_all(&js, DLQ_STREAM, "mdhub.dlq.>").await?;
    assert_eq!(
        dlq.len(),
        bad.len(),
        "every bad message, and only those, in the DLQ"
    );
    let mut by_code = BTreeMap::new();
    for m in &dlq {
        let headers = m.headers.as_ref().expect("DLQ messages carry headers");
        let code = headers
            .get(REJECT_CODE)
            .map(|v| v.as_str().to_string())
            .expect("a reject code");
        assert!(
            by_code.insert(code.clone(), m).is_none(),
            "{code} dead-lettered twice"
        );
    }
    for (code, subject, payload) in &bad {
        let m = by_code
            .get(*code)
            .unwrap_or_else(|| panic!("no DLQ message with code {code}; got {:?}", by_code.keys()));
        let headers = m.headers.as_ref().unwrap();
        assert_eq!(
            headers.get(ORIGINAL_SUBJECT).map(|v| v.as_str()),
            Some(subject.as_str()),
            "{code}: the original subject"
        );
        assert_eq!(&m.payload.to_vec(), payload, "{code}: the original bytes");
        let reason = headers.get(REJECT_REASON).map(|v| v.as_str()).unwrap_or("");
        assert!(reason.len() > 10, "{code}: a readable reason: {reason}");
        assert!(
            m.subject.as_str().starts_with("mdhub.dlq."),
            "{code}: {}",
            m.subject
        );
    }

    let shared = hub.stop().await?;
    let hub = shared.read().unwrap();
    assert_eq!(
        hub.log().last_seq(),
        good_count,
        "every good event logged, no bad one"
    );
    let state = hub.state();
    let golden_of = |system: &str, record_id: &str| {
        state
            .golden_of(&SourceKey {
                system: system.into(),
                record_id: record_id.into(),
            })
            .unwrap()
    };
    for (i, id) in ids.iter().enumerate() {
        let golden = golden_of("crm", id).unwrap_or_else(|| panic!("crm/{id:?} applied"));
        let record = state.record(golden).unwrap().unwrap();
        assert!(!record.retired, "crm/{id:?} is not deleted");
        assert_eq!(
            record.values["email"],
            format!("customer{i}@example.org"),
            "crm/{id:?} keeps its own values"
        );
    }
    assert!(
        golden_of("erp", "ERP/0001/ä").is_some(),
        "the closing event applied"
    );
    // The refused events on an existing record changed nothing, and the
    // others created nothing.
    let target_record = state
        .record(golden_of("crm", &target).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        target_record.values["city"], "Berlin",
        "neither the bad delete nor the bad base wrote"
    );
    for (system, id) in [
        ("crm", too_long.as_str()),
        ("crm", "kunde/4712"),
        ("CRM", "kunde/4713"),
        ("crm", "kunde/4713"),
        ("crm", "order/1"),
    ] {
        assert!(golden_of(system, id).is_none(), "{system}/{id} was refused");
    }
    assert_eq!(state.golden_count(), good_count as usize);
    Ok(())
}
