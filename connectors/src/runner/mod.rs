//! The runner: what every connector does the same way around its
//! system-specific `Source` and `Sink` (crate::contract).
//!
//! Two loops run side by side until the shutdown signal:
//! - `capture`: captured transactions → mapped change events, echoes of
//!   the connector's own writes dropped, `base` set → one atomic batch per
//!   transaction → cursor saved → cursor confirmed to the source;
//! - `writeback`: golden updates from the system's durable consumer →
//!   system columns → one system transaction per batch → echo images and
//!   versions noted, inserted records reported back → acknowledged.
//!
//! Beside them: `echo` (what was last written per record), `inserts` (the
//! ledger that keeps a re-delivered insert from inserting twice), `rejects`
//! (the dead-letter file), `metrics`, `backoff`, `event_id`, `load_bar`.

mod backoff;
mod capture;
mod echo;
pub mod event_id;
mod inserts;
mod load_bar;
pub mod metrics;
pub mod rejects;
mod writeback;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use mdhub_schema::ChangeEvent;
use tokio_util::sync::CancellationToken;
use tracing::error;
use uuid::Uuid;

pub use backoff::Backoff;
pub use echo::{EchoStore, Verdict};
pub use writeback::OUT_STREAM;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::contract::{Connector, ConnectorError};
use crate::mapping::Mapping;
use crate::publish::{OutMessage, PublishError, Publisher};
use inserts::InsertLedger;
use metrics::ConnectorMetrics;
use rejects::{Direction, RejectLog};

/// What a connector runs with.
pub struct RunContext {
    /// The system's name, as in the hub's `[system.<name>]`.
    pub system: String,
    /// The entity it captures and receives (`customer`).
    pub entity: String,
    pub mapping: Mapping,
    /// Publishes onto `MDHUB_IN` (its client also reads `MDHUB_OUT`).
    pub publisher: Publisher,
    /// Where the capture cursor, the insert ledger and the reject file live.
    pub state_dir: PathBuf,
    pub metrics: Arc<ConnectorMetrics>,
    pub shutdown: CancellationToken,
    /// Apply golden updates to the system (off: capture only).
    pub write_back: bool,
    /// Golden updates applied in one system transaction at most.
    pub max_write_batch: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("change capture of {0}")]
    Source(ConnectorError),
    #[error("write-back: {0}")]
    Sink(ConnectorError),
    #[error("{0}")]
    Checkpoint(CheckpointError),
    #[error("state directory: {0}")]
    State(std::io::Error),
}

/// Whether a loop must stop because the shutdown signal came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Now,
    No,
}

/// What both loops share.
pub(crate) struct Shared {
    system: String,
    entity: String,
    cursor_name: String,
    mapping: Mapping,
    publisher: Publisher,
    checkpoints: CheckpointStore,
    metrics: Arc<ConnectorMetrics>,
    shutdown: CancellationToken,
    echoes: Mutex<EchoStore>,
    /// Held shared by the write-back from the start of a batch's writes
    /// until they are noted in `echoes`; taken alone by the capture of a
    /// source that reads the current state before it judges what it read.
    /// A read that overlapped a write may return the written image before
    /// the write is noted, and would be taken for an edit.
    writes_in_flight: tokio::sync::RwLock<()>,
    inserts: Mutex<InsertLedger>,
    rejects: RejectLog,
    max_write_batch: usize,
}

impl Shared {
    fn echoes_lock(&self) -> MutexGuard<'_, EchoStore> {
        self.echoes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reject(
        &self,
        direction: Direction,
        record_id: Option<&str>,
        update_id: Option<Uuid>,
        reason: &str,
    ) {
        ConnectorMetrics::add(&self.metrics.records_rejected, 1);
        self.rejects.reject(direction, record_id, update_id, reason);
    }

    /// Sleeps the backoff's next wait, or less if shutdown comes first.
    async fn wait(&self, backoff: &mut Backoff) -> Stop {
        tokio::select! {
            _ = self.shutdown.cancelled() => Stop::Now,
            _ = tokio::time::sleep(backoff.next_wait()) => Stop::No,
        }
    }
}

/// Runs a connector until `ctx.shutdown` is cancelled, or until an error
/// retrying cannot mend (a wrong configuration, a missing table).
pub async fn run<C: Connector>(connector: C, ctx: RunContext) -> Result<(), RunError> {
    std::fs::create_dir_all(&ctx.state_dir).map_err(RunError::State)?;
    let checkpoints = CheckpointStore::open(&ctx.state_dir).map_err(RunError::Checkpoint)?;
    let inserts = InsertLedger::open(&ctx.state_dir).map_err(RunError::State)?;
    let shared = Shared {
        cursor_name: format!("{}_{}_cursor", ctx.system, ctx.entity),
        rejects: RejectLog::new(&ctx.system, &ctx.state_dir),
        system: ctx.system,
        entity: ctx.entity,
        mapping: ctx.mapping,
        publisher: ctx.publisher,
        checkpoints,
        metrics: ctx.metrics,
        shutdown: ctx.shutdown,
        echoes: Mutex::new(EchoStore::default()),
        writes_in_flight: tokio::sync::RwLock::new(()),
        inserts: Mutex::new(inserts),
        max_write_batch: ctx.max_write_batch.max(1),
    };
    let capture = async {
        let r = capture::run(&connector, &shared).await;
        if r.is_err() {
            shared.shutdown.cancel();
        }
        r
    };
    let write_back = async {
        if !ctx.write_back {
            return Ok(());
        }
        let r = writeback::run(&connector, &shared).await;
        if r.is_err() {
            shared.shutdown.cancel();
        }
        r
    };
    let (c, w) = tokio::join!(capture, write_back);
    if let Err(e) = &c {
        error!(system = %shared.system, "connector stopped: {e}");
    }
    if let Err(e) = &w {
        error!(system = %shared.system, "connector stopped: {e}");
    }
    c.and(w)
}

/// Publishes change events onto `MDHUB_IN` as one batch, waiting out a
/// broker that is away. An event the publisher refuses before sending (too
/// large for the server) is rejected with its record key; the rest go.
async fn publish_events(shared: &Shared, mut events: Vec<ChangeEvent>) -> Stop {
    let mut backoff = Backoff::default();
    while !events.is_empty() {
        let msgs: Vec<OutMessage> = events
            .iter()
            .map(|e| {
                let subject = mdhub_schema::in_subject(&e.system, &e.entity);
                let payload = serde_json::to_vec(e).unwrap_or_default();
                OutMessage::new(subject, payload)
            })
            .collect();
        let stop = tokio::select! {
            _ = shared.shutdown.cancelled() => return Stop::Now,
            r = shared.publisher.publish_all(msgs) => r,
        };
        match stop {
            Ok(_) => return Stop::No,
            Err(PublishError::Invalid { index, reason }) if index < events.len() => {
                let e = events.remove(index);
                shared.reject(
                    Direction::Capture,
                    Some(&e.record_id),
                    None,
                    &format!("not publishable: {reason}"),
                );
            }
            Err(e) => {
                // Republishing what was stored is safe: the hub keeps one
                // copy per event id.
                shared.away("publishing to JetStream", &e.to_string());
                if shared.wait(&mut backoff).await == Stop::Now {
                    return Stop::Now;
                }
            }
        }
    }
    Stop::No
}
