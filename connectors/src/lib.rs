//! Connectors: capture changes in business systems and apply golden updates back.
//!
//! Layout:
//! - `contract`: what a connector implements (a `Source` that captures
//!   transactions in the system's columns, a `Sink` that applies writes)
//!   and the types between it and the runner.
//! - `checkpoint`: durable cursors of change capture, one file per
//!   connector, replaced atomically (temp file, fsync, rename).
//! - `connect`: NATS connection settings (URLs, credentials read from a file
//!   or the environment, TLS, inbox prefix) shared by the hub and connectors.
//! - `csv`: the CSV connector (Salesforce, HubSpot, generic exports): a
//!   drop folder of exports captured file by file against the last
//!   snapshot, golden updates written back as import files.
//! - `sample`: the in-process sample system of `mdhub demo` (rows in
//!   memory, capture and write-back, echoes with their `base`).
//! - `publish`: the JetStream publisher every connector and the hub use to put a
//!   batch of messages on a stream durably: ADR-50 atomic batches on servers that
//!   support them (one source transaction = one batch), pipelined single
//!   publishes with acks otherwise.
//! - `runner`: what every connector does the same way around its Source
//!   and Sink: mapping, event ids, publishing, cursor saving, write-back
//!   from the hub's golden updates, echo suppression, retries, metrics.
//! - `mapping`: one system's columns ⇄ the model's canonical fields, declared
//!   in TOML, with transforms that work both ways.
//!
//! The connectors to real systems are built on these to the contract in
//! docs/specs/connector.md. Of them, the CSV connector exists
//! (`csv::CsvConnector`); PostgreSQL, MariaDB/MySQL and HTTP come next.

pub mod checkpoint;
pub mod connect;
pub mod contract;
pub mod csv;
pub mod mapping;
pub mod publish;
pub mod runner;
pub mod sample;
