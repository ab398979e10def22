//! Simulated time: nanoseconds in a `u64`, and the human-readable durations of scenario files.

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A point or span of simulated time in nanoseconds.
pub type Nanos = u64;

/// Nanoseconds per microsecond.
pub const US: Nanos = 1_000;
/// Nanoseconds per millisecond.
pub const MS: Nanos = 1_000_000;
/// Nanoseconds per second.
pub const SEC: Nanos = 1_000_000_000;

/// Parses a duration written with a unit: `"150ms"`, `"2s"`, `"1.5s"`, `"20us"`, `"100ns"`,
/// `"1m"`. A leading `-` is accepted only when `signed` is true. Returns nanoseconds.
pub fn parse_duration_signed(text: &str, signed: bool) -> Result<i128, String> {
    let t = text.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if neg && !signed {
        return Err(format!(
            "duration \"{text}\" is negative; durations here must be zero or more, e.g. \"150ms\""
        ));
    }
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let unit_ns: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "" => {
            return Err(format!(
                "duration \"{text}\" has no unit; write it with one of ns, us, ms, s, m, h (e.g. \"150ms\")"
            ))
        }
        other => {
            return Err(format!(
                "duration \"{text}\" has unknown unit \"{other}\"; use one of ns, us, ms, s, m, h"
            ))
        }
    };
    let value: f64 = num.parse().map_err(|_| {
        format!("duration \"{text}\" is not a number followed by a unit, e.g. \"150ms\"")
    })?;
    let ns = value * unit_ns;
    if !ns.is_finite() || ns > 1e18 {
        return Err(format!(
            "duration \"{text}\" is too large; keep it under 30 years"
        ));
    }
    let ns = ns.round() as i128;
    Ok(if neg { -ns } else { ns })
}

/// Formats nanoseconds compactly for people: `1.250s`, `15.0ms`, `800us`, `12ns`.
pub fn fmt_ns(ns: Nanos) -> String {
    fmt_signed_ns(ns as i128)
}

/// Like [`fmt_ns`] for signed spans.
pub fn fmt_signed_ns(ns: i128) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs() as f64;
    if a >= 1e9 {
        format!("{sign}{:.3}s", a / 1e9)
    } else if a >= 1e6 {
        format!("{sign}{:.1}ms", a / 1e6)
    } else if a >= 1e3 {
        format!("{sign}{:.1}us", a / 1e3)
    } else {
        format!("{sign}{}ns", a)
    }
}

/// A non-negative duration read from a scenario file (`"150ms"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct Duration(pub Nanos);

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        fmt_ns(d.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = DurationText::deserialize(d)?;
        let ns = parse_duration_signed(&text.0, false).map_err(de::Error::custom)?;
        Ok(Duration(ns as Nanos))
    }
}

/// A duration that may be negative, such as a clock step (`"-500ms"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct SignedDuration(pub i64);

impl From<SignedDuration> for String {
    fn from(d: SignedDuration) -> String {
        fmt_signed_ns(d.0 as i128)
    }
}

impl<'de> Deserialize<'de> for SignedDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = DurationText::deserialize(d)?;
        let ns = parse_duration_signed(&text.0, true).map_err(de::Error::custom)?;
        Ok(SignedDuration(ns as i64))
    }
}

/// The string form of a duration; a bare number is refused with advice, since its unit would
/// be a guess.
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration string with a unit, such as \"150ms\" or \"2s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it as a string with a unit, e.g. \"{v}ms\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationText, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it as a string with a unit, e.g. \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration_signed("150ms", false), Ok(150 * MS as i128));
        assert_eq!(parse_duration_signed("1.5s", false), Ok(1_500 * MS as i128));
        assert_eq!(parse_duration_signed("20us", false), Ok(20_000));
        assert_eq!(parse_duration_signed("-5ms", true), Ok(-5 * MS as i128));
        assert!(parse_duration_signed("-5ms", false)
            .unwrap_err()
            .contains("negative"));
        assert!(parse_duration_signed("5", false)
            .unwrap_err()
            .contains("no unit"));
        assert!(parse_duration_signed("5 parsecs", false)
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ns(1_250 * MS), "1.250s");
        assert_eq!(fmt_ns(15 * MS), "15.0ms");
        assert_eq!(fmt_signed_ns(-(2 * SEC as i128)), "-2.000s");
    }
}
