//! An in-memory table with a change log, behind the connector contract.
//!
//! Every change (an edit by a "user" through `SampleTable`'s methods, or a
//! write by the connector's `Sink`) is appended to the log with a sequence
//! number; the `Source` reads the log from a cursor (the next sequence
//! number) and reports the connector's own writes as `own_write`, as a
//! database with replication origins would. `set_available(false)`
//! simulates the system going away: every call then fails with
//! `Unavailable`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::Notify;

use crate::contract::{
    Applied, Captured, CapturedTx, Connector, ConnectorError, Cursor, LoadProgress, Row, RowChange,
    Sink, Source, Write, WriteOp,
};

#[derive(Debug, Default)]
struct Inner {
    rows: BTreeMap<String, Row>,
    /// (record id, change, written by the connector).
    log: Vec<(String, RowChange, bool)>,
    next_id: u64,
    available: bool,
}

/// A shared handle on one table.
#[derive(Debug, Clone)]
pub struct SampleTable {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Default for SampleTable {
    fn default() -> Self {
        SampleTable {
            inner: Arc::new(Mutex::new(Inner {
                available: true,
                ..Inner::default()
            })),
            changed: Arc::new(Notify::new()),
        }
    }
}

impl SampleTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A user sets columns of a record (inserting it if new).
    pub fn edit(&self, record_id: &str, columns: &[(&str, Value)]) {
        let mut t = self.lock();
        let row = t.rows.entry(record_id.to_string()).or_default();
        for (k, v) in columns {
            row.insert(k.to_string(), v.clone());
        }
        let row = row.clone();
        t.log
            .push((record_id.to_string(), RowChange::Upsert(row), false));
        drop(t);
        self.changed.notify_waiters();
    }

    /// A user deletes a record.
    pub fn delete(&self, record_id: &str) {
        let mut t = self.lock();
        t.rows.remove(record_id);
        t.log
            .push((record_id.to_string(), RowChange::Delete, false));
        drop(t);
        self.changed.notify_waiters();
    }

    pub fn row(&self, record_id: &str) -> Option<Row> {
        self.lock().rows.get(record_id).cloned()
    }

    pub fn rows(&self) -> BTreeMap<String, Row> {
        self.lock().rows.clone()
    }

    /// Changes logged so far (user edits and connector writes).
    pub fn log_len(&self) -> usize {
        self.lock().log.len()
    }

    pub fn set_available(&self, available: bool) {
        self.lock().available = available;
        self.changed.notify_waiters();
    }

    fn check(&self) -> Result<MutexGuard<'_, Inner>, ConnectorError> {
        let t = self.lock();
        if t.available {
            Ok(t)
        } else {
            Err(ConnectorError::Unavailable(
                "the sample table is away".into(),
            ))
        }
    }
}

/// The connector over one sample table.
#[derive(Debug, Clone, Default)]
pub struct SampleConnector {
    pub table: SampleTable,
}

pub struct SampleSource {
    table: SampleTable,
    /// Next log entry to read.
    next: usize,
    /// Rows of the initial load not yet handed out.
    load: Option<(Vec<(String, Row)>, usize)>,
}

/// Rows per slice of the initial load.
const LOAD_SLICE: usize = 100;

impl Source for SampleSource {
    async fn next(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
        if let Some((rows, done)) = &mut self.load {
            let _t = self.table.check()?;
            let total = rows.len();
            let slice: Vec<Captured> = rows
                .iter()
                .skip(*done)
                .take(LOAD_SLICE)
                .map(|(id, row)| Captured {
                    record_id: id.clone(),
                    change: RowChange::Upsert(row.clone()),
                    observed_at: None,
                })
                .collect();
            let position = format!("load:{done}");
            *done += slice.len();
            let finished = *done >= total;
            let progress = LoadProgress {
                done: *done as u64,
                total: Some(total as u64),
            };
            // The last slice carries the cursor: the load is complete.
            let cursor = finished.then(|| Value::from(self.next as u64));
            if finished {
                self.load = None;
            }
            return Ok(Some(CapturedTx {
                changes: slice,
                cursor,
                position,
                committed_at: None,
                own_write: false,
                load: Some(progress),
            }));
        }
        loop {
            let notified = self.table.changed.notified();
            {
                let t = self.table.check()?;
                if let Some((id, change, own)) = t.log.get(self.next) {
                    let tx = CapturedTx {
                        changes: vec![Captured {
                            record_id: id.clone(),
                            change: change.clone(),
                            observed_at: None,
                        }],
                        cursor: Some(Value::from(self.next as u64 + 1)),
                        position: format!("log:{}", self.next),
                        committed_at: Some(time::OffsetDateTime::now_utc()),
                        own_write: *own,
                        load: None,
                    };
                    self.next += 1;
                    return Ok(Some(tx));
                }
            }
            notified.await;
        }
    }

    async fn confirm(&mut self, _cursor: &Cursor) -> Result<(), ConnectorError> {
        Ok(())
    }
}

pub struct SampleSink {
    table: SampleTable,
}

impl Sink for SampleSink {
    async fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut t = self.table.check()?;
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            let record_id = match &w.record_id {
                Some(id) => id.clone(),
                None => {
                    t.next_id += 1;
                    format!("new-{}", t.next_id)
                }
            };
            match &w.op {
                WriteOp::Upsert(columns) => {
                    let row = t.rows.entry(record_id.clone()).or_default();
                    row.extend(columns.clone());
                    let row = row.clone();
                    t.log
                        .push((record_id.clone(), RowChange::Upsert(row.clone()), true));
                    results.push(Ok(Applied {
                        record_id,
                        image: Some(row),
                        unchanged: false,
                    }));
                }
                WriteOp::Retire => {
                    if t.rows.remove(&record_id).is_none() {
                        results.push(Err(ConnectorError::Record {
                            record_id,
                            reason: "no such record".into(),
                        }));
                        continue;
                    }
                    t.log.push((record_id.clone(), RowChange::Delete, true));
                    results.push(Ok(Applied {
                        record_id,
                        image: None,
                        unchanged: false,
                    }));
                }
            }
        }
        drop(t);
        self.table.changed.notify_waiters();
        Ok(results)
    }

    async fn fetch(&mut self, record_id: &str) -> Result<Option<Row>, ConnectorError> {
        Ok(self.table.check()?.rows.get(record_id).cloned())
    }
}

impl Connector for SampleConnector {
    type Source = SampleSource;
    type Sink = SampleSink;

    async fn open_source(&self, cursor: Option<Cursor>) -> Result<SampleSource, ConnectorError> {
        let t = self.table.check()?;
        let (next, load) = match cursor {
            Some(c) => (
                c.as_u64()
                    .ok_or_else(|| ConnectorError::Fatal("the cursor is not a number".into()))?
                    as usize,
                None,
            ),
            // The load reads the rows and the log position in one lock: a
            // consistent snapshot.
            None => (
                t.log.len(),
                Some((
                    t.rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    0,
                )),
            ),
        };
        drop(t);
        Ok(SampleSource {
            table: self.table.clone(),
            next,
            load,
        })
    }

    async fn open_sink(&self) -> Result<SampleSink, ConnectorError> {
        let _t = self.table.check()?;
        Ok(SampleSink {
            table: self.table.clone(),
        })
    }
}
