//! Applying checked entries to one record, in either direction. Every entry
//! is tried, so one call reports every field that failed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{Entry, EntryKind};
use super::transform::{
    cast_in, cast_out, expect, join_name, normalize, split_name, Json, Transform,
};
use super::{FieldError, Row};

/// A system row → canonical fields. A column the row does not carry leaves
/// its fields out (unless the entry has a default); `null` clears them.
pub(crate) fn to_canonical(
    entries: &[Entry],
    region: Option<&str>,
    row: &Row,
) -> Result<BTreeMap<String, Value>, Vec<FieldError>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for e in entries.iter().filter(|e| e.readable()) {
        if let Err(reason) = read_entry(e, region, row, &mut out) {
            errors.push(FieldError::new(e, reason));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn read_entry(
    e: &Entry,
    region: Option<&str>,
    row: &Row,
    out: &mut BTreeMap<String, Value>,
) -> Result<(), String> {
    let transform = match &e.kind {
        EntryKind::CanonicalConstant(v) => {
            out.insert(e.canonical[0].clone(), v.clone());
            return Ok(());
        }
        EntryKind::SystemConstant(_) => return Ok(()),
        EntryKind::Map(t) => t,
    };
    if *transform == Transform::JoinName {
        let parts: Vec<Option<&Value>> = e.columns.iter().map(|c| row.get(c)).collect();
        if parts.iter().all(Option::is_none) {
            return Ok(());
        }
        let mut texts = Vec::new();
        for (col, part) in e.columns.iter().zip(parts) {
            let v = cast_in(
                part.unwrap_or(&Value::Null),
                e.column_type,
                Json::String,
                None,
            )
            .map_err(|r| format!("{col}: {r}"))?;
            texts.push(v);
        }
        let refs: Vec<&Value> = texts.iter().collect();
        out.insert(e.canonical[0].clone(), join_name(&refs)?);
        return Ok(());
    }
    let raw = match row.get(&e.columns[0]) {
        None | Some(Value::Null) if e.default.is_some() => {
            out.insert(
                e.canonical[0].clone(),
                e.default.clone().unwrap_or_default(),
            );
            return Ok(());
        }
        None => return Ok(()),
        Some(v) => v,
    };
    let inner = cast_in(raw, e.column_type, e.inner(), e.def.as_ref())?;
    if transform == &Transform::SplitName {
        let (given, family) = match &inner {
            Value::String(s) => split_name(s),
            _ => (Value::Null, Value::Null),
        };
        out.insert(e.canonical[0].clone(), given);
        out.insert(e.canonical[1].clone(), family);
        return Ok(());
    }
    let value = match (transform, &inner) {
        (_, Value::Null) => Value::Null,
        (Transform::Lowercase, Value::String(s)) => Value::String(s.to_lowercase()),
        (Transform::Normalize, v) => match &e.def {
            Some(def) => normalize(def, v, region),
            None => v.clone(),
        },
        (Transform::Lookup(l), Value::String(code)) => Value::String(
            l.to_canonical
                .get(code)
                .cloned()
                .ok_or("a code that is not in the lookup table")?,
        ),
        (_, v) => v.clone(),
    };
    out.insert(e.canonical[0].clone(), value);
    Ok(())
}

/// Canonical fields → the columns to write. Only writable entries whose
/// fields the input carries produce columns; the rest of the row is not
/// touched. System constants are added whenever anything is written.
pub(crate) fn to_system(
    entries: &[Entry],
    fields: &BTreeMap<String, Value>,
) -> Result<Row, Vec<FieldError>> {
    let mut row = Row::new();
    let mut errors = Vec::new();
    for e in entries.iter().filter(|e| e.writable()) {
        if let EntryKind::Map(t) = &e.kind {
            if let Err(reason) = write_entry(e, t, fields, &mut row) {
                errors.push(FieldError::new(e, reason));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !row.is_empty() {
        for e in entries {
            if let EntryKind::SystemConstant(v) = &e.kind {
                row.insert(e.columns[0].clone(), v.clone());
            }
        }
    }
    Ok(row)
}

fn write_entry(
    e: &Entry,
    t: &Transform,
    fields: &BTreeMap<String, Value>,
    row: &mut Row,
) -> Result<(), String> {
    let carried: Vec<Option<&Value>> = e.canonical.iter().map(|c| fields.get(c)).collect();
    if carried.iter().all(Option::is_none) {
        return Ok(());
    }
    if t == &Transform::SplitName {
        // One column holds both parts: writing it from one part would
        // erase the other.
        let mut parts = Vec::new();
        for (name, v) in e.canonical.iter().zip(&carried) {
            parts.push(v.ok_or_else(|| {
                format!(
                    "{} is written from {} together; the update does not carry {name}",
                    e.columns[0],
                    e.canonical.join(" and ")
                )
            })?);
        }
        let joined = join_name(&parts)?;
        row.insert(e.columns[0].clone(), cast_out(&joined, e.column_type)?);
        return Ok(());
    }
    let value = carried[0].unwrap_or(&Value::Null);
    if t == &Transform::JoinName {
        let (given, family) = match expect(value, Json::String)? {
            Value::String(s) => split_name(&s),
            _ => (Value::Null, Value::Null),
        };
        row.insert(e.columns[0].clone(), cast_out(&given, e.column_type)?);
        row.insert(e.columns[1].clone(), cast_out(&family, e.column_type)?);
        return Ok(());
    }
    let inner = expect(value, e.inner())?;
    let out = match (t, &inner) {
        (_, Value::Null) => Value::Null,
        (Transform::Lookup(l), Value::String(v)) => Value::String(
            l.to_system
                .get(v)
                .cloned()
                .ok_or("a value that is not in the lookup table")?,
        ),
        (_, v) => v.clone(),
    };
    row.insert(e.columns[0].clone(), cast_out(&out, e.column_type)?);
    Ok(())
}
