//! `mdhub audit verify`'s check of a log: its hash chain and event index,
//! and the signed checkpoints an auditor kept. Each problem found is named
//! by the first log entry it concerns, so that the report can say where
//! the log stops being trustworthy.

use ed25519_dalek::VerifyingKey;

use super::signing::SignedCheckpoint;
use crate::log::{EventLog, LogError};

/// One problem with the log: the entry it concerns and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub seq: u64,
    pub reason: String,
}

/// What `check_log` found.
#[derive(Debug)]
pub struct LogCheck {
    /// The log's last sequence number.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The newest checkpoint's sequence (0: none).
    pub newest_checkpoint: u64,
    /// Problems, first entry first; empty when the log is intact.
    pub findings: Vec<Finding>,
}

/// Checks `log`: its chain and index (`EventLog::verify`), then each of
/// `checkpoints` (its signature, with `key` when given; that the log still
/// holds the entry it signed, with the hash it signed). Storage errors
/// that say nothing about the log's content come back as `Err`.
pub fn check_log(
    log: &EventLog,
    checkpoints: &[SignedCheckpoint],
    key: Option<&VerifyingKey>,
) -> Result<LogCheck, LogError> {
    let mut findings = Vec::new();
    match log.verify() {
        Ok(_) => {}
        Err(LogError::Damaged { seq, reason }) => findings.push(Finding { seq, reason }),
        Err(e) => return Err(e),
    }
    let last = log.last_seq();
    for c in checkpoints {
        let which = format!(
            "the checkpoint of entry {} signed at {}",
            c.seq, c.signed_at
        );
        if let Err(why) = c.check_signature(key) {
            findings.push(Finding {
                seq: c.seq,
                reason: format!("{which}: {why}"),
            });
            continue;
        }
        let head = c
            .head_hash()
            .expect("a checkpoint whose signature verified has a hash");
        if c.seq > last {
            findings.push(Finding {
                seq: last + 1,
                reason: format!(
                    "missing: the log ends at entry {last}, but {which} shows that it held {} entries (the log was cut short)",
                    c.seq
                ),
            });
            continue;
        }
        match log.get(c.seq) {
            Ok(Some(entry)) if entry.hash == head => {}
            Ok(Some(_)) => findings.push(Finding {
                seq: c.seq,
                reason: format!(
                    "its hash is not the one {which} holds: this entry or one before it was rewritten"
                ),
            }),
            Ok(None) => findings.push(Finding {
                seq: c.seq,
                reason: format!("missing, though {which} holds it"),
            }),
            // The chain check above names a damaged entry.
            Err(LogError::Damaged { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    findings.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.reason.cmp(&b.reason)));
    findings.dedup();
    Ok(LogCheck {
        entries: last,
        checkpoints: checkpoints.len(),
        newest_checkpoint: checkpoints.iter().map(|c| c.seq).max().unwrap_or(0),
        findings,
    })
}
