//! The signed checkpoints a hub wrote, as JSON Lines in its data dir
//! (`checkpoints.jsonl`). Appended to, never rewritten; a plain text file
//! so that an auditor can copy it away while the hub runs, and hand it to
//! `mdhub audit verify --checkpoints`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::signing::SignedCheckpoint;

/// The file's name in the hub's data dir.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointFileError {
    #[error("checkpoint file {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("checkpoint file {path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// The checkpoint file of the hub whose data dir is `data_dir`.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(CHECKPOINTS_FILE)
}

/// Appends `checkpoint` as one line and makes it durable.
pub fn append(path: &Path, checkpoint: &SignedCheckpoint) -> Result<(), CheckpointFileError> {
    let io = |error| CheckpointFileError::Io {
        path: path.display().to_string(),
        error,
    };
    let mut line = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(&line).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Every checkpoint in the file, in file order. A missing file holds none;
/// a line that is not a checkpoint is an error naming it, since a
/// checkpoint file an auditor relies on must not be read past damage. A
/// last line without its newline is a write a crash cut short, and is
/// skipped.
pub fn read(path: &Path) -> Result<Vec<SignedCheckpoint>, CheckpointFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(CheckpointFileError::Io {
                path: path.display().to_string(),
                error,
            })
        }
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let checkpoint = serde_json::from_str(line).map_err(|e| CheckpointFileError::Line {
            path: path.display().to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(checkpoint);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::signing::AuditKey;

    #[test]
    fn appended_checkpoints_read_back_in_order_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(read(&path).unwrap().is_empty());
        let key = AuditKey::generate().unwrap();
        let at = time::macros::datetime!(2026-12-06 12:00 UTC);
        let a = key.sign(10, &[1; 32], at);
        let b = key.sign(20, &[2; 32], at);
        append(&path, &a).unwrap();
        append(&path, &b).unwrap();
        assert_eq!(read(&path).unwrap(), vec![a.clone(), b.clone()]);

        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"seq\":30,\"he").unwrap();
        assert_eq!(read(&path).unwrap(), vec![a, b]);
    }

    #[test]
    fn a_damaged_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        std::fs::write(&path, "{\"seq\":1}\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
