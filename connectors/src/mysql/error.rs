//! What a `mysql_async` error means to the runner: the server away
//! (`Unavailable`), a setup that retrying cannot fix (`Fatal`), or one
//! record refused (`Record`). Server messages can quote row values (a
//! duplicate key's value), so a record's error carries only the error code,
//! its meaning and the column the message names.

use mysql_async::Error;

use crate::contract::ConnectorError;

/// Server error codes that end or roll back the whole transaction, or say
/// the server is going away: the batch is retried, not one record refused.
const BATCH_CODES: &[u16] = &[
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK (the transaction was rolled back)
    1053, // ER_SERVER_SHUTDOWN
    1927, // ER_CONNECTION_KILLED
    1290, // ER_OPTION_PREVENTS_STATEMENT (read-only server, failover)
    1836, // ER_READ_ONLY_MODE
];

/// Access and privilege errors: the account must change.
const PRIVILEGE_CODES: &[u16] = &[
    1044, // ER_DBACCESS_DENIED_ERROR
    1045, // ER_ACCESS_DENIED_ERROR
    1142, // ER_TABLEACCESS_DENIED_ERROR
    1143, // ER_COLUMNACCESS_DENIED_ERROR
    1227, // ER_SPECIFIC_ACCESS_DENIED_ERROR
    1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
];

/// An error outside one record's data: `Unavailable` when the connection or
/// the server is the problem, `Fatal` for access, privileges and a missing
/// database. `doing` says what was attempted ("reading the binary log").
pub(crate) fn classify(e: &Error, doing: &str) -> ConnectorError {
    match e {
        Error::Server(s) if PRIVILEGE_CODES.contains(&s.code) => ConnectorError::Fatal(format!(
            "MariaDB refused {doing}: the account lacks a privilege (error {}: {}); \
             the connector needs SELECT, INSERT, UPDATE, DELETE on the tables and \
             REPLICATION SLAVE, BINLOG MONITOR (REPLICATION CLIENT on MySQL)",
            s.code, s.message
        )),
        Error::Server(s) if s.code == 1049 => ConnectorError::Fatal(format!(
            "MariaDB: {doing}: unknown database ({})",
            s.message
        )),
        Error::Server(s) => ConnectorError::Unavailable(format!(
            "MariaDB error {} ({}) {doing}: {}",
            s.code, s.state, s.message
        )),
        Error::Url(_) => ConnectorError::Fatal(format!("MariaDB: {doing}: invalid connection URL")),
        // Io (refused, reset, timed out), Driver (connection closed, packet
        // out of order) and Other: the connection is gone or unusable.
        other => ConnectorError::Unavailable(format!("MariaDB {doing}: {other}")),
    }
}

/// Whether a failed write is the record's own fault (its data, a
/// constraint) and the rest of the batch can go on.
pub(crate) fn is_record_error(e: &Error) -> bool {
    matches!(e, Error::Server(s) if !BATCH_CODES.contains(&s.code) && !PRIVILEGE_CODES.contains(&s.code))
}

/// Why the server refused a record's write, without any value from the
/// server's message: the code, what it means, and the column it names.
pub(crate) fn record_reason(e: &Error) -> String {
    let Error::Server(s) = e else {
        return "write failed".to_string();
    };
    let meaning = match s.code {
        1048 => "a column that cannot be null is null",
        1054 => "unknown column",
        1062 => "duplicate value for a unique key",
        1264 => "number out of the column's range",
        1292 | 1366 | 1367 => "value of the wrong type for the column",
        1364 => "a column without a default is not given",
        1406 => "value too long for the column",
        1451 | 1452 => "a foreign-key constraint",
        3819 | 4025 => "a CHECK constraint",
        _ => "refused",
    };
    match named_object(&s.message) {
        Some(name) => format!("MariaDB error {} ({meaning}) on `{name}`", s.code),
        None => format!("MariaDB error {} ({meaning})", s.code),
    }
}

/// The column or key a server message names at its end ("... for column
/// 'first_name' at row 1", "... for column `db`.`t`.`c` at row 1", "... for
/// key 'email_uq'"). The last marker is taken: a quoted value comes before
/// it, and could itself hold the words.
fn named_object(message: &str) -> Option<&str> {
    let start = [" for column ", " for key "]
        .iter()
        .filter_map(|m| message.rfind(m).map(|i| i + m.len()))
        .max()?;
    let rest = &message[start..];
    let name = match rest.chars().next()? {
        '\'' => rest[1..].split('\'').next()?,
        // `db`.`table`.`column`: the last part.
        '`' => rest
            .split(' ')
            .next()?
            .rsplit('.')
            .next()?
            .trim_matches('`'),
        _ => return None,
    };
    Some(name).filter(|n| !n.is_empty() && n.len() <= 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16, message: &str) -> Error {
        Error::Server(ServerError {
            code,
            message: message.into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn record_reasons_name_the_column_not_the_value() {
        let e = server(1406, "Data too long for column 'first_name' at row 1");
        assert!(is_record_error(&e));
        assert_eq!(
            record_reason(&e),
            "MariaDB error 1406 (value too long for the column) on `first_name`"
        );
        let e = server(1062, "Duplicate entry 'ada@example.com' for key 'email_uq'");
        let r = record_reason(&e);
        assert!(r.contains("email_uq") && !r.contains("ada@"), "{r}");
        let e = server(
            1292,
            "Incorrect datetime value: 'o'clock' for column `mdhub`.`t`.`d` at row 1",
        );
        assert_eq!(
            record_reason(&e),
            "MariaDB error 1292 (value of the wrong type for the column) on `d`"
        );
        let e = server(1062, "Duplicate entry 'x for column 'y' for key 'PRIMARY'");
        assert!(record_reason(&e).ends_with("on `PRIMARY`"));
    }

    #[test]
    fn deadlocks_and_privileges_are_not_record_errors() {
        assert!(!is_record_error(&server(1213, "Deadlock found")));
        assert!(matches!(
            classify(&server(1227, "Access denied"), "x"),
            ConnectorError::Fatal(_)
        ));
    }
}
