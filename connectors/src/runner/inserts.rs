//! Records the connector inserted for golden records the system did not
//! hold (`receive_all`), by golden id, in `inserted.jsonl` in its state
//! directory.
//!
//! An update is acknowledged to the broker only after it is applied; a
//! crash in between delivers it again. Without this ledger the second
//! delivery of an insert would create a second record. With it, an insert
//! for a golden record already inserted becomes an update of that record.
//! The ledger is appended and synced once per write-back batch, right after
//! the system committed it and before its updates are acknowledged, so only
//! a crash in that instant can still double an insert.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const FILE_NAME: &str = "inserted.jsonl";

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    golden_id: Uuid,
    record_id: String,
}

#[derive(Debug)]
pub struct InsertLedger {
    path: PathBuf,
    by_golden: HashMap<Uuid, String>,
    file: Option<File>,
}

impl InsertLedger {
    /// Reads the ledger; a torn last line (a crash while appending) is
    /// skipped.
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let path = state_dir.join(FILE_NAME);
        let mut by_golden = HashMap::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    if let Ok(l) = serde_json::from_str::<Line>(&line?) {
                        by_golden.insert(l.golden_id, l.record_id);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(InsertLedger {
            path,
            by_golden,
            file: None,
        })
    }

    /// The record inserted earlier for this golden record, if any.
    pub fn record_for(&self, golden_id: Uuid) -> Option<&str> {
        self.by_golden.get(&golden_id).map(String::as_str)
    }

    /// Appends the records inserted by one write-back batch, synced once.
    pub fn add_all(&mut self, inserted: &[(Uuid, String)]) -> std::io::Result<()> {
        if self.file.is_none() {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&self.path)?;
            // A torn last line from a crash must not swallow the next one.
            if ends_torn(&mut file)? {
                file.write_all(b"\n")?;
            }
            self.file = Some(file);
        }
        let mut text = String::new();
        for (golden_id, record_id) in inserted {
            text.push_str(
                &serde_json::to_string(&Line {
                    golden_id: *golden_id,
                    record_id: record_id.clone(),
                })
                .map_err(std::io::Error::other)?,
            );
            text.push('\n');
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
        }
        for (golden_id, record_id) in inserted {
            self.by_golden.insert(*golden_id, record_id.clone());
        }
        Ok(())
    }
}

/// Whether the file is not empty and does not end with a newline.
fn ends_torn(file: &mut File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen_and_a_torn_line_swallows_nothing_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (g, h) = (Uuid::from_u128(7), Uuid::from_u128(8));
        {
            let mut ledger = InsertLedger::open(dir.path()).expect("open");
            assert_eq!(ledger.record_for(g), None);
            ledger.add_all(&[(g, "new/1".into())]).expect("add");
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .expect("file");
        f.write_all(b"{\"golden_id\":\"0000").expect("torn");
        {
            let mut ledger = InsertLedger::open(dir.path()).expect("reopen");
            assert_eq!(ledger.record_for(g), Some("new/1"));
            ledger
                .add_all(&[(h, "new/2".into())])
                .expect("add after the torn line");
        }
        let ledger = InsertLedger::open(dir.path()).expect("reopen");
        assert_eq!(ledger.record_for(g), Some("new/1"));
        assert_eq!(ledger.record_for(h), Some("new/2"));
    }
}
