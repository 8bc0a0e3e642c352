//! A throwaway REST API for tests ([`JsonServer`]): json-server 0.17.4 on a
//! free loopback port over a `db.json` in a temp dir, with the middleware
//! `tests/data/json-server/updated_at.js` that stamps `updatedAt` on every
//! write (so the API has a change cursor, as a real one does). Stopped on
//! drop. It can be stopped and started again on the same port and file, to
//! test a connector riding out an outage.
//!
//! Which json-server: `$MDHUB_JSON_SERVER` (the path of its `json-server`
//! script), else the one scripts/install-deps.sh installs under
//! `$HOME/.local/share/mdhub/json-server`, else `json-server` on `PATH`. It
//! must be 0.17.x: the 1.0 betas changed the query dialect and need Node 22.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;
use tempfile::TempDir;

use crate::server_process::{on_free_port, run_command, signal, ServerProcess};

/// Environment variable naming the `json-server` script to run.
pub const JSON_SERVER_ENV: &str = "MDHUB_JSON_SERVER";

/// Where scripts/install-deps.sh installs json-server, under `$HOME`.
pub const USER_PREFIX: &str = ".local/share/mdhub/json-server";

/// How long json-server may take to answer after it was started.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

const STOP_DEADLINE: Duration = Duration::from_secs(10);

const LOG_FILE: &str = "json-server.log";

/// The `json-server` script (see the module documentation for the lookup
/// order), checked to be version 0.17.
pub fn binary() -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os(JSON_SERVER_ENV).filter(|v| !v.is_empty())
    {
        Some(path) => vec![PathBuf::from(path)],
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let path_dirs = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default();
            home.map(|h| h.join(USER_PREFIX).join("node_modules/.bin/json-server"))
                .into_iter()
                .chain(path_dirs.into_iter().map(|d| d.join("json-server")))
                .collect()
        }
    };
    let Some(bin) = candidates.into_iter().find(|p| p.is_file()) else {
        bail!(
            "no json-server found (${JSON_SERVER_ENV}, ~/{USER_PREFIX}, PATH); \
             run scripts/install-deps.sh, which installs json-server@0.17.4 with npm"
        );
    };
    let version = run_command(
        Command::new(&bin).arg("--version"),
        &format!("{} --version", bin.display()),
    )?;
    if !version.starts_with("0.17.") {
        bail!(
            "{} is json-server {version}; the tests need 0.17.x (the 1.0 betas have \
             another query dialect and need Node 22)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The middleware that stamps `updatedAt` on writes.
pub fn middleware_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/json-server/updated_at.js")
}

/// A running json-server; killed on drop, its temp dir removed.
#[derive(Debug)]
pub struct JsonServer {
    bin: PathBuf,
    port: u16,
    process: Option<ServerProcess>,
    // Declared last: removed after the server has stopped.
    dir: TempDir,
}

impl JsonServer {
    /// Writes `db` (an object of collections, e.g. `{"customers": []}`) to
    /// `db.json` and serves it; returns once the API answers.
    pub fn start(db: &Value) -> anyhow::Result<Self> {
        let bin = binary()?;
        let dir = tempfile::Builder::new().prefix("mdhub-json-").tempdir()?;
        let db_path = dir.path().join("db.json");
        std::fs::write(&db_path, serde_json::to_vec_pretty(db)?)
            .with_context(|| format!("writing {}", db_path.display()))?;
        let mut server = JsonServer {
            bin,
            port: 0,
            process: None,
            dir,
        };
        let log = server.log_path();
        on_free_port(&log, "EADDRINUSE", |port| {
            server.port = port;
            server.spawn()
        })?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(self.dir.path())
            // The file first: `--middlewares` takes every argument after it.
            .arg("db.json")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--middlewares")
            .arg(middleware_path());
        let mut process = ServerProcess::spawn(
            format!("json-server on 127.0.0.1:{}", self.port),
            cmd,
            &self.log_path(),
        )?;
        let port = self.port;
        process.wait_ready("json-server to answer", STARTUP_DEADLINE, || answers(port))?;
        self.process = Some(process);
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file json-server reads and writes.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db.json")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// Whether the server is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(ServerProcess::is_running)
    }

    /// Stops the server (SIGTERM; killed if it has not exited in time).
    /// Its data stays, for [`start_again`](Self::start_again).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        match self.process.as_mut() {
            Some(p) => p.stop(STOP_DEADLINE, |pid| signal(pid, "TERM")),
            None => Ok(()),
        }
    }

    /// Starts the stopped server again on the same port and `db.json`.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("json-server on port {} is still running", self.port);
        }
        self.spawn()
    }
}

/// Whether an HTTP server on `port` answers `GET /db` with 200. A plain
/// HTTP/1.0 request: the harness needs no HTTP client for this.
fn answers(port: u16) -> anyhow::Result<bool> {
    let mut stream =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /db HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}
