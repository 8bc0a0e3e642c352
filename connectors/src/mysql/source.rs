//! Change capture of one table: the initial load (when there is no cursor),
//! then the binary log from the load's snapshot position or from the
//! cursor, one [`CapturedTx`] per transaction.
//!
//! A row that cannot be read (text that is not UTF-8) is left out of its
//! transaction and reported as `Err(Record)` by the `next` call just before
//! the one that returns the transaction: the rows around it go on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use mysql_async::Conn;
use serde_json::Value as Json;

use super::config::{Settings, EMAIL_COLUMN};
use super::email::{self, MODULE};
use super::error::classify;
use super::schema::{self, Table};
use super::snapshot::Load;
use super::stream::{Image, RawTx, Stream, Watched};
use super::value::{change_time, record_id, to_json, Origin};
use super::BinlogPos;
use crate::contract::{
    Captured, CapturedTx, ConnectorError, Cursor, LoadProgress, Row, RowChange, Source,
};

/// The MariaDB source of one table.
pub struct MysqlSource {
    s: Arc<Settings>,
    table: Arc<Table>,
    phase: Phase,
    /// Refused rows, then the transaction they were left out of.
    ready: VecDeque<Result<CapturedTx, ConnectorError>>,
}

enum Phase {
    Loading(Box<Load>),
    /// Load done or a cursor given: the stream opens on the next call.
    Ready {
        from: BinlogPos,
        query: Conn,
    },
    Streaming {
        stream: Box<Stream>,
        query: Conn,
    },
    /// Transient while switching phases.
    Gone,
}

impl MysqlSource {
    pub(crate) async fn open(
        s: Arc<Settings>,
        table: Arc<Table>,
        cursor: Option<Cursor>,
    ) -> Result<Self, ConnectorError> {
        let conn = super::connect(&s).await?;
        let phase = match cursor {
            Some(c) => Phase::Ready {
                from: BinlogPos::from_cursor(&c)?,
                query: conn,
            },
            None => Phase::Loading(Box::new(Load::begin(conn, s.clone(), table.clone()).await?)),
        };
        Ok(MysqlSource {
            s,
            table,
            phase,
            ready: VecDeque::new(),
        })
    }

    async fn load_slice(&mut self) -> Result<(), ConnectorError> {
        let Phase::Loading(load) = &mut self.phase else {
            return Ok(());
        };
        let before = load.done;
        let slice = load.next_slice().await?;
        let tx = CapturedTx {
            changes: slice.changes,
            // The last slice carries the snapshot's position: from there on
            // the load is complete and a restart streams from it.
            cursor: load.finished.then(|| load.start.cursor()),
            position: format!("load {} row {before}", load.start.text()),
            committed_at: None,
            own_write: false,
            load: Some(LoadProgress {
                done: load.done,
                total: Some(load.total.max(load.done)),
            }),
        };
        self.ready.extend(slice.refused.into_iter().map(Err));
        self.ready.push_back(Ok(tx));
        if load.finished {
            if let Phase::Loading(load) = std::mem::replace(&mut self.phase, Phase::Gone) {
                let from = load.start.clone();
                self.phase = Phase::Ready {
                    from,
                    query: load.into_conn(),
                };
            }
        }
        Ok(())
    }

    async fn stream_tx(&mut self) -> Result<(), ConnectorError> {
        if let Phase::Ready { .. } = self.phase {
            if let Phase::Ready { from, query } = std::mem::replace(&mut self.phase, Phase::Gone) {
                match Stream::open(self.s.clone(), &from).await {
                    Ok(stream) => {
                        self.phase = Phase::Streaming {
                            stream: Box::new(stream),
                            query,
                        }
                    }
                    Err(e) => {
                        self.phase = Phase::Ready { from, query };
                        return Err(e);
                    }
                }
            }
        }
        let Phase::Streaming { stream, query } = &mut self.phase else {
            return Err(ConnectorError::Unavailable("the source is closed".into()));
        };
        let raw = stream.next_tx().await?;
        if raw.table_ddl {
            // The table's columns may have changed: read them again.
            self.table = Arc::new(schema::table(query, &self.s).await?);
        }
        let (tx, refused) = build_tx(&self.s, &self.table, query, raw).await?;
        self.ready.extend(refused.into_iter().map(Err));
        self.ready.push_back(Ok(tx));
        Ok(())
    }
}

impl Source for MysqlSource {
    /// Write-back transactions carry the connector's mark, and the log hands
    /// every transaction over in commit order.
    fn marks_own_writes(&self) -> bool {
        true
    }

    async fn next(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return item.map(Some);
            }
            match self.phase {
                Phase::Loading(_) => self.load_slice().await?,
                _ => self.stream_tx().await?,
            }
        }
    }

    /// The runner keeps the cursor; the server keeps nothing for a replica.
    async fn confirm(&mut self, _cursor: &Cursor) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A binary-log row of the configured table as a record id and row.
fn decode_image(
    s: &Settings,
    table: &Table,
    image: Image,
) -> Result<(String, Row), ConnectorError> {
    let mut row = Row::new();
    let mut refused = None;
    for (name, value) in image {
        // A column added since the table was read is not known yet.
        let Some(col) = table.column(&name) else {
            continue;
        };
        match to_json(&col.kind, value, Origin::Binlog) {
            Ok(Some(v)) => {
                row.insert(col.name.clone(), v);
            }
            Ok(None) => {}
            Err(reason) => refused = refused.or(Some((col.name.clone(), reason))),
        }
    }
    let key = table.key();
    let Some(id) = row.get(&key.name).and_then(record_id) else {
        return Err(ConnectorError::Record {
            record_id: "(unreadable key)".into(),
            reason: format!(
                "table {} column {}: key is null or unreadable",
                s.table, key.name
            ),
        });
    };
    match refused {
        Some((column, reason)) => Err(ConnectorError::Record {
            record_id: id,
            reason: format!("table {} column {column}: {reason}", s.table),
        }),
        None => Ok((id, row)),
    }
}

/// The change a row's after image stands for: archived rows are deletes.
fn change_of(table: &Table, id: String, row: Row) -> Captured {
    let observed_at = table
        .modified()
        .and_then(|m| row.get(&m.name))
        .and_then(change_time);
    let archived = table
        .archive()
        .and_then(|a| row.get(&a.name))
        .is_some_and(|v| v.as_i64() == Some(1));
    Captured {
        record_id: id,
        change: if archived {
            RowChange::Delete
        } else {
            RowChange::Upsert(row)
        },
        observed_at,
    }
}

/// A text column of a SuiteCRM e-mail table's row image.
fn image_text(image: &Image, column: &str) -> Option<String> {
    image
        .iter()
        .find(|(n, _)| n == column)
        .and_then(|(_, v)| match v {
            mysql_async::Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        })
}

/// The transaction as captured changes, with the SuiteCRM primary e-mail
/// address read now for every contact it touched.
async fn build_tx(
    s: &Settings,
    table: &Table,
    query: &mut Conn,
    raw: RawTx,
) -> Result<(CapturedTx, Vec<ConnectorError>), ConnectorError> {
    let mut changes = Vec::new();
    let mut refused = Vec::new();
    let mut email_contacts = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for ev in raw.rows {
        match ev.table {
            Watched::Main => {
                let before = ev.before.map(|i| decode_image(s, table, i));
                let after = ev.after.map(|i| decode_image(s, table, i));
                match (before, after) {
                    (Some(Err(e)), _) | (_, Some(Err(e))) => refused.push(e),
                    (Some(Ok((old, _))), Some(Ok((new, row)))) => {
                        // The key itself changed: the old record is gone.
                        if old != new {
                            changes.push(Captured {
                                record_id: old,
                                change: RowChange::Delete,
                                observed_at: None,
                            });
                        }
                        changes.push(change_of(table, new, row));
                    }
                    (None, Some(Ok((id, row)))) => changes.push(change_of(table, id, row)),
                    (Some(Ok((id, _))), None) => changes.push(Captured {
                        record_id: id,
                        change: RowChange::Delete,
                        observed_at: None,
                    }),
                    (None, None) => {}
                }
            }
            Watched::EmailRel => {
                for image in ev.before.iter().chain(ev.after.iter()) {
                    if image_text(image, "bean_module").as_deref() == Some(MODULE) {
                        email_contacts.extend(image_text(image, "bean_id"));
                    }
                }
            }
            Watched::EmailAddress => {
                for image in ev.before.iter().chain(ev.after.iter()) {
                    addresses.extend(image_text(image, "id"));
                }
            }
        }
    }
    // The runner drops the changes of the connector's own writes: no need
    // to read e-mail addresses for them.
    if s.suitecrm_email && !raw.own_write {
        add_primary_addresses(s, table, query, &mut changes, email_contacts, addresses).await?;
    }
    let tx = CapturedTx {
        changes,
        cursor: Some(raw.end.cursor()),
        position: raw.end.text(),
        committed_at: raw.committed_at,
        own_write: raw.own_write,
        load: None,
    };
    Ok((tx, refused))
}

async fn add_primary_addresses(
    s: &Settings,
    table: &Table,
    query: &mut Conn,
    changes: &mut Vec<Captured>,
    mut contacts: BTreeSet<String>,
    addresses: BTreeSet<String>,
) -> Result<(), ConnectorError> {
    let err = |e: mysql_async::Error| classify(&e, "reading primary e-mail addresses");
    if !addresses.is_empty() {
        contacts.extend(
            email::contacts_of_addresses(query, &s.database, &addresses)
                .await
                .map_err(err)?,
        );
    }
    let upserted: BTreeSet<String> = changes
        .iter()
        .filter(|c| matches!(c.change, RowChange::Upsert(_)))
        .map(|c| c.record_id.clone())
        .collect();
    // Contacts whose e-mail changed without a change to their own row:
    // only those that exist and are not archived.
    let only_email: BTreeSet<String> = contacts.difference(&upserted).cloned().collect();
    let live = live_records(s, table, query, &only_email).await?;
    let all: BTreeSet<String> = upserted.union(&live).cloned().collect();
    if all.is_empty() {
        return Ok(());
    }
    let found: BTreeMap<String, String> = email::primary_addresses(query, &s.database, &all)
        .await
        .map_err(err)?;
    let address_of = |id: &str| {
        found
            .get(id)
            .cloned()
            .map(Json::String)
            .unwrap_or(Json::Null)
    };
    for c in changes.iter_mut() {
        if let RowChange::Upsert(row) = &mut c.change {
            row.insert(EMAIL_COLUMN.to_string(), address_of(&c.record_id));
        }
    }
    for id in live {
        let mut row = Row::new();
        row.insert(EMAIL_COLUMN.to_string(), address_of(&id));
        changes.push(Captured {
            record_id: id,
            change: RowChange::Upsert(row),
            observed_at: None,
        });
    }
    Ok(())
}

/// Which of `ids` are records of the table that are not archived.
async fn live_records(
    s: &Settings,
    table: &Table,
    query: &mut Conn,
    ids: &BTreeSet<String>,
) -> Result<BTreeSet<String>, ConnectorError> {
    use mysql_async::prelude::Queryable;
    let mut live = BTreeSet::new();
    let key = table.key();
    let params: Vec<mysql_async::Value> = ids
        .iter()
        .filter_map(|id| super::value::key_param(&key.kind, id).ok())
        .collect();
    for chunk in params.chunks(500) {
        let archived = table
            .archive()
            .map(|a| format!(" AND NOT ({} <=> 1)", schema::ident(&a.name)))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {k} FROM {}.{} WHERE {k} IN ({}){archived}",
            schema::ident(&s.database),
            schema::ident(&s.table),
            vec!["?"; chunk.len()].join(", "),
            k = schema::ident(&key.name),
        );
        let rows: Vec<mysql_async::Row> = query
            .exec(sql, chunk.to_vec())
            .await
            .map_err(|e| classify(&e, &format!("reading table {}", s.table)))?;
        for mut row in rows {
            let value = row
                .take::<mysql_async::Value, _>(0)
                .unwrap_or(mysql_async::Value::NULL);
            if let Ok(Some(v)) = to_json(&key.kind, value, Origin::Query) {
                live.extend(record_id(&v));
            }
        }
    }
    Ok(live)
}
