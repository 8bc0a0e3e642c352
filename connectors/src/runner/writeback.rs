//! The write-back loop: golden updates for this system from its durable
//! consumer on `MDHUB_OUT`, mapped to the system's columns and applied in
//! one system transaction per batch; each message is acknowledged only
//! after its write committed (or was rejected and logged).
//!
//! An insert (an update without a record of this system) is reported back
//! as a change event for the new record, so the hub links it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use mdhub_schema::{ChangeEvent, GoldenUpdate, Op, UpdateOp, SCHEMA_VERSION};
use time::OffsetDateTime;
use tracing::{debug, info};

use super::backoff::Backoff;
use super::echo::Fields;
use super::event_id;
use super::metrics::ConnectorMetrics as M;
use super::rejects::Direction;
use super::{publish_events, RunError, Shared, Stop};
use crate::contract::{Applied, Connector, ConnectorError, Row, Sink, Write, WriteOp};

/// The stream the hub publishes golden updates on.
pub const OUT_STREAM: &str = "MDHUB_OUT";

/// Long enough that a batch held while the system is away is not delivered
/// again meanwhile; progress acks reset it on every retry.
const ACK_WAIT: Duration = Duration::from_secs(300);

pub(super) async fn run<C: Connector>(connector: &C, shared: &Shared) -> Result<(), RunError> {
    let mut backoff = Backoff::default();
    let mut sink: Option<C::Sink> = None;
    if reconnect(connector, shared, &mut sink, &mut backoff, &[], None).await? == Stop::Now {
        return Ok(());
    }
    loop {
        let js = jetstream::new(shared.publisher.client().clone());
        let consumer = tokio::select! {
            _ = shared.shutdown.cancelled() => return Ok(()),
            r = consumer(&js, shared) => r,
        };
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                shared.away("write-back cannot open its consumer", &e);
                if shared.wait(&mut backoff).await == Stop::Now {
                    return Ok(());
                }
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(m) => m.ready_chunks(shared.max_write_batch),
            Err(e) => {
                shared.away("write-back cannot read its consumer", &e.to_string());
                if shared.wait(&mut backoff).await == Stop::Now {
                    return Ok(());
                }
                continue;
            }
        };
        info!(system = %shared.system, "write-back reading golden updates");
        loop {
            let chunk = tokio::select! {
                _ = shared.shutdown.cancelled() => return Ok(()),
                c = messages.next() => c,
            };
            let Some(chunk) = chunk else { break };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut failed = None;
            for m in chunk {
                match m {
                    Ok(msg) => batch.push(msg),
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            if !batch.is_empty() {
                match apply_batch(connector, shared, &mut sink, batch).await? {
                    Stop::Now => return Ok(()),
                    Stop::No => backoff.reset(),
                }
            }
            if let Some(e) = failed {
                shared.away("write-back lost its consumer", &e);
                if shared.wait(&mut backoff).await == Stop::Now {
                    return Ok(());
                }
                break;
            }
        }
    }
}

async fn consumer(
    js: &jetstream::Context,
    shared: &Shared,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let stream = js
        .get_stream(OUT_STREAM)
        .await
        .map_err(|e| format!("stream {OUT_STREAM}: {e}"))?;
    // Named after the system, filtered on its subjects: what the locked-down
    // broker config lets this connector create and read.
    stream
        .get_or_create_consumer(
            &shared.system,
            pull::Config {
                durable_name: Some(shared.system.clone()),
                filter_subject: format!("mdhub.out.{}.>", shared.system),
                ack_wait: ACK_WAIT,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {} on {OUT_STREAM}: {e}", shared.system))
}

async fn apply_batch<C: Connector>(
    connector: &C,
    shared: &Shared,
    sink: &mut Option<C::Sink>,
    msgs: Vec<jetstream::Message>,
) -> Result<Stop, RunError> {
    let updates: Vec<Option<GoldenUpdate>> = msgs.iter().map(|m| parse(shared, m)).collect();
    let mut backoff = Backoff::default();
    // Built again from the start after a reconnect: a fetch may have failed
    // half-way.
    let (writes, write_of) = loop {
        match build_writes(shared, sink, &updates).await {
            Ok(built) => break built,
            Err(e) => {
                if reconnect(connector, shared, sink, &mut backoff, &msgs, Some(&e)).await?
                    == Stop::Now
                {
                    return Ok(Stop::Now);
                }
            }
        }
    };
    // Writes to existing records, noted before they are applied so that
    // capture can tell edits before them from edits after (see `echo`).
    let to_existing: Vec<(&str, &[String])> = updates
        .iter()
        .zip(&write_of)
        .filter_map(|(u, i)| {
            Some((
                writes[(*i)?].record_id.as_deref()?,
                &u.as_ref()?.version[..],
            ))
        })
        .collect();
    let (results, writing) = if writes.is_empty() {
        (Vec::new(), None)
    } else {
        loop {
            // Until the writes are noted, capture of a source that reads
            // the current state waits (see `Shared::writes_in_flight`).
            let writing = shared.writes_in_flight.read().await;
            {
                let mut echoes = shared.echoes_lock();
                for (id, version) in &to_existing {
                    echoes.will_write(id, version);
                }
            }
            let applied = match sink.as_mut() {
                Some(s) => s.apply(&writes).await,
                None => Err(ConnectorError::Unavailable("not connected".into())),
            };
            if applied.is_err() {
                let mut echoes = shared.echoes_lock();
                for (id, version) in &to_existing {
                    echoes.write_failed(id, version);
                }
            }
            match applied {
                Ok(results) if results.len() == writes.len() => break (results, Some(writing)),
                Ok(results) => {
                    return Err(RunError::Sink(ConnectorError::Fatal(format!(
                        "the sink returned {} results for {} writes",
                        results.len(),
                        writes.len()
                    ))))
                }
                Err(ConnectorError::Unavailable(e)) => {
                    drop(writing);
                    if reconnect(connector, shared, sink, &mut backoff, &msgs, Some(&e)).await?
                        == Stop::Now
                    {
                        return Ok(Stop::Now);
                    }
                }
                Err(e) => return Err(RunError::Sink(e)),
            }
        }
    };
    let links = record_results(shared, &updates, &write_of, &writes, results);
    drop(writing);
    if publish_events(shared, links).await == Stop::Now {
        return Ok(Stop::Now);
    }
    for m in &msgs {
        if let Err(e) = m.ack().await {
            // Delivered again later: applying it twice writes the same values.
            debug!(system = %shared.system, "ack of a golden update failed: {e}");
        }
    }
    Ok(Stop::No)
}

/// The writes of a batch and, per update, the index of its write. Refused
/// updates are logged and write nothing; `Err` means the system went away.
async fn build_writes<S: Sink>(
    shared: &Shared,
    sink: &mut Option<S>,
    updates: &[Option<GoldenUpdate>],
) -> Result<(Vec<Write>, Vec<Option<usize>>), String> {
    let Some(sink) = sink.as_mut() else {
        return Err("not connected".into());
    };
    let mut writes = Vec::new();
    let mut write_of = Vec::with_capacity(updates.len());
    for update in updates {
        let Some(update) = update else {
            write_of.push(None);
            continue;
        };
        match build_write(shared, sink, update).await {
            Ok(Some(w)) => {
                write_of.push(Some(writes.len()));
                writes.push(w);
            }
            Ok(None) => write_of.push(None),
            Err(ConnectorError::Unavailable(e)) => return Err(e),
            Err(e) => {
                shared.reject(
                    Direction::WriteBack,
                    update.record_id.as_deref(),
                    Some(update.update_id),
                    &e.to_string(),
                );
                write_of.push(None);
            }
        }
    }
    Ok((writes, write_of))
}

/// Opens the sink, waiting out a system that is away; while it waits, the
/// broker is told that the held messages are still being worked on.
async fn reconnect<C: Connector>(
    connector: &C,
    shared: &Shared,
    sink: &mut Option<C::Sink>,
    backoff: &mut Backoff,
    held: &[jetstream::Message],
    error: Option<&str>,
) -> Result<Stop, RunError> {
    *sink = None;
    if let Some(e) = error {
        M::set(&shared.metrics.sink_up, 0);
        shared.away("write-back lost the system", e);
        if shared.wait(backoff).await == Stop::Now {
            return Ok(Stop::Now);
        }
    }
    loop {
        let opened = tokio::select! {
            _ = shared.shutdown.cancelled() => return Ok(Stop::Now),
            r = connector.open_sink() => r,
        };
        match opened {
            Ok(s) => {
                *sink = Some(s);
                M::set(&shared.metrics.sink_up, 1);
                info!(system = %shared.system, "write-back connected");
                return Ok(Stop::No);
            }
            Err(ConnectorError::Unavailable(e)) => {
                shared.away("write-back cannot reach the system", &e)
            }
            Err(e) => return Err(RunError::Sink(e)),
        }
        for m in held {
            let _ = m.ack_with(AckKind::Progress).await;
        }
        if shared.wait(backoff).await == Stop::Now {
            return Ok(Stop::Now);
        }
    }
}

fn parse(shared: &Shared, msg: &jetstream::Message) -> Option<GoldenUpdate> {
    match serde_json::from_slice::<GoldenUpdate>(&msg.payload) {
        Ok(u) if u.system == shared.system && u.entity == shared.entity => Some(u),
        Ok(u) => {
            debug!(system = %shared.system, "skipping an update for {}.{}", u.system, u.entity);
            None
        }
        Err(e) => {
            shared.reject(
                Direction::WriteBack,
                None,
                None,
                &format!("a message on {} is not a golden update: {e}", msg.subject),
            );
            None
        }
    }
}

/// The write for one update, `None` when it changes nothing the mapping
/// writes (only read-only fields, or a retire of a record never held).
async fn build_write<S: Sink>(
    shared: &Shared,
    sink: &mut S,
    update: &GoldenUpdate,
) -> Result<Option<Write>, ConnectorError> {
    let record_id = update.record_id.clone().or_else(|| {
        shared
            .inserts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_for(update.golden_id)
            .map(str::to_string)
    });
    if update.op == UpdateOp::Retire {
        return Ok(record_id.map(|id| Write {
            record_id: Some(id),
            op: WriteOp::Retire,
        }));
    }
    let writable = shared.mapping.writable_fields();
    let fields: Fields = update
        .fields
        .iter()
        .filter(|(k, _)| writable.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let row = match shared.mapping.to_system(&fields) {
        Ok(row) => row,
        Err(first) => {
            // A column written from several fields (a full name from given
            // and family name) needs the ones the update does not carry:
            // take them from the record as it is.
            let current = match &record_id {
                Some(id) => sink.fetch(id).await?,
                None => None,
            };
            let Some(current) = current else {
                return Err(mapping_error(update, &first));
            };
            let mut completed = shared
                .mapping
                .to_canonical(&current)
                .map_err(|e| mapping_error(update, &e))?;
            completed.retain(|k, _| writable.contains(k.as_str()));
            completed.extend(fields);
            shared
                .mapping
                .to_system(&completed)
                .map_err(|e| mapping_error(update, &e))?
        }
    };
    if row.is_empty() {
        if let Some(id) = &record_id {
            shared.echoes_lock().saw_version(id, &update.version);
        }
        return Ok(None);
    }
    Ok(Some(Write {
        record_id,
        op: WriteOp::Upsert(row),
    }))
}

fn mapping_error(update: &GoldenUpdate, errors: &[crate::mapping::FieldError]) -> ConnectorError {
    ConnectorError::Record {
        record_id: update.record_id.clone().unwrap_or_else(|| "(new)".into()),
        reason: errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Notes what was applied (echo images, versions, inserted records), logs
/// what was refused, and returns the change events that link inserted
/// records.
fn record_results(
    shared: &Shared,
    updates: &[Option<GoldenUpdate>],
    write_of: &[Option<usize>],
    writes: &[Write],
    results: Vec<Result<Applied, ConnectorError>>,
) -> Vec<ChangeEvent> {
    let mut links = Vec::new();
    // Synced once for the batch, before its updates are acknowledged.
    let mut inserted = Vec::new();
    let mut outcome: Vec<Option<Result<Applied, ConnectorError>>> =
        results.into_iter().map(Some).collect();
    for (update, i) in updates.iter().zip(write_of) {
        let (Some(update), Some(i)) = (update, *i) else {
            continue;
        };
        let Some(result) = outcome[i].take() else {
            continue;
        };
        let applied = match result {
            Ok(a) => a,
            Err(e) => {
                if let Some(id) = &writes[i].record_id {
                    shared.echoes_lock().write_failed(id, &update.version);
                }
                let (record_id, reason) = match e {
                    ConnectorError::Record { record_id, reason } => (Some(record_id), reason),
                    other => (update.record_id.clone(), other.to_string()),
                };
                shared.reject(
                    Direction::WriteBack,
                    record_id.as_deref(),
                    Some(update.update_id),
                    &reason,
                );
                continue;
            }
        };
        M::add(&shared.metrics.updates_applied, 1);
        let image: Option<Fields> = applied
            .image
            .as_ref()
            .and_then(|row: &Row| shared.mapping.to_canonical(row).ok());
        let mut echoes = shared.echoes_lock();
        if applied.unchanged {
            echoes.unchanged(&applied.record_id, &update.version);
        }
        match (&writes[i].op, &image) {
            (WriteOp::Retire, _) => echoes.retired(&applied.record_id, &update.version),
            (WriteOp::Upsert(_), Some(fields)) => {
                echoes.wrote(&applied.record_id, fields, &update.version)
            }
            (WriteOp::Upsert(_), None) => echoes.saw_version(&applied.record_id, &update.version),
        }
        drop(echoes);
        if writes[i].record_id.is_none() {
            inserted.push((update.golden_id, applied.record_id.clone()));
        }
        if update.record_id.is_none() && writes[i].op != WriteOp::Retire {
            links.push(link_event(shared, update, &applied.record_id, image));
        }
    }
    if !inserted.is_empty() {
        let added = shared
            .inserts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_all(&inserted);
        if let Err(e) = added {
            tracing::error!(
                system = %shared.system,
                "cannot record {} inserted records in the insert ledger: {e}",
                inserted.len()
            );
        }
    }
    links
}

/// The change event that tells the hub which record of this system now
/// holds the golden record. Its id depends only on the golden record and
/// the new key, so a repeat after a crash is stored once.
fn link_event(
    shared: &Shared,
    update: &GoldenUpdate,
    record_id: &str,
    image: Option<Fields>,
) -> ChangeEvent {
    let fields = image.unwrap_or_else(|| {
        update
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    });
    ChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: event_id::inserted(
            &shared.system,
            update.golden_id,
            record_id,
            OffsetDateTime::UNIX_EPOCH,
        ),
        system: shared.system.clone(),
        entity: shared.entity.clone(),
        record_id: record_id.to_string(),
        op: Op::Upsert,
        fields,
        observed_at: OffsetDateTime::now_utc(),
        base: Some(update.version.clone()),
        caused_by: Some(update.update_id),
    }
}
