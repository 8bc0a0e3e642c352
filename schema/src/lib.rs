//! mdhub-schema: everything that crosses a process boundary is defined here.
//!
//! Layout:
//! - `model`: the canonical model file (`schema/customer.toml`): fields, types,
//!   normalizers, match keys and the default survivorship per field.
//! - `event`: the wire types: `ChangeEvent` (system → hub), `GoldenUpdate`
//!   (hub → system), `GoldenChange` (hub → any consumer), `Rejection` (DLQ).
//! - `normalize`: turns a raw field value into its canonical form, or says why
//!   it cannot.
//! - `validate`: bytes in, a checked `ChangeEvent` out, or a `Rejection` that
//!   names the event, the field and the problem.
//!
//! Data moves one way: `validate` parses with `event`, checks fields against
//! `model` and calls `normalize`.

pub mod event;
pub mod model;
pub mod normalize;
pub mod validate;

pub use event::{ChangeEvent, GoldenChange, GoldenUpdate, Op, Rejection, UpdateOp, SCHEMA_VERSION};
pub use model::{FieldDef, FieldType, Model, ModelError, Survivorship};
pub use validate::{validate_event, Catalog, Limits};
