//! Go's `strconv` parsing rules where clients rely on them.

/// Go's `strconv.ParseBool`.
pub fn parse_bool_str(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
