//! What a CSV export looks like: key column, delimiter, date columns, header
//! spellings. Presets for the exports of real products.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::UtcOffset;

/// The layout of one system's CSV export, at the level of the system's own
/// columns (mapping them to canonical fields is the mapping engine's job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvLayout {
    /// The column that identifies a record across exports.
    pub key_column: String,
    /// Field separator; one ASCII character. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Known columns in the spelling rows carry, whatever case the file's
    /// header uses (old Salesforce Data Loader versions wrote `ID`, new ones
    /// `Id`: both exports must produce the same column names to be compared).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Date and date-time columns and how their values are written; values
    /// are normalized to ISO 8601.
    #[serde(default)]
    pub dates: BTreeMap<String, DateFormat>,
    /// Offset of zone-less date-times (`+01:00`), required when a column is
    /// a [`DateFormat::LocalDateTime`]: guessing UTC would shift every time.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// Other spellings of a header (a localized label) → the column name.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// A column whose `true` marks a row as deleted (Salesforce `IsDeleted`).
    #[serde(default)]
    pub deleted_column: Option<String>,
}

/// How a date column's values are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DateFormat {
    /// `yyyy-MM-dd`.
    IsoDate,
    /// RFC 3339 with `Z` or an offset (`2024-01-15T10:30:00.000Z`,
    /// `...+02:00`); `+hhmm` is accepted too.
    IsoDateTime,
    /// A date in a `time` format description, e.g. `[day].[month].[year]`.
    Date { pattern: String },
    /// A zone-less date-time in a `time` format description, e.g.
    /// `[year]-[month]-[day] [hour]:[minute]`, read at the layout's
    /// `utc_offset`.
    LocalDateTime { pattern: String },
}

fn default_delimiter() -> char {
    ','
}

/// A layout that cannot be used; every problem is reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("key_column is empty")]
    EmptyKeyColumn,
    #[error("delimiter {0:?} is not a single ASCII character")]
    Delimiter(char),
    #[error("dates.{column}: pattern is not a valid format description: {reason}")]
    Pattern { column: String, reason: String },
    #[error("utc_offset {0:?} is not an offset like +01:00")]
    Offset(String),
    #[error("dates.{0} is a local date-time but utc_offset is not set")]
    MissingOffset(String),
}

impl CsvLayout {
    /// Any headers; the user names the key column.
    pub fn generic(key_column: impl Into<String>) -> Self {
        Self {
            key_column: key_column.into(),
            delimiter: default_delimiter(),
            columns: Vec::new(),
            dates: BTreeMap::new(),
            utc_offset: None,
            aliases: BTreeMap::new(),
            deleted_column: None,
        }
    }

    /// Salesforce Data Loader export of the Contact object: API names as
    /// headers, `Id` key, `IsDeleted`, ISO dates and UTC date-times.
    pub fn salesforce_contacts() -> Self {
        let columns = [
            "Id",
            "IsDeleted",
            "AccountId",
            "Salutation",
            "FirstName",
            "LastName",
            "Name",
            "Title",
            "Department",
            "Email",
            "Phone",
            "MobilePhone",
            "HomePhone",
            "Fax",
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
            "Birthdate",
            "Description",
            "CreatedDate",
            "LastModifiedDate",
            "CreatedById",
            "LastModifiedById",
        ];
        let dates = [
            ("Birthdate", DateFormat::IsoDate),
            ("CreatedDate", DateFormat::IsoDateTime),
            ("LastModifiedDate", DateFormat::IsoDateTime),
        ];
        Self {
            columns: columns.map(String::from).to_vec(),
            dates: dates.map(|(c, f)| (c.to_owned(), f)).into(),
            deleted_column: Some("IsDeleted".to_owned()),
            ..Self::generic("Id")
        }
    }

    /// HubSpot contacts export: English labels as headers, `Record ID` key,
    /// date-times like `2024-03-12 09:14` in the account's time zone, given
    /// here as its offset. The offset is fixed: the workspace carries no time
    /// zone database, so an account in a zone with summer time needs the
    /// offset of the export's season. Accounts in another language rename
    /// the labels: add them to `aliases`.
    pub fn hubspot_contacts(account_offset: UtcOffset) -> Self {
        let columns = [
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Phone Number",
            "Mobile Phone Number",
            "Fax Number",
            "Job Title",
            "Salutation",
            "Street Address",
            "City",
            "State/Region",
            "Postal Code",
            "Country/Region",
            "Company Name",
            "Website URL",
            "Create Date",
            "Last Modified Date",
            "Date of birth",
            "Contact owner",
            "Lifecycle Stage",
            "Associated Company",
        ];
        let local = || DateFormat::LocalDateTime {
            pattern: "[year]-[month]-[day] [hour]:[minute]".to_owned(),
        };
        let dates = [
            ("Create Date", local()),
            ("Last Modified Date", local()),
            ("Date of birth", DateFormat::IsoDate),
        ];
        Self {
            columns: columns.map(String::from).to_vec(),
            dates: dates.map(|(c, f)| (c.to_owned(), f)).into(),
            utc_offset: Some(format_offset(account_offset)),
            ..Self::generic("Record ID")
        }
    }

    /// Every problem with this layout, or none.
    pub fn validate(&self) -> Result<(), Vec<LayoutError>> {
        let mut errors = Vec::new();
        if self.key_column.trim().is_empty() {
            errors.push(LayoutError::EmptyKeyColumn);
        }
        if !self.delimiter.is_ascii() {
            errors.push(LayoutError::Delimiter(self.delimiter));
        }
        if let Some(offset) = &self.utc_offset {
            if parse_offset(offset).is_none() {
                errors.push(LayoutError::Offset(offset.clone()));
            }
        }
        for (column, format) in &self.dates {
            let pattern = match format {
                DateFormat::IsoDate | DateFormat::IsoDateTime => continue,
                DateFormat::Date { pattern } => pattern,
                DateFormat::LocalDateTime { pattern } => {
                    if self.utc_offset.is_none() {
                        errors.push(LayoutError::MissingOffset(column.clone()));
                    }
                    pattern
                }
            };
            if let Err(e) = time::format_description::parse_owned::<2>(pattern) {
                errors.push(LayoutError::Pattern {
                    column: column.clone(),
                    reason: e.to_string(),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

pub(crate) fn parse_offset(text: &str) -> Option<UtcOffset> {
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    UtcOffset::parse(text, format).ok()
}

fn format_offset(offset: UtcOffset) -> String {
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    offset.format(format).expect("an offset formats as +hh:mm")
}
