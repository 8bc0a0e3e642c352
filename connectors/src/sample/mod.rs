//! The sample systems of `mdhub demo` and of the runner's own tests.
//!
//! - `system`: `SampleSystem`, the demo's table of rows that turns an edit
//!   into a change event and an applied golden update into its echo, with
//!   no runner around it.
//! - `table`: `SampleTable`, an in-memory table with a change log, behind
//!   the connector contract (a `Source` reading the log from a cursor, a
//!   `Sink` writing rows marked as the connector's own), so the runner can
//!   be run and tested without a database.

mod system;
mod table;

pub use system::{Row, SampleSystem};
pub use table::{SampleConnector, SampleTable};
