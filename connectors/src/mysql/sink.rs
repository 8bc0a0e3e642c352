//! Write-back: a batch of writes in one transaction. A batch of upserts
//! first takes the fast path (`batch`); when the server refuses a record,
//! or for other batches, a savepoint per write lets a refused row roll
//! back alone while the others commit. The
//! session sets `skip_replication`, so the binary log marks these
//! transactions as the connector's own and capture reports them with
//! `own_write`.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as Sql};
use serde_json::Value as Json;

use super::config::{Settings, EMAIL_COLUMN};
use super::error::{classify, is_record_error, record_reason};
use super::schema::{ident, Table};
use super::value::{key_param, to_param, Kind};
use super::{email, rows};
use crate::contract::{Applied, ConnectorError, Row, Sink, Write, WriteOp};

mod batch;

/// The MariaDB sink of one table.
pub struct MysqlSink {
    s: Arc<Settings>,
    table: Arc<Table>,
    conn: Conn,
}

/// Why one write failed: its record alone, or the whole batch.
enum Failure {
    Record(String, String),
    Batch(ConnectorError),
}

impl MysqlSink {
    pub(crate) async fn open(s: Arc<Settings>, table: Arc<Table>) -> Result<Self, ConnectorError> {
        let mut conn = super::connect(&s).await?;
        conn.query_drop("SET SESSION skip_replication = 1")
            .await
            .map_err(|e| classify(&e, "marking the write-back session (SET skip_replication)"))?;
        // A value too long or of the wrong type must be refused, not
        // silently cut to fit (non-strict mode only warns).
        conn.query_drop(
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')",
        )
        .await
        .map_err(|e| classify(&e, "setting the write-back session's sql_mode"))?;
        Ok(MysqlSink { s, table, conn })
    }

    async fn apply_one(&mut self, write: &Write) -> Result<Applied, Failure> {
        match (&write.op, &write.record_id) {
            (WriteOp::Retire, Some(id)) => self.retire(id).await,
            (WriteOp::Retire, None) => Err(Failure::Record(
                "(new)".into(),
                format!("table {}: a retire needs a record id", self.s.table),
            )),
            (WriteOp::Upsert(row), id) => self.upsert(id.as_deref(), row).await,
        }
    }

    fn record(&self, id: &str, e: &mysql_async::Error) -> Failure {
        if is_record_error(e) {
            Failure::Record(
                id.to_string(),
                format!("table {}: {}", self.s.table, record_reason(e)),
            )
        } else {
            Failure::Batch(classify(e, &format!("writing table {}", self.s.table)))
        }
    }

    fn key(&self, id: &str) -> Result<Sql, Failure> {
        key_param(&self.table.key().kind, id).map_err(|reason| {
            Failure::Record(
                id.to_string(),
                format!(
                    "table {} column {}: {reason}",
                    self.s.table,
                    self.table.key().name
                ),
            )
        })
    }

    fn target(&self) -> String {
        format!("{}.{}", ident(&self.s.database), ident(&self.s.table))
    }

    async fn retire(&mut self, id: &str) -> Result<Applied, Failure> {
        let key = self.key(id)?;
        let key_col = ident(&self.table.key().name);
        let sql = match self.table.archive() {
            Some(archive) => {
                let modified = self
                    .table
                    .modified()
                    .map(|m| format!(", {} = UTC_TIMESTAMP()", ident(&m.name)))
                    .unwrap_or_default();
                format!(
                    "UPDATE {} SET {} = 1{modified} WHERE {key_col} = ?",
                    self.target(),
                    ident(&archive.name)
                )
            }
            None => format!("DELETE FROM {} WHERE {key_col} = ?", self.target()),
        };
        self.conn
            .exec_drop(sql, vec![key])
            .await
            .map_err(|e| self.record(id, &e))?;
        let changed = self.conn.affected_rows() > 0;
        Ok(Applied {
            record_id: id.to_string(),
            image: None,
            unchanged: !changed,
        })
    }

    /// The columns to set: every written column but the key and the
    /// modified column (set by the server), checked against the table.
    fn assignments(&self, id: &str, row: &Row) -> Result<Vec<(String, Sql)>, Failure> {
        let refuse = |col: &str, reason: &str| {
            Failure::Record(
                id.to_string(),
                format!("table {} column {col}: {reason}", self.s.table),
            )
        };
        let mut out = Vec::new();
        for (name, value) in row {
            if self.s.suitecrm_email && name == EMAIL_COLUMN {
                continue;
            }
            let Some(col) = self.table.column(name) else {
                return Err(refuse(name, "no such column"));
            };
            if col.name == self.table.key().name
                || Some(col.name.as_str()) == self.table.modified().map(|m| m.name.as_str())
            {
                continue;
            }
            if col.kind == Kind::Skip {
                return Err(refuse(&col.name, "a column of this type is not written"));
            }
            let param = to_param(&col.kind, value).map_err(|r| refuse(&col.name, r))?;
            out.push((col.name.clone(), param));
        }
        Ok(out)
    }

    async fn upsert(&mut self, id: Option<&str>, row: &Row) -> Result<Applied, Failure> {
        let shown = id.unwrap_or("(new)");
        let mut sets = self.assignments(shown, row)?;
        let email = match row.get(EMAIL_COLUMN).filter(|_| self.s.suitecrm_email) {
            None => None,
            Some(Json::Null) => Some(None),
            Some(Json::String(s)) => Some(Some(s.clone())),
            Some(_) => {
                return Err(Failure::Record(
                    shown.to_string(),
                    format!("table {} column {EMAIL_COLUMN}: not text", self.s.table),
                ))
            }
        };
        let modified = self.table.modified().map(|m| m.name.clone());
        let key_col = self.table.key().name.clone();
        let exists = match id {
            Some(id) => {
                let key = self.key(id)?;
                let sql = format!(
                    "SELECT 1 FROM {} WHERE {} = ? FOR UPDATE",
                    self.target(),
                    ident(&key_col)
                );
                let found: Vec<mysql_async::Row> = self
                    .conn
                    .exec(sql, vec![key])
                    .await
                    .map_err(|e| self.record(id, &e))?;
                !found.is_empty()
            }
            None => false,
        };
        // MariaDB logs no row for an update to equal values.
        let mut changed = true;
        let record_id = if exists {
            let id = id.unwrap_or_default().to_string();
            changed = false;
            let mut parts: Vec<String> = sets
                .iter()
                .map(|(c, _)| format!("{} = ?", ident(c)))
                .collect();
            parts.extend(
                modified
                    .iter()
                    .map(|m| format!("{} = UTC_TIMESTAMP()", ident(m))),
            );
            if !parts.is_empty() {
                let sql = format!(
                    "UPDATE {} SET {} WHERE {} = ?",
                    self.target(),
                    parts.join(", "),
                    ident(&key_col)
                );
                let mut params: Vec<Sql> = sets.drain(..).map(|(_, v)| v).collect();
                params.push(self.key(&id)?);
                self.conn
                    .exec_drop(sql, params)
                    .await
                    .map_err(|e| self.record(&id, &e))?;
                changed = self.conn.affected_rows() > 0;
            }
            id
        } else {
            self.insert(id, sets, modified.as_deref()).await?
        };
        if let Some(address) = email {
            email::write_primary(
                &mut self.conn,
                &self.s.database,
                &record_id,
                address.as_deref(),
            )
            .await
            .map_err(|e| self.record(&record_id, &e))?;
        }
        let image = rows::fetch(&mut self.conn, &self.s, &self.table, &record_id)
            .await
            .map_err(|e| match e {
                ConnectorError::Record { record_id, reason } => Failure::Record(record_id, reason),
                other => Failure::Batch(other),
            })?;
        match image {
            Some(image) => Ok(Applied {
                record_id,
                image: Some(image),
                unchanged: !changed,
            }),
            None => Err(Failure::Record(
                record_id,
                format!(
                    "table {}: the row was not there after the write",
                    self.s.table
                ),
            )),
        }
    }

    /// Inserts a record: with the given id, else a new UUID for a text key
    /// or the server's next value for an auto-increment key.
    async fn insert(
        &mut self,
        id: Option<&str>,
        sets: Vec<(String, Sql)>,
        modified: Option<&str>,
    ) -> Result<String, Failure> {
        let key = self.table.key().clone();
        let given = match id {
            Some(id) => Some(id.to_string()),
            None if key.auto_increment => None,
            None if key.kind == Kind::Text => Some(uuid::Uuid::now_v7().to_string()),
            None => {
                return Err(Failure::Record(
                    "(new)".into(),
                    format!(
                        "table {} column {}: a new record needs a key, and the key is \
                         neither text nor auto-increment",
                        self.s.table, key.name
                    ),
                ))
            }
        };
        let shown = given.clone().unwrap_or_else(|| "(new)".into());
        let mut cols: Vec<String> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut params: Vec<Sql> = Vec::new();
        if let Some(id) = &given {
            cols.push(ident(&key.name));
            values.push("?".into());
            params.push(self.key(id)?);
        }
        for (c, v) in sets {
            cols.push(ident(&c));
            values.push("?".into());
            params.push(v);
        }
        if let Some(m) = modified {
            cols.push(ident(m));
            values.push("UTC_TIMESTAMP()".into());
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.target(),
            cols.join(", "),
            values.join(", ")
        );
        self.conn
            .exec_drop(sql, params)
            .await
            .map_err(|e| self.record(&shown, &e))?;
        match given {
            Some(id) => Ok(id),
            None => self
                .conn
                .last_insert_id()
                .map(|n| n.to_string())
                .ok_or_else(|| {
                    Failure::Record(
                        shown,
                        format!("table {}: the server gave no new key", self.s.table),
                    )
                }),
        }
    }

    async fn statement(&mut self, sql: &str) -> Result<(), ConnectorError> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| classify(&e, &format!("writing table {} ({sql})", self.s.table)))
    }
}

impl Sink for MysqlSink {
    async fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.statement("START TRANSACTION").await?;
        if self.batchable(writes) {
            self.statement("SAVEPOINT mdhub_batch").await?;
            match self.apply_batch(writes).await {
                Ok(applied) => {
                    self.statement("COMMIT").await?;
                    return Ok(applied.into_iter().map(Ok).collect());
                }
                // A record refused: row by row, to find it.
                Err(Failure::Record(..)) => {
                    self.statement("ROLLBACK TO SAVEPOINT mdhub_batch").await?;
                }
                Err(Failure::Batch(e)) => {
                    let _ = self.conn.query_drop("ROLLBACK").await;
                    return Err(e);
                }
            }
        }
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            self.statement("SAVEPOINT mdhub_write").await?;
            match self.apply_one(write).await {
                Ok(applied) => results.push(Ok(applied)),
                Err(Failure::Record(record_id, reason)) => {
                    self.statement("ROLLBACK TO SAVEPOINT mdhub_write").await?;
                    results.push(Err(ConnectorError::Record { record_id, reason }));
                }
                Err(Failure::Batch(e)) => {
                    // The connection may be gone; the runner reopens the sink.
                    let _ = self.conn.query_drop("ROLLBACK").await;
                    return Err(e);
                }
            }
        }
        self.statement("COMMIT").await?;
        Ok(results)
    }

    async fn fetch(&mut self, record_id: &str) -> Result<Option<Row>, ConnectorError> {
        rows::fetch(&mut self.conn, &self.s, &self.table, record_id).await
    }
}
