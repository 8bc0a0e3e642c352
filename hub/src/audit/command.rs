//! `mdhub audit keygen | checkpoint | verify`: what the command line does,
//! printing its results on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use mdhub_schema::Limits;

use super::checkpoint_file;
use super::signer::CheckpointSigner;
use super::signing::{public_key, AuditKey};
use super::verify::check_log;
use crate::config::HubConfig;
use crate::hub::{self, Hub};
use crate::log::EventLog;
use crate::state::Rules;

/// Writes a new key to `out` and its public key to `out.pub`.
pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = AuditKey::generate()?;
    key.save(out)?;
    let public = PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&public, format!("{}\n", key.public_hex()))
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "wrote the signing key to {} (keep it secret; set [audit] signing_key to it)",
        out.display()
    );
    println!(
        "wrote the public key to {}: {}",
        public.display(),
        key.public_hex()
    );
    Ok(())
}

/// Signs the head of the log in `data_dir` (a stopped hub's; a running
/// hub signs on `POST /v1/admin/audit/checkpoints`) and appends the
/// checkpoint to the data dir's checkpoint file.
pub fn checkpoint(
    data_dir: &Path,
    key: &Path,
    config: &HubConfig,
    rules: Arc<Rules>,
) -> anyhow::Result<()> {
    let key = AuditKey::load(key)?;
    let (hub, _) = Hub::open_with(data_dir, rules, Limits::default(), &config.store)
        .with_context(|| format!("opening the hub in {}", data_dir.display()))?;
    let signer = CheckpointSigner::new(key, data_dir, config.audit.checkpoint_every)?;
    let c = signer.sign_now(&hub)?;
    println!("{}", serde_json::to_string(&c)?);
    Ok(())
}

/// What `mdhub audit verify` checks beside the log.
pub struct VerifyOptions {
    /// Checkpoint files (default: the data dir's own).
    pub checkpoints: Vec<PathBuf>,
    /// The public key, in hex or in a file (`.pub` from keygen).
    pub public_key: Option<String>,
    /// Replay the log and compare with the hub's state.
    pub replay: bool,
}

/// Checks the log in `data_dir`; an error names the first bad entry. The
/// replay needs the hub's config (`config_given`): opening the hub with
/// other rules would derive its state anew with those.
pub fn verify(
    data_dir: &Path,
    options: &VerifyOptions,
    config: &HubConfig,
    config_given: bool,
    rules: Arc<Rules>,
) -> anyhow::Result<()> {
    let key = match &options.public_key {
        Some(text) => {
            let text = match std::fs::read_to_string(text) {
                Ok(file) => file,
                Err(_) => text.clone(),
            };
            Some(public_key(&text)?)
        }
        None => None,
    };
    let files = if options.checkpoints.is_empty() {
        vec![checkpoint_file::path_in(data_dir)]
    } else {
        options.checkpoints.clone()
    };
    let mut checkpoints = Vec::new();
    for f in &files {
        if !options.checkpoints.is_empty() && !f.exists() {
            anyhow::bail!("checkpoint file {} does not exist", f.display());
        }
        checkpoints.extend(checkpoint_file::read(f)?);
    }
    let log =
        EventLog::open(data_dir).with_context(|| format!("opening {}", data_dir.display()))?;
    let check = check_log(&log, &checkpoints, key.as_ref())?;
    let head = hex::encode(log.last_hash());
    drop(log);
    if let Some(first) = check.findings.first() {
        for f in &check.findings {
            println!("BAD entry {}: {}", f.seq, f.reason);
        }
        anyhow::bail!(
            "the log in {} is not intact: the first bad entry is {}: {}",
            data_dir.display(),
            first.seq,
            first.reason
        );
    }
    println!(
        "ok: {} entries, hash chain and event index intact, head {head}",
        check.entries
    );
    if check.checkpoints == 0 {
        println!("no signed checkpoints: a log cut short at its end would pass (see [audit] in the hub's config)");
    } else {
        let whose = match &key {
            Some(k) => format!("with the public key {}", hex::encode(k.to_bytes())),
            None => "with the keys they name (pass --public-key to check that they are yours)"
                .to_string(),
        };
        println!(
            "ok: {} signed checkpoints verified {whose}; the newest holds entry {}, {} entries after it are not signed yet",
            check.checkpoints,
            check.newest_checkpoint,
            check.entries - check.newest_checkpoint.min(check.entries)
        );
    }
    if options.replay && !config_given {
        println!(
            "replay skipped: pass --config (the hub's) to compare a replay with the hub's state"
        );
    } else if options.replay {
        let (hub, _) = Hub::open_with(
            data_dir,
            Arc::clone(&rules),
            Limits::default(),
            &config.store,
        )
        .with_context(|| format!("opening the hub in {}", data_dir.display()))?;
        let live = hub.state().state_hash()?;
        drop(hub);
        let tmp = tempfile::tempdir()?;
        let (entries, replayed) = hub::rebuild(data_dir, &tmp.path().join("replay"), None, rules)?;
        if replayed != live {
            anyhow::bail!(
                "a replay of the {entries} entries gives state hash {replayed}, but the hub's derived state has {live}"
            );
        }
        println!("ok: a replay of the {entries} entries gives the hub's state hash {live}");
    }
    Ok(())
}

/// Prints golden record `id`'s history from the hub in `data_dir` (a
/// stopped hub's; a running hub answers `GET /v1/customers/{id}/history`)
/// as JSON: the same page the API answers.
pub fn history(
    data_dir: &Path,
    id: uuid::Uuid,
    after_seq: u64,
    limit: usize,
    config: &HubConfig,
    rules: Arc<Rules>,
) -> anyhow::Result<()> {
    let (hub, _) = Hub::open_with(data_dir, rules, Limits::default(), &config.store)
        .with_context(|| format!("opening the hub in {}", data_dir.display()))?;
    let page = super::history::history(&hub, id, after_seq, limit)?;
    println!("{}", serde_json::to_string_pretty(&page)?);
    Ok(())
}
