//! Timestamps as Go's `time.RFC3339Nano` prints them: UTC, `Z`, fractional seconds with trailing
//! zeros removed (and no dot at all for whole seconds).

use time::OffsetDateTime;

/// Go's zero time, as Vault prints unset timestamps.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `2024-05-01T10:00:00.123456789Z` (trailing zeros trimmed).
pub fn rfc3339_nano(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    // Every kv v2 read prints a few of these: digits are written directly (years outside
    // 0..=9999, which Go prints differently anyway, take the general path).
    let Ok(year) = u16::try_from(t.year()) else { return rfc3339_nano_general(t) };
    if year > 9999 {
        return rfc3339_nano_general(t);
    }
    let mut b = [0u8; 30];
    let digits = |b: &mut [u8], mut v: u32| {
        for d in b.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut b[0..4], u32::from(year));
    b[4] = b'-';
    digits(&mut b[5..7], u32::from(u8::from(t.month())));
    b[7] = b'-';
    digits(&mut b[8..10], u32::from(t.day()));
    b[10] = b'T';
    digits(&mut b[11..13], u32::from(t.hour()));
    b[13] = b':';
    digits(&mut b[14..16], u32::from(t.minute()));
    b[16] = b':';
    digits(&mut b[17..19], u32::from(t.second()));
    let mut len = 19;
    let nanos = t.nanosecond();
    if nanos != 0 {
        b[19] = b'.';
        digits(&mut b[20..29], nanos);
        len = 29;
        while b[len - 1] == b'0' {
            len -= 1;
        }
    }
    b[len] = b'Z';
    b[..=len].iter().map(|&c| char::from(c)).collect()
}

/// [`rfc3339_nano`] through `format!`, for any year.
fn rfc3339_nano_general(t: OffsetDateTime) -> String {
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
        assert_eq!(rfc3339_nano(datetime!(0001-01-01 00:00:00 UTC)), GO_ZERO_TIME);
        assert_eq!(
            rfc3339_nano(datetime!(2018-03-22 02:24:06.000000001 UTC)),
            "2018-03-22T02:24:06.000000001Z"
        );
        assert_eq!(rfc3339_nano(datetime!(2018-03-22 02:24:06.1 +02:00)), "2018-03-22T00:24:06.1Z");
    }

    proptest::proptest! {
        /// The direct writer prints what the general one does, at any instant in years 0..=9999.
        #[test]
        fn direct_digits_match_the_general_writer(secs in -62_167_219_200i64..253_402_300_799, nanos in 0u32..1_000_000_000, trim in 0u32..10) {
            // Many instants with trailing zeros in their fraction, and some whole seconds.
            let nanos = nanos - nanos % 10u32.pow(trim.min(9));
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap().replace_nanosecond(nanos).unwrap();
            proptest::prop_assert_eq!(rfc3339_nano(t), rfc3339_nano_general(t));
        }
    }
}
