//! The database harness starts real, throwaway PostgreSQL and MariaDB
//! servers: reachable over TCP with the command-line clients, set up for
//! change capture (logical WAL, row binlog), independent of each other and
//! of the machine's own servers, and gone without a trace once stopped.

use std::path::PathBuf;

use mdhub_tests::mariadb::MariaDb;
use mdhub_tests::postgres::{process_alive, Postgres};

/// Creates a table, inserts two rows and returns them as read back.
fn pg_round_trip(pg: &Postgres, tag: &str) -> anyhow::Result<String> {
    pg.psql(&format!(
        "CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL); \
         INSERT INTO customer VALUES (1, 'Ada {tag}'), (2, 'Grace {tag}');"
    ))?;
    pg.psql("SELECT id, name FROM customer ORDER BY id")
}

fn maria_round_trip(db: &MariaDb, tag: &str) -> anyhow::Result<String> {
    db.query(&format!(
        "CREATE TABLE customer (id int PRIMARY KEY, name varchar(100) NOT NULL); \
         INSERT INTO customer VALUES (1, 'Ada {tag}'), (2, 'Grace {tag}');"
    ))?;
    db.query("SELECT id, name FROM customer ORDER BY id")
}

#[test]
fn two_throwaway_postgres_servers_with_logical_wal_run_side_by_side_and_leave_nothing_behind(
) -> anyhow::Result<()> {
    let mut a = Postgres::start()?;
    let b = Postgres::start()?;
    assert_ne!(a.port(), b.port());
    for pg in [&a, &b] {
        assert_ne!(pg.port(), 5432, "never the machine's own server");
        // The server answering on this port is the one the harness started:
        // its port, its data directory, and logical WAL (the default is
        // replica).
        assert_eq!(pg.psql("SHOW port")?, pg.port().to_string());
        assert_eq!(pg.psql("SHOW wal_level")?, "logical");
        let data_dir = PathBuf::from(pg.psql("SHOW data_directory")?);
        assert_eq!(data_dir.canonicalize()?, pg.data_dir().canonicalize()?);
        assert!(pg.url().ends_with(&format!(":{}/{}", pg.port(), pg.db())));
    }
    assert_eq!(pg_round_trip(&a, "a")?, "1|Ada a\n2|Grace a");
    // The same table name on the other server holds only its own rows.
    assert_eq!(pg_round_trip(&b, "b")?, "1|Ada b\n2|Grace b");
    // Logical decoding works: a slot can be created (needs wal_level=logical).
    let slot = a.psql(
        "SELECT slot_name FROM pg_create_logical_replication_slot('mdhub_probe', 'test_decoding')",
    )?;
    assert_eq!(slot, "mdhub_probe");

    let (pid_a, dir_a) = (a.pid(), a.data_dir());
    assert!(process_alive(pid_a));
    a.stop()?;
    assert!(!process_alive(pid_a), "postmaster {pid_a} is gone");
    assert!(a.psql("SELECT 1").is_err(), "nothing answers on its port");
    assert_eq!(b.psql("SELECT count(*) FROM customer")?, "2");

    let pid_b = b.pid();
    let dir_b = b.data_dir();
    drop(a);
    drop(b);
    assert!(
        !process_alive(pid_b),
        "postmaster {pid_b} is gone after drop"
    );
    assert!(!dir_a.exists() && !dir_b.exists(), "temp dirs removed");
    Ok(())
}

#[test]
fn two_throwaway_mariadb_servers_with_a_row_binlog_run_side_by_side_and_leave_nothing_behind(
) -> anyhow::Result<()> {
    let mut a = MariaDb::start()?;
    let b = MariaDb::start()?;
    assert_ne!(a.port(), b.port());
    for db in [&a, &b] {
        assert_ne!(db.port(), 3306, "never the machine's own server");
        assert_eq!(
            db.query("SELECT @@log_bin, @@binlog_format, @@port")?,
            format!("1\tROW\t{}", db.port())
        );
        let datadir = PathBuf::from(db.query("SELECT @@datadir")?);
        assert_eq!(datadir.canonicalize()?, db.data_dir().canonicalize()?);
        assert_eq!(db.query("SELECT DATABASE()")?, db.db());
    }
    assert_eq!(maria_round_trip(&a, "a")?, "1\tAda a\n2\tGrace a");
    assert_eq!(maria_round_trip(&b, "b")?, "1\tAda b\n2\tGrace b");
    // The inserts reached the binary log (what binlog capture reads).
    let events = a.query("SHOW BINLOG EVENTS")?;
    assert!(events.contains("Write_rows"), "row events logged: {events}");

    let pid_a = a.pid().expect("running");
    let dir_a = a.data_dir();
    assert!(process_alive(pid_a));
    a.stop()?;
    assert!(!process_alive(pid_a), "mariadbd {pid_a} is gone");
    assert!(a.query("SELECT 1").is_err(), "nothing answers on its port");
    assert_eq!(b.query("SELECT count(*) FROM customer")?, "2");

    let pid_b = b.pid().expect("running");
    let dir_b = b.data_dir();
    drop(a);
    drop(b);
    assert!(!process_alive(pid_b), "mariadbd {pid_b} is gone after drop");
    assert!(!dir_a.exists() && !dir_b.exists(), "temp dirs removed");
    Ok(())
}
