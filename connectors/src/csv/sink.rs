//! The CSV connector's write-back: golden updates as files in the outbox
//! for the system's importer, in the layout's columns and format, one file
//! per run of writes of one kind and column set (a batch of updates that
//! all carry the same columns is one file).
//!
//! - an update: the key and the written columns (a Data Loader update);
//! - an insert: a new key `mdhub-<uuid>` and the written columns;
//! - a retire: the layout's deleted column set to `true` (an update), or,
//!   for a layout without one, the key in a delete file.
//!
//! The sink cannot read the system; what it knows is the last imported
//! export (the snapshot, from the source) and what it wrote since (its
//! pending writes). From both it gives `fetch`, and the row the system will
//! export once it imported a write, as `Applied::image`: so the export of
//! the connector's own write is recognized as its echo and not published.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use mdhub_schema::validate::MAX_RECORD_ID_BYTES;
use time::OffsetDateTime;
use uuid::Uuid;

use super::cells::{row_of, text_of};
use super::config::Settings;
use super::connector::SnapshotCopy;
use super::dates::DateParser;
use super::diff::Snapshot;
use super::outbox::{self, Kind, OutFile};
use crate::contract::{Applied, ConnectorError, Row, Sink, Write, WriteOp};

/// Text cells of one record, by column.
type Cells = BTreeMap<String, String>;

/// What the sink wrote that the last imported export may not show yet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// These cells, as the export will read them back.
    Written(Cells),
    Retired,
}

/// What the sink remembers across reopenings (in memory: after a restart
/// the first echo of an earlier write goes to the hub, which recognizes it
/// by content).
#[derive(Debug, Default)]
pub(crate) struct SinkMemory {
    pending: HashMap<String, Pending>,
    /// The snapshot generation `pending` was last compared with.
    generation: u64,
    /// The last batch's name stamp: names of later batches sort after it.
    last_stamp: Option<OffsetDateTime>,
}

impl SinkMemory {
    /// Forgets the writes a newer snapshot shows: from then on the
    /// snapshot is the truth (and a later user edit must not be hidden by
    /// an old write).
    fn catch_up(&mut self, generation: u64, snapshot: &Snapshot) {
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        self.pending.retain(|key, pending| match pending {
            Pending::Retired => snapshot.rows.contains_key(key),
            Pending::Written(cells) => match snapshot.rows.get(key) {
                Some(row) => cells.iter().any(|(c, v)| row.get(c) != Some(v)),
                None => true,
            },
        });
    }

    /// The record's cells as the system holds them after importing what
    /// was written, and whether the last export had it; `None` when it is
    /// unknown or retired.
    fn view(&self, key: &str, snapshot: &Snapshot) -> Option<(Cells, bool)> {
        let known = snapshot.rows.get(key);
        let mut cells = match (self.pending.get(key), known) {
            (Some(Pending::Retired), _) => return None,
            (_, Some(row)) => row.clone(),
            (Some(Pending::Written(_)), None) => Cells::new(),
            (None, None) => return None,
        };
        if let Some(Pending::Written(written)) = self.pending.get(key) {
            cells.extend(written.iter().map(|(c, v)| (c.clone(), v.clone())));
        }
        Some((cells, known.is_some()))
    }
}

/// One write made ready for a file.
struct Plan {
    kind: Kind,
    key: String,
    /// Columns after the key, with the text of their cells.
    cells: Vec<(String, String)>,
    /// What the record holds afterwards.
    after: Pending,
}

/// Write-back into one system's outbox.
pub struct CsvSink {
    settings: Arc<Settings>,
    copy: Arc<SnapshotCopy>,
    memory: Arc<Mutex<SinkMemory>>,
    dates: HashMap<String, DateParser>,
}

impl CsvSink {
    pub(crate) fn open(
        settings: Arc<Settings>,
        copy: Arc<SnapshotCopy>,
        memory: Arc<Mutex<SinkMemory>>,
    ) -> Result<Self, ConnectorError> {
        std::fs::create_dir_all(&settings.outbox).map_err(|e| {
            ConnectorError::Unavailable(format!("outbox {}: {e}", settings.outbox.display()))
        })?;
        let layout = &settings.layout;
        let dates = layout
            .dates
            .iter()
            .filter_map(|(column, format)| Some((column.clone(), DateParser::new(format, layout)?)))
            .collect();
        Ok(CsvSink {
            settings,
            copy,
            memory,
            dates,
        })
    }

    fn memory(&self) -> MutexGuard<'_, SinkMemory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A value as the file's cell and as the export will read it back
    /// (dates in the layout's format, read back in ISO form).
    fn cell(&self, column: &str, value: &serde_json::Value) -> Result<(String, String), String> {
        let text = text_of(value)
            .ok_or_else(|| format!("column {column}: a list or object fits no CSV cell"))?;
        let Some(parser) = self.dates.get(column) else {
            return Ok((text.clone(), text));
        };
        let written = parser.write(&text).ok_or_else(|| {
            format!("column {column}: not a date the layout can write (ISO 8601 expected)")
        })?;
        let back = parser.normalize(&written).unwrap_or_default();
        Ok((written, back))
    }

    fn plan(&self, write: &Write) -> Result<Plan, ConnectorError> {
        let layout = &self.settings.layout;
        let (key, insert) = match &write.record_id {
            Some(id) => (id.clone(), false),
            None => (format!("mdhub-{}", Uuid::now_v7()), true),
        };
        let refuse = |reason: String| ConnectorError::Record {
            record_id: if insert { "(new)".into() } else { key.clone() },
            reason,
        };
        if key.trim().is_empty() || key.len() > MAX_RECORD_ID_BYTES {
            return Err(refuse(format!(
                "the key is empty or longer than {MAX_RECORD_ID_BYTES} bytes"
            )));
        }
        let row = match &write.op {
            WriteOp::Retire => {
                let Some(deleted) = &layout.deleted_column else {
                    return Ok(Plan {
                        kind: Kind::Delete,
                        key,
                        cells: Vec::new(),
                        after: Pending::Retired,
                    });
                };
                return Ok(Plan {
                    kind: Kind::Update,
                    key,
                    cells: vec![(deleted.clone(), "true".into())],
                    after: Pending::Retired,
                });
            }
            WriteOp::Upsert(row) => row,
        };
        let mut cells = Vec::with_capacity(row.len());
        let mut after = Cells::new();
        let mut problems = Vec::new();
        // The key is the record's name, not a value to set.
        for (column, value) in row.iter().filter(|(c, _)| **c != layout.key_column) {
            match self.cell(column, value) {
                Ok((text, back)) => {
                    cells.push((column.clone(), text));
                    after.insert(column.clone(), back);
                }
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(refuse(problems.join("; ")));
        }
        if insert {
            after.insert(layout.key_column.clone(), key.clone());
        }
        Ok(Plan {
            kind: if insert { Kind::Insert } else { Kind::Update },
            key,
            cells,
            after: Pending::Written(after),
        })
    }
}

/// Consecutive plans of one kind and column set share a file; a change of
/// either starts the next, so importing the files in name order applies
/// the writes in order.
fn files_of(key_column: &str, plans: &[&Plan]) -> Vec<OutFile> {
    let mut files: Vec<OutFile> = Vec::new();
    for plan in plans {
        if plan.kind == Kind::Update && plan.cells.is_empty() {
            continue;
        }
        let header: Vec<String> = std::iter::once(key_column.to_string())
            .chain(plan.cells.iter().map(|(c, _)| c.clone()))
            .collect();
        let row: Vec<String> = std::iter::once(plan.key.clone())
            .chain(plan.cells.iter().map(|(_, t)| t.clone()))
            .collect();
        match files.last_mut() {
            Some(f) if f.kind == plan.kind && f.header == header => f.rows.push(row),
            _ => files.push(OutFile {
                kind: plan.kind,
                header,
                rows: vec![row],
            }),
        }
    }
    files
}

impl Sink for CsvSink {
    async fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let (generation, snapshot) = self.copy.get()?;
        let plans: Vec<Result<Plan, ConnectorError>> =
            writes.iter().map(|w| self.plan(w)).collect();
        let ready: Vec<&Plan> = plans.iter().filter_map(|p| p.as_ref().ok()).collect();
        let files = files_of(&self.settings.layout.key_column, &ready);
        let mut memory = self.memory();
        memory.catch_up(generation, &snapshot);
        if !files.is_empty() {
            let stamp = outbox::batch_stamp(memory.last_stamp);
            outbox::write_batch(
                &self.settings.outbox,
                self.settings.layout.delimiter as u8,
                stamp,
                &files,
            )
            .map_err(|e| {
                ConnectorError::Unavailable(format!(
                    "writing to the outbox {}: {e}",
                    self.settings.outbox.display()
                ))
            })?;
            memory.last_stamp = Some(stamp);
        }
        let mut results = Vec::with_capacity(plans.len());
        for plan in plans {
            let plan = match plan {
                Ok(p) => p,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            match plan.after {
                Pending::Retired => {
                    memory.pending.insert(plan.key.clone(), Pending::Retired);
                }
                Pending::Written(after) => {
                    // Writes since the last export add up; a write after a
                    // retire (a record brought back) starts afresh.
                    match memory.pending.get_mut(&plan.key) {
                        Some(Pending::Written(cells)) => cells.extend(after),
                        _ => {
                            memory
                                .pending
                                .insert(plan.key.clone(), Pending::Written(after));
                        }
                    }
                }
            }
            let image = match &plan.kind {
                Kind::Delete => None,
                Kind::Update | Kind::Insert => memory
                    .view(&plan.key, &snapshot)
                    .map(|(cells, known)| row_of(&cells, known)),
            };
            results.push(Ok(Applied {
                record_id: plan.key,
                image,
                unchanged: false,
            }));
        }
        Ok(results)
    }

    async fn fetch(&mut self, record_id: &str) -> Result<Option<Row>, ConnectorError> {
        let (generation, snapshot) = self.copy.get()?;
        let mut memory = self.memory();
        memory.catch_up(generation, &snapshot);
        Ok(memory
            .view(record_id, &snapshot)
            .map(|(cells, known)| row_of(&cells, known)))
    }
}
