//! The MariaDB/MySQL connector: one table captured from the binary log and
//! written back in transactions, configured by [`MysqlConfig`] (the
//! `[mysql]` section).
//!
//! Layout:
//! - `config`: the configuration keys and their checks.
//! - `schema`: the server's binary-log settings and the table's columns.
//! - `value`: column values ⇄ JSON, the same from a query and from the log.
//! - `rows`: rows read by queries (load, `fetch`, a write's image).
//! - `snapshot`: the initial load from a consistent snapshot.
//! - `stream`: the binary log as transactions.
//! - `source`: [`MysqlSource`], load then stream, as `CapturedTx`s.
//! - `sink`: [`MysqlSink`], writes in one transaction, a savepoint each.
//! - `email`: SuiteCRM's primary e-mail relation as the column `email1`.
//! - `error`: `mysql_async` errors as `ConnectorError`s.
//!
//! Capture needs the binary log on with `binlog_format=ROW`,
//! `binlog_row_image=FULL` and `binlog_row_metadata=FULL` (column names in
//! the log), and an account with REPLICATION SLAVE and BINLOG MONITOR. The
//! cursor is `{"file": "binlog.000012", "pos": 4711}`, the position after a
//! transaction's commit; the `position` text is `binlog.000012:4711` (load
//! slices: `load binlog.000012:4711 row 2000`), the same every time the
//! transaction is read.
//!
//! The write-back session sets `skip_replication = 1`; MariaDB marks the
//! events it writes with LOG_EVENT_SKIP_REPLICATION_F, and the capture of
//! such a transaction has `own_write = true`.

mod config;
mod email;
mod error;
mod rows;
mod schema;
mod sink;
mod snapshot;
mod source;
mod stream;
mod value;

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::json;

pub use config::{MysqlConfig, EMAIL_COLUMN};
pub use sink::MysqlSink;
pub use source::MysqlSource;

use crate::contract::{Connector, ConnectorError, Cursor};
use config::Settings;

/// A place in the binary log: a file and the byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl BinlogPos {
    fn cursor(&self) -> Cursor {
        json!({ "file": self.file, "pos": self.pos })
    }

    fn text(&self) -> String {
        format!("{}:{}", self.file, self.pos)
    }

    fn from_cursor(cursor: &Cursor) -> Result<Self, ConnectorError> {
        let file = cursor.get("file").and_then(|f| f.as_str());
        let pos = cursor.get("pos").and_then(|p| p.as_u64());
        match (file, pos) {
            (Some(file), Some(pos)) if !file.is_empty() => Ok(BinlogPos {
                file: file.to_string(),
                pos,
            }),
            _ => Err(ConnectorError::Fatal(
                "the saved cursor is not a MariaDB binary log position ({\"file\", \"pos\"})"
                    .into(),
            )),
        }
    }
}

/// A connection with the session every part of the connector expects:
/// UTC (TIMESTAMP values read the same as in the binary log) and UTF-8.
pub(crate) async fn connect(s: &Settings) -> Result<Conn, ConnectorError> {
    let mut conn = Conn::new(s.opts.clone())
        .await
        .map_err(|e| error::classify(&e, "connecting"))?;
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4")
        .await
        .map_err(|e| error::classify(&e, "setting up the session"))?;
    Ok(conn)
}

impl MysqlConfig {
    /// Checks the configuration, the server's binary-log settings and the
    /// table (and the SuiteCRM e-mail tables when asked for).
    async fn prepare(&self) -> Result<(Arc<Settings>, Arc<schema::Table>), ConnectorError> {
        let s = Arc::new(self.settings()?);
        let mut conn = connect(&s).await?;
        schema::check_server(&mut conn, &s).await?;
        let table = schema::table(&mut conn, &s).await?;
        if s.suitecrm_email {
            for t in [email::REL_TABLE, email::ADDRESS_TABLE] {
                if schema::columns(&mut conn, &s.database, t).await?.is_none() {
                    return Err(ConnectorError::Fatal(format!(
                        "[mysql] suitecrm_email: table {t} not found in database {}",
                        s.database
                    )));
                }
            }
        }
        let _ = conn.disconnect().await;
        Ok((s, Arc::new(table)))
    }
}

impl Connector for MysqlConfig {
    type Source = MysqlSource;
    type Sink = MysqlSink;

    async fn open_source(&self, cursor: Option<Cursor>) -> Result<MysqlSource, ConnectorError> {
        let (s, table) = self.prepare().await?;
        MysqlSource::open(s, table, cursor).await
    }

    async fn open_sink(&self) -> Result<MysqlSink, ConnectorError> {
        let (s, table) = self.prepare().await?;
        MysqlSink::open(s, table).await
    }
}
