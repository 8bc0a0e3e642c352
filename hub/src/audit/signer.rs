//! The running hub's checkpoint signer: signs the log's head every
//! `[audit] checkpoint_every` entries and on demand, appends each
//! checkpoint to the data dir's checkpoint file, and hands it on to be
//! published to JetStream (a copy off the hub's disk).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use time::OffsetDateTime;

use super::checkpoint_file::{self, CheckpointFileError};
use super::signing::{AuditKey, SignedCheckpoint};
use crate::hub::Hub;
use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing a checkpoint: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    File(#[from] CheckpointFileError),
}

pub struct CheckpointSigner {
    key: AuditKey,
    file: PathBuf,
    every: u64,
    /// The sequence of the newest checkpoint signed, and the checkpoints
    /// not yet handed to the publisher (`take_unpublished`).
    signed: Mutex<Signed>,
}

struct Signed {
    seq: u64,
    unpublished: Vec<SignedCheckpoint>,
}

impl CheckpointSigner {
    /// A signer writing to the checkpoint file in `data_dir`, going on
    /// from the newest checkpoint already in it.
    pub fn new(key: AuditKey, data_dir: &Path, every: u64) -> Result<Self, SignError> {
        let file = checkpoint_file::path_in(data_dir);
        let seq = checkpoint_file::read(&file)?
            .iter()
            .map(|c| c.seq)
            .max()
            .unwrap_or(0);
        Ok(CheckpointSigner {
            key,
            file,
            every: every.max(1),
            signed: Mutex::new(Signed {
                seq,
                unpublished: Vec::new(),
            }),
        })
    }

    pub fn public_hex(&self) -> String {
        self.key.public_hex()
    }

    /// Whether the log, at `last_seq`, is `checkpoint_every` entries past
    /// the newest checkpoint.
    pub fn due(&self, last_seq: u64) -> bool {
        last_seq >= self.lock().seq + self.every
    }

    /// Whether the log, at `last_seq`, holds entries no checkpoint signed.
    pub fn behind(&self, last_seq: u64) -> bool {
        last_seq > self.lock().seq
    }

    /// Signs `hub`'s log head now. The log is flushed first: a checkpoint
    /// must never sign entries that a crash could still take away.
    pub fn sign_now(&self, hub: &Hub) -> Result<SignedCheckpoint, SignError> {
        // Held while signing: checkpoints signed at once (the loop and the
        // API) reach the file in the order they were signed.
        let mut signed = self.lock();
        let log = hub.log();
        log.flush()?;
        let checkpoint = self
            .key
            .sign(log.last_seq(), &log.last_hash(), OffsetDateTime::now_utc());
        checkpoint_file::append(&self.file, &checkpoint)?;
        signed.seq = signed.seq.max(checkpoint.seq);
        signed.unpublished.push(checkpoint.clone());
        Ok(checkpoint)
    }

    /// The checkpoints signed since the last call, oldest first.
    pub fn take_unpublished(&self) -> Vec<SignedCheckpoint> {
        std::mem::take(&mut self.lock().unpublished)
    }

    /// Puts back checkpoints that could not be published, ahead of any
    /// signed since.
    pub fn requeue(&self, mut checkpoints: Vec<SignedCheckpoint>) {
        let mut signed = self.lock();
        checkpoints.append(&mut signed.unpublished);
        signed.unpublished = checkpoints;
    }

    /// Every checkpoint in the file.
    pub fn all(&self) -> Result<Vec<SignedCheckpoint>, SignError> {
        Ok(checkpoint_file::read(&self.file)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Signed> {
        // A panic while holding it left plain numbers and a list behind.
        self.signed.lock().unwrap_or_else(|p| p.into_inner())
    }
}
