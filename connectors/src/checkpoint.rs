//! Durable cursors: where each connector's change capture has got to (a
//! replication slot position, a binlog file and offset, the snapshot of the
//! last CSV export, an API's `updatedAt`).
//!
//! A connector moves its cursor only after JetStream has acknowledged
//! every event before it, so after a crash it resumes at or before the
//! last acknowledged event: nothing is skipped, and what is read twice the
//! hub drops by event id. Saving must therefore never leave a torn cursor:
//! each one is a small JSON file written to a temporary file, fsynced,
//! renamed over the old one, and the directory fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "checkpoint name {0:?} must be lower-case letters, digits and '_' (the connector's name)"
    )]
    BadName(String),
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file holds something else than the connector's cursor. Its
    /// content is not quoted: a cursor may hold customer keys.
    #[error("checkpoint {path} is not a valid cursor for this connector: {reason}; move it away to start over from a full load")]
    Corrupt { path: PathBuf, reason: String },
}

/// A directory of cursors, one file per connector.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(CheckpointStore { dir })
    }

    fn path(&self, name: &str) -> Result<PathBuf, CheckpointError> {
        if !mdhub_schema::model::is_token(name) {
            return Err(CheckpointError::BadName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// The cursor saved under `name`, or `None` before the first save (the
    /// connector then starts with a full load).
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, CheckpointError> {
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path,
                reason: format!("{} at line {} column {}", kind(&e), e.line(), e.column()),
            })
    }

    /// Saves `cursor` under `name`: the old cursor or the new one survives
    /// a crash at any point, never a mix.
    pub fn save<T: Serialize>(&self, name: &str, cursor: &T) -> Result<(), CheckpointError> {
        let path = self.path(name)?;
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        let bytes = serde_json::to_vec(cursor).map_err(|e| CheckpointError::Corrupt {
            path: path.clone(),
            reason: format!("the cursor does not serialize: {e}"),
        })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename is durable only once the directory is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }
}

fn kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of another shape",
        serde_json::error::Category::Eof => "cut short",
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct BinlogCursor {
        file: String,
        offset: u64,
    }

    #[test]
    fn a_saved_cursor_is_loaded_after_a_reopen_and_replaced_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("cursors")).unwrap();
        assert_eq!(store.load::<BinlogCursor>("crm").unwrap(), None);
        let first = BinlogCursor {
            file: "binlog.000001".into(),
            offset: 4,
        };
        store.save("crm", &first).unwrap();
        let second = BinlogCursor {
            file: "binlog.000002".into(),
            offset: 1_234,
        };
        store.save("crm", &second).unwrap();
        let reopened = CheckpointStore::open(dir.path().join("cursors")).unwrap();
        assert_eq!(reopened.load::<BinlogCursor>("crm").unwrap(), Some(second));
        assert_eq!(
            reopened.load::<BinlogCursor>("erp").unwrap(),
            None,
            "one file per connector"
        );
    }

    #[test]
    fn a_torn_temporary_file_from_a_crash_leaves_the_last_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let saved = BinlogCursor {
            file: "binlog.000001".into(),
            offset: 99,
        };
        store.save("crm", &saved).unwrap();
        fs::write(dir.path().join(".crm.json.tmp"), b"{\"file\": \"binl").unwrap();
        assert_eq!(store.load::<BinlogCursor>("crm").unwrap(), Some(saved));
    }

    #[test]
    fn a_damaged_cursor_is_an_error_naming_the_file_not_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("crm.json"), b"{\"file\": \"secret-key-42\"").unwrap();
        let err = store.load::<BinlogCursor>("crm").unwrap_err().to_string();
        assert!(
            err.contains("crm.json") && err.contains("cut short"),
            "{err}"
        );
        assert!(!err.contains("secret-key-42"), "{err}");
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        for name in ["", "../crm", "crm/x", "CRM", ".crm"] {
            assert!(
                matches!(store.save(name, &1u64), Err(CheckpointError::BadName(_))),
                "{name:?}"
            );
        }
    }
}
