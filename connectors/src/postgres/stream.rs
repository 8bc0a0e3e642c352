//! The replication transport, behind types of ours: the one module that
//! knows `pgwire-replication` (a young crate; swapping it touches only
//! this file). It creates the slot with an exported snapshot and streams
//! pgoutput from a position, answering keepalives, and reports a position
//! as flushed only when told to.

use std::time::Duration;

use bytes::Bytes;
use pgwire_replication::{Lsn as WireLsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use time::OffsetDateTime;

use super::config::{Settings, SESSION_OPTIONS};
use super::errors;
use super::lsn::Lsn;
use crate::contract::ConnectorError;

/// How soon a confirmed position reaches the server.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// One event of the stream, in WAL order.
#[derive(Debug)]
pub(crate) enum WalEvent {
    /// A transaction starts; its changes follow.
    Begin {
        committed_at: Option<OffsetDateTime>,
    },
    /// A pgoutput message inside the transaction (see `pgoutput`).
    Data(Bytes),
    /// The transaction committed: `lsn` is its commit record, `end_lsn` the
    /// position after it (the resume point once it is processed).
    Commit {
        lsn: Lsn,
        end_lsn: Lsn,
        committed_at: Option<OffsetDateTime>,
    },
}

/// The replication connection settings, from the connector's URL.
fn wire_config(s: &Settings, start: Lsn) -> Result<ReplicationConfig, ConnectorError> {
    use tokio_postgres::config::Host;
    let host = match s.pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(path)) => path.to_string_lossy().into_owned(),
        None => "localhost".to_string(),
    };
    let port = s.pg.get_ports().first().copied().unwrap_or(5432);
    let user =
        s.pg.get_user()
            .ok_or_else(|| ConnectorError::Fatal("the connection URL names no user".to_string()))?;
    let password = match s.pg.get_password() {
        Some(p) => String::from_utf8(p.to_vec()).map_err(|_| {
            ConnectorError::Fatal("the connection URL's password is not UTF-8".to_string())
        })?,
        None => String::new(),
    };
    let database = s.pg.get_dbname().unwrap_or(user);
    Ok(ReplicationConfig::new(
        host,
        user,
        password,
        database,
        s.slot.clone(),
        s.publication.clone(),
    )
    .with_port(port)
    .with_options(SESSION_OPTIONS)
    .with_application_name(format!("mdhub-{}-capture", s.slot))
    .with_start_lsn(WireLsn(start.0))
    // Until the first confirm, report only where we started: the slot's
    // confirmed position never passes what the runner saved.
    .with_ack_lsn(WireLsn(start.0))
    .with_status_interval(STATUS_INTERVAL))
}

/// A fresh slot and the snapshot it exported. The snapshot can be imported
/// (`SET TRANSACTION SNAPSHOT`) only while this session lives and runs no
/// other command: drop it once the load's transaction has imported it.
pub(crate) struct NewSlot {
    _session: ReplicationClient,
    pub snapshot: String,
    pub consistent_point: Lsn,
}

/// `CREATE_REPLICATION_SLOT ... LOGICAL pgoutput EXPORT_SNAPSHOT` (the form
/// every PostgreSQL since 10 reads).
pub(crate) async fn create_slot(s: &Settings) -> Result<NewSlot, ConnectorError> {
    let ctx = format!("creating replication slot {}", s.slot);
    let mut session = ReplicationClient::connect_gated(wire_config(s, Lsn(0))?)
        .await
        .map_err(|e| errors::wal(&ctx, &e))?;
    let rows = session
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
            s.slot
        ))
        .await
        .map_err(|e| errors::wal(&ctx, &e))?;
    let text = |i: usize| -> Option<String> {
        let cell = rows.first()?.get(i)?.as_ref()?;
        std::str::from_utf8(cell).ok().map(str::to_string)
    };
    let bad = || ConnectorError::Fatal(format!("{ctx}: unexpected answer from the server"));
    let consistent_point = text(1).and_then(|t| Lsn::parse(&t)).ok_or_else(bad)?;
    let snapshot = text(2).ok_or_else(bad)?;
    Ok(NewSlot {
        _session: session,
        snapshot,
        consistent_point,
    })
}

/// A running pgoutput stream from the slot.
pub(crate) struct WalStream {
    client: ReplicationClient,
    /// The end of the last transaction handed out (where the stream
    /// started, before the first).
    delivered: Lsn,
    /// The position last reported as flushed.
    confirmed: Lsn,
    /// Between a `Begin` handed out and its `Commit`.
    in_transaction: bool,
}

impl WalStream {
    /// START_REPLICATION from `from` (the server starts at the slot's
    /// confirmed position if that is later); returns once the server
    /// accepted it.
    pub async fn start(s: &Settings, from: Lsn) -> Result<WalStream, ConnectorError> {
        let ctx = format!("starting replication from slot {}", s.slot);
        let mut client = ReplicationClient::connect(wire_config(s, from)?)
            .await
            .map_err(|e| errors::wal(&ctx, &e))?;
        client
            .wait_started()
            .await
            .map_err(|e| errors::wal(&ctx, &e))?;
        Ok(WalStream {
            client,
            delivered: from,
            confirmed: from,
            in_transaction: false,
        })
    }

    /// The next event, waiting for one. Cancel-safe: an event is taken off
    /// the channel only when it is returned.
    pub async fn next(&mut self) -> Result<WalEvent, ConnectorError> {
        loop {
            let event = self
                .client
                .recv()
                .await
                .map_err(|e| errors::wal("reading the replication stream", &e))?;
            match event {
                Some(ReplicationEvent::Begin {
                    commit_time_micros, ..
                }) => {
                    self.in_transaction = true;
                    return Ok(WalEvent::Begin {
                        committed_at: pg_time(commit_time_micros),
                    });
                }
                Some(ReplicationEvent::XLogData { data, .. }) => return Ok(WalEvent::Data(data)),
                Some(ReplicationEvent::Commit {
                    lsn,
                    end_lsn,
                    commit_time_micros,
                }) => {
                    self.in_transaction = false;
                    self.delivered = self.delivered.max(Lsn(end_lsn.0));
                    return Ok(WalEvent::Commit {
                        lsn: Lsn(lsn.0),
                        end_lsn: Lsn(end_lsn.0),
                        committed_at: pg_time(commit_time_micros),
                    });
                }
                // Keepalives are answered by the transport. The server
                // has decoded up to `wal_end`: when every transaction it
                // sent is confirmed, nothing before that position is ours,
                // and the slot may move there. Otherwise a slot that sees no
                // change of its tables (while the database writes others)
                // would hold the server's WAL for good.
                Some(ReplicationEvent::KeepAlive { wal_end, .. }) => {
                    let idle = !self.in_transaction && self.confirmed >= self.delivered;
                    if idle && Lsn(wal_end.0) > self.confirmed {
                        self.confirm(Lsn(wal_end.0));
                    }
                }
                // Logical messages are not ours.
                Some(ReplicationEvent::Message { .. }) => {}
                Some(ReplicationEvent::StoppedAt { .. }) | None => {
                    return Err(ConnectorError::Unavailable(
                        "the replication stream ended".to_string(),
                    ))
                }
            }
        }
    }

    /// Reports everything up to `lsn` as flushed: the slot's confirmed
    /// position moves there within a second.
    pub fn confirm(&mut self, lsn: Lsn) {
        self.confirmed = self.confirmed.max(lsn);
        self.client.update_applied_lsn(WireLsn(self.confirmed.0));
    }
}

impl Drop for WalStream {
    fn drop(&mut self) {
        // CopyDone, so the walsender ends and the slot is free again at once.
        self.client.stop();
    }
}

/// A pgoutput time (microseconds since 2000-01-01 UTC).
fn pg_time(micros: i64) -> Option<OffsetDateTime> {
    let unix_micros = i128::from(micros) + i128::from(PG_EPOCH_UNIX_SECS) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(unix_micros * 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_epoch_times() {
        assert_eq!(pg_time(0).unwrap().unix_timestamp(), PG_EPOCH_UNIX_SECS);
        assert!(pg_time(i64::MAX).is_none());
    }
}
