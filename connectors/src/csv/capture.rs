//! The CSV connector's change capture: each export dropped into the inbox
//! becomes one captured transaction with every new, changed or deleted
//! record against the snapshot of the last imported export.
//!
//! The cursor is the snapshot after the file, with the file's name and
//! content hash. The file is moved to `done` only when the runner confirms
//! that cursor, so a crash before leaves it in the inbox, and it is read
//! again against the saved snapshot: the same changes at the same
//! `position` (name, content hash, hash of the snapshot before), hence the
//! same event ids. Rejected rows come first, one `ConnectorError::Record`
//! each, then the transaction with the rows that were read.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cells::row_of;
use super::config::Settings;
use super::connector::SnapshotCopy;
use super::diff::{diff, Change, Snapshot};
use super::inbox::{self, ExportFile};
use super::read::{read_export, Export, Row};
use crate::contract::{
    Captured, CapturedTx, ConnectorError, Cursor, LoadProgress, RowChange, Source,
};

/// The cursor as saved: the snapshot after `file`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvCursor {
    file: String,
    sha256: String,
    snapshot: Snapshot,
}

/// The same, borrowed, to build a cursor without copying the snapshot.
#[derive(Serialize)]
struct CursorRef<'a> {
    file: &'a str,
    sha256: &'a str,
    snapshot: &'a Snapshot,
}

/// Change capture over the inbox of one system's exports.
pub struct CsvFileSource {
    settings: Arc<Settings>,
    copy: Arc<SnapshotCopy>,
    /// The snapshot after the last file handed to the runner.
    snapshot: Arc<Snapshot>,
    /// Rejected rows and the transaction of the file being handed out.
    queue: VecDeque<Result<CapturedTx, ConnectorError>>,
    /// Files handed out whose cursor is not confirmed yet, with the
    /// snapshot after each: not read again, moved to `done` on confirm.
    unconfirmed: Vec<(String, Arc<Snapshot>)>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Unavailable(format!("{what}: {e}"))
}

impl CsvFileSource {
    pub(crate) fn open(
        settings: Arc<Settings>,
        copy: Arc<SnapshotCopy>,
        cursor: Option<Cursor>,
    ) -> Result<Self, ConnectorError> {
        for dir in [&settings.inbox, &settings.done] {
            inbox::ensure_dir(dir).map_err(|e| unavailable(&dir.display().to_string(), e))?;
        }
        let snapshot = match cursor {
            None => Snapshot::default(),
            Some(value) => {
                let cursor: CsvCursor = serde_json::from_value(value).map_err(|e| {
                    ConnectorError::Fatal(format!(
                        "the saved cursor is not a CSV connector's cursor ({e}); \
                         move it away to import the next file as a full load"
                    ))
                })?;
                finish_confirm(&settings, &cursor)?;
                let snapshot = Arc::new(cursor.snapshot);
                // The sink's copy may be older after a crash right after the
                // runner saved the cursor.
                copy.set(snapshot.clone())?;
                return Ok(CsvFileSource {
                    settings,
                    copy,
                    snapshot,
                    queue: VecDeque::new(),
                    unconfirmed: Vec::new(),
                });
            }
        };
        Ok(CsvFileSource {
            settings,
            copy,
            snapshot: Arc::new(snapshot),
            queue: VecDeque::new(),
            unconfirmed: Vec::new(),
        })
    }

    /// The next file of the inbox not handed out yet.
    fn next_file(&self) -> Result<Option<ExportFile>, ConnectorError> {
        let inbox = &self.settings.inbox;
        let names = inbox::ready(inbox).map_err(|e| unavailable("listing the inbox", e))?;
        for name in names {
            if self.unconfirmed.iter().any(|(n, _)| *n == name) {
                continue;
            }
            match inbox::read(inbox, &name) {
                Ok(Some(file)) => return Ok(Some(file)),
                Ok(None) => continue,
                Err(e) => return Err(unavailable(&format!("reading {name}"), e)),
            }
        }
        Ok(None)
    }

    /// Queues the rejected rows and the transaction of one file; a file
    /// that cannot be read at all is moved aside and reported.
    fn capture(&mut self, file: ExportFile) -> Result<(), ConnectorError> {
        let export = match read_export(&self.settings.layout, &file.bytes[..]) {
            Ok(export) => export,
            Err(e) => {
                let target = format!("{}.rejected", file.name);
                inbox::move_to_done(
                    &self.settings.inbox,
                    &file.name,
                    &self.settings.done,
                    &target,
                )
                .map_err(|e| unavailable(&format!("moving {} to done", file.name), e))?;
                self.queue.push_back(Err(ConnectorError::Record {
                    record_id: file.name.clone(),
                    reason: format!("file {}: {e}; moved to done as {target}", file.name),
                }));
                return Ok(());
            }
        };
        let mut rejected: Vec<_> = export.rejected.iter().collect();
        rejected.sort_by_key(|r| r.line);
        for r in rejected {
            self.queue.push_back(Err(ConnectorError::Record {
                record_id: r.key.clone().unwrap_or_else(|| format!("line {}", r.line)),
                reason: format!("line {}: {} (file {})", r.line, r.reason, file.name),
            }));
        }
        let tx = self.transaction(&file, &export)?;
        self.queue.push_back(Ok(tx));
        Ok(())
    }

    fn transaction(
        &mut self,
        file: &ExportFile,
        export: &Export,
    ) -> Result<CapturedTx, ConnectorError> {
        let previous = &self.snapshot;
        let d = diff(previous, export);
        if d.deletes_withheld > 0 {
            tracing::warn!(
                "{}: {} record(s) absent from the file are not deleted: a rejected row \
                 without a readable key may be any of them",
                file.name,
                d.deletes_withheld
            );
        }
        let rows: HashMap<&str, &Row> = export.rows.iter().map(|r| (r.key.as_str(), r)).collect();
        let changes: Vec<Captured> = d
            .changes
            .iter()
            .map(|change| match change {
                Change::Upsert { key, .. } => {
                    let row = rows.get(key.as_str()).copied();
                    let known = previous.rows.contains_key(key);
                    Captured {
                        record_id: key.clone(),
                        change: RowChange::Upsert(
                            row.map(|r| row_of(&r.columns, known)).unwrap_or_default(),
                        ),
                        observed_at: self.observed_at(row),
                    }
                }
                Change::Delete { key } => Captured {
                    record_id: key.clone(),
                    change: RowChange::Delete,
                    // A row marked deleted carries its own change time; a
                    // row gone from the file was deleted by the file's time.
                    observed_at: self.observed_at(rows.get(key.as_str()).copied()),
                },
            })
            .collect();
        // The first file into an empty snapshot is the initial load.
        let first_import = previous.rows.is_empty();
        let rows_in_file = changes.len() as u64;
        let before = serde_json::to_vec(&**previous)
            .map_err(|e| ConnectorError::Fatal(format!("the snapshot does not serialize: {e}")))?;
        // The snapshot before is part of the position: the same file dropped
        // again later, against another snapshot, gives other changes and
        // must not reuse the first one's event ids.
        let position = format!(
            "csv:{}:{}:{}",
            file.name,
            file.sha256,
            inbox::sha256(&before)
        );
        let cursor = serde_json::to_value(CursorRef {
            file: &file.name,
            sha256: &file.sha256,
            snapshot: &d.next,
        })
        .map_err(|e| ConnectorError::Fatal(format!("the cursor does not serialize: {e}")))?;
        let next = Arc::new(d.next);
        self.unconfirmed.push((file.name.clone(), next.clone()));
        self.snapshot = next;
        Ok(CapturedTx {
            changes,
            cursor: Some(cursor),
            position,
            // The file's time, never the time of reading: it is part of the
            // event ids, which must not change when the file is read again.
            committed_at: Some(file.modified),
            own_write: false,
            load: first_import.then_some(LoadProgress {
                done: rows_in_file,
                total: Some(rows_in_file),
            }),
        })
    }

    fn observed_at(&self, row: Option<&Row>) -> Option<OffsetDateTime> {
        let column = self.settings.modified_column.as_deref()?;
        let text = row?.columns.get(column)?;
        OffsetDateTime::parse(text, &Rfc3339).ok()
    }
}

/// After a crash between the runner saving a cursor and the source moving
/// its file: the file still in the inbox with the same content was
/// imported, and goes to `done` now.
fn finish_confirm(settings: &Settings, cursor: &CsvCursor) -> Result<(), ConnectorError> {
    let file = inbox::read(&settings.inbox, &cursor.file)
        .map_err(|e| unavailable(&format!("reading {}", cursor.file), e))?;
    if file.is_some_and(|f| f.sha256 == cursor.sha256) {
        inbox::move_to_done(&settings.inbox, &cursor.file, &settings.done, &cursor.file)
            .map_err(|e| unavailable(&format!("moving {} to done", cursor.file), e))?;
    }
    Ok(())
}

impl Source for CsvFileSource {
    async fn next(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return item.map(Some);
            }
            match self.next_file()? {
                Some(file) => self.capture(file)?,
                None => tokio::time::sleep(self.settings.poll_interval).await,
            }
        }
    }

    async fn confirm(&mut self, cursor: &Cursor) -> Result<(), ConnectorError> {
        let Some(file) = cursor.get("file").and_then(|f| f.as_str()) else {
            return Ok(());
        };
        let Some(at) = self.unconfirmed.iter().position(|(n, _)| n == file) else {
            return Ok(());
        };
        let snapshot = self.unconfirmed[at].1.clone();
        inbox::move_to_done(&self.settings.inbox, file, &self.settings.done, file)
            .map_err(|e| unavailable(&format!("moving {file} to done"), e))?;
        self.unconfirmed.drain(..=at);
        self.copy.set(snapshot)
    }

    /// The next file is looked for only once the last one is confirmed
    /// (and moved to `done`).
    fn reads_ahead(&self) -> bool {
        false
    }

    fn has_buffered(&self) -> bool {
        !self.queue.is_empty()
    }
}
