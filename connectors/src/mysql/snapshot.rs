//! The initial load: the table's rows from one consistent snapshot, in
//! slices in key order, and the binary-log position the snapshot is
//! consistent with, where the stream starts. MariaDB gives that position
//! with the snapshot itself (`binlog_snapshot_file`/`_position` after
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`), without a global lock.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row as SqlRow, Value as Sql};

use super::config::Settings;
use super::error::classify;
use super::rows::{add_emails, decode, select_sql};
use super::schema::{ident, text, Table};
use super::BinlogPos;
use crate::contract::{Captured, ConnectorError, RowChange};

/// A load in progress: its snapshot transaction is open on `conn`.
pub(crate) struct Load {
    conn: Conn,
    s: Arc<Settings>,
    table: Arc<Table>,
    /// Where the stream starts once the load is done.
    pub start: BinlogPos,
    last_key: Option<Sql>,
    /// Rows read so far.
    pub done: u64,
    /// Live rows in the snapshot.
    pub total: u64,
    pub finished: bool,
}

/// One slice of the load: the rows, and those that could not be read.
pub(crate) struct Slice {
    pub changes: Vec<Captured>,
    pub refused: Vec<ConnectorError>,
}

fn live_filter(table: &Table) -> String {
    // `<=>`: a NULL flag is not archived.
    table
        .archive()
        .map(|a| format!(" NOT ({} <=> 1)", ident(&a.name)))
        .unwrap_or_default()
}

impl Load {
    /// Opens the snapshot and reads its position and row count.
    pub(crate) async fn begin(
        mut conn: Conn,
        s: Arc<Settings>,
        table: Arc<Table>,
    ) -> Result<Self, ConnectorError> {
        let err = |e: mysql_async::Error| classify(&e, "opening the initial load's snapshot");
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(err)?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await
            .map_err(err)?;
        let status: Vec<SqlRow> = conn
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(err)?;
        let (mut file, mut pos) = (None, None);
        for row in &status {
            match text(row, 0).as_deref() {
                Some("Binlog_snapshot_file") => file = text(row, 1),
                Some("Binlog_snapshot_position") => {
                    pos = text(row, 1).and_then(|p| p.parse::<u64>().ok())
                }
                _ => {}
            }
        }
        let start = match (file, pos) {
            (Some(file), Some(pos)) if !file.is_empty() => BinlogPos { file, pos },
            _ => {
                return Err(ConnectorError::Fatal(
                    "the server gives no binlog_snapshot_file/position: the initial load \
                     needs MariaDB with the binary log on"
                        .into(),
                ))
            }
        };
        let filter = live_filter(&table);
        let count_sql = format!(
            "SELECT COUNT(*) FROM {}.{}{}",
            ident(&s.database),
            ident(&s.table),
            if filter.is_empty() {
                String::new()
            } else {
                format!(" WHERE{filter}")
            }
        );
        let total: Option<u64> = conn.query_first(count_sql).await.map_err(err)?;
        Ok(Load {
            conn,
            s,
            table,
            start,
            last_key: None,
            done: 0,
            total: total.unwrap_or(0),
            finished: false,
        })
    }

    /// The next slice in key order; the last one (shorter than a full
    /// slice, possibly empty) ends the snapshot transaction.
    pub(crate) async fn next_slice(&mut self) -> Result<Slice, ConnectorError> {
        let key = ident(&self.table.key().name);
        let mut conditions = Vec::new();
        let filter = live_filter(&self.table);
        if !filter.is_empty() {
            conditions.push(filter);
        }
        let mut params = Vec::new();
        if let Some(last) = &self.last_key {
            conditions.push(format!(" {key} > ?"));
            params.push(last.clone());
        }
        let where_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE{}", conditions.join(" AND"))
        };
        let sql = format!(
            "{}{where_sql} ORDER BY {key} LIMIT {}",
            select_sql(&self.s, &self.table),
            self.s.load_batch
        );
        let rows: Vec<SqlRow> = self
            .conn
            .exec(sql, params)
            .await
            .map_err(|e| classify(&e, &format!("loading table {}", self.s.table)))?;
        let full = rows.len() >= self.s.load_batch as usize;
        let mut read = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for row in rows {
            // The raw key is needed to page on even when a value is refused.
            let raw_key = row.as_ref(0).cloned();
            match decode(&self.s, &self.table, row) {
                Ok(r) => read.push(r),
                Err(e) => refused.push(e),
            }
            if let Some(k) = raw_key {
                self.last_key = Some(k);
            }
        }
        self.done += (read.len() + refused.len()) as u64;
        add_emails(
            &mut self.conn,
            &self.s,
            read.iter_mut().map(|r| (r.record_id.as_str(), &mut r.row)),
        )
        .await?;
        let observed = self.table.modified().map(|m| m.name.clone());
        let changes = read
            .into_iter()
            .map(|r| Captured {
                observed_at: observed
                    .as_ref()
                    .and_then(|m| r.row.get(m))
                    .and_then(super::value::change_time),
                record_id: r.record_id,
                change: RowChange::Upsert(r.row),
            })
            .collect();
        if !full {
            self.finished = true;
            self.conn
                .query_drop("COMMIT")
                .await
                .map_err(|e| classify(&e, "ending the initial load's snapshot"))?;
        }
        Ok(Slice { changes, refused })
    }

    /// Gives the connection back once the load is finished.
    pub(crate) fn into_conn(self) -> Conn {
        self.conn
    }
}
