//! The initial load: every row of the table as of the slot's exported
//! snapshot, read in slices through a cursor in one REPEATABLE READ
//! transaction. Changes committed after the snapshot are exactly the ones
//! the slot streams from its consistent point, so each row is sent once.

use tokio_postgres::Client;

use super::catalog::Table;
use super::config::quote_literal;
use super::errors;
use super::lsn::Lsn;
use crate::contract::{ConnectorError, Row};

/// Rows per load slice (one `CapturedTx` each).
pub const SLICE_ROWS: usize = 1000;

/// A load in progress.
pub(crate) struct Load {
    client: Client,
    table_display: String,
    /// The slot's consistent point: where the stream starts after the load.
    pub consistent_point: Lsn,
    pub total: u64,
    pub done: u64,
    /// A FETCH was sent and its rows not yet handed on: set when a slice
    /// is requested, cleared when it returned. Found set, the previous
    /// request was cancelled half-way and its rows are lost.
    in_flight: bool,
}

impl Load {
    /// Opens the load transaction on the snapshot (which the slot's session
    /// must still hold), counts the rows and declares the cursor.
    pub async fn begin(
        client: Client,
        table: &Table,
        snapshot: &str,
        consistent_point: Lsn,
    ) -> Result<Load, ConnectorError> {
        let ctx = format!("starting the initial load of {}", table.display);
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SET TRANSACTION SNAPSHOT {}",
                quote_literal(snapshot)
            ))
            .await
            .map_err(|e| errors::sql(&ctx, &e))?;
        let total: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", table.qualified), &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| errors::sql(&ctx, &e))?;
        client
            .batch_execute(&format!(
                "DECLARE mdhub_load NO SCROLL CURSOR FOR SELECT {} FROM {}",
                table.select_list, table.qualified
            ))
            .await
            .map_err(|e| errors::sql(&ctx, &e))?;
        Ok(Load {
            client,
            table_display: table.display.clone(),
            consistent_point,
            total: u64::try_from(total).unwrap_or(0),
            done: 0,
            in_flight: false,
        })
    }

    /// The next slice of rows (key text and row); `None` once all were
    /// read (the transaction is then closed).
    pub async fn next_slice(
        &mut self,
        table: &Table,
    ) -> Result<Option<Vec<(String, Row)>>, ConnectorError> {
        if self.in_flight {
            return Err(ConnectorError::Unavailable(format!(
                "the initial load of {} was interrupted; it starts again",
                self.table_display
            )));
        }
        self.in_flight = true;
        let ctx = format!("reading the initial load of {}", self.table_display);
        let rows = self
            .client
            .query(&format!("FETCH {SLICE_ROWS} FROM mdhub_load"), &[])
            .await
            .map_err(|e| errors::sql(&ctx, &e))?;
        if rows.is_empty() {
            self.client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| errors::sql(&ctx, &e))?;
            self.in_flight = false;
            return Ok(None);
        }
        let mut slice = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(keyed) = table.row_from_sql(row)? {
                slice.push(keyed);
            } else {
                tracing::warn!(table = %self.table_display, "load: a row without a key is skipped");
            }
        }
        self.done += rows.len() as u64;
        self.in_flight = false;
        Ok(Some(slice))
    }
}
