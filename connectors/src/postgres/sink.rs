//! Write-back: a batch of writes in one transaction, a savepoint per write
//! so that one refused row is reported and the others commit, all in a
//! session marked with the connector's replication origin (its capture
//! comes back as `own_write`).

use std::sync::Arc;

use serde_json::Value;
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::catalog::{Column, Table};
use super::config::{quote_ident, Settings};
use super::errors;
use crate::contract::{Applied, ConnectorError, Row, Sink, Write, WriteOp};

/// The record id reported for a refused insert (it has none yet).
pub const NEW_RECORD: &str = "(new record)";

const TIMESTAMPTZ: u32 = 1184;

/// The write-back half of the PostgreSQL connector.
pub struct PostgresSink {
    client: Client,
    table: Table,
    /// A transaction was begun and not ended (an `apply` cancelled
    /// half-way): rolled back before the next call.
    in_tx: bool,
}

/// One statement of a write, ready to run.
struct Statement {
    sql: String,
    params: Vec<Option<String>>,
    /// Columns set from the write's values, with their parameter text, for
    /// naming the one a data error came from.
    written: Vec<(Column, Option<String>)>,
}

/// Why one write failed.
enum Failure {
    /// The write cannot be built (an unknown column, no key).
    Refused(String),
    /// PostgreSQL refused the statement.
    Db(tokio_postgres::Error),
}

impl PostgresSink {
    /// Checks privileges and marks the session with the replication origin
    /// (created when missing).
    pub(crate) async fn open(
        settings: Arc<Settings>,
        client: Client,
        table: Table,
    ) -> Result<Self, ConnectorError> {
        check_privileges(&client, &settings, &table).await?;
        let origin = &settings.origin;
        let ctx = format!("setting up replication origin {origin}");
        let created = client
            .execute(
                "SELECT pg_replication_origin_create($1) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                &[origin],
            )
            .await;
        let setup = match created {
            // Another session created it in between: fine.
            Err(e) if e.code() != Some(&SqlState::UNIQUE_VIOLATION) => Err(e),
            _ => client
                .execute("SELECT pg_replication_origin_session_setup($1)", &[origin])
                .await
                .map(drop),
        };
        match setup {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                return Err(ConnectorError::Fatal(format!(
                    "{ctx}: this role may not use replication origins; run as a superuser \
                     or GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), \
                     pg_replication_origin_session_setup(text) to it"
                )))
            }
            Err(e) => return Err(errors::sql(&ctx, &e)),
        }
        Ok(PostgresSink {
            client,
            table,
            in_tx: false,
        })
    }

    async fn exec(&self, sql: &str) -> Result<(), ConnectorError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| errors::sql(&format!("writing to {}", self.table.display), &e))
    }

    /// Ends a transaction a cancelled call left open.
    async fn settle(&mut self) -> Result<(), ConnectorError> {
        if self.in_tx {
            self.exec("ROLLBACK").await?;
            self.in_tx = false;
        }
        Ok(())
    }

    /// The statement for one write.
    fn statement(&self, w: &Write) -> Result<Statement, String> {
        let t = &self.table;
        let key = t.key_column();
        let mut st = Statement {
            sql: String::new(),
            params: Vec::new(),
            written: Vec::new(),
        };
        let param = |st: &mut Statement, value: Option<String>| {
            st.params.push(value);
            format!("${}", st.params.len())
        };
        match (&w.op, &w.record_id) {
            (WriteOp::Upsert(row), id) => {
                let mut assignments = Vec::new();
                for (name, value) in row {
                    let col = t
                        .column(name)
                        .ok_or_else(|| format!("table {} has no column {name}", t.display))?;
                    let text = param_text(value);
                    st.written.push((col.clone(), text.clone()));
                    let p = param(&mut st, text);
                    assignments.push((quote_ident(name), format!("{p}::text::{}", col.sql_type)));
                }
                if let Some(m) = t.modified.map(|m| &t.columns[m]) {
                    if !row.contains_key(&m.name) {
                        assignments.push((quote_ident(&m.name), now_for(m)));
                    }
                }
                st.sql = match id {
                    Some(id) => {
                        let k = param(&mut st, Some(id.clone()));
                        if assignments.is_empty() {
                            format!(
                                "SELECT {} FROM {} WHERE {} = {k}::text::{}",
                                t.select_list,
                                t.qualified,
                                quote_ident(&key.name),
                                key.sql_type
                            )
                        } else {
                            let sets: Vec<String> = assignments
                                .iter()
                                .map(|(c, v)| format!("{c} = {v}"))
                                .collect();
                            format!(
                                "UPDATE {} SET {} WHERE {} = {k}::text::{} RETURNING {}",
                                t.qualified,
                                sets.join(", "),
                                quote_ident(&key.name),
                                key.sql_type,
                                t.select_list
                            )
                        }
                    }
                    None if assignments.is_empty() => format!(
                        "INSERT INTO {} DEFAULT VALUES RETURNING {}",
                        t.qualified, t.select_list
                    ),
                    None => {
                        let (cols, vals): (Vec<String>, Vec<String>) =
                            assignments.into_iter().unzip();
                        format!(
                            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
                            t.qualified,
                            cols.join(", "),
                            vals.join(", "),
                            t.select_list
                        )
                    }
                };
            }
            (WriteOp::Retire, Some(id)) => {
                let k = param(&mut st, Some(id.clone()));
                let key_match = format!("{} = {k}::text::{}", quote_ident(&key.name), key.sql_type);
                st.sql = match t.archive.map(|a| &t.columns[a]) {
                    Some(a) => {
                        let mut sets = vec![format!("{} = false", quote_ident(&a.name))];
                        if let Some(m) = t.modified.map(|m| &t.columns[m]) {
                            sets.push(format!("{} = {}", quote_ident(&m.name), now_for(m)));
                        }
                        format!(
                            "UPDATE {} SET {} WHERE {key_match}",
                            t.qualified,
                            sets.join(", ")
                        )
                    }
                    None => format!("DELETE FROM {} WHERE {key_match}", t.qualified),
                };
            }
            (WriteOp::Retire, None) => return Err("a retire needs a record id".to_string()),
        }
        Ok(st)
    }

    async fn run(&self, w: &Write) -> Result<Applied, (Failure, Option<Statement>)> {
        let st = self
            .statement(w)
            .map_err(|reason| (Failure::Refused(reason), None))?;
        let params: Vec<&(dyn ToSql + Sync)> =
            st.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        if matches!(w.op, WriteOp::Retire) {
            return match self.client.execute(&st.sql, &params).await {
                Ok(_) => Ok(Applied {
                    record_id: w.record_id.clone().unwrap_or_default(),
                    image: None,
                    unchanged: false,
                }),
                Err(e) => Err((Failure::Db(e), Some(st))),
            };
        }
        let rows = match self.client.query(&st.sql, &params).await {
            Ok(rows) => rows,
            Err(e) => return Err((Failure::Db(e), Some(st))),
        };
        let Some(row) = rows.first() else {
            return Err((
                Failure::Refused(format!(
                    "table {} has no row with this key",
                    self.table.display
                )),
                None,
            ));
        };
        match self.table.row_from_sql(row) {
            Ok(Some((record_id, image))) => Ok(Applied {
                record_id,
                image: Some(image),
                unchanged: false,
            }),
            Ok(None) => Err((Failure::Refused("the written row has no key".into()), None)),
            Err(e) => Err((Failure::Refused(e.to_string()), None)),
        }
    }

    /// Which written value PostgreSQL refused, after a data error: each
    /// one is tried alone in a savepoint that is always rolled back.
    async fn find_bad_column(&self, record_id: Option<&str>, st: &Statement) -> Option<String> {
        let t = &self.table;
        let key = t.key_column();
        let mut tries: Vec<(String, String, Vec<Option<String>>)> = Vec::new();
        if let Some(id) = record_id {
            tries.push((
                key.name.clone(),
                format!("SELECT $1::text::{}", key.sql_type),
                vec![Some(id.to_string())],
            ));
        }
        for (col, text) in &st.written {
            let sql = match record_id {
                // Assignment to the real row checks length and precision.
                Some(id) => {
                    let sql = format!(
                        "UPDATE {} SET {} = $1::text::{} WHERE {} = $2::text::{}",
                        t.qualified,
                        quote_ident(&col.name),
                        col.sql_type,
                        quote_ident(&key.name),
                        key.sql_type
                    );
                    tries.push((
                        col.name.clone(),
                        sql,
                        vec![text.clone(), Some(id.to_string())],
                    ));
                    continue;
                }
                None => format!("SELECT $1::text::{}", col.sql_type),
            };
            tries.push((col.name.clone(), sql, vec![text.clone()]));
        }
        for (column, sql, values) in tries {
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            self.exec("SAVEPOINT mdhub_probe").await.ok()?;
            let failed = self.client.execute(&sql, &params).await.is_err();
            self.exec("ROLLBACK TO SAVEPOINT mdhub_probe; RELEASE SAVEPOINT mdhub_probe")
                .await
                .ok()?;
            if failed {
                return Some(column);
            }
        }
        None
    }

    /// The reason for a refused write, naming the table, column and
    /// constraint, never the value.
    async fn reason(
        &self,
        w: &Write,
        failure: Failure,
        st: Option<Statement>,
    ) -> Result<String, ConnectorError> {
        let e = match failure {
            Failure::Refused(reason) => return Ok(reason),
            Failure::Db(e) => e,
        };
        let Some(db) = e.as_db_error() else {
            return Err(errors::sql(
                &format!("writing to {}", self.table.display),
                &e,
            ));
        };
        if errors::is_transient(db.code().code()) {
            return Err(errors::sql(
                &format!("writing to {}", self.table.display),
                &e,
            ));
        }
        let column = match (db.code().code().starts_with("22"), &st) {
            (true, Some(st)) => self.find_bad_column(w.record_id.as_deref(), st).await,
            _ => db.column().map(str::to_string),
        };
        Ok(describe(&self.table, db, column.as_deref()))
    }
}

/// What PostgreSQL refused, in words of ours: its message may quote the
/// value (`invalid input syntax for type integer: "..."`).
fn describe(table: &Table, db: &DbError, column: Option<&str>) -> String {
    let code = db.code().code();
    let col_type = column
        .and_then(|c| table.column(c))
        .map_or("its type", |c| c.sql_type.as_str());
    let what = match code {
        "23502" => "must not be null".to_string(),
        "23505" => "duplicates another row's value".to_string(),
        "23503" => "refers to a row that does not exist, or is still referred to".to_string(),
        "23514" => "fails a check constraint".to_string(),
        "22001" => format!("is too long for {col_type}"),
        "22003" => format!("is out of range for {col_type}"),
        "22021" => "holds a character PostgreSQL cannot store (NUL)".to_string(),
        c if c.starts_with("22") => format!("is not a valid {col_type}"),
        "42501" => "is not writable by this role".to_string(),
        _ => "was refused".to_string(),
    };
    let mut out = format!("table {}", table.display);
    if let Some(c) = column {
        out.push_str(&format!(", column {c}"));
    }
    if let Some(c) = db.constraint() {
        out.push_str(&format!(", constraint {c}"));
    }
    out.push_str(&format!(": the value {what} (SQLSTATE {code})"));
    out
}

/// The current time in a modified column's type (UTC without a zone).
fn now_for(col: &Column) -> String {
    if col.type_oid == TIMESTAMPTZ {
        "now()".to_string()
    } else {
        format!("(now() AT TIME ZONE 'UTC')::{}", col.sql_type)
    }
}

/// A JSON value as the text PostgreSQL casts from; `None` for null.
fn param_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

async fn check_privileges(
    client: &Client,
    s: &Settings,
    table: &Table,
) -> Result<(), ConnectorError> {
    let ctx = format!("checking write privileges on {}", table.display);
    let row = client
        .query_one(
            "SELECT has_table_privilege($1::text, 'SELECT'), \
                    has_table_privilege($1::text, 'UPDATE'), \
                    has_table_privilege($1::text, 'INSERT'), \
                    has_table_privilege($1::text, 'DELETE'), current_user::text",
            &[&table.qualified],
        )
        .await
        .map_err(|e| errors::sql(&ctx, &e))?;
    let get = |i: usize| row.try_get::<_, bool>(i).unwrap_or(false);
    let user: String = row.try_get(4).unwrap_or_default();
    let mut missing = Vec::new();
    for (i, privilege) in [(0, "SELECT"), (1, "UPDATE"), (2, "INSERT")] {
        if !get(i) {
            missing.push(privilege);
        }
    }
    if s.archive_column.is_none() && !get(3) {
        missing.push("DELETE");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ConnectorError::Fatal(format!(
            "role {user} lacks {} on {}: GRANT {} ON {} TO {}",
            missing.join(", "),
            table.display,
            missing.join(", "),
            table.qualified,
            quote_ident(&user)
        )))
    }
}

impl Sink for PostgresSink {
    async fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        self.settle().await?;
        self.exec("BEGIN").await?;
        self.in_tx = true;
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            self.exec("SAVEPOINT mdhub_write").await?;
            match self.run(w).await {
                Ok(applied) => {
                    self.exec("RELEASE SAVEPOINT mdhub_write").await?;
                    results.push(Ok(applied));
                }
                Err((failure, st)) => {
                    self.exec("ROLLBACK TO SAVEPOINT mdhub_write; RELEASE SAVEPOINT mdhub_write")
                        .await?;
                    let reason = self.reason(w, failure, st).await?;
                    results.push(Err(ConnectorError::Record {
                        record_id: w.record_id.clone().unwrap_or_else(|| NEW_RECORD.into()),
                        reason,
                    }));
                }
            }
        }
        self.exec("COMMIT").await?;
        self.in_tx = false;
        Ok(results)
    }

    async fn fetch(&mut self, record_id: &str) -> Result<Option<Row>, ConnectorError> {
        self.settle().await?;
        let t = &self.table;
        let key = t.key_column();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1::text::{}",
            t.select_list,
            t.qualified,
            quote_ident(&key.name),
            key.sql_type
        );
        match self.client.query_opt(&sql, &[&record_id]).await {
            Ok(Some(row)) => Ok(t.row_from_sql(&row)?.map(|(_, r)| r)),
            Ok(None) => Ok(None),
            // A record id that is no value of the key's type names no row.
            Err(e)
                if e.as_db_error()
                    .is_some_and(|d| d.code().code().starts_with("22")) =>
            {
                Ok(None)
            }
            Err(e) => Err(errors::sql(&format!("reading {}", t.display), &e)),
        }
    }
}
