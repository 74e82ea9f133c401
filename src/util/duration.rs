//! Durations as Vault reads and writes them.
//!
//! Input accepts what Vault's `parseutil.ParseDurationSecond` accepts: an integer number of
//! seconds (JSON number or numeric string), or a Go duration string with units
//! `ns us µs ms s m h d` (fractions allowed, `d` = 24h), e.g. `"768h"`, `"1.5h"`, `"30d"`,
//! `"1h30m"`. Output in Go's `time.Duration.String()` form (`"0s"`, `"3h0m0s"`, `"1m30s"`).

use std::time::Duration;

use serde_json::Value;

/// Why a duration could not be parsed. The message matches Go's wording closely enough for
/// humans; it never contains anything but the offending input, which is not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

impl DurationError {
    fn invalid(s: &str) -> Self {
        Self(format!("time: invalid duration \"{s}\""))
    }
}

/// A signed number of nanoseconds, as Go's `time.Duration`.
pub fn parse_go_duration(s: &str) -> Result<i128, DurationError> {
    let err = || DurationError::invalid(s);
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    let mut total_int: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return Err(err());
        }
        let num = &rest[..num_end];
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => return Err(DurationError(format!("time: missing unit in duration \"{s}\""))),
            _ => return Err(DurationError(format!("time: unknown unit \"{unit}\" in duration \"{s}\""))),
        };
        if num.contains('.') {
            let v: f64 = num.parse().map_err(|_| err())?;
            total += v * mult as f64;
        } else {
            let v: i128 = num.parse().map_err(|_| err())?;
            total_int = v.checked_mul(mult).and_then(|x| total_int.checked_add(x)).ok_or_else(err)?;
        }
    }
    let ns = total_int + total as i128;
    if ns > i64::MAX as i128 {
        return Err(err());
    }
    Ok(if neg { -ns } else { ns })
}

/// Parses a duration field the way Vault does: numbers are seconds, strings are either numeric
/// seconds or Go durations. Returns whole seconds (truncated), possibly negative.
pub fn parse_seconds_signed(v: &Value) -> Result<i64, DurationError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64() {
                Ok(f as i64)
            } else {
                Err(DurationError::invalid(&n.to_string()))
            }
        }
        Value::String(s) => parse_str_seconds_signed(s),
        Value::Null => Ok(0),
        other => Err(DurationError::invalid(&other.to_string())),
    }
}

/// String form of [`parse_seconds_signed`]. Empty string = 0.
pub fn parse_str_seconds_signed(s: &str) -> Result<i64, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(0);
    }
    if let Ok(i) = t.parse::<i64>() {
        return Ok(i);
    }
    let ns = parse_go_duration(t)?;
    Ok((ns / 1_000_000_000) as i64)
}

/// Like [`parse_seconds_signed`] but refuses negative values.
pub fn parse_seconds(v: &Value) -> Result<u64, DurationError> {
    let s = parse_seconds_signed(v)?;
    u64::try_from(s).map_err(|_| {
        DurationError(format!("cannot use negative duration {}", v.to_string().trim_matches('"')))
    })
}

/// `std::time::Duration` from a non-negative seconds field.
pub fn parse_std(v: &Value) -> Result<Duration, DurationError> {
    parse_seconds(v).map(Duration::from_secs)
}

/// Go's `time.Duration.String()` for a whole number of seconds: `0s`, `45s`, `1m30s`, `3h0m0s`.
pub fn format_go_seconds(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let neg = secs < 0;
    let mut s = secs.unsigned_abs();
    let h = s / 3600;
    s %= 3600;
    let m = s / 60;
    s %= 60;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if h > 0 {
        out.push_str(&format!("{h}h{m}m{s}s"));
    } else if m > 0 {
        out.push_str(&format!("{m}m{s}s"));
    } else {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_vault_forms() {
        assert_eq!(parse_seconds(&json!(300)).unwrap(), 300);
        assert_eq!(parse_seconds(&json!("300")).unwrap(), 300);
        assert_eq!(parse_seconds(&json!("5m")).unwrap(), 300);
        assert_eq!(parse_seconds(&json!("768h")).unwrap(), 2_764_800);
        assert_eq!(parse_seconds(&json!("1.5h")).unwrap(), 5400);
        assert_eq!(parse_seconds(&json!("30d")).unwrap(), 2_592_000);
        assert_eq!(parse_seconds(&json!("1h30m")).unwrap(), 5400);
        assert_eq!(parse_seconds(&json!("0s")).unwrap(), 0);
        assert_eq!(parse_seconds(&json!("")).unwrap(), 0);
        assert_eq!(parse_seconds(&json!("1500ms")).unwrap(), 1);
        assert_eq!(parse_seconds_signed(&json!("-1s")).unwrap(), -1);
        assert!(parse_seconds(&json!("-1s")).is_err());
        assert!(parse_seconds(&json!("abc")).is_err());
        assert!(parse_seconds(&json!("5x")).is_err());
        assert!(parse_seconds(&json!(true)).is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_seconds(0), "0s");
        assert_eq!(format_go_seconds(45), "45s");
        assert_eq!(format_go_seconds(90), "1m30s");
        assert_eq!(format_go_seconds(1800), "30m0s");
        assert_eq!(format_go_seconds(10800), "3h0m0s");
        assert_eq!(format_go_seconds(2_764_800), "768h0m0s");
        assert_eq!(format_go_seconds(-60), "-1m0s");
    }
}
