//! Test-only fault injection (see mdhub-derive's `failpoint`), armed from
//! the `mdhub` binary's environment.

pub use mdhub_derive::failpoint::{arm, DERIVE_FAILS_ON};

/// Arms the failpoint when the environment asks for it
/// (`MDHUB_FAILPOINTS=derive`), once, at the start of the process.
pub fn arm_from_env() {
    if std::env::var("MDHUB_FAILPOINTS").is_ok_and(|v| v.split(',').any(|f| f.trim() == "derive")) {
        tracing::warn!("failpoint armed: deriving an upsert of record {DERIVE_FAILS_ON:?} fails");
        arm(true);
    }
}
