//! The HTTP (REST) connector: one collection of a REST API, followed by
//! polling for records whose change time (`updatedAt`) moved past the
//! cursor, with deletes found by comparing full listings of the ids, and
//! written back with `POST`, `PATCH`/`PUT` and `DELETE` (or an archive
//! flag).
//!
//! Modules, one job each:
//! - `config`: the `[http]` section ([`HttpConfig`]).
//! - `client`: requests to the collection, and which failures mean "the
//!   API is away", "this record was refused" or "the config is wrong".
//! - `query`: the list queries in the json-server dialect, and paging.
//! - `record`: a record's id, change time, archive flag and position text.
//! - `cursor`: the change cursor ([`PollCursor`]).
//! - `known`: the ids known to exist, kept between runs, for deletes.
//! - `source`: capture ([`HttpSource`]): load, polls, full listings.
//! - `webhook`: the endpoint that makes the source poll at once.
//! - `sink`: write-back ([`HttpSink`]).
//!
//! An API cannot mark the connector's own writes, so captured transactions
//! are never `own_write`: the runner's echo check by content stops echoes.

mod client;
mod config;
mod cursor;
mod known;
mod query;
mod record;
mod sink;
mod source;
mod webhook;

pub use config::{HttpConfig, UpdateMethod, MAX_PAGE_SIZE};
pub use cursor::PollCursor;
pub use sink::HttpSink;
pub use source::HttpSource;
pub use webhook::WEBHOOK_PATH;

use crate::contract::{Connector, ConnectorError, Cursor};

impl Connector for HttpConfig {
    type Source = HttpSource;
    type Sink = HttpSink;

    async fn open_source(&self, cursor: Option<Cursor>) -> Result<HttpSource, ConnectorError> {
        HttpSource::open(self, cursor).await
    }

    async fn open_sink(&self) -> Result<HttpSink, ConnectorError> {
        HttpSink::open(self)
    }
}
