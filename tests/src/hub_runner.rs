//! Running the hub in tests: in this process over a real NATS server
//! (`InProcessHub`), as the real `mdhub serve` binary (`HubProcess`, for
//! kill -9), or with no NATS at all to compute reference results.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use mdhub_connectors::publish::{mode_for_server, OutMessage, Publisher};
use mdhub_hub::config::HubConfig;
use mdhub_hub::hub::{Hub, SharedHub};
use mdhub_hub::log::{EventLog, LogError};
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_hub::nats_bus::{ensure_streams, publish_with_retry, run_ingest, BusError};
use mdhub_hub::serve::rules;
use mdhub_schema::{ChangeEvent, Limits};

use crate::fixtures::subject_of;
use crate::ports::free_port;
use crate::wait::{wait_until, wait_until_blocking};

pub fn config(toml: &str, nats_url: &str, data_dir: &Path) -> anyhow::Result<HubConfig> {
    let mut c = HubConfig::parse(toml, "test")?;
    c.nats_url = Some(nats_url.to_string());
    c.data_dir = data_dir.to_path_buf();
    Ok(c)
}

/// The hub's ingest loop in a task of this process.
pub struct InProcessHub {
    pub hub: SharedHub,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
    data_dir: PathBuf,
}

impl InProcessHub {
    /// The golden record source record `system`/`record_id` is linked to
    /// now, if any.
    pub fn golden_of(&self, system: &str, record_id: &str) -> Option<uuid::Uuid> {
        self.hub
            .read()
            .expect("hub lock")
            .state()
            .golden_of(&mdhub_hub::golden::SourceKey {
                system: system.into(),
                record_id: record_id.into(),
            })
            .expect("the derived store reads")
    }

    pub async fn start(config: HubConfig) -> anyhow::Result<Self> {
        let rules = rules(&config, "test")?;
        let limits = Limits {
            max_event_bytes: config.ingest.max_event_bytes,
        };
        let (hub, pending) = Hub::open_with(&config.data_dir, rules, limits, &config.store)?;
        let hub: SharedHub = Arc::new(RwLock::new(hub));
        let nats = config.nats_connect().context("nats_url")?;
        let client = mdhub_hub::nats_bus::connect(&nats, "mdhub-test-hub").await?;
        // Streams exist before start returns, so callers can publish at once.
        ensure_streams(&client, &config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let data_dir = config.data_dir.clone();
        let task = tokio::spawn({
            let hub = hub.clone();
            async move {
                run_ingest(hub, client, &config, pending, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        Ok(InProcessHub {
            hub,
            stop: Some(stop),
            task,
            data_dir,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.hub.read().unwrap().log().last_seq()
    }

    pub fn state_hash(&self) -> anyhow::Result<String> {
        Ok(self.hub.read().unwrap().state().state_hash()?)
    }

    /// Waits until the log holds `entries` entries and their outbound
    /// messages are acknowledged by JetStream.
    pub async fn wait_caught_up(&mut self, entries: u64, deadline: Duration) -> anyhow::Result<()> {
        let what = format!("the hub to log {entries} entries and publish their updates");
        wait_until(&what, deadline, || async {
            if self.task.is_finished() {
                return true;
            }
            let hub = self.hub.read().unwrap();
            let seq = hub.log().last_seq();
            seq >= entries && hub.published_seq().unwrap_or(0) >= seq
        })
        .await?;
        if self.task.is_finished() {
            let ended = (&mut self.task).await;
            bail!("the ingest loop ended early: {ended:?}");
        }
        Ok(())
    }

    /// Stops the loop cleanly and returns the hub.
    pub async fn stop(mut self) -> anyhow::Result<SharedHub> {
        let _ = self.stop.take().expect("running").send(());
        self.task.await??;
        Ok(self.hub)
    }

    /// Kills the loop wherever it is (no clean stop, nothing more acked) and
    /// waits until its log is released, so that another hub can open it:
    /// the loop's stages are tasks of their own, dropped by the runtime
    /// soon after the loop, not at once.
    pub async fn crash(self) -> anyhow::Result<()> {
        self.task.abort();
        let _ = self.task.await;
        drop(self.hub);
        let dir = self.data_dir;
        wait_until(
            "the crashed hub to release its log",
            Duration::from_secs(30),
            || {
                let released = !matches!(EventLog::open(&dir), Err(LogError::InUse { .. }));
                async move { released }
            },
        )
        .await
    }
}

/// The state hash and log length the hub derives from these events when
/// each is delivered once, in order, without NATS.
pub fn reference_run(config_toml: &str, events: &[ChangeEvent]) -> anyhow::Result<(u64, String)> {
    let dir = tempfile::tempdir()?;
    let config = HubConfig::parse(config_toml, "test")?;
    let (mut hub, _) = Hub::open(dir.path(), rules(&config, "test")?, Limits::default())?;
    let mut bus = MemoryBus::default();
    for e in events {
        bus.publish(e);
    }
    bus.pump(&mut hub, 1000)?;
    Ok((hub.log().last_seq(), hub.state().state_hash()?))
}

/// Publishes events as a connector does: in atomic batches (plain
/// publishes on servers without them), waiting for every ack, riding out
/// passing failures (a cluster node restarting) as the hub does.
pub async fn publish_events(
    client: &async_nats::Client,
    events: &[ChangeEvent],
) -> anyhow::Result<()> {
    let mode = mode_for_server(&client.server_info().version);
    let publisher = Publisher::new(client.clone(), mode);
    for chunk in events.chunks(5_000) {
        let msgs = chunk
            .iter()
            .map(|e| OutMessage::new(subject_of(e), serde_json::to_vec(e).expect("serializes")))
            .collect();
        publish_with_retry(&publisher, msgs, "MDHUB_IN").await?;
    }
    Ok(())
}

/// The `mdhub` binary next to the test executables (`cargo build --bins
/// --features mdhub-hub/failpoints` puts it there; scripts/test.sh does
/// that first).
pub fn mdhub_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target dir")?;
    let bin = dir.join("mdhub");
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --bins` first (scripts/test.sh does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `mdhub serve` as a child process.
pub struct HubProcess {
    child: Child,
    pub api_port: u16,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// Extra environment for the next starts (e.g. `MDHUB_FAILPOINTS`).
    pub env: Vec<(String, String)>,
}

impl HubProcess {
    /// Starts `mdhub serve`; `dir` holds the config, the store and the log.
    pub fn start(config_toml: &str, nats_url: &str, dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(config_toml, nats_url, dir, free_port())
    }

    /// `start`, with the HTTP API on `api_port`.
    pub fn start_on(
        config_toml: &str,
        nats_url: &str,
        dir: &Path,
        api_port: u16,
    ) -> anyhow::Result<Self> {
        let config_path = dir.join("hub.toml");
        std::fs::write(&config_path, config_toml)?;
        let data_dir = dir.join("data");
        let log_path = dir.join("hub.log");
        let mut p = HubProcess {
            child: Command::new("true").spawn()?,
            api_port,
            config_path,
            data_dir,
            log_path,
            env: Vec::new(),
        };
        p.child = p.spawn(nats_url)?;
        Ok(p)
    }

    /// `start` with extra environment variables.
    pub fn start_with_env(
        config_toml: &str,
        nats_url: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut p = HubProcess {
            child: Command::new("true").spawn()?,
            api_port: free_port(),
            config_path: dir.join("hub.toml"),
            data_dir: dir.join("data"),
            log_path: dir.join("hub.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        std::fs::write(&p.config_path, config_toml)?;
        p.child = p.spawn(nats_url)?;
        Ok(p)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn spawn(&self, nats_url: &str) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(mdhub_binary()?)
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .args(["--nats", nats_url, "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.api_port)])
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        wait_until_blocking(
            "mdhub serve to answer /healthz",
            Duration::from_secs(60),
            || {
                crate::nats::http_get(self.api_port, "/healthz")
                    .is_ok_and(|(status, _)| status == 200)
            },
        )
        .with_context(|| self.log_tail())?;
        Ok(child)
    }

    pub fn restart(&mut self, nats_url: &str) -> anyhow::Result<()> {
        self.child = self.spawn(nats_url)?;
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `/healthz` as JSON.
    pub fn health(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = crate::nats::http_get(self.api_port, "/healthz")?;
        if status != 200 {
            bail!("/healthz answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    pub fn log_seq(&self) -> u64 {
        self.health()
            .ok()
            .and_then(|h| h["log_seq"].as_u64())
            .unwrap_or(0)
    }

    /// SIGKILL: no clean-up of any kind.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let mut exited = None;
        wait_until_blocking(
            "mdhub serve to exit after SIGTERM",
            Duration::from_secs(30),
            || {
                exited = self.child.try_wait().ok().flatten();
                exited.is_some()
            },
        )?;
        let status = exited.expect("exited");
        if !status.success() {
            bail!("mdhub serve exited with {status}:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// Runs another `mdhub` subcommand on this hub's files.
    pub fn mdhub(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(mdhub_binary()?).args(args).output()?;
        if !out.status.success() {
            bail!(
                "mdhub {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
