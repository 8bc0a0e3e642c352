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
