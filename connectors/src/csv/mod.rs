//! CSV exports of business systems (Salesforce Data Loader, HubSpot, any
//! other with a key column), at the level of the system's own columns.
//!
//! - `layout`: what an export looks like ([`CsvLayout`]) and the presets.
//! - `header`: matching the file's header line to the layout's columns.
//! - `dates`: normalizing date columns to ISO 8601.
//! - `lines`: physical line numbers of records.
//! - `read`: a file → accepted [`Row`]s and [`RejectedRow`]s with line and
//!   reason ([`read_export`]).
//! - `diff`: the previous [`Snapshot`] and a new [`Export`] → the
//!   [`Change`]s to emit and the next snapshot ([`diff`]).
//! - `source`: one system's exports imported as `ChangeEvent`s published on
//!   the bus, the snapshot saved after the acks ([`CsvSource`]).

mod dates;
mod diff;
mod header;
mod layout;
mod lines;
mod read;
pub mod source;

pub use diff::{diff, Change, Diff, Snapshot};
pub use layout::{CsvLayout, DateFormat, LayoutError};
pub use read::{read_export, CsvError, Export, RejectedRow, Row, RowError};
pub use source::{CsvSource, CsvSourceError, ImportReport, RejectReason, RejectedImportRow};
