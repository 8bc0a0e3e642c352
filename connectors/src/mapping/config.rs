//! The mapping file: parsed with serde, then checked against the canonical
//! model, every problem collected with the path of its key.

use std::collections::{BTreeMap, BTreeSet};

use mdhub_schema::normalize::normalize;
use mdhub_schema::{FieldDef, FieldType, Model};
use serde::Deserialize;
use serde_json::Value;

use super::transform::{cast_out, ColumnType, Json, Lookup, Transform};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingFile {
    #[serde(default)]
    pub phone_region: Option<String>,
    #[serde(rename = "field", default)]
    pub fields: Vec<EntryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryFile {
    #[serde(default)]
    canonical: Option<Names>,
    #[serde(default)]
    column: Option<Names>,
    #[serde(default)]
    transform: Option<TransformFile>,
    #[serde(default)]
    column_type: Option<ColumnType>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    constant: Option<Value>,
    #[serde(default)]
    read_only: bool,
}

/// One name or several (`split_name`, `join_name`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    fn into_vec(self) -> Vec<String> {
        match self {
            Names::One(n) => vec![n],
            Names::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum TransformFile {
    Lowercase,
    Email,
    Phone,
    Country,
    SplitName,
    JoinName,
    Lookup(BTreeMap<String, String>),
}

/// One checked entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// `field[3]`, for errors.
    pub path: String,
    pub canonical: Vec<String>,
    pub columns: Vec<String>,
    pub kind: EntryKind,
    pub column_type: Option<ColumnType>,
    pub default: Option<Value>,
    pub read_only: bool,
    /// The model's definition of `canonical[0]` (single-field entries).
    pub def: Option<FieldDef>,
}

#[derive(Debug, Clone)]
pub(crate) enum EntryKind {
    Map(Transform),
    /// Written to the column with every write; never read.
    SystemConstant(Value),
    /// Read as the canonical value; never written.
    CanonicalConstant(Value),
}

impl Entry {
    pub(crate) fn readable(&self) -> bool {
        !matches!(self.kind, EntryKind::SystemConstant(_))
    }

    pub(crate) fn writable(&self) -> bool {
        !self.read_only && matches!(self.kind, EntryKind::Map(_) | EntryKind::SystemConstant(_))
    }

    /// The canonical-side JSON type of a single-field entry's transform.
    pub(crate) fn inner(&self) -> Json {
        match &self.kind {
            EntryKind::Map(Transform::Rename) => {
                self.def.as_ref().map_or(Json::String, |d| Json::of(d.kind))
            }
            _ => Json::String,
        }
    }
}

/// Checks the parsed file against the model; `Err` holds every problem as
/// `key.path: what is wrong`.
pub(crate) fn check(file: MappingFile, model: &Model) -> Result<Vec<Entry>, Vec<String>> {
    let mut problems = Vec::new();
    if let Some(region) = &file.phone_region {
        check_region(region, model, &mut problems);
    }
    if file.fields.is_empty() {
        problems.push("field: a mapping needs at least one entry".to_string());
    }
    let mut entries = Vec::new();
    for (i, raw) in file.fields.into_iter().enumerate() {
        if let Some(e) = check_entry(format!("field[{i}]"), raw, model, &mut problems) {
            entries.push(e);
        }
    }
    check_overlaps(&entries, &mut problems);
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

fn check_region(region: &str, model: &Model, problems: &mut Vec<String>) {
    let shaped = region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase());
    let known = match model.fields.iter().find(|f| f.kind == FieldType::Country) {
        Some(def) => {
            normalize(def, &Value::String(region.to_string())).ok()
                == Some(Value::String(region.to_string()))
        }
        None => shaped,
    };
    if !shaped || !known {
        problems.push(format!(
            "phone_region: {region:?} is not an ISO 3166-1 alpha-2 code (DE, US, ...)"
        ));
    }
}

fn check_entry(
    at: String,
    mut raw: EntryFile,
    model: &Model,
    problems: &mut Vec<String>,
) -> Option<Entry> {
    let before = problems.len();
    let canonical = raw
        .canonical
        .take()
        .map(Names::into_vec)
        .unwrap_or_default();
    let columns = raw.column.take().map(Names::into_vec).unwrap_or_default();
    let mut defs = Vec::new();
    for (j, name) in canonical.iter().enumerate() {
        let key = if canonical.len() > 1 {
            format!("{at}.canonical[{j}]")
        } else {
            format!("{at}.canonical")
        };
        match model.field(name) {
            Some(d) => defs.push(d.clone()),
            None => problems.push(format!(
                "{key}: {name:?} is not a field of {}",
                model.entity
            )),
        }
    }
    for (j, name) in columns.iter().enumerate() {
        if name.trim().is_empty() {
            let key = if columns.len() > 1 {
                format!("{at}.column[{j}]")
            } else {
                format!("{at}.column")
            };
            problems.push(format!("{key}: a column name cannot be empty"));
        }
    }
    let def = (defs.len() == 1 && canonical.len() == 1).then(|| defs[0].clone());

    let kind = if let Some(value) = raw.constant.take() {
        check_constant(&at, &canonical, &columns, &raw, problems);
        if canonical.is_empty() {
            EntryKind::SystemConstant(value)
        } else {
            if let Some(d) = &def {
                check_canonical_form(&format!("{at}.constant"), d, &value, problems);
            }
            EntryKind::CanonicalConstant(value)
        }
    } else {
        let transform = check_transform(
            &at,
            raw.transform,
            raw.read_only,
            &canonical,
            &columns,
            &defs,
            problems,
        );
        EntryKind::Map(transform)
    };

    if let Some(ct) = raw.column_type {
        let date_ok = def.as_ref().is_some_and(|d| d.kind == FieldType::Date)
            && matches!(kind, EntryKind::Map(Transform::Rename));
        if ct == ColumnType::Date && !date_ok {
            problems.push(format!(
                "{at}.column_type: \"date\" needs a date field and no transform"
            ));
        }
    }
    if let Some(d) = &raw.default {
        // Name transforms produce or consume two fields: one default
        // cannot stand for both.
        let one_to_one = matches!(
            kind,
            EntryKind::Map(ref t) if !matches!(t, Transform::SplitName | Transform::JoinName)
        );
        match &def {
            Some(def) if one_to_one => {
                check_canonical_form(&format!("{at}.default"), def, d, problems)
            }
            _ => problems.push(format!(
                "{at}.default: only an entry with one canonical field and one column takes a default"
            )),
        }
    }
    if let EntryKind::Map(Transform::Lookup(l)) = &kind {
        for key in l.to_canonical.keys() {
            if cast_out(&Value::String(key.clone()), raw.column_type).is_err() {
                problems.push(format!(
                    "{at}.transform.lookup.{key}: not a value of the column_type"
                ));
            }
        }
    }
    (problems.len() == before).then_some(Entry {
        path: at,
        canonical,
        columns,
        kind,
        column_type: raw.column_type,
        default: raw.default,
        read_only: raw.read_only,
        def,
    })
}

fn check_constant(
    at: &str,
    canonical: &[String],
    columns: &[String],
    raw: &EntryFile,
    problems: &mut Vec<String>,
) {
    if canonical.len() + columns.len() != 1 {
        problems.push(format!(
            "{at}.constant: a constant needs exactly one side: a column (written, never read) or a canonical field (read, never written)"
        ));
    }
    let extras = [
        ("transform", raw.transform.is_some()),
        ("default", raw.default.is_some()),
        ("column_type", raw.column_type.is_some()),
        ("read_only", raw.read_only),
    ];
    for (key, set) in extras {
        if set {
            problems.push(format!("{at}.{key}: a constant takes no {key}"));
        }
    }
}

fn check_transform(
    at: &str,
    spec: Option<TransformFile>,
    read_only: bool,
    canonical: &[String],
    columns: &[String],
    defs: &[FieldDef],
    problems: &mut Vec<String>,
) -> Transform {
    let kinds: Vec<FieldType> = defs.iter().map(|d| d.kind).collect();
    let (name, want_canonical, want_columns, allowed): (&str, usize, usize, &[FieldType]) =
        match &spec {
            None => ("rename", 1, 1, &[]),
            Some(TransformFile::Lowercase) => (
                "lowercase",
                1,
                1,
                &[FieldType::String, FieldType::Email, FieldType::Enum],
            ),
            Some(TransformFile::Email) => ("email", 1, 1, &[FieldType::Email]),
            Some(TransformFile::Phone) => ("phone", 1, 1, &[FieldType::Phone]),
            Some(TransformFile::Country) => ("country", 1, 1, &[FieldType::Country]),
            Some(TransformFile::SplitName) => ("split_name", 2, 1, &[FieldType::String]),
            Some(TransformFile::JoinName) => ("join_name", 1, 2, &[FieldType::String]),
            Some(TransformFile::Lookup(_)) => (
                "lookup",
                1,
                1,
                &[
                    FieldType::String,
                    FieldType::Country,
                    FieldType::Enum,
                    FieldType::Email,
                    FieldType::Phone,
                    FieldType::Postcode,
                ],
            ),
        };
    if canonical.len() != want_canonical {
        problems.push(format!(
            "{at}.canonical: {name} maps {want_canonical} canonical field(s), got {}",
            canonical.len()
        ));
    }
    if columns.len() != want_columns {
        problems.push(format!(
            "{at}.column: {name} maps {want_columns} column(s), got {}",
            columns.len()
        ));
    }
    if !allowed.is_empty() {
        for (n, k) in canonical.iter().zip(&kinds) {
            if !allowed.contains(k) {
                problems.push(format!(
                    "{at}.transform: {name} does not apply to {n:?} (type {k:?})"
                ));
            }
        }
    }
    match spec {
        None => Transform::Rename,
        Some(TransformFile::Lowercase) => Transform::Lowercase,
        Some(TransformFile::Email | TransformFile::Phone | TransformFile::Country) => {
            Transform::Normalize
        }
        Some(TransformFile::SplitName) => Transform::SplitName,
        Some(TransformFile::JoinName) => Transform::JoinName,
        Some(TransformFile::Lookup(table)) => {
            Transform::Lookup(check_lookup(at, table, read_only, defs, problems))
        }
    }
}

fn check_lookup(
    at: &str,
    table: BTreeMap<String, String>,
    read_only: bool,
    defs: &[FieldDef],
    problems: &mut Vec<String>,
) -> Lookup {
    let key = format!("{at}.transform.lookup");
    if table.is_empty() {
        problems.push(format!("{key}: the table is empty"));
    }
    if let [def] = defs {
        for (code, value) in &table {
            check_canonical_form(
                &format!("{key}.{code}"),
                def,
                &Value::String(value.clone()),
                problems,
            );
        }
    }
    let mut to_system: BTreeMap<String, String> = BTreeMap::new();
    let mut one_to_one = true;
    for (code, value) in &table {
        if let Some(first) = to_system.get(value) {
            one_to_one = false;
            if !read_only {
                problems.push(format!(
                    "{key}: {first} and {code} both map to {value:?}; a table that is not one-to-one cannot be written back (set read_only = true to only read it)"
                ));
            }
        } else {
            to_system.insert(value.clone(), code.clone());
        }
    }
    if !one_to_one {
        to_system.clear();
    }
    Lookup {
        to_canonical: table,
        to_system,
    }
}

/// A value in the config must already be what the hub would hold, or a
/// round trip through the hub would change it.
fn check_canonical_form(key: &str, def: &FieldDef, value: &Value, problems: &mut Vec<String>) {
    match normalize(def, value) {
        Ok(v) if &v == value => {}
        Ok(v) => problems.push(format!(
            "{key}: {value} is not in the canonical form of {:?} ({v})",
            def.name
        )),
        Err(e) => problems.push(format!("{key}: not a valid {:?}: {e}", def.name)),
    }
}

/// One canonical field is read from one entry only; one column is written
/// by one entry only.
fn check_overlaps(entries: &[Entry], problems: &mut Vec<String>) {
    let mut readers: BTreeMap<&str, &str> = BTreeMap::new();
    let mut writers: BTreeMap<&str, &str> = BTreeMap::new();
    for e in entries {
        if e.readable() {
            for c in &e.canonical {
                if let Some(first) = readers.insert(c, &e.path) {
                    problems.push(format!(
                        "{}.canonical: {c:?} is already mapped by {first}",
                        e.path
                    ));
                }
            }
        }
        if e.writable() {
            let mut own = BTreeSet::new();
            for c in &e.columns {
                if !own.insert(c) {
                    problems.push(format!("{}.column: {c:?} is named twice", e.path));
                } else if let Some(first) = writers.insert(c, &e.path) {
                    problems.push(format!(
                        "{}.column: {c:?} is already written by {first} (set read_only = true on one of them)",
                        e.path
                    ));
                }
            }
        }
    }
}
