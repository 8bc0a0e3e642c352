//! mdhub-hub: the hub's pipeline core and the adapters around it.
//!
//! Layout, in the order data flows:
//! - `hub`: the pipeline core. `Hub::ingest` validates a batch (schema crate),
//!   appends it to the `log` and hands new entries to `state`.
//! - `log`: the append-only event log in redb: sequence numbers, an index by
//!   event id (dedup at any distance), a hash chain.
//! - derivation, pure, is the crate mdhub-derive, re-exported here under
//!   its module names: `entry` (what a log entry holds), `state`
//!   (derivation), `resolve` (matching), `golden` (field values), `steward`
//!   (steward actions), `ids`, and `store` (the tables derived state is kept
//!   in, behind a trait);
//! - `redb_store`: those tables on disk, in one redb file.
//! - `nats_bus`: the NATS JetStream adapter: streams, the durable consumer,
//!   ack after flush, publishing outbound and DLQ messages.
//! - `memory_bus`: the in-process adapter for `demo` and single-process runs.
//! - `api`: the HTTP API (axum) over the state, with bearer-token roles.
//! - `audit`: signed checkpoints of the log's head, and the auditor's check
//!   of a log against its chain and those checkpoints.
//! - `config`: the hub's TOML configuration.
//! - `serve`: `mdhub serve`, wiring the NATS adapter and the API together.
//! - `connector_run`: `mdhub connector run`, one connector (crate
//!   mdhub-connectors) as a process with its `/metrics` endpoint.
//! - `demo`: `mdhub demo`.

pub mod api;
pub mod audit;
pub mod config;
pub mod connector_run;
pub mod demo;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod hub;
pub mod log;
pub mod memory_bus;
pub mod nats_bus;
pub mod redb_store;
pub mod serve;

pub use mdhub_derive::{entry, golden, ids, resolve, state, steward, store};
