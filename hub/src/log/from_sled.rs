//! Moves a log written by an earlier build, in sled, into the log's redb
//! file. The log is the one thing the hub cannot derive again, so it is
//! copied entry by entry into a new file, checked, renamed into place, and
//! only then are sled's files moved aside (not deleted) into
//! `SLED_LOG_KEPT`, for the operator to remove. A copy cut short leaves no
//! log file, so the next open copies again.
//!
//! sled's layout, one tree `log`: `e` + seq (u64 big-endian) → the entry as
//! stored here too (prev hash ‖ hash ‖ payload); `i` + event id → seq; `p` →
//! the input position. A tree `meta` held the markers (name → u64).

use std::path::Path;

use super::{LogError, Tables, GENESIS};

/// The files sled keeps in its directory.
const SLED_FILES: [&str; 2] = ["conf", "db"];

/// Where sled's files go once their log is copied.
pub(super) const SLED_LOG_KEPT: &str = "log-sled-before-redb";

/// Entries copied per redb transaction.
const CHUNK: usize = 10_000;

/// Whether `dir` holds a log written by an earlier build.
pub(super) fn present(dir: &Path) -> bool {
    SLED_FILES.iter().all(|f| dir.join(f).is_file())
}

fn sled_failed(e: sled::Error) -> LogError {
    LogError::Storage(format!("reading the log of an earlier build (sled): {e}"))
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// Copies the sled log in `dir` into a new redb log at `path`, checks the
/// copy's chain, and moves sled's files aside.
pub(super) fn migrate(dir: &Path, path: &Path) -> Result<(), LogError> {
    tracing::info!(dir = %dir.display(), "moving the event log of an earlier build from sled to redb");
    let sled = sled::Config::new().path(dir).open().map_err(sled_failed)?;
    let log = sled.open_tree("log").map_err(sled_failed)?;
    let meta = sled.open_tree("meta").map_err(sled_failed)?;
    let copying = path.with_extension("copying");
    let failed = |e: &dyn std::fmt::Display| {
        LogError::Storage(format!("creating {}: {e}", copying.display()))
    };
    let _ = std::fs::remove_file(&copying);
    let db = redb::Database::create(&copying).map_err(|e| failed(&e))?;
    let mut copied = 0;
    let mut entries = log.scan_prefix(b"e");
    loop {
        let txn = db.begin_write()?;
        let mut more = false;
        {
            let mut tables = Tables::open(&txn)?;
            for kv in entries.by_ref().take(CHUNK) {
                more = true;
                let (k, v) = kv.map_err(sled_failed)?;
                let seq = be_u64(&k[1..]).unwrap_or(0);
                let entry = super::decode(seq, &v)?;
                tables.entries.insert(seq, &v[..])?;
                tables
                    .event_ids
                    .insert(entry.payload.event_id().as_u128(), seq)?;
                copied += 1;
            }
            if !more {
                if let Some(p) = log.get(b"p").map_err(sled_failed)? {
                    tables
                        .meta
                        .insert(super::INPUT_POSITION, be_u64(&p).unwrap_or(0))?;
                }
                for kv in meta.iter() {
                    let (k, v) = kv.map_err(sled_failed)?;
                    if let (Ok(name), Some(value)) = (std::str::from_utf8(&k), be_u64(&v)) {
                        tables.meta.insert(name, value)?;
                    }
                }
            }
        }
        txn.commit()?;
        if !more {
            break;
        }
        tracing::info!(entries = copied, "moving the event log to redb");
    }
    // The copy is checked as the log is: a gap or a broken chain in the
    // earlier build's log stops the move, naming the entry.
    let checked = super::verify_chain(&db, 0, GENESIS, u64::MAX)?;
    if checked != copied {
        return Err(LogError::Damaged {
            seq: checked + 1,
            reason: format!(
                "the log of the earlier build holds {copied} entries but its chain ends at {checked}"
            ),
        });
    }
    drop((log, meta, sled, db));
    std::fs::rename(&copying, path).map_err(|e| failed(&e))?;
    let kept = dir.join(SLED_LOG_KEPT);
    let moved = |error| LogError::File {
        path: kept.display().to_string(),
        error,
    };
    std::fs::create_dir_all(&kept).map_err(moved)?;
    for name in std::fs::read_dir(dir).map_err(moved)? {
        let name = name.map_err(moved)?.file_name();
        let name = name.to_string_lossy();
        if SLED_FILES.contains(&name.as_ref()) || name == "blobs" || name.starts_with("snap.") {
            std::fs::rename(dir.join(&*name), kept.join(&*name)).map_err(moved)?;
        }
    }
    tracing::info!(entries = copied, kept = %kept.display(),
        "moved the event log to redb; the sled files are kept there and may be removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::samples::sample_event;
    use crate::entry::LogPayload;
    use crate::log::{chain_hash, EventLog};

    /// Writes `events` as an earlier build did, in sled.
    fn write_sled_log(dir: &Path, events: &[LogPayload]) -> Vec<uuid::Uuid> {
        let db = sled::Config::new().path(dir).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let mut prev = GENESIS;
        let mut ids = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let seq = i as u64 + 1;
            let body = serde_json::to_vec(event).unwrap();
            let hash = chain_hash(&prev, seq, &body);
            let mut value = prev.to_vec();
            value.extend_from_slice(&hash);
            value.extend_from_slice(&body);
            let mut key = b"e".to_vec();
            key.extend_from_slice(&seq.to_be_bytes());
            log.insert(key, value).unwrap();
            let mut key = b"i".to_vec();
            key.extend_from_slice(event.event_id().as_bytes());
            log.insert(key, &seq.to_be_bytes()[..]).unwrap();
            ids.push(event.event_id());
            prev = hash;
        }
        log.insert(b"p", &42u64.to_be_bytes()[..]).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("outbound_published_seq", &2u64.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
        ids
    }

    #[test]
    fn a_sled_log_of_an_earlier_build_is_moved_whole() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<LogPayload> = (1..=3)
            .map(|i| LogPayload::Change(sample_event("crm", &i.to_string(), "a@x.com")))
            .collect();
        let ids = write_sled_log(dir.path(), &events);
        let mut log = EventLog::open(dir.path()).unwrap();
        assert!(!present(dir.path()), "sled's files are moved aside");
        assert!(dir.path().join(SLED_LOG_KEPT).join("db").is_file());
        assert_eq!(log.last_seq(), 3);
        assert_eq!(log.verify().unwrap(), 3);
        assert_eq!(log.position().unwrap(), 42);
        assert_eq!(log.marker("outbound_published_seq").get().unwrap(), 2);
        assert_eq!(log.get(2).unwrap().unwrap().payload, events[1]);
        assert!(ids.iter().all(|id| log.contains_event(*id).unwrap()));
        let mut again = vec![crate::entry::Encoded::new(events[0].clone())];
        assert_eq!(
            log.append(&mut again, None).unwrap(),
            vec![crate::log::Appended::Duplicate(1)]
        );
    }
}
