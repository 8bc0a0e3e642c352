//! A throwaway MariaDB server for tests ([`MariaDb`]), started from the
//! installed binaries on a free loopback port with its data directory and
//! socket in a temp dir, shut down and removed on drop. The binary log is on
//! in row format with full row images and full table-map metadata (column
//! names) (`--log-bin --binlog-format=ROW --binlog-row-image=FULL
//! --binlog-row-metadata=FULL --server-id=1`), so change capture from the
//! binlog works against it; connectors under test replicate with server ids
//! of their own ([`SERVER_ID`] is the server's). A MariaDB the machine may
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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::anyhow;
use tempfile::TempDir;

use crate::server_process::{
    bin_dir_from_env, current_uid, current_user_name, on_free_port, run_command, run_setup_command,
    signal, ServerProcess,
};

/// Environment variable naming a directory with the server binaries.
pub const MARIADB_BIN_ENV: &str = "MDHUB_MARIADB_BIN";

/// How long `mariadb-install-db` plus start-up may take until the server
/// answers a query over TCP.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// How long a clean shutdown may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The database created at start for tests to use.
pub const DATABASE: &str = "mdhub";

/// The server's own `server_id`; a replica (a connector reading the binlog)
/// must use another.
pub const SERVER_ID: u32 = 1;

/// The account clients use over TCP (empty password).
pub const USER: &str = "root";

const LOG_FILE: &str = "mariadb.log";

/// `(mariadbd, mariadb-install-db)` (see the module documentation for the
/// lookup order).
pub fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let (server, install) = ("mariadbd", "mariadb-install-db");
    if let Some(dir) = bin_dir_from_env(MARIADB_BIN_ENV, &[server, install])? {
        return Ok((dir.join(server), dir.join(install)));
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
    match (find(server), find(install)) {
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
    process: Option<ServerProcess>,
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
        let mut db = MariaDb {
            server,
            os_user,
            port: 0,
            process: None,
            dir,
        };
        db.install(&install)?;
        on_free_port(&db.log_path(), "Can't start server: Bind", |port| {
            db.port = port;
            db.spawn()
        })?;
        db.client(None, &format!("CREATE DATABASE {DATABASE}"))?;
        Ok(db)
    }

    fn data_dir_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's own temp dir: servers bootstrapping side by side in a
    /// shared /tmp have removed each other's temporary tables
    /// ("Unknown table 'mysql.tmp_user_sys'" from mariadb-install-db).
    fn tmp_dir_path(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn install(&self, install: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.tmp_dir_path())?;
        run_setup_command(
            Command::new(install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", self.data_dir_path().display()))
                .arg(format!("--tmpdir={}", self.tmp_dir_path().display()))
                .arg(format!("--user={}", self.os_user))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .current_dir(self.dir.path()),
            "mariadb-install-db",
        )
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut mariadbd = Command::new(&self.server);
        mariadbd
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir_path().display()))
            .arg(format!("--user={}", self.os_user))
            .arg(format!("--tmpdir={}", self.tmp_dir_path().display()))
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
            .args([
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
            ])
            .arg(format!("--server-id={SERVER_ID}"))
            // Clients connect as root@127.0.0.1: no reverse DNS lookups.
            .arg("--skip-name-resolve")
            .current_dir(self.dir.path());
        let mut process = ServerProcess::spawn(
            format!("MariaDB on 127.0.0.1:{}", self.port),
            mariadbd,
            &self.log_path(),
        )?;
        process.wait_ready(
            "MariaDB to answer a query over TCP",
            STARTUP_DEADLINE,
            || Ok(self.client(None, "SELECT 1").is_ok()),
        )?;
        self.process = Some(process);
        Ok(())
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

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process
            .as_ref()
            .filter(|p| p.is_running())
            .map(ServerProcess::pid)
    }

    /// Runs the SQL file at `path` (e.g. a schema) like [`query`](Self::query).
    pub fn run_file(&self, path: &Path) -> anyhow::Result<String> {
        let sql = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        self.query(&sql)
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
            .args(["-u", USER, "--connect-timeout=2"])
            // SQL in tests holds any Unicode: send and read it as UTF-8
            // whatever the machine's locale is.
            .arg("--default-character-set=utf8mb4");
        cmd.args(database).args(["-e", sql]);
        run_command(&mut cmd, &format!("mariadb on port {}", self.port))
    }

    /// Clean shutdown (SIGTERM: the server flushes and closes its files),
    /// then waits for the process to exit; kills it if that does not happen
    /// in time. No-op once stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        match self.process.as_mut() {
            Some(process) => process.stop(STOP_DEADLINE, |pid| signal(pid, "TERM")),
            None => Ok(()),
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // A stop that fails has killed the server.
        let _ = self.stop();
    }
}
