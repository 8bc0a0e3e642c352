//! A server process a test starts and owns ([`ServerProcess`]): spawned with
//! its output appended to a log file, waited on until a readiness condition
//! holds (giving up at once if it exits, with the log's tail), stopped by a
//! request (a signal, or the server's own stop command) and killed when it
//! has not exited by a deadline, and killed on drop.
//!
//! Around it, what every harness that starts such a server needs: the
//! directory of server binaries a test run names in an environment variable
//! ([`bin_dir_from_env`]), a free loopback port that is picked again when another process binds it first
//! ([`on_free_port`]), whether a process id is still alive
//! ([`process_alive`]), running a client or setup command with an error that
//! says what failed ([`run_command`], [`run_setup_command`]), and who the
//! tests run as ([`current_uid`], [`current_user_name`]).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::ports::try_free_port;
use crate::wait::{wait_for_blocking, wait_until_blocking};

/// How many lines of a server's log a start-up failure carries.
const LOG_TAIL_LINES: usize = 30;

/// How many ports [`on_free_port`] tries.
const PORT_ATTEMPTS: u32 = 3;

/// A running child server process; killed on drop if still running.
#[derive(Debug)]
pub struct ServerProcess {
    /// Names the server in errors, e.g. "PostgreSQL on 127.0.0.1:5433".
    name: String,
    log: PathBuf,
    /// What was spawned: the server, or a wrapper (`runuser`) that exits
    /// once the server has. Waiting on it reaps whichever it is.
    child: Option<Child>,
    /// The server's own process id; the child's until
    /// [`set_server_pid`](Self::set_server_pid) says otherwise. Kept after
    /// the server has stopped, so a test can check it is gone.
    pid: u32,
}

impl ServerProcess {
    /// Spawns `cmd` (stdin closed) with stdout and stderr appended to `log`.
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let name = name.into();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(ServerProcess {
            name,
            log: log.to_path_buf(),
            pid: child.id(),
            child: Some(child),
        })
    }

    /// Waits until `ready()` returns `Ok(true)` (`Ok(false)` and errors mean
    /// "not yet"; the last error is reported on timeout). Fails at once if
    /// the process exits. On failure the process is killed and the error
    /// carries the tail of its log, where the server says why.
    pub fn wait_ready(
        &mut self,
        what: &str,
        deadline: Duration,
        mut ready: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let name = &self.name;
        let child = self.child.as_mut().context("the server is not running")?;
        // Ok(Some(Err(_))): the server exited, no use waiting any longer.
        let waited = wait_for_blocking(what, deadline, || {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(Err(anyhow!("{name} exited: {status}"))));
            }
            Ok(ready()?.then_some(Ok(())))
        })
        .and_then(|exited| exited);
        if let Err(e) = waited {
            self.kill();
            return Err(e.context(format!(
                "{} did not start\n--- last lines of {} ---\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, LOG_TAIL_LINES)
            )));
        }
        Ok(())
    }

    /// For a child that wraps the server (`runuser`): the server's own
    /// process id, which [`kill`](Self::kill) must reach since killing the
    /// wrapper would leave the server running.
    pub fn set_server_pid(&mut self, pid: u32) {
        self.pid = pid;
    }

    /// The server's process id (also once it has stopped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has been neither stopped nor killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Asks the server to stop with `request` (given the server's pid),
    /// then waits up to `deadline` for the process to exit; kills it if it
    /// has not. The request's own failure is reported only if the server
    /// then does not exit: what counts is that it is gone. No-op once
    /// stopped.
    pub fn stop(
        &mut self,
        deadline: Duration,
        request: impl FnOnce(u32) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let requested = request(self.pid);
        let exited = wait_until_blocking(&format!("{} to exit", self.name), deadline, || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if exited.is_err() {
            self.kill();
            bail!(
                "{} (pid {}) did not stop within {deadline:?}; killed it{}",
                self.name,
                self.pid,
                requested
                    .err()
                    .map(|e| format!(" (stop request: {e:#})"))
                    .unwrap_or_default()
            );
        }
        self.child = None;
        Ok(())
    }

    /// SIGKILL to the server (and to its wrapper, if any), then reaps the
    /// child. No-op once stopped.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.pid != child.id() && process_alive(self.pid) {
            let _ = signal(self.pid, "KILL");
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends signal `name` ("TERM", "KILL") to process `pid`, with the `kill`
/// command: the harness needs no libc binding for this.
pub fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{name} {pid} failed ({status})");
    }
    Ok(())
}

/// The directory environment variable `var` names, if it is set and not
/// empty; an error if one of `binaries` is not there, rather than falling
/// back to other binaries than the ones asked for.
pub fn bin_dir_from_env(var: &str, binaries: &[&str]) -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    if let Some(missing) = binaries.iter().find(|b| !dir.join(b).is_file()) {
        bail!("${var} = {}: no {missing} there", dir.display());
    }
    Ok(Some(dir))
}

/// Runs `spawn` with a free loopback port. When it fails and the server's
/// `log` holds `bind_error`, another process took the port between the
/// probe and the bind: it runs again with another port, three tries in all.
pub fn on_free_port(
    log: &Path,
    bind_error: &str,
    mut spawn: impl FnMut(u16) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match spawn(try_free_port()?) {
            Ok(()) => return Ok(()),
            Err(_) if attempt < PORT_ATTEMPTS && log_text(log).contains(bind_error) => {}
            Err(e) => return Err(e),
        }
    }
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

/// The peak resident set of process `pid` so far (`VmHWM` of
/// /proc/PID/status), in KiB; None where the process is gone or the line
/// is missing.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Runs a client command (stdin closed) and returns its standard output
/// without trailing whitespace. A failure names `what`, the exit status and
/// the command's standard error; never its standard output, which may hold
/// rows read before the failing statement.
pub fn run_command(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = run(cmd, what, false)?;
    String::from_utf8(out).with_context(|| format!("output of {what} is not UTF-8"))
}

/// Runs a tool that sets up a server's data directory. A failure carries
/// its standard output as well as its standard error: such tools
/// (`mariadb-install-db`) may print why on either, and have read no data.
pub fn run_setup_command(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    run(cmd, what, true).map(drop)
}

fn run(cmd: &mut Command, what: &str, show_stdout: bool) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        let stdout = if show_stdout {
            String::from_utf8_lossy(&out.stdout)
        } else {
            "".into()
        };
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let mut stdout = out.stdout;
    stdout.truncate(stdout.trim_ascii_end().len());
    Ok(stdout)
}

/// The user id the tests run as.
pub fn current_uid() -> anyhow::Result<u32> {
    run_command(Command::new("id").arg("-u"), "id -u")?
        .parse()
        .context("parsing the output of id -u")
}

/// The name of the user the tests run as.
pub fn current_user_name() -> anyhow::Result<String> {
    run_command(Command::new("id").arg("-un"), "id -un")
}

/// The last `n` lines of a server's log (empty if it cannot be read).
fn log_tail(path: &Path, n: usize) -> String {
    let text = log_text(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn log_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}
