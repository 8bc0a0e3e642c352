//! Durable publishing of an ordered list of messages onto one JetStream stream.
//!
//! `MDHUB_IN` runs with `sync_interval: always`: the server fsyncs every write
//! before it acknowledges it. One fsync per message caps single publishes at
//! about 6,000-7,000 messages/s on our 2-core machines even with 1,024 acks
//! in flight, while an ADR-50 atomic batch is written and fsynced once for up
//! to 1,000 messages (50,000-140,000 messages/s by machine and batch size;
//! docs/design.md, "Durability"; the ingest bench measures both). So
//! [`Publisher`] has two modes:
//!
//! - [`Mode::Atomic`] (nats-server 2.12 and later): the list is cut into
//!   consecutive atomic batches of at most [`MAX_ATOMIC_BATCH`] messages. A
//!   batch is stored completely or not at all, so one source transaction
//!   published as one batch is all-or-nothing on the bus too. Batches are sent
//!   one after the other, each only after the previous one was committed, so
//!   a failure never leaves a later batch stored behind a missing earlier one.
//! - [`Mode::Pipelined`]: plain JetStream publishes with up to
//!   [`DEFAULT_MAX_IN_FLIGHT`] acks outstanding, for servers without atomic
//!   batches, for streams that do not allow them, and for messages that need
//!   `Nats-Msg-Id`.
//!
//! Either way [`Publisher::publish_all`] returns only when the stream has
//! acknowledged every message, or with a [`PublishError`] that says where it
//! stopped and how many leading messages are known to be stored.
//!
//! Wire protocol of an atomic batch, as checked against nats-server 2.15.1:
//! every message carries `Nats-Batch-Id` (at most 64 characters; we use a
//! UUIDv7) and `Nats-Batch-Sequence` (1-based, no gaps); the last one also
//! carries `Nats-Batch-Commit: 1` and is sent as a request. Only that commit
//! gets a reply: a PubAck for the whole batch with `batch` (the id), `count`
//! (messages stored) and `seq` (stream sequence of the last message), or an
//! error PubAck. The other messages are sent without a reply subject: the
//! server does not need a request to open a batch, and a batch that went wrong
//! on the way (rejected message, gap, message on a subject of another stream)
//! is reported at the commit (`10176 batch is incomplete`). Server limits
//! (compiled-in defaults, configurable under `jetstream { limits { ... } }`):
//! 1,000 messages per batch (`10199 batch is too large`), 50 batches in flight
//! per stream and 1,000 per server (`10210 too many inflight`, code 429), and a
//! batch without traffic for 10 s is abandoned (its slot is freed then). One
//! [`Publisher::publish_all`] call has at most one batch open at a time.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, HeaderMap, Request, StatusCode, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;

/// Most messages one atomic batch may hold: nats-server's default
/// `max_batch_size` (a larger batch is rejected at commit with 10199).
pub const MAX_ATOMIC_BATCH: usize = 1_000;

/// Default number of unacknowledged messages in [`Mode::Pipelined`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;

/// Upper bound for [`Publisher::with_max_in_flight`]: stays well below the
/// client's per-subscription buffer (65,536 messages), which holds the acks.
pub const MAX_IN_FLIGHT_LIMIT: usize = 16_384;

/// Default wait for one acknowledgement (a batch commit, or the next ack of
/// a pipelined publish), and for handing one batch to the connection.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Header naming the atomic batch a message belongs to (ADR-50).
pub const HEADER_BATCH_ID: &str = "Nats-Batch-Id";
/// Header with a message's 1-based position in its atomic batch (ADR-50).
pub const HEADER_BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
/// Header marking the last message of an atomic batch; value `1` (ADR-50).
pub const HEADER_BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// JetStream's de-duplication header; refused in atomic batches.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
const HEADER_EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// Server error codes (`err_code`) of atomic batch publishing, as returned in
/// [`PublishError::Rejected`].
pub mod err_code {
    /// The stream does not have `allow_atomic` set.
    pub const ATOMIC_DISABLED: u64 = 10174;
    /// The batch had a gap, a rejected message, a message that went to
    /// another stream, or was abandoned after 10 s without traffic.
    pub const BATCH_INCOMPLETE: u64 = 10176;
    /// A header the server does not support in batches
    /// (`Nats-Expected-Last-Msg-Id`).
    pub const BATCH_UNSUPPORTED_HEADER: u64 = 10177;
    /// More messages than the server's `max_batch_size` (default 1,000).
    pub const BATCH_TOO_LARGE: u64 = 10199;
    /// A `Nats-Msg-Id` repeated within the batch or within the stream's
    /// duplicate window (2.12.1 and later): the whole batch is rejected.
    pub const BATCH_DUPLICATE_MSG_ID: u64 = 10201;
    /// The stream already has its maximum of open batches (default 50 per
    /// stream, 1,000 per server); HTTP-like code 429. Open batches end at
    /// commit, or 10 s after their last message when abandoned.
    pub const BATCH_TOO_MANY_INFLIGHT: u64 = 10210;
}

/// How [`Publisher`] puts messages on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// ADR-50 atomic batches of at most [`MAX_ATOMIC_BATCH`] messages
    /// (nats-server 2.12+, stream with `allow_atomic`). No `Nats-Msg-Id`.
    Atomic,
    /// One JetStream publish per message, acks awaited with a bounded number
    /// in flight. Works on any JetStream server and stream.
    Pipelined,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Atomic => "atomic",
            Mode::Pipelined => "pipelined",
        })
    }
}

/// The mode a server of this version supports best: [`Mode::Atomic`] from
/// nats-server 2.12 on (where ADR-50 atomic batches arrived), otherwise, and
/// for versions that do not parse, [`Mode::Pipelined`].
///
/// Accepts `2.15.1`, `v2.12.0`, `2.12.0-RC.3` and the like.
pub fn mode_for_server(version: &str) -> Mode {
    let v = version.trim().trim_start_matches(['v', 'V']);
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next().and_then(|p| p.parse::<u64>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u64>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) if (major, minor) >= (2, 12) => Mode::Atomic,
        _ => Mode::Pipelined,
    }
}

/// [`mode_for_server`] for the server this client is connected to.
///
/// In a cluster of mixed versions this is the version of the server the
/// client happens to be connected to, not necessarily the stream leader's.
pub fn mode_for_client(client: &Client) -> Mode {
    mode_for_server(&client.server_info().version)
}

/// Errors of [`ensure_stream`].
#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    /// `persist_mode: async` acknowledges before writing; the server refuses
    /// atomic batches on such streams, and it contradicts our durability
    /// rules anyway.
    #[error("stream {stream}: persist_mode async cannot take atomic batches")]
    AsyncPersist {
        /// Stream name.
        stream: String,
    },
    /// The server refused to create or update the stream.
    #[error("creating or updating stream {stream}: {source}")]
    Server {
        /// Stream name.
        stream: String,
        /// The server's answer.
        #[source]
        source: jetstream::context::CreateStreamError,
    },
}

/// `config` adjusted for `mode`: with [`Mode::Atomic`] atomic publish is
/// allowed (`allow_atomic`, async-nats' `allow_atomic_publish`); with
/// [`Mode::Pipelined`] the config is returned as given.
pub fn stream_config_for(
    mode: Mode,
    mut config: jetstream::stream::Config,
) -> Result<jetstream::stream::Config, StreamSetupError> {
    if mode == Mode::Atomic {
        if config.persist_mode == Some(jetstream::stream::PersistenceMode::Async) {
            return Err(StreamSetupError::AsyncPersist {
                stream: config.name,
            });
        }
        config.allow_atomic_publish = true;
    }
    Ok(config)
}

/// Creates the stream, or updates it to `config` if it exists, after
/// [`stream_config_for`] (so with [`Mode::Atomic`] atomic publish is
/// switched on, also on an existing stream). Returns the stream's info.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: jetstream::stream::Config,
    mode: Mode,
) -> Result<jetstream::stream::Info, StreamSetupError> {
    let config = stream_config_for(mode, config)?;
    let stream = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(|source| StreamSetupError::Server { stream, source })
}

/// One message to publish.
#[derive(Clone, Debug)]
pub struct OutMessage {
    /// Subject; a stream must cover it.
    pub subject: String,
    /// Headers to store with the message. In [`Mode::Atomic`] they must not
    /// contain `Nats-Msg-Id`, `Nats-Expected-Last-Msg-Id` or `Nats-Batch-*`.
    pub headers: Option<HeaderMap>,
    /// Body.
    pub payload: Bytes,
}

impl OutMessage {
    /// A message without headers.
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        OutMessage {
            subject: subject.into(),
            headers: None,
            payload: payload.into(),
        }
    }

    /// A message with headers.
    pub fn with_headers(
        subject: impl Into<String>,
        headers: HeaderMap,
        payload: impl Into<Bytes>,
    ) -> Self {
        OutMessage {
            subject: subject.into(),
            headers: Some(headers),
            payload: payload.into(),
        }
    }
}

/// What a successful [`Publisher::publish_all`] stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Messages acknowledged (all of the input).
    pub messages: usize,
    /// Atomic batches committed; 0 in [`Mode::Pipelined`].
    pub batches: usize,
    /// Pipelined messages the stream reported as duplicates (`Nats-Msg-Id`
    /// seen before): acknowledged, but stored earlier, not now.
    pub duplicates: usize,
    /// Highest stream sequence in the acks (the last message's sequence);
    /// 0 for an empty input.
    pub last_stream_seq: u64,
    /// Stream that acknowledged the messages; `None` for an empty input.
    pub stream: Option<String>,
}

/// Where in the input a [`PublishError`] happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// A single message (index into the input).
    Message {
        /// Index into the input list.
        index: usize,
    },
    /// An atomic batch.
    Batch {
        /// 1-based number of the batch within this call.
        number: usize,
        /// Its `Nats-Batch-Id`.
        id: String,
        /// Index into the input of its first message.
        first: usize,
        /// Number of messages in it.
        count: usize,
    },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Message { index } => write!(f, "message {index}"),
            Position::Batch {
                number,
                id,
                first,
                count,
            } => write!(
                f,
                "batch {number} (id {id}, messages {first}..{})",
                first + count
            ),
        }
    }
}

/// Why [`Publisher::publish_all`] failed.
///
/// Every variant but `Invalid` carries `stored`: how many leading messages of
/// the input are known to be on the stream (whole batches before the failed
/// one; in pipelined mode, acknowledged messages before the first one not
/// acknowledged). Messages after those may or may not be stored: after a
/// `Timeout` or `Connection` error the failed batch may have been committed
/// with its ack lost, and pipelined messages after the failed one may have
/// been stored. Republish from `stored` on and rely on the consumer's
/// de-duplication (the hub's `event_id` index).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Refused before anything was sent: nothing of this call is stored.
    #[error("message {index} refused before publishing, nothing was sent: {reason}")]
    Invalid {
        /// Index into the input.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No stream covers the subject (the server answered "no responders").
    #[error("{at}: no stream covers subject {subject:?} ({stored} leading messages stored)")]
    NoStream {
        /// Where.
        at: Position,
        /// The subject that has no stream.
        subject: String,
        /// Leading messages known stored.
        stored: usize,
    },
    /// The stream refused: an error PubAck. For a batch nothing of it is
    /// stored.
    #[error(
        "{at}: rejected by the server: {description} (code {code}, err_code {err_code}; {stored} leading messages stored)"
    )]
    Rejected {
        /// Where.
        at: Position,
        /// HTTP-like status code (e.g. 400, 503).
        code: u16,
        /// JetStream error code, see [`err_code`].
        err_code: u64,
        /// The server's text.
        description: String,
        /// Leading messages known stored.
        stored: usize,
    },
    /// No acknowledgement (or no room to send) within the ack timeout. The
    /// outcome of the message or batch is unknown.
    #[error("{at}: no acknowledgement within {waited:?} ({stored} leading messages stored)")]
    Timeout {
        /// Where.
        at: Position,
        /// How long we waited.
        waited: Duration,
        /// Leading messages known stored.
        stored: usize,
    },
    /// The connection failed while sending or waiting. The outcome of the
    /// message or batch is unknown.
    #[error("{at}: connection failed: {detail} ({stored} leading messages stored)")]
    Connection {
        /// Where.
        at: Position,
        /// What the client said.
        detail: String,
        /// Leading messages known stored.
        stored: usize,
    },
    /// The acknowledgement did not match what was sent (unreadable, wrong
    /// batch id or count). The outcome is unclear.
    #[error("{at}: unexpected acknowledgement: {detail} ({stored} leading messages stored)")]
    UnexpectedAck {
        /// Where.
        at: Position,
        /// What was wrong.
        detail: String,
        /// Leading messages known stored.
        stored: usize,
    },
}

impl PublishError {
    /// Leading messages of the input known to be stored (0 for `Invalid`).
    pub fn stored(&self) -> usize {
        match self {
            PublishError::Invalid { .. } => 0,
            PublishError::NoStream { stored, .. }
            | PublishError::Rejected { stored, .. }
            | PublishError::Timeout { stored, .. }
            | PublishError::Connection { stored, .. }
            | PublishError::UnexpectedAck { stored, .. } => *stored,
        }
    }

    /// The server's JetStream error code, for `Rejected`.
    pub fn err_code(&self) -> Option<u64> {
        match self {
            PublishError::Rejected { err_code, .. } => Some(*err_code),
            _ => None,
        }
    }

    /// Whether publishing the same messages again later may succeed without
    /// changing anything: timeouts, connection failures, and the server's
    /// "too many batches in flight" (429, [`err_code::BATCH_TOO_MANY_INFLIGHT`]).
    pub fn is_transient(&self) -> bool {
        match self {
            PublishError::Timeout { .. } | PublishError::Connection { .. } => true,
            // An atomic batch cut in two by a reconnect or a change of stream
            // leader is refused as incomplete and stores nothing: sending it
            // again is safe. (A batch incomplete for a lasting reason fails
            // again until the caller's retry window ends.)
            PublishError::Rejected { code, err_code, .. } => {
                *code == 429
                    || *err_code == err_code::BATCH_TOO_MANY_INFLIGHT
                    || *err_code == err_code::BATCH_INCOMPLETE
            }
            _ => false,
        }
    }
}

/// Publishes ordered lists of messages onto one stream and waits for the
/// stream's acknowledgements. Cheap to clone; calls may run concurrently
/// (each keeps its own order, not the order between calls).
#[derive(Clone, Debug)]
pub struct Publisher {
    client: Client,
    mode: Mode,
    max_batch: usize,
    max_in_flight: usize,
    ack_timeout: Duration,
    no_stream_grace: Duration,
}

impl Publisher {
    /// A publisher in `mode` with batches of [`MAX_ATOMIC_BATCH`],
    /// [`DEFAULT_MAX_IN_FLIGHT`] pipelined acks and [`DEFAULT_ACK_TIMEOUT`].
    pub fn new(client: Client, mode: Mode) -> Self {
        Publisher {
            client,
            mode,
            max_batch: MAX_ATOMIC_BATCH,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            no_stream_grace: DEFAULT_NO_STREAM_GRACE,
        }
    }

    /// A publisher in the mode [`mode_for_client`] picks.
    pub fn for_server(client: Client) -> Self {
        let mode = mode_for_client(&client);
        Publisher::new(client, mode)
    }

    /// Messages per atomic batch (at least 1). Above the server's
    /// `max_batch_size` (default [`MAX_ATOMIC_BATCH`]) commits are rejected.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Unacknowledged messages in [`Mode::Pipelined`], 1 to
    /// [`MAX_IN_FLIGHT_LIMIT`].
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight.clamp(1, MAX_IN_FLIGHT_LIMIT);
        self
    }

    /// How long an atomic batch is retried while no stream answers for its
    /// subject (a new stream's interest still spreading through a cluster).
    /// Zero: fail at once.
    pub fn with_no_stream_grace(mut self, grace: Duration) -> Self {
        self.no_stream_grace = grace;
        self
    }

    /// Wait for one acknowledgement (see [`DEFAULT_ACK_TIMEOUT`]).
    pub fn with_ack_timeout(mut self, ack_timeout: Duration) -> Self {
        self.ack_timeout = ack_timeout;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Messages per atomic batch.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Unacknowledged messages allowed in [`Mode::Pipelined`].
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Wait for one acknowledgement.
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Publishes `msgs` in order and returns when the stream has acknowledged
    /// all of them. The whole input is checked first (subjects, sizes,
    /// headers allowed in the mode): a [`PublishError::Invalid`] means nothing
    /// was sent.
    pub async fn publish_all(&self, msgs: Vec<OutMessage>) -> Result<PublishReport, PublishError> {
        if msgs.is_empty() {
            return Ok(PublishReport::default());
        }
        match self.mode {
            Mode::Atomic => self.publish_atomic(msgs).await,
            Mode::Pipelined => self.publish_pipelined(msgs).await,
        }
    }

    async fn publish_atomic(&self, msgs: Vec<OutMessage>) -> Result<PublishReport, PublishError> {
        let max_payload = self.client.server_info().max_payload;
        let total = msgs.len();

        // Plan every batch and check every message before sending anything.
        let mut batches: Vec<PlannedBatch> = Vec::with_capacity(total.div_ceil(self.max_batch));
        let mut msgs = msgs.into_iter().enumerate().peekable();
        while msgs.peek().is_some() {
            let first = batches.last().map_or(0, |b| b.first + b.messages.len());
            let count = self.max_batch.min(total - first);
            let id = uuid::Uuid::now_v7().to_string();
            let mut messages = Vec::with_capacity(count);
            for (seq, (index, msg)) in msgs.by_ref().take(count).enumerate() {
                check_subject(index, &msg.subject)?;
                let mut headers = msg.headers.unwrap_or_default();
                check_atomic_headers(index, &headers)?;
                headers.insert(HEADER_BATCH_ID, id.as_str());
                headers.insert(HEADER_BATCH_SEQUENCE, (seq + 1).to_string().as_str());
                if seq + 1 == count {
                    headers.insert(HEADER_BATCH_COMMIT, "1");
                }
                check_size(index, &headers, msg.payload.len(), max_payload)?;
                messages.push((msg.subject, headers, msg.payload));
            }
            batches.push(PlannedBatch {
                number: batches.len() + 1,
                id,
                first,
                messages,
            });
        }

        let mut report = PublishReport::default();
        for batch in batches {
            let started = std::time::Instant::now();
            let mut attempt = batch;
            let ack = loop {
                match self.send_batch(attempt.clone(), report.messages).await {
                    // Right after a stream is created, a cluster may take a
                    // moment to tell the server this client is on about the
                    // stream's subjects: "no responders", nothing stored.
                    // Retry under a fresh batch id for a short while.
                    Err(PublishError::NoStream { stored: 0, .. })
                        if started.elapsed() < self.no_stream_grace =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        attempt = attempt.with_new_id();
                    }
                    other => break other?,
                }
            };
            report.messages += ack.count;
            report.batches += 1;
            report.last_stream_seq = report.last_stream_seq.max(ack.seq);
            report.stream = Some(ack.stream);
        }
        Ok(report)
    }

    /// Sends one batch and waits for its commit ack.
    async fn send_batch(
        &self,
        batch: PlannedBatch,
        stored: usize,
    ) -> Result<BatchAck, PublishError> {
        let PlannedBatch {
            number,
            id,
            first,
            mut messages,
        } = batch;
        let count = messages.len();
        let at = Position::Batch {
            number,
            id: id.clone(),
            first,
            count,
        };
        let Some((commit_subject, commit_headers, commit_payload)) = messages.pop() else {
            unreachable!("planned batches are never empty");
        };

        // All but the last go without a reply subject: the server reports any
        // trouble with them at the commit.
        let send = async {
            for (subject, headers, payload) in messages {
                self.client
                    .publish_with_headers(subject, headers, payload)
                    .await?;
            }
            Ok::<(), async_nats::PublishError>(())
        };
        match tokio::time::timeout(self.ack_timeout, send).await {
            Err(_) => {
                return Err(PublishError::Timeout {
                    at,
                    waited: self.ack_timeout,
                    stored,
                })
            }
            Ok(Err(e)) => {
                return Err(PublishError::Connection {
                    at,
                    detail: e.to_string(),
                    stored,
                })
            }
            Ok(Ok(())) => {}
        }

        let request = Request::new()
            .headers(commit_headers)
            .payload(commit_payload)
            .timeout(Some(self.ack_timeout));
        let reply = match self
            .client
            .send_request(commit_subject.clone(), request)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                use async_nats::RequestErrorKind as K;
                return Err(match e.kind() {
                    K::NoResponders => PublishError::NoStream {
                        at,
                        subject: commit_subject,
                        stored,
                    },
                    K::TimedOut => PublishError::Timeout {
                        at,
                        waited: self.ack_timeout,
                        stored,
                    },
                    _ => PublishError::Connection {
                        at,
                        detail: e.to_string(),
                        stored,
                    },
                });
            }
        };

        let ack = match parse_ack(&reply.payload) {
            Ok(Ack::Stored(ack)) => ack,
            Ok(Ack::Error(err)) => {
                tracing::warn!(batch = %at, code = err.code, err_code = err.err_code,
                    description = %err.description, "atomic batch rejected");
                return Err(PublishError::Rejected {
                    at,
                    code: err.code,
                    err_code: err.err_code,
                    description: err.description,
                    stored,
                });
            }
            Err(detail) => return Err(PublishError::UnexpectedAck { at, detail, stored }),
        };
        if ack.batch.as_deref() != Some(id.as_str()) || ack.count != Some(count as u64) {
            return Err(PublishError::UnexpectedAck {
                detail: format!(
                    "ack names batch {:?} with {:?} messages, expected {id} with {count}",
                    ack.batch, ack.count
                ),
                at,
                stored,
            });
        }
        tracing::debug!(batch = %at, stream = %ack.stream, seq = ack.seq, "atomic batch committed");
        Ok(BatchAck {
            stream: ack.stream,
            seq: ack.seq,
            count,
        })
    }

    async fn publish_pipelined(
        &self,
        msgs: Vec<OutMessage>,
    ) -> Result<PublishReport, PublishError> {
        let max_payload = self.client.server_info().max_payload;
        for (index, msg) in msgs.iter().enumerate() {
            check_subject(index, &msg.subject)?;
            if let Some(headers) = &msg.headers {
                check_pipelined_headers(index, headers)?;
                check_size(index, headers, msg.payload.len(), max_payload)?;
            } else if msg.payload.len() > max_payload {
                return Err(too_large(index, msg.payload.len(), max_payload));
            }
        }

        // One wildcard inbox for this call; message i asks for its ack on
        // `<inbox>.i`. Sends happen in order, acks are matched by index.
        let inbox = self.client.new_inbox();
        let sub = self
            .client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| PublishError::Connection {
                at: Position::Message { index: 0 },
                detail: e.to_string(),
                stored: 0,
            })?;
        let mut acks = AckTracker {
            sub,
            seqs: vec![None; msgs.len()],
            subjects: msgs.iter().map(|m| m.subject.clone()).collect(),
            in_flight: 0,
            report: PublishReport::default(),
            ack_timeout: self.ack_timeout,
        };

        for (index, msg) in msgs.into_iter().enumerate() {
            while acks.in_flight >= self.max_in_flight {
                acks.receive_one().await?;
            }
            let reply = format!("{inbox}.{index}");
            let send = async {
                match msg.headers {
                    Some(headers) => {
                        self.client
                            .publish_with_reply_and_headers(
                                msg.subject,
                                reply,
                                headers,
                                msg.payload,
                            )
                            .await
                    }
                    None => {
                        self.client
                            .publish_with_reply(msg.subject, reply, msg.payload)
                            .await
                    }
                }
            };
            match tokio::time::timeout(self.ack_timeout, send).await {
                Err(_) => {
                    return Err(PublishError::Timeout {
                        at: Position::Message { index },
                        waited: self.ack_timeout,
                        stored: acks.stored_prefix(),
                    })
                }
                Ok(Err(e)) => {
                    return Err(PublishError::Connection {
                        at: Position::Message { index },
                        detail: e.to_string(),
                        stored: acks.stored_prefix(),
                    })
                }
                Ok(Ok(())) => acks.in_flight += 1,
            }
        }
        while acks.in_flight > 0 {
            acks.receive_one().await?;
        }
        let mut report = acks.report;
        report.messages = acks.seqs.len();
        Ok(report)
    }
}

#[derive(Clone)]
struct PlannedBatch {
    number: usize,
    id: String,
    first: usize,
    messages: Vec<(String, HeaderMap, Bytes)>,
}

impl PlannedBatch {
    /// The same messages under a new batch id (a retry must not continue
    /// a batch the server may have started).
    fn with_new_id(mut self) -> Self {
        self.id = uuid::Uuid::now_v7().to_string();
        for (_, headers, _) in &mut self.messages {
            headers.insert(HEADER_BATCH_ID, self.id.as_str());
        }
        self
    }
}

/// How long a batch is retried, by default, while no stream answers for its
/// subject.
pub const DEFAULT_NO_STREAM_GRACE: Duration = Duration::from_secs(5);

struct BatchAck {
    stream: String,
    seq: u64,
    count: usize,
}

/// Acks of one pipelined call.
struct AckTracker {
    sub: Subscriber,
    /// Stream sequence per input message, once acknowledged.
    seqs: Vec<Option<u64>>,
    subjects: Vec<String>,
    in_flight: usize,
    report: PublishReport,
    ack_timeout: Duration,
}

impl AckTracker {
    /// Number of leading messages acknowledged.
    fn stored_prefix(&self) -> usize {
        self.seqs
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.seqs.len())
    }

    /// Waits for one ack of this call and records it.
    async fn receive_one(&mut self) -> Result<(), PublishError> {
        loop {
            let msg = match tokio::time::timeout(self.ack_timeout, self.sub.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => {
                    return Err(PublishError::Connection {
                        at: Position::Message {
                            index: self.stored_prefix(),
                        },
                        detail: "ack subscription closed".to_string(),
                        stored: self.stored_prefix(),
                    })
                }
                Err(_) => {
                    return Err(PublishError::Timeout {
                        at: Position::Message {
                            index: self.stored_prefix(),
                        },
                        waited: self.ack_timeout,
                        stored: self.stored_prefix(),
                    })
                }
            };
            let Some(index) = msg
                .subject
                .rsplit('.')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&i| i < self.seqs.len() && self.seqs[i].is_none())
            else {
                continue; // not ours, or a repeat
            };
            let at = Position::Message { index };
            if msg.status == Some(StatusCode::NO_RESPONDERS) {
                return Err(PublishError::NoStream {
                    at,
                    subject: self.subjects[index].clone(),
                    stored: self.stored_prefix(),
                });
            }
            match parse_ack(&msg.payload) {
                Ok(Ack::Stored(ack)) => {
                    self.seqs[index] = Some(ack.seq);
                    self.in_flight -= 1;
                    if ack.duplicate {
                        self.report.duplicates += 1;
                    }
                    self.report.last_stream_seq = self.report.last_stream_seq.max(ack.seq);
                    if self.report.stream.as_deref() != Some(ack.stream.as_str()) {
                        self.report.stream = Some(ack.stream);
                    }
                    return Ok(());
                }
                Ok(Ack::Error(err)) => {
                    return Err(PublishError::Rejected {
                        at,
                        code: err.code,
                        err_code: err.err_code,
                        description: err.description,
                        stored: self.stored_prefix(),
                    })
                }
                Err(detail) => {
                    return Err(PublishError::UnexpectedAck {
                        at,
                        detail,
                        stored: self.stored_prefix(),
                    })
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct AckBody {
    #[serde(default)]
    error: Option<ApiErrorBody>,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    batch: Option<String>,
    #[serde(default)]
    count: Option<u64>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

enum Ack {
    Stored(AckBody),
    Error(ApiErrorBody),
}

fn parse_ack(payload: &[u8]) -> Result<Ack, String> {
    if payload.is_empty() {
        return Err("empty reply where a PubAck was expected".to_string());
    }
    let mut body: AckBody = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "unreadable PubAck ({e}): {}",
            String::from_utf8_lossy(&payload[..payload.len().min(200)])
        )
    })?;
    match body.error.take() {
        Some(err) => Ok(Ack::Error(err)),
        None if body.stream.is_empty() || body.seq == 0 => Err(format!(
            "PubAck without stream or sequence: {}",
            String::from_utf8_lossy(&payload[..payload.len().min(200)])
        )),
        None => Ok(Ack::Stored(body)),
    }
}

fn check_subject(index: usize, subject: &str) -> Result<(), PublishError> {
    let bad = subject.is_empty()
        || subject.chars().any(char::is_whitespace)
        || subject
            .split('.')
            .any(|token| token.is_empty() || token == "*" || token == ">");
    if bad {
        return Err(PublishError::Invalid {
            index,
            reason: format!("{subject:?} is not a valid publish subject"),
        });
    }
    Ok(())
}

fn check_atomic_headers(index: usize, headers: &HeaderMap) -> Result<(), PublishError> {
    for (name, _) in headers.iter() {
        let name: &str = name.as_ref();
        let reason = if name.eq_ignore_ascii_case(HEADER_MSG_ID) {
            "Nats-Msg-Id is not allowed in an atomic batch (a repeat rejects the whole batch \
             instead of being skipped); de-duplicate by the payload's event id, or publish \
             in pipelined mode"
        } else if name.eq_ignore_ascii_case(HEADER_EXPECTED_LAST_MSG_ID) {
            "Nats-Expected-Last-Msg-Id is not supported in an atomic batch"
        } else if is_batch_header(name) {
            "Nats-Batch-* headers are set by the publisher"
        } else {
            continue;
        };
        return Err(PublishError::Invalid {
            index,
            reason: reason.to_string(),
        });
    }
    Ok(())
}

fn check_pipelined_headers(index: usize, headers: &HeaderMap) -> Result<(), PublishError> {
    if headers
        .iter()
        .any(|(name, _)| is_batch_header(name.as_ref()))
    {
        return Err(PublishError::Invalid {
            index,
            reason: "Nats-Batch-* headers would start an atomic batch; use Mode::Atomic"
                .to_string(),
        });
    }
    Ok(())
}

fn is_batch_header(name: &str) -> bool {
    name.len() >= 11 && name[..11].eq_ignore_ascii_case("Nats-Batch-")
}

/// Headers plus payload against the server's `max_payload`, counted as the
/// client puts them on the wire (`NATS/1.0\r\n`, `name: value\r\n` each,
/// `\r\n`).
fn check_size(
    index: usize,
    headers: &HeaderMap,
    payload_len: usize,
    max_payload: usize,
) -> Result<(), PublishError> {
    let mut size = payload_len;
    if !headers.is_empty() {
        size += b"NATS/1.0\r\n\r\n".len();
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            for value in values {
                size += name.len() + 4 + value.as_str().len();
            }
        }
    }
    if size > max_payload {
        return Err(too_large(index, size, max_payload));
    }
    Ok(())
}

fn too_large(index: usize, size: usize, max_payload: usize) -> PublishError {
    PublishError::Invalid {
        index,
        reason: format!("{size} bytes with headers exceed the server's max_payload {max_payload}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_version() {
        assert_eq!(mode_for_server("2.15.1"), Mode::Atomic);
        assert_eq!(mode_for_server("2.12.0"), Mode::Atomic);
        assert_eq!(mode_for_server("v2.12.0-RC.3"), Mode::Atomic);
        assert_eq!(mode_for_server("3.0.0"), Mode::Atomic);
        assert_eq!(mode_for_server("2.11.9"), Mode::Pipelined);
        assert_eq!(mode_for_server("2.9.10"), Mode::Pipelined);
        assert_eq!(mode_for_server(""), Mode::Pipelined);
        assert_eq!(mode_for_server("garbage"), Mode::Pipelined);
    }

    #[test]
    fn atomic_headers_refused() {
        let mut h = HeaderMap::new();
        h.insert("Custom", "x");
        assert!(check_atomic_headers(0, &h).is_ok());
        h.insert("nats-msg-id", "x");
        let err = check_atomic_headers(3, &h).unwrap_err();
        assert!(matches!(err, PublishError::Invalid { index: 3, .. }));
        assert!(err.to_string().contains("Nats-Msg-Id"), "{err}");

        let mut h = HeaderMap::new();
        h.insert("Nats-Batch-Id", "x");
        assert!(check_atomic_headers(0, &h).is_err());
        assert!(check_pipelined_headers(0, &h).is_err());
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", "x");
        assert!(check_pipelined_headers(0, &h).is_ok());
    }

    #[test]
    fn subjects_checked() {
        assert!(check_subject(0, "mdhub.in.crm").is_ok());
        for bad in ["", "a b", "a..b", ".a", "a.", "a.*", "a.>"] {
            assert!(check_subject(0, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn size_counts_headers_like_the_wire() {
        let mut h = HeaderMap::new();
        h.insert("Key", "value");
        // "NATS/1.0\r\n" + "Key: value\r\n" + "\r\n" = 10 + 12 + 2
        assert!(check_size(0, &h, 10, 34).is_ok());
        assert!(check_size(0, &h, 11, 34).is_err());
    }

    #[test]
    fn acks_parse() {
        let ok = br#"{"stream":"S","seq":20,"batch":"b","count":10}"#;
        match parse_ack(ok).unwrap() {
            Ack::Stored(a) => {
                assert_eq!((a.stream.as_str(), a.seq, a.count), ("S", 20, Some(10)));
                assert_eq!(a.batch.as_deref(), Some("b"));
            }
            Ack::Error(_) => panic!("not an error"),
        }
        let err = br#"{"error":{"code":400,"err_code":10199,"description":"atomic publish batch is too large: 1000"},"stream":"EX","seq":0}"#;
        match parse_ack(err).unwrap() {
            Ack::Error(e) => assert_eq!((e.code, e.err_code), (400, 10199)),
            Ack::Stored(_) => panic!("is an error"),
        }
        assert!(parse_ack(b"").is_err());
        assert!(parse_ack(b"{}").is_err());
    }
}
