//! Calendar dates (of birth, of founding) compared with data entry slips in
//! mind: swapped day and month, a mistyped digit, an off-by-a-day date.

use time::{Date, Month};

/// Day and month swapped (03-04 vs 04-03): the classic US/European mix-up.
const DAY_MONTH_SWAPPED: f64 = 0.85;
/// One digit differs (1980 vs 1990, 12 vs 13).
const ONE_DIGIT: f64 = 0.8;
/// Two adjacent digits swapped (1985 vs 1958).
const ADJACENT_DIGITS_SWAPPED: f64 = 0.75;
/// Dates one day apart, as time zone slips produce.
const ONE_DAY: f64 = 0.9;
/// Beyond one day, the score halves every this many days.
const HALF_LIFE_DAYS: f64 = 10.0;

/// Similarity of two ISO dates ("YYYY-MM-DD", anything after a 'T' or a
/// space ignored) in [0, 1]: 1.0 when equal; `DAY_MONTH_SWAPPED`,
/// `ONE_DIGIT` or `ADJACENT_DIGITS_SWAPPED` for the typical typos; otherwise
/// decaying with the distance in days from `ONE_DAY` for neighbours. The
/// best applicable score wins; 0.0 when either date does not parse.
pub fn date_similarity(a_iso: &str, b_iso: &str) -> f64 {
    let (Some(a), Some(b)) = (IsoDate::parse(a_iso), IsoDate::parse(b_iso)) else {
        return 0.0;
    };
    if a.digits == b.digits {
        return 1.0;
    }
    let days = (a.date.to_julian_day() - b.date.to_julian_day()).unsigned_abs();
    let mut score = ONE_DAY * 0.5f64.powf(f64::from(days - 1) / HALF_LIFE_DAYS);
    let (da, db) = (a.date, b.date);
    if da.year() == db.year()
        && da.day() == u8::from(db.month())
        && db.day() == u8::from(da.month())
    {
        score = score.max(DAY_MONTH_SWAPPED);
    }
    let mut differing = (0..8).filter(|&i| a.digits[i] != b.digits[i]);
    match (differing.next(), differing.next(), differing.next()) {
        (Some(_), None, _) => score = score.max(ONE_DIGIT),
        (Some(i), Some(j), None)
            if j == i + 1 && a.digits[i] == b.digits[j] && a.digits[j] == b.digits[i] =>
        {
            score = score.max(ADJACENT_DIGITS_SWAPPED);
        }
        _ => {}
    }
    score
}

/// Days between two ISO dates; `None` when either does not parse.
pub fn days_apart(a_iso: &str, b_iso: &str) -> Option<u64> {
    let (a, b) = (IsoDate::parse(a_iso)?, IsoDate::parse(b_iso)?);
    Some((a.date.to_julian_day() - b.date.to_julian_day()).unsigned_abs() as u64)
}

/// Two different ISO dates of one year with day and month swapped
/// (03-04 vs 04-03).
pub fn day_month_swapped(a_iso: &str, b_iso: &str) -> bool {
    let (Some(a), Some(b)) = (IsoDate::parse(a_iso), IsoDate::parse(b_iso)) else {
        return false;
    };
    let (da, db) = (a.date, b.date);
    da != db
        && da.year() == db.year()
        && da.day() == u8::from(db.month())
        && db.day() == u8::from(da.month())
}

/// Two ISO dates with the same day and month in different years: a wrong
/// year, as when it is typed from an age or a form's other line.
pub fn other_year(a_iso: &str, b_iso: &str) -> bool {
    let (Some(a), Some(b)) = (IsoDate::parse(a_iso), IsoDate::parse(b_iso)) else {
        return false;
    };
    let (da, db) = (a.date, b.date);
    da.year() != db.year() && da.month() == db.month() && da.day() == db.day()
}

/// A valid calendar date and its eight digits YYYYMMDD.
struct IsoDate {
    date: Date,
    digits: [u8; 8],
}

impl IsoDate {
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let day_part = s.split(['T', ' ']).next()?;
        let b = day_part.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let mut digits = [0u8; 8];
        for (d, &c) in digits
            .iter_mut()
            .zip(b[..4].iter().chain(&b[5..7]).chain(&b[8..]))
        {
            if !c.is_ascii_digit() {
                return None;
            }
            *d = c - b'0';
        }
        let number = |ds: &[u8]| ds.iter().fold(0i32, |n, &d| n * 10 + i32::from(d));
        let month = Month::try_from(u8::try_from(number(&digits[4..6])).ok()?).ok()?;
        let day = u8::try_from(number(&digits[6..])).ok()?;
        let date = Date::from_calendar_date(number(&digits[..4]), month, day).ok()?;
        Some(Self { date, digits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let cases: &[(&str, &str, f64, f64)] = &[
            ("1980-03-04", "1980-03-04", 1.0, 1.0),
            ("1980-03-04", "1980-03-04T00:00:00Z", 1.0, 1.0),
            ("1980-03-04", "1980-04-03", 0.7, 0.9),
            ("1980-03-04", "1980-03-05", 0.85, 0.95),
            ("1980-03-14", "1980-03-17", 0.7, 0.9),
            ("1980-01-01", "1990-01-01", 0.75, 0.85),
            ("1985-06-01", "1958-06-01", 0.7, 0.8),
            ("1980-03-04", "1980-05-20", 0.0, 0.1),
            ("1980-03-04", "2001-11-23", 0.0, 0.01),
            ("1980-03-04", "1980-13-04", 0.0, 0.0),
            ("1980-02-30", "1980-02-30", 0.0, 0.0),
            ("04.03.1980", "1980-03-04", 0.0, 0.0),
            ("", "", 0.0, 0.0),
        ];
        for &(a, b, lo, hi) in cases {
            let s = date_similarity(a, b);
            assert!((lo..=hi).contains(&s), "{a} vs {b}: {s}");
            assert_eq!(s, date_similarity(b, a), "symmetric: {a} vs {b}");
        }
    }

    #[test]
    fn days_apart_and_swapped_day_and_month() {
        assert_eq!(days_apart("1980-03-04", "1980-03-14"), Some(10));
        assert_eq!(days_apart("1980-12-31", "1981-01-01"), Some(1));
        assert_eq!(days_apart("1980-03-04", "04.03.1980"), None);
        assert!(day_month_swapped("1980-03-04", "1980-04-03"));
        assert!(!day_month_swapped("1980-03-03", "1980-03-03"));
        assert!(!day_month_swapped("1980-03-04", "1981-04-03"));
        assert!(!day_month_swapped("1980-01-31", "1980-31-01"));
        assert!(other_year("1959-04-07", "2008-04-07"));
        assert!(!other_year("1959-04-07", "1959-04-07"));
        assert!(!other_year("1959-04-07", "1959-07-04"));
        assert!(!other_year("1959-04-07", "not a date"));
    }
}
