//! The PostgreSQL connector: one table of one database (Odoo's
//! `res_partner`, say), captured through logical replication and written
//! back in transactions marked with a replication origin.
//!
//! Layout:
//! - `config`: the `[postgres]` config section and the settings resolved
//!   from it.
//! - `catalog`: the table's columns and key, the checks of `wal_level`,
//!   privileges and replica identity, and reading a SQL row as JSON.
//! - `values`: one column's text to JSON by type OID; every read path goes
//!   through it, so a row reads the same loaded, streamed or written.
//! - `slot`: the publication and the replication slot on the SQL side.
//! - `stream`: the replication transport (the only user of the
//!   `pgwire-replication` crate): slot creation with an exported snapshot,
//!   the pgoutput stream, confirmed positions.
//! - `pgoutput`: decoding pgoutput's row messages.
//! - `snapshot`: the initial load in the slot's snapshot.
//! - `source`, `sink`: the contract's two halves.
//! - `lsn`: WAL positions, the cursor's form.
//!
//! Capture without a cursor creates the slot (dropping one a load cut
//! short left behind), loads every row of its exported snapshot in slices,
//! then streams from the slot's consistent point. With a cursor it streams
//! from there. The cursor is the LSN after a transaction's commit record,
//! as text; a transaction's position is its commit LSN, so one read twice
//! gets the same event ids. The slot's confirmed position moves only on
//! `confirm`.

mod catalog;
mod config;
mod errors;
mod lsn;
mod pgoutput;
mod sink;
mod slot;
mod snapshot;
mod source;
mod stream;
mod values;

use std::sync::Arc;

use tokio_postgres::{Client, NoTls};

pub use config::PostgresConfig;
pub use lsn::Lsn;
pub use sink::{PostgresSink, NEW_RECORD};
pub use snapshot::SLICE_ROWS;
pub use source::PostgresSource;

use crate::contract::{Connector, ConnectorError, Cursor};
use config::Settings;

/// A PostgreSQL connector for one system: its checked configuration.
#[derive(Debug, Clone)]
pub struct PostgresConnector {
    system: String,
    settings: Arc<Settings>,
}

impl PostgresConnector {
    /// Checks `config` for `system` (the hub's `[system.<name>]`), which
    /// names the default slot, publication and origin. The URL is read
    /// from the environment here when `url_env` names it.
    pub fn new(system: &str, config: &PostgresConfig) -> Result<Self, ConnectorError> {
        Ok(PostgresConnector {
            system: system.to_string(),
            settings: Arc::new(Settings::resolve(system, config)?),
        })
    }

    /// The system this connector serves.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The replication slot's name.
    pub fn slot(&self) -> &str {
        &self.settings.slot
    }

    /// The publication's name.
    pub fn publication(&self) -> &str {
        &self.settings.publication
    }

    /// The replication origin marking the sink's writes.
    pub fn origin(&self) -> &str {
        &self.settings.origin
    }

    /// A SQL connection with the pinned session settings; its driver runs
    /// on a task of its own and ends with the client.
    async fn connect(&self, purpose: &str) -> Result<Client, ConnectorError> {
        let (client, connection) = self
            .settings
            .pg
            .connect(NoTls)
            .await
            .map_err(|e| errors::sql(&format!("connecting to PostgreSQL for {purpose}"), &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {e}");
            }
        });
        Ok(client)
    }
}

impl Connector for PostgresConnector {
    type Source = PostgresSource;
    type Sink = PostgresSink;

    async fn open_source(&self, cursor: Option<Cursor>) -> Result<PostgresSource, ConnectorError> {
        let s = &self.settings;
        let client = self.connect("change capture").await?;
        let table = catalog::Table::read(&client, s).await?;
        catalog::check_capture(&client, s, &table).await?;
        slot::ensure_publication(&client, s, &table).await?;
        let exists = slot::slot_exists(&client, s).await?;
        match cursor {
            Some(cursor) => {
                let from = source::parse_cursor(&cursor)?;
                if !exists {
                    return Err(ConnectorError::Fatal(format!(
                        "replication slot {} is gone, so changes since the saved cursor are \
                         lost; remove the saved cursor to load {} again",
                        s.slot, table.display
                    )));
                }
                drop(client);
                let stream = stream::WalStream::start(s, from).await?;
                Ok(PostgresSource::streaming(s.clone(), table, stream))
            }
            None => {
                if exists {
                    // Left by a load cut short: its position is not ours.
                    tracing::info!(slot = %s.slot, "no cursor: dropping the slot, loading again");
                    slot::drop_slot(&client, s).await?;
                }
                let new_slot = stream::create_slot(s).await?;
                let load = snapshot::Load::begin(
                    client,
                    &table,
                    &new_slot.snapshot,
                    new_slot.consistent_point,
                )
                .await?;
                // The load's transaction holds the snapshot now.
                drop(new_slot);
                Ok(PostgresSource::loading(s.clone(), table, load))
            }
        }
    }

    async fn open_sink(&self) -> Result<PostgresSink, ConnectorError> {
        let client = self.connect("write-back").await?;
        let table = catalog::Table::read(&client, &self.settings).await?;
        PostgresSink::open(self.settings.clone(), client, table).await
    }
}
