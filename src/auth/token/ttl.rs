//! Vault's TTL arithmetic for token create and renew, and the exact warning it gives when a
//! requested TTL or period is capped (clients show it verbatim).

use crate::util::duration::format_go_seconds;

/// Vault's TTL calculation with capping warnings. Returns (ttl seconds, warning).
///
/// The effective maximum is the tighter of `max_ttl` and `explicit_max_ttl` (0 = none). A
/// periodic token gets its period (capped); otherwise the requested TTL, else `default_ttl`
/// (capped). `requested_label` is the TTL as the client wrote it, for the warning.
pub fn calculate_ttl(
    requested: u64,
    default_ttl: u64,
    period: u64,
    max_ttl: u64,
    explicit_max_ttl: u64,
    requested_label: &str,
) -> (u64, Option<String>) {
    let mut max = max_ttl;
    if explicit_max_ttl > 0 && (max == 0 || explicit_max_ttl < max) {
        max = explicit_max_ttl;
    }
    if period > 0 {
        if max > 0 && period > max {
            return (
                max,
                Some(format!(
                    "period of \"{}\" exceeded the effective max_ttl of \"{}\"; period value is capped accordingly",
                    label_or(requested_label, period),
                    go_short(max)
                )),
            );
        }
        return (period, None);
    }
    let ttl = if requested > 0 { requested } else { default_ttl };
    if max > 0 && ttl > max {
        let shown = if requested > 0 { label_or(requested_label, requested) } else { go_short(ttl) };
        return (max, Some(ttl_capped(&shown, max)));
    }
    (ttl, None)
}

/// The warning for a TTL (shown as the client wrote it, `shown`) capped to `max` seconds.
pub fn ttl_capped(shown: &str, max: u64) -> String {
    format!(
        "TTL of \"{shown}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
        go_short(max)
    )
}

/// `label` when the client gave one, else `secs` in Go's short form.
pub fn label_or(label: &str, secs: u64) -> String {
    if label.is_empty() {
        go_short(secs)
    } else {
        label.to_owned()
    }
}

/// Go's duration string without zero trailing units (`768h`, `5m`, `1h30m`), as Vault prints
/// capped TTLs.
fn go_short(secs: u64) -> String {
    let s = format_go_seconds(secs as i64);
    let s = s.strip_suffix("0s").filter(|r| !r.is_empty()).map(str::to_owned).unwrap_or(s);
    s.strip_suffix("0m").filter(|r| r.ends_with('h')).map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_capping_messages() {
        assert_eq!(
            calculate_ttl(1000 * 3600, 768 * 3600, 0, 768 * 3600, 0, "1000h"),
            (768 * 3600, Some("TTL of \"1000h\" exceeded the effective max_ttl of \"768h\"; TTL value is capped accordingly".into()))
        );
        assert_eq!(
            calculate_ttl(1800, 768 * 3600, 0, 768 * 3600, 300, "30m"),
            (300, Some("TTL of \"30m\" exceeded the effective max_ttl of \"5m\"; TTL value is capped accordingly".into()))
        );
        assert_eq!(calculate_ttl(0, 768 * 3600, 1800, 768 * 3600, 0, ""), (1800, None));
        assert_eq!(calculate_ttl(300, 768 * 3600, 0, 768 * 3600, 0, "5m"), (300, None));
    }
}
