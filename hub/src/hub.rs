//! The pipeline core: validate → append to the log → derive. It owns the log
//! and the derived state and knows nothing of NATS or HTTP; the bus adapters
//! (`serve`, `memory_bus`) feed it batches and publish what it returns.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mdhub_schema::validate::check_observed_at;
use mdhub_schema::validate::Catalog;
use mdhub_schema::{validate_event, Limits, Op, Rejection};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::config::{StoreConfig, StoreKind};
use crate::entry::{Encoded, LogPayload};
use crate::log::{Appended, EventLog, LogError};
use crate::resolve::regroup;
use crate::resolve::trained::{TrainedModel, Trigger};
use crate::state::{cleanse_event, Checkpoint, Outbound, Rules, State, Unacked};
use crate::store::{Buffered, MemoryStorage, Storage, StoreError};

/// Log sequence up to which outbound messages are acknowledged by the bus.
const PUBLISHED_SEQ: &str = "outbound_published_seq";

/// One message as received from the bus.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub subject: String,
    pub payload: Bytes,
    /// When the bus stored it (a JetStream message's own timestamp, part of
    /// the stream): an event observed more than `MAX_CLOCK_AHEAD` later is
    /// refused. `None` where the bus keeps no such time.
    pub stored_at: Option<OffsetDateTime>,
}

impl Inbound {
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Inbound {
            subject: subject.into(),
            payload: payload.into(),
            stored_at: None,
        }
    }
}

/// A batch after validation.
#[derive(Debug, Default)]
pub struct Validated {
    pub valid: Vec<Encoded>,
    /// For each valid entry, its index in the batch.
    pub valid_index: Vec<usize>,
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
    /// Index into the batch of events whose id the log holds with other
    /// content (`conflicting_duplicate`): refused on the commit path, so
    /// the bus dead-letters them after the commit.
    pub conflicting: Vec<(usize, Rejection)>,
    pub conflicts: u64,
    /// What to publish, in order, before acknowledging the batch.
    pub outbound: Vec<Outbound>,
    /// Last log sequence derived after this batch: the outbound messages
    /// are those of the entries up to it.
    pub last_seq: u64,
    /// Deriving an entry of this batch failed (see `Hub::health`): the
    /// entries after `last_seq` are logged but not derived. Stop consuming.
    pub degraded: bool,
}

impl IngestOutcome {
    /// Adds what a later commit of the hub's own entries (a training, a
    /// re-resolution) gave: its outbound messages after these, its last
    /// sequence, its failure.
    pub fn absorb(&mut self, later: IngestOutcome) {
        self.outbound.extend(later.outbound);
        self.last_seq = later.last_seq;
        self.degraded |= later.degraded;
    }
}

pub struct Hub {
    log: EventLog,
    state: State,
    /// Where the state keeps golden records and the match index.
    storage: DerivedStorage,
    limits: Limits,
    health: Health,
    /// Outbound messages returned by commits, by their last log entry,
    /// until the bus acknowledges them (the published marker): a
    /// checkpoint keeps those not acknowledged yet.
    unacked: Unacked,
    /// Entries derived since the last checkpoint.
    since_checkpoint: u64,
    /// When the last commit derived something (to checkpoint when idle).
    last_commit: Instant,
    /// The log entry of the last checkpoint (0: none).
    checkpoint_seq: u64,
    /// The checkpoint this hub started from (0: the whole log was derived).
    started_from_seq: u64,
}

/// The derived state's storage, its cache size and how often it is
/// checkpointed.
struct DerivedStorage {
    tables: Arc<Buffered>,
    cache_records: usize,
    checkpoint_entries: u64,
}

impl DerivedStorage {
    fn new(tables: Arc<dyn Storage>, config: &StoreConfig) -> Self {
        DerivedStorage {
            tables: Buffered::new(tables),
            cache_records: config.cache_records,
            checkpoint_entries: config.checkpoint_entries.max(1),
        }
    }
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
    /// Opens (or creates) the hub's store in `dir` with the default
    /// `[store]` settings. See `open_with`.
    pub fn open(
        dir: &Path,
        rules: Arc<Rules>,
        limits: Limits,
    ) -> Result<(Hub, Vec<Outbound>), LogError> {
        Self::open_with(dir, rules, limits, &StoreConfig::default())
    }

    /// Opens (or creates) the hub's store in `dir` and derives the state:
    /// from the derived state store's last checkpoint when it has a usable
    /// one, checking the hash chain of the log entries after it, else from
    /// the whole log, checking its whole chain. Returns the hub and the
    /// outbound messages of entries whose publication was not confirmed
    /// before the last stop: publish them again (same ids, same content).
    pub fn open_with(
        dir: &Path,
        rules: Arc<Rules>,
        limits: Limits,
        store: &StoreConfig,
    ) -> Result<(Hub, Vec<Outbound>), LogError> {
        Self::open_reporting(dir, rules, limits, store, &Progress::default())
    }

    /// `open_with`, reporting how far derivation has got in `progress`
    /// (the API answers with it while the hub starts).
    pub fn open_reporting(
        dir: &Path,
        rules: Arc<Rules>,
        limits: Limits,
        store: &StoreConfig,
        progress: &Progress,
    ) -> Result<(Hub, Vec<Outbound>), LogError> {
        let started = Instant::now();
        let log = EventLog::open(dir)?;
        let log_opened = started.elapsed().as_secs_f64();
        progress.checking(log.last_seq());
        let published = log.marker(PUBLISHED_SEQ).get()?;
        let storage = DerivedStorage::new(open_storage(dir, store)?, store);
        let store_opened = started.elapsed().as_secs_f64();
        let checkpoint = usable_checkpoint(&log, &storage, &rules, u64::MAX);
        let entries = match &checkpoint {
            Some(c) => {
                let hash = log.get(c.seq)?.map(|e| e.hash).expect("checked usable");
                log.verify_after(c.seq, hash)?
            }
            None => log.verify()?,
        };
        let verified = started.elapsed().as_secs_f64();
        let derived = derive(
            &log,
            &storage,
            Arc::clone(&rules),
            published,
            u64::MAX,
            progress,
            checkpoint,
        )?;
        let (derived, failed) = match derived.failed {
            None => (derived, None),
            // A failed entry may have changed part of the state: derive
            // again up to the entry before it, which succeeded before.
            Some((seq, error)) => {
                let checkpoint = usable_checkpoint(&log, &storage, &rules, seq - 1);
                let derived = derive(
                    &log,
                    &storage,
                    rules,
                    published,
                    seq - 1,
                    progress,
                    checkpoint,
                )?;
                (derived, Some((seq, error)))
            }
        };
        info!(
            entries,
            golden_records = derived.state.golden_count(),
            unpublished = derived.pending.len(),
            started_from = derived.started_from,
            open_log_seconds = log_opened,
            open_store_seconds = store_opened - log_opened,
            check_chain_seconds = verified - store_opened,
            derive_seconds = started.elapsed().as_secs_f64() - verified,
            "hub state ready"
        );
        metrics::gauge!("mdhub_log_length").set(log.last_seq() as f64);
        metrics::gauge!("mdhub_golden_records").set(derived.state.golden_count() as f64);
        metrics::gauge!("mdhub_degraded").set(0.0);
        report_match_counters(&derived.state);
        let last = derived.state.applied_seq();
        let unacked = match derived.pending.is_empty() {
            true => Vec::new(),
            false => vec![(last, derived.pending.clone())],
        };
        let mut hub = Hub {
            log,
            state: derived.state,
            storage,
            limits,
            health: Health::Ok,
            unacked,
            since_checkpoint: derived.since_checkpoint,
            last_commit: Instant::now(),
            checkpoint_seq: derived.checkpoint_seq,
            started_from_seq: derived.started_from,
        };
        if let Some((seq, error)) = failed {
            hub.mark_degraded(seq, error);
        }
        Ok((hub, derived.pending))
    }

    /// Writes a checkpoint of the derived state (see `state::Checkpoint`),
    /// if anything was derived since the last one: a start derives only
    /// the entries after it. Outbound messages the bus has not acknowledged
    /// are kept with it. A failure leaves the state unusable (what was
    /// held for the checkpoint is lost): the caller stops, and a start
    /// resumes from the checkpoint before.
    pub fn checkpoint(&mut self) -> Result<(), LogError> {
        if self.health.is_degraded() || self.since_checkpoint == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let published = self.published_seq()?;
        self.unacked.retain(|(seq, _)| *seq > published);
        let (held, held_bytes) = self.storage.tables.held();
        let mut writes = self.state.checkpoint(&self.log.last_hash(), build_id())?;
        writes.push(crate::state::unacked_write(&self.unacked));
        self.storage.tables.commit(writes)?;
        self.log.save_seen_ids()?;
        let entries = std::mem::take(&mut self.since_checkpoint);
        self.checkpoint_seq = self.state.applied_seq();
        let seconds = started.elapsed().as_secs_f64();
        info!(
            seq = self.state.applied_seq(),
            entries,
            held_writes = held,
            held_bytes,
            unacknowledged_batches = self.unacked.len(),
            seconds,
            "checkpoint of the derived state written"
        );
        metrics::gauge!("mdhub_checkpoint_seq").set(self.state.applied_seq() as f64);
        metrics::gauge!("mdhub_checkpoint_seconds").set(seconds);
        Ok(())
    }

    /// Whether entries were derived since the last checkpoint and nothing
    /// was committed for `quiet` (see `checkpoint_if_quiet`).
    pub fn quiet_checkpoint_due(&self, quiet: Duration) -> bool {
        self.since_checkpoint > 0 && self.last_commit.elapsed() >= quiet
    }

    /// `checkpoint`, when nothing was committed for `quiet`: an idle hub
    /// restarts without deriving anything.
    pub fn checkpoint_if_quiet(&mut self, quiet: Duration) -> Result<(), LogError> {
        if self.quiet_checkpoint_due(quiet) {
            self.checkpoint()?;
        }
        Ok(())
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The log entry of the last checkpoint of the derived state (0: none).
    pub fn checkpoint_seq(&self) -> u64 {
        self.checkpoint_seq
    }

    /// The checkpoint this hub started from (0: it derived the whole log).
    pub fn started_from_seq(&self) -> u64 {
        self.started_from_seq
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
        Validator::new(Arc::clone(self.state.rules_arc()), self.limits)
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
            last_seq: self.state.applied_seq(),
            ..Default::default()
        };
        if self.health.is_degraded() {
            // Nothing more is logged until a fixed binary starts.
            outcome.degraded = true;
            return Ok(outcome);
        }
        let mut valid = validated.valid;
        let (prepared, appended, tail) = self.log.prepare_append(&mut valid, position)?;
        // Derivation needs no durability, only publishing does: derive while
        // another thread writes the batch and waits for the fsync, and
        // return once both are done.
        let writer = self.log.writer();
        let state = &mut self.state;
        let mut failed = None;
        let flushed = std::thread::scope(|scope| {
            let flushing = scope.spawn(move || writer.write_durably(prepared));
            let entries = valid.into_iter().zip(appended);
            for ((entry, result), &index) in entries.zip(&validated.valid_index) {
                match result {
                    Appended::New(seq) if failed.is_none() => {
                        match derive_entry(state, seq, &entry.payload, entry.cleansed) {
                            Ok(applied) => {
                                outcome.conflicts += applied.conflicts as u64;
                                outcome.outbound.extend(applied.outbound);
                            }
                            Err(error) => failed = Some((seq, error)),
                        }
                        outcome.appended += 1;
                    }
                    Appended::New(_) => outcome.appended += 1,
                    Appended::Duplicate(_) => outcome.duplicates += 1,
                    Appended::Conflicting(seq) => {
                        outcome
                            .conflicting
                            .push((index, conflicting_duplicate(&entry.payload, seq)));
                    }
                }
            }
            flushing.join().expect("the flush thread does not panic")
        });
        // The state now runs ahead of a log that is not durable: the caller
        // must stop (and rebuild from the log on restart), never publish.
        flushed?;
        self.log.advance(tail);
        outcome.last_seq = self.log.last_seq();
        if let Some((seq, error)) = failed {
            // What the failed entry changed before it failed is undone by
            // deriving anew up to the entry before it, from the last
            // checkpoint; the outbound messages of the entries before it in
            // this batch stay valid (the same entries derive the same
            // messages), so none are collected here.
            let rules = Arc::clone(self.state.rules_arc());
            let checkpoint = usable_checkpoint(&self.log, &self.storage, &rules, seq - 1);
            self.state = derive(
                &self.log,
                &self.storage,
                rules,
                u64::MAX,
                seq - 1,
                &Progress::default(),
                checkpoint,
            )?
            .state;
            self.mark_degraded(seq, error);
            outcome.last_seq = seq - 1;
            outcome.degraded = true;
        }
        for (_, rejection) in &outcome.conflicting {
            warn!(code = rejection.code, event_id = ?rejection.event_id, system = ?rejection.system,
                  "an event id the log holds arrived with other content; refused to the DLQ");
            metrics::counter!("mdhub_events_rejected_total", "code" => rejection.code).increment(1);
        }
        metrics::counter!("mdhub_events_ingested_total").increment(outcome.appended);
        metrics::counter!("mdhub_events_duplicate_total").increment(outcome.duplicates);
        metrics::counter!("mdhub_conflicts_total").increment(outcome.conflicts);
        metrics::gauge!("mdhub_log_length").set(self.log.last_seq() as f64);
        metrics::gauge!("mdhub_golden_records").set(self.state.golden_count() as f64);
        report_match_counters(&self.state);
        if !outcome.degraded && outcome.appended > 0 {
            if !outcome.outbound.is_empty() {
                self.unacked
                    .push((outcome.last_seq, outcome.outbound.clone()));
            }
            self.since_checkpoint += outcome.appended;
            self.last_commit = Instant::now();
            if self.since_checkpoint >= self.storage.checkpoint_entries {
                self.checkpoint()?;
            }
        }
        Ok(outcome)
    }

    /// Trains the match model on the records the state holds and appends
    /// it to the log (see `resolve::trained`); matching uses it from the
    /// next entry on. Returns the model and the outcome of the append.
    pub fn train_match_model(
        &mut self,
        trigger: Trigger,
    ) -> Result<(TrainedModel, IngestOutcome), LogError> {
        let started = std::time::Instant::now();
        let model = self
            .state
            .resolver()
            .train(trigger, time::OffsetDateTime::now_utc())?;
        info!(records = model.records, candidate_pairs = model.candidate_pairs,
              matches_per_record = model.matches_per_record, trigger = ?model.trigger,
              seconds = started.elapsed().as_secs_f64(), "match model trained");
        let validated = Validated {
            valid: vec![Encoded::new(LogPayload::MatchModel(model.clone()))],
            valid_index: vec![0],
            rejected: Vec::new(),
        };
        let outcome = self.commit(validated, None)?;
        metrics::counter!("mdhub_match_trainings_total").increment(1);
        Ok((model, outcome))
    }

    /// Trains (`train_match_model`) when `[match] train_at` says it is due.
    pub fn train_if_due(&mut self) -> Result<Option<IngestOutcome>, LogError> {
        if self.health.is_degraded() || !self.state.resolver().training_due() {
            return Ok(None);
        }
        self.train_match_model(Trigger::Automatic)
            .map(|(_, outcome)| Some(outcome))
    }

    /// Re-resolves with the model in force when it waits for it: plans the
    /// regroupings (`resolve::regroup`) and appends them. Blocks ingest
    /// while it runs, as training does.
    pub fn reresolve_if_due(&mut self) -> Result<Option<IngestOutcome>, LogError> {
        if self.health.is_degraded() {
            return Ok(None);
        }
        let Some(pending) = self.state.resolver().reresolution().cloned() else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let groups = self.state.regroup_plan()?;
        let records: usize = groups.iter().map(Vec::len).sum();
        let entries = regroup::entries(&pending, groups, time::OffsetDateTime::now_utc());
        info!(
            model_seq = pending.model_seq,
            groups = entries.iter().map(|e| e.groups.len()).sum::<usize>(),
            records,
            entries = entries.len(),
            seconds = started.elapsed().as_secs_f64(),
            "re-resolution planned with the model in force"
        );
        let validated = Validated {
            valid_index: (0..entries.len()).collect(),
            valid: entries
                .into_iter()
                .map(|e| Encoded::new(LogPayload::Regroup(e)))
                .collect(),
            rejected: Vec::new(),
        };
        let outcome = self.commit(validated, None)?;
        metrics::counter!("mdhub_match_regrouped_records_total").increment(records as u64);
        Ok(Some(outcome))
    }

    /// What keeps matching current after a commit: training when it is
    /// due, then re-resolution with a new model. None when neither ran.
    pub fn settle_matching(&mut self) -> Result<Option<IngestOutcome>, LogError> {
        let trained = self.train_if_due()?;
        let regrouped = self.reresolve_if_due()?;
        Ok(match (trained, regrouped) {
            (Some(mut a), Some(b)) => {
                a.absorb(b);
                Some(a)
            }
            (a, b) => a.or(b),
        })
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
    pub fn new(rules: Arc<Rules>, limits: Limits) -> Self {
        Validator { rules, limits }
    }

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
            // A panic here is a bug; caught, it refuses one message instead
            // of stopping the stream (and, read again at every start, the hub).
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| self.check(msg, &catalog)));
            let result = checked.unwrap_or_else(|panic| {
                Err(Rejection {
                    code: "internal_error",
                    message: format!(
                        "the hub failed checking this message (a bug; report it): {}",
                        panic_message(panic.as_ref())
                    ),
                    system: None,
                    event_id: None,
                    record_id: None,
                    field: None,
                })
            });
            match result {
                Ok(encoded) => {
                    out.valid.push(encoded);
                    out.valid_index.push(i);
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

    /// Validates one message, checks its clock against the bus's, encodes
    /// it for the log and cleanses an upsert's fields.
    fn check(&self, msg: &Inbound, catalog: &Catalog<'_>) -> Result<Encoded, Rejection> {
        let rules = &self.rules;
        let payload = if is_steward_subject(&msg.subject) {
            crate::steward::parse(&msg.payload, |e| rules.models.contains_key(e))
                .map(LogPayload::Steward)?
        } else {
            let event = validate_event(&msg.payload, &msg.subject, catalog, self.limits)?;
            if let Some(stored_at) = msg.stored_at {
                check_observed_at(&event, stored_at)?;
            }
            LogPayload::Change(event)
        };
        let mut encoded = Encoded::new(payload);
        if let LogPayload::Change(e) = &encoded.payload {
            if e.op == Op::Upsert {
                encoded.cleansed = cleanse_event(rules, e);
            }
        }
        Ok(encoded)
    }
}

/// The refusal of an event whose id the log holds at `seq` with other
/// content. Codes and ids only, like every rejection.
fn conflicting_duplicate(payload: &LogPayload, seq: u64) -> Rejection {
    let (system, record_id) = match payload {
        LogPayload::Change(e) => (Some(e.system.clone()), Some(e.record_id.clone())),
        LogPayload::Steward(_) => (Some(crate::steward::STEWARD_SYSTEM.to_string()), None),
        LogPayload::MatchModel(_) | LogPayload::Regroup(_) => (None, None),
    };
    let id = payload.event_id();
    Rejection {
        code: "conflicting_duplicate",
        message: format!(
            "event_id {id} is already in the log at entry {seq} with other content \
             (system, record or fields); an event id names one event: give a new event a new id"
        ),
        system,
        event_id: Some(id),
        record_id,
        field: Some("event_id".to_string()),
    }
}

/// Derives one entry. A panic in derivation is a bug; it comes back as the
/// error the hub reports while degraded, instead of stopping the process
/// (which, with the entry in the log, would fail again at every start).
/// A storage error comes back the same way: the hub stops deriving.
fn derive_entry(
    state: &mut State,
    seq: u64,
    payload: &LogPayload,
    cleansed: Option<mdhub_schema::CleansedRecord>,
) -> Result<crate::state::Applied, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        state.apply_cleansed(seq, payload, cleansed)
    }))
    .map_err(|panic| {
        format!(
            "deriving log entry {seq} panicked: {}",
            panic_message(panic.as_ref())
        )
    })?
    .map_err(|e| format!("deriving log entry {seq}: {e}"))
}

/// Matching's counters as metrics. Derivation only counts (it emits
/// nothing); the counts cover the whole log, so they are set, not added to.
fn report_match_counters(state: &State) {
    let resolver = state.resolver();
    metrics::counter!("mdhub_match_merges_prevented_total").absolute(resolver.merges_prevented());
    metrics::counter!("mdhub_match_blocks_capped_total").absolute(resolver.blocks_capped());
    metrics::counter!("mdhub_match_candidates_total").absolute(resolver.candidates_compared());
}

/// The derived state store `config` asks for: redb in `<dir>/derived.redb`,
/// or memory.
fn open_storage(dir: &Path, config: &StoreConfig) -> Result<Arc<dyn Storage>, StoreError> {
    let kind = config
        .kind()
        .map_err(|e| StoreError::new("choosing the derived state store", e))?;
    // Earlier builds kept derived state in a sled store in `<dir>/derived`.
    // It is derived from the log like everything there: drop it.
    let old = dir.join("derived");
    if old.is_dir() {
        std::fs::remove_dir_all(&old)
            .map_err(|e| StoreError::new(format!("removing {}", old.display()), e))?;
        tracing::info!(dir = %old.display(), "removed the derived state of an earlier build (sled); it is derived anew from the log");
    }
    match kind {
        StoreKind::Redb => crate::redb_store::RedbStorage::open(&dir.join("derived.redb")),
        StoreKind::Memory => Ok(MemoryStorage::shared()),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// `mdhub.in.steward.<entity>`: a steward action, not a change event.
fn is_steward_subject(subject: &str) -> bool {
    subject.starts_with(&mdhub_schema::in_subject(
        crate::steward::STEWARD_SYSTEM,
        "",
    ))
}

/// Why an audit could not derive the state.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{error}")]
    Derive { seq: u64, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copies the log of `from` (up to entry `until`, if given) into a fresh
/// store at `into` and derives the state there from nothing: what an
/// auditor does to check the state hash, or to look at the state as of an
/// earlier entry. Returns the number of entries and the rebuilt state hash.
pub fn rebuild(
    from: &Path,
    into: &Path,
    until: Option<u64>,
    rules: Arc<Rules>,
) -> Result<(u64, String), ReplayError> {
    let source = EventLog::open(from)?;
    source.verify()?;
    let until = until.unwrap_or(u64::MAX).min(source.last_seq());
    let expected = match until {
        0 => crate::log::GENESIS,
        seq => source.get(seq)?.map_or(crate::log::GENESIS, |e| e.hash),
    };
    let mut target = EventLog::open(into)?;
    let mut chunk = Vec::with_capacity(1000);
    for entry in source.iter_from(1) {
        let entry = entry?;
        if entry.seq > until {
            break;
        }
        chunk.push(Encoded::new(entry.payload));
        if chunk.len() == 1000 {
            target.append(&mut chunk, None)?;
            chunk.clear();
        }
    }
    target.append(&mut chunk, None)?;
    target.flush()?;
    if target.last_hash() != expected {
        return Err(LogError::Damaged {
            seq: target.last_seq(),
            reason: "the copied chain ends in another hash than the original".to_string(),
        }
        .into());
    }
    target.verify()?;
    let config = StoreConfig::default();
    let storage = DerivedStorage::new(open_storage(into, &config)?, &config);
    let state = derive_all(&target, &storage, rules)?;
    Ok((target.last_seq(), state.state_hash()?))
}

/// The state derived from the log in `data_dir`, for reports (the hub must
/// not be running on it: redb locks the log file). Kept in memory.
pub fn state_of(data_dir: &Path, rules: Arc<Rules>) -> Result<State, ReplayError> {
    let log = EventLog::open(data_dir)?;
    let storage = DerivedStorage::new(MemoryStorage::shared(), &StoreConfig::default());
    derive_all(&log, &storage, rules)
}

fn derive_all(
    log: &EventLog,
    storage: &DerivedStorage,
    rules: Arc<Rules>,
) -> Result<State, ReplayError> {
    let derived = derive(
        log,
        storage,
        rules,
        u64::MAX,
        u64::MAX,
        &Progress::default(),
        None,
    )?;
    match derived.failed {
        Some((seq, error)) => Err(ReplayError::Derive { seq, error }),
        None => Ok(derived.state),
    }
}

/// The state derived from the log up to entry `until`.
struct Derived {
    state: State,
    /// The outbound messages of entries after the `published` mark.
    pending: Vec<Outbound>,
    /// Entries derived after the last checkpoint.
    since_checkpoint: u64,
    /// The last checkpoint's entry (0: none).
    checkpoint_seq: u64,
    /// The checkpoint derivation started from (0: the first entry).
    started_from: u64,
    /// The entry whose derivation failed, and why; derivation stopped there.
    failed: Option<(u64, String)>,
}

/// How far a derivation of the log has got: entries derived of how many,
/// and since when. Shared with whoever reports it (the API while the hub
/// starts); derivation itself never reads it.
#[derive(Default)]
pub struct Progress {
    derived: AtomicU64,
    total: AtomicU64,
    /// When derivation started; `None` before (the log is being opened and
    /// its hash chain checked).
    started: Mutex<Option<Instant>>,
}

impl Progress {
    /// The log is open and holds `total` entries; its chain is checked next.
    fn checking(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    fn start(&self, total: u64) {
        self.derived.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Entries derived, entries to derive, entries per second so far and
    /// the seconds left at that rate.
    pub fn figures(&self) -> (u64, u64, f64, Option<f64>) {
        let derived = self.derived.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let started = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let rate = if seconds > 0.0 {
            derived as f64 / seconds
        } else {
            0.0
        };
        let eta = (rate > 0.0).then(|| total.saturating_sub(derived) as f64 / rate);
        (derived, total, rate, eta)
    }

    /// For people: "derived 1200 of 5000 log entries (800/s, about 5 s
    /// left)", or what comes before deriving.
    pub fn describe(&self) -> String {
        let (derived, total, rate, eta) = self.figures();
        let deriving = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        match eta {
            _ if !deriving && total == 0 => "opening the log".to_string(),
            _ if !deriving => format!("checking the hash chain of {total} log entries"),
            Some(eta) => format!(
                "derived {derived} of {total} log entries ({rate:.0}/s, about {eta:.0} s left)"
            ),
            None => format!("derived {derived} of {total} log entries"),
        }
    }
}

/// How often a long derivation says how far it has got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What tells this build of the hub from others in a checkpoint: the
/// version, and the size and modification time of the running executable.
/// Derivation may change between builds with one version (a development
/// build, a patched one), so a checkpoint of another build is not resumed
/// from: an upgrade derives the state anew, once.
fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe().and_then(std::fs::metadata);
        let stamp = exe
            .ok()
            .and_then(|m| {
                let modified = m.modified().ok()?;
                let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
                Some(format!("{} bytes, modified {}", m.len(), since.as_nanos()))
            })
            .unwrap_or_else(|| "executable unknown".to_string());
        format!("{} ({stamp})", env!("CARGO_PKG_VERSION"))
    })
}

/// The checkpoint in the derived state store, if a start may resume from
/// it: written by this version with these rules, at most at entry `until`,
/// and of this log (its entry's chain hash is the log's). Says in the log
/// why one is not used.
fn usable_checkpoint(
    log: &EventLog,
    storage: &DerivedStorage,
    rules: &Rules,
    until: u64,
) -> Option<Checkpoint> {
    storage.tables.discard();
    let anew = |reason: &str| {
        info!(
            reason,
            "the state is derived anew from the whole log, not resumed from a checkpoint"
        )
    };
    let checkpoint = match Checkpoint::read(storage.tables.as_ref()) {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            warn!(error = %e, "the derived state's checkpoint cannot be read");
            anew("the checkpoint cannot be read");
            return None;
        }
    };
    if let Some(why) = checkpoint.unusable(rules, build_id()) {
        anew(&why);
        return None;
    }
    if checkpoint.seq > until {
        anew(&format!(
            "the checkpoint is of entry {}, after entry {until} wanted",
            checkpoint.seq
        ));
        return None;
    }
    match log.get(checkpoint.seq) {
        Ok(Some(entry)) if hex::encode(entry.hash) == checkpoint.log_hash => Some(checkpoint),
        Ok(_) => {
            warn!(
                seq = checkpoint.seq,
                "the derived state's checkpoint is not of this log (its entry is missing or has another hash)"
            );
            anew("the checkpoint is not of this log");
            None
        }
        Err(e) => {
            warn!(seq = checkpoint.seq, error = %e, "the log entry of the derived state's checkpoint cannot be read");
            anew("the checkpoint's log entry cannot be read");
            None
        }
    }
}

/// The state a checkpoint holds, and its outbound messages not
/// acknowledged after the `published` mark.
fn resume(
    log: &EventLog,
    storage: &DerivedStorage,
    rules: Arc<Rules>,
    published: u64,
    checkpoint: &Checkpoint,
) -> Result<(State, Vec<Outbound>), ReplayError> {
    let model = match checkpoint.model_seq {
        None => None,
        Some(seq) => match log.get(seq)?.map(|e| e.payload) {
            Some(LogPayload::MatchModel(m)) => Some(m),
            _ => {
                return Err(StoreError::new(
                    "resuming from the checkpoint",
                    format!("its model in force, log entry {seq}, is not a trained model"),
                )
                .into())
            }
        },
    };
    let tables = storage.tables.as_ref();
    let state = State::resume(
        rules,
        tables,
        storage.cache_records,
        checkpoint,
        model.as_ref(),
    )?;
    let pending = crate::state::read_unacked(tables)?
        .into_iter()
        .filter(|(seq, _)| *seq > published)
        .flat_map(|(_, messages)| messages)
        .collect();
    Ok((state, pending))
}

/// Derives the state from the log up to `until` or the first entry that
/// fails: from `checkpoint` if given (see `usable_checkpoint`), else from
/// the log's first entry. Reports in `progress` and in the log, and writes
/// a checkpoint every `checkpoint_entries` entries whose outbound messages
/// are acknowledged (`published`).
fn derive(
    log: &EventLog,
    storage: &DerivedStorage,
    rules: Arc<Rules>,
    published: u64,
    until: u64,
    progress: &Progress,
    checkpoint: Option<Checkpoint>,
) -> Result<Derived, LogError> {
    storage.tables.discard();
    let resumed = checkpoint.and_then(|c| {
        match resume(log, storage, Arc::clone(&rules), published, &c) {
            Ok((state, pending)) => Some((state, pending, c.seq)),
            Err(e) => {
                warn!(seq = c.seq, error = %e, "resuming from the derived state's checkpoint failed: deriving the state anew from the whole log");
                None
            }
        }
    });
    let (mut state, mut pending, from) = match resumed {
        Some(r) => r,
        None => {
            storage.tables.discard();
            let state = State::open(rules, storage.tables.as_ref(), storage.cache_records)?;
            (state, Vec::new(), 0)
        }
    };
    let last = log.last_seq().min(until);
    let total = last.saturating_sub(from);
    progress.start(total);
    if total > 0 {
        info!(
            entries = total,
            from_entry = from + 1,
            to_entry = last,
            "deriving the state from the log"
        );
    }
    let mut since_checkpoint = 0;
    let mut checkpoint_seq = from;
    let mut reported = Instant::now();
    for entry in log.iter_from(from + 1) {
        let entry = entry?;
        if entry.seq > until {
            break;
        }
        progress
            .derived
            .store(entry.seq - 1 - from, Ordering::Relaxed);
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            let (derived, total, rate, eta) = progress.figures();
            info!(
                derived,
                total,
                per_second = rate.round(),
                eta_seconds = eta.map(f64::round),
                "deriving the state from the log: {}",
                progress.describe()
            );
        }
        match derive_entry(&mut state, entry.seq, &entry.payload, None) {
            Ok(applied) if entry.seq > published => pending.extend(applied.outbound),
            Ok(_) => {}
            Err(error) => {
                return Ok(Derived {
                    state,
                    pending,
                    since_checkpoint,
                    checkpoint_seq,
                    started_from: from,
                    failed: Some((entry.seq, error)),
                })
            }
        }
        since_checkpoint += 1;
        // Past `published`, messages would have to be kept with it: the
        // hub's first checkpoint after the start does that.
        if since_checkpoint >= storage.checkpoint_entries && entry.seq <= published {
            let mut writes = state.checkpoint(&entry.hash, build_id())?;
            writes.push(crate::state::unacked_write(&Vec::new()));
            storage.tables.commit(writes)?;
            since_checkpoint = 0;
            checkpoint_seq = entry.seq;
        }
    }
    progress.derived.store(total, Ordering::Relaxed);
    if total > 0 {
        let (_, _, rate, _) = progress.figures();
        info!(
            entries = total,
            per_second = rate.round(),
            "state derived from the log"
        );
    }
    Ok(Derived {
        state,
        pending,
        since_checkpoint,
        checkpoint_seq,
        started_from: from,
        failed: None,
    })
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
