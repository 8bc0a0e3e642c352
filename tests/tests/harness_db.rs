//! The database harness starts real, throwaway PostgreSQL and MariaDB
//! servers: reachable over TCP with the command-line clients, set up for
//! change capture (logical WAL, row binlog), independent of each other and
//! of the machine's own servers, and gone without a trace once stopped.
//! Below them, the process handling they share ([`ServerProcess`]), with
//! stand-in servers that misbehave on purpose.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mdhub_tests::mariadb::MariaDb;
use mdhub_tests::postgres::Postgres;
use mdhub_tests::server_process::{process_alive, run_command, signal, ServerProcess};
use mdhub_tests::wait::wait_until_blocking;

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

/// A stand-in server: `sh -c SCRIPT`, its output in `log`.
fn shell_server(script: &str, log: &Path) -> anyhow::Result<ServerProcess> {
    let mut sh = Command::new("sh");
    sh.args(["-c", script]);
    ServerProcess::spawn("the stand-in server", sh, log)
}

#[test]
fn a_server_that_exits_while_starting_fails_the_wait_at_once_with_its_log_tail(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let mut server = shell_server("echo 'fatal: no such data directory'; exit 3", &log)?;
    // Never ready: only the exit can end this wait before its deadline.
    let err = server
        .wait_ready("the stand-in to be ready", Duration::from_secs(60), || {
            Ok(false)
        })
        .expect_err("an exited server is not ready");
    let text = format!("{err:#}");
    assert!(text.contains("the stand-in server exited"), "{text}");
    assert!(!text.contains("timed out"), "{text}");
    assert!(text.contains("fatal: no such data directory"), "{text}");
    assert!(!server.is_running());
    Ok(())
}

#[test]
fn a_server_that_ignores_the_stop_request_is_killed_and_the_stop_says_so() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    // SIG_IGN survives exec: the sleeping server ignores SIGTERM.
    let mut server = shell_server("trap '' TERM; echo up; exec sleep 600", &log)?;
    server.wait_ready("the stand-in to be up", Duration::from_secs(60), || {
        Ok(fs::read_to_string(&log).unwrap_or_default().contains("up"))
    })?;
    let pid = server.pid();
    let err = server
        .stop(Duration::from_secs(1), |pid| signal(pid, "TERM"))
        .expect_err("SIGTERM is ignored");
    assert!(err.to_string().contains("killed it"), "{err}");
    assert!(!server.is_running());
    assert!(!process_alive(pid), "pid {pid} is gone");
    Ok(())
}

#[test]
fn killing_a_wrapped_server_kills_the_server_not_only_its_wrapper() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let pid_file = dir.path().join("server.pid");
    // As `runuser` does: the child waits on the real server, which it forked.
    let mut wrapper = shell_server(
        &format!("sleep 600 & echo $! > '{}'; wait", pid_file.display()),
        &log,
    )?;
    let wrapper_pid = wrapper.pid();
    let mut server_pid = 0;
    wrapper.wait_ready("the server's pid file", Duration::from_secs(60), || {
        server_pid = fs::read_to_string(&pid_file)?.trim().parse()?;
        Ok(true)
    })?;
    wrapper.set_server_pid(server_pid);
    assert_ne!(server_pid, wrapper_pid);
    assert!(process_alive(server_pid));
    wrapper.kill();
    // The wrapper is reaped by then; the server dies when SIGKILL lands.
    assert!(!process_alive(wrapper_pid), "wrapper {wrapper_pid} is gone");
    wait_until_blocking(
        &format!("server {server_pid} to be gone"),
        Duration::from_secs(60),
        || !process_alive(server_pid),
    )?;
    Ok(())
}

#[test]
fn an_exited_unreaped_child_counts_as_gone() -> anyhow::Result<()> {
    let mut child = Command::new("true").spawn()?;
    let pid = child.id();
    // Not reaped yet: a zombie until the wait below.
    wait_until_blocking(
        "the exited child to count as gone",
        Duration::from_secs(60),
        || !process_alive(pid),
    )?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    assert!(stat.contains(") Z"), "still a zombie: {stat}");
    child.wait()?;
    Ok(())
}

#[test]
fn a_failing_client_command_reports_its_stderr_and_not_its_stdout() {
    let err = run_command(
        Command::new("sh").args(["-c", "echo 'row: Ada'; echo 'no such table' >&2; exit 1"]),
        "the client",
    )
    .expect_err("exit 1 is a failure");
    let text = format!("{err:#}");
    assert!(text.starts_with("the client failed"), "{text}");
    assert!(text.contains("no such table"), "{text}");
    assert!(!text.contains("Ada"), "stdout stays out: {text}");
}
