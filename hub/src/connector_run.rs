//! `mdhub connector run --config FILE`: one connector as a process, with
//! its `/metrics` endpoint, stopped cleanly by SIGTERM or Ctrl-C.
//!
//! The broker being away at start is waited out with backoff like any
//! later outage; a configuration that cannot work stops at once with
//! every problem listed.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use mdhub_connectors::config::ConnectorFile;
use mdhub_connectors::publish::Publisher;
use mdhub_connectors::runner::metrics::{self, ConnectorMetrics};
use mdhub_connectors::runner::{Backoff, RunContext};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub async fn run(config: &Path, nats_override: Option<String>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let checked = ConnectorFile::from_file(config, nats_override.as_deref())?;
    let file = &checked.file;
    let system = file.system.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            info!("stopping");
            shutdown.cancel();
        }
    });
    let metrics = Arc::new(ConnectorMetrics::default());
    if let Some(addr) = file.metrics_listen {
        let bound = metrics::serve(addr, metrics.clone(), system.clone())
            .await
            .with_context(|| format!("binding metrics_listen {addr}"))?;
        info!(addr = %bound, "metrics on /metrics");
    }
    let client_name = format!("mdhub-connector-{system}");
    let mut backoff = Backoff::default();
    let client = loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = file.nats.connect(&client_name) => r,
        };
        match attempt {
            Ok(c) => break c,
            Err(e) => {
                ConnectorMetrics::add(&metrics.errors, 1);
                warn!("cannot reach NATS: {e}; retrying with backoff");
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    };
    let ctx = RunContext {
        system: system.clone(),
        entity: file.entity.clone(),
        mapping: checked.mapping.clone(),
        publisher: Publisher::for_server(client),
        state_dir: file.state_dir.clone(),
        metrics,
        shutdown,
        write_back: file.write_back,
        max_write_batch: file.max_write_batch,
    };
    info!(%system, "connector starting");
    checked.run(ctx).await?;
    info!(%system, "connector stopped");
    Ok(())
}
