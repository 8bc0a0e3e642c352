//! The pipeline core: validate → append to the log → derive. It owns the log
//! and the derived state and knows nothing of NATS or HTTP; the bus adapters
//! (`serve`, `memory_bus`) feed it batches and publish what it returns.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use mdhub_schema::validate::Catalog;
use mdhub_schema::{validate_event, Limits, Op, Rejection};
use tracing::{info, warn};

use crate::entry::{Encoded, LogPayload};
use crate::log::{Appended, EventLog, LogError};
use crate::state::{cleanse_event, Outbound, Rules, State};

/// Log sequence up to which outbound messages are acknowledged by the bus.
const PUBLISHED_SEQ: &str = "outbound_published_seq";

/// One message as received from the bus.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub subject: String,
    pub payload: Bytes,
}

/// A batch after validation.
#[derive(Debug, Default)]
pub struct Validated {
    pub valid: Vec<Encoded>,
    /// Index into the batch, and why it was refused.
    pub rejected: Vec<(usize, Rejection)>,
}

#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// New log entries.
    pub appended: u64,
    /// Events already in the log (a second copy, a redelivery).
    pub duplicates: u64,
    /// Index into the batch, and why it was refused.
    pub rejected: Vec<(usize, Rejection)>,
    pub conflicts: u64,
    /// What to publish, in order, before acknowledging the batch.
    pub outbound: Vec<Outbound>,
    /// Last log sequence after this batch.
    pub last_seq: u64,
}

pub struct Hub {
    log: EventLog,
    state: State,
    limits: Limits,
    health: Health,
}

/// Whether the hub derives new entries. A hub that failed to derive an
/// entry (a bug) stays up in `Degraded`: it serves reads, refuses steward
/// actions and consumes nothing more until a fixed binary starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Ok,
    Degraded {
        /// The log entry that could not be derived.
        seq: u64,
        /// Why, for operators (no customer values).
        error: String,
    },
}

impl Health {
    pub fn is_degraded(&self) -> bool {
        matches!(self, Health::Degraded { .. })
    }
}

impl Hub {
    /// Opens (or creates) the hub's store in `dir`, checks the hash chain and
    /// derives the state by replaying the log. Returns the hub and the
    /// outbound messages of entries whose publication was not confirmed
    /// before the last stop: publish them again (same ids, same content).
    pub fn open(
        dir: &Path,
        rules: Arc<Rules>,
        limits: Limits,
    ) -> Result<(Hub, Vec<Outbound>), LogError> {
        let log = EventLog::open(dir)?;
        let entries = log.verify()?;
        let published = log.marker(PUBLISHED_SEQ).get()?;
        let (state, pending) = derive(&log, rules, published)?;
        info!(
            entries,
            golden_records = state.golden_count(),
            unpublished = pending.len(),
            "hub state rebuilt from the log"
        );
        metrics::gauge!("mdhub_log_length").set(log.last_seq() as f64);
        metrics::gauge!("mdhub_golden_records").set(state.golden_count() as f64);
        Ok((
            Hub {
                log,
                state,
                limits,
                health: Health::Ok,
            },
            pending,
        ))
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Stops derivation at log entry `seq`, which failed with `error`: the
    /// hub keeps serving what it has derived and consumes nothing more.
    pub fn mark_degraded(&mut self, seq: u64, error: String) {
        tracing::error!(seq, %error, "derivation failed: the hub is degraded and stops consuming at this entry; reads go on, steward actions are refused until a fixed binary starts");
        metrics::gauge!("mdhub_degraded").set(1.0);
        metrics::gauge!("mdhub_degraded_seq").set(seq as f64);
        self.health = Health::Degraded { seq, error };
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Validates, appends and derives one batch without input positions
    /// (the in-process bus). See `validate` and `commit`.
    pub fn ingest(&mut self, batch: &[Inbound]) -> Result<IngestOutcome, LogError> {
        let validated = self.validate(batch);
        self.commit(validated, None)
    }

    /// Checks every message of a batch. Refused ones come back with their
    /// reason, to be dead-lettered before the batch is committed.
    pub fn validate(&self, batch: &[Inbound]) -> Validated {
        self.validator().validate(batch)
    }

    /// What validates input, usable without holding the hub (validation
    /// of the next batch runs while this one commits).
    pub fn validator(&self) -> Validator {
        Validator {
            rules: Arc::clone(self.state.rules_arc()),
            limits: self.limits,
        }
    }

    /// Appends the valid events with the input `position` they were read up
    /// to, flushes, and derives. The batch is durable when this returns: the
    /// caller may then publish the outbound messages and acknowledge the
    /// input.
    pub fn commit(
        &mut self,
        validated: Validated,
        position: Option<u64>,
    ) -> Result<IngestOutcome, LogError> {
        let mut outcome = IngestOutcome {
            rejected: validated.rejected,
            ..Default::default()
        };
        let mut valid = validated.valid;
        let (prepared, appended, tail) = self.log.prepare_append(&mut valid, position)?;
        // Derivation needs no durability, only publishing does: derive while
        // another thread writes the batch and waits for the fsync, and
        // return once both are done.
        let writer = self.log.writer();
        let state = &mut self.state;
        let flushed = std::thread::scope(|scope| {
            let flushing = scope.spawn(move || writer.write_durably(prepared));
            for (entry, result) in valid.into_iter().zip(appended) {
                match result {
                    Appended::New(seq) => {
                        let applied = state.apply_cleansed(seq, &entry.payload, entry.cleansed);
                        outcome.appended += 1;
                        outcome.conflicts += applied.conflicts as u64;
                        outcome.outbound.extend(applied.outbound);
                    }
                    Appended::Duplicate(_) => outcome.duplicates += 1,
                }
            }
            flushing.join().expect("the flush thread does not panic")
        });
        // The state now runs ahead of a log that is not durable: the caller
        // must stop (and rebuild from the log on restart), never publish.
        flushed?;
        self.log.advance(tail);
        outcome.last_seq = self.log.last_seq();
        metrics::counter!("mdhub_events_ingested_total").increment(outcome.appended);
        metrics::counter!("mdhub_events_duplicate_total").increment(outcome.duplicates);
        metrics::counter!("mdhub_conflicts_total").increment(outcome.conflicts);
        metrics::gauge!("mdhub_log_length").set(outcome.last_seq as f64);
        metrics::gauge!("mdhub_golden_records").set(self.state.golden_count() as f64);
        Ok(outcome)
    }

    /// Where the bus adapter records that every outbound message up to a
    /// log entry is acknowledged by the bus (without taking the hub's lock).
    /// Made durable with the next flush; if it is lost, the same messages
    /// are published again after a restart.
    pub fn published_marker(&self) -> PublishedMarker {
        PublishedMarker(self.log.marker(PUBLISHED_SEQ))
    }
}

/// Validates input against the model and limits the hub runs with.
#[derive(Clone)]
pub struct Validator {
    rules: Arc<Rules>,
    limits: Limits,
}

impl Validator {
    /// Checks every message of a batch and encodes the valid ones for the
    /// log. Refused ones come back with their reason.
    pub fn validate(&self, batch: &[Inbound]) -> Validated {
        let rules = &self.rules;
        let known = |s: &str| rules.systems.contains_key(s);
        let catalog = Catalog {
            models: &rules.models,
            known_system: &known,
        };
        let mut out = Validated::default();
        for (i, msg) in batch.iter().enumerate() {
            let result = if is_steward_subject(&msg.subject) {
                crate::steward::parse(&msg.payload, |e| rules.models.contains_key(e))
                    .map(LogPayload::Steward)
            } else {
                validate_event(&msg.payload, &msg.subject, &catalog, self.limits)
                    .map(LogPayload::Change)
            };
            match result {
                Ok(payload) => {
                    let mut encoded = Encoded::new(payload);
                    if let LogPayload::Change(e) = &encoded.payload {
                        if e.op == Op::Upsert {
                            encoded.cleansed = cleanse_event(rules, e);
                        }
                    }
                    out.valid.push(encoded)
                }
                Err(rejection) => {
                    // Codes and ids only: rejection messages may quote
                    // customer values, which stay out of logs.
                    warn!(code = rejection.code, system = ?rejection.system, event_id = ?rejection.event_id,
                          record_id = ?rejection.record_id, field = ?rejection.field, subject = %msg.subject,
                          "event rejected to the DLQ");
                    metrics::counter!("mdhub_events_rejected_total", "code" => rejection.code)
                        .increment(1);
                    out.rejected.push((i, rejection));
                }
            }
        }
        out
    }
}

/// `mdhub.in.steward.<entity>`: a steward action, not a change event.
fn is_steward_subject(subject: &str) -> bool {
    subject
        .strip_prefix("mdhub.in.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(system, _)| system == crate::steward::STEWARD_SYSTEM)
}

/// Copies the log of `from` into a fresh store at `into` and derives the
/// state there from nothing: what an auditor does to check the state hash.
/// Returns the number of entries and the rebuilt state hash.
pub fn rebuild(from: &Path, into: &Path, rules: Arc<Rules>) -> Result<(u64, String), LogError> {
    let source = EventLog::open(from)?;
    source.verify()?;
    let mut target = EventLog::open(into)?;
    let mut chunk = Vec::with_capacity(1000);
    for entry in source.iter_from(1) {
        chunk.push(Encoded::new(entry?.payload));
        if chunk.len() == 1000 {
            target.append(&mut chunk, None)?;
            chunk.clear();
        }
    }
    target.append(&mut chunk, None)?;
    target.flush()?;
    if target.last_hash() != source.last_hash() {
        return Err(LogError::Damaged {
            seq: target.last_seq(),
            reason: "the copied chain ends in another hash than the original".to_string(),
        });
    }
    target.verify()?;
    let (state, _) = derive(&target, rules, u64::MAX)?;
    Ok((target.last_seq(), state.state_hash()))
}

/// The state derived from the log in `data_dir`, for reports (the hub must
/// not be running on it: sled locks its directory).
pub fn state_of(data_dir: &Path, rules: Arc<Rules>) -> Result<State, LogError> {
    let log = EventLog::open(data_dir)?;
    Ok(derive(&log, rules, u64::MAX)?.0)
}

/// Derives the state from the whole log. Also returns the outbound messages
/// of entries after `published`.
fn derive(
    log: &EventLog,
    rules: Arc<Rules>,
    published: u64,
) -> Result<(State, Vec<Outbound>), LogError> {
    let mut state = State::new(rules);
    let mut pending = Vec::new();
    for entry in log.iter_from(1) {
        let entry = entry?;
        let applied = state.apply(entry.seq, &entry.payload);
        if entry.seq > published {
            pending.extend(applied.outbound);
        }
    }
    Ok((state, pending))
}

/// Records how far outbound publication has got.
#[derive(Clone)]
pub struct PublishedMarker(crate::log::Marker);

impl PublishedMarker {
    /// Every outbound message up to log entry `seq` is acknowledged;
    /// `messages` were published since the last mark.
    pub fn mark(&self, seq: u64, messages: usize) -> Result<(), LogError> {
        metrics::counter!("mdhub_updates_out_total").increment(messages as u64);
        self.0.set(seq)
    }
}

/// The hub as shared between the ingest loop (writer, one batch at a time)
/// and the HTTP API (readers).
pub type SharedHub = Arc<std::sync::RwLock<Hub>>;

impl Hub {
    /// Log sequence up to which outbound messages are confirmed published.
    pub fn published_seq(&self) -> Result<u64, LogError> {
        self.log.marker(PUBLISHED_SEQ).get()
    }
}
