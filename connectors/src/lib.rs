//! Connectors: capture changes in business systems and apply golden updates back.
//!
//! Layout:
//! - `connect`: NATS connection settings (URLs, credentials read from a file
//!   or the environment, TLS, inbox prefix) shared by the hub and connectors.
//! - `csv`: CSV exports (Salesforce, HubSpot, generic): reading a file into
//!   keyed rows with rejected rows reported by line, and the changes between
//!   two exports of the same system.
//! - `publish`: the JetStream publisher every connector and the hub use to put a
//!   batch of messages on a stream durably: ADR-50 atomic batches on servers that
//!   support them (one source transaction = one batch), pipelined single
//!   publishes with acks otherwise.
//!
//! The per-system connectors (PostgreSQL, MySQL, CSV, HTTP) and the mapping
//! engine arrive with their own issues.

pub mod connect;
pub mod csv;
pub mod publish;
