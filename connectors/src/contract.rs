//! The connector contract in types: what one connector to one system
//! implements, and what the runner (`crate::runner`) does around it.
//!
//! A connector is two halves over one system:
//! - a [`Source`] captures the system's changes as [`CapturedTx`]s, one per
//!   source transaction, with the system's own columns. It starts with a
//!   full load of the rows that exist (from a snapshot consistent with the
//!   position where its capture starts) unless it is given a saved cursor.
//! - a [`Sink`] applies writes (golden updates already mapped to the
//!   system's columns) in one system transaction per batch, and returns each
//!   row as committed.
//!
//! The runner does everything that is the same for every system: mapping
//! columns ⇄ canonical fields, building `ChangeEvent`s with deterministic
//! ids, publishing one transaction as one atomic batch, saving the cursor
//! only after JetStream acknowledged it, consuming `GoldenUpdate`s, echo
//! suppression by content, `base` versions, retries with backoff, metrics.
//! docs/specs/connector.md is the contract in words.

use std::future::Future;

use serde_json::Value;
use time::OffsetDateTime;

pub use crate::mapping::Row;

/// A source's capture position, as the source serializes it (a PostgreSQL
/// LSN, a binlog file and offset, an API's `updatedAt` and id). The runner
/// saves it in the checkpoint store and hands it back on the next start.
pub type Cursor = Value;

/// One change of one record, in the system's own columns.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    /// Inserted or updated: the columns the source knows. A column the
    /// source could not see (PostgreSQL's unchanged TOASTed values) is left
    /// out, never sent as null: a null clears the field.
    Upsert(Row),
    /// Deleted, or archived (`active = false`, `deleted = 1`).
    Delete,
}

/// One captured change.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// The system's key for the record, as text (composite keys joined in a
    /// way the connector can split again).
    pub record_id: String,
    pub change: RowChange,
    /// The system's own change time for the record, when it keeps one
    /// (`write_date`, `date_modified`, `updatedAt`); else the transaction's.
    pub observed_at: Option<OffsetDateTime>,
}

/// What a source hands the runner: one source transaction (or one slice of
/// the initial load).
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedTx {
    /// The changes in commit order. May be empty (a transaction that touched
    /// no mapped row still moves the cursor).
    pub changes: Vec<Captured>,
    /// The position after this transaction, saved once JetStream has
    /// acknowledged its events. `None` while the initial load runs: a load
    /// cut short starts again from the beginning.
    pub cursor: Option<Cursor>,
    /// Unique text for this transaction's place in the source (commit LSN,
    /// binlog file and position, snapshot name and row offset). The runner
    /// derives the event ids from it, so a transaction read twice after a
    /// restart is published with the same ids and the hub keeps one copy.
    pub position: String,
    /// Commit time, when the source knows it: `observed_at` for changes
    /// without their own, and the capture lag.
    pub committed_at: Option<OffsetDateTime>,
    /// The system marked this transaction as the connector's own write-back
    /// (a PostgreSQL replication origin, MariaDB `skip_replication`): the
    /// runner drops its changes as echoes and only moves the cursor.
    pub own_write: bool,
    /// Set on slices of the initial load: rows loaded so far and the
    /// expected total (an estimate when the system only has one), for the
    /// progress bar.
    pub load: Option<LoadProgress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    pub done: u64,
    pub total: Option<u64>,
}

/// One write to the system: a golden update mapped to its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// `None`: insert a new record (a `receive_all` system without a copy).
    pub record_id: Option<String>,
    pub op: WriteOp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Set these columns (and only these) on the record, or insert it with
    /// them.
    Upsert(Row),
    /// Delete or archive the record, per the connector's policy.
    Retire,
}

/// A write as the system committed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The record's key; for an insert, the key the system gave it.
    pub record_id: String,
    /// The record's mapped columns as committed (the full row, not only the
    /// written columns), so that the runner recognizes the echo of this
    /// write by content; `None` after a delete.
    pub image: Option<Row>,
    /// The write left the row as it was (an update to equal values) and
    /// the system logs nothing for it (MariaDB): no capture of it comes.
    pub unchanged: bool,
}

/// Why a connector call failed, and so what the runner does next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// The system (or the network to it) is away: the runner logs it, counts
    /// it, waits with backoff and opens the source or sink again.
    #[error("{0}")]
    Unavailable(String),
    /// The system refused this one record (a constraint, a value too long):
    /// reported with its key, and the records around it go on.
    #[error("record {record_id}: {reason}")]
    Record { record_id: String, reason: String },
    /// The configuration or the system's layout is wrong (a missing table,
    /// `wal_level` not `logical`, a missing privilege): retrying cannot
    /// help, the connector stops with this message.
    #[error("{0}")]
    Fatal(String),
}

/// Change capture of one system.
pub trait Source: Send {
    /// The next captured transaction, waiting until there is one. `Ok(None)`:
    /// the source has nothing more and never will (a one-shot file import).
    fn next(&mut self) -> impl Future<Output = Result<Option<CapturedTx>, ConnectorError>> + Send;

    /// JetStream has acknowledged every event up to and including the
    /// transaction that carried `cursor`, and the runner has saved it. A
    /// source whose system keeps the position itself (a PostgreSQL slot's
    /// confirmed position) moves it now; the others do nothing.
    fn confirm(
        &mut self,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send;

    /// Whether `next` may be called while the cursor of a transaction
    /// already handed out is not yet confirmed. The runner reads ahead
    /// while JetStream acknowledges, so that one publish carries every
    /// transaction read meanwhile; a source whose next read depends on the
    /// confirmation (a file moved away once imported) says no.
    fn reads_ahead(&self) -> bool {
        true
    }

    /// Whether the source hands over every transaction in commit order and
    /// flags the connector's own write-back transactions
    /// (`CapturedTx::own_write`). The runner then gives a written version
    /// to the record's later changes only once that write's own
    /// transaction has passed; a source that reads the current state says
    /// no, and every write is in view of its next read.
    fn marks_own_writes(&self) -> bool {
        false
    }

    /// Whether the next `next` hands out a transaction that an earlier
    /// read already fetched (a poll returns a page of changes, handed out
    /// one by one). The runner stamps each read of a source that reads the
    /// current state with the writes noted when it began; a transaction
    /// from an earlier read keeps that read's stamp, or the writes noted
    /// since would count as in its view.
    fn has_buffered(&self) -> bool {
        false
    }
}

/// Write-back to one system.
pub trait Sink: Send {
    /// Applies the writes in one system transaction where the system has
    /// transactions, marked as the connector's own where the system can mark
    /// them. Returns one result per write, in order. `Err` (the system is
    /// away) means none of the batch is known to be committed: the runner
    /// retries the whole batch.
    fn apply(
        &mut self,
        writes: &[Write],
    ) -> impl Future<Output = Result<Vec<Result<Applied, ConnectorError>>, ConnectorError>> + Send;

    /// The record's mapped columns as they are now, `None` if it does not
    /// exist. The runner reads it to complete a write that needs a value the
    /// update does not carry (a full-name column written from given and
    /// family name when only one changed).
    fn fetch(
        &mut self,
        record_id: &str,
    ) -> impl Future<Output = Result<Option<Row>, ConnectorError>> + Send;
}

/// A connector: its typed configuration, which opens the two halves. The
/// runner opens them again after an `Unavailable` error.
pub trait Connector: Send + Sync + 'static {
    type Source: Source + 'static;
    type Sink: Sink + 'static;

    /// Opens change capture: from `cursor` when one was saved, else with a
    /// full load first.
    fn open_source(
        &self,
        cursor: Option<Cursor>,
    ) -> impl Future<Output = Result<Self::Source, ConnectorError>> + Send;

    fn open_sink(&self) -> impl Future<Output = Result<Self::Sink, ConnectorError>> + Send;
}
