//! Tamper evidence: logs altered on disk the way someone with access to a
//! hub's data dir could alter them (a byte changed, an entry removed, two
//! swapped, the tail cut off, a tail rewritten with fresh hashes, a forged
//! checkpoint), each caught by `audit verify` naming the right entry. The
//! log file is edited with redb directly, not through the hub.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use mdhub_hub::audit::checkpoint_file;
use mdhub_hub::audit::history::history;
use mdhub_hub::audit::signer::CheckpointSigner;
use mdhub_hub::audit::signing::{public_key, AuditKey, SignedCheckpoint};
use mdhub_hub::audit::verify::{check_log, Finding};
use mdhub_hub::config::HubConfig;
use mdhub_hub::hub::Hub;
use mdhub_hub::log::{chain_hash, EventLog, LOG_FILE};
use mdhub_hub::memory_bus::MemoryBus;
use mdhub_schema::Limits;
use mdhub_tests::er_generator::{generate_iter, systems_toml, Profile};
use mdhub_tests::hub_runner::mdhub_binary;
use redb::{ReadableTable, TableDefinition};

/// The log's table of entries: seq → prev hash ‖ hash ‖ payload.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");

const ENTRIES_IN_LOG: u64 = 120;

/// A hub's data dir holding a log of `ENTRIES_IN_LOG` generator events and
/// a checkpoint file with checkpoints signed at entries 40 and 120, and the
/// signing key's public key (hex).
fn signed_log() -> (tempfile::TempDir, String) {
    let (dir, public, _) = signed_log_with_hash();
    (dir, public)
}

/// `signed_log`, with the state hash of the hub after entry 40.
fn signed_log_with_hash() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig::parse(&systems_toml(), "audit").unwrap();
    let rules = Arc::new(config.rules(config.load_models("audit").unwrap()));
    let (mut hub, _) = Hub::open(dir.path(), rules, Limits::default()).unwrap();
    let key = AuditKey::generate().unwrap();
    let public = key.public_hex();
    let signer = CheckpointSigner::new(key, dir.path(), 1_000).unwrap();
    let mut bus = MemoryBus::default();
    // Events go in one at a time until the log holds the entries wanted
    // (the generator also sends events the hub refuses, and redeliveries).
    let profile = Profile::default_profile(200);
    let mut events = generate_iter(&profile).map(|(e, _)| e);
    let mut hash_at_40 = String::new();
    for signed_at in [40, ENTRIES_IN_LOG] {
        while hub.log().last_seq() < signed_at {
            bus.publish(&events.next().expect("enough events"));
            assert!(!bus.pump(&mut hub, 1).unwrap().degraded);
        }
        signer.sign_now(&hub).unwrap();
        if signed_at == 40 {
            hash_at_40 = hub.state().state_hash().unwrap();
        }
    }
    assert_eq!(
        hub.log().last_seq(),
        ENTRIES_IN_LOG,
        "every event is an entry"
    );
    (dir, public, hash_at_40)
}

fn checkpoints(dir: &Path) -> Vec<SignedCheckpoint> {
    checkpoint_file::read(&checkpoint_file::path_in(dir)).unwrap()
}

/// What `check_log` finds in the log in `dir` against its own checkpoint
/// file, with the public key `key` (hex).
fn findings(dir: &Path, key: &str) -> Vec<Finding> {
    let public = public_key(key).unwrap();
    let log = EventLog::open(dir).unwrap();
    check_log(&log, &checkpoints(dir), Some(&public))
        .unwrap()
        .findings
}

/// Edits the log's entries table as an attacker with the file would.
fn edit_entries(dir: &Path, edit: impl FnOnce(&mut redb::Table<u64, &[u8]>)) {
    let db = redb::Database::open(dir.join(LOG_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(ENTRIES).unwrap();
        edit(&mut table);
    }
    txn.commit().unwrap();
}

fn stored(table: &redb::Table<u64, &[u8]>, seq: u64) -> Vec<u8> {
    table.get(seq).unwrap().unwrap().value().to_vec()
}

fn first(findings: &[Finding]) -> &Finding {
    findings.first().expect("the tampering is found")
}

#[test]
fn an_intact_log_passes_with_its_checkpoints() {
    let (dir, key) = signed_log();
    let signed = checkpoints(dir.path());
    assert_eq!(
        signed.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![40, ENTRIES_IN_LOG]
    );
    assert_eq!(findings(dir.path(), &key), vec![]);
}

#[test]
fn one_changed_byte_is_named_by_its_entry() {
    let (dir, key) = signed_log();
    edit_entries(dir.path(), |t| {
        let mut bytes = stored(t, 57);
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        t.insert(57, &bytes[..]).unwrap();
    });
    let f = findings(dir.path(), &key);
    assert_eq!(first(&f).seq, 57, "{f:?}");
    assert!(first(&f).reason.contains("hash does not match"), "{f:?}");
}

#[test]
fn a_removed_entry_is_named() {
    let (dir, key) = signed_log();
    edit_entries(dir.path(), |t| {
        t.remove(57).unwrap();
    });
    let f = findings(dir.path(), &key);
    assert_eq!(first(&f).seq, 57, "{f:?}");
    assert!(first(&f).reason.contains("missing"), "{f:?}");
}

#[test]
fn two_swapped_entries_are_named_by_the_first() {
    let (dir, key) = signed_log();
    edit_entries(dir.path(), |t| {
        let (a, b) = (stored(t, 57), stored(t, 58));
        t.insert(57, &b[..]).unwrap();
        t.insert(58, &a[..]).unwrap();
    });
    let f = findings(dir.path(), &key);
    assert_eq!(first(&f).seq, 57, "{f:?}");
}

#[test]
fn a_log_cut_short_behind_its_last_checkpoint_is_caught() {
    let (dir, key) = signed_log();
    edit_entries(dir.path(), |t| {
        for seq in 91..=ENTRIES_IN_LOG {
            t.remove(seq).unwrap();
        }
    });
    // The chain alone is intact: a shorter valid log.
    assert_eq!(EventLog::open(dir.path()).unwrap().verify().unwrap(), 90);
    let f = findings(dir.path(), &key);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].seq, 91);
    assert!(
        f[0].reason.contains("ends at entry 90") && f[0].reason.contains("cut short"),
        "{f:?}"
    );
}

#[test]
fn a_tail_rewritten_with_fresh_hashes_is_caught_by_the_checkpoint_after_it() {
    let (dir, key) = signed_log();
    // Entry 57 gets other content, and it and every entry after it get
    // hashes that chain again: only a signed checkpoint can tell.
    edit_entries(dir.path(), |t| {
        let before = stored(t, 56);
        let mut prev: [u8; 32] = before[32..64].try_into().unwrap();
        for seq in 57..=ENTRIES_IN_LOG {
            let old = stored(t, seq);
            let mut body = old[64..].to_vec();
            if seq == 57 {
                let text = String::from_utf8(body).unwrap();
                let changed = text.replacen("\"system\":\"", "\"system\":\"x", 1);
                assert_ne!(changed, text, "entry 57 names its system");
                body = changed.into_bytes();
            }
            let hash = chain_hash(&prev, seq, &body);
            let mut value = prev.to_vec();
            value.extend_from_slice(&hash);
            value.extend_from_slice(&body);
            t.insert(seq, &value[..]).unwrap();
            prev = hash;
        }
    });
    assert_eq!(
        EventLog::open(dir.path()).unwrap().verify().unwrap(),
        ENTRIES_IN_LOG,
        "the rewritten chain is consistent"
    );
    let f = findings(dir.path(), &key);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].seq, ENTRIES_IN_LOG);
    assert!(f[0].reason.contains("rewritten"), "{f:?}");
}

#[test]
fn a_checkpoint_with_a_bad_signature_or_another_key_is_named() {
    let (dir, key) = signed_log();
    let path = checkpoint_file::path_in(dir.path());
    let mut signed = checkpoints(dir.path());
    // A forger moves the first checkpoint to entry 41.
    signed[0].seq = 41;
    std::fs::remove_file(&path).unwrap();
    for c in &signed {
        checkpoint_file::append(&path, c).unwrap();
    }
    let f = findings(dir.path(), &key);
    assert_eq!(first(&f).seq, 41, "{f:?}");
    assert!(
        first(&f).reason.contains("signature does not verify"),
        "{f:?}"
    );

    // A checkpoint signed with a key of the forger's own.
    let forger = AuditKey::generate().unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    let forged = forger.sign(
        30,
        &log.get(30).unwrap().unwrap().hash,
        time::OffsetDateTime::now_utc(),
    );
    drop(log);
    checkpoint_file::append(&path, &forged).unwrap();
    let f = findings(dir.path(), &key);
    assert_eq!(first(&f).seq, 30, "{f:?}");
    assert!(first(&f).reason.contains("not with the key given"), "{f:?}");
}

/// The command line: exit status and the first bad entry in its message,
/// with the checkpoint copy and public key an auditor holds.
#[test]
fn the_command_exits_non_zero_naming_the_first_bad_entry() {
    let (dir, key) = signed_log();
    let kept = tempfile::tempdir().unwrap();
    let copy = kept.path().join("kept-checkpoints.jsonl");
    std::fs::copy(checkpoint_file::path_in(dir.path()), &copy).unwrap();
    let verify = |data: &Path| {
        Command::new(mdhub_binary().unwrap())
            .args(["audit", "verify", "--data-dir"])
            .arg(data)
            .arg("--checkpoints")
            .arg(&copy)
            .args(["--public-key", &key, "--no-replay"])
            .output()
            .unwrap()
    };
    let ok = verify(dir.path());
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("2 signed checkpoints verified"), "{stdout}");

    // The hub's own checkpoint file goes with the cut: the auditor's copy
    // still catches it.
    edit_entries(dir.path(), |t| {
        for seq in 101..=ENTRIES_IN_LOG {
            t.remove(seq).unwrap();
        }
    });
    std::fs::remove_file(checkpoint_file::path_in(dir.path())).unwrap();
    let bad = verify(dir.path());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("the first bad entry is 101"), "{stderr}");
}

const AUDITOR: &str = "audit-test-auditor";
const ADMIN: &str = "audit-test-admin";

/// `mdhub serve` with a signing key: it signs its head every
/// `checkpoint_every` entries and on demand, keeps the checkpoints in its
/// data dir, lists them to an auditor and publishes them to MDHUB_AUDIT;
/// the copy from JetStream then verifies the stopped hub's log, replay
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_hub_signs_keeps_and_publishes_checkpoints_of_its_head() -> anyhow::Result<()> {
    use mdhub_hub::config::token_hash;
    use mdhub_tests::fixtures::{hub_config_toml, workload};
    use mdhub_tests::hub_runner::{publish_events, HubProcess};
    use mdhub_tests::nats::NatsServer;
    use mdhub_tests::wait::{wait_until, wait_until_blocking};
    use std::time::Duration;

    const EVENTS: u64 = 1_000;
    const EVERY: u64 = 300;
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("audit.key");
    let keygen = Command::new(mdhub_binary()?)
        .args(["audit", "keygen", "--out"])
        .arg(&key_file)
        .output()?;
    assert!(keygen.status.success(), "{keygen:?}");
    let public = std::fs::read_to_string(dir.path().join("audit.key.pub"))?;
    let public = public.trim().to_string();
    assert!(String::from_utf8_lossy(&keygen.stdout).contains(&public));

    let config = format!(
        "{}[audit]\nsigning_key = \"{}\"\ncheckpoint_every = {EVERY}\n\
         [[token]]\nname = \"audit\"\nrole = \"auditor\"\nsha256 = \"{}\"\n\
         [[token]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        hub_config_toml(),
        key_file.display(),
        token_hash(AUDITOR),
        token_hash(ADMIN)
    );
    let mut hub = HubProcess::start(&config, nats.client_url(), dir.path())?;
    let client = async_nats::connect(nats.client_url()).await?;
    let w = workload(300, EVENTS as usize, 11);
    publish_events(&client, &w.events).await?;
    wait_until_blocking(
        "the hub to log every event",
        Duration::from_secs(120),
        || hub.health().is_ok_and(|h| h["log_seq"] == EVENTS),
    )
    .map_err(|e| e.context(hub.log_tail()))?;
    // The newest checkpoint is less than `EVERY` entries behind the head.
    let file = checkpoint_file::path_in(&hub.data_dir);
    wait_until_blocking(
        "a checkpoint near the head",
        Duration::from_secs(60),
        || {
            checkpoint_file::read(&file)
                .is_ok_and(|c| c.last().is_some_and(|c| c.seq > EVENTS - EVERY))
        },
    )
    .map_err(|e| e.context(hub.log_tail()))?;

    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{}", hub.api_port);
    let signed: SignedCheckpoint = http
        .post(format!("{api}/v1/admin/audit/checkpoints"))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(signed.seq, EVENTS, "signed on demand: the head");
    assert_eq!(signed.public_key, public);
    let refused = http
        .post(format!("{api}/v1/admin/audit/checkpoints"))
        .bearer_auth(AUDITOR)
        .send()
        .await?;
    assert_eq!(refused.status(), 403, "an auditor may not sign");
    let listed: Vec<SignedCheckpoint> = http
        .get(format!("{api}/v1/audit/checkpoints"))
        .bearer_auth(AUDITOR)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(listed, checkpoint_file::read(&file)?);
    assert_eq!(listed.last(), Some(&signed));
    assert!(listed.windows(2).all(|w| w[0].seq <= w[1].seq));

    // The copy off the hub's disk: MDHUB_AUDIT holds each checkpoint.
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream("MDHUB_AUDIT").await?;
    wait_until(
        "MDHUB_AUDIT to hold every checkpoint",
        Duration::from_secs(30),
        || {
            let stream = stream.clone();
            let n = listed.len() as u64;
            async move {
                let mut stream = stream;
                stream.info().await.is_ok_and(|i| i.state.messages == n)
            }
        },
    )
    .await?;
    let mut published = Vec::new();
    for seq in 1..=stream.info().await?.state.messages {
        let message = stream.get_raw_message(seq).await?;
        published.push(serde_json::from_slice::<SignedCheckpoint>(
            &message.payload,
        )?);
    }
    assert_eq!(published, listed);
    let kept = dir.path().join("kept.jsonl");
    for c in &published {
        checkpoint_file::append(&kept, c)?;
    }

    hub.stop()?;
    let out = Command::new(mdhub_binary()?)
        .args(["audit", "verify", "--data-dir"])
        .arg(&hub.data_dir)
        .arg("--config")
        .arg(&hub.config_path)
        .arg("--checkpoints")
        .arg(&kept)
        .args(["--public-key", &public])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("ok: {EVENTS} entries")),
        "{stdout}"
    );
    assert!(
        stdout.contains("a replay of the 1000 entries gives the hub's state hash"),
        "{stdout}"
    );
    Ok(())
}

/// `mdhub audit history` on a stopped hub prints the page the API answers.
#[test]
fn the_history_command_prints_what_the_api_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("hub.toml");
    std::fs::write(&config_path, systems_toml()).unwrap();
    let config = HubConfig::from_file(&config_path).unwrap();
    let rules = Arc::new(config.rules(config.load_models("audit").unwrap()));
    let data = dir.path().join("data");
    let (mut hub, _) = Hub::open(&data, rules, Limits::default()).unwrap();
    let mut bus = MemoryBus::default();
    let profile = Profile::default_profile(20);
    let events: Vec<_> = generate_iter(&profile).map(|(e, _)| e).take(60).collect();
    for e in &events {
        bus.publish(e);
    }
    assert!(!bus.pump(&mut hub, 20).unwrap().degraded);
    // The golden record with the longest history.
    let mut best = (0, uuid::Uuid::nil());
    for e in &events {
        let key = mdhub_hub::golden::SourceKey {
            system: e.system.clone(),
            record_id: e.record_id.clone(),
        };
        if let Some(id) = hub.state().golden_of(&key).unwrap() {
            let steps = history(&hub, id, 0, 1_000).unwrap().steps.len();
            best = best.max((steps, id));
        }
    }
    let (steps, id) = best;
    assert!(steps >= 2, "a record with a history");
    let expected = serde_json::to_value(history(&hub, id, 0, 100).unwrap()).unwrap();
    hub.checkpoint().unwrap();
    drop(hub);

    let out = Command::new(mdhub_binary().unwrap())
        .args(["audit", "history", &id.to_string(), "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, expected);
}

/// `mdhub audit replay --until 40`: a data dir holding the log up to the
/// first signed checkpoint and the state as of then, the state hash the
/// hub had after entry 40.
#[test]
fn a_replay_until_an_entry_gives_the_state_as_of_then() {
    let (dir, _, hash_at_40) = signed_log_with_hash();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, systems_toml()).unwrap();
    let out = dir.path().join("as-of-40");
    let replay = Command::new(mdhub_binary().unwrap())
        .args(["audit", "replay", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["--until", "40", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(stdout.contains("replayed 40 entries"), "{stdout}");
    assert!(
        stdout.contains(&format!("state hash {hash_at_40}")),
        "{stdout}"
    );
    let log = EventLog::open(&out).unwrap();
    assert_eq!(log.last_seq(), 40);
    let head: String = log.last_hash().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(head, checkpoints(dir.path())[0].head);
}
