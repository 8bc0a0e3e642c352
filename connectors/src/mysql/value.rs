//! Column values as JSON, the same whichever way a row was read: from a
//! query (the binary protocol: initial load, `fetch`, a write's image) or
//! from the binary log, which encodes some types differently (an ENUM as its
//! index, a TIMESTAMP as epoch seconds, a SET as a bit mask, YEAR as text).
//! And JSON back to statement parameters for writes.
//!
//! The forms: integers and YEAR → numbers (TINYINT(1) too: MariaDB has no
//! boolean), FLOAT/DOUBLE → numbers, DECIMAL → its exact text (a JSON number
//! would round it), DATE → `YYYY-MM-DD`, DATETIME → `YYYY-MM-DDTHH:MM:SS`
//! with `.ffffff` when the microseconds are not zero, TIMESTAMP → the same
//! in UTC with `Z`, TIME → `[-]HH:MM:SS[.ffffff]`, text, ENUM and SET →
//! strings (SET members comma-joined), NULL → null. Binary columns (BINARY,
//! BLOB, BIT, geometry, MySQL's JSON) and text in other character sets than
//! UTF-8 and ASCII are not read ([`Kind::Skip`]).

use mysql_async::Value as Sql;
use serde_json::{Number, Value as Json};
use time::OffsetDateTime;

/// How a column's values are read and written, from its declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Decimal,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Text,
    /// ENUM with its members in order (the binary log sends the 1-based index).
    Enum(Vec<String>),
    /// SET with its members in order (the binary log sends a bit mask).
    Set(Vec<String>),
    /// Not captured and never written.
    Skip,
}

/// Where a value was read: the two encode ENUM, SET, TIMESTAMP and YEAR
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Query,
    Binlog,
}

/// Why a value cannot be read or written; never quotes the value.
pub(crate) type Reason = &'static str;

impl Kind {
    /// The kind of a column from `information_schema.COLUMNS`: `DATA_TYPE`,
    /// `COLUMN_TYPE` (for ENUM and SET members) and `CHARACTER_SET_NAME`.
    pub(crate) fn from_declared(data_type: &str, column_type: &str, charset: Option<&str>) -> Kind {
        let utf8 = || {
            charset.is_none_or(|c| {
                let c = c.to_ascii_lowercase();
                c.starts_with("utf8") || c == "ascii"
            })
        };
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Kind::Int,
            "float" | "double" | "real" => Kind::Float,
            "decimal" | "numeric" => Kind::Decimal,
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "time" => Kind::Time,
            "year" => Kind::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if utf8() => {
                Kind::Text
            }
            "enum" if utf8() => Kind::Enum(members(column_type)),
            "set" if utf8() => Kind::Set(members(column_type)),
            _ => Kind::Skip,
        }
    }
}

/// The members of `enum('a','b''c')` as declared (`''` is a quote).
fn members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = column_type[open + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    member.push('\'');
                } else {
                    break;
                }
            } else {
                member.push(c);
            }
        }
        out.push(member);
    }
    out
}

/// A column value as JSON; `Ok(None)` for a column that is not read.
pub(crate) fn to_json(kind: &Kind, value: Sql, origin: Origin) -> Result<Option<Json>, Reason> {
    if matches!(kind, Kind::Skip) {
        return Ok(None);
    }
    if value == Sql::NULL {
        return Ok(Some(Json::Null));
    }
    let json = match (kind, value) {
        (Kind::Int, Sql::Int(i)) => Json::from(i),
        (Kind::Int, Sql::UInt(u)) => Json::from(u),
        (Kind::Int, Sql::Bytes(b)) => int_text(&b)?,
        (Kind::Float, Sql::Float(f)) => float(f64::from(f))?,
        (Kind::Float, Sql::Double(f)) => float(f)?,
        (Kind::Float, Sql::Bytes(b)) => float(utf8(&b)?.parse().map_err(|_| "not a number")?)?,
        (Kind::Decimal, Sql::Bytes(b)) => Json::String(utf8(&b)?.to_string()),
        (Kind::Date, Sql::Date(y, m, d, ..)) => Json::String(format!("{y:04}-{m:02}-{d:02}")),
        (Kind::DateTime, Sql::Date(y, mo, d, h, mi, s, us)) => {
            Json::String(datetime_text(y, mo, d, h, mi, s, us))
        }
        (Kind::Timestamp, Sql::Date(y, mo, d, h, mi, s, us)) => {
            Json::String(datetime_text(y, mo, d, h, mi, s, us) + "Z")
        }
        // The binary log: seconds (and microseconds) since the epoch, UTC.
        (Kind::Timestamp, Sql::Bytes(b)) if origin == Origin::Binlog => epoch_text(utf8(&b)?)?,
        (Kind::Timestamp, Sql::Int(secs)) => epoch_text(&secs.to_string())?,
        (Kind::Time, Sql::Time(neg, days, h, m, s, us)) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if neg { "-" } else { "" };
            let frac = if us == 0 {
                String::new()
            } else {
                format!(".{us:06}")
            };
            Json::String(format!("{sign}{hours:02}:{m:02}:{s:02}{frac}"))
        }
        (Kind::Year, Sql::Int(y)) => Json::from(y),
        (Kind::Year, Sql::UInt(y)) => Json::from(y),
        // The binary log sends 1900 + the stored byte; 0 is the year 0000.
        (Kind::Year, Sql::Bytes(b)) => match int_text(&b)? {
            y if origin == Origin::Binlog && y == 1900 => Json::from(0),
            y => y,
        },
        (Kind::Text, Sql::Bytes(b)) => Json::String(utf8(&b)?.to_string()),
        (Kind::Enum(names), Sql::Int(i)) => Json::String(enum_member(names, i)?),
        (Kind::Enum(_), Sql::Bytes(b)) => Json::String(utf8(&b)?.to_string()),
        (Kind::Set(names), Sql::Bytes(b)) if origin == Origin::Binlog => {
            Json::String(set_members(names, &b))
        }
        (Kind::Set(_), Sql::Bytes(b)) => Json::String(utf8(&b)?.to_string()),
        _ => return Err("value of an unexpected type for the column"),
    };
    Ok(Some(json))
}

fn utf8(b: &[u8]) -> Result<&str, Reason> {
    std::str::from_utf8(b).map_err(|_| "text is not valid UTF-8")
}

fn int_text(b: &[u8]) -> Result<Json, Reason> {
    let t = utf8(b)?;
    t.parse::<i64>()
        .map(Json::from)
        .or_else(|_| t.parse::<u64>().map(Json::from))
        .map_err(|_| "not an integer")
}

fn float(f: f64) -> Result<Json, Reason> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or("not a finite number")
}

fn datetime_text(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> String {
    let base = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if us == 0 {
        base
    } else {
        format!("{base}.{us:06}")
    }
}

/// `secs[.micros]` since the epoch as a UTC date-time; 0 is MariaDB's zero
/// timestamp, which a query reads as 0000-00-00 00:00:00.
fn epoch_text(text: &str) -> Result<Json, Reason> {
    let (secs, micros) = text.split_once('.').unwrap_or((text, "0"));
    let secs: i64 = secs.parse().map_err(|_| "not a timestamp")?;
    let micros: u32 = micros.parse().map_err(|_| "not a timestamp")?;
    if secs == 0 && micros == 0 {
        return Ok(Json::String(datetime_text(0, 0, 0, 0, 0, 0, 0) + "Z"));
    }
    let t = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| "timestamp out of range")?;
    Ok(Json::String(
        datetime_text(
            u16::try_from(t.year()).map_err(|_| "timestamp out of range")?,
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            micros,
        ) + "Z",
    ))
}

fn enum_member(names: &[String], index: i64) -> Result<String, Reason> {
    // Index 0 is the empty string MariaDB stores for an invalid member.
    if index == 0 {
        return Ok(String::new());
    }
    usize::try_from(index - 1)
        .ok()
        .and_then(|i| names.get(i))
        .cloned()
        .ok_or("ENUM index outside the column's members")
}

fn set_members(names: &[String], mask: &[u8]) -> String {
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            mask.get(i / 8)
                .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
        })
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A JSON value as a statement parameter for a column of `kind`.
pub(crate) fn to_param(kind: &Kind, value: &Json) -> Result<Sql, Reason> {
    Ok(match value {
        Json::Null => Sql::NULL,
        Json::Bool(b) => Sql::Int(i64::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Sql::Int(i),
            (_, Some(u), _) => Sql::UInt(u),
            (_, _, Some(f)) => Sql::Double(f),
            _ => return Err("not a number MariaDB can store"),
        },
        // The session's time zone is UTC: a TIMESTAMP is written without
        // the `Z` it is read with, which MariaDB does not parse.
        Json::String(s) if *kind == Kind::Timestamp => {
            Sql::Bytes(s.strip_suffix('Z').unwrap_or(s).as_bytes().to_vec())
        }
        Json::String(s) => Sql::Bytes(s.as_bytes().to_vec()),
        Json::Array(_) | Json::Object(_) => {
            return Err("a list or object cannot be written to a column")
        }
    })
}

/// The record id of a key value: text as is, numbers in decimal.
pub(crate) fn record_id(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A record id as the key column's parameter: an integer key is bound as a
/// number so that the primary-key index is used as is.
pub(crate) fn key_param(kind: &Kind, record_id: &str) -> Result<Sql, Reason> {
    match kind {
        Kind::Int => record_id
            .parse::<i64>()
            .map(Sql::Int)
            .or_else(|_| record_id.parse::<u64>().map(Sql::UInt))
            .map_err(|_| "the record id is not an integer, and the key column is"),
        _ => Ok(Sql::Bytes(record_id.as_bytes().to_vec())),
    }
}

/// A DATETIME column's JSON value (`modified_column`) as a UTC time.
pub(crate) fn utc_datetime(value: &Json) -> Option<OffsetDateTime> {
    let text = value.as_str()?;
    let text = text.strip_suffix('Z').unwrap_or(text);
    let format = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// A time the server keeps to the second (a binary-log event's header, a
/// DATETIME column) names a moment somewhere in that second. A change
/// captured while the second still runs is placed at the capture instant;
/// one captured later at the second's end, the latest it can have been.
/// Truncated to the second's start, an edit made late in a second would
/// lose a most-recent conflict to one made earlier in it elsewhere. A time
/// with a fraction is precise and kept.
pub(crate) fn within_second(at: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
    if at.nanosecond() != 0 {
        return at;
    }
    let end = at + time::Duration::nanoseconds(999_999_999);
    now.clamp(at, end)
}

/// The change time in a DATETIME column's value, placed in its second.
pub(crate) fn change_time(value: &Json) -> Option<OffsetDateTime> {
    utc_datetime(value).map(|at| within_second(at, OffsetDateTime::now_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_to_the_second_is_placed_in_its_second() {
        let at = time::macros::datetime!(2026-03-01 10:00:05 UTC);
        let during = at + time::Duration::milliseconds(300);
        assert_eq!(within_second(at, during), during, "captured within it");
        let later = at + time::Duration::seconds(7);
        assert_eq!(
            within_second(at, later),
            at + time::Duration::nanoseconds(999_999_999),
            "captured after it: its end"
        );
        let earlier = at - time::Duration::seconds(2);
        assert_eq!(
            within_second(at, earlier),
            at,
            "a clock behind the server's"
        );
        let precise = at + time::Duration::microseconds(250);
        assert_eq!(within_second(precise, later), precise);
    }

    fn both(kind: &Kind, query: Sql, binlog: Sql) -> Json {
        let a = to_json(kind, query, Origin::Query).unwrap().unwrap();
        let b = to_json(kind, binlog, Origin::Binlog).unwrap().unwrap();
        assert_eq!(a, b);
        a
    }

    #[test]
    fn query_and_binlog_encodings_read_the_same() {
        let e = Kind::from_declared("enum", "enum('a','it''s','c')", Some("utf8mb4"));
        assert_eq!(e, Kind::Enum(vec!["a".into(), "it's".into(), "c".into()]));
        assert_eq!(both(&e, Sql::Bytes(b"it's".to_vec()), Sql::Int(2)), "it's");
        let s = Kind::from_declared("set", "set('x','y','z')", Some("utf8mb4"));
        assert_eq!(
            both(&s, Sql::Bytes(b"x,z".to_vec()), Sql::Bytes(vec![0b101])),
            "x,z"
        );
        assert_eq!(
            both(
                &Kind::Timestamp,
                Sql::Date(2024, 3, 1, 10, 0, 5, 250),
                Sql::Bytes(b"1709287205.000250".to_vec())
            ),
            "2024-03-01T10:00:05.000250Z"
        );
        assert_eq!(
            both(&Kind::Year, Sql::Int(0), Sql::Bytes(b"1900".to_vec())),
            0
        );
        assert_eq!(
            both(
                &Kind::Date,
                Sql::Date(1999, 12, 31, 0, 0, 0, 0),
                Sql::Date(1999, 12, 31, 0, 0, 0, 0)
            ),
            "1999-12-31"
        );
    }

    #[test]
    fn bad_text_is_refused_without_its_value() {
        let r = to_json(&Kind::Text, Sql::Bytes(vec![0xff, 0xfe]), Origin::Binlog);
        assert_eq!(r, Err("text is not valid UTF-8"));
        assert_eq!(
            to_json(&Kind::Skip, Sql::Bytes(vec![0xff]), Origin::Query),
            Ok(None)
        );
    }

    #[test]
    fn params_and_keys() {
        assert_eq!(to_param(&Kind::Int, &Json::Bool(true)), Ok(Sql::Int(1)));
        assert!(to_param(&Kind::Text, &serde_json::json!([1])).is_err());
        assert_eq!(key_param(&Kind::Int, "42"), Ok(Sql::Int(42)));
        assert!(key_param(&Kind::Int, "4 2").is_err());
        assert_eq!(record_id(&Json::from(7)), Some("7".into()));
        let t = utc_datetime(&Json::String("2024-03-01T10:00:05".into())).unwrap();
        assert_eq!(t.unix_timestamp(), 1709287205);
    }
}
