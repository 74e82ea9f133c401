//! The typed form of an ACL policy: capabilities, path patterns and stanzas. Produced by
//! [`parse`](super::parse), compiled by [`acl`](super::acl).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Capabilities

/// A set of capabilities (Vault's bitmap).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Caps(u16);

impl Caps {
    pub const CREATE: Caps = Caps(1 << 1);
    pub const DELETE: Caps = Caps(1 << 4);
    pub const DENY: Caps = Caps(1);
    pub const LIST: Caps = Caps(1 << 5);
    pub const NONE: Caps = Caps(0);
    pub const PATCH: Caps = Caps(1 << 7);
    pub const READ: Caps = Caps(1 << 2);
    pub const SCAN: Caps = Caps(1 << 8);
    pub const SUDO: Caps = Caps(1 << 6);
    pub const UPDATE: Caps = Caps(1 << 3);

    /// Every named capability with its name, in alphabetical order of the names.
    const NAMED: [(&'static str, Caps); 9] = [
        ("create", Caps::CREATE),
        ("delete", Caps::DELETE),
        ("deny", Caps::DENY),
        ("list", Caps::LIST),
        ("patch", Caps::PATCH),
        ("read", Caps::READ),
        ("scan", Caps::SCAN),
        ("sudo", Caps::SUDO),
        ("update", Caps::UPDATE),
    ];

    /// The capability called `name` (exact, case-sensitive, as Vault).
    pub fn from_name(name: &str) -> Option<Caps> {
        Self::NAMED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// True if every bit of `other` is set.
    pub fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set.
    pub fn intersects(self, other: Caps) -> bool {
        self.0 & other.0 != 0
    }

    /// The raw bit set (a map key for single capabilities).
    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True for an explicit deny.
    pub fn is_deny(self) -> bool {
        self.contains(Caps::DENY)
    }

    /// Names of the set bits, alphabetical.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED.iter().filter(|(_, c)| self.contains(*c)).map(|(n, _)| *n).collect()
    }

    /// Each single capability contained in `self`.
    pub fn iter(self) -> impl Iterator<Item = Caps> {
        Self::NAMED.into_iter().map(|(_, c)| c).filter(move |c| self.contains(*c))
    }
}

impl std::ops::BitOr for Caps {
    type Output = Caps;
    fn bitor(self, rhs: Caps) -> Caps {
        Caps(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Caps {
    fn bitor_assign(&mut self, rhs: Caps) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caps{:?}", self.names())
    }
}

// ---------------------------------------------------------------------------------------------
// Typed policy

/// A parsed policy document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Stanzas in document order (expired ones already dropped).
    pub paths: Vec<PathRule>,
}

/// What a path pattern matches, decided once at parse time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// No wildcard: the path itself.
    Exact(String),
    /// Ends in `*` and has no `+` segment: everything starting with the string (the `*` is
    /// stripped).
    Prefix(String),
    /// Has a `+` segment (Vault's test: the pattern is `+`, contains `/+` or starts with `+/`).
    /// `pattern` is the full text (a trailing `*` kept); matching splits it on `/`.
    Segments { pattern: String },
    /// Uses identity templating (`{{...}}`). coffer has no identity store, so these stanzas
    /// never match, as in Vault for a token without an entity.
    Templated(String),
}

impl PathPattern {
    /// Classifies a path as Vault does (after the leading `/` has been stripped).
    pub fn classify(path: &str) -> PathPattern {
        if path.contains("{{") && path.contains("}}") {
            return PathPattern::Templated(path.to_owned());
        }
        if path == "+" || path.contains("/+") || path.starts_with("+/") {
            return PathPattern::Segments { pattern: path.to_owned() };
        }
        match path.strip_suffix('*') {
            Some(prefix) => PathPattern::Prefix(prefix.to_owned()),
            None => PathPattern::Exact(path.to_owned()),
        }
    }

    /// The pattern as written (with its `*`), for merging equal patterns.
    pub fn text(&self) -> String {
        match self {
            PathPattern::Exact(p) | PathPattern::Segments { pattern: p } | PathPattern::Templated(p) => {
                p.clone()
            }
            PathPattern::Prefix(p) => format!("{p}*"),
        }
    }
}

/// Parameter constraints: lower-cased parameter name → allowed (or denied) values; an empty
/// list means any value.
pub type ParamMap = BTreeMap<String, Vec<Value>>;

/// One `path "..." { ... }` stanza.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRule {
    /// The path as written in the document (before the leading `/` is stripped).
    pub raw_path: String,
    pub pattern: PathPattern,
    pub capabilities: Caps,
    /// `None` when not given (or for a deny stanza, whose other keys Vault ignores).
    pub allowed_parameters: Option<ParamMap>,
    pub denied_parameters: Option<ParamMap>,
    pub required_parameters: Vec<String>,
    /// Nanoseconds; 0 = unset (negative values are kept and, as in Vault, have no effect).
    pub min_wrapping_ttl_ns: i128,
    pub max_wrapping_ttl_ns: i128,
    pub mfa_methods: Vec<String>,
    /// OpenBao: largest page a LIST may ask for; 0 = unset.
    pub pagination_limit: i64,
    /// OpenBao: the stanza stops applying at this time.
    pub expiration: Option<OffsetDateTime>,
    /// OpenBao: accepted and kept; coffer does not filter list responses.
    pub response_keys_filter_path: Option<String>,
    /// Enterprise control groups: accepted and kept, not enforced (OpenBao does not enforce
    /// them either).
    pub control_group: Option<Value>,
}

impl PathRule {
    /// An empty stanza for `raw_path` (the parser fills it in).
    pub(crate) fn new(raw_path: String) -> Self {
        let stripped = raw_path.strip_prefix('/').unwrap_or(&raw_path).to_owned();
        PathRule {
            pattern: PathPattern::classify(&stripped),
            raw_path,
            capabilities: Caps::NONE,
            allowed_parameters: None,
            denied_parameters: None,
            required_parameters: Vec::new(),
            min_wrapping_ttl_ns: 0,
            max_wrapping_ttl_ns: 0,
            mfa_methods: Vec::new(),
            pagination_limit: 0,
            expiration: None,
            response_keys_filter_path: None,
            control_group: None,
        }
    }
}
