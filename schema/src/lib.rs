//! mdhub-schema: everything that crosses a process boundary is defined here.
//!
//! Layout:
//! - `model`: the canonical model file (`schema/customer.toml`): fields, types,
//!   normalizers, match keys and the default survivorship per field.
//! - `event`: the wire types: `ChangeEvent` (system → hub), `GoldenUpdate`
//!   (hub → system), `GoldenChange` (hub → any consumer), `Rejection` (DLQ).
//! - `cleanse`: turns a raw field value into its canonical form (text, e-mail,
//!   E.164 phone, ISO country, ISO date, postcode), or keeps it and says, for
//!   a data steward, why it cannot; `cleanse_record` does a whole event.
//! - `normalize`: the same without a source system (no phone region), for
//!   callers that have none.
//! - `validate`: bytes in, a checked `ChangeEvent` out, or a `Rejection` that
//!   names the event, the field and the problem.
//!
//! Data moves one way: `validate` parses with `event` and checks the fields'
//! structure against `model` (types, lengths, enum values); a value of the
//! right type that does not cleanse is accepted there and flagged later by
//! `cleanse`, so no source value is lost.

pub mod cleanse;
pub mod event;
pub mod model;
pub mod normalize;
pub mod validate;

pub use cleanse::{cleanse_record, cleanse_value, CleanseContext, CleansedRecord, QualityIssue};
pub use event::{ChangeEvent, GoldenChange, GoldenUpdate, Op, Rejection, UpdateOp, SCHEMA_VERSION};
pub use model::{FieldDef, FieldType, Model, ModelError, SlashDates, Survivorship};
pub use validate::{in_subject, in_subject_system, validate_event, Catalog, Limits};
