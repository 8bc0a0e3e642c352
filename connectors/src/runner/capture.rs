//! The capture loop: open the source (from the saved cursor, or with a full
//! load), turn each captured transaction into change events, publish them
//! as one batch, then save the cursor and confirm it to the source. The
//! system or the broker being away is waited out with backoff; the source
//! is opened again from the saved cursor, so nothing is skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
use tokio::sync::{mpsc, watch};

use crate::contract::{CapturedTx, Connector, ConnectorError, Cursor, RowChange, Source};

/// Transactions the reader may hold ahead of publishing.
const READ_AHEAD: usize = 1_000;
/// Changes published together at most: the transactions read while the
/// previous group waited for its acknowledgement and cursor save.
const MAX_GROUP_CHANGES: usize = 5_000;

/// What the reader task hands on: a transaction, a rejected record, or the
/// end of reading (nothing more, or an error).
type Read = Result<Option<CapturedTx>, ConnectorError>;

/// A read with the count of write-back writes noted when it began (see
/// `echo`).
type Stamped = (Read, u64);

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
        let source = match opened {
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
        let writes = {
            let mut echoes = shared.echoes_lock();
            echoes.set_marks_own_writes(source.marks_own_writes());
            echoes.write_count()
        };
        info!(system = %shared.system, "change capture connected");
        let reader = Reader::spawn(source, writes);
        let ended = publish_loop(shared, reader, &mut bar, &mut backoff).await;
        match ended {
            Ended::Stop => return Ok(()),
            Ended::Done => {
                info!(system = %shared.system, "change capture: the source has nothing more");
                return Ok(());
            }
            Ended::Fatal(e) => return Err(RunError::Source(e)),
            Ended::Away(e) => {
                M::set(&shared.metrics.source_up, 0);
                shared.away("change capture lost the system", &e);
                if shared.wait(&mut backoff).await == Stop::Now {
                    return Ok(());
                }
            }
        }
    }
}

/// The source in a task of its own, reading ahead while the runner waits
/// for JetStream and the cursor save: under load, each publish carries
/// every transaction read meanwhile. Confirmed cursors reach the source
/// between two reads (`Source::next` need not be safe to cancel).
struct Reader {
    reads: mpsc::Receiver<Stamped>,
    /// The source reads the current state (it does not mark its own
    /// writes): see `Shared::writes_in_flight`.
    reads_state: bool,
    confirm: watch::Sender<Option<Cursor>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    fn spawn<S: Source + 'static>(mut source: S, writes: Arc<AtomicU64>) -> Self {
        let (send, reads) = mpsc::channel::<Stamped>(READ_AHEAD);
        let (confirm, mut confirmed) = watch::channel::<Option<Cursor>>(None);
        let reads_ahead = source.reads_ahead();
        let reads_state = !source.marks_own_writes();
        let task = tokio::spawn(async move {
            // A cursor handed out and not confirmed yet, for a source that
            // does not read ahead.
            let mut unconfirmed = false;
            // The writes noted when the read that fetched the next
            // transaction began.
            let mut began = 0;
            loop {
                if unconfirmed && confirmed.changed().await.is_err() {
                    return;
                }
                if confirmed.has_changed().unwrap_or(false) || unconfirmed {
                    unconfirmed = false;
                    let cursor = confirmed.borrow_and_update().clone();
                    if let Some(cursor) = cursor {
                        if let Err(e) = source.confirm(&cursor).await {
                            let _ = send.send((Err(e), 0)).await;
                            return;
                        }
                    }
                }
                if !source.has_buffered() {
                    began = writes.load(Ordering::SeqCst);
                }
                let read = source.next().await;
                if !reads_ahead {
                    unconfirmed = matches!(&read, Ok(Some(tx)) if tx.cursor.is_some());
                }
                let goes_on = matches!(read, Ok(Some(_)) | Err(ConnectorError::Record { .. }));
                if send.send((read, began)).await.is_err() || !goes_on {
                    return;
                }
            }
        });
        Reader {
            reads,
            reads_state,
            confirm,
            task,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a reader's stream ended.
enum Ended {
    Stop,
    Done,
    Away(String),
    Fatal(ConnectorError),
}

async fn publish_loop(
    shared: &Shared,
    mut reader: Reader,
    bar: &mut LoadBar,
    backoff: &mut Backoff,
) -> Ended {
    loop {
        let first = tokio::select! {
            _ = shared.shutdown.cancelled() => return Ended::Stop,
            r = reader.reads.recv() => r,
        };
        let Some(first) = first else {
            return Ended::Away("the change capture task ended".into());
        };
        let mut group = Vec::new();
        let mut changes = 0;
        let mut end = None;
        let mut next = Some(first);
        while let Some((read, began)) = next.take() {
            match read {
                Ok(Some(tx)) => {
                    changes += tx.changes.len();
                    group.push((tx, began));
                }
                Ok(None) => end = Some(Ended::Done),
                Err(ConnectorError::Record { record_id, reason }) => {
                    shared.reject(Direction::Capture, Some(&record_id), None, &reason);
                }
                Err(ConnectorError::Unavailable(e)) => end = Some(Ended::Away(e)),
                Err(e @ ConnectorError::Fatal(_)) => end = Some(Ended::Fatal(e)),
            }
            if end.is_none() && changes < MAX_GROUP_CHANGES {
                next = reader.reads.try_recv().ok();
            }
        }
        if !group.is_empty() {
            match publish_group(shared, &reader, group, bar).await {
                Ok(Stop::Now) => return Ended::Stop,
                Ok(Stop::No) => backoff.reset(),
                Err(e) => return Ended::Away(e),
            }
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// Publishes a group of transactions' events as one call (each transaction
/// stays in order and whole within its atomic batches up to their size),
/// then saves the last cursor and hands it to the source to confirm.
async fn publish_group(
    shared: &Shared,
    reader: &Reader,
    group: Vec<(CapturedTx, u64)>,
    bar: &mut LoadBar,
) -> Result<Stop, String> {
    let mut events = Vec::new();
    {
        // A read may have overlapped a write that is not noted yet.
        let _noted = match reader.reads_state {
            true => Some(shared.writes_in_flight.write().await),
            false => None,
        };
        for (tx, began) in &group {
            events.extend(events_of(shared, tx, *began));
        }
    }
    let group: Vec<CapturedTx> = group.into_iter().map(|(tx, _)| tx).collect();
    let published = events.len() as u64;
    if publish_events(shared, events).await == Stop::Now {
        return Ok(Stop::Now);
    }
    M::add(&shared.metrics.events_captured, published);
    if let Some(at) = group.iter().rev().find_map(|tx| tx.committed_at) {
        let lag = (OffsetDateTime::now_utc() - at).whole_milliseconds().max(0);
        M::set(
            &shared.metrics.lag_ms,
            u64::try_from(lag).unwrap_or(u64::MAX),
        );
    }
    if let Some(last) = group.last() {
        if let Some(progress) = last.load {
            M::set(&shared.metrics.load_rows, progress.done);
            bar.update(progress);
        }
        // A load's last slice may say so by its count.
        let loaded = last
            .load
            .is_none_or(|p| p.total.is_some_and(|t| p.done >= t));
        if loaded {
            bar.finish();
            M::set(&shared.metrics.load_done, 1);
        }
    }
    if let Some(cursor) = group.iter().rev().find_map(|tx| tx.cursor.as_ref()) {
        // Events are stored; without the cursor they are read again after a
        // restart and the hub keeps one copy by event id.
        shared
            .checkpoints
            .save(&shared.cursor_name, cursor)
            .map_err(|e| format!("saving the cursor: {e}"))?;
        let _ = reader.confirm.send(Some(cursor.clone()));
    }
    Ok(Stop::No)
}

/// The transaction's changes as change events: mapped, with echoes of the
/// connector's own writes dropped and `base` set. `read_began` stamps the
/// read that brought the transaction (see `echo`).
fn events_of(shared: &Shared, tx: &CapturedTx, read_began: u64) -> Vec<ChangeEvent> {
    let mut echoes = shared.echoes_lock();
    echoes.set_loading(tx.load.is_some());
    let mut events = Vec::new();
    for (index, change) in tx.changes.iter().enumerate() {
        // The connector's own write (each write of a batch leaves one row
        // change of its record): dropped, unless a real edit overtook it.
        let own_base = if tx.own_write {
            match echoes.own_captured(&change.record_id) {
                Some(version) => Some(version),
                None => {
                    M::add(&shared.metrics.echoes_suppressed, 1);
                    continue;
                }
            }
        } else {
            None
        };
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
        let verdict = match own_base {
            Some(version) => Verdict::Publish {
                base: Some(version),
            },
            None => echoes.captured(&change.record_id, image, read_began),
        };
        let base = match verdict {
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Fetches two transactions per read, as a poll fetches a page, and
    /// notes a write-back write after handing each out.
    struct TwoPerRead {
        writes: Arc<AtomicU64>,
        fetched: VecDeque<CapturedTx>,
        reads: u32,
    }

    fn tx() -> CapturedTx {
        CapturedTx {
            changes: Vec::new(),
            cursor: None,
            position: "p".to_string(),
            committed_at: None,
            own_write: false,
            load: None,
        }
    }

    impl Source for TwoPerRead {
        async fn next(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
            if self.fetched.is_empty() {
                if self.reads == 2 {
                    return Ok(None);
                }
                self.reads += 1;
                self.fetched.extend([tx(), tx()]);
            }
            let tx = self.fetched.pop_front();
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(tx)
        }

        async fn confirm(&mut self, _: &Cursor) -> Result<(), ConnectorError> {
            Ok(())
        }

        fn has_buffered(&self) -> bool {
            !self.fetched.is_empty()
        }
    }

    #[tokio::test]
    async fn a_transaction_fetched_by_an_earlier_read_keeps_that_reads_stamp() {
        let writes = Arc::new(AtomicU64::new(0));
        let source = TwoPerRead {
            writes: Arc::clone(&writes),
            fetched: VecDeque::new(),
            reads: 0,
        };
        let mut reader = Reader::spawn(source, writes);
        let mut stamps = Vec::new();
        while let Some((read, began)) = reader.reads.recv().await {
            if read.expect("reads").is_none() {
                break;
            }
            stamps.push(began);
        }
        // The second transaction of each read was fetched before the write
        // noted after the first was handed out.
        assert_eq!(stamps, vec![0, 0, 2, 2]);
    }
}
