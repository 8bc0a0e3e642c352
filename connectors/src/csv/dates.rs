//! Normalizing the date columns of a row to ISO 8601: dates `yyyy-MM-dd`,
//! date-times in UTC `yyyy-MM-ddTHH:mm:ss.SSSZ`, so two exports that write
//! the same instant differently compare equal; and the way back, for
//! write-back files the system's importer reads in its own format.

use time::format_description::well_known::Rfc3339;
use time::format_description::{BorrowedFormatItem, OwnedFormatItem};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::layout::{parse_offset, CsvLayout, DateFormat};

const ISO_DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");
const UTC_DATE_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
/// Salesforce writes `+0000` in some exports; RFC 3339 wants `+00:00`.
const COMPACT_OFFSET: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][offset_minute]"
);

/// A date column's format, compiled once per file.
pub(crate) enum DateParser {
    IsoDate,
    IsoDateTime,
    Date(OwnedFormatItem),
    LocalDateTime(OwnedFormatItem, UtcOffset),
}

impl DateParser {
    /// Compiles a format of a layout that passed validation.
    pub(crate) fn new(format: &DateFormat, layout: &CsvLayout) -> Option<Self> {
        let compile = |p: &str| time::format_description::parse_owned::<2>(p).ok();
        Some(match format {
            DateFormat::IsoDate => Self::IsoDate,
            DateFormat::IsoDateTime => Self::IsoDateTime,
            DateFormat::Date { pattern } => Self::Date(compile(pattern)?),
            DateFormat::LocalDateTime { pattern } => Self::LocalDateTime(
                compile(pattern)?,
                parse_offset(layout.utc_offset.as_deref()?)?,
            ),
        })
    }

    /// The value in ISO form; `None` when it is not a date of this format.
    /// An empty value stays empty: the field is unset, not invalid.
    pub(crate) fn normalize(&self, value: &str) -> Option<String> {
        let value = value.trim();
        if value.is_empty() {
            return Some(String::new());
        }
        match self {
            Self::IsoDate => iso_date(Date::parse(value, ISO_DATE).ok()?),
            Self::Date(format) => iso_date(Date::parse(value, format).ok()?),
            Self::IsoDateTime => {
                let instant = OffsetDateTime::parse(value, &Rfc3339)
                    .or_else(|_| OffsetDateTime::parse(value, COMPACT_OFFSET))
                    .ok()?;
                utc(instant)
            }
            Self::LocalDateTime(format, offset) => {
                let local = PrimitiveDateTime::parse(value, format).ok()?;
                utc(local.assume_offset(*offset))
            }
        }
    }

    /// An ISO value (as [`Self::normalize`] gives, or as a golden record
    /// holds it) written the way the layout writes this column; `None` when
    /// it is not an ISO date (date-time) this column can hold. An empty
    /// value stays empty.
    pub(crate) fn write(&self, iso: &str) -> Option<String> {
        let iso = iso.trim();
        if iso.is_empty() {
            return Some(String::new());
        }
        let instant = || {
            OffsetDateTime::parse(iso, &Rfc3339)
                .or_else(|_| OffsetDateTime::parse(iso, COMPACT_OFFSET))
                .ok()
        };
        match self {
            Self::IsoDate => iso_date(Date::parse(iso, ISO_DATE).ok()?),
            Self::Date(format) => Date::parse(iso, ISO_DATE).ok()?.format(format).ok(),
            Self::IsoDateTime => utc(instant()?),
            Self::LocalDateTime(format, offset) => {
                let local = instant()?.to_offset(*offset);
                PrimitiveDateTime::new(local.date(), local.time())
                    .format(format)
                    .ok()
            }
        }
    }

    pub(crate) fn expected(&self) -> &'static str {
        match self {
            Self::IsoDate => "yyyy-MM-dd",
            Self::IsoDateTime => "an ISO 8601 date-time with Z or an offset",
            Self::Date(_) => "a date in the layout's pattern",
            Self::LocalDateTime(..) => "a date-time in the layout's pattern",
        }
    }
}

fn iso_date(date: Date) -> Option<String> {
    date.format(ISO_DATE).ok()
}

fn utc(instant: OffsetDateTime) -> Option<String> {
    instant.to_offset(UtcOffset::UTC).format(UTC_DATE_TIME).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::offset;

    use super::*;

    fn parser(format: DateFormat) -> DateParser {
        let layout = CsvLayout::hubspot_contacts(offset!(+1));
        DateParser::new(&format, &layout).expect("a valid format")
    }

    #[test]
    fn a_written_value_reads_back_as_the_value_written() {
        let local = parser(DateFormat::LocalDateTime {
            pattern: "[year]-[month]-[day] [hour]:[minute]".into(),
        });
        let text = local
            .write("2024-03-12T08:14:00.000Z")
            .expect("a date-time");
        assert_eq!(text, "2024-03-12 09:14", "written in the account's offset");
        assert_eq!(
            local.normalize(&text).as_deref(),
            Some("2024-03-12T08:14:00.000Z")
        );
        let german = parser(DateFormat::Date {
            pattern: "[day].[month].[year]".into(),
        });
        assert_eq!(german.write("1979-12-31").as_deref(), Some("31.12.1979"));
        let iso = parser(DateFormat::IsoDateTime);
        assert_eq!(
            iso.write("2024-03-01T07:00:00+01:00").as_deref(),
            Some("2024-03-01T06:00:00.000Z")
        );
        assert_eq!(iso.write(" ").as_deref(), Some(""));
        assert_eq!(parser(DateFormat::IsoDate).write("31.12.1979"), None);
        assert_eq!(german.write("not a date"), None);
    }
}
