//! Change capture of one REST collection: the initial load (the whole
//! collection, page by page), then polls for records changed since the
//! cursor, full listings of the ids that find deletes, and a webhook that
//! makes the next poll come at once.
//!
//! Each record version read by a poll is one transaction: an API has no
//! transactions, and a position per version (change time and id) is the
//! same text however the pages fall when it is read again.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::client::{Answer, Api, Record};
use super::config::HttpConfig;
use super::cursor::PollCursor;
use super::known::KnownIds;
use super::query::{self, Pager};
use super::record::{delete_position, load_position, version_position, Fields};
use super::webhook::Webhook;
use crate::contract::{
    Captured, CapturedTx, ConnectorError, Cursor, LoadProgress, RowChange, Source,
};

/// The capture side of the HTTP connector.
#[derive(Debug)]
pub struct HttpSource {
    api: Api,
    fields: Fields,
    page_size: u32,
    poll_interval: Duration,
    full_list_interval: Option<Duration>,
    cursor: PollCursor,
    /// `Some` while the initial load runs.
    load: Option<Load>,
    /// Transactions read and not yet handed out.
    queue: VecDeque<CapturedTx>,
    known: KnownIds,
    next_poll: Instant,
    /// The last poll filled its page: poll again without waiting.
    poll_now: bool,
    next_full_list: Option<Instant>,
    webhook: Option<Webhook>,
}

/// The initial load in progress.
#[derive(Debug)]
struct Load {
    /// Where change capture starts once the load is done; read first.
    start: Option<Option<String>>,
    pager: Pager,
    done: u64,
}

impl HttpSource {
    /// Opens capture of `cfg`'s collection: from `cursor` if one was saved,
    /// else with a full load first.
    pub async fn open(cfg: &HttpConfig, cursor: Option<Cursor>) -> Result<Self, ConnectorError> {
        let api = Api::new(cfg)?;
        let resume = cursor.is_some();
        let cursor = match cursor {
            Some(c) => PollCursor::from_value(c)?,
            None => PollCursor::default(),
        };
        let known = KnownIds::open(cfg.known_ids_file.as_deref(), resume)?;
        let webhook = match cfg.webhook_listen {
            Some(addr) => Some(Webhook::listen(addr).await?),
            None => None,
        };
        let load = (!resume).then(|| Load {
            start: None,
            pager: Pager::new(cfg.page_size),
            done: 0,
        });
        let now = Instant::now();
        Ok(HttpSource {
            api,
            fields: Fields {
                key: cfg.key.clone(),
                updated: cfg.updated_field.clone(),
                archive: cfg.archive_field.clone(),
            },
            page_size: cfg.page_size,
            poll_interval: cfg.poll_interval(),
            full_list_interval: cfg.full_list_interval(),
            cursor,
            load,
            queue: VecDeque::new(),
            known,
            next_poll: now,
            poll_now: true,
            // After a restart, list at once: deletes made while the
            // connector was away are found now, not an interval later.
            next_full_list: cfg.full_list_interval().map(|_| now),
            webhook,
        })
    }

    /// The address the webhook listens on, if one was configured.
    pub fn webhook_addr(&self) -> Option<std::net::SocketAddr> {
        self.webhook.as_ref().map(Webhook::addr)
    }

    /// Reads one page of the initial load into the queue.
    async fn load_page(&mut self) -> Result<(), ConnectorError> {
        let Some(load) = self.load.as_mut() else {
            return Ok(());
        };
        let start = match &load.start {
            Some(start) => start.clone(),
            None => {
                let start = query::newest_stamp(&self.api, &self.fields).await?;
                load.start = Some(start.clone());
                start
            }
        };
        let page = load.pager.next(&self.api, &self.fields).await?;
        let last = page.is_none() || load.pager.is_finished();
        let records = page.unwrap_or_default();
        let position = load_position(&records);
        let mut changes = Vec::with_capacity(records.len());
        for record in records {
            let Some(id) = self.fields.id(&record) else {
                warn_no_id(&self.api, &self.fields, &record);
                continue;
            };
            if !self.fields.archived(&record) {
                self.known.insert(&id);
            }
            changes.push(self.fields.captured(id, record));
        }
        load.done += changes.len() as u64;
        let progress = LoadProgress {
            done: load.done,
            total: load.pager.total,
        };
        let cursor = if last {
            self.cursor = PollCursor {
                since: start,
                seen: Default::default(),
                seq: self.cursor.seq + 1,
            };
            self.load = None;
            // The load was a full listing.
            self.next_full_list = self.full_list_interval.map(|i| Instant::now() + i);
            Some(self.cursor.to_value())
        } else {
            None
        };
        self.queue.push_back(CapturedTx {
            changes,
            cursor,
            position,
            committed_at: None,
            own_write: false,
            load: Some(progress),
        });
        Ok(())
    }

    /// Reads the records changed since the cursor into the queue, one
    /// transaction per record version.
    async fn poll(&mut self) -> Result<(), ConnectorError> {
        let (query, limit) = query::changes(&self.fields, &self.cursor, self.page_size);
        let (records, _) = self.api.list(&query).await?;
        let full = records.len() >= limit;
        let before = (self.cursor.since.clone(), self.cursor.seen.len());
        for record in records {
            let Some(id) = self.fields.id(&record) else {
                warn_no_id(&self.api, &self.fields, &record);
                continue;
            };
            let Some(stamp) = self.fields.stamp(&record).map(str::to_string) else {
                continue;
            };
            if self.cursor.has_seen(&stamp, &id) {
                continue;
            }
            self.cursor.advance(&stamp, &id);
            self.push_version(id, Some(stamp), record);
        }
        let moved = (self.cursor.since.clone(), self.cursor.seen.len()) != before;
        if full && !moved {
            tracing::warn!(
                "http {}: a full page of changes held no record with an id; waiting for the next poll",
                self.api.name()
            );
        }
        self.poll_now = full && moved;
        self.next_poll = Instant::now() + self.poll_interval;
        Ok(())
    }

    /// One record version as one transaction.
    fn push_version(&mut self, id: String, stamp: Option<String>, record: Record) {
        let position = version_position(stamp.as_deref(), &id, &record);
        let captured = self.fields.captured(id, record);
        self.cursor.seq += 1;
        match captured.change {
            RowChange::Delete => self.known.remove(&captured.record_id, self.cursor.seq),
            RowChange::Upsert(_) => self.known.insert(&captured.record_id),
        }
        self.queue.push_back(CapturedTx {
            committed_at: captured.observed_at,
            changes: vec![captured],
            cursor: Some(self.cursor.to_value()),
            position,
            own_write: false,
            load: None,
        });
    }

    /// Lists every id and compares with the known ones: a known id not
    /// listed, and confirmed gone by a `GET` (a listing by pages can miss a
    /// record when others are deleted meanwhile), is a delete; a listed id
    /// not known (a record without a change time, or one whose change time
    /// went backwards) is captured as it is.
    async fn full_list(&mut self) -> Result<(), ConnectorError> {
        let mut pager = Pager::new(self.page_size);
        let mut listed = HashSet::new();
        let mut unknown: Vec<(String, Record)> = Vec::new();
        while let Some(page) = pager.next(&self.api, &self.fields).await? {
            for record in page {
                let Some(id) = self.fields.id(&record) else {
                    warn_no_id(&self.api, &self.fields, &record);
                    continue;
                };
                if self.fields.archived(&record) {
                    continue;
                }
                if self.known.has_baseline() && !self.known.contains(&id) {
                    unknown.push((id.clone(), record));
                }
                listed.insert(id);
            }
        }
        if !self.known.has_baseline() {
            self.known.set_baseline(listed);
        } else {
            let mut gone = Vec::new();
            for id in self.known.missing_from(&listed) {
                match self.api.get(&id).await {
                    Ok(Answer::NotFound) => gone.push(id),
                    Ok(Answer::Done(record)) if self.fields.archived(&record) => gone.push(id),
                    Ok(Answer::Done(_)) => {}
                    // An id the API cannot address is not listed either:
                    // it is gone as far as this connector can tell.
                    Err(ConnectorError::Record { .. }) => gone.push(id),
                    Err(e) => return Err(e),
                }
            }
            let at = OffsetDateTime::now_utc();
            for id in gone {
                self.cursor.seq += 1;
                self.known.remove(&id, self.cursor.seq);
                self.queue.push_back(CapturedTx {
                    position: delete_position(&id, at),
                    changes: vec![Captured {
                        record_id: id,
                        change: RowChange::Delete,
                        observed_at: None,
                    }],
                    cursor: Some(self.cursor.to_value()),
                    committed_at: Some(at),
                    own_write: false,
                    load: None,
                });
            }
            for (id, record) in unknown {
                let stamp = self.fields.stamp(&record).map(str::to_string);
                self.push_version(id, stamp, record);
            }
        }
        self.next_full_list = self.full_list_interval.map(|i| Instant::now() + i);
        Ok(())
    }

    /// Waits for the next poll time, the next full listing, or a webhook
    /// call, whichever comes first.
    async fn wait(&mut self) {
        let mut until = self.next_poll;
        if let Some(list) = self.next_full_list {
            until = until.min(list);
        }
        match &self.webhook {
            Some(webhook) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = webhook.notified() => self.poll_now = true,
                }
            }
            None => tokio::time::sleep_until(until).await,
        }
    }

    async fn step(&mut self) -> Result<(), ConnectorError> {
        if self.load.is_some() {
            return self.load_page().await;
        }
        let now = Instant::now();
        if self.next_full_list.is_some_and(|at| at <= now) {
            return self.full_list().await;
        }
        if self.poll_now || self.next_poll <= now {
            return self.poll().await;
        }
        self.wait().await;
        Ok(())
    }
}

fn warn_no_id(api: &Api, fields: &Fields, record: &Record) {
    // The record's values stay out of the log; its change time is no
    // customer value and helps find it.
    tracing::warn!(
        "http {}: a record without a usable `{}` (a string or a number) is skipped (changed at {:?})",
        api.name(),
        fields.key,
        fields.stamp(record)
    );
}

impl Source for HttpSource {
    async fn next(&mut self) -> Result<Option<CapturedTx>, ConnectorError> {
        loop {
            if let Some(tx) = self.queue.pop_front() {
                return Ok(Some(tx));
            }
            self.step().await?;
        }
    }

    async fn confirm(&mut self, cursor: &Cursor) -> Result<(), ConnectorError> {
        let cursor = PollCursor::from_value(cursor.clone())?;
        self.known.confirm(cursor.seq)
    }

    fn has_buffered(&self) -> bool {
        !self.queue.is_empty()
    }
}
