//! The CSV connector: business systems that exchange data as CSV exports
//! and imports (Salesforce Data Loader, HubSpot, any other with a key
//! column), behind the connector contract (`crate::contract`).
//!
//! Reading exports:
//! - `layout`: what an export looks like ([`CsvLayout`]) and the presets.
//! - `header`: matching the file's header line to the layout's columns.
//! - `dates`: date columns to ISO 8601 and back.
//! - `lines`: physical line numbers of records.
//! - `read`: a file → accepted [`Row`]s and [`RejectedRow`]s with line and
//!   reason ([`read_export`]).
//! - `diff`: the previous [`Snapshot`] and a new [`Export`] → the
//!   [`Change`]s and the next snapshot ([`diff`]).
//!
//! The connector ([`CsvConnector`], configured by [`CsvConfig`]):
//! - `config`: the `[csv]` section: folders, layout, poll interval.
//! - `inbox`: the drop folder, file by file, and `done`.
//! - `capture`: the [`CsvFileSource`]: each export one captured
//!   transaction, the snapshot as the cursor.
//! - `outbox`: write-back files written whole or not at all.
//! - `sink`: the [`CsvSink`]: golden updates as update, insert and delete
//!   files for the system's importer.
//! - `cells`: CSV cells as rows, one rule for both halves.
//! - `connector`: the two halves and the snapshot they share.

mod capture;
mod cells;
mod config;
mod connector;
mod dates;
mod diff;
mod header;
mod inbox;
mod layout;
mod lines;
mod outbox;
mod read;
mod sink;

pub use capture::CsvFileSource;
pub use config::{CsvConfig, LayoutConfig, Preset, PresetLayout};
pub use connector::CsvConnector;
pub use diff::{diff, Change, Diff, Snapshot};
pub use layout::{CsvLayout, DateFormat, LayoutError};
pub use read::{read_export, CsvError, Export, RejectedRow, Row, RowError};
pub use sink::CsvSink;
