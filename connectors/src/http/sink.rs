//! Write-back to one REST collection: an insert is a `POST` (the API gives
//! the id), an update a `PATCH` of the written fields (or a `PUT` of the
//! record read and merged), a retire a `DELETE` or a `PATCH` of the archive
//! flag. Every write returns the record as the API answered it, for the
//! runner's echo check by content.
//!
//! An API has no transactions: the writes of a batch are sent one by one.
//! When the API goes away in the middle, the batch fails as a whole and the
//! runner sends it again; updates and retires are idempotent, an insert
//! sent again makes a second record.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::client::{Answer, Api, Record};
use super::config::{HttpConfig, UpdateMethod};
use super::record::{to_row, Fields};
use crate::contract::{Applied, ConnectorError, Row, Sink, Write, WriteOp};

/// The write-back side of the HTTP connector.
#[derive(Debug)]
pub struct HttpSink {
    api: Api,
    fields: Fields,
    update_method: UpdateMethod,
}

impl HttpSink {
    /// A sink to `cfg`'s collection. Sends nothing until the first write.
    pub fn open(cfg: &HttpConfig) -> Result<Self, ConnectorError> {
        Ok(HttpSink {
            api: Api::new(cfg)?,
            fields: Fields {
                key: cfg.key.clone(),
                updated: cfg.updated_field.clone(),
                archive: cfg.archive_field.clone(),
            },
            update_method: cfg.update_method,
        })
    }

    async fn apply_one(&self, write: &Write) -> Result<Applied, ConnectorError> {
        match (&write.record_id, &write.op) {
            (None, WriteOp::Upsert(row)) => self.insert(row).await,
            (Some(id), WriteOp::Upsert(row)) => self.update(id, row).await,
            (Some(id), WriteOp::Retire) => self.retire(id).await,
            (None, WriteOp::Retire) => Err(ConnectorError::Record {
                record_id: String::new(),
                reason: format!("{}: a retire without a record id", self.api.name()),
            }),
        }
    }

    async fn insert(&self, row: &Row) -> Result<Applied, ConnectorError> {
        let body: Record = row.clone().into_iter().collect();
        let record = self.api.create(&body).await?;
        let record_id = self
            .fields
            .id(&record)
            .ok_or_else(|| ConnectorError::Record {
                record_id: String::new(),
                reason: format!(
                    "POST {}: the created record has no `{}` (a string or a number)",
                    self.api.name(),
                    self.fields.key
                ),
            })?;
        Ok(Applied {
            record_id,
            image: Some(to_row(record)),
            unchanged: false,
        })
    }

    async fn update(&self, id: &str, row: &Row) -> Result<Applied, ConnectorError> {
        // The id is the address, never a field to change.
        let mut body: Record = row
            .iter()
            .filter(|(k, _)| **k != self.fields.key)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let method = match self.update_method {
            UpdateMethod::Patch => Method::PATCH,
            UpdateMethod::Put => {
                let Answer::Done(mut current) = self.api.get(id).await? else {
                    return Err(self.api.record_error("GET", id, StatusCode::NOT_FOUND));
                };
                current.append(&mut body);
                body = current;
                Method::PUT
            }
        };
        match self.api.update(method.clone(), id, &body).await? {
            Answer::Done(record) => Ok(Applied {
                record_id: id.to_string(),
                image: Some(to_row(record)),
                unchanged: false,
            }),
            Answer::NotFound => {
                Err(self
                    .api
                    .record_error(method.as_str(), id, StatusCode::NOT_FOUND))
            }
        }
    }

    /// A retire of a record that is not there is done: it may be the second
    /// send of a batch whose first send the API applied.
    async fn retire(&self, id: &str) -> Result<Applied, ConnectorError> {
        let image = match &self.fields.archive {
            Some(flag) => {
                let body: Record = [(flag.clone(), Value::Bool(true))].into_iter().collect();
                match self.api.update(Method::PATCH, id, &body).await? {
                    Answer::Done(record) => Some(to_row(record)),
                    Answer::NotFound => None,
                }
            }
            None => {
                self.api.delete(id).await?;
                None
            }
        };
        Ok(Applied {
            record_id: id.to_string(),
            image,
            unchanged: false,
        })
    }
}

impl Sink for HttpSink {
    async fn apply(
        &mut self,
        writes: &[Write],
    ) -> Result<Vec<Result<Applied, ConnectorError>>, ConnectorError> {
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            match self.apply_one(write).await {
                // The API is away, or no write can succeed: the batch as a whole.
                Err(e @ (ConnectorError::Unavailable(_) | ConnectorError::Fatal(_))) => {
                    return Err(e)
                }
                result => results.push(result),
            }
        }
        Ok(results)
    }

    async fn fetch(&mut self, record_id: &str) -> Result<Option<Row>, ConnectorError> {
        match self.api.get(record_id).await? {
            Answer::Done(record) => Ok(Some(to_row(record))),
            Answer::NotFound => Ok(None),
        }
    }
}
