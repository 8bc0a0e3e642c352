//! Reading one CSV export into rows keyed by the layout's key column. A bad
//! row is rejected with its line and reason and the file goes on; only a
//! header the layout cannot use stops the file.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

use mdhub_schema::validate::MAX_RECORD_ID_BYTES;

use super::dates::DateParser;
use super::header::resolve_headers;
use super::layout::{CsvLayout, LayoutError};
use super::lines::counting;

/// One export as read: accepted rows in file order and rejected rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Column names as the rows carry them, in file order.
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
    pub rejected: Vec<RejectedRow>,
}

/// An accepted row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Physical line (1-based) where the row starts in the file.
    pub line: u64,
    /// The key column's value, trimmed.
    pub key: String,
    /// The layout's deleted column says `true`.
    pub deleted: bool,
    /// Column name → value as text; date columns in ISO 8601.
    pub columns: BTreeMap<String, String>,
}

/// A row that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// Physical line (1-based) where the row starts in the file.
    pub line: u64,
    /// The row's key when it could be read, so a diff does not take the
    /// record for deleted.
    pub key: Option<String>,
    pub reason: RowError,
}

/// Why a row was rejected. Names columns and keys, never other values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("{found} fields where the header has {expected}")]
    ColumnCount { found: usize, expected: usize },
    #[error("column {column} is not valid UTF-8")]
    InvalidUtf8 { column: String },
    #[error("the key column {column} is empty")]
    EmptyKey { column: String },
    #[error("key {key} already appeared on line {first_line}")]
    DuplicateKey { key: String, first_line: u64 },
    #[error("column {column} is not a valid date: expected {expected}")]
    InvalidDate {
        column: String,
        expected: &'static str,
    },
    #[error("column {column} is neither true nor false")]
    InvalidDeletedFlag { column: String },
    #[error("the key is {bytes} bytes, more than the {max} a record id may have")]
    KeyTooLong { bytes: usize, max: usize },
}

/// A file the layout cannot read at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("invalid CSV layout: {}", join(.0))]
    Layout(Vec<LayoutError>),
    #[error("reading the CSV file: {0}")]
    Read(#[from] csv::Error),
    #[error("the CSV file has no header line")]
    NoHeader,
    #[error("header column {position} is not valid UTF-8")]
    HeaderNotUtf8 { position: usize },
    #[error("header {column:?} appears more than once")]
    DuplicateHeader { column: String },
    #[error("no key column {looked_for:?} in the header; found {found:?}")]
    MissingKeyColumn {
        looked_for: String,
        found: Vec<String>,
    },
}

fn join(errors: &[LayoutError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// Reads a whole export. A UTF-8 byte order mark is skipped.
pub fn read_export(layout: &CsvLayout, input: impl Read) -> Result<Export, CsvError> {
    layout.validate().map_err(CsvError::Layout)?;
    let (counting_input, lines) = counting(skip_bom(input)?);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(layout.delimiter as u8)
        .has_headers(false)
        .flexible(true)
        .from_reader(counting_input);

    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record)? {
        return Err(CsvError::NoHeader);
    }
    let headers = resolve_headers(layout, &record)?;
    let rows = RowReader::new(layout, &headers);

    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    let mut seen = HashMap::new();
    while reader.read_byte_record(&mut record)? {
        let start = record.position().map_or(0, csv::Position::byte);
        let line = lines.line_of(start);
        match rows.read(&record, line, &mut seen) {
            Ok(row) => accepted.push(row),
            Err((key, reason)) => rejected.push(RejectedRow { line, key, reason }),
        }
    }
    Ok(Export {
        headers,
        rows: accepted,
        rejected,
    })
}

/// Turns records into rows for one file's header.
struct RowReader<'a> {
    headers: &'a [String],
    key_index: usize,
    dates: Vec<(usize, DateParser)>,
    deleted_index: Option<usize>,
}

type Rejection = (Option<String>, RowError);

impl<'a> RowReader<'a> {
    fn new(layout: &CsvLayout, headers: &'a [String]) -> Self {
        let index = |name: &str| headers.iter().position(|h| h == name);
        let dates = layout
            .dates
            .iter()
            .filter_map(|(column, format)| Some((index(column)?, DateParser::new(format, layout)?)))
            .collect();
        Self {
            headers,
            key_index: index(&layout.key_column).expect("resolve_headers found the key column"),
            dates,
            deleted_index: layout.deleted_column.as_deref().and_then(index),
        }
    }

    fn read(
        &self,
        record: &csv::ByteRecord,
        line: u64,
        seen: &mut HashMap<String, u64>,
    ) -> Result<Row, Rejection> {
        let key = record
            .get(self.key_index)
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        if record.len() != self.headers.len() {
            let reason = RowError::ColumnCount {
                found: record.len(),
                expected: self.headers.len(),
            };
            return Err((key, reason));
        }
        let mut values = Vec::with_capacity(record.len());
        for (field, column) in record.iter().zip(self.headers) {
            match std::str::from_utf8(field) {
                Ok(value) => values.push(value.to_owned()),
                Err(_) => {
                    let column = column.clone();
                    return Err((key, RowError::InvalidUtf8 { column }));
                }
            }
        }
        let Some(key) = key else {
            let column = self.headers[self.key_index].clone();
            return Err((None, RowError::EmptyKey { column }));
        };
        if key.len() > MAX_RECORD_ID_BYTES {
            // Kept as the rejected row's key: the diff then holds the record
            // as it was instead of taking it for deleted.
            let reason = RowError::KeyTooLong {
                bytes: key.len(),
                max: MAX_RECORD_ID_BYTES,
            };
            return Err((Some(key), reason));
        }
        if let Some(&first_line) = seen.get(&key) {
            let reason = RowError::DuplicateKey {
                key: key.clone(),
                first_line,
            };
            return Err((Some(key), reason));
        }
        seen.insert(key.clone(), line);

        for (index, parser) in &self.dates {
            match parser.normalize(&values[*index]) {
                Some(iso) => values[*index] = iso,
                None => {
                    let reason = RowError::InvalidDate {
                        column: self.headers[*index].clone(),
                        expected: parser.expected(),
                    };
                    return Err((Some(key), reason));
                }
            }
        }
        let deleted = match self.deleted_index {
            None => false,
            Some(index) => match values[index].trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                _ => {
                    let column = self.headers[index].clone();
                    return Err((Some(key), RowError::InvalidDeletedFlag { column }));
                }
            },
        };
        Ok(Row {
            line,
            key,
            deleted,
            columns: self.headers.iter().cloned().zip(values).collect(),
        })
    }
}

/// The input without a leading UTF-8 byte order mark. Stripped before the
/// CSV parser sees it: with a quoted first header (`"Id"`), a mark in front
/// of the quote would make the parser read the quotes as text.
fn skip_bom(mut input: impl Read) -> Result<impl Read, csv::Error> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let mut start = Vec::with_capacity(BOM.len());
    (&mut input)
        .take(BOM.len() as u64)
        .read_to_end(&mut start)
        .map_err(csv::Error::from)?;
    if start == BOM {
        start.clear();
    }
    Ok(io::Cursor::new(start).chain(input))
}
