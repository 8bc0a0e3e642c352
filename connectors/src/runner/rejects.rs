//! The connector's dead-letter place: records it could not map or the
//! system refused, one JSON line each in `rejected.jsonl` in its state
//! directory, with the record's key, the direction, the golden update (for
//! write-back) and the reason. Reasons name columns and fields, never
//! values.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub const FILE_NAME: &str = "rejected.jsonl";

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A captured change that could not become a change event.
    Capture,
    /// A golden update that could not be applied to the system.
    WriteBack,
}

#[derive(Debug, Serialize)]
struct Line<'a> {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    system: &'a str,
    direction: Direction,
    record_id: Option<&'a str>,
    update_id: Option<Uuid>,
    reason: &'a str,
}

#[derive(Debug)]
pub struct RejectLog {
    system: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl RejectLog {
    pub fn new(system: &str, state_dir: &Path) -> Self {
        RejectLog {
            system: system.to_string(),
            path: state_dir.join(FILE_NAME),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs the rejected record and appends it to the file. A file that
    /// cannot be written is logged and does not stop the connector.
    pub fn reject(
        &self,
        direction: Direction,
        record_id: Option<&str>,
        update_id: Option<Uuid>,
        reason: &str,
    ) {
        tracing::warn!(
            system = %self.system,
            ?direction,
            record_id = record_id.unwrap_or("-"),
            update_id = ?update_id,
            "record rejected: {reason}"
        );
        let line = Line {
            at: OffsetDateTime::now_utc(),
            system: &self.system,
            direction,
            record_id,
            update_id,
            reason,
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(
                    "reject line for {} not serializable: {e}",
                    self.path.display()
                );
                return;
            }
        };
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!("cannot open {}: {e}", self.path.display());
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(text.as_bytes()) {
                tracing::error!("cannot append to {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reject_is_one_json_line_with_key_and_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = RejectLog::new("erp", dir.path());
        log.reject(
            Direction::Capture,
            Some("a\"b\nc"),
            None,
            "column zip: not a number",
        );
        log.reject(Direction::WriteBack, None, Some(Uuid::nil()), "refused");
        let text = std::fs::read_to_string(log.path()).expect("written");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["record_id"], "a\"b\nc");
        assert_eq!(lines[0]["direction"], "capture");
        assert_eq!(lines[1]["direction"], "write_back");
        assert_eq!(lines[1]["reason"], "refused");
    }
}
