//! A throwaway MariaDB server for tests ([`MariaDb`]), started from the
//! installed binaries on a free loopback port with its data directory and
//! socket in a temp dir, shut down and removed on drop. The binary log is on
//! in row format (`--log-bin --binlog-format=ROW --server-id=1`), so change
//! capture from the binlog works against it. A MariaDB the machine may
//! already run (port 3306, the system service) is never touched or used.
//!
//! `--no-defaults` everywhere: no system or user option file applies.
//! `mariadb-install-db --auth-root-authentication-method=normal` gives
//! `root@127.0.0.1` an empty password, so clients connect over TCP as root;
//! the server listens on 127.0.0.1 only and lives for one test. As root the
//! server runs as root (`--user=root`), otherwise as the current user.
//!
//! Which binaries: `$MDHUB_MARIADB_BIN` (a directory holding `mariadbd` and
//! `mariadb-install-db`), else `PATH`, then the places
//! scripts/install-deps.sh looks (`/usr/sbin`, `/usr/bin`, `/usr/libexec`,
//! `/usr/local/sbin`). Server output goes to `mariadb.log` in the temp dir;
//! start-up failures carry its tail.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tempfile::TempDir;

use crate::ports::try_free_port;
use crate::postgres::{current_uid, current_user_name, log_tail};
use crate::wait::{wait_for_blocking, wait_until_blocking};

/// Environment variable naming a directory with the server binaries.
pub const MARIADB_BIN_ENV: &str = "MDHUB_MARIADB_BIN";

/// How long `mariadb-install-db` plus start-up may take until the server
/// answers a query over TCP.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// How long a clean shutdown may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The database created at start for tests to use.
pub const DATABASE: &str = "mdhub";

/// The account clients use over TCP (empty password).
pub const USER: &str = "root";

const LOG_FILE: &str = "mariadb.log";
const LOG_TAIL_LINES: usize = 30;

/// `(mariadbd, mariadb-install-db)` (see the module documentation for the
/// lookup order).
pub fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let has_both =
        |d: &Path| d.join("mariadbd").is_file() && d.join("mariadb-install-db").is_file();
    let pick = |d: PathBuf| (d.join("mariadbd"), d.join("mariadb-install-db"));
    if let Some(dir) = std::env::var_os(MARIADB_BIN_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !has_both(&dir) {
            bail!(
                "${MARIADB_BIN_ENV} = {}: no mariadbd and mariadb-install-db there",
                dir.display()
            );
        }
        return Ok(pick(dir));
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let find = |name: &str| {
        path_dirs
            .iter()
            .cloned()
            .chain(
                ["/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/sbin"]
                    .into_iter()
                    .map(PathBuf::from),
            )
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("mariadbd"), find("mariadb-install-db")) {
        (Some(server), Some(install)) => Ok((server, install)),
        _ => Err(anyhow!(
            "no MariaDB server binaries (mariadbd, mariadb-install-db) on PATH or in \
             /usr/sbin, /usr/bin, /usr/libexec, /usr/local/sbin; install Debian's \
             `mariadb-server` (scripts/install-deps.sh does) or set ${MARIADB_BIN_ENV}"
        )),
    }
}

/// A running throwaway MariaDB server; shut down and deleted on drop.
pub struct MariaDb {
    server: PathBuf,
    os_user: String,
    port: u16,
    child: Option<Child>,
    // Declared last: removed after the server has stopped.
    dir: TempDir,
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb")
            .field("url", &self.url())
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl MariaDb {
    /// `mariadb-install-db` in a new temp dir, then `mariadbd` on a free
    /// loopback port; returns once it answers over TCP and the database
    /// [`DATABASE`] exists.
    pub fn start() -> anyhow::Result<Self> {
        let (server, install) = binaries()?;
        let os_user = if current_uid()? == 0 {
            "root".to_string()
        } else {
            current_user_name()?
        };
        let dir = tempfile::Builder::new()
            .prefix("mdhub-mariadb-")
            .tempdir()?;
        let db = MariaDb {
            server,
            os_user,
            port: 0,
            child: None,
            dir,
        };
        db.install(&install)?;
        let mut db = db;
        let mut attempt = 0;
        loop {
            attempt += 1;
            db.port = try_free_port()?;
            match db.spawn() {
                Ok(()) => break,
                // Another process took the port between the probe and the
                // bind: try another.
                Err(e) if attempt < 3 && db.log().contains("Can't start server: Bind") => drop(e),
                Err(e) => return Err(e),
            }
        }
        db.client(None, &format!("CREATE DATABASE {DATABASE}"))?;
        Ok(db)
    }

    fn data_dir_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn install(&self, install: &Path) -> anyhow::Result<()> {
        let out = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir_path().display()))
            .arg(format!("--user={}", self.os_user))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .context("running mariadb-install-db")?;
        if !out.status.success() {
            bail!(
                "mariadb-install-db failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir_path().display()))
            .arg(format!("--user={}", self.os_user))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadb.pid").display()
            ))
            .arg(format!(
                "--log-bin={}",
                self.data_dir_path().join("binlog").display()
            ))
            .args(["--binlog-format=ROW", "--server-id=1"])
            // Clients connect as root@127.0.0.1: no reverse DNS lookups.
            .arg("--skip-name-resolve")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting mariadbd")?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready() {
            self.kill();
            return Err(e.context(format!(
                "MariaDB on 127.0.0.1:{} did not start\n--- last lines of {} ---\n{}",
                self.port,
                self.log_path().display(),
                log_tail(&self.log_path(), LOG_TAIL_LINES)
            )));
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        // Ok(Some(Err(_))): the server exited, no use waiting any longer.
        wait_for_blocking(
            "MariaDB to answer a query over TCP",
            STARTUP_DEADLINE,
            || {
                let child = self.child.as_mut().expect("spawned");
                if let Some(status) = child.try_wait()? {
                    return Ok(Some(Err(anyhow!("mariadbd exited: {status}"))));
                }
                Ok(self.client(None, "SELECT 1").ok().map(|_| Ok(())))
            },
        )?
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account to connect as (all privileges, replication included).
    pub fn user(&self) -> &str {
        USER
    }

    /// Its password: empty.
    pub fn password(&self) -> &str {
        ""
    }

    /// The database created at start.
    pub fn db(&self) -> &str {
        DATABASE
    }

    /// `mysql://root@127.0.0.1:PORT/mdhub`.
    pub fn url(&self) -> String {
        format!("mysql://{USER}@{}:{}/{DATABASE}", self.host(), self.port)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
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

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs SQL with the `mariadb` client over TCP in the database
    /// [`DATABASE`] and returns its batch output without column names:
    /// tab-separated columns, one row a line.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        self.client(Some(DATABASE), sql)
    }

    fn client(&self, database: Option<&str>, sql: &str) -> anyhow::Result<String> {
        let mut cmd = Command::new("mariadb");
        cmd.args(["--no-defaults", "--batch", "--skip-column-names"])
            .args([
                "--protocol=TCP",
                "-h",
                self.host(),
                "-P",
                &self.port.to_string(),
            ])
            .args(["-u", USER, "--connect-timeout=2"]);
        cmd.args(database);
        let out = cmd
            .args(["-e", sql])
            .stdin(Stdio::null())
            .output()
            .context("running the mariadb client")?;
        if !out.status.success() {
            bail!(
                "mariadb on port {} failed ({}): {}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim_end().to_string())
    }

    /// Clean shutdown (SIGTERM: the server flushes and closes its files),
    /// then waits for the process to exit; kills it if that does not happen
    /// in time. No-op once stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let child = self.child.as_mut().expect("running");
        let exited = wait_until_blocking("mariadbd to exit", STOP_DEADLINE, || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if exited.is_err() {
            self.kill();
            bail!("MariaDB on port {} did not shut down; killed it", self.port);
        }
        self.child = None;
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if self.stop().is_err() {
            self.kill();
        }
    }
}
