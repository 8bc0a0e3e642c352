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
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tempfile::TempDir;

use crate::ports::try_free_port;
use crate::wait::{wait_for_blocking, wait_until_blocking};

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
const LOG_TAIL_LINES: usize = 30;

/// The directory with `initdb`, `pg_ctl` and `postgres` (see the module
/// documentation for the lookup order).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(POSTGRES_BIN_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !has_all(&dir) {
            bail!(
                "${POSTGRES_BIN_ENV} = {}: no initdb, pg_ctl and postgres there",
                dir.display()
            );
        }
        return Ok(dir);
    }
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
        let out = Command::new("id")
            .args([flag, SERVICE_USER])
            .stdin(Stdio::null())
            .output()
            .context("running id")?;
        if !out.status.success() {
            bail!(
                "running as root, and there is no `{SERVICE_USER}` user to run PostgreSQL as \
                 (initdb and postgres refuse root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok(Some((SERVICE_USER.to_string(), id("-u")?, id("-g")?)))
}

pub(crate) fn current_uid() -> anyhow::Result<u32> {
    command_text("id", &["-u"])?
        .parse()
        .context("parsing the output of id -u")
}

pub(crate) fn current_user_name() -> anyhow::Result<String> {
    command_text("id", &["-un"])
}

fn command_text(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether process `pid` still exists (a zombie counts as gone: it has
/// exited, and whoever parents it may never reap it, e.g. a container whose
/// PID 1 does not).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A running throwaway PostgreSQL server; stopped and deleted on drop.
pub struct Postgres {
    bin: PathBuf,
    run_as: Option<String>,
    user: String,
    port: u16,
    /// `runuser` (as root) or `postgres` itself: waiting on it reaps the
    /// server.
    child: Option<Child>,
    pid: u32,
    // Declared last: removed after the server has stopped.
    dir: TempDir,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.url())
            .field("pid", &self.pid)
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
            child: None,
            pid: 0,
            dir,
        };
        pg.initdb()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            pg.port = try_free_port()?;
            match pg.spawn() {
                Ok(()) => return Ok(pg),
                // Another process took the port between the probe and the
                // bind: try another.
                Err(e) if attempt < 3 && pg.log().contains("could not bind") => drop(e),
                Err(e) => return Err(e),
            }
        }
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
        let out = self
            .command("initdb")
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
            .arg("--no-sync")
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
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
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir_path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        self.child = Some(child);
        let ready = self.wait_ready();
        if let Err(e) = ready {
            self.kill();
            return Err(e.context(format!(
                "PostgreSQL on 127.0.0.1:{} did not start\n--- last lines of {} ---\n{}",
                self.port,
                self.log_path().display(),
                log_tail(&self.log_path(), LOG_TAIL_LINES)
            )));
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let pid_file = self.data_dir_path().join("postmaster.pid");
        let port = self.port;
        let user = self.user.clone();
        let pg_isready = self.bin.join("pg_isready");
        let child = self.child.as_mut().expect("spawned");
        // Ok(Some(Err(_))): the server exited, no use waiting any longer.
        wait_for_blocking(
            "PostgreSQL to accept connections over TCP",
            STARTUP_DEADLINE,
            || {
                if let Some(status) = child.try_wait()? {
                    return Ok(Some(Err(anyhow!("postgres exited: {status}"))));
                }
                let ok = Command::new(&pg_isready)
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", &user])
                    .args(["-d", DATABASE, "-t", "2"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?
                    .success();
                Ok(ok.then_some(Ok(())))
            },
        )??;
        // The postmaster's pid (as root the child is runuser, its parent).
        let text = fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        self.pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("no pid in {}", pid_file.display()))?;
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

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.pid
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
        let out = Command::new(psql)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", self.host(), "-p", &self.port.to_string()])
            .args(["-U", &self.user, "-d", DATABASE, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql on port {} failed ({}): {}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim_end().to_string())
    }

    /// Fast shutdown (`pg_ctl stop -m fast`: open sessions are ended), then
    /// waits for the server process to be gone; kills it if the shutdown
    /// does not finish in time. No-op once stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir_path())
            .args([
                "-m",
                "fast",
                "-w",
                "-t",
                &STOP_DEADLINE.as_secs().to_string(),
            ])
            .arg("stop")
            .output();
        let child = self.child.as_mut().expect("checked");
        let exited = wait_until_blocking("postgres to exit", STOP_DEADLINE, || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if exited.is_err() {
            self.kill();
            bail!(
                "PostgreSQL on port {} did not stop (pg_ctl: {:?}); killed it",
                self.port,
                out.map(|o| String::from_utf8_lossy(&o.stderr).to_string())
            );
        }
        self.child = None;
        Ok(())
    }

    fn kill(&mut self) {
        if self.pid != 0 && process_alive(self.pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.stop().is_err() {
            self.kill();
        }
    }
}
