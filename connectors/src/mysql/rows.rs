//! Rows read by queries (initial load, `fetch`, a write's image) into
//! [`Row`]s, keyed by record id, with the primary e-mail address added when
//! the SuiteCRM relation is on.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row as SqlRow, Value as Sql};
use serde_json::Value as Json;

use super::config::{Settings, EMAIL_COLUMN};
use super::email;
use super::schema::{ident, Table};
use super::value::{record_id, to_json, Origin};
use crate::contract::{ConnectorError, Row};

/// A row read by a query: its record id and its columns.
pub(crate) struct ReadRow {
    pub record_id: String,
    pub row: Row,
}

/// `SELECT` of the read columns (the key first) from the table.
pub(crate) fn select_sql(s: &Settings, table: &Table) -> String {
    let mut cols = vec![ident(&table.key().name)];
    cols.extend(
        table
            .read_columns()
            .filter(|c| c.name != table.key().name)
            .map(|c| ident(&c.name)),
    );
    format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        ident(&s.database),
        ident(&s.table)
    )
}

/// Decodes one result row of [`select_sql`]. A value that cannot be read is
/// a `Record` error naming the table, the key (when it could be read) and
/// the column.
pub(crate) fn decode(
    s: &Settings,
    table: &Table,
    mut sql: SqlRow,
) -> Result<ReadRow, ConnectorError> {
    let key_col = table.key();
    let raw_key = sql.take::<Sql, _>(0).unwrap_or(Sql::NULL);
    let key_json = to_json(&key_col.kind, raw_key, Origin::Query)
        .ok()
        .flatten();
    let Some(id) = key_json.as_ref().and_then(record_id) else {
        return Err(ConnectorError::Record {
            record_id: "(unreadable key)".into(),
            reason: format!(
                "table {} column {}: key is null or unreadable",
                s.table, key_col.name
            ),
        });
    };
    let mut row = Row::new();
    row.insert(key_col.name.clone(), key_json.unwrap_or(Json::Null));
    let others = table.read_columns().filter(|c| c.name != key_col.name);
    for (i, col) in others.enumerate() {
        let value = sql.take::<Sql, _>(i + 1).unwrap_or(Sql::NULL);
        match to_json(&col.kind, value, Origin::Query) {
            Ok(Some(v)) => {
                row.insert(col.name.clone(), v);
            }
            Ok(None) => {}
            Err(reason) => {
                return Err(ConnectorError::Record {
                    record_id: id,
                    reason: format!("table {} column {}: {reason}", s.table, col.name),
                })
            }
        }
    }
    Ok(ReadRow { record_id: id, row })
}

/// Sets the e-mail column of each row to its contact's primary address
/// (null when it has none).
pub(crate) async fn add_emails<'a>(
    conn: &mut Conn,
    s: &Settings,
    rows: impl IntoIterator<Item = (&'a str, &'a mut Row)>,
) -> Result<(), ConnectorError> {
    let rows: Vec<(&str, &mut Row)> = rows.into_iter().collect();
    if !s.suitecrm_email || rows.is_empty() {
        return Ok(());
    }
    let ids: BTreeSet<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
    let found = email::primary_addresses(conn, &s.database, &ids)
        .await
        .map_err(|e| super::error::classify(&e, "reading primary e-mail addresses"))?;
    for (id, row) in rows {
        let v = found
            .get(id)
            .cloned()
            .map(Json::String)
            .unwrap_or(Json::Null);
        row.insert(EMAIL_COLUMN.to_string(), v);
    }
    Ok(())
}

/// The record's row as it is now (inside the caller's transaction, if
/// any), `None` if there is no such record.
pub(crate) async fn fetch(
    conn: &mut Conn,
    s: &Settings,
    table: &Table,
    record_id: &str,
) -> Result<Option<Row>, ConnectorError> {
    let key = super::value::key_param(&table.key().kind, record_id).map_err(|reason| {
        ConnectorError::Record {
            record_id: record_id.to_string(),
            reason: format!("table {} column {}: {reason}", s.table, table.key().name),
        }
    })?;
    let sql = format!(
        "{} WHERE {} = ?",
        select_sql(s, table),
        ident(&table.key().name)
    );
    let rows: Vec<SqlRow> = conn
        .exec(sql, vec![key])
        .await
        .map_err(|e| super::error::classify(&e, &format!("reading table {}", s.table)))?;
    let Some(first) = rows.into_iter().next() else {
        return Ok(None);
    };
    let mut read = decode(s, table, first)?;
    add_emails(conn, s, [(read.record_id.as_str(), &mut read.row)]).await?;
    Ok(Some(read.row))
}

/// The rows of `record_ids` as they are now (inside the caller's
/// transaction), by record id; absent ones are left out.
pub(crate) async fn fetch_many(
    conn: &mut Conn,
    s: &Settings,
    table: &Table,
    record_ids: &[&str],
) -> Result<BTreeMap<String, Row>, ConnectorError> {
    let mut found = BTreeMap::new();
    for chunk in record_ids.chunks(500) {
        let mut params = Vec::with_capacity(chunk.len());
        for id in chunk {
            params.push(
                super::value::key_param(&table.key().kind, id).map_err(|reason| {
                    ConnectorError::Record {
                        record_id: id.to_string(),
                        reason: format!("table {} column {}: {reason}", s.table, table.key().name),
                    }
                })?,
            );
        }
        let sql = format!(
            "{} WHERE {} IN ({})",
            select_sql(s, table),
            ident(&table.key().name),
            vec!["?"; chunk.len()].join(", ")
        );
        let rows: Vec<SqlRow> = conn
            .exec(sql, params)
            .await
            .map_err(|e| super::error::classify(&e, &format!("reading table {}", s.table)))?;
        for r in rows {
            let read = decode(s, table, r)?;
            found.insert(read.record_id, read.row);
        }
    }
    add_emails(
        conn,
        s,
        found.iter_mut().map(|(id, row)| (id.as_str(), row)),
    )
    .await?;
    Ok(found)
}
