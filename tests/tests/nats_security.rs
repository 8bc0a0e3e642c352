//! The shipped locked-down NATS config (deploy/nats/secure/) on a real
//! nats-server: what a connector's credentials may not do, what only the
//! admin may do, and that the hub works with its own credentials over TLS.
//!
//! Every test starts the hub first, so the streams exist when a connector's
//! permissions are tried. A refused publish or subscription is shown twice:
//! the client receives the server's permissions error, and (read with the
//! admin's credentials) nothing reached a stream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::secure_nats::{SecureNats, Watched};
use mdhub_tests::wait::wait_for;
use serde_json::{json, Value};
use tempfile::TempDir;

struct Setup {
    nats: SecureNats,
    hub: InProcessHub,
    _data: TempDir,
}

/// The secure server, and the hub running on it with the credentials and
/// TLS settings of its config file's `[nats]` table.
async fn start() -> anyhow::Result<Setup> {
    let nats = SecureNats::start()?;
    let data = tempfile::tempdir()?;
    // With a signing key the hub also creates MDHUB_AUDIT, with its own
    // credentials (the key file is not read by the in-process hub).
    let toml = format!(
        r#"
        [audit]
        signing_key = "{}"

        [nats]
        user = "hub"
        password_file = "{}"
        tls_ca_file = "{}"
        inbox_prefix = "_INBOX.hub"

        # crm receives every golden record, so erp's input makes output for crm.
        [system.crm]
        receive_all = true
        [system.erp]
        "#,
        data.path().join("audit.key").display(),
        nats.password_file("hub").display(),
        nats.ca_file().display()
    );
    let hub = InProcessHub::start(config(&toml, &nats.url(), data.path())?).await?;
    Ok(Setup {
        nats,
        hub,
        _data: data,
    })
}

fn event(system: &str, record_id: &str, email: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema_version": 1,
        "event_id": uuid::Uuid::now_v7(),
        "system": system,
        "entity": "customer",
        "record_id": record_id,
        "op": "upsert",
        "fields": {"email": email, "given_name": "Ada", "family_name": "Lovelace"},
        "observed_at": "2026-01-01T00:00:00Z",
    }))
    .expect("serializes")
}

/// A JetStream context that gives up on an unanswered request (a refused
/// one is never answered) after two seconds instead of the default five.
fn js(w: &Watched) -> jetstream::Context {
    let mut js = jetstream::new(w.client.clone());
    js.set_timeout(Duration::from_secs(2));
    js
}

async fn publish_acked(w: &Watched, subject: &str, payload: Vec<u8>) -> anyhow::Result<u64> {
    let ack = js(w)
        .publish(subject.to_string(), payload.into())
        .await?
        .await?;
    Ok(ack.sequence)
}

/// Sends `payload` to `subject` as a request would (reply in the client's
/// own inbox) and waits for the server to refuse it.
async fn refused_publish(w: &Watched, subject: &str, payload: &[u8]) -> anyhow::Result<()> {
    let reply = w.client.new_inbox();
    w.client
        .publish_with_reply(subject.to_string(), reply, payload.to_vec().into())
        .await?;
    w.client.flush().await?;
    w.errors
        .wait_for(&format!(
            "Permissions Violation for Publish to \"{subject}\""
        ))
        .await
}

async fn messages(admin: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    Ok(admin.get_stream(stream).await?.info().await?.state.messages)
}

async fn has_message_on(
    admin: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> anyhow::Result<bool> {
    let stream = admin.get_stream(stream).await?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_publishes_only_to_its_own_input_subjects() -> anyhow::Result<()> {
    let s = start().await?;
    let admin = js(&s.nats.connect_watched("admin").await?);
    let crm = s.nats.connect_watched("crm").await?;

    // Input as another system, a steward action, output as the hub.
    let forged = event("erp", "erp-1", "forged@example.com");
    for subject in [
        "mdhub.in.erp.customer",
        "mdhub.in.steward.customer",
        "mdhub.out.crm.customer",
        "mdhub.golden.customer",
        "mdhub.dlq.crm",
    ] {
        refused_publish(&crm, subject, &forged).await?;
    }
    // The server handles a connection's messages in order: the refusals
    // arrived, so nothing of them can still be on its way to a stream.
    assert_eq!(messages(&admin, "MDHUB_IN").await?, 0);
    assert_eq!(messages(&admin, "MDHUB_OUT").await?, 0);
    assert_eq!(messages(&admin, "MDHUB_DLQ").await?, 0);

    let own = event("crm", "crm-1", "ada@example.com");
    publish_acked(&crm, "mdhub.in.crm.customer", own.clone()).await?;
    let stored = admin
        .get_stream("MDHUB_IN")
        .await?
        .get_last_raw_message_by_subject("mdhub.in.crm.customer")
        .await?;
    assert_eq!(stored.payload, own);
    assert!(!has_message_on(&admin, "MDHUB_IN", "mdhub.in.erp.customer").await?);
    assert!(!has_message_on(&admin, "MDHUB_IN", "mdhub.in.steward.customer").await?);
    s.hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_can_purge_or_delete_the_input_stream() -> anyhow::Result<()> {
    let s = start().await?;
    let admin = js(&s.nats.connect_watched("admin").await?);
    let crm = s.nats.connect_watched("crm").await?;
    publish_acked(
        &crm,
        "mdhub.in.crm.customer",
        event("crm", "crm-1", "ada@example.com"),
    )
    .await?;

    for user in ["crm", "hub"] {
        let w = s.nats.connect_watched(user).await?;
        refused_publish(&w, "$JS.API.STREAM.PURGE.MDHUB_IN", b"{}").await?;
        refused_publish(&w, "$JS.API.STREAM.DELETE.MDHUB_IN", b"").await?;
        refused_publish(&w, "$JS.API.STREAM.MSG.DELETE.MDHUB_IN", br#"{"seq":1}"#).await?;
        // An update could shorten the retention and expire the stream.
        refused_publish(
            &w,
            "$JS.API.STREAM.UPDATE.MDHUB_IN",
            br#"{"name":"MDHUB_IN","subjects":["mdhub.in.>"],"max_age":1000000000}"#,
        )
        .await?;
        // Through the client library's own calls as well.
        assert!(js(&w).delete_stream("MDHUB_IN").await.is_err(), "{user}");
        assert_eq!(
            messages(&admin, "MDHUB_IN").await?,
            1,
            "after {user}'s attempts"
        );
    }
    // The hub's JetStream calls are allowed; its purge is denied by name.
    let hub = s.nats.connect_watched("hub").await?;
    let as_hub = js(&hub).get_stream("MDHUB_IN").await?;
    assert!(as_hub.purge().await.is_err());
    hub.errors
        .wait_for("Permissions Violation for Publish to \"$JS.API.STREAM.PURGE.MDHUB_IN\"")
        .await?;
    assert_eq!(messages(&admin, "MDHUB_IN").await?, 1);

    let purged = admin.get_stream("MDHUB_IN").await?.purge().await?;
    assert_eq!(purged.purged, 1);
    assert_eq!(messages(&admin, "MDHUB_IN").await?, 0);
    s.hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_reads_only_its_own_outbound_subjects() -> anyhow::Result<()> {
    let mut s = start().await?;
    let admin = js(&s.nats.connect_watched("admin").await?);
    let erp = s.nats.connect_watched("erp").await?;
    publish_acked(
        &erp,
        "mdhub.in.erp.customer",
        event("erp", "erp-1", "ada@example.com"),
    )
    .await?;
    s.hub.wait_caught_up(1, Duration::from_secs(30)).await?;
    assert!(has_message_on(&admin, "MDHUB_OUT", "mdhub.out.crm.customer").await?);

    let crm = s.nats.connect_watched("crm").await?;
    let out = js(&crm).get_stream("MDHUB_OUT").await?;
    let own = |durable: &str, filter: &str| pull::Config {
        durable_name: Some(durable.to_string()),
        filter_subject: filter.to_string(),
        ..Default::default()
    };
    let mut consumer = out.create_consumer(own("crm", "mdhub.out.crm.>")).await?;
    let msg = wait_for(
        "crm's consumer to deliver its update",
        Duration::from_secs(10),
        || async {
            let mut batch = consumer
                .fetch()
                .max_messages(1)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
            batch
                .next()
                .await
                .transpose()
                .map_err(|e| anyhow::anyhow!("fetching: {e}"))
        },
    )
    .await?;
    assert_eq!(msg.subject.as_str(), "mdhub.out.crm.customer");
    let update: Value = serde_json::from_slice(&msg.payload)?;
    assert_eq!(update["system"], "crm");
    msg.double_ack()
        .await
        .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
    assert_eq!(consumer.info().await?.num_ack_pending, 0);

    // Another system's output: neither through its own consumer name nor
    // through another's, nor through the create subject without a filter.
    assert!(out
        .create_consumer(own("crm", "mdhub.out.erp.>"))
        .await
        .is_err());
    crm.errors
        .wait_for("\"$JS.API.CONSUMER.CREATE.MDHUB_OUT.crm.mdhub.out.erp.>\"")
        .await?;
    assert!(out
        .create_consumer(own("erp", "mdhub.out.erp.>"))
        .await
        .is_err());
    crm.errors
        .wait_for("\"$JS.API.CONSUMER.CREATE.MDHUB_OUT.erp.mdhub.out.erp.>\"")
        .await?;
    let body = |filter: &str| {
        serde_json::to_vec(&json!({
            "stream_name": "MDHUB_OUT",
            "config": {"durable_name": "crm", "filter_subject": filter, "ack_policy": "explicit"},
        }))
        .expect("serializes")
    };
    refused_publish(
        &crm,
        "$JS.API.CONSUMER.DURABLE.CREATE.MDHUB_OUT.crm",
        &body("mdhub.out.erp.>"),
    )
    .await?;
    refused_publish(
        &crm,
        "$JS.API.CONSUMER.CREATE.MDHUB_OUT.crm",
        &body("mdhub.out.erp.>"),
    )
    .await?;
    // The allowed subject with another filter in the body: the server
    // itself refuses the mismatch.
    let answer = crm
        .client
        .request(
            "$JS.API.CONSUMER.CREATE.MDHUB_OUT.crm.mdhub.out.crm.>",
            body("mdhub.out.erp.>").into(),
        )
        .await?;
    let answer: Value = serde_json::from_slice(&answer.payload)?;
    assert!(answer.get("error").is_some(), "{answer}");
    assert_eq!(
        consumer.info().await?.config.filter_subject,
        "mdhub.out.crm.>"
    );
    // The hub's input consumer and the hub's inbox (where its input arrives).
    refused_publish(
        &crm,
        "$JS.API.CONSUMER.MSG.NEXT.MDHUB_IN.mdhub-hub",
        b"{\"batch\":1}",
    )
    .await?;
    for subject in ["_INBOX.>", "_INBOX.hub.>", "mdhub.in.>", "mdhub.out.>"] {
        let _sub = crm.client.subscribe(subject).await?;
        crm.client.flush().await?;
        crm.errors
            .wait_for(&format!(
                "Permissions Violation for Subscription to \"{subject}\""
            ))
            .await?;
    }
    s.hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_ingests_and_publishes_with_its_own_credentials_over_tls() -> anyhow::Result<()> {
    let mut s = start().await?;
    let admin = js(&s.nats.connect_watched("admin").await?);
    let crm = s.nats.connect_watched("crm").await?;
    publish_acked(&crm, "mdhub.in.crm.customer", b"not json".to_vec()).await?;
    publish_acked(
        &crm,
        "mdhub.in.crm.customer",
        event("crm", "crm-1", "ada@example.com"),
    )
    .await?;
    s.hub.wait_caught_up(1, Duration::from_secs(30)).await?;

    let golden = admin
        .get_stream("MDHUB_OUT")
        .await?
        .get_last_raw_message_by_subject("mdhub.golden.customer")
        .await?;
    let golden: Value = serde_json::from_slice(&golden.payload)?;
    assert!(golden.to_string().contains("ada@example.com"), "{golden}");
    let dead = admin
        .get_stream("MDHUB_DLQ")
        .await?
        .get_last_raw_message_by_subject("mdhub.dlq.crm")
        .await?;
    assert_eq!(&dead.payload[..], b"not json");

    // The API's steward actions go out with the hub's credentials.
    let hub = s.nats.connect_watched("hub").await?;
    publish_acked(&hub, "mdhub.in.steward.customer", b"{}".to_vec()).await?;
    assert!(has_message_on(&admin, "MDHUB_IN", "mdhub.in.steward.customer").await?);

    // Signed checkpoints: the hub publishes them to MDHUB_AUDIT, which it
    // created, and may not purge or delete it; a connector may not write
    // checkpoints.
    let key = mdhub_hub::audit::signing::AuditKey::generate()?;
    let checkpoint = key.sign(1, &[1; 32], time::OffsetDateTime::now_utc());
    mdhub_hub::nats_bus::publish_checkpoint(&js(&hub), &checkpoint).await?;
    assert_eq!(messages(&admin, "MDHUB_AUDIT").await?, 1);
    refused_publish(&hub, "$JS.API.STREAM.PURGE.MDHUB_AUDIT", b"{}").await?;
    assert!(js(&hub).delete_stream("MDHUB_AUDIT").await.is_err());
    refused_publish(&crm, "mdhub.audit.checkpoint", b"{}").await?;
    assert_eq!(messages(&admin, "MDHUB_AUDIT").await?, 1);
    s.hub.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_tls_or_with_a_wrong_password_are_refused() -> anyhow::Result<()> {
    let s = start().await?;

    // Plain text, speaking the protocol by hand: the server wants a TLS
    // handshake after its INFO and never answers the PING.
    let mut tcp = TcpStream::connect(("127.0.0.1", s.nats.port()))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut info = [0u8; 4096];
    let n = tcp.read(&mut info)?;
    let info = String::from_utf8_lossy(&info[..n]).to_string();
    assert!(info.contains("\"tls_required\":true"), "{info}");
    let connect = json!({"user": "crm", "pass": s.nats.password("crm"), "verbose": false, "pedantic": false, "tls_required": false});
    let _ = tcp.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("PONG"), "{answer}");

    // TLS without the CA: the client does not trust the server.
    let mut no_ca = s.nats.settings("crm");
    no_ca.tls_ca_file = None;
    assert!(no_ca.connect("no-ca").await.is_err());

    // A wrong password, through the hub's own connect.
    let wrong = format!("pw{}", uuid::Uuid::now_v7().simple());
    let file = s.nats.dir().join("wrong.password");
    std::fs::write(&file, &wrong)?;
    let mut settings = s.nats.settings("hub");
    settings.password_file = Some(file);
    let err = mdhub_hub::nats_bus::connect(&settings, "mdhub-hub")
        .await
        .expect_err("a wrong password is refused")
        .to_string();
    assert!(err.contains("authorization violation"), "{err}");
    assert!(!err.contains(&wrong), "the error shows the password: {err}");
    assert!(!format!("{settings:?}").contains(&wrong));

    // The right one works.
    let ok = s.nats.settings("hub").connect("hub-ok").await?;
    ok.flush().await?;
    s.hub.stop().await?;
    Ok(())
}
