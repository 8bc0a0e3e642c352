//! Calendar dates from the formats real exports use, to ISO `YYYY-MM-DD`.

use super::text;
use crate::model::SlashDates;

/// Years outside this range are typing or export errors (0001-01-01 "no
/// date" markers, two-digit years read as the first century), not data.
const YEARS: std::ops::RangeInclusive<i32> = 1850..=2100;

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Reads `2024-03-01`, `2024-03-01T10:00:00Z` (the date part), `01.03.2024`,
/// `2024.03.01`, `03/01/2024` (per `slash`), `2024/03/01`, `20240301`,
/// `1 Mar 2024`, `1-Mar-2024` and `March 1, 2024`.
pub fn date(raw: &str, slash: SlashDates) -> Result<String, String> {
    let t = text::clean(raw, true);
    let t = without_time(&t);
    let (y, m, d) = fields(t, slash).ok_or_else(|| {
        "not a date in a known format (e.g. 2024-03-01, 01.03.2024, 03/01/2024, 1 Mar 2024)"
            .to_string()
    })?;
    if !YEARS.contains(&y) {
        return Err(format!(
            "year {y} is outside {}..{}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    let month = time::Month::try_from(m).map_err(|_| format!("month {m} does not exist"))?;
    let day = time::Date::from_calendar_date(y, month, d)
        .map_err(|_| format!("day {d} does not exist in {y}-{m:02}"))?;
    Ok(format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    ))
}

/// `2024-03-01T10:00:00Z` and `2024-03-01 10:00` → `2024-03-01`: exports
/// often write a date column as a timestamp; the time carries nothing here.
fn without_time(t: &str) -> &str {
    let b = t.as_bytes();
    let iso_date = b.len() > 11
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if iso_date && matches!(b[10], b't' | b' ') && b[11].is_ascii_digit() {
        &t[..10]
    } else {
        t
    }
}

/// Year, month, day as written, not yet checked against the calendar.
fn fields(t: &str, slash: SlashDates) -> Option<(i32, u8, u8)> {
    if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        return Some((num(&t[..4])?, num(&t[4..6])?, num(&t[6..])?));
    }
    let parts: Vec<&str> = t
        .split([' ', ',', '.', '/', '-'])
        .filter(|p| !p.is_empty())
        .collect();
    let [a, b, c] = parts[..] else {
        return None;
    };
    if let Some(m) = month_name(b) {
        // 1 Mar 2024, 1-Mar-2024
        return Some((year(c)?, m, day_or_month(a)?));
    }
    if let Some(m) = month_name(a) {
        // March 1, 2024
        return Some((year(c)?, m, day_or_month(b)?));
    }
    // All numeric from here: one separator, used twice.
    let sep = t.chars().find(|c| !c.is_ascii_digit())?;
    if t.chars().filter(|&c| c == sep).count() != 2
        || t.chars().any(|c| !c.is_ascii_digit() && c != sep)
    {
        return None;
    }
    if a.len() == 4 {
        // 2024-03-01, 2024/03/01, 2024.03.01
        return Some((year(a)?, day_or_month(b)?, day_or_month(c)?));
    }
    let (first, second) = (day_or_month(a)?, day_or_month(b)?);
    match (sep, slash) {
        ('.', _) | ('/', SlashDates::DayFirst) => Some((year(c)?, second, first)),
        ('/', SlashDates::MonthFirst) => Some((year(c)?, first, second)),
        // 01-03-2024 is day-first in Europe and month-first in the US:
        // too ambiguous to guess.
        _ => None,
    }
}

fn year(s: &str) -> Option<i32> {
    (s.len() == 4).then(|| num(s)).flatten()
}

fn day_or_month(s: &str) -> Option<u8> {
    (1..=2).contains(&s.len()).then(|| num(s)).flatten()
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}

/// English month names and their abbreviations (`Mar`, `Sept`), already
/// lower case.
fn month_name(s: &str) -> Option<u8> {
    if s.len() < 3 {
        return None;
    }
    let i = MONTHS
        .iter()
        .position(|m| m.starts_with(s) || (s == "sept" && *m == "september"))?;
    Some(i as u8 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SlashDates::{DayFirst, MonthFirst};

    #[test]
    fn reads_export_formats() {
        let cases = [
            ("2024-03-01", MonthFirst, "2024-03-01"),
            (" 2024-03-01 ", MonthFirst, "2024-03-01"),
            ("2024-03-01T10:00:00Z", MonthFirst, "2024-03-01"),
            ("2024-03-01 10:00:00", MonthFirst, "2024-03-01"),
            ("01.03.2024", MonthFirst, "2024-03-01"),
            ("1.3.2024", MonthFirst, "2024-03-01"),
            ("2024.03.01", MonthFirst, "2024-03-01"),
            ("03/01/2024", MonthFirst, "2024-03-01"),
            ("03/01/2024", DayFirst, "2024-01-03"),
            ("2024/03/01", DayFirst, "2024-03-01"),
            ("20240301", MonthFirst, "2024-03-01"),
            ("1 Mar 2024", MonthFirst, "2024-03-01"),
            ("01-MAR-2024", MonthFirst, "2024-03-01"),
            ("1 Sept 2024", MonthFirst, "2024-09-01"),
            ("March 1, 2024", MonthFirst, "2024-03-01"),
            ("march 1 2024", DayFirst, "2024-03-01"),
            ("29.02.2024", MonthFirst, "2024-02-29"),
            ("1850-01-01", MonthFirst, "1850-01-01"),
            ("2100-12-31", MonthFirst, "2100-12-31"),
        ];
        for (raw, slash, want) in cases {
            assert_eq!(date(raw, slash).as_deref(), Ok(want), "{raw:?} {slash:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_real_date() {
        let cases = [
            ("2024-02-30", "day 30 does not exist in 2024-02"),
            ("2023-02-29", "day 29 does not exist"),
            ("13/01/2024", "month 13 does not exist"),
            ("2024-00-10", "month 0 does not exist"),
            ("0001-01-01", "year 1 is outside 1850..2100"),
            ("2101-01-01", "outside"),
            ("1849-12-31", "outside"),
            ("01-03-2024", "not a date in a known format"),
            ("2024-03/01", "not a date"),
            ("24.03.01", "not a date"),
            ("yesterday", "not a date"),
            ("1 Mat 2024", "not a date"),
            ("", "not a date"),
        ];
        for (raw, want) in cases {
            let err = date(raw, MonthFirst).unwrap_err();
            assert!(err.contains(want), "{raw:?}: {err}");
        }
    }
}
