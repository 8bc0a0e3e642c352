//! The CSV connector behind the contract: a drop folder of exports as the
//! [`Source`](crate::contract::Source) (`capture`), write-back files for the
//! system's importer as the [`Sink`](crate::contract::Sink) (`sink`).
//!
//! The two halves share one thing: the snapshot of the last imported
//! export, which the sink needs to tell what the system holds (for
//! `fetch`, and for the row the system will export after importing a
//! write-back file, so that its echo is recognized). The runner's cursor
//! holds it too, but that file is the runner's; the source keeps its own
//! copy in the outbox's state folder ([`SnapshotCopy`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::capture::CsvFileSource;
use super::config::{CsvConfig, Settings};
use super::diff::Snapshot;
use super::sink::{CsvSink, SinkMemory};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::contract::{Connector, ConnectorError, Cursor};

/// The checkpoint name of the sink's copy of the snapshot.
const COPY_NAME: &str = "snapshot";

/// The CSV connector to one system's export folders.
#[derive(Debug, Clone)]
pub struct CsvConnector {
    settings: Arc<Settings>,
    copy: Arc<SnapshotCopy>,
    memory: Arc<Mutex<SinkMemory>>,
}

impl CsvConnector {
    /// A connector for a checked configuration; `Fatal` names what is wrong
    /// with it. Touches no folder yet.
    pub fn new(config: &CsvConfig) -> Result<Self, ConnectorError> {
        let settings = Arc::new(
            config
                .check()
                .map_err(|e| ConnectorError::Fatal(format!("[csv] {e}")))?,
        );
        Ok(CsvConnector {
            copy: Arc::new(SnapshotCopy::new(&settings)),
            settings,
            memory: Arc::default(),
        })
    }
}

impl Connector for CsvConnector {
    type Source = CsvFileSource;
    type Sink = CsvSink;

    async fn open_source(&self, cursor: Option<Cursor>) -> Result<CsvFileSource, ConnectorError> {
        CsvFileSource::open(self.settings.clone(), self.copy.clone(), cursor)
    }

    async fn open_sink(&self) -> Result<CsvSink, ConnectorError> {
        CsvSink::open(
            self.settings.clone(),
            self.copy.clone(),
            self.memory.clone(),
        )
    }
}

/// The snapshot of the last imported export, as the sink reads it: in
/// memory once the source confirmed a file in this process, else from the
/// copy the source saved in the outbox's state folder.
#[derive(Debug)]
pub(crate) struct SnapshotCopy {
    dir: std::path::PathBuf,
    current: Mutex<Option<Arc<Snapshot>>>,
    /// Moves on with every snapshot set, so the sink knows when to look at
    /// its pending writes again.
    generation: AtomicU64,
}

impl SnapshotCopy {
    fn new(settings: &Settings) -> Self {
        SnapshotCopy {
            dir: settings.state_dir(),
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Snapshot>>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> Result<CheckpointStore, ConnectorError> {
        CheckpointStore::open(&self.dir).map_err(|e| ConnectorError::Unavailable(e.to_string()))
    }

    /// The source imported up to `snapshot` and the runner saved it: saved
    /// (atomically) before it is shown, so the copy on disk is never older
    /// than what the sink used.
    pub(crate) fn set(&self, snapshot: Arc<Snapshot>) -> Result<(), ConnectorError> {
        self.store()?
            .save(COPY_NAME, &*snapshot)
            .map_err(|e| ConnectorError::Unavailable(e.to_string()))?;
        *self.lock() = Some(snapshot);
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The last snapshot and its generation; an empty one before the first
    /// import.
    pub(crate) fn get(&self) -> Result<(u64, Arc<Snapshot>), ConnectorError> {
        let mut current = self.lock();
        if current.is_none() {
            let saved = match self.store()?.load::<Snapshot>(COPY_NAME) {
                Ok(saved) => saved,
                // A copy that cannot be read only costs the sink its view
                // of the system until the next import replaces it.
                Err(e @ CheckpointError::Corrupt { .. }) => {
                    tracing::warn!("the CSV sink's snapshot copy is ignored: {e}");
                    None
                }
                Err(e) => return Err(ConnectorError::Unavailable(e.to_string())),
            };
            if let Some(s) = saved {
                *current = Some(Arc::new(s));
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
        }
        let snapshot = current.clone().unwrap_or_default();
        Ok((self.generation.load(Ordering::SeqCst), snapshot))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Value};

    use super::*;
    use crate::contract::{Sink, Write, WriteOp};
    use crate::csv::config::LayoutConfig;
    use crate::csv::layout::{CsvLayout, DateFormat};

    fn connector(dir: &std::path::Path) -> CsvConnector {
        let mut layout = CsvLayout::generic("Nr");
        layout.delimiter = ';';
        layout.dates.insert(
            "Geboren".into(),
            DateFormat::Date {
                pattern: "[day].[month].[year]".into(),
            },
        );
        CsvConnector::new(&CsvConfig {
            inbox: dir.join("in"),
            done: dir.join("done"),
            outbox: dir.join("out"),
            layout: LayoutConfig::Inline(layout),
            modified_column: None,
            poll_interval: 1.0,
        })
        .expect("a valid configuration")
    }

    fn row(pairs: &[(&str, Value)]) -> crate::contract::Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_refused_write_does_not_stop_the_batch_and_the_image_is_the_next_export() {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = connector(dir.path());
        let cells = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut snapshot = Snapshot::default();
        for key in ["a \"1\"", "b"] {
            snapshot.rows.insert(
                key.into(),
                cells(&[("Nr", key), ("Ort", "Bonn"), ("Geboren", "")]),
            );
        }
        c.copy.set(Arc::new(snapshot)).expect("copy saved");
        let mut sink = c.open_sink().await.expect("sink");
        let update = |id: &str, r| Write {
            record_id: Some(id.into()),
            op: WriteOp::Upsert(r),
        };
        let writes = [
            update(
                "a \"1\"",
                row(&[
                    ("Ort", json!("Köln; Süd")),
                    ("Geboren", json!("1979-12-31")),
                ]),
            ),
            update(
                "b",
                row(&[("Ort", json!(["no"])), ("Geboren", json!("31.12."))]),
            ),
            Write {
                record_id: None,
                op: WriteOp::Upsert(row(&[("Ort", json!("Ulm")), ("Geboren", Value::Null)])),
            },
            Write {
                record_id: Some("b".into()),
                op: WriteOp::Retire,
            },
        ];
        let results = sink.apply(&writes).await.expect("applied");
        assert_eq!(results.len(), 4);
        let image = results[0].as_ref().expect("applied").image.clone();
        assert_eq!(
            image,
            Some(row(&[
                ("Geboren", json!("1979-12-31")),
                ("Nr", json!("a \"1\"")),
                ("Ort", json!("Köln; Süd")),
            ])),
            "the row the next export reads, dates in ISO"
        );
        match &results[1] {
            Err(ConnectorError::Record { record_id, reason }) => {
                assert_eq!(record_id, "b");
                assert!(reason.contains("column Ort") && reason.contains("column Geboren"));
                assert!(!reason.contains("31.12."), "no value in {reason}");
            }
            other => panic!("a refused write: {other:?}"),
        }
        let inserted = results[2].as_ref().expect("inserted");
        assert!(inserted.record_id.starts_with("mdhub-"));
        assert_eq!(
            inserted.image,
            Some(row(&[
                ("Nr", json!(inserted.record_id)),
                ("Ort", json!("Ulm"))
            ])),
            "a new record's empty cells are left out, as its capture leaves them"
        );
        assert_eq!(results[3].as_ref().expect("retired").image, None);

        let mut files: Vec<(String, String)> = std::fs::read_dir(dir.path().join("out"))
            .expect("outbox")
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((name, text))
            })
            .collect();
        files.sort();
        let kinds: Vec<&str> = files
            .iter()
            .map(|(n, _)| n.rsplit('-').next().unwrap_or_default())
            .collect();
        assert_eq!(kinds, ["update.csv", "insert.csv", "delete.csv"]);
        assert_eq!(
            files[0].1, "Nr;Geboren;Ort\n\"a \"\"1\"\"\";31.12.1979;\"Köln; Süd\"\n",
            "the layout's delimiter and date format"
        );
        assert_eq!(
            files[1].1,
            format!("Nr;Geboren;Ort\n{};;Ulm\n", inserted.record_id)
        );
        assert_eq!(files[2].1, "Nr\nb\n");

        assert_eq!(sink.fetch("b").await.expect("fetch"), None, "retired");
        let a = sink.fetch("a \"1\"").await.expect("fetch").expect("known");
        assert_eq!(
            a["Ort"],
            json!("Köln; Süd"),
            "the write, before the system exported it"
        );
        assert_eq!(sink.fetch("unknown").await.expect("fetch"), None);
        // A new sink (a restart) reads the snapshot copy from disk.
        let fresh = connector(dir.path());
        let mut sink = fresh.open_sink().await.expect("sink");
        let b = sink.fetch("b").await.expect("fetch").expect("known");
        assert_eq!(b["Ort"], json!("Bonn"));
    }
}
