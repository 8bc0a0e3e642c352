//! `mdhub serve`: the hub as a service: NATS ingest loop plus HTTP API.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use mdhub_schema::Limits;
use tower::ServiceExt;
use tracing::info;

use crate::api::{router, ApiError, ApiState};
use crate::audit::signer::CheckpointSigner;
use crate::audit::signing::AuditKey;
use crate::config::HubConfig;
use crate::hub::{Hub, Progress, SharedHub};
use crate::nats_bus::run_ingest;
use crate::state::Rules;

/// Loads models and rules from a validated config.
pub fn rules(config: &HubConfig, config_path: &str) -> anyhow::Result<Arc<Rules>> {
    let models = config.load_models(config_path)?;
    Ok(Arc::new(config.rules(models)))
}

pub async fn serve(config: HubConfig, config_path: &str) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM that arrives while the hub starts
    // (its API may already answer) must stop it cleanly, not kill it.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let rules = rules(&config, config_path)?;
    let nats = config.nats_connect().context(
        "serve needs a NATS server: pass --nats URL or set nats_url (or nats.urls) in the config",
    )?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let limits = Limits {
        max_event_bytes: config.ingest.max_event_bytes,
    };
    let signer = match &config.audit.signing_key {
        Some(path) => {
            let key = AuditKey::load(path)?;
            let signer =
                CheckpointSigner::new(key, &config.data_dir, config.audit.checkpoint_every)?;
            info!(public_key = %signer.public_hex(), every = config.audit.checkpoint_every, "signing checkpoints of the log's head");
            Some(Arc::new(signer))
        }
        None => None,
    };
    // The API listens from the start: while the hub derives its log it
    // answers every request 503 with how far derivation has got.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    info!(%addr, "HTTP API listening");
    let progress = Arc::new(Progress::default());
    let api: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    let front = Router::new()
        .fallback(starting_or_api)
        .with_state((Arc::clone(&api), Arc::clone(&progress)));
    let api_task = tokio::spawn(async move { axum::serve(listener, front).await });

    let data_dir = config.data_dir.clone();
    let store = config.store.clone();
    let opening = Arc::clone(&progress);
    let (hub, pending) = tokio::task::spawn_blocking(move || {
        Hub::open_reporting(&data_dir, rules, limits, &store, &opening)
    })
    .await?
    .with_context(|| format!("opening the hub store in {}", config.data_dir.display()))?;
    check_log_before(&hub);
    let hub: SharedHub = Arc::new(RwLock::new(hub));

    let client = crate::nats_bus::connect(&nats, "mdhub-hub").await?;
    // The streams exist before the API answers: a client that waits for
    // /healthz may publish at once.
    crate::nats_bus::ensure_streams(&client, &config).await?;
    let _ = api.set(router(ApiState {
        hub: hub.clone(),
        tokens: Arc::new(config.tokens.clone()),
        metrics: Some(metrics),
        actions: crate::api::ActionSink::Nats(Box::new(async_nats::jetstream::new(client.clone()))),
        audit: signer.clone(),
    }));
    let signing = signer.clone().map(|signer| {
        tokio::spawn(sign_checkpoints(
            hub.clone(),
            signer,
            async_nats::jetstream::new(client.clone()),
        ))
    });

    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = term.recv() => {},
        }
        info!("shutting down");
    };
    let result = run_ingest(hub.clone(), client.clone(), &config, pending, shutdown).await;
    api_task.abort();
    if let (Some(signing), Some(signer)) = (signing, signer) {
        signing.abort();
        // The head as the hub stops, and whatever the loop had not sent.
        let js = async_nats::jetstream::new(client);
        sign_when_due(&hub, &signer, true).await;
        publish_signed(&signer, &js).await;
    }
    result.map_err(Into::into)
}

/// Signs a checkpoint every `[audit] checkpoint_every` entries and
/// publishes each to `MDHUB_AUDIT`. A checkpoint that could not be
/// published is sent again on the next round.
async fn sign_checkpoints(
    hub: SharedHub,
    signer: Arc<CheckpointSigner>,
    js: async_nats::jetstream::Context,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        sign_when_due(&hub, &signer, false).await;
        publish_signed(&signer, &js).await;
    }
}

/// Signs the log's head if `checkpoint_every` entries came since the last
/// checkpoint, or if `any_new` and any did.
async fn sign_when_due(hub: &SharedHub, signer: &Arc<CheckpointSigner>, any_new: bool) {
    let (hub, signer) = (hub.clone(), Arc::clone(signer));
    let signed = tokio::task::spawn_blocking(move || {
        let hub = hub.read().unwrap_or_else(|p| p.into_inner());
        let last = hub.log().last_seq();
        let due = signer.due(last) || (any_new && signer.behind(last));
        due.then(|| signer.sign_now(&hub)).transpose()
    })
    .await;
    match signed {
        Ok(Ok(Some(c))) => {
            info!(seq = c.seq, head = %c.head, "signed a checkpoint of the log's head")
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not sign a checkpoint of the log's head"),
        Err(e) => tracing::error!(error = %e, "the checkpoint signer failed"),
    }
}

async fn publish_signed(signer: &CheckpointSigner, js: &async_nats::jetstream::Context) {
    let mut pending = signer.take_unpublished().into_iter();
    while let Some(c) = pending.next() {
        if let Err(e) = crate::nats_bus::publish_checkpoint(js, &c).await {
            tracing::warn!(seq = c.seq, error = %e, "could not publish a signed checkpoint; retrying later");
            signer.requeue(std::iter::once(c).chain(pending).collect());
            return;
        }
    }
}

/// Every request while the hub starts: the API once it is up, else 503
/// `unavailable` saying how far the derivation of the log has got.
async fn starting_or_api(
    State((api, progress)): State<(Arc<OnceLock<Router>>, Arc<Progress>)>,
    request: Request,
) -> Response {
    match api.get() {
        Some(api) => match api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => ApiError::Unavailable(format!("the hub is starting: {}", progress.describe()))
            .into_response(),
    }
}

/// A start that resumed from a checkpoint checked the hash chain after it
/// only: the entries up to it are checked here, on a thread of their own,
/// while the hub runs. A damaged entry is logged as an error and sets
/// `mdhub_log_chain_intact` to 0 (`mdhub audit verify` names it too); the
/// hub goes on, since its state was derived from those entries when they
/// were intact.
fn check_log_before(hub: &Hub) {
    let until = hub.started_from_seq();
    if until == 0 {
        metrics::gauge!("mdhub_log_chain_intact").set(1.0);
        return;
    }
    let reader = hub.log().reader();
    let spawned = std::thread::Builder::new()
        .name("log-check".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            match reader.verify_until(until) {
                Ok(entries) => {
                    metrics::gauge!("mdhub_log_chain_intact").set(1.0);
                    info!(
                        entries,
                        seconds = started.elapsed().as_secs_f64(),
                        "background check: the log's hash chain is intact up to the checkpoint the hub started from"
                    );
                }
                Err(e) => {
                    metrics::gauge!("mdhub_log_chain_intact").set(0.0);
                    tracing::error!(error = %e, "background check: the log is damaged before the checkpoint the hub started from; run `mdhub audit verify`");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the background check of the log could not start");
    }
}
