//! Timestamps as Go's `time.RFC3339Nano` prints them: UTC, `Z`, fractional seconds with trailing
//! zeros removed (and no dot at all for whole seconds).

use time::OffsetDateTime;

/// Go's zero time, as Vault prints unset timestamps.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `2024-05-01T10:00:00.123456789Z` (trailing zeros trimmed).
pub fn rfc3339_nano(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Seconds-precision RFC 3339 (`2024-05-01T10:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    rfc3339_nano(t.replace_nanosecond(0).unwrap_or(t))
}

/// Parses RFC 3339 (any precision, any offset).
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn trims_like_go() {
        assert_eq!(
            rfc3339_nano(datetime!(2018-03-22 02:24:06.945319214 UTC)),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(rfc3339_nano(datetime!(2018-03-22 02:24:06.9453 UTC)), "2018-03-22T02:24:06.9453Z");
        assert_eq!(rfc3339_nano(datetime!(2018-03-22 02:24:06 UTC)), "2018-03-22T02:24:06Z");
        assert_eq!(rfc3339(datetime!(2018-03-22 02:24:06.5 UTC)), "2018-03-22T02:24:06Z");
        let t = datetime!(2018-03-22 02:24:06.945319214 UTC);
        assert_eq!(parse_rfc3339(&rfc3339_nano(t)), Some(t));
    }
}
