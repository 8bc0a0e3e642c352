//! What the connector needs to know of the server and the table before it
//! reads or writes: the binary log's settings, and the table's columns with
//! their kinds from `information_schema`.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row as SqlRow};

use super::config::Settings;
use super::error::classify;
use super::value::Kind;
use crate::contract::ConnectorError;

/// One column of the table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// As the table spells it.
    pub name: String,
    pub kind: Kind,
    pub auto_increment: bool,
}

/// The table's columns in order, with the configured columns resolved to
/// the table's spelling (MariaDB column names are case-insensitive).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub columns: Vec<Column>,
    by_name: HashMap<String, usize>,
    pub key: usize,
    pub archive: Option<usize>,
    pub modified: Option<usize>,
}

impl Table {
    /// The column called `name` (any case).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.by_name
            .get(&name.to_lowercase())
            .and_then(|&i| self.columns.get(i))
    }

    pub fn key(&self) -> &Column {
        &self.columns[self.key]
    }

    pub fn archive(&self) -> Option<&Column> {
        self.archive.map(|i| &self.columns[i])
    }

    pub fn modified(&self) -> Option<&Column> {
        self.modified.map(|i| &self.columns[i])
    }

    /// The columns read into a row, in table order.
    pub fn read_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind != Kind::Skip)
    }
}

/// A text cell of a metadata query; `None` for NULL or a cell that is not
/// text.
pub(crate) fn text(row: &SqlRow, index: usize) -> Option<String> {
    row.get_opt::<Option<String>, _>(index)
        .and_then(Result::ok)
        .flatten()
}

/// Refuses a server whose binary log cannot be captured, saying what to
/// change, and a replica id equal to the server's own.
pub(crate) async fn check_server(
    conn: &mut Conn,
    settings: &Settings,
) -> Result<(), ConnectorError> {
    let rows: Vec<SqlRow> = conn
        .query(
            "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, \
             @@GLOBAL.server_id, @@GLOBAL.binlog_row_metadata",
        )
        .await
        .map_err(|e| match &e {
            mysql_async::Error::Server(s) if s.code == 1193 => ConnectorError::Fatal(
                "MariaDB has no binlog_row_metadata setting: change capture needs \
                 MariaDB 10.5+ or MySQL 8.0+ with binlog_row_metadata=FULL"
                    .into(),
            ),
            _ => classify(&e, "reading the binary log settings"),
        })?;
    let row = rows
        .first()
        .ok_or_else(|| ConnectorError::Unavailable("no answer to a settings query".into()))?;
    let setting = |i| text(row, i).unwrap_or_default().to_ascii_uppercase();
    let mut wrong = Vec::new();
    if !matches!(setting(0).as_str(), "1" | "ON") {
        wrong.push("log_bin is off: start the server with --log-bin".to_string());
    }
    if setting(1) != "ROW" {
        wrong.push(format!("binlog_format is {}: set it to ROW", setting(1)));
    }
    if setting(2) != "FULL" {
        wrong.push(format!(
            "binlog_row_image is {}: set it to FULL",
            setting(2)
        ));
    }
    if setting(4) != "FULL" {
        wrong.push(format!(
            "binlog_row_metadata is {}: set it to FULL (the connector reads column names from the binary log)",
            setting(4)
        ));
    }
    if setting(3) == settings.server_id.to_string() {
        wrong.push(format!(
            "server_id {} is the server's own: give the connector another",
            settings.server_id
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(ConnectorError::Fatal(format!(
            "MariaDB cannot be captured: {}",
            wrong.join("; ")
        )))
    }
}

/// The columns of `database`.`table`, `None` if there is no such table.
pub(crate) async fn columns(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<Vec<Column>>, ConnectorError> {
    let rows: Vec<SqlRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| classify(&e, &format!("reading the columns of table {table}")))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = rows
        .iter()
        .filter_map(|r| {
            let name = text(r, 0)?;
            let data_type = text(r, 1).unwrap_or_default();
            let column_type = text(r, 2).unwrap_or_default();
            let kind = Kind::from_declared(&data_type, &column_type, text(r, 3).as_deref());
            let auto_increment = text(r, 4)
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("auto_increment");
            Some(Column {
                name,
                kind,
                auto_increment,
            })
        })
        .collect();
    Ok(Some(columns))
}

/// The configured table, checked: it exists, and the key, archive and
/// modified columns are in it and of kinds the connector can use.
pub(crate) async fn table(conn: &mut Conn, settings: &Settings) -> Result<Table, ConnectorError> {
    let columns = columns(conn, &settings.database, &settings.table)
        .await?
        .ok_or_else(|| {
            ConnectorError::Fatal(format!(
                "[mysql] table {} not found in database {} (or the account cannot see it)",
                settings.table, settings.database
            ))
        })?;
    build_table(columns, settings)
}

pub(crate) fn build_table(
    columns: Vec<Column>,
    settings: &Settings,
) -> Result<Table, ConnectorError> {
    let by_name: HashMap<String, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.to_lowercase(), i))
        .collect();
    let find = |what: &str, name: &str| {
        by_name.get(&name.to_lowercase()).copied().ok_or_else(|| {
            ConnectorError::Fatal(format!(
                "[mysql] {what} {name}: no such column in table {}",
                settings.table
            ))
        })
    };
    let key = find("key", &settings.key)?;
    if !matches!(columns[key].kind, Kind::Int | Kind::Text) {
        return Err(ConnectorError::Fatal(format!(
            "[mysql] key {}: the key column must be an integer or UTF-8 text",
            settings.key
        )));
    }
    let archive = settings
        .archive_column
        .as_deref()
        .map(|c| find("archive_column", c))
        .transpose()?;
    let modified = settings
        .modified_column
        .as_deref()
        .map(|c| find("modified_column", c))
        .transpose()?;
    if let Some(m) = modified {
        if !matches!(columns[m].kind, Kind::DateTime | Kind::Timestamp) {
            return Err(ConnectorError::Fatal(format!(
                "[mysql] modified_column {}: must be a DATETIME or TIMESTAMP column",
                columns[m].name
            )));
        }
    }
    Ok(Table {
        columns,
        by_name,
        key,
        archive,
        modified,
    })
}

/// Backtick-quoted identifier (a backtick in it doubled).
pub(crate) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
