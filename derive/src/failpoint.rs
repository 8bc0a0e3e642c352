//! Test-only fault injection, compiled in with the cargo feature
//! `failpoints` and never in a release build: the end-to-end tests use it
//! to show what the hub does when deriving an entry fails (a bug).
//!
//! Armed (by `arm`, or in the `mdhub` binary by `MDHUB_FAILPOINTS=derive`
//! in its environment at start), deriving an upsert of the record id
//! `DERIVE_FAILS_ON` panics. Disarmed, the same binary is the "fixed" one.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::entry::LogPayload;

/// The record id whose upserts fail to derive while armed.
pub const DERIVE_FAILS_ON: &str = "mdhub-failpoint:derive";

static ARMED: AtomicBool = AtomicBool::new(false);

pub fn arm(on: bool) {
    ARMED.store(on, Ordering::SeqCst);
}

/// Panics for the failpoint's record while armed.
pub fn check_derive(payload: &LogPayload) {
    if let LogPayload::Change(e) = payload {
        if e.record_id == DERIVE_FAILS_ON && ARMED.load(Ordering::SeqCst) {
            panic!("failpoint: deriving record {DERIVE_FAILS_ON:?} fails (test build)");
        }
    }
}
