//! The mapping engine: one system's columns ⇄ the canonical fields of the
//! model, declared per connector in TOML, with transforms that work both
//! ways.
//!
//! Layout: `config` parses the file and checks it against the model (every
//! problem at once, each with its key path); `transform` converts one value
//! (casts, names, lookups, normalization); `apply` runs the checked entries
//! over one record in either direction.
//!
//! # Format
//!
//! ```toml
//! # Region in which the system writes national phone numbers (optional;
//! # without it only international numbers become E.164).
//! phone_region = "DE"
//!
//! # Rename: the value as is.
//! [[field]]
//! canonical = "company"
//! column = "org_name"
//!
//! # Normalizing transforms read through the model's cleansing for the
//! # field's type: "email" (lower-cased), "phone" (E.164 in phone_region),
//! # "country" (ISO alpha-2 from names and codes). "lowercase" lower-cases
//! # a string, e-mail or enum field. All write the hub's value as is.
//! [[field]]
//! canonical = "email"
//! column = "email_address"
//! transform = "email"
//!
//! # One full-name column ⇄ given and family name (in that order): read,
//! # the first word is the given name and the rest the family name; written,
//! # they are joined with one space. "join_name" is the reverse: two columns,
//! # given then family (column = ["first", "last"]) ⇄ canonical "full_name".
//! [[field]]
//! canonical = ["given_name", "family_name"]
//! column = "name"
//! transform = "split_name"
//!
//! # Value map through a lookup table: system code = canonical value. The
//! # column holds numbers, so column_type says what to write back.
//! [[field]]
//! canonical = "country"
//! column = "country_id"
//! column_type = "number"
//! transform = { lookup = { 76 = "BR", 233 = "US", 276 = "DE" } }
//!
//! # Type cast: column_type = "string" | "number" | "bool" | "date" is the
//! # column's type when it differs from the canonical one; "date" reads any
//! # date shape the model reads and writes ISO YYYY-MM-DD.
//! [[field]]
//! canonical = "birth_date"
//! column = "dob"
//! column_type = "date"
//!
//! # Default: the canonical value when the column is null or absent.
//! [[field]]
//! canonical = "lang"
//! column = "language"
//! default = "en"
//!
//! # Constant on the column side: written with every write, never read.
//! [[field]]
//! column = "updated_by"
//! constant = "mdhub"
//!
//! # Constant on the canonical side: read, never written (read-only).
//! [[field]]
//! canonical = "customer_type"
//! constant = "company"
//!
//! # Read-only: captured from the system, never written back.
//! [[field]]
//! canonical = "tax_id"
//! column = "vat"
//! read_only = true
//! ```
//!
//! # Directions
//!
//! An entry is writable unless it is `read_only` or a canonical constant;
//! `Mapping::writable_fields` lists what the hub may write to the system.
//! Every transform is exact on canonical values (what the hub holds), so
//! `to_system` then `to_canonical` gives them back; the ways a system value
//! is read that cannot be reversed (a name with two given names, `"yes"`
//! for `true`, `042` for `42`) only lose a spelling, not a value.
//!
//! A lookup table that maps two codes to one value cannot be written back:
//! it is refused unless the entry says `read_only = true`, so a field never
//! becomes read-only without the mapping saying so.
//!
//! A value the model's cleansing cannot read (a malformed phone number) goes
//! to the hub as sent: the hub keeps it and flags it for a data steward, as
//! with any source value. Casts and lookups that fail are errors.
//!
//! `split_name` writes its column from both name parts together: an update
//! carrying only one of them is an error (writing one part would erase the
//! other); the caller passes the golden value of the other part with it.

mod apply;
mod config;
mod transform;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mdhub_schema::Model;
use serde_json::Value;

pub use transform::ColumnType;

/// One system record: column name → value.
pub type Row = BTreeMap<String, Value>;

/// A checked mapping between one system's columns and the model's fields.
#[derive(Debug, Clone)]
pub struct Mapping {
    entries: Vec<config::Entry>,
    phone_region: Option<String>,
}

/// A mapping file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("mapping {path} is not valid TOML for a mapping: {message}")]
    Parse { path: String, message: String },
    #[error("mapping {path} has {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

/// One field that could not be mapped: which column and field, and why,
/// without the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column} / field {field}: {reason}")]
pub struct FieldError {
    /// The column(s), `+`-joined when an entry has several.
    pub column: String,
    /// The canonical field(s), `+`-joined when an entry has several.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    fn new(e: &config::Entry, reason: String) -> Self {
        FieldError {
            column: e.columns.join("+"),
            field: e.canonical.join("+"),
            reason,
        }
    }
}

impl Mapping {
    pub fn from_file(path: &Path, model: &Model) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), model)
    }

    /// Parses and checks a mapping; `path` only names it in errors.
    pub fn parse(text: &str, path: &str, model: &Model) -> Result<Self, MappingError> {
        let file: config::MappingFile = toml::from_str(text).map_err(|e| MappingError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let phone_region = file.phone_region.clone();
        let entries = config::check(file, model).map_err(|problems| MappingError::Invalid {
            path: path.to_string(),
            problems,
        })?;
        Ok(Mapping {
            entries,
            phone_region,
        })
    }

    /// The canonical fields the hub may write to this system.
    pub fn writable_fields(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|e| e.writable())
            .flat_map(|e| e.canonical.iter().map(String::as_str))
            .collect()
    }

    /// The canonical fields read from this system but never written to it.
    pub fn read_only_fields(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|e| e.readable() && !e.writable())
            .flat_map(|e| e.canonical.iter().map(String::as_str))
            .collect()
    }

    /// The columns this mapping reads.
    pub fn columns(&self) -> BTreeSet<&str> {
        self.entries
            .iter()
            .filter(|e| e.readable())
            .flat_map(|e| e.columns.iter().map(String::as_str))
            .collect()
    }

    /// A system row as canonical fields; every failing field is reported.
    pub fn to_canonical(&self, row: &Row) -> Result<BTreeMap<String, Value>, Vec<FieldError>> {
        apply::to_canonical(&self.entries, self.phone_region.as_deref(), row)
    }

    /// The columns to write for the canonical fields given (an update's
    /// changed fields): only writable fields, and only those given.
    pub fn to_system(&self, fields: &BTreeMap<String, Value>) -> Result<Row, Vec<FieldError>> {
        apply::to_system(&self.entries, fields)
    }
}

#[cfg(test)]
mod tests;
