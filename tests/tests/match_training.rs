//! Training the match model through the real pipeline: `mdhub serve` over
//! nats-server trains by itself when `[match] train_at` says so, and on
//! demand (`mdhub match train`, the admin API); each model is a log entry
//! followed by the re-resolution it caused (regroupings, also log
//! entries), and a replay of the log gives the live state hash.

use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use mdhub_hub::config::token_hash;
use mdhub_hub::entry::LogPayload;
use mdhub_hub::log::EventLog;
use mdhub_hub::resolve::trained::Trigger;
use mdhub_tests::fixtures::{hub_config_toml, workload};
use mdhub_tests::hub_runner::{mdhub_binary, publish_events, HubProcess};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::wait::wait_until;

const ADMIN_TOKEN: &str = "train-me-admin-token";
const READER_TOKEN: &str = "only-reads-token";

fn train(port: u16, token: &str) -> std::process::Output {
    Command::new(mdhub_binary().unwrap())
        .args([
            "match",
            "train",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("MDHUB_TOKEN", token)
        .output()
        .expect("mdhub runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trained_models_are_log_entries_and_replay_gives_the_live_state() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let toml = format!(
        "{}[[token]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [[token]]\nname = \"viewer\"\nrole = \"reader\"\nsha256 = \"{}\"\n",
        hub_config_toml().replace("train_at = 0", "train_at = 500"),
        token_hash(ADMIN_TOKEN),
        token_hash(READER_TOKEN)
    );
    let mut hub = HubProcess::start(&toml, nats.client_url(), dir.path())?;
    let client = async_nats::connect(nats.client_url()).await?;
    let w = workload(700, 2_100, 11);
    let total = w.events.len();
    publish_events(&client, &w.events).await?;
    // Every event read and committed: the consumer's ack floor.
    let js = jetstream::new(client.clone());
    wait_until(
        "every event to be committed",
        Duration::from_secs(300),
        || {
            let js = js.clone();
            async move {
                let Ok(stream) = js.get_stream("MDHUB_IN").await else {
                    return false;
                };
                let Ok(mut consumer) = stream
                    .get_consumer::<jetstream::consumer::pull::Config>("mdhub-hub")
                    .await
                else {
                    return false;
                };
                consumer.info().await.is_ok_and(|i| {
                    i.ack_floor.stream_sequence >= total as u64 && i.num_ack_pending == 0
                })
            }
        },
    )
    .await
    .map_err(|e| e.context(hub.log_tail()))?;

    // A reader may not train; an admin may, and gets the model's log entry.
    let refused = train(hub.api_port, READER_TOKEN);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{refused:?}"
    );
    let trained = train(hub.api_port, ADMIN_TOKEN);
    assert!(trained.status.success(), "{trained:?}\n{}", hub.log_tail());
    let answer: serde_json::Value = serde_json::from_slice(&trained.stdout)?;
    let requested_seq = answer["log_seq"].as_u64().expect("log_seq");
    assert!(answer["records"].as_u64().unwrap() >= 1_400, "{answer}");
    assert!(
        !answer["comparisons"].as_array().unwrap().is_empty(),
        "{answer}"
    );

    // Re-resolution with the requested model runs without new input (the
    // hub's idle tick); /healthz says when it is done.
    wait_until(
        "re-resolution with the requested model",
        Duration::from_secs(120),
        || async {
            hub.health().is_ok_and(|h| {
                h["match"]["model_seq"].as_u64() == Some(requested_seq)
                    && h["match"]["reresolution_pending"].as_u64() == Some(0)
                    && h["log_seq"].as_u64() > Some(requested_seq)
            })
        },
    )
    .await
    .map_err(|e| e.context(hub.log_tail()))?;
    let live: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/v1/state-hash", hub.api_port))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    hub.stop()?;

    // The log: every event once, the automatic trainings (at 500 records,
    // then at each doubling) and the requested one where the API said.
    let log = EventLog::open(&hub.data_dir)?;
    // Automatic trainings: the records each was trained on.
    let (mut changes, mut automatic, mut requested) = (0, Vec::new(), Vec::new());
    // Model entries, and the model each regrouping entry ends (remaining 0).
    let (mut models, mut regrouped) = (Vec::new(), Vec::new());
    for entry in log.iter_from(1) {
        let entry = entry?;
        match entry.payload {
            LogPayload::Change(_) => changes += 1,
            LogPayload::MatchModel(m) => {
                models.push(entry.seq);
                match m.trigger {
                    Trigger::Automatic => automatic.push(m.records),
                    Trigger::Requested { by } => requested.push((entry.seq, by)),
                }
            }
            LogPayload::Regroup(r) => {
                assert!(
                    models.last() == Some(&r.model_seq),
                    "a regrouping follows its model: {r:?} after models {models:?}"
                );
                if r.remaining == 0 {
                    regrouped.push(r.model_seq);
                }
            }
            LogPayload::Steward(a) => panic!("no steward action was sent: {a:?}"),
        }
    }
    assert_eq!(changes, total, "every event logged once");
    // At 500 records, then at each doubling: where the batches end decides
    // the counts (a first training at 760 records waits for 1,520 next).
    assert!(!automatic.is_empty(), "trained by itself at 500 records");
    assert!(automatic[0] >= 500, "{automatic:?}");
    for pair in automatic.windows(2) {
        assert!(
            pair[1] >= 2 * pair[0],
            "each training at twice the records: {automatic:?}"
        );
    }
    assert_eq!(requested, vec![(requested_seq, "ops".to_string())]);
    assert_eq!(regrouped, models, "every model's re-resolution finished");
    assert_eq!(live["log_seq"].as_u64(), Some(log.last_seq()));
    drop(log);

    let replay = hub.mdhub(&[
        "audit",
        "replay",
        "--config",
        hub.config_path.to_str().unwrap(),
        "--data-dir",
        hub.data_dir.to_str().unwrap(),
    ])?;
    // The report shows the model in force: the requested one.
    let report = hub.mdhub(&[
        "match",
        "report",
        "--config",
        hub.config_path.to_str().unwrap(),
        "--data-dir",
        hub.data_dir.to_str().unwrap(),
    ])?;
    assert!(
        report.contains(&format!(
            "log entry {requested_seq} (model {})",
            answer["model_id"].as_str().unwrap()
        )),
        "{report}"
    );
    let live_hash = live["state_hash"].as_str().unwrap();
    assert!(
        replay.contains(&format!("state hash {live_hash}")),
        "replay {replay} differs from the live hub's {live_hash}"
    );
    Ok(())
}
