//! PostgreSQL failures to the contract's errors: the server or network
//! away → `Unavailable` (the runner retries), a layout or privilege
//! problem → `Fatal` (retrying cannot help).
//!
//! Messages carry PostgreSQL's own text only for errors about the
//! connection, catalog and privileges, which name objects, not row values.

use tokio_postgres::error::SqlState;

use crate::contract::ConnectorError;

/// An error of a statement that is not about one record (catalog reads,
/// slot and publication management, the load).
pub(crate) fn sql(context: &str, e: &tokio_postgres::Error) -> ConnectorError {
    let Some(db) = e.as_db_error() else {
        // I/O, a closed connection, a refused connect: the server is away.
        return ConnectorError::Unavailable(format!("{context}: {e}"));
    };
    let code = db.code().code();
    let text = format!("{context}: {} (SQLSTATE {code})", db.message());
    if is_transient(code) {
        ConnectorError::Unavailable(text)
    } else {
        ConnectorError::Fatal(text)
    }
}

/// SQLSTATEs worth retrying: connection exceptions (08), transaction
/// rollbacks (40: serialization failures, deadlocks), insufficient
/// resources (53), operator intervention (57: shutdown, crash recovery),
/// system and internal errors (58, XX), and an object in use (55006: a
/// slot or origin still held by a session that is going away).
pub(crate) fn is_transient(code: &str) -> bool {
    ["08", "40", "53", "57", "58", "XX"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == SqlState::OBJECT_IN_USE.code()
}

/// An error of the replication transport.
pub(crate) fn wal(context: &str, e: &pgwire_replication::PgWireError) -> ConnectorError {
    use pgwire_replication::PgWireError as W;
    let text = format!("{context}: {e}");
    match e {
        W::Io(_) | W::Task(_) | W::Internal(_) => ConnectorError::Unavailable(text),
        W::Server(msg) => match sqlstate_in(msg) {
            Some(code) if is_transient(code) => ConnectorError::Unavailable(text),
            _ => ConnectorError::Fatal(text),
        },
        // Authentication, TLS and protocol errors do not heal by retrying.
        _ => ConnectorError::Fatal(text),
    }
}

/// The `SQLSTATE XXXXX` the transport writes into a server error's text.
fn sqlstate_in(msg: &str) -> Option<&str> {
    let at = msg.find("SQLSTATE ")? + "SQLSTATE ".len();
    msg.get(at..at + 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sqlstates() {
        assert!(is_transient("57P01"));
        assert!(is_transient("08006"));
        assert!(is_transient("55006"));
        assert!(!is_transient("55000"));
        assert!(!is_transient("42501"));
        assert_eq!(
            sqlstate_in("logical decoding requires wal_level >= logical (SQLSTATE 55000)"),
            Some("55000")
        );
        assert_eq!(sqlstate_in("no code"), None);
    }
}
