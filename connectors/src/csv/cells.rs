//! CSV cells as the runner's rows hold them, one rule for both halves: the
//! source builds captured rows with it, and the sink predicts with it the
//! row the system will export after importing a write-back file. The two
//! must agree exactly, or the export of the connector's own write is not
//! recognized as its echo.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::contract::Row;

/// A row of text cells as a captured row. An empty cell is no value: for a
/// record the last export already had, `null` (the user emptied it, which
/// clears the field); for a new record it is left out, so that an unset
/// cell does not clear a value another system holds.
pub(crate) fn row_of(cells: &BTreeMap<String, String>, known: bool) -> Row {
    cells
        .iter()
        .filter_map(|(column, text)| {
            let value = if text.trim().is_empty() {
                if !known {
                    return None;
                }
                Value::Null
            } else {
                Value::String(text.clone())
            };
            Some((column.clone(), value))
        })
        .collect()
}

/// A value of a write as the text of its cell; `None` for an array or an
/// object, which no CSV cell holds.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn empty_cells_clear_known_records_and_are_left_out_of_new_ones() {
        let cells = BTreeMap::from([
            ("City".to_string(), " ".to_string()),
            ("Name".to_string(), "Anna".to_string()),
        ]);
        let known = row_of(&cells, true);
        assert_eq!(known["City"], Value::Null);
        assert_eq!(known["Name"], json!("Anna"));
        let new = row_of(&cells, false);
        assert!(!new.contains_key("City"));
        assert_eq!(new["Name"], json!("Anna"));
    }

    #[test]
    fn scalars_become_text_and_structures_do_not() {
        assert_eq!(text_of(&json!(12.5)).as_deref(), Some("12.5"));
        assert_eq!(text_of(&json!(true)).as_deref(), Some("true"));
        assert_eq!(text_of(&Value::Null).as_deref(), Some(""));
        assert_eq!(text_of(&json!(["a"])), None);
        assert_eq!(text_of(&json!({"a": 1})), None);
    }
}
