//! A set of records with ground truth sent through the real pipeline: a
//! fresh nats-server, the `mdhub serve` binary with the default config, the
//! records published as change events, the clusters read back from the API
//! and scored against the truth. The `public_sets` benchmark and the
//! `matching_pipeline` test run their sets through it.
//!
//! The config is the default one: a `[system.X]` section for every system
//! the events come from (with its phone `region` where the set gives one)
//! and two API tokens (a reader for the links, a steward for the review
//! tasks); no `[match]` section, unless [`Pipeline::extra_config`] adds
//! one. Every event is published on `mdhub.in.<system>.<entity>` in atomic
//! batches, as a connector does.
//!
//! A run has settled when, polled against a deadline:
//! 1. `/healthz` says every event is logged (`log_seq` at least the events
//!    published, and `match.records_held` every record where it is given)
//!    and the updates of every entry are published (`published_seq >=
//!    log_seq`): "caught up". An event in the DLQ ends the run at once with
//!    the reasons, since its record would never come.
//! 2. `/healthz` says the same and no re-resolution is pending
//!    (`match.reresolution_pending == 0`; a hub whose `/healthz` has no
//!    `match` object does not re-resolve, so it has nothing pending).
//! 3. Every record answers `GET /v1/sources/{system}/{id}` with its golden
//!    record, and two full reads in a row give the same links.
//!
//! Timings run from the first publish; "settled" ends with the first of
//! the two agreeing reads (so it includes one full read, a request per
//! record).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream;
use futures::StreamExt;
use mdhub_hub::config::token_hash;
use mdhub_hub::nats_bus::{DLQ_STREAM, REJECT_CODE, REJECT_REASON};
use mdhub_schema::ChangeEvent;
use uuid::Uuid;

use crate::er_generator::{pairwise_f1, ErDataset, PairwiseScore};
use crate::hub_runner::publish_events;
use crate::nats::{http_get, NatsServer};
use crate::ports::free_port;
use crate::public_sets::PublicSet;
use crate::server_process::{peak_rss_kib, signal, ServerProcess};
use crate::streams::read_all;
use crate::wait::wait_for;

/// The reader token: every record's link is read with it.
const READER: &str = "set-pipeline-reader";
/// The steward token: review tasks are a steward's to read.
const STEWARD: &str = "set-pipeline-steward";
/// Link reads in flight at once.
const READ_CONCURRENCY: usize = 8;
/// How many dead letters an error quotes.
const DLQ_QUOTED: usize = 5;

/// Records with ground truth, as change events.
pub struct SetRecords<'a> {
    /// Names the set in progress lines and errors.
    pub name: &'a str,
    /// Upserts in the order they are published.
    pub events: &'a [ChangeEvent],
    /// (system, record_id) → entity.
    pub truth: &'a BTreeMap<(String, String), u64>,
    /// System → phone region, for the systems that have one.
    pub regions: BTreeMap<String, String>,
}

impl<'a> SetRecords<'a> {
    /// A public set: one system, no region (its records hold no phones).
    pub fn public(set: &'a PublicSet) -> SetRecords<'a> {
        SetRecords {
            name: set.spec.name,
            events: &set.events,
            truth: &set.truth,
            regions: BTreeMap::new(),
        }
    }

    /// A generated set: its systems with their regions (`SYSTEM_REGIONS`).
    pub fn generated(name: &'a str, data: &'a ErDataset) -> SetRecords<'a> {
        SetRecords {
            name,
            events: &data.events,
            truth: &data.truth,
            regions: data.system_regions.clone(),
        }
    }

    /// Every record's key, in the order of the truth.
    fn keys(&self) -> Vec<(String, String)> {
        self.truth.keys().cloned().collect()
    }
}

/// How the hub of a run is started.
pub struct Pipeline {
    /// The `mdhub` binary (`hub_runner::mdhub_binary()` for tests).
    pub binary: PathBuf,
    /// Appended to the default config (the bench's `MDHUB_ER_CONFIG`);
    /// empty for the default config.
    pub extra_config: String,
    /// Where the hub's config, store and log go, kept after the run; None:
    /// a temporary directory, removed after.
    pub keep_dir: Option<PathBuf>,
    /// How long each wait (caught up, settled, links read) may take.
    pub deadline: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub struct PipelineOutcome {
    /// (system, record_id) → golden id, as the API gave it.
    pub predicted: BTreeMap<(String, String), Uuid>,
    pub score: PairwiseScore,
    /// Publishing every event.
    pub published: Duration,
    /// First publish until every event was logged and published (/healthz).
    pub caught_up: Duration,
    /// First publish until the links were final (see the module doc).
    pub settled: Duration,
    pub golden_records: u64,
    pub open_reviews: usize,
    /// Messages in the DLQ after the run.
    pub dead_letters: u64,
    /// The last `/healthz` answer.
    pub health: serde_json::Value,
    /// The hub's peak resident set over the run (VmHWM), in KiB; None
    /// where /proc does not say.
    pub hub_peak_rss_kib: Option<u64>,
}

/// The default config for these records' systems, then `extra`.
fn hub_toml(records: &SetRecords<'_>, extra: &str) -> String {
    let systems: BTreeSet<&str> = records.events.iter().map(|e| e.system.as_str()).collect();
    let mut toml = String::new();
    for system in systems {
        toml.push_str(&format!("[system.{system}]\n"));
        if let Some(region) = records.regions.get(system) {
            toml.push_str(&format!("region = \"{region}\"\n"));
        }
    }
    toml.push_str(&format!(
        "[[token]]\nname = \"sets\"\nrole = \"reader\"\nsha256 = \"{}\"\n\
         [[token]]\nname = \"sets-steward\"\nrole = \"steward\"\nsha256 = \"{}\"\n",
        token_hash(READER),
        token_hash(STEWARD)
    ));
    toml + extra
}

/// `mdhub serve` from a given binary as a child process (the harness's
/// `HubProcess` runs the binary next to the test executables only, and the
/// bench may run another).
struct Hub {
    process: ServerProcess,
    api_port: u16,
    log: PathBuf,
}

impl Hub {
    fn start(bin: &Path, nats_url: &str, dir: &Path, config_toml: &str) -> anyhow::Result<Hub> {
        let config = dir.join("hub.toml");
        std::fs::write(&config, config_toml)?;
        let log = dir.join("hub.log");
        let api_port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--config"])
            .arg(&config)
            .args(["--nats", nats_url, "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .env("RUST_LOG", "info");
        let mut process = ServerProcess::spawn(format!("mdhub serve on :{api_port}"), cmd, &log)?;
        process.wait_ready(
            "mdhub serve to answer /healthz",
            Duration::from_secs(60),
            || Ok(http_get(api_port, "/healthz").is_ok_and(|(status, _)| status == 200)),
        )?;
        Ok(Hub {
            process,
            api_port,
            log,
        })
    }

    fn health(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = http_get(self.api_port, "/healthz")?;
        if status != 200 {
            bail!("/healthz answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- last lines of {} ---\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// SIGTERM, and a kill if it has not exited within 30 s.
    fn stop(mut self) -> anyhow::Result<()> {
        self.process
            .stop(Duration::from_secs(30), |pid| signal(pid, "TERM"))
    }
}

/// One GET with a bearer token: (status, JSON body).
async fn get_json(
    http: &reqwest::Client,
    port: u16,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let resp = http
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .json()
        .await
        .with_context(|| format!("GET {path}: body"))?;
    Ok((status, body))
}

/// (system, record_id) → golden id as the API gives it (None: not linked
/// yet).
type Links = BTreeMap<(String, String), Option<Uuid>>;

/// Every record's link.
async fn read_links(
    http: &reqwest::Client,
    port: u16,
    keys: &[(String, String)],
) -> anyhow::Result<Links> {
    futures::stream::iter(keys.iter().cloned())
        .map(|(system, id)| async move {
            let path = format!("/v1/sources/{system}/{id}");
            let (status, body) = get_json(http, port, &path, READER).await?;
            let golden = match status {
                200 => Some(
                    body["golden_id"]
                        .as_str()
                        .and_then(|g| g.parse::<Uuid>().ok())
                        .ok_or_else(|| anyhow!("GET {path}: no golden_id in {body}"))?,
                ),
                404 => None,
                other => bail!("GET {path}: HTTP {other}: {body}"),
            };
            Ok(((system, id), golden))
        })
        .buffer_unordered(READ_CONCURRENCY)
        .collect::<Vec<anyhow::Result<_>>>()
        .await
        .into_iter()
        .collect()
}

async fn dlq_messages(js: &jetstream::Context) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(DLQ_STREAM).await?;
    Ok(stream.info().await?.state.messages)
}

/// The first dead letters' codes and reasons, one a line.
async fn dlq_reasons(js: &jetstream::Context) -> anyhow::Result<String> {
    let msgs = read_all(js, DLQ_STREAM, ">").await?;
    let reasons: Vec<String> = msgs
        .iter()
        .take(DLQ_QUOTED)
        .map(|m| {
            let h = m.headers.as_ref();
            let get = |k| {
                h.and_then(|h| h.get(k))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            format!("{} {}: {}", m.subject, get(REJECT_CODE), get(REJECT_REASON))
        })
        .collect();
    Ok(reasons.join("\n  "))
}

/// Every event logged and the updates of every entry published. The hub
/// logs entries of its own as well (trained models, regroupings), so
/// `log_seq` may count one of those in place of an event not yet logged:
/// where `/healthz` says how many source records the hub holds
/// (`match.records_held`), that must be every record too.
fn caught_up(health: &serde_json::Value, events: u64, records: u64) -> bool {
    let logged = health["log_seq"].as_u64().unwrap_or(0);
    let published = health["published_seq"].as_u64().unwrap_or(0);
    let held = health
        .get("match")
        .and_then(|m| m.get("records_held"))
        .and_then(serde_json::Value::as_u64);
    logged >= events && published >= logged && held.is_none_or(|held| held >= records)
}

/// No re-resolution pending. A `/healthz` without a `match` object comes
/// from a hub that does not re-resolve: nothing is pending there. One with
/// it must say `reresolution_pending: 0`; anything else is "not yet".
fn reresolution_settled(health: &serde_json::Value) -> bool {
    match health.get("match") {
        None => true,
        Some(m) => m.get("reresolution_pending").and_then(|p| p.as_u64()) == Some(0),
    }
}

/// Why a wait on `/healthz` ended before its condition held.
enum Halt {
    /// Messages in the DLQ: their records will never be logged.
    Refused(u64),
    /// The hub could not derive an entry and consumes nothing more.
    Degraded(serde_json::Value),
}

/// Waits until `/healthz` satisfies `done` and returns that answer. A
/// refused event or a degraded hub ends the wait at once with the reason:
/// neither changes by waiting.
async fn await_health(
    hub: &Hub,
    js: &jetstream::Context,
    records: &SetRecords<'_>,
    what: &str,
    deadline: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let name = records.name;
    let done = &done;
    let waited = wait_for(what, deadline, || async move {
        let h = hub.health()?;
        let refused = dlq_messages(js).await?;
        if refused > 0 {
            return Ok(Some(Err(Halt::Refused(refused))));
        }
        if h["status"] == "degraded" {
            return Ok(Some(Err(Halt::Degraded(h))));
        }
        Ok(done(&h).then_some(Ok(h)))
    })
    .await
    .map_err(|e| anyhow!("{name}: {e:#}\n{}", hub.log_tail()))?;
    match waited {
        Ok(h) => Ok(h),
        Err(Halt::Refused(refused)) => bail!(
            "{name}: the hub refused {refused} of the {} events:\n  {}",
            records.events.len(),
            dlq_reasons(js).await?
        ),
        Err(Halt::Degraded(h)) => bail!("{name}: the hub is degraded: {h}\n{}", hub.log_tail()),
    }
}

impl Pipeline {
    /// Sends `records` through a fresh nats-server and `mdhub serve`,
    /// waits until resolution has settled and scores the clusters the API
    /// gives. Progress goes to stderr.
    pub async fn run(&self, records: &SetRecords<'_>) -> anyhow::Result<PipelineOutcome> {
        let name = records.name;
        let n = records.events.len() as u64;
        let nats = NatsServer::start()?;
        let tmp = tempfile::tempdir()?;
        let dir = match &self.keep_dir {
            Some(dir) => {
                if dir.exists() {
                    std::fs::remove_dir_all(dir)?;
                }
                std::fs::create_dir_all(dir)?;
                dir.clone()
            }
            None => tmp.path().to_path_buf(),
        };
        let hub = Hub::start(
            &self.binary,
            nats.client_url(),
            &dir,
            &hub_toml(records, &self.extra_config),
        )?;
        let client = async_nats::connect(nats.client_url()).await?;
        let js = jetstream::new(client.clone());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let keys = records.keys();
        let held = keys.len() as u64;

        let start = Instant::now();
        publish_events(&client, records.events).await?;
        let published = start.elapsed();
        eprintln!(
            "  [{name}] {n} events published in {:.2} s",
            published.as_secs_f64()
        );

        await_health(
            &hub,
            &js,
            records,
            &format!("the hub to log and publish all {n} events"),
            self.deadline,
            |h| caught_up(h, n, held),
        )
        .await?;
        let caught_up_at = start.elapsed();
        eprintln!(
            "  [{name}] caught up {:.2} s after the first publish",
            caught_up_at.as_secs_f64()
        );
        // Re-resolution may log and publish more after the events: all
        // three hold at once.
        await_health(
            &hub,
            &js,
            records,
            &format!("the hub to log and publish all {n} events with no re-resolution pending"),
            self.deadline,
            |h| caught_up(h, n, held) && reresolution_settled(h),
        )
        .await?;

        // Every record linked, and two full reads in a row agree: the
        // first of the two and when it ended.
        let previous: Mutex<Option<(Links, Duration)>> = Mutex::new(None);
        let (links, settled) = wait_for(
            &format!(
                "every one of the {n} records linked and the links unchanged over two full reads"
            ),
            self.deadline,
            || {
                let (hub, http, keys, previous) = (&hub, &http, &keys, &previous);
                async move {
                    let links = read_links(http, hub.api_port, keys).await?;
                    let read_at = start.elapsed();
                    let mut previous = previous.lock().expect("not poisoned");
                    let unlinked = links.values().filter(|g| g.is_none()).count();
                    if unlinked > 0 {
                        *previous = None;
                        bail!("{unlinked} of {n} records unlinked at the last read");
                    }
                    match previous.take() {
                        Some((before, at)) if before == links => Ok(Some((links, at))),
                        _ => {
                            *previous = Some((links, read_at));
                            Ok(None)
                        }
                    }
                }
            },
        )
        .await
        .map_err(|e| anyhow!("{name}: {e:#}\n{}", hub.log_tail()))?;
        eprintln!(
            "  [{name}] settled {:.2} s after the first publish",
            settled.as_secs_f64()
        );

        let predicted: BTreeMap<(String, String), Uuid> = links
            .into_iter()
            .map(|(key, g)| (key, g.expect("every record linked")))
            .collect();
        let health = hub.health()?;
        let (status, reviews) = get_json(&http, hub.api_port, "/v1/reviews", STEWARD).await?;
        if status != 200 {
            bail!("{name}: GET /v1/reviews: HTTP {status}: {reviews}");
        }
        let dead_letters = dlq_messages(&js).await?;
        let hub_peak_rss_kib = peak_rss_kib(hub.process.pid());
        hub.stop()?;
        Ok(PipelineOutcome {
            score: pairwise_f1(records.truth, &predicted),
            predicted,
            published,
            caught_up: caught_up_at,
            settled,
            golden_records: health["golden_records"].as_u64().unwrap_or(0),
            open_reviews: reviews["tasks"].as_array().map_or(0, Vec::len),
            dead_letters,
            health,
            hub_peak_rss_kib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn caught_up_counts_the_records_held_where_healthz_gives_them() {
        let h = json!({"log_seq": 10, "published_seq": 10});
        assert!(caught_up(&h, 10, 10));
        assert!(!caught_up(&h, 11, 11));
        assert!(!caught_up(
            &json!({"log_seq": 10, "published_seq": 9}),
            10,
            10
        ));
        // Ten entries, one of them a trained model: an event is missing.
        let h = json!({"log_seq": 10, "published_seq": 10, "match": {"records_held": 9}});
        assert!(!caught_up(&h, 10, 10));
        let h = json!({"log_seq": 11, "published_seq": 11, "match": {"records_held": 10}});
        assert!(caught_up(&h, 10, 10));
    }

    #[test]
    fn reresolution_is_settled_without_a_match_object_or_at_zero_pending() {
        assert!(reresolution_settled(&json!({"log_seq": 3})));
        assert!(reresolution_settled(
            &json!({"match": {"reresolution_pending": 0}})
        ));
        assert!(!reresolution_settled(
            &json!({"match": {"reresolution_pending": 2}})
        ));
        assert!(!reresolution_settled(&json!({"match": {}})));
        assert!(!reresolution_settled(&json!({"match": null})));
    }
}
