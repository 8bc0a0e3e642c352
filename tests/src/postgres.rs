//! A throwaway PostgreSQL server for tests ([`Postgres`]), started from the
//! installed server binaries on a free loopback port with its data directory
//! and unix socket in a temp dir, stopped (`pg_ctl stop -m fast`) and removed
//! on drop. It runs with `wal_level = logical`, so change capture through
//! logical replication works against it. The PostgreSQL a machine may already
//! run (port 5432, the system cluster) is never touched or used.
//!
//! `initdb` and `postgres` refuse to run as root: as root the harness runs
//! them as the `postgres` user (`runuser -u postgres --`) on a temp dir that
//! user owns; otherwise as the current user. The server trusts every local
//! connection (`initdb --auth=trust`): it listens on 127.0.0.1 only and lives
//! for one test.
//!
//! Which binaries: `$MDHUB_POSTGRES_BIN` (a directory holding `initdb`,
//! `pg_ctl` and `postgres`), else the newest `/usr/lib/postgresql/<major>/bin`
//! (Debian's layout), else `PATH`. Server output goes to `postgres.log` in
//! the temp dir; start-up failures carry its tail.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tempfile::TempDir;

use crate::server_process::{
    bin_dir_from_env, current_uid, current_user_name, on_free_port, run_command, run_setup_command,
    ServerProcess,
};

/// Environment variable naming a directory with the server binaries.
pub const POSTGRES_BIN_ENV: &str = "MDHUB_POSTGRES_BIN";

/// How long `initdb` plus start-up may take until the server accepts a
/// connection over TCP.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The OS user the server runs as when the tests run as root.
const SERVICE_USER: &str = "postgres";

/// The database every server has (the one `initdb` creates).
pub const DATABASE: &str = "postgres";

const LOG_FILE: &str = "postgres.log";

/// The directory with `initdb`, `pg_ctl` and `postgres` (see the module
/// documentation for the lookup order).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
    if let Some(dir) = bin_dir_from_env(POSTGRES_BIN_ENV, &BINARIES)? {
        return Ok(dir);
    }
    let has_all = |d: &Path| BINARIES.iter().all(|b| d.join(b).is_file());
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    // Newest first: "9" < "15" numerically, not as text.
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    versioned
        .into_iter()
        .map(|(_, d)| d)
        .chain(path_dirs)
        .find(|d| has_all(d))
        .ok_or_else(|| {
            anyhow!(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under \
                 /usr/lib/postgresql/*/bin or on PATH; install Debian's `postgresql` \
                 (scripts/install-deps.sh does) or set ${POSTGRES_BIN_ENV}"
            )
        })
}

/// The OS user to run the server as, when it differs from the current one.
fn service_user() -> anyhow::Result<Option<(String, u32, u32)>> {
    if current_uid()? != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> anyhow::Result<u32> {
        run_command(
            Command::new("id").args([flag, SERVICE_USER]),
            &format!("id {flag} {SERVICE_USER}"),
        )
        .with_context(|| {
            format!(
                "running as root, and there is no `{SERVICE_USER}` user to run PostgreSQL as \
                 (initdb and postgres refuse root)"
            )
        })?
        .parse()
        .with_context(|| format!("parsing the output of id {flag} {SERVICE_USER}"))
    };
    Ok(Some((SERVICE_USER.to_string(), id("-u")?, id("-g")?)))
}

/// A running throwaway PostgreSQL server; stopped and deleted on drop.
pub struct Postgres {
    bin: PathBuf,
    run_as: Option<String>,
    user: String,
    port: u16,
    /// `runuser` (as root) wrapping `postgres`, or `postgres` itself.
    process: Option<ServerProcess>,
    // Declared last: removed after the server has stopped.
    dir: TempDir,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.url())
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Postgres {
    /// `initdb` in a new temp dir, then the server on a free loopback port;
    /// returns once it accepts connections over TCP.
    pub fn start() -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let service = service_user()?;
        let dir = tempfile::Builder::new().prefix("mdhub-pg-").tempdir()?;
        if let Some((_, uid, gid)) = &service {
            chown(dir.path(), Some(*uid), Some(*gid))
                .with_context(|| format!("handing {} to {SERVICE_USER}", dir.path().display()))?;
        }
        let run_as = service.map(|s| s.0);
        // The database superuser is named after the OS user running initdb.
        let user = match &run_as {
            Some(u) => u.clone(),
            None => current_user_name()?,
        };
        let mut pg = Postgres {
            bin,
            run_as,
            user,
            port: 0,
            process: None,
            dir,
        };
        pg.initdb()?;
        on_free_port(&pg.log_path(), "could not bind", |port| {
            pg.port = port;
            pg.spawn()
        })?;
        Ok(pg)
    }

    fn data_dir_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for a server binary, run as the service user when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The service user may not be able to enter the test's directory.
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir_path())
            .args([
                "-U",
                &self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            // A throwaway cluster: no need to wait for its files to reach disk.
            .arg("--no-sync");
        run_setup_command(&mut initdb, "initdb")
    }

    /// Writes the listen settings for the current port and starts the
    /// server in the foreground as a child; waits until it answers over TCP.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let conf = self.data_dir_path().join("postgresql.auto.conf");
        let socket_dir = self.dir.path().to_str().context("temp dir is not UTF-8")?;
        // Appended to the file ALTER SYSTEM writes (the service user owns
        // it; appending keeps it so): the last setting wins.
        let mut f = OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        writeln!(
            f,
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{socket_dir}'\n\
             wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10",
            self.port
        )?;
        let mut postgres = self.command("postgres");
        postgres.arg("-D").arg(self.data_dir_path());
        let mut process = ServerProcess::spawn(
            format!("PostgreSQL on 127.0.0.1:{}", self.port),
            postgres,
            &self.log_path(),
        )?;
        let pg_isready = self.bin.join("pg_isready");
        process.wait_ready(
            "PostgreSQL to accept connections over TCP",
            STARTUP_DEADLINE,
            || {
                Ok(Command::new(&pg_isready)
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .args(["-U", &self.user, "-d", DATABASE, "-t", "2"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?
                    .success())
            },
        )?;
        // The postmaster's pid (as root the child is runuser, its parent).
        // On an error here `process` is dropped, which kills it.
        let pid_file = self.data_dir_path().join("postmaster.pid");
        let text = fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("no pid in {}", pid_file.display()))?;
        process.set_server_pid(pid);
        self.process = Some(process);
        Ok(())
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser (trusted without a password; may replicate).
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn db(&self) -> &str {
        DATABASE
    }

    /// `postgres://USER@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user,
            self.host(),
            self.port,
            DATABASE
        )
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir_path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// The postmaster's process id (also once it has stopped).
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, ServerProcess::pid)
    }

    /// Runs SQL with `psql` over TCP and returns its unaligned, tuples-only
    /// output (`|` between columns, one row a line).
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        };
        run_command(
            Command::new(psql)
                .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", self.host(), "-p", &self.port.to_string()])
                .args(["-U", &self.user, "-d", DATABASE, "-c", sql]),
            &format!("psql on port {}", self.port),
        )
    }

    /// Fast shutdown (`pg_ctl stop -m fast`: open sessions are ended), then
    /// waits for the server process to be gone; kills it if the shutdown
    /// does not finish in time. No-op once stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop_in_mode("fast")
    }

    /// `pg_ctl stop -m <mode>`, then waits for the server process to be
    /// gone; kills it if the shutdown does not finish in time.
    fn stop_in_mode(&mut self, mode: &str) -> anyhow::Result<()> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir_path()).args([
            "-m",
            mode,
            "-w",
            "-t",
            &STOP_DEADLINE.as_secs().to_string(),
            "stop",
        ]);
        let Some(process) = self.process.as_mut() else {
            return Ok(());
        };
        let what = format!("pg_ctl stop -m {mode}");
        process.stop(STOP_DEADLINE, |_| run_command(&mut pg_ctl, &what).map(drop))
    }
}

impl Postgres {
    /// Immediate shutdown (`pg_ctl stop -m immediate`), as in a crash: the
    /// server does not wait for its clients. (A fast shutdown waits for
    /// each logical replication client to confirm all WAL sent to it.)
    /// No-op once stopped.
    pub fn stop_immediate(&mut self) -> anyhow::Result<()> {
        self.stop_in_mode("immediate")
    }
}

impl Postgres {
    /// Starts the server again after [`stop`](Self::stop) or
    /// [`stop_immediate`](Self::stop_immediate): same data directory, same
    /// port, so clients configured for it reconnect (after an immediate
    /// stop the server recovers from its WAL first). No-op while running.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.process.as_ref().is_some_and(ServerProcess::is_running) {
            return Ok(());
        }
        self.process = None;
        self.spawn()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A stop that fails has killed the server.
        let _ = self.stop();
    }
}
