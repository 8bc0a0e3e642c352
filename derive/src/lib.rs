//! Derivation: the log's entries, one by one, into golden records, links
//! between source records and golden records, and the outbound updates each
//! entry causes. Hub state is a pure function of the log: this crate does no
//! I/O but through its storage trait (`store::Storage`), reads no clock,
//! draws no random numbers and emits no metrics; a storage error comes back
//! as a value. It depends on no store, broker or server, so the compiler
//! keeps it that way.
//!
//! - `entry`: what a log entry holds.
//! - `state`: derivation itself (`State::apply`), checkpoints of it, and the
//!   rules it follows (`Rules`).
//! - `resolve`: entity resolution: profiles, blocking, scoring, decisions.
//! - `golden`: golden records (Automerge documents) and survivorship.
//! - `steward`: data stewards' actions, logged like change events.
//! - `store`: the storage interface derived state is kept behind, and its
//!   in-memory implementation.
//! - `ids`: ids derived from inputs (golden, task, update ids, actors).

pub mod entry;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod golden;
pub mod ids;
pub mod resolve;
pub mod state;
pub mod steward;
pub mod store;
