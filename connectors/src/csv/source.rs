//! The capture side of a CSV connector: one export file in, the changes
//! since the last imported export out as `ChangeEvent`s on
//! `mdhub.in.<system>.customer`.
//!
//! The snapshot of the last export is the connector's cursor. It is saved
//! only after JetStream has acknowledged every event of the import, so a
//! crash in between re-imports the same file against the old snapshot: the
//! same changes are published again (the hub's second write changes
//! nothing), none is skipped.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use mdhub_schema::validate::MAX_RECORD_ID_BYTES;
use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::diff::{diff, Change, Snapshot};
use super::layout::{CsvLayout, DateFormat};
use super::read::{read_export, CsvError, Row, RowError};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::mapping::{FieldError, Mapping};
use crate::publish::{OutMessage, PublishError, Publisher};

/// The only entity CSV exports carry today.
pub const ENTITY: &str = "customer";

/// One system's CSV exports and how to read them.
#[derive(Debug, Clone)]
pub struct CsvSource {
    /// The system's name, as in the hub's `[system.<name>]`.
    pub system: String,
    pub layout: CsvLayout,
    pub mapping: Mapping,
    /// A column with the row's last change time (Salesforce
    /// `LastModifiedDate`), used as `observed_at`; it must be one of the
    /// layout's date-time columns. Without it, or where a row leaves it
    /// empty, `observed_at` is the file's modification time.
    pub modified_column: Option<String>,
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows in the file, accepted and rejected.
    pub rows_read: usize,
    /// Rows not published, in file order: unreadable rows and rows the
    /// mapping refused. Their records stay as the last import left them.
    pub rejected: Vec<RejectedImportRow>,
    /// Rows identical to the last import, or changed only in columns the
    /// mapping does not read.
    pub unchanged: usize,
    pub upserts_published: usize,
    pub deletes_published: usize,
    /// Records absent from the file that were not deleted because a
    /// rejected row without a readable key may be one of them.
    pub deletes_withheld: usize,
}

/// A row that was not published, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedImportRow {
    /// Physical line (1-based) where the row starts in the file.
    pub line: u64,
    /// The row's key when it could be read.
    pub key: Option<String>,
    pub reason: RejectReason,
}

/// Why a row was not published. Names columns, fields and keys, never
/// other values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("{0}")]
    Csv(RowError),
    #[error("the mapping refused it: {}", join(.0))]
    Mapping(Vec<FieldError>),
    #[error("the key is {bytes} bytes, more than the {max} a record id may have")]
    KeyTooLong { bytes: usize, max: usize },
}

fn join(errors: &[FieldError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// An import that failed. Unless it is `SnapshotNotSaved`, nothing was
/// acknowledged as published, and the snapshot is the one before.
#[derive(Debug, thiserror::Error)]
pub enum CsvSourceError {
    #[error("system name {0:?} must be lower-case letters, digits and '_', at most 60 (it names a subject and a checkpoint)")]
    BadSystem(String),
    #[error("modified_column {0:?} is not a date-time column of the layout (an ISO or local date-time in `dates`)")]
    ModifiedColumn(String),
    #[error("CSV export {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CSV export {path}: {source}")]
    Csv { path: PathBuf, source: CsvError },
    #[error("loading the last snapshot of system {system}: {source}")]
    Checkpoint {
        system: String,
        source: CheckpointError,
    },
    #[error("publishing the changes of {path}: {source}; the snapshot is kept, the next import publishes them again")]
    Publish { path: PathBuf, source: PublishError },
    /// The events are on the stream, the snapshot is the old one: the next
    /// import of the same file publishes them again, which the hub absorbs.
    #[error("{published} event(s) of {path} were published but the snapshot was not saved ({source}); the next import publishes them again")]
    SnapshotNotSaved {
        path: PathBuf,
        published: usize,
        source: CheckpointError,
    },
}

impl CsvSource {
    /// The checkpoint that holds this system's snapshot.
    pub fn checkpoint_name(&self) -> String {
        format!("csv_{}", self.system)
    }

    /// Checks what the layout cannot: the system can name a checkpoint and
    /// the modified column holds date-times (any other column would give
    /// every event the file's time without a word).
    pub fn validate(&self) -> Result<(), CsvSourceError> {
        // The system's name is a subject token and part of the checkpoint's
        // file name.
        if !mdhub_schema::model::is_token(&self.system) || self.system.len() > 60 {
            return Err(CsvSourceError::BadSystem(self.system.clone()));
        }
        if let Some(column) = &self.modified_column {
            let date_time = matches!(
                self.layout.dates.get(column),
                Some(DateFormat::IsoDateTime | DateFormat::LocalDateTime { .. })
            );
            if !date_time {
                return Err(CsvSourceError::ModifiedColumn(column.clone()));
            }
        }
        Ok(())
    }

    /// Imports one export: publishes its changes against the last imported
    /// snapshot (all rows on the first import), then saves the new snapshot.
    pub async fn import(
        &self,
        file: &Path,
        publisher: &Publisher,
        checkpoints: &CheckpointStore,
    ) -> Result<ImportReport, CsvSourceError> {
        self.validate()?;
        let name = self.checkpoint_name();
        let open_err = |source| CsvSourceError::Open {
            path: file.to_path_buf(),
            source,
        };
        let handle = File::open(file).map_err(open_err)?;
        let file_time: OffsetDateTime = handle
            .metadata()
            .and_then(|m| m.modified())
            .map_err(open_err)?
            .into();
        let export =
            read_export(&self.layout, std::io::BufReader::new(handle)).map_err(|source| {
                CsvSourceError::Csv {
                    path: file.to_path_buf(),
                    source,
                }
            })?;
        let previous: Snapshot = checkpoints
            .load(&name)
            .map_err(|source| CsvSourceError::Checkpoint {
                system: self.system.clone(),
                source,
            })?
            .unwrap_or_default();

        let changes = diff(&previous, &export);
        let mut next = changes.next;
        let mut report = ImportReport {
            rows_read: export.rows.len() + export.rejected.len(),
            unchanged: changes.unchanged,
            deletes_withheld: changes.deletes_withheld,
            ..ImportReport::default()
        };
        report.rejected = export
            .rejected
            .iter()
            .map(|r| RejectedImportRow {
                line: r.line,
                key: r.key.clone(),
                reason: RejectReason::Csv(r.reason.clone()),
            })
            .collect();

        let rows: HashMap<&str, &Row> = export.rows.iter().map(|r| (r.key.as_str(), r)).collect();
        let mut events = Vec::new();
        for change in &changes.changes {
            match change {
                Change::Upsert { key, line, .. } => {
                    let row = rows[key.as_str()];
                    let before = previous.rows.get(key);
                    let refuse = |reason| RejectedImportRow {
                        line: *line,
                        key: Some(key.clone()),
                        reason,
                    };
                    let fields = match self.changed_fields(key, &row.columns, before) {
                        Ok(fields) => fields,
                        Err(reason) => {
                            report.rejected.push(refuse(reason));
                            // Held as it was, so the next import tries again.
                            match before {
                                Some(columns) => next.rows.insert(key.clone(), columns.clone()),
                                None => next.rows.remove(key),
                            };
                            continue;
                        }
                    };
                    if before.is_some() && fields.is_empty() {
                        report.unchanged += 1;
                        continue;
                    }
                    let at = self.observed_at(Some(row), file_time);
                    events.push(self.event(key, Op::Upsert, fields, at));
                    report.upserts_published += 1;
                }
                Change::Delete { key } => {
                    let at = self.observed_at(rows.get(key.as_str()).copied(), file_time);
                    events.push(self.event(key, Op::Delete, BTreeMap::new(), at));
                    report.deletes_published += 1;
                }
            }
        }
        report.rejected.sort_by_key(|r| r.line);

        let subject = mdhub_schema::in_subject(&self.system, ENTITY);
        let msgs = events
            .iter()
            .map(|e| {
                let payload = serde_json::to_vec(e).expect("a ChangeEvent serializes");
                OutMessage::new(subject.clone(), payload)
            })
            .collect();
        publisher
            .publish_all(msgs)
            .await
            .map_err(|source| CsvSourceError::Publish {
                path: file.to_path_buf(),
                source,
            })?;
        if events.is_empty() && next == previous {
            return Ok(report);
        }
        checkpoints
            .save(&name, &next)
            .map_err(|source| CsvSourceError::SnapshotNotSaved {
                path: file.to_path_buf(),
                published: events.len(),
                source,
            })?;
        Ok(report)
    }

    /// The canonical fields of a row that differ from the same row in the
    /// snapshot (all set fields for a new row). Both rows are mapped whole,
    /// so an entry reading several columns (`join_name`) sees all of them
    /// when only one changed.
    fn changed_fields(
        &self,
        key: &str,
        columns: &BTreeMap<String, String>,
        before: Option<&BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, Value>, RejectReason> {
        if key.len() > MAX_RECORD_ID_BYTES {
            return Err(RejectReason::KeyTooLong {
                bytes: key.len(),
                max: MAX_RECORD_ID_BYTES,
            });
        }
        let now = self
            .mapping
            .to_canonical(&mapping_row(columns))
            .map_err(RejectReason::Mapping)?;
        // A snapshot row the mapping refuses now was published under an
        // older mapping: send the whole row.
        let old = before
            .and_then(|b| self.mapping.to_canonical(&mapping_row(b)).ok())
            .unwrap_or_default();
        Ok(now
            .into_iter()
            .filter(|(field, value)| match old.get(field) {
                Some(was) => was != value,
                None => !value.is_null(),
            })
            .collect())
    }

    fn observed_at(&self, row: Option<&Row>, file_time: OffsetDateTime) -> OffsetDateTime {
        self.modified_column
            .as_deref()
            .zip(row)
            .and_then(|(column, row)| row.columns.get(column))
            .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
            .unwrap_or(file_time)
    }

    fn event(
        &self,
        key: &str,
        op: Op,
        fields: BTreeMap<String, Value>,
        observed_at: OffsetDateTime,
    ) -> ChangeEvent {
        ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            system: self.system.clone(),
            entity: ENTITY.to_string(),
            record_id: key.to_string(),
            op,
            fields,
            observed_at,
            base: None,
            caused_by: None,
        }
    }
}

/// A CSV row as the mapping reads it: an empty cell is no value (`null`),
/// which clears the field.
fn mapping_row(columns: &BTreeMap<String, String>) -> crate::mapping::Row {
    columns
        .iter()
        .map(|(column, text)| {
            let value = if text.trim().is_empty() {
                Value::Null
            } else {
                Value::String(text.clone())
            };
            (column.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mdhub_schema::Model;

    use super::*;

    fn source(system: &str, modified_column: Option<&str>) -> CsvSource {
        let mapping = "[[field]]\ncanonical = \"city\"\ncolumn = \"MailingCity\"\n";
        CsvSource {
            system: system.to_string(),
            layout: CsvLayout::salesforce_contacts(),
            mapping: Mapping::parse(mapping, "sf.toml", &Model::default_customer()).unwrap(),
            modified_column: modified_column.map(str::to_string),
        }
    }

    #[test]
    fn the_modified_column_must_be_a_date_time_of_the_layout() {
        assert!(source("sf", Some("LastModifiedDate")).validate().is_ok());
        assert!(source("sf", None).validate().is_ok());
        for column in ["Birthdate", "MailingCity", "LastModified"] {
            assert!(
                matches!(
                    source("sf", Some(column)).validate(),
                    Err(CsvSourceError::ModifiedColumn(c)) if c == column
                ),
                "{column}"
            );
        }
    }

    #[test]
    fn a_system_name_that_cannot_name_a_checkpoint_is_refused() {
        for system in ["SF", "sales-force", "../sf", ""] {
            assert!(
                matches!(
                    source(system, None).validate(),
                    Err(CsvSourceError::BadSystem(_))
                ),
                "{system:?}"
            );
        }
    }

    #[test]
    fn empty_cells_reach_the_mapping_as_null() {
        let columns = BTreeMap::from([
            ("MailingCity".to_string(), " ".to_string()),
            ("FirstName".to_string(), "Anna".to_string()),
        ]);
        let row = mapping_row(&columns);
        assert_eq!(row["MailingCity"], Value::Null);
        assert_eq!(row["FirstName"], Value::String("Anna".into()));
    }

    #[test]
    fn only_fields_whose_canonical_value_changed_are_sent() {
        let s = source("sf", None);
        let before = BTreeMap::from([("MailingCity".to_string(), "Berlin".to_string())]);
        let same = s.changed_fields("k", &before, Some(&before)).unwrap();
        assert!(same.is_empty());
        let cleared = BTreeMap::from([("MailingCity".to_string(), String::new())]);
        assert_eq!(
            s.changed_fields("k", &cleared, Some(&before)).unwrap(),
            BTreeMap::from([("city".to_string(), Value::Null)]),
            "an emptied cell clears the field"
        );
        assert!(
            s.changed_fields("k", &cleared, None).unwrap().is_empty(),
            "a new record leaves empty fields out"
        );
        let long = "k".repeat(MAX_RECORD_ID_BYTES + 1);
        assert!(matches!(
            s.changed_fields(&long, &before, None),
            Err(RejectReason::KeyTooLong { .. })
        ));
    }
}
