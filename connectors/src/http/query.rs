//! The list queries, in the json-server dialect (`_page`, `_limit`,
//! `_sort`, `_order`, `<field>_gte`), which many simple REST APIs follow.
//! An API with another dialect needs only this module changed.

use super::client::{Api, Record};
use super::cursor::PollCursor;
use super::record::Fields;
use crate::contract::ConnectorError;

type Query = Vec<(String, String)>;

/// Records changed at or after `cursor.since`, oldest first (ties by id).
/// Enough are asked for that, once those already seen at `since` are
/// dropped, `page_size` remain when there are that many.
pub(crate) fn changes(fields: &Fields, cursor: &PollCursor, page_size: u32) -> (Query, usize) {
    let limit = page_size as usize + cursor.seen.len();
    let query = vec![
        // An empty lower bound before the first change: it still leaves
        // out records without a change time, which cannot be followed.
        (
            format!("{}_gte", fields.updated),
            cursor.since.clone().unwrap_or_default(),
        ),
        (
            "_sort".to_string(),
            format!("{},{}", fields.updated, fields.key),
        ),
        ("_order".to_string(), "asc,asc".to_string()),
        ("_limit".to_string(), limit.to_string()),
    ];
    (query, limit)
}

/// The newest change time in the collection, read before the initial load:
/// change capture starts from there, so a change made while the load runs
/// is read again by the first poll rather than missed.
pub(crate) async fn newest_stamp(
    api: &Api,
    fields: &Fields,
) -> Result<Option<String>, ConnectorError> {
    let query = vec![
        (format!("{}_gte", fields.updated), String::new()),
        ("_sort".to_string(), fields.updated.clone()),
        ("_order".to_string(), "desc".to_string()),
        ("_limit".to_string(), "1".to_string()),
    ];
    let (records, _) = api.list(&query).await?;
    Ok(records
        .first()
        .and_then(|r| fields.stamp(r))
        .map(str::to_string))
}

/// Pages through the whole collection in id order.
#[derive(Debug)]
pub(crate) struct Pager {
    next_page: u32,
    page_size: u32,
    finished: bool,
    /// The API's count of all records, from the first page's
    /// `X-Total-Count`.
    pub(crate) total: Option<u64>,
    /// The previous page's first record, to notice an API that ignores
    /// `_page` and sends the same page again.
    previous_first: Option<Record>,
}

impl Pager {
    pub(crate) fn new(page_size: u32) -> Self {
        Pager {
            next_page: 1,
            page_size,
            finished: false,
            total: None,
            previous_first: None,
        }
    }

    /// Whether the last page has been read.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next page, or `None` after the last.
    pub(crate) async fn next(
        &mut self,
        api: &Api,
        fields: &Fields,
    ) -> Result<Option<Vec<Record>>, ConnectorError> {
        if self.finished {
            return Ok(None);
        }
        let query = vec![
            ("_page".to_string(), self.next_page.to_string()),
            ("_limit".to_string(), self.page_size.to_string()),
            ("_sort".to_string(), fields.key.clone()),
            ("_order".to_string(), "asc".to_string()),
        ];
        let (records, total) = api.list(&query).await?;
        if self.next_page == 1 {
            self.total = total;
        }
        // A short page is the last; so is a longer one (the API ignores
        // `_limit` and sent everything).
        self.finished = records.len() != self.page_size as usize;
        self.next_page = self.next_page.saturating_add(1);
        if !records.is_empty() && records.first() == self.previous_first.as_ref() {
            return Err(ConnectorError::Fatal(format!(
                "GET {}: page {} repeats the page before; the API does not page with _page and _limit",
                api.name(),
                self.next_page - 1
            )));
        }
        self.previous_first = records.first().cloned();
        Ok(Some(records))
    }
}
