//! The values a policy compares facts with, typed once when it is compiled: numbers, strings
//! and booleans, and the bounds of ordering operators (numbers and dates). And how values are
//! shown in messages.

use chrono::{DateTime, NaiveDate};
use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::fmt;

/// A number as written in a policy: integers stay exact, everything else is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn from_json(number: &Number) -> Option<Self> {
        match number.as_i64() {
            Some(i) => Some(Num::Int(i)),
            None => number.as_f64().filter(|f| f.is_finite()).map(Num::Float),
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        reason = "int/float comparisons are approximate"
    )]
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub(crate) fn to_json(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        }
    }

    /// Numeric order; int and float compare alike. `None` only for NaN, which compiling rules out.
    pub(crate) fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A value `eq`, `ne`, `in` and `not_in` compare with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Num(Num),
    Str(Box<str>),
    Bool(bool),
}

impl Scalar {
    /// A YAML scalar as a comparison value; `None` for null, lists and mappings.
    pub(crate) fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => Num::from_json(n).map(Scalar::Num),
            Value::String(s) => Some(Scalar::Str(s.as_str().into())),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            Scalar::Num(n) => n.to_json(),
            Scalar::Str(s) => Value::String(s.to_string()),
            Scalar::Bool(b) => Value::Bool(*b),
        }
    }

    /// Equality with a fact: numbers numerically, strings and booleans exactly; different
    /// types are never equal.
    pub(crate) fn matches(&self, fact: &Value) -> bool {
        match (self, fact) {
            (Scalar::Num(a), Value::Number(b)) => {
                Num::from_json(b).is_some_and(|b| a.compare(b) == Some(Ordering::Equal))
            }
            (Scalar::Str(a), Value::String(b)) => **a == **b,
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// A point in time: seconds and nanoseconds since the Unix epoch, UTC.
pub(crate) type Instant = (i64, u32);

/// Parses an RFC 3339 date-time (`2024-05-01T10:00:00Z`) or full date (`2024-05-01`, taken as
/// midnight UTC).
pub(crate) fn parse_instant(text: &str) -> Option<Instant> {
    if let Ok(datetime) = DateTime::parse_from_rfc3339(text) {
        return Some((datetime.timestamp(), datetime.timestamp_subsec_nanos()));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc();
    Some((midnight.timestamp(), 0))
}

/// The value an ordering operator compares with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Num(Num),
    /// A date as written, and the instant it stands for.
    Date(Box<str>, Instant),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Num(n) => write!(f, "{n}"),
            Bound::Date(text, _) => f.write_str(text),
        }
    }
}

/// A value's JSON type, for messages (`a string`).
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A value for a message: short scalars as written, other things by kind.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => format!("`{n}`"),
        other => kind_of(other).to_owned(),
    }
}

/// A JSON value as a policy author writes it in flow style: strings bare, lists in brackets.
pub(crate) struct ValueText<'a>(pub &'a Value);

impl fmt::Display for ValueText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(s) => f.write_str(s),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", ValueText(item))?;
                }
                f.write_str("]")
            }
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_rfc3339_or_full_date() {
        assert_eq!(parse_instant("1970-01-02"), Some((86_400, 0)));
        assert_eq!(
            parse_instant("1970-01-01T00:00:01.5Z"),
            Some((1, 500_000_000))
        );
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00"), Some((0, 0)));
        for bad in ["", "yesterday", "2024-13-01", "2024-05-01 10:00", "12000"] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
