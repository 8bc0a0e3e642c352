//! What changed between the previous export of a system (kept as a
//! [`Snapshot`]) and a new one.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::read::Export;

/// The rows of the last imported export, by key: what the connector keeps
/// on disk between imports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub rows: BTreeMap<String, BTreeMap<String, String>>,
}

/// One change to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new key (every column) or an edited one (the columns whose value
    /// differs from the snapshot).
    Upsert {
        key: String,
        line: u64,
        changed: BTreeMap<String, String>,
    },
    /// The key is gone from the export, or the export marks it deleted.
    Delete { key: String },
}

/// The changes, in the new file's order with the deletes after them sorted
/// by key, and the snapshot to keep for the next import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub next: Snapshot,
    /// Rows identical to the snapshot.
    pub unchanged: usize,
    /// Keys absent from the export that were not deleted because a rejected
    /// row's key could not be read: any of them may be that row.
    pub deletes_withheld: usize,
}

/// Compares a new export with the previous snapshot. A rejected row with a
/// readable key keeps its record as it was: the record is not deleted and
/// not changed until a later export reads it.
pub fn diff(previous: &Snapshot, export: &Export) -> Diff {
    let mut changes = Vec::new();
    let mut next = Snapshot::default();
    let mut deletes = BTreeSet::new();
    let mut unchanged = 0;

    for row in &export.rows {
        let before = previous.rows.get(&row.key);
        if row.deleted {
            if before.is_some() {
                deletes.insert(row.key.clone());
            }
            continue;
        }
        let changed: BTreeMap<String, String> = row
            .columns
            .iter()
            .filter(|(column, value)| before.and_then(|b| b.get(*column)) != Some(*value))
            .map(|(c, v)| (c.clone(), v.clone()))
            .collect();
        if changed.is_empty() {
            unchanged += 1;
        } else {
            changes.push(Change::Upsert {
                key: row.key.clone(),
                line: row.line,
                changed,
            });
        }
        next.rows.insert(row.key.clone(), row.columns.clone());
    }

    let held: HashSet<&str> = export
        .rejected
        .iter()
        .filter_map(|r| r.key.as_deref())
        .collect();
    let unreadable_rejects = export.rejected.iter().any(|r| r.key.is_none());
    let read: HashSet<&str> = export.rows.iter().map(|r| r.key.as_str()).collect();
    let mut deletes_withheld = 0;
    for (key, columns) in &previous.rows {
        if read.contains(key.as_str()) {
            continue;
        }
        if held.contains(key.as_str()) {
            next.rows.insert(key.clone(), columns.clone());
        } else if unreadable_rejects {
            deletes_withheld += 1;
            next.rows.insert(key.clone(), columns.clone());
        } else {
            deletes.insert(key.clone());
        }
    }
    changes.extend(deletes.into_iter().map(|key| Change::Delete { key }));
    Diff {
        changes,
        next,
        unchanged,
        deletes_withheld,
    }
}
