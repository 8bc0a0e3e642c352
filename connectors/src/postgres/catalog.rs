//! The table as the catalog describes it (columns, types, key), the checks
//! that the table and role can do what the connector needs, and reading a
//! row's columns as JSON.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::config::{quote_ident, Settings};
use super::errors;
use super::values::text_to_json;
use crate::contract::{ConnectorError, Row};

/// One column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub type_oid: u32,
    /// The type without modifiers, as SQL (`character varying`,
    /// `timestamp without time zone`): writes cast to it, and the
    /// column's own length or precision is checked on assignment.
    pub sql_type: String,
}

/// The table's layout, read once per open.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// `"schema"."table"`.
    pub qualified: String,
    /// `schema.table`, for messages.
    pub display: String,
    pub columns: Vec<Column>,
    by_name: BTreeMap<String, usize>,
    /// Index of the key column.
    pub key: usize,
    pub archive: Option<usize>,
    pub modified: Option<usize>,
    /// Every column as its output function's text, in column order: how
    /// every SQL read selects a row, so that values arrive as the same text
    /// pgoutput sends.
    pub select_list: String,
}

impl Table {
    /// Reads the layout and checks that the configured columns exist.
    pub async fn read(client: &Client, s: &Settings) -> Result<Table, ConnectorError> {
        let display = s.table_name();
        let rows = client
            .query(
                "SELECT a.attname::text, a.atttypid::int8, format_type(a.atttypid, NULL) \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
                   AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&s.schema, &s.table],
            )
            .await
            .map_err(|e| errors::sql(&format!("reading the columns of {display}"), &e))?;
        if rows.is_empty() {
            return Err(ConnectorError::Fatal(format!(
                "table {display} does not exist or this role cannot see it; check `schema` \
                 and `table`"
            )));
        }
        let mut columns = Vec::with_capacity(rows.len());
        for row in rows {
            let (name, oid, sql_type): (String, i64, String) = (
                row.try_get(0).map_err(|e| catalog_error(&display, &e))?,
                row.try_get(1).map_err(|e| catalog_error(&display, &e))?,
                row.try_get(2).map_err(|e| catalog_error(&display, &e))?,
            );
            let type_oid = u32::try_from(oid).map_err(|_| {
                ConnectorError::Fatal(format!(
                    "{display}: column {name} has a type OID out of range"
                ))
            })?;
            columns.push(Column {
                name,
                type_oid,
                sql_type,
            });
        }
        let by_name: BTreeMap<String, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let find = |what: &str, name: &str| {
            by_name.get(name).copied().ok_or_else(|| {
                ConnectorError::Fatal(format!(
                    "{display} has no column {name} (configured as `{what}`)"
                ))
            })
        };
        let key = find("key", &s.key)?;
        let archive = s
            .archive_column
            .as_deref()
            .map(|c| find("archive_column", c))
            .transpose()?;
        let modified = s
            .modified_column
            .as_deref()
            .map(|c| find("modified_column", c))
            .transpose()?;
        if let Some(a) = archive {
            if columns[a].type_oid != 16 {
                return Err(ConnectorError::Fatal(format!(
                    "{display}: archive_column {} is not boolean",
                    columns[a].name
                )));
            }
        }
        let select_list = columns
            .iter()
            .map(|c| {
                // format('%s') renders with the type's output function,
                // as pgoutput does; a cast to text may differ (boolean
                // gives `true`, not `t`; char(n) loses its padding).
                let c = quote_ident(&c.name);
                format!("CASE WHEN {c} IS NULL THEN NULL ELSE format('%s', {c}) END")
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Table {
            qualified: s.qualified_table(),
            display,
            columns,
            by_name,
            key,
            archive,
            modified,
            select_list,
        })
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.by_name.get(name).map(|&i| &self.columns[i])
    }

    pub fn key_column(&self) -> &Column {
        &self.columns[self.key]
    }

    /// A row selected with `select_list` as JSON, with its key's text.
    /// `None` when the key is NULL (no primary key can be).
    pub fn row_from_sql(
        &self,
        row: &tokio_postgres::Row,
    ) -> Result<Option<(String, Row)>, ConnectorError> {
        let mut out = Row::new();
        let mut key = None;
        for (i, col) in self.columns.iter().enumerate() {
            let text: Option<String> = row.try_get(i).map_err(|e| {
                ConnectorError::Fatal(format!(
                    "{}: reading column {}: {e}",
                    self.display, col.name
                ))
            })?;
            if i == self.key {
                key.clone_from(&text);
            }
            let value = match text {
                Some(t) => text_to_json(col.type_oid, &t),
                None => serde_json::Value::Null,
            };
            out.insert(col.name.clone(), value);
        }
        Ok(key.map(|k| (k, out)))
    }

    /// The row is archived: its archive column is `false`.
    pub fn is_archived(&self, row: &Row) -> bool {
        self.archive
            .and_then(|a| row.get(&self.columns[a].name))
            .is_some_and(|v| v == &serde_json::Value::Bool(false))
    }
}

fn catalog_error(table: &str, e: &tokio_postgres::Error) -> ConnectorError {
    ConnectorError::Fatal(format!("{table}: unexpected catalog row: {e}"))
}

/// Checks for change capture: `wal_level`, the REPLICATION attribute,
/// SELECT on the table, and a replica identity that carries the key on
/// deletes.
pub(crate) async fn check_capture(
    client: &Client,
    s: &Settings,
    table: &Table,
) -> Result<(), ConnectorError> {
    let ctx = |what: &str| format!("checking {what} for {}", table.display);
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), \
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
                    has_table_privilege($1::text, 'SELECT'), \
                    (SELECT relreplident::text FROM pg_class WHERE oid = $1::text::regclass), \
                    current_user::text",
            &[&table.qualified],
        )
        .await
        .map_err(|e| errors::sql(&ctx("wal_level and privileges"), &e))?;
    let get_err = |e: tokio_postgres::Error| errors::sql(&ctx("wal_level and privileges"), &e);
    let wal_level: String = row.try_get(0).map_err(get_err)?;
    let can_replicate: Option<bool> = row.try_get(1).map_err(get_err)?;
    let can_select: bool = row.try_get(2).map_err(get_err)?;
    let identity: Option<String> = row.try_get(3).map_err(get_err)?;
    let user: String = row.try_get(4).map_err(get_err)?;
    if wal_level != "logical" {
        return Err(ConnectorError::Fatal(format!(
            "wal_level is {wal_level}; change capture needs `wal_level = logical` in \
             postgresql.conf (then restart PostgreSQL)"
        )));
    }
    if can_replicate != Some(true) {
        return Err(ConnectorError::Fatal(format!(
            "role {user} may not replicate: ALTER ROLE {} REPLICATION",
            quote_ident(&user)
        )));
    }
    if !can_select {
        return Err(ConnectorError::Fatal(format!(
            "role {user} may not read {}: GRANT SELECT ON {} TO {}",
            table.display,
            table.qualified,
            quote_ident(&user)
        )));
    }
    match identity.as_deref() {
        Some("f") => Ok(()),
        Some("d" | "i") => {
            // The replica identity index (the primary key by default) must
            // hold the key column, or deletes would not carry it.
            let holds: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_index i \
                       JOIN pg_class c ON c.oid = i.indrelid \
                       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
                       WHERE c.oid = $1::text::regclass AND a.attname = $2::text \
                         AND CASE c.relreplident WHEN 'd' THEN i.indisprimary \
                                                 ELSE i.indisreplident END)",
                    &[&table.qualified, &s.key],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| errors::sql(&ctx("the replica identity"), &e))?;
            if holds {
                Ok(())
            } else {
                Err(ConnectorError::Fatal(format!(
                    "deletes of {} would not carry the key column {}: make it the primary \
                     key, or ALTER TABLE {} REPLICA IDENTITY FULL",
                    table.display, s.key, table.qualified
                )))
            }
        }
        _ => Err(ConnectorError::Fatal(format!(
            "{} has REPLICA IDENTITY NOTHING: deletes carry no key; ALTER TABLE {} \
             REPLICA IDENTITY DEFAULT (with a primary key) or FULL",
            table.display, table.qualified
        ))),
    }
}
