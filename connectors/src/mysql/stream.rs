//! The binary log as transactions: events read from a position, grouped up
//! to their commit (an XID event, a `COMMIT` query, or a statement that is a
//! transaction of its own such as DDL), with the rows of the tables the
//! connector watches, the commit's end position and time, and whether the
//! transaction carried MariaDB's skip-replication flag.

use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Value as Sql};
use time::OffsetDateTime;

use super::config::Settings;
use super::email::{ADDRESS_TABLE, REL_TABLE};
use super::error::classify;
use super::BinlogPos;
use crate::contract::ConnectorError;

/// LOG_EVENT_SKIP_REPLICATION_F: the event was written by a session with
/// `skip_replication = 1` (the connector's own write-back).
const SKIP_REPLICATION_FLAG: u16 = 0x8000;

/// How often the server sends a heartbeat on an idle binary log.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Silence after which the connection counts as lost (three heartbeats).
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Which watched table a rows event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watched {
    /// The configured table.
    Main,
    /// SuiteCRM's `email_addr_bean_rel`.
    EmailRel,
    /// SuiteCRM's `email_addresses`.
    EmailAddress,
}

/// One row image: column name → value, as the binary log gives them.
pub(crate) type Image = Vec<(String, Sql)>;

/// One changed row of a watched table.
#[derive(Debug)]
pub(crate) struct RowEvent {
    pub table: Watched,
    pub before: Option<Image>,
    pub after: Option<Image>,
}

/// One committed transaction.
#[derive(Debug)]
pub(crate) struct RawTx {
    /// The position right after its commit.
    pub end: BinlogPos,
    pub committed_at: Option<OffsetDateTime>,
    pub own_write: bool,
    pub rows: Vec<RowEvent>,
    /// A statement of its own that names the configured table (DDL): its
    /// columns may have changed.
    pub table_ddl: bool,
}

/// The binary log from a position.
pub(crate) struct Stream {
    events: BinlogStream,
    s: std::sync::Arc<Settings>,
    file: String,
    /// Whether the format description event has come: before it, events
    /// carry a checksum the reader does not know of yet.
    seen_format: bool,
    open: Option<RawTx>,
}

impl Stream {
    /// Connects as a replica with the connector's server id and asks for the
    /// binary log from `from`.
    pub(crate) async fn open(
        s: std::sync::Arc<Settings>,
        from: &BinlogPos,
    ) -> Result<Self, ConnectorError> {
        let mut conn = super::connect(&s).await?;
        // The server sends heartbeats on an idle log, so that silence means
        // a lost connection (in nanoseconds).
        conn.query_drop(format!(
            "SET @master_heartbeat_period = {}",
            HEARTBEAT.as_nanos()
        ))
        .await
        .map_err(|e| classify(&e, "setting up the binary log connection"))?;
        let request = BinlogStreamRequest::new(s.server_id)
            .with_filename(from.file.as_bytes())
            .with_pos(from.pos);
        let events = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| stream_error(&e, from))?;
        Ok(Stream {
            events,
            s,
            file: from.file.clone(),
            seen_format: false,
            open: None,
        })
    }

    fn current(&mut self) -> &mut RawTx {
        self.open.get_or_insert_with(|| RawTx {
            end: BinlogPos {
                file: String::new(),
                pos: 0,
            },
            committed_at: None,
            own_write: false,
            rows: Vec::new(),
            table_ddl: false,
        })
    }

    fn finish(&mut self, event: &Event) -> RawTx {
        let header = event.header();
        let file = self.file.clone();
        let mut tx = self.open.take().unwrap_or_else(|| RawTx {
            end: BinlogPos {
                file: String::new(),
                pos: 0,
            },
            committed_at: None,
            own_write: false,
            rows: Vec::new(),
            table_ddl: false,
        });
        tx.end = BinlogPos {
            file,
            pos: u64::from(header.log_pos()),
        };
        tx.committed_at = OffsetDateTime::from_unix_timestamp(i64::from(header.timestamp()))
            .ok()
            .map(|at| super::value::within_second(at, OffsetDateTime::now_utc()));
        tx.own_write |= header.flags_raw() & SKIP_REPLICATION_FLAG != 0;
        tx
    }

    /// The next committed transaction.
    pub(crate) async fn next_tx(&mut self) -> Result<RawTx, ConnectorError> {
        loop {
            let event = match tokio::time::timeout(IDLE_LIMIT, self.events.next()).await {
                Err(_) => {
                    return Err(ConnectorError::Unavailable(format!(
                        "no binary log event or heartbeat from MariaDB for {IDLE_LIMIT:?}"
                    )))
                }
                Ok(None) => {
                    return Err(ConnectorError::Unavailable(
                        "MariaDB closed the binary log stream".into(),
                    ))
                }
                Ok(Some(Err(e))) => {
                    let at = BinlogPos {
                        file: self.file.clone(),
                        pos: 0,
                    };
                    return Err(stream_error(&e, &at));
                }
                Ok(Some(Ok(event))) => event,
            };
            if let Some(tx) = self.handle(&event)? {
                return Ok(tx);
            }
        }
    }

    /// Takes one event in; a transaction when it ends one.
    fn handle(&mut self, event: &Event) -> Result<Option<RawTx>, ConnectorError> {
        let header = event.header();
        let own = header.flags_raw() & SKIP_REPLICATION_FLAG != 0;
        let data = event.read_data().map_err(|e| {
            ConnectorError::Fatal(format!(
                "cannot read the binary log event before {}:{}: {e}",
                self.file,
                header.log_pos()
            ))
        })?;
        match data {
            // MariaDB's own events (GTID lists, checkpoints): not needed.
            None => Ok(None),
            Some(EventData::FormatDescriptionEvent(_)) => {
                self.seen_format = true;
                Ok(None)
            }
            Some(EventData::RotateEvent(r)) => {
                let mut name = r.name_raw();
                // The artificial rotate that opens the stream comes before
                // the format description, so the reader left its CRC32 (the
                // connection asks for checksums) at the end of the name.
                if !self.seen_format {
                    name = &name[..name.len().saturating_sub(4)];
                }
                self.file = String::from_utf8_lossy(name).into_owned();
                Ok(None)
            }
            Some(EventData::QueryEvent(q)) => {
                let sql = String::from_utf8_lossy(q.query_raw());
                let sql = sql.trim();
                if sql.eq_ignore_ascii_case("BEGIN") {
                    self.open = None;
                    self.current().own_write |= own;
                    Ok(None)
                } else if sql.eq_ignore_ascii_case("COMMIT") || sql.eq_ignore_ascii_case("ROLLBACK")
                {
                    Ok(Some(self.finish(event)))
                } else if sql.starts_with('#') || self.open.is_some() {
                    // A dummy event standing in for one an old replica cannot
                    // read, or a statement inside a transaction (SAVEPOINT).
                    Ok(None)
                } else {
                    let names_table = sql.to_lowercase().contains(&self.s.table.to_lowercase());
                    let mut tx = self.finish(event);
                    tx.table_ddl = names_table;
                    Ok(Some(tx))
                }
            }
            Some(EventData::XidEvent(_)) => Ok(Some(self.finish(event))),
            Some(EventData::RowsEvent(rows)) => {
                self.current().own_write |= own;
                let Some(tme) = self.events.get_tme(rows.table_id()) else {
                    return Err(ConnectorError::Fatal(format!(
                        "a rows event before {}:{} has no table map",
                        self.file,
                        header.log_pos()
                    )));
                };
                if tme.database_name() != self.s.database.as_str() {
                    return Ok(None);
                }
                let table_name = tme.table_name();
                let watched = if table_name == self.s.table.as_str() {
                    Watched::Main
                } else if self.s.suitecrm_email && table_name == REL_TABLE {
                    Watched::EmailRel
                } else if self.s.suitecrm_email && table_name == ADDRESS_TABLE {
                    Watched::EmailAddress
                } else {
                    return Ok(None);
                };
                let mut events = Vec::new();
                for pair in rows.rows(tme) {
                    let (before, after) = pair.map_err(|e| {
                        ConnectorError::Fatal(format!(
                            "cannot read a row of table {table_name} before {}:{}: {e}",
                            self.file,
                            header.log_pos()
                        ))
                    })?;
                    events.push(RowEvent {
                        table: watched,
                        before: before.map(image).transpose()?,
                        after: after.map(image).transpose()?,
                    });
                }
                self.current().rows.extend(events);
                Ok(None)
            }
            Some(_) => Ok(None),
        }
    }
}

/// A binary-log row as column names and values. Without column names in
/// the table map (binlog_row_metadata not FULL) the row cannot be read.
fn image(mut row: BinlogRow) -> Result<Image, ConnectorError> {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        if name.starts_with('@') {
            return Err(ConnectorError::Fatal(
                "the binary log carries no column names: set binlog_row_metadata=FULL".into(),
            ));
        }
        // JSON documents (MySQL's binary JSON) are not read.
        if let Some(BinlogValue::Value(v)) = row.take(i) {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// An error reading the binary log: 1236 (the position is gone, purged or
/// never there) cannot be retried; the rest can.
fn stream_error(e: &mysql_async::Error, from: &BinlogPos) -> ConnectorError {
    match e {
        mysql_async::Error::Server(s) if s.code == 1236 => ConnectorError::Fatal(format!(
            "MariaDB cannot send the binary log from {} ({}): if the file was purged, \
             delete the connector's cursor to load the table again",
            from.text(),
            s.message
        )),
        other => classify(other, "reading the binary log"),
    }
}
