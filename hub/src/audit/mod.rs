//! What auditors check the log with, beside its hash chain.
//!
//! The chain shows that no stored entry was changed, but not that none was
//! removed from the end: a truncated log is a shorter valid chain. So the
//! hub signs the chain's head now and then (`signing`), keeps the signed
//! checkpoints in a file of its own (`checkpoint_file`) that an auditor can
//! copy away, and `verify` checks a log against the chain and those
//! checkpoints, naming the first bad entry.

pub mod checkpoint_file;
pub mod command;
pub mod history;
pub mod signer;
pub mod signing;
pub mod verify;
