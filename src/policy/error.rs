//! Errors of the policy parser, with Vault's texts.

use std::fmt;

/// Go's `%q` for the strings that appear in messages.
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// `hashicorp/go-multierror`'s rendering.
pub(crate) fn multierror(items: &[String]) -> String {
    let mut out = if items.len() == 1 {
        "1 error occurred:\n".to_owned()
    } else {
        format!("{} errors occurred:\n", items.len())
    };
    for i in items {
        out.push_str("\t* ");
        out.push_str(i);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A key that is not allowed where it appears, with its 1-based line (0 where Vault says 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKey {
    pub key: String,
    pub line: usize,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid key {} on line {}", go_quote(&self.key), self.line)
    }
}

pub(crate) fn invalid_keys(keys: &[InvalidKey]) -> String {
    multierror(&keys.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// What is wrong inside one path stanza. `Display` is the part after `path "<p>": `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("error handling control_group: {}", multierror(&["requires at least one factor but had none".to_owned()]))]
    ControlGroupWithoutFactor,
    #[error("error parsing {field}: {message}")]
    Duration { field: &'static str, message: String },
    #[error("path {}: invalid expiration time: could not parse string as date and time", go_quote(.path))]
    Expiration { path: String },
    #[error("list_scan_response_keys_filter_path needs to be used on a path with the list capability")]
    FilterNeedsList,
    #[error("path {}: invalid capability {}", go_quote(.path), go_quote(.capability))]
    InvalidCapability { path: String, capability: String },
    #[error("{}", invalid_keys(.0))]
    InvalidKeys(Vec<InvalidKey>),
    #[error("path {}: invalid policy {}", go_quote(.path), go_quote(.policy))]
    InvalidPolicy { path: String, policy: String },
    #[error("path {}: strconv.ParseInt: parsing {}: invalid syntax", go_quote(.path), go_quote(.value))]
    PaginationLimit { path: String, value: String },
    #[error("path {}: {key}: expected {expected}", go_quote(.path))]
    Type { path: String, key: String, expected: &'static str },
    #[error("path {}: invalid use of wildcards ('+*' is forbidden)", go_quote(.path))]
    WildcardPlusStar { path: String },
    #[error("max_wrapping_ttl cannot be less than min_wrapping_ttl")]
    WrapTtlOrder,
}

/// Why a policy document was rejected. `Display` is Vault's message (a 400 on write).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Unknown top-level keys (only `name` and `path` are allowed).
    #[error("failed to parse policy: {}", invalid_keys(.0))]
    InvalidTopLevelKeys(Vec<InvalidKey>),
    /// A problem in the stanza for `path` (as written).
    #[error("failed to parse policy: path {}: {error}", go_quote(.path))]
    Path { path: String, error: PathError },
    /// Not valid HCL or JSON, or a value HCL v1 has no equivalent for.
    #[error("failed to parse policy: {0}")]
    Syntax(String),
}
