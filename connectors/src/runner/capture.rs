//! The capture loop: open the source (from the saved cursor, or with a full
//! load), turn each captured transaction into change events, publish them
//! as one batch, then save the cursor and confirm it to the source. The
//! system or the broker being away is waited out with backoff; the source
//! is opened again from the saved cursor, so nothing is skipped.

use std::time::Duration;

use mdhub_schema::validate::MAX_RECORD_ID_BYTES;
use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
use time::OffsetDateTime;
use tracing::{info, warn};

use super::backoff::Backoff;
use super::echo::Verdict;
use super::event_id;
use super::load_bar::LoadBar;
use super::metrics::ConnectorMetrics as M;
use super::rejects::Direction;
use super::{publish_events, RunError, Shared, Stop};
use crate::contract::{CapturedTx, Connector, ConnectorError, Cursor, RowChange, Source};

pub(super) async fn run<C: Connector>(connector: &C, shared: &Shared) -> Result<(), RunError> {
    let mut backoff = Backoff::default();
    let mut bar = LoadBar::new(&shared.system);
    loop {
        let cursor: Option<Cursor> = shared
            .checkpoints
            .load(&shared.cursor_name)
            .map_err(RunError::Checkpoint)?;
        if cursor.is_some() {
            M::set(&shared.metrics.load_done, 1);
        }
        let opened = tokio::select! {
            _ = shared.shutdown.cancelled() => return Ok(()),
            r = connector.open_source(cursor) => r,
        };
        let mut source = match opened {
            Ok(s) => s,
            Err(ConnectorError::Unavailable(e)) => {
                shared.away("change capture cannot reach the system", &e);
                if shared.wait(&mut backoff).await == Stop::Now {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(RunError::Source(e)),
        };
        M::set(&shared.metrics.source_up, 1);
        info!(system = %shared.system, "change capture connected");
        loop {
            let next = tokio::select! {
                _ = shared.shutdown.cancelled() => return Ok(()),
                r = source.next() => r,
            };
            let result = match next {
                Ok(None) => {
                    info!(system = %shared.system, "change capture: the source has nothing more");
                    return Ok(());
                }
                Ok(Some(tx)) => handle(shared, &mut source, tx, &mut bar).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(Stop::Now) => return Ok(()),
                Ok(Stop::No) => backoff.reset(),
                Err(ConnectorError::Record { record_id, reason }) => {
                    shared.reject(Direction::Capture, Some(&record_id), None, &reason);
                }
                Err(ConnectorError::Unavailable(e)) => {
                    M::set(&shared.metrics.source_up, 0);
                    shared.away("change capture lost the system", &e);
                    if shared.wait(&mut backoff).await == Stop::Now {
                        return Ok(());
                    }
                    break;
                }
                Err(e @ ConnectorError::Fatal(_)) => return Err(RunError::Source(e)),
            }
        }
    }
}

/// Publishes one transaction's events, then moves the cursor.
async fn handle<S: Source>(
    shared: &Shared,
    source: &mut S,
    tx: CapturedTx,
    bar: &mut LoadBar,
) -> Result<Stop, ConnectorError> {
    let events = events_of(shared, &tx);
    let published = events.len() as u64;
    if publish_events(shared, events).await == Stop::Now {
        return Ok(Stop::Now);
    }
    M::add(&shared.metrics.events_captured, published);
    if let Some(at) = tx.committed_at {
        let lag = (OffsetDateTime::now_utc() - at).whole_milliseconds().max(0);
        M::set(
            &shared.metrics.lag_ms,
            u64::try_from(lag).unwrap_or(u64::MAX),
        );
    }
    match tx.load {
        Some(progress) => {
            M::set(&shared.metrics.load_rows, progress.done);
            bar.update(progress);
        }
        None => {
            bar.finish();
            M::set(&shared.metrics.load_done, 1);
        }
    }
    if let Some(cursor) = &tx.cursor {
        if let Err(e) = shared.checkpoints.save(&shared.cursor_name, cursor) {
            // The events are stored; without the cursor they are read again
            // after a restart and the hub keeps one copy by event id.
            return Err(ConnectorError::Unavailable(format!(
                "saving the cursor: {e}"
            )));
        }
        source.confirm(cursor).await?;
    }
    Ok(Stop::No)
}

/// The transaction's changes as change events: mapped, with echoes of the
/// connector's own writes dropped and `base` set.
fn events_of(shared: &Shared, tx: &CapturedTx) -> Vec<ChangeEvent> {
    if tx.own_write {
        M::add(&shared.metrics.echoes_suppressed, tx.changes.len() as u64);
        return Vec::new();
    }
    let mut events = Vec::with_capacity(tx.changes.len());
    let mut echoes = shared.echoes.lock().unwrap_or_else(|p| p.into_inner());
    for (index, change) in tx.changes.iter().enumerate() {
        if change.record_id.trim().is_empty() || change.record_id.len() > MAX_RECORD_ID_BYTES {
            shared.reject(
                Direction::Capture,
                Some(&change.record_id),
                None,
                &format!("the record key is empty or longer than {MAX_RECORD_ID_BYTES} bytes"),
            );
            continue;
        }
        let (op, fields) = match &change.change {
            RowChange::Delete => (Op::Delete, Default::default()),
            RowChange::Upsert(row) => match shared.mapping.to_canonical(row) {
                Ok(fields) => (Op::Upsert, fields),
                Err(errors) => {
                    let reason = errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    shared.reject(Direction::Capture, Some(&change.record_id), None, &reason);
                    continue;
                }
            },
        };
        let image = (op == Op::Upsert).then_some(&fields);
        let base = match echoes.captured(&change.record_id, image) {
            Verdict::Echo => {
                M::add(&shared.metrics.echoes_suppressed, 1);
                continue;
            }
            Verdict::Publish { base } => base,
        };
        let observed_at = change
            .observed_at
            .or(tx.committed_at)
            .unwrap_or_else(OffsetDateTime::now_utc);
        events.push(ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: event_id::captured(&shared.system, &tx.position, index, observed_at),
            system: shared.system.clone(),
            entity: shared.entity.clone(),
            record_id: change.record_id.clone(),
            op,
            fields,
            observed_at,
            base,
            caused_by: None,
        });
    }
    events
}

/// How often the load logs its progress when no terminal shows the bar.
pub(super) const LOAD_LOG_EVERY: Duration = Duration::from_secs(10);

impl Shared {
    pub(super) fn away(&self, what: &str, detail: &str) {
        M::add(&self.metrics.errors, 1);
        warn!(system = %self.system, "{what}: {detail}; retrying with backoff");
    }
}
