//! Change capture: the initial load from the slot's exported snapshot,
//! then one `CapturedTx` per committed transaction from the slot.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use super::catalog::Table;
use super::config::Settings;
use super::lsn::Lsn;
use super::pgoutput::{self, Cell, Message, Relation, Tuple};
use super::snapshot::Load;
use super::stream::{WalEvent, WalStream};
use super::values::{observed_time, text_to_json};
use crate::contract::{
    Captured, CapturedTx, ConnectorError, Cursor, LoadProgress, Row, RowChange, Source,
};

/// The capture half of the PostgreSQL connector.
pub struct PostgresSource {
    settings: Arc<Settings>,
    table: Table,
    state: State,
    /// Relations pgoutput described in this session, by id.
    relations: HashMap<u32, Relation>,
    /// The transaction being read (kept here so that a cancelled `next`
    /// loses nothing).
    open_tx: Option<OpenTx>,
    /// A confirm that came before the stream started.
    confirmed: Option<Lsn>,
}

enum State {
    Loading(Load),
    Streaming(WalStream),
}

struct OpenTx {
    committed_at: Option<OffsetDateTime>,
    own_write: bool,
    changes: Vec<Captured>,
}

impl PostgresSource {
    pub(crate) fn loading(settings: Arc<Settings>, table: Table, load: Load) -> Self {
        Self::new(settings, table, State::Loading(load))
    }

    pub(crate) fn streaming(settings: Arc<Settings>, table: Table, stream: WalStream) -> Self {
        Self::new(settings, table, State::Streaming(stream))
    }

    fn new(settings: Arc<Settings>, table: Table, state: State) -> Self {
        PostgresSource {
            settings,
            table,
            state,
            relations: HashMap::new(),
            open_tx: None,
            confirmed: None,
        }
    }

    /// The next slice of the load, or `None` once the load is over (and the
    /// stream now runs).
    async fn next_load_slice(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
        let State::Loading(load) = &mut self.state else {
            return Ok(None);
        };
        let offset = load.done;
        match load.next_slice(&self.table).await? {
            Some(rows) => {
                let changes = rows
                    .into_iter()
                    .map(|(record_id, row)| captured(&self.table, record_id, row, None))
                    .collect();
                Ok(Some(CapturedTx {
                    changes,
                    cursor: None,
                    position: format!("load:{}:{offset}", load.consistent_point),
                    committed_at: None,
                    own_write: false,
                    load: Some(LoadProgress {
                        done: load.done,
                        total: Some(load.total.max(load.done)),
                    }),
                }))
            }
            None => {
                let from = load.consistent_point;
                let mut stream = WalStream::start(&self.settings, from).await?;
                if let Some(lsn) = self.confirmed.take() {
                    stream.confirm(lsn);
                }
                self.state = State::Streaming(stream);
                Ok(None)
            }
        }
    }

    /// Applies one pgoutput message to the open transaction.
    fn on_message(&mut self, data: &[u8]) -> Result<(), ConnectorError> {
        let message = pgoutput::decode(data)
            .map_err(|e| ConnectorError::Fatal(format!("slot {}: {e}", self.settings.slot)))?;
        let committed_at = self.open_tx.as_ref().and_then(|t| t.committed_at);
        let mut changes = Vec::new();
        match message {
            Message::Relation(r) => {
                self.relations.insert(r.id, r);
            }
            Message::Origin { name } => {
                if let Some(tx) = &mut self.open_tx {
                    tx.own_write = name == self.settings.origin;
                }
            }
            Message::Insert { relation, new } => {
                if let Some(rel) = self.our_relation(relation) {
                    changes.extend(self.upsert(rel, &new, committed_at));
                }
            }
            Message::Update { relation, old, new } => {
                if let Some(rel) = self.our_relation(relation) {
                    // A changed key: the old record is gone.
                    if let Some(old_key) = old.as_ref().and_then(|o| key_of(rel, o, &self.table)) {
                        if Some(&old_key) != key_of(rel, &new, &self.table).as_ref() {
                            changes.push(deleted(old_key, committed_at));
                        }
                    }
                    changes.extend(self.upsert(rel, &new, committed_at));
                }
            }
            Message::Delete { relation, old } => {
                if let Some(rel) = self.our_relation(relation) {
                    match key_of(rel, &old, &self.table) {
                        Some(key) => changes.push(deleted(key, committed_at)),
                        None => self.warn_keyless("delete"),
                    }
                }
            }
            Message::Truncate { relations } => {
                if relations.iter().any(|r| self.our_relation(*r).is_some()) {
                    tracing::warn!(
                        table = %self.table.display,
                        "TRUNCATE captured: its rows cannot be named, so no deletes are sent"
                    );
                }
            }
            Message::Other(_) => {}
        }
        if !changes.is_empty() {
            match &mut self.open_tx {
                Some(tx) => tx.changes.extend(changes),
                None => {
                    return Err(ConnectorError::Fatal(format!(
                        "slot {}: a change outside a transaction",
                        self.settings.slot
                    )))
                }
            }
        }
        Ok(())
    }

    fn our_relation(&self, id: u32) -> Option<&Relation> {
        self.relations
            .get(&id)
            .filter(|r| r.namespace == self.settings.schema && r.name == self.settings.table)
    }

    fn upsert(
        &self,
        rel: &Relation,
        tuple: &Tuple,
        committed_at: Option<OffsetDateTime>,
    ) -> Option<Captured> {
        let Some(key) = key_of(rel, tuple, &self.table) else {
            self.warn_keyless("insert or update");
            return None;
        };
        let mut row = Row::new();
        for (col, cell) in rel.columns.iter().zip(tuple) {
            match cell {
                Cell::Null => {
                    row.insert(col.name.clone(), Value::Null);
                }
                // Not resent by pgoutput: left out, never null.
                Cell::Unchanged => {}
                Cell::Text(t) => {
                    row.insert(col.name.clone(), text_to_json(col.type_oid, t));
                }
            }
        }
        Some(captured(&self.table, key, row, committed_at))
    }

    fn warn_keyless(&self, what: &str) {
        tracing::warn!(
            table = %self.table.display,
            column = %self.settings.key,
            "captured {what} without the key column is skipped"
        );
    }
}

/// A row as a change: archived rows are deletes. `observed_at` is the
/// modified column's time, else the commit's.
fn captured(
    table: &Table,
    record_id: String,
    row: Row,
    committed_at: Option<OffsetDateTime>,
) -> Captured {
    let observed_at = table
        .modified
        .and_then(|m| row.get(&table.columns[m].name))
        .and_then(observed_time)
        .or(committed_at);
    let change = if table.is_archived(&row) {
        RowChange::Delete
    } else {
        RowChange::Upsert(row)
    };
    Captured {
        record_id,
        change,
        observed_at,
    }
}

/// The key column's text in a row image.
fn key_of(rel: &Relation, tuple: &Tuple, table: &Table) -> Option<String> {
    let key_name = &table.key_column().name;
    let i = rel.columns.iter().position(|c| &c.name == key_name)?;
    match tuple.get(i)? {
        Cell::Text(t) => Some(t.clone()),
        Cell::Null | Cell::Unchanged => None,
    }
}

fn deleted(record_id: String, committed_at: Option<OffsetDateTime>) -> Captured {
    Captured {
        record_id,
        change: RowChange::Delete,
        observed_at: committed_at,
    }
}

/// The cursor for a position: the LSN text.
fn cursor_of(lsn: Lsn) -> Cursor {
    Value::String(lsn.to_string())
}

/// The position a cursor names.
pub(crate) fn parse_cursor(cursor: &Cursor) -> Result<Lsn, ConnectorError> {
    cursor.as_str().and_then(Lsn::parse).ok_or_else(|| {
        ConnectorError::Fatal(
            "the saved cursor is not a PostgreSQL LSN (X/Y); remove it to load again".into(),
        )
    })
}

impl Source for PostgresSource {
    /// Write-back transactions carry the connector's mark, and the log hands
    /// every transaction over in commit order.
    fn marks_own_writes(&self) -> bool {
        true
    }

    async fn next(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
        if matches!(self.state, State::Loading(_)) {
            if let Some(slice) = self.next_load_slice().await? {
                return Ok(Some(slice));
            }
        }
        loop {
            let State::Streaming(stream) = &mut self.state else {
                // next_load_slice returns None only once streaming.
                return Err(ConnectorError::Unavailable(
                    "the initial load has not finished".into(),
                ));
            };
            match stream.next().await? {
                WalEvent::Begin { committed_at } => {
                    self.open_tx = Some(OpenTx {
                        committed_at,
                        own_write: false,
                        changes: Vec::new(),
                    });
                }
                WalEvent::Data(data) => self.on_message(&data)?,
                WalEvent::Commit {
                    lsn,
                    end_lsn,
                    committed_at,
                } => {
                    let tx = self.open_tx.take();
                    let (changes, own_write) =
                        tx.map_or((Vec::new(), false), |t| (t.changes, t.own_write));
                    return Ok(Some(CapturedTx {
                        changes,
                        // The stream resumes after the commit record, so
                        // this transaction is not read again.
                        cursor: Some(cursor_of(end_lsn)),
                        position: lsn.to_string(),
                        committed_at,
                        own_write,
                        load: None,
                    }));
                }
            }
        }
    }

    async fn confirm(&mut self, cursor: &Cursor) -> Result<(), ConnectorError> {
        let lsn = parse_cursor(cursor)?;
        match &mut self.state {
            State::Streaming(stream) => stream.confirm(lsn),
            State::Loading(_) => self.confirmed = Some(lsn),
        }
        Ok(())
    }
}
