//! Matching a file's header line to the layout's column names: trimmed,
//! case-insensitive, with aliases for other spellings.

use std::collections::HashMap;

use super::layout::CsvLayout;
use super::read::CsvError;

/// The column names, in file order, that rows of this file carry: the
/// layout's spelling for every header it knows, the trimmed header otherwise.
pub(crate) fn resolve_headers(
    layout: &CsvLayout,
    record: &csv::ByteRecord,
) -> Result<Vec<String>, CsvError> {
    let mut known: HashMap<String, &str> = HashMap::new();
    let named = layout
        .columns
        .iter()
        .chain(layout.dates.keys())
        .chain(&layout.deleted_column)
        .chain([&layout.key_column]);
    for name in named {
        known.insert(fold(name), name);
    }
    for (alias, name) in &layout.aliases {
        known.insert(fold(alias), name);
    }

    let mut headers: Vec<String> = Vec::with_capacity(record.len());
    for (position, raw) in record.iter().enumerate() {
        let text = std::str::from_utf8(raw)
            .map_err(|_| CsvError::HeaderNotUtf8 {
                position: position + 1,
            })?
            .trim();
        let name = known.get(&fold(text)).map_or(text, |name| name);
        if headers.iter().any(|h| h == name) {
            return Err(CsvError::DuplicateHeader {
                column: name.to_owned(),
            });
        }
        headers.push(name.to_owned());
    }
    if !headers.contains(&layout.key_column) {
        return Err(CsvError::MissingKeyColumn {
            looked_for: layout.key_column.clone(),
            found: headers,
        });
    }
    Ok(headers)
}

fn fold(header: &str) -> String {
    header.trim().to_lowercase()
}
