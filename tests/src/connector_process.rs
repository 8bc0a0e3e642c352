//! `mdhub connector run --config FILE` as a child process ([`ConnectorProcess`]),
//! for tests that kill it (SIGKILL), stop it (SIGTERM) and start it again on
//! the same state directory, and read its `/metrics` and its log.
//!
//! The harness gives the connector a free `metrics_listen` port (kept across
//! restarts) and waits for `/metrics` to answer before a start returns, so a
//! test can read the figures at once. Output goes to `connector.log` next to
//! the config; every start appends to it. The process is killed on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::hub_runner::mdhub_binary;
use crate::ports::free_port;
use crate::wait::wait_for_blocking;

/// How long a start may take until `/metrics` answers, and a SIGTERM until
/// the process has exited.
const DEADLINE: Duration = Duration::from_secs(30);

/// How many log lines [`ConnectorProcess::log_tail`] returns.
const TAIL_LINES: usize = 40;

/// A running `mdhub connector run`; killed on drop.
pub struct ConnectorProcess {
    child: Option<Child>,
    nats_url: String,
    /// The config file written by [`start`](Self::start).
    pub config_path: PathBuf,
    /// Where stdout and stderr of every start are appended.
    pub log_path: PathBuf,
    /// The loopback port of `/metrics`.
    pub metrics_port: u16,
}

impl ConnectorProcess {
    /// Writes `config_toml` (with `metrics_listen` set to a free port) to
    /// `dir/connector.toml` and starts the connector on it with
    /// `--nats nats_url`; returns once `/metrics` answers. The config must
    /// not set `metrics_listen` itself.
    pub fn start(config_toml: &str, nats_url: &str, dir: &Path) -> anyhow::Result<Self> {
        let metrics_port = free_port();
        let config_path = dir.join("connector.toml");
        // Top-level keys must come before the first table: prepended.
        std::fs::write(
            &config_path,
            format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n{config_toml}"),
        )
        .with_context(|| format!("writing {}", config_path.display()))?;
        let mut p = ConnectorProcess {
            child: None,
            nats_url: nats_url.to_string(),
            config_path,
            log_path: dir.join("connector.log"),
            metrics_port,
        };
        p.spawn()?;
        Ok(p)
    }

    /// Runs `mdhub connector run` on `config_toml` (written to
    /// `dir/bad.toml`) to its end, for configurations that must fail at
    /// start; gives up after the deadline.
    pub fn run_to_exit(config_toml: &str, nats_url: &str, dir: &Path) -> anyhow::Result<Output> {
        let path = dir.join("bad.toml");
        std::fs::write(&path, config_toml)?;
        let mut child = Command::new(mdhub_binary()?)
            .args(["connector", "run", "--config"])
            .arg(&path)
            .args(["--nats", nats_url])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting mdhub connector run")?;
        let exited = wait_for_blocking(
            "mdhub connector run to exit on a bad config",
            DEADLINE,
            || Ok(child.try_wait()?.map(|_| ())),
        );
        if let Err(e) = exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(child.wait_with_output()?)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let child = Command::new(mdhub_binary()?)
            .args(["connector", "run", "--config"])
            .arg(&self.config_path)
            .args(["--nats", &self.nats_url])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting mdhub connector run")?;
        self.child = Some(child);
        let port = self.metrics_port;
        let ready = wait_for_blocking("the connector's /metrics to answer", DEADLINE, || {
            if !self.is_running() {
                bail!("mdhub connector run exited");
            }
            let (status, _) = crate::nats::http_get(port, "/metrics")?;
            Ok((status == 200).then_some(()))
        });
        if let Err(e) = ready {
            self.kill9()?;
            return Err(e.context(format!("the connector did not start:\n{}", self.log_tail())));
        }
        Ok(())
    }

    /// Whether the process is running (neither exited nor killed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no clean-up of any kind, nothing more saved.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("SIGKILL to the connector")?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit (status 0).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        crate::server_process::signal(child.id(), "TERM")?;
        let status = wait_for_blocking("the connector to exit after SIGTERM", DEADLINE, || {
            Ok(child.try_wait()?)
        });
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.context(self.log_tail()));
            }
        };
        if !status.success() {
            bail!("the connector exited with {status}:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// Starts the connector again on the same config, state directory and
    /// metrics port (after [`kill9`](Self::kill9) or [`stop`](Self::stop)).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("the connector is still running");
        }
        self.spawn()
    }

    /// `/metrics` as name (with its labels, as exposed) → value; comment
    /// lines left out.
    pub fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let (status, body) = crate::nats::http_get(self.metrics_port, "/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}: {body}");
        }
        parse_metrics(&body)
    }

    /// One figure of `/metrics` by its name without labels (the connector
    /// labels each with its system only).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let all = self.metrics()?;
        all.iter()
            .find(|(k, _)| k.split('{').next() == Some(name))
            .map(|(_, v)| *v)
            .with_context(|| format!("{name} is not in /metrics: {all:?}"))
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }
}

impl Drop for ConnectorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Prometheus text → sample name (with labels) → value.
fn parse_metrics(text: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("malformed metrics line {line:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("malformed value in metrics line {line:?}"))?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_and_skips_comments() {
        let m = parse_metrics(
            "# HELP a_total A.\n# TYPE a_total counter\na_total{system=\"erp\"} 3\nb 1.5\n",
        )
        .unwrap();
        assert_eq!(m["a_total{system=\"erp\"}"], 3.0);
        assert_eq!(m["b"], 1.5);
        assert_eq!(m.len(), 2);
        assert!(parse_metrics("x y\n").is_err());
    }
}
