//! The NATS JetStream adapter around the pipeline core.
//!
//! Streams (created or updated at start-up, file storage):
//! - `MDHUB_IN`: `mdhub.in.>`, change events from connectors and any client.
//! - `MDHUB_OUT`: `mdhub.out.>` and `mdhub.golden.>`, what the hub publishes;
//!   each connector reads its subject with its own durable consumer.
//! - `MDHUB_DLQ`: `mdhub.dlq.>`, refused input: the original bytes, with the
//!   reason in headers.
//!
//! The ingest loop takes what the durable consumer has ready (up to
//! `ingest.batch_size`), validates it, publishes refused messages to the DLQ,
//! commits the batch (append with the stream position + flush + derive),
//! publishes the outbound messages and waits for their acks, and only then
//! acknowledges the input. On start it resumes at the stream position the
//! log holds, so input is always read in stream order. A crash anywhere in
//! between reads the uncommitted part again; the log's event-id index makes
//! any second copy a no-op, and outbound messages re-sent after a restart
//! carry the same ids and content.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use mdhub_connectors::publish::{mode_for_server, Mode, OutMessage, Publisher};
use mdhub_schema::model::is_token;
use mdhub_schema::Rejection;
use tracing::{debug, info, warn};

use crate::config::HubConfig;
use crate::hub::{Inbound, SharedHub};
use crate::state::Outbound;

pub const IN_STREAM: &str = "MDHUB_IN";
pub const OUT_STREAM: &str = "MDHUB_OUT";
pub const DLQ_STREAM: &str = "MDHUB_DLQ";

/// Header names on DLQ messages.
pub const REJECT_CODE: &str = "Mdhub-Reject-Code";
pub const REJECT_REASON: &str = "Mdhub-Reject-Reason";
pub const ORIGINAL_SUBJECT: &str = "Mdhub-Original-Subject";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("event log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("publishing to {stream}: {source}")]
    Publish {
        stream: &'static str,
        source: mdhub_connectors::publish::PublishError,
    },
}

fn nats<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BusError + '_ {
    move |e| BusError::Nats(format!("{what}: {e}"))
}

/// Connects to one NATS server or a cluster: `urls` is a comma-separated
/// list, as in `nats_url`.
pub async fn connect(urls: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let addrs = urls
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(nats("NATS URL"))?;
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(addrs)
        .await
        .map_err(|e| BusError::Nats(format!("connecting to {urls}: {e}")))
}

/// Creates or updates the hub's streams. Returns the publish mode the
/// server supports (atomic batches on 2.12 and later).
pub async fn ensure_streams(
    client: &async_nats::Client,
    config: &HubConfig,
) -> Result<Mode, BusError> {
    let version = client.server_info().version;
    let mode = mode_for_server(&version);
    if mode != Mode::Atomic {
        warn!(server_version = %version, "nats-server before 2.12: no atomic batch publish, falling back to single publishes");
    }
    let js = jetstream::new(client.clone());
    let base = stream::Config {
        storage: stream::StorageType::File,
        num_replicas: config.stream.replicas,
        duplicate_window: Duration::from_secs(config.stream.duplicate_window_secs),
        allow_atomic_publish: mode == Mode::Atomic,
        ..Default::default()
    };
    for (name, subjects) in [
        (IN_STREAM, vec!["mdhub.in.>".to_string()]),
        (
            OUT_STREAM,
            vec!["mdhub.out.>".to_string(), "mdhub.golden.>".to_string()],
        ),
        (DLQ_STREAM, vec!["mdhub.dlq.>".to_string()]),
    ] {
        js.create_or_update_stream(stream::Config {
            name: name.to_string(),
            subjects,
            ..base.clone()
        })
        .await
        .map_err(nats(name))?;
    }
    info!(server_version = %version, ?mode, replicas = config.stream.replicas, "streams ready");
    Ok(mode)
}

/// The DLQ subject for a rejection: `mdhub.dlq.<system>`, or
/// `mdhub.dlq.unknown` when the system is missing or not a valid name.
pub fn dlq_subject(rejection: &Rejection) -> String {
    match rejection.system.as_deref() {
        Some(s) if is_token(s) => format!("mdhub.dlq.{s}"),
        _ => "mdhub.dlq.unknown".to_string(),
    }
}

fn header_text(s: &str) -> String {
    // Header values cannot hold line breaks; keep them readable and bounded.
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    flat.chars().take(2000).collect()
}

fn dlq_message(rejection: &Rejection, original: &Inbound) -> OutMessage {
    let mut headers = HeaderMap::new();
    headers.insert(REJECT_CODE, rejection.code);
    headers.insert(REJECT_REASON, header_text(&rejection.message).as_str());
    headers.insert(ORIGINAL_SUBJECT, header_text(&original.subject).as_str());
    OutMessage {
        subject: dlq_subject(rejection),
        headers: Some(headers),
        payload: original.payload.clone(),
    }
}

fn outbound_messages(outbound: &[Outbound]) -> Vec<OutMessage> {
    outbound
        .iter()
        .map(|o| OutMessage {
            subject: o.subject(),
            headers: None,
            payload: Bytes::from(o.to_json()),
        })
        .collect()
}

/// Publishes outbound messages and records them as published.
async fn publish_outbound(
    hub: &SharedHub,
    publisher: &Publisher,
    outbound: &[Outbound],
    up_to_seq: u64,
) -> Result<(), BusError> {
    if !outbound.is_empty() {
        publisher
            .publish_all(outbound_messages(outbound))
            .await
            .map_err(|source| BusError::Publish {
                stream: OUT_STREAM,
                source,
            })?;
    }
    let mut hub = hub.write().expect("hub lock");
    hub.mark_published(up_to_seq, outbound.len())?;
    Ok(())
}

/// Runs the ingest loop until `shutdown` completes. `pending` are outbound
/// messages whose publication was not confirmed before the last stop
/// (from `Hub::open`); they go out first.
pub async fn run_ingest(
    hub: SharedHub,
    client: async_nats::Client,
    config: &HubConfig,
    pending: Vec<Outbound>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BusError> {
    let mode = ensure_streams(&client, config).await?;
    let publisher = Publisher::new(client.clone(), mode);
    let dlq_publisher = Publisher::new(client.clone(), Mode::Pipelined);
    let last_seq = hub.read().expect("hub lock").log().last_seq();
    if !pending.is_empty() {
        info!(
            messages = pending.len(),
            "re-publishing outbound messages not confirmed before the last stop"
        );
    }
    publish_outbound(&hub, &publisher, &pending, last_seq).await?;

    let js = jetstream::new(client.clone());
    let stream = js.get_stream(IN_STREAM).await.map_err(nats(IN_STREAM))?;
    let batch_size = config.ingest.batch_size;
    // Resume exactly after the last input the log holds. A durable consumer
    // alone would redeliver the messages in flight at a crash only after
    // their ack wait, behind newer ones: out of order. So the consumer is
    // created anew at the log's position on every start.
    let position = hub.read().expect("hub lock").log().position()?;
    match stream.delete_consumer(&config.ingest.consumer).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("not found") => {}
        Err(e) => return Err(BusError::Nats(format!("removing the old consumer: {e}"))),
    }
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(config.ingest.consumer.clone()),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: position + 1,
            },
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: (batch_size * 8) as i64,
            ..Default::default()
        })
        .await
        .map_err(nats("consumer"))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch_size * 2)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(nats("consume"))?;
    // Whatever is ready, up to one batch: big batches under load, low latency
    // when quiet.
    let mut chunks = messages.ready_chunks(batch_size);
    tokio::pin!(shutdown);
    info!(consumer = %config.ingest.consumer, batch_size, from_stream_seq = position + 1, "ingesting from {IN_STREAM}");
    loop {
        let chunk = tokio::select! {
            _ = &mut shutdown => break,
            next = chunks.next() => match next {
                Some(chunk) => chunk,
                None => return Err(BusError::Nats("consumer stream ended".to_string())),
            },
        };
        let mut msgs = Vec::with_capacity(chunk.len());
        for m in chunk {
            match m {
                Ok(m) => msgs.push(m),
                // Heartbeat gaps and the like: the consumer recovers by itself.
                Err(e) => warn!(error = %e, "consumer error"),
            }
        }
        if msgs.is_empty() {
            continue;
        }
        let inbound: Vec<Inbound> = msgs
            .iter()
            .map(|m| Inbound {
                subject: m.subject.to_string(),
                payload: m.payload.clone(),
            })
            .collect();
        let position = msgs
            .iter()
            .filter_map(|m| m.info().ok().map(|i| i.stream_sequence))
            .max();
        // Dead letters are stored before the batch is committed: once the
        // log's position moves past a message it is never read again.
        let validated =
            tokio::task::block_in_place(|| hub.read().expect("hub lock").validate(&inbound));
        if !validated.rejected.is_empty() {
            let dlq: Vec<OutMessage> = validated
                .rejected
                .iter()
                .map(|(i, r)| dlq_message(r, &inbound[*i]))
                .collect();
            dlq_publisher
                .publish_all(dlq)
                .await
                .map_err(|source| BusError::Publish {
                    stream: DLQ_STREAM,
                    source,
                })?;
        }
        let outcome = tokio::task::block_in_place(|| {
            hub.write().expect("hub lock").commit(validated, position)
        })?;
        debug!(
            appended = outcome.appended,
            duplicates = outcome.duplicates,
            rejected = outcome.rejected.len(),
            outbound = outcome.outbound.len(),
            "batch ingested"
        );
        publish_outbound(&hub, &publisher, &outcome.outbound, outcome.last_seq).await?;
        let acks = msgs.iter().map(|m| m.ack());
        for result in futures::future::join_all(acks).await {
            if let Err(e) = result {
                // The event is stored; a redelivery is a no-op.
                warn!(error = %e, "ack failed; the message will be redelivered and deduplicated");
            }
        }
    }
    info!("ingest stopped");
    Ok(())
}
