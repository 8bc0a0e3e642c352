//! Connectors: capture changes in business systems and apply golden updates back.
//!
//! Layout:
//! - `contract`: what a connector implements (a `Source` that captures
//!   transactions in the system's columns, a `Sink` that applies writes)
//!   and the types between it and the runner.
//! - `runner`: what every connector does the same way around its Source
//!   and Sink: mapping, event ids, publishing, cursor saving, write-back
//!   from the hub's golden updates, echo suppression, retries, metrics.
//! - `config`: the connector file of `mdhub connector run` (common settings
//!   plus one of `[postgres]`, `[mysql]`, `[http]`, `[csv]`); `presets`:
//!   the mapping presets built in (Odoo `res_partner`, SuiteCRM `contacts`).
//! - One folder per connector:
//!   - `postgres`: logical replication with pgoutput from a slot whose
//!     exported snapshot gives the initial load; write-back in transactions
//!     marked with a replication origin.
//!   - `mysql`: MariaDB row binlog, a consistent-snapshot load with its
//!     binlog position; write-back with `skip_replication`; SuiteCRM's
//!     primary e-mail relation.
//!   - `http`: a REST collection followed by polls on its `updatedAt`,
//!     deletes found by full listings, a webhook that makes the next poll
//!     come at once, write-back by POST/PATCH/PUT/DELETE.
//!   - `csv`: a drop folder of exports (Salesforce, HubSpot, generic)
//!     captured file by file against the last snapshot, rejected rows
//!     reported by line; golden updates written back as import files.
//!   - `sample`: the in-process systems of `mdhub demo` and of the runner's
//!     own tests.
//! - `mapping`: one system's columns ⇄ the model's canonical fields, declared
//!   in TOML, with transforms that work both ways.
//! - `publish`: the JetStream publisher every connector and the hub use to
//!   put a batch of messages on a stream durably: ADR-50 atomic batches on
//!   servers that support them (one source transaction = one batch),
//!   pipelined single publishes with acks otherwise.
//! - `checkpoint`: durable cursors of change capture, one file per
//!   connector, replaced atomically (temp file, fsync, rename).
//! - `connect`: NATS connection settings (URLs, credentials read from a file
//!   or the environment, TLS, inbox prefix) shared by the hub and connectors.
//!
//! docs/specs/connector.md is the contract every connector is built to.

pub mod checkpoint;
pub mod config;
pub mod connect;
pub mod contract;
pub mod csv;
pub mod http;
pub mod mapping;
pub mod mysql;
pub mod postgres;
pub mod presets;
pub mod publish;
pub mod runner;
pub mod sample;
