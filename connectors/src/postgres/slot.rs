//! The publication and the replication slot, on the SQL connection.

use tokio_postgres::Client;

use super::catalog::Table;
use super::config::{quote_ident, Settings};
use super::errors;
use crate::contract::ConnectorError;

/// Creates the publication `FOR TABLE` the table when it is missing, and
/// checks that an existing one publishes the table's inserts, updates and
/// deletes.
pub(crate) async fn ensure_publication(
    client: &Client,
    s: &Settings,
    table: &Table,
) -> Result<(), ConnectorError> {
    let ctx = format!("checking publication {}", s.publication);
    let row = client
        .query_opt(
            "SELECT pubinsert AND pubupdate AND pubdelete, \
                    EXISTS (SELECT 1 FROM pg_publication_tables t \
                            WHERE t.pubname = p.pubname AND t.schemaname = $2 \
                              AND t.tablename = $3) \
             FROM pg_publication p WHERE pubname = $1",
            &[&s.publication, &s.schema, &s.table],
        )
        .await
        .map_err(|e| errors::sql(&ctx, &e))?;
    let create = format!(
        "CREATE PUBLICATION {} FOR TABLE {}",
        quote_ident(&s.publication),
        table.qualified
    );
    let Some(row) = row else {
        return match client.batch_execute(&create).await {
            Ok(()) => Ok(()),
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                Err(ConnectorError::Fatal(format!(
                    "this role may not create publication {} (it must own {}); have the \
                     owner run: {create}",
                    s.publication, table.display
                )))
            }
            Err(e) => Err(errors::sql(
                &format!("creating publication {}", s.publication),
                &e,
            )),
        };
    };
    let all_ops: bool = row.try_get(0).map_err(|e| errors::sql(&ctx, &e))?;
    let has_table: bool = row.try_get(1).map_err(|e| errors::sql(&ctx, &e))?;
    if !has_table {
        return Err(ConnectorError::Fatal(format!(
            "publication {} does not publish {}: ALTER PUBLICATION {} ADD TABLE {}",
            s.publication,
            table.display,
            quote_ident(&s.publication),
            table.qualified
        )));
    }
    if !all_ops {
        return Err(ConnectorError::Fatal(format!(
            "publication {} must publish inserts, updates and deletes: ALTER PUBLICATION {} \
             SET (publish = 'insert, update, delete')",
            s.publication,
            quote_ident(&s.publication)
        )));
    }
    Ok(())
}

/// Whether the slot exists in this database with pgoutput.
pub(crate) async fn slot_exists(client: &Client, s: &Settings) -> Result<bool, ConnectorError> {
    let ctx = format!("looking up replication slot {}", s.slot);
    let row = client
        .query_opt(
            "SELECT plugin::text, database = current_database() FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&s.slot],
        )
        .await
        .map_err(|e| errors::sql(&ctx, &e))?;
    let Some(row) = row else { return Ok(false) };
    let plugin: Option<String> = row.try_get(0).map_err(|e| errors::sql(&ctx, &e))?;
    let here: Option<bool> = row.try_get(1).map_err(|e| errors::sql(&ctx, &e))?;
    if plugin.as_deref() != Some("pgoutput") || here != Some(true) {
        return Err(ConnectorError::Fatal(format!(
            "replication slot {} exists but is not a pgoutput slot of this database; \
             configure another `slot`",
            s.slot
        )));
    }
    Ok(true)
}

/// Drops the slot a load cut short left behind (the load runs again). A
/// slot still held by a session that is going away is `Unavailable`.
pub(crate) async fn drop_slot(client: &Client, s: &Settings) -> Result<(), ConnectorError> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&s.slot])
        .await
        .map(drop)
        .map_err(|e| errors::sql(&format!("dropping replication slot {}", s.slot), &e))
}
