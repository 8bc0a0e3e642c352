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
use crate::hub::{Health, Inbound, PublishedMarker, SharedHub, Validated, Validator};
use crate::state::Outbound;

pub const IN_STREAM: &str = "MDHUB_IN";
pub const OUT_STREAM: &str = "MDHUB_OUT";
pub const DLQ_STREAM: &str = "MDHUB_DLQ";
/// Signed checkpoints of the log's head (`[audit]`): a copy off the hub's
/// disk, created only by a hub with a signing key.
pub const AUDIT_STREAM: &str = "MDHUB_AUDIT";
pub const AUDIT_SUBJECT: &str = "mdhub.audit.checkpoint";

/// JetStream's duplicate window on `MDHUB_IN`: the shortest the server
/// takes (100 ms), so that Nats-Msg-Id drops next to nothing the hub
/// should see. Within it, the server drops a second message with the same
/// Nats-Msg-Id and says so only to its publisher (`duplicate` in the ack).
const IN_DUPLICATE_WINDOW: Duration = Duration::from_millis(100);

/// Header names on DLQ messages.
pub const REJECT_CODE: &str = "Mdhub-Reject-Code";
pub const REJECT_REASON: &str = "Mdhub-Reject-Reason";
pub const ORIGINAL_SUBJECT: &str = "Mdhub-Original-Subject";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("{0}")]
    InputGap(String),
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

/// Connects to one NATS server or a cluster with the settings' credentials
/// and TLS (`HubConfig::nats_connect`). The error names the setting or the
/// server, never a password or seed.
pub async fn connect(
    settings: &mdhub_connectors::connect::NatsConnect,
    name: &str,
) -> Result<async_nats::Client, BusError> {
    settings
        .connect(name)
        .await
        .map_err(|e| BusError::Nats(e.to_string()))
}

/// The settings all the hub's streams share (name and subjects aside).
pub fn stream_settings(config: &HubConfig, mode: Mode) -> stream::Config {
    stream::Config {
        storage: stream::StorageType::File,
        num_replicas: config.stream.replicas,
        duplicate_window: Duration::from_secs(config.stream.duplicate_window_secs),
        allow_atomic_publish: mode == Mode::Atomic,
        ..Default::default()
    }
}

/// The ingest consumer: reads from `start_sequence` on, in stream order, with
/// one ack per batch (ack policy `All`). The bench's relay baseline uses the
/// same settings, so the comparison is like with like.
pub fn ingest_consumer_config(name: &str, batch_size: usize, start_sequence: u64) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence },
        ack_policy: jetstream::consumer::AckPolicy::All,
        ack_wait: Duration::from_secs(60),
        // Room for the batches between the commit and the publish stage.
        max_ack_pending: (batch_size * 40) as i64,
        ..Default::default()
    }
}

/// Removes the ingest consumer left by the last run and creates it anew,
/// reading from `start_sequence`. nats-server may still be removing the old
/// consumer's files when the new one with its name writes its state (seen
/// as "rename .../o.dat.tmp: no such file or directory"): a failed step is
/// tried again, a moment later, like the stream setup; both steps are safe
/// to repeat.
async fn replace_consumer(
    stream: &stream::Stream,
    name: &str,
    batch_size: usize,
    start_sequence: u64,
) -> Result<jetstream::consumer::PullConsumer, BusError> {
    retry_setup(
        "creating the ingest consumer",
        Duration::from_millis(100),
        || async {
            match stream.delete_consumer(name).await {
                Ok(_) => {}
                Err(e) if e.to_string().contains("not found") => {}
                Err(e) => return Err(BusError::Nats(format!("removing the old consumer: {e}"))),
            }
            stream
                .create_consumer(ingest_consumer_config(name, batch_size, start_sequence))
                .await
                .map_err(nats("consumer"))
        },
    )
    .await
}

/// Tries of a setup step before the start fails.
const SETUP_TRIES: u32 = 5;

/// Runs a setup step that is safe to repeat until it succeeds, a NATS error
/// being tried again after `first_wait`, doubling, `SETUP_TRIES` times in
/// all; other errors end it at once.
async fn retry_setup<T, F, Fut>(
    what: &str,
    first_wait: Duration,
    mut step: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut wait = first_wait;
    let mut tries = 1;
    loop {
        match step().await {
            Err(BusError::Nats(e)) if tries < SETUP_TRIES => {
                warn!("{what}: {e}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Creates or updates the hub's streams. Returns the publish mode the
/// server supports (atomic batches on 2.12 and later). A cluster that is
/// still electing its leaders (or one slow to answer) is given a few tries,
/// a second apart and more: every step is safe to repeat.
pub async fn ensure_streams(
    client: &async_nats::Client,
    config: &HubConfig,
) -> Result<Mode, BusError> {
    retry_setup("setting up the streams", Duration::from_millis(500), || {
        ensure_streams_once(client, config)
    })
    .await
}

async fn ensure_streams_once(
    client: &async_nats::Client,
    config: &HubConfig,
) -> Result<Mode, BusError> {
    let version = client.server_info().version;
    let mode = mode_for_server(&version);
    if mode != Mode::Atomic {
        warn!(server_version = %version, "nats-server before 2.12: no atomic batch publish, falling back to single publishes");
    }
    let js = jetstream::new(client.clone());
    let base = stream_settings(config, mode);
    // MDHUB_IN is what a hub is rebuilt from, MDHUB_AUDIT what its log is
    // checked against: the hub creates them when missing and never changes
    // them (a changed retention could expire what no copy holds); their
    // limits are the administrator's, and the shipped broker permissions
    // refuse the hub an update.
    create_if_missing(
        &js,
        stream::Config {
            name: IN_STREAM.to_string(),
            subjects: vec!["mdhub.in.>".to_string()],
            // The server's own dedupe by Nats-Msg-Id would drop a second
            // event with the same id unseen, whatever its content: the
            // hub's event-id index decides instead (a byte-identical copy
            // is a no-op, other content is a `conflicting_duplicate`).
            duplicate_window: IN_DUPLICATE_WINDOW,
            ..base.clone()
        },
    )
    .await?;
    if config.audit.signing_key.is_some() {
        create_if_missing(
            &js,
            stream::Config {
                name: AUDIT_STREAM.to_string(),
                subjects: vec!["mdhub.audit.>".to_string()],
                ..base.clone()
            },
        )
        .await?;
    }
    for (name, subjects) in [
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

/// Creates the stream `config` describes unless one of its name exists.
async fn create_if_missing(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<(), BusError> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(config).await.map_err(nats(&name))?;
            Ok(())
        }
        Err(e) => Err(BusError::Nats(format!("{name}: {e}"))),
    }
}

/// Publishes a signed checkpoint to `MDHUB_AUDIT` and waits for the
/// stream's ack. The message id is the checkpoint's signature, so that a
/// retry stores it once.
pub async fn publish_checkpoint(
    js: &jetstream::Context,
    checkpoint: &crate::audit::signing::SignedCheckpoint,
) -> Result<(), BusError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        checkpoint.signature.as_str(),
    );
    let body = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
    js.publish_with_headers(AUDIT_SUBJECT, headers, body.into())
        .await
        .map_err(nats(AUDIT_STREAM))?
        .await
        .map_err(nats(AUDIT_STREAM))?;
    Ok(())
}

/// The DLQ subject for a message that arrived on `subject`:
/// `mdhub.dlq.<system>` with the system of that subject, or
/// `mdhub.dlq.unknown` when it names none. Never the system a payload
/// claims: a connector's bad input lands where that connector's owners
/// look, and a payload cannot aim its dead letter at another system.
pub fn dlq_subject(subject: &str) -> String {
    let system = mdhub_schema::in_subject_system(subject).filter(|s| is_token(s));
    match system {
        Some(s) => format!("mdhub.dlq.{s}"),
        None => "mdhub.dlq.unknown".to_string(),
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
        subject: dlq_subject(&original.subject),
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
    marker: &PublishedMarker,
    publisher: &Publisher,
    outbound: &[Outbound],
    up_to_seq: u64,
) -> Result<(), BusError> {
    publish_with_retry(publisher, outbound_messages(outbound), OUT_STREAM).await?;
    marker.mark(up_to_seq, outbound.len())?;
    Ok(())
}

/// How long the hub keeps retrying a publish that fails for a passing
/// reason (a reconnect, a stream leader election) before it stops.
const PUBLISH_RETRY_WINDOW: Duration = Duration::from_secs(120);

/// Publishes `msgs`, retrying what is not stored yet while the failure is
/// one that passes: the hub (and a connector) must ride out a node restart
/// in the cluster.
pub async fn publish_with_retry(
    publisher: &Publisher,
    mut msgs: Vec<OutMessage>,
    stream: &'static str,
) -> Result<(), BusError> {
    let started = std::time::Instant::now();
    while !msgs.is_empty() {
        match publisher.publish_all(msgs.clone()).await {
            Ok(_) => break,
            Err(e) if passing(&e) && started.elapsed() < PUBLISH_RETRY_WINDOW => {
                warn!(stream, error = %e, "publish failed; retrying what is not stored yet");
                msgs.drain(..e.stored().min(msgs.len()));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(source) => return Err(BusError::Publish { stream, source }),
        }
    }
    Ok(())
}

fn passing(e: &mdhub_connectors::publish::PublishError) -> bool {
    e.is_transient() || matches!(e, mdhub_connectors::publish::PublishError::NoStream { .. })
}

/// A validated batch on its way to the commit stage.
struct Checked {
    validated: Validated,
    position: Option<u64>,
    input: Vec<jetstream::Message>,
}

/// Reads batches from the consumer, validates them and dead-letters what is
/// refused, then hands them on in order. Dead letters are stored before the
/// batch is committed: once the log's position moves past a message it is
/// never read again.
async fn check_stage(
    messages: pull::Stream,
    validator: Validator,
    dlq_publisher: Publisher,
    batch_size: usize,
    linger: Duration,
    to_commit: tokio::sync::mpsc::Sender<Checked>,
) -> Result<(), BusError> {
    // Whatever is ready, up to one batch: big batches under load, low latency
    // when quiet.
    let mut chunks = messages.ready_chunks(batch_size);
    loop {
        let Some(mut chunk) = chunks.next().await else {
            return Err(BusError::Nats("consumer stream ended".to_string()));
        };
        while chunk.len() < batch_size {
            match tokio::time::timeout(linger, chunks.next()).await {
                Ok(Some(more)) => chunk.extend(more),
                _ => break,
            }
        }
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
        let inbound: Vec<Inbound> = msgs.iter().map(inbound_of).collect();
        let position = msgs
            .iter()
            .filter_map(|m| m.info().ok().map(|i| i.stream_sequence))
            .max();
        let validated = tokio::task::block_in_place(|| validator.validate(&inbound));
        if !validated.rejected.is_empty() {
            let dlq: Vec<OutMessage> = validated
                .rejected
                .iter()
                .map(|(i, r)| dlq_message(r, &inbound[*i]))
                .collect();
            publish_with_retry(&dlq_publisher, dlq, DLQ_STREAM).await?;
        }
        let batch = Checked {
            validated,
            position,
            input: msgs,
        };
        if to_commit.send(batch).await.is_err() {
            // The commit loop has stopped.
            return Ok(());
        }
    }
}

/// A JetStream message as the pipeline core takes it, with the time the
/// stream stored it.
fn inbound_of(m: &jetstream::Message) -> Inbound {
    Inbound {
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
        stored_at: m.info().ok().map(|i| i.published),
    }
}

/// A committed batch on its way to the publish stage.
struct Committed {
    /// Events refused on the commit path (`conflicting_duplicate`).
    dead: Vec<OutMessage>,
    outbound: Vec<Outbound>,
    last_seq: u64,
    input: Vec<jetstream::Message>,
    /// Acknowledge the input once published. Not when derivation failed in
    /// this batch: the hub stops there, and a fixed binary re-reads from
    /// the log's position anyway.
    ack: bool,
}

/// Acknowledges a whole batch with one ack of its last message: the
/// consumer's ack policy is `All`, and everything before it is durable too.
async fn ack_all(input: &[jetstream::Message]) {
    if let Some(last) = input.last() {
        if let Err(e) = last.ack().await {
            // The events are stored; reading them again is a no-op.
            warn!(error = %e, "ack failed; the batch may be redelivered and deduplicated");
        }
    }
}

/// How long without input before the hub checkpoints what it derived
/// since the last checkpoint (`Hub::checkpoint_if_quiet`).
const CHECKPOINT_WHEN_QUIET: Duration = Duration::from_secs(3);

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
    let marker = hub.read().expect("hub lock").published_marker();
    let health = hub.read().expect("hub lock").health().clone();
    if let Health::Degraded { seq, .. } = health {
        // The outbound messages of the entries before the failed one are
        // sound: send them, then consume nothing until a fixed binary starts.
        publish_outbound(&marker, &publisher, &pending, seq - 1).await?;
        return wait_degraded(seq, shutdown).await;
    }
    publish_outbound(&marker, &publisher, &pending, last_seq).await?;

    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(IN_STREAM).await.map_err(nats(IN_STREAM))?;
    let batch_size = config.ingest.batch_size;
    // Resume exactly after the last input the log holds. A durable consumer
    // alone would redeliver the messages in flight at a crash only after
    // their ack wait, behind newer ones: out of order. So the consumer is
    // created anew at the log's position on every start.
    let stored = hub.read().expect("hub lock").log().position()?;
    let info = stream.info().await.map_err(nats("MDHUB_IN stream info"))?;
    let seen = InputStream {
        first: info.state.first_sequence,
        last: info.state.last_sequence,
        created_ns: info
            .created
            .unix_timestamp_nanos()
            .clamp(1, u64::MAX as i128) as u64,
    };
    let created_marker = hub.read().expect("hub lock").log().marker(STREAM_CREATED);
    let position = match input_gap(stored, created_marker.get()?, &seen) {
        None => stored,
        Some(gap) if config.ingest.accept_input_gap => {
            warn!(stored_position = stored, stream_first = seen.first, stream_last = seen.last,
                  reason = %gap, "accepting a gap in {IN_STREAM} (--accept-input-gap): messages the hub never read are skipped");
            metrics::counter!("mdhub_input_gaps_total").increment(1);
            seen.first.saturating_sub(1)
        }
        Some(gap) => {
            return Err(BusError::InputGap(format!(
                "{IN_STREAM} no longer holds what the hub has not read: the hub's stored position is {stored}, \
                 the stream's first sequence {}, last sequence {} ({gap}). Starting would skip messages silently. \
                 If they are truly gone, start with --accept-input-gap (the gap is logged and counted); \
                 otherwise restore the stream",
                seen.first, seen.last
            )))
        }
    };
    created_marker.set(seen.created_ns)?;
    let consumer =
        replace_consumer(&stream, &config.ingest.consumer, batch_size, position + 1).await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch_size * 2)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(nats("consume"))?;
    info!(consumer = %config.ingest.consumer, batch_size, from_stream_seq = position + 1, "ingesting from {IN_STREAM}");
    // Three stages, batches in order: the check stage reads and validates
    // batch N+2 (JSON decoding, log encoding, dead letters) while this loop
    // commits batch N+1 (log append, fsync, derivation) and the publish
    // stage waits for JetStream to store batch N's outbound messages (its
    // fsync), then acks batch N.
    let (to_commit, mut checked) = tokio::sync::mpsc::channel::<Checked>(2);
    let dlq_for_commit = dlq_publisher.clone();
    let mut checking = Stage(tokio::spawn(check_stage(
        messages,
        hub.read().expect("hub lock").validator(),
        dlq_publisher,
        batch_size,
        Duration::from_millis(config.ingest.linger_ms),
        to_commit,
    )));
    let (to_publish, mut committed) = tokio::sync::mpsc::channel::<Committed>(4);
    let mut publish_stage = Stage(tokio::spawn({
        async move {
            while let Some(batch) = committed.recv().await {
                if !batch.dead.is_empty() {
                    publish_with_retry(&dlq_for_commit, batch.dead, DLQ_STREAM).await?;
                }
                publish_outbound(&marker, &publisher, &batch.outbound, batch.last_seq).await?;
                if batch.ack {
                    ack_all(&batch.input).await;
                }
            }
            Ok::<(), BusError>(())
        }
    }));
    tokio::pin!(shutdown);
    let mut degraded_at = None;
    let mut check_ended = None;
    let mut publish_ended = None;
    // Re-resolution that waits without input coming (after a training
    // asked over the API, or a stop half-way) runs on this tick.
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            _ = &mut shutdown => break,
            next = checked.recv() => match next {
                Some(batch) => batch,
                None => break,
            },
            _ = idle.tick() => {
                // Read-locked checks first: the API's readers wait for a
                // write lock, which only a due task takes.
                let (due, quiet) = {
                    let hub = hub.read().expect("hub lock");
                    (
                        hub.state().resolver().reresolution().is_some(),
                        hub.quiet_checkpoint_due(CHECKPOINT_WHEN_QUIET),
                    )
                };
                if !due {
                    if quiet {
                        tokio::task::block_in_place(|| {
                            hub.write().expect("hub lock").checkpoint_if_quiet(CHECKPOINT_WHEN_QUIET)
                        })?;
                    }
                    continue;
                }
                let regrouped = tokio::task::block_in_place(|| {
                    hub.write().expect("hub lock").reresolve_if_due()
                })?;
                let Some(outcome) = regrouped else { continue };
                let batch = Committed {
                    dead: Vec::new(),
                    outbound: outcome.outbound,
                    last_seq: outcome.last_seq,
                    input: Vec::new(),
                    ack: false,
                };
                tokio::select! {
                    sent = to_publish.send(batch) => if sent.is_err() { break },
                    ended = &mut publish_stage => { publish_ended = Some(ended); break }
                }
                if outcome.degraded {
                    degraded_at = Some(hub.read().expect("hub lock").health().clone());
                    break;
                }
                continue;
            }
            // The check stage failed: stop and report its error below.
            ended = &mut checking => { check_ended = Some(ended); break }
        };
        let outcome = tokio::task::block_in_place(|| {
            let mut hub = hub.write().expect("hub lock");
            let mut outcome = hub.commit(batch.validated, batch.position)?;
            // Training and re-resolution block ingest while they run: at
            // doubling record counts only (`[match] train_at`).
            if let Some(matched) = hub.settle_matching()? {
                outcome.absorb(matched);
            }
            Ok::<_, crate::log::LogError>(outcome)
        })?;
        debug!(
            appended = outcome.appended,
            duplicates = outcome.duplicates,
            rejected = outcome.rejected.len(),
            outbound = outcome.outbound.len(),
            "batch ingested"
        );
        let dead = outcome
            .conflicting
            .iter()
            .map(|(i, r)| dlq_message(r, &inbound_of(&batch.input[*i])))
            .collect();
        let degraded = outcome.degraded;
        let batch = Committed {
            dead,
            outbound: outcome.outbound,
            last_seq: outcome.last_seq,
            input: batch.input,
            ack: !degraded,
        };
        tokio::select! {
            sent = to_publish.send(batch) => if sent.is_err() { break },
            // The publish stage failed: stop and report its error below.
            ended = &mut publish_stage => { publish_ended = Some(ended); break }
        }
        if degraded {
            degraded_at = Some(hub.read().expect("hub lock").health().clone());
            break;
        }
    }
    // Let the publish stage finish what is committed, or report why a stage
    // stopped.
    drop(checked);
    let check_ended = match check_ended {
        Some(ended) => ended,
        None => {
            checking.0.abort();
            match checking.await {
                Err(e) if e.is_cancelled() => Ok(Ok(())),
                other => other,
            }
        }
    };
    drop(to_publish);
    let publish_ended = match publish_ended {
        Some(ended) => ended,
        None => publish_stage.await,
    };
    publish_ended.map_err(|e| BusError::Nats(format!("publish stage: {e}")))??;
    check_ended.map_err(|e| BusError::Nats(format!("check stage: {e}")))??;
    if let Some(Health::Degraded { seq, .. }) = degraded_at {
        return wait_degraded(seq, shutdown).await;
    }
    // Everything committed is published: a checkpoint now makes the next
    // start derive nothing.
    tokio::task::block_in_place(|| hub.write().expect("hub lock").checkpoint())?;
    info!("ingest stopped");
    Ok(())
}

/// A stage of the ingest loop, spawned as a task of its own and aborted
/// when the loop is dropped: a loop cancelled from outside (its task
/// aborted) must not leave its stages running, holding the log open.
struct Stage<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Stage<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Stage<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// A degraded hub consumes nothing more and keeps serving reads until it is
/// stopped; a restart with a fixed binary derives the failed entry again.
async fn wait_degraded(seq: u64, shutdown: impl Future<Output = ()>) -> Result<(), BusError> {
    warn!(seq, "ingest stopped at a log entry that failed to derive; reads are served until the hub is stopped");
    shutdown.await;
    Ok(())
}

/// Where the hub records the creation time of the `MDHUB_IN` it reads, to
/// tell a re-created stream from the one its position counts in.
const STREAM_CREATED: &str = "input_stream_created_ns";

/// What `MDHUB_IN` holds at start.
struct InputStream {
    first: u64,
    last: u64,
    /// Creation time, nanoseconds since 1970 (never 0).
    created_ns: u64,
}

/// Why starting at `stored + 1` would skip messages the hub never read, if
/// it would: the stream was re-created, or purged or expired past the
/// stored position. `stored_created_ns` is 0 when not recorded yet.
fn input_gap(stored: u64, stored_created_ns: u64, stream: &InputStream) -> Option<String> {
    if stored_created_ns != 0 && stored_created_ns != stream.created_ns {
        return Some("the stream was deleted and created again since the hub last read it".into());
    }
    if stored > stream.last {
        return Some(format!(
            "the stream ends before the stored position: it was deleted and created again, or reset, \
             and {} messages the hub has read are gone",
            stored - stream.last
        ));
    }
    if stored + 1 < stream.first {
        return Some(format!(
            "sequences {} to {} were purged or expired before the hub read them",
            stored + 1,
            stream.first - 1
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: u64 = 1_700_000_000_000_000_000;

    fn stream(first: u64, last: u64) -> InputStream {
        InputStream {
            first,
            last,
            created_ns: CREATED,
        }
    }

    #[test]
    fn a_stream_holding_everything_after_the_position_has_no_gap() {
        assert_eq!(input_gap(0, 0, &stream(0, 0)), None, "new hub, new stream");
        assert_eq!(
            input_gap(0, 0, &stream(1, 40)),
            None,
            "new hub, full stream"
        );
        assert_eq!(
            input_gap(40, CREATED, &stream(41, 40)),
            None,
            "all read, then purged"
        );
        assert_eq!(
            input_gap(40, CREATED, &stream(30, 90)),
            None,
            "old messages expired"
        );
        assert_eq!(
            input_gap(40, 0, &stream(41, 90)),
            None,
            "creation time not yet recorded"
        );
    }

    #[test]
    fn unread_messages_gone_or_a_new_stream_is_a_gap() {
        let purged = input_gap(40, CREATED, &stream(46, 45)).unwrap();
        assert!(purged.contains("41 to 45"), "{purged}");
        assert!(
            input_gap(0, 0, &stream(11, 10)).is_some(),
            "a new hub on a purged stream"
        );
        assert!(
            input_gap(40, CREATED, &stream(0, 0)).is_some(),
            "reset below the position"
        );
        assert!(
            input_gap(40, CREATED + 1, &stream(1, 90)).is_some(),
            "re-created and refilled"
        );
    }

    #[test]
    fn dead_letters_go_to_the_system_of_the_arrival_subject() {
        assert_eq!(dlq_subject("mdhub.in.crm.customer"), "mdhub.dlq.crm");
        assert_eq!(
            dlq_subject("mdhub.in.steward.customer"),
            "mdhub.dlq.steward"
        );
        assert_eq!(dlq_subject("mdhub.in.CRM.customer"), "mdhub.dlq.unknown");
        assert_eq!(dlq_subject("other.subject"), "mdhub.dlq.unknown");
    }
}
