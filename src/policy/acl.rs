//! A set of policies compiled into an [`Acl`], and the checks made against it.
//!
//! # Compiling
//!
//! Stanzas of all the token's policies are merged per pattern text, in policy order, exactly as
//! Vault's `NewACL` does: capabilities are OR-ed; once a pattern has a `deny` it stays deny-only
//! (and its parameter constraints are dropped); allowed/denied parameter lists are concatenated
//! per key, an empty list (any value) winning; required parameters are united; the smaller
//! non-zero wrapping TTL bound wins; templated stanzas (identity) never apply.
//!
//! # Matching (which stanza decides)
//!
//! For a request path `P` (leading `/`s stripped):
//! 1. an exact pattern equal to `P`; for LIST also one equal to `P` without its trailing `/`;
//! 2. otherwise the best wildcard candidate for `P`: the longest matching `*` prefix pattern
//!    and every matching `+` pattern, ranked by (position of the first `+`/`*`, later wins;
//!    not ending in `*` wins; fewer `+` segments win; longer wins; lexicographically greater
//!    wins);
//! 3. for LIST with a trailing `/` and no candidate yet, step 2 again without the `/`.
//!
//! The chosen stanza alone decides: there is no fall-through to less specific patterns. This
//! order (the path as given before the path without its `/`) is what OpenBao 2.7.2 does and what
//! the contract (§4.3) states; older Vault source tried the trimmed path first.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::model::{Caps, ParamMap, PathPattern, PathRule, Policy};
use super::operation::Operation;

/// Outcome of an ACL check.
#[derive(Clone, Debug, Default)]
pub struct AclDecision {
    /// The operation's capability is granted (and not denied) and every constraint of the
    /// deciding stanza (parameters, wrapping TTL, page size) is met.
    pub allowed: bool,
    /// `sudo` is granted on the path (what root-protected paths need in addition).
    pub sudo: bool,
    /// Names of the policies that granted the operation's capability on the deciding stanza.
    pub granting_policies: Vec<String>,
    /// The ACL is the root policy.
    pub is_root: bool,
    /// Capabilities of the deciding stanza (empty when none matched).
    pub capabilities: Caps,
    /// Wrapping TTL bounds of the deciding stanza (informational; already enforced).
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
    /// MFA methods named by the deciding stanza (not enforced by coffer).
    pub mfa_methods: Vec<String>,
}

/// Merged permissions of one pattern.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Permissions {
    pub capabilities: Caps,
    pub allowed_parameters: Option<ParamMap>,
    pub denied_parameters: Option<ParamMap>,
    pub required_parameters: Vec<String>,
    pub min_wrapping_ttl_ns: i128,
    pub max_wrapping_ttl_ns: i128,
    pub mfa_methods: Vec<String>,
    pub pagination_limit: i64,
    /// Per single capability, the policies that granted it.
    granting: BTreeMap<u16, Vec<String>>,
}

impl Permissions {
    fn from_rule(rule: &PathRule, policy: &str) -> Self {
        let mut p = Permissions {
            capabilities: rule.capabilities,
            allowed_parameters: rule.allowed_parameters.clone(),
            denied_parameters: rule.denied_parameters.clone(),
            required_parameters: rule.required_parameters.clone(),
            min_wrapping_ttl_ns: rule.min_wrapping_ttl_ns,
            max_wrapping_ttl_ns: rule.max_wrapping_ttl_ns,
            mfa_methods: rule.mfa_methods.clone(),
            pagination_limit: rule.pagination_limit,
            granting: BTreeMap::new(),
        };
        p.add_granting(rule.capabilities, policy);
        p
    }

    fn add_granting(&mut self, caps: Caps, policy: &str) {
        for c in caps.iter() {
            self.granting.entry(c.bits()).or_default().push(policy.to_owned());
        }
    }

    /// Merges another stanza for the same pattern into this one (Vault's `NewACL`).
    fn merge(&mut self, rule: &PathRule, policy: &str) {
        if self.capabilities.is_deny() {
            return;
        }
        if rule.capabilities.is_deny() {
            self.capabilities = Caps::DENY;
            self.allowed_parameters = None;
            self.denied_parameters = None;
            return;
        }
        self.capabilities |= rule.capabilities;
        self.add_granting(rule.capabilities, policy);
        if rule.max_wrapping_ttl_ns > 0
            && (self.max_wrapping_ttl_ns == 0 || rule.max_wrapping_ttl_ns < self.max_wrapping_ttl_ns)
        {
            self.max_wrapping_ttl_ns = rule.max_wrapping_ttl_ns;
        }
        if rule.min_wrapping_ttl_ns > 0
            && (self.min_wrapping_ttl_ns == 0 || rule.min_wrapping_ttl_ns < self.min_wrapping_ttl_ns)
        {
            self.min_wrapping_ttl_ns = rule.min_wrapping_ttl_ns;
        }
        merge_params(&mut self.allowed_parameters, rule.allowed_parameters.as_ref());
        merge_params(&mut self.denied_parameters, rule.denied_parameters.as_ref());
        if self.required_parameters.is_empty() {
            self.required_parameters = rule.required_parameters.clone();
        } else {
            for r in &rule.required_parameters {
                if !self.required_parameters.contains(r) {
                    self.required_parameters.push(r.clone());
                }
            }
        }
        if !rule.mfa_methods.is_empty() {
            self.mfa_methods.extend(rule.mfa_methods.iter().cloned());
            self.mfa_methods.sort();
            self.mfa_methods.dedup();
        }
        if rule.pagination_limit > 0
            && (self.pagination_limit <= 0 || rule.pagination_limit < self.pagination_limit)
        {
            self.pagination_limit = rule.pagination_limit;
        }
    }

    fn granting_for(&self, cap: Caps) -> Vec<String> {
        self.granting.get(&cap.bits()).cloned().unwrap_or_default()
    }
}

/// Merges parameter constraints: per key the value lists are concatenated, and an empty list
/// (any value) on either side wins.
fn merge_params(into: &mut Option<ParamMap>, from: Option<&ParamMap>) {
    let Some(from) = from.filter(|m| !m.is_empty()) else { return };
    let Some(existing) = into.as_mut() else {
        *into = Some(from.clone());
        return;
    };
    for (k, v) in from {
        match existing.get_mut(k) {
            Some(cur) if cur.is_empty() => {}
            _ if v.is_empty() => {
                existing.insert(k.clone(), Vec::new());
            }
            Some(cur) => {
                let mut merged = v.clone();
                merged.append(cur);
                *cur = merged;
            }
            None => {
                existing.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A `+` pattern, split once.
#[derive(Clone, Debug)]
struct SegmentRule {
    /// Pattern text as written (trailing `*` kept).
    pattern: String,
    /// Segments of the pattern without its trailing `*`.
    parts: Vec<String>,
    /// Pattern without its trailing `*` (the length used for ranking).
    stem_len: usize,
    is_prefix: bool,
    /// Byte index of the first `+` in the full pattern.
    first_wildcard: usize,
    perms: Permissions,
}

/// Ranking of a wildcard candidate; the greatest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank<'a> {
    first_wildcard: usize,
    not_prefix: bool,
    fewer_wildcards: std::cmp::Reverse<usize>,
    len: usize,
    text: &'a str,
}

/// Policies compiled for fast checks.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    root: bool,
    exact: BTreeMap<String, Permissions>,
    prefix: BTreeMap<String, Permissions>,
    /// Keys of `prefix`, longest first.
    prefix_by_len: Vec<String>,
    segments: Vec<SegmentRule>,
    /// The earliest stanza expiration: the ACL must be rebuilt after it.
    valid_until: Option<OffsetDateTime>,
}

impl Acl {
    /// The ACL of the `root` policy: everything, including sudo.
    pub fn root() -> Self {
        Self { root: true, ..Self::default() }
    }

    /// True for the root ACL.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Compiles named policies (in order). Stanzas expired at `now` are left out.
    pub fn compile<'a>(
        policies: impl IntoIterator<Item = (&'a str, &'a Policy)>,
        now: OffsetDateTime,
    ) -> Self {
        let mut acl = Acl::default();
        let mut segments: BTreeMap<String, Permissions> = BTreeMap::new();
        for (name, policy) in policies {
            for rule in &policy.paths {
                if let Some(exp) = rule.expiration {
                    if now > exp {
                        continue;
                    }
                    acl.valid_until = Some(acl.valid_until.map_or(exp, |v| v.min(exp)));
                }
                let (map, key) = match &rule.pattern {
                    PathPattern::Templated(_) => continue,
                    PathPattern::Exact(p) => (&mut acl.exact, p),
                    PathPattern::Prefix(p) => (&mut acl.prefix, p),
                    PathPattern::Segments { pattern } => (&mut segments, pattern),
                };
                match map.get_mut(key) {
                    Some(existing) => existing.merge(rule, name),
                    None => {
                        map.insert(key.clone(), Permissions::from_rule(rule, name));
                    }
                }
            }
        }
        acl.prefix_by_len = acl.prefix.keys().cloned().collect();
        acl.prefix_by_len.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        acl.segments = segments
            .into_iter()
            .filter(|(p, _)| !p.is_empty())
            .map(|(pattern, perms)| {
                let (stem, is_prefix) = match pattern.strip_suffix('*') {
                    Some(s) => (s.to_owned(), true),
                    None => (pattern.clone(), false),
                };
                SegmentRule {
                    first_wildcard: pattern.find('+').unwrap_or(0),
                    parts: stem.split('/').map(str::to_owned).collect(),
                    stem_len: stem.len(),
                    is_prefix,
                    pattern,
                    perms,
                }
            })
            .collect();
        acl
    }

    /// Whether this compiled ACL is still exact at `now` (no stanza expired since).
    pub fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.valid_until.is_none_or(|t| now <= t)
    }

    /// The longest `*` pattern that `path` starts with.
    fn longest_prefix(&self, path: &str) -> Option<(&str, &Permissions)> {
        let key = self.prefix_by_len.iter().find(|p| path.starts_with(p.as_str()))?;
        self.prefix.get(key).map(|perms| (key.as_str(), perms))
    }

    /// Step 2 of the matching algorithm: the best wildcard candidate for `path`.
    fn non_exact(&self, path: &str) -> Option<&Permissions> {
        let prefix = self.longest_prefix(path);
        if self.segments.is_empty() {
            return prefix.map(|(_, p)| p);
        }
        let mut best: Option<(Rank<'_>, &Permissions)> = prefix.map(|(text, perms)| {
            let rank = Rank {
                first_wildcard: text.len(),
                not_prefix: false,
                fewer_wildcards: std::cmp::Reverse(0),
                len: text.len(),
                text,
            };
            (rank, perms)
        });
        let parts: Vec<&str> = path.split('/').collect();
        'rules: for rule in &self.segments {
            if parts.len() < rule.parts.len() || (!rule.is_prefix && parts.len() != rule.parts.len()) {
                continue;
            }
            let mut wildcards = 0;
            let last = rule.parts.len() - 1;
            for (i, want) in rule.parts.iter().enumerate() {
                if want == "+" {
                    wildcards += 1;
                } else if want != parts[i]
                    && !(rule.is_prefix && i == last && parts[i].starts_with(want.as_str()))
                {
                    continue 'rules;
                }
            }
            let rank = Rank {
                first_wildcard: rule.first_wildcard,
                not_prefix: !rule.is_prefix,
                fewer_wildcards: std::cmp::Reverse(wildcards),
                len: rule.stem_len,
                text: &rule.pattern[..rule.stem_len],
            };
            if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                best = Some((rank, &rule.perms));
            }
        }
        best.map(|(_, p)| p)
    }

    /// The stanza that decides for `path` (steps 1–3 of the module docs).
    fn lookup(&self, path: &str, list: bool) -> Option<&Permissions> {
        let path = path.trim_start_matches('/');
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        let trimmed = path.strip_suffix('/');
        if list {
            if let Some(p) = self.exact.get(trimmed.unwrap_or(path)) {
                return Some(p);
            }
        }
        if let Some(p) = self.non_exact(path) {
            return Some(p);
        }
        match (list, trimmed) {
            (true, Some(t)) => self.non_exact(t),
            _ => None,
        }
    }

    /// Checks `op` on `path` with request `data`, for a request that asks for no response
    /// wrapping. See [`check_request`](Self::check_request).
    pub fn check(&self, op: Operation, path: &str, data: &Map<String, Value>) -> AclDecision {
        self.check_request(op, path, data, None)
    }

    /// Checks `op` on `path` with request `data` (parameter constraints) and the wrap TTL the
    /// client asked for, in seconds (wrapping TTL bounds).
    pub fn check_request(
        &self,
        op: Operation,
        path: &str,
        data: &Map<String, Value>,
        wrap_ttl: Option<u64>,
    ) -> AclDecision {
        if self.root {
            return AclDecision {
                allowed: true,
                sudo: true,
                granting_policies: vec!["root".to_owned()],
                is_root: true,
                ..AclDecision::default()
            };
        }
        let Some(perms) = self.lookup(path, op == Operation::List) else {
            return AclDecision::default();
        };
        let caps = perms.capabilities;
        let bound = |ns: i128| u64::try_from(ns).ok().filter(|n| *n > 0).map(Duration::from_nanos);
        let mut d = AclDecision {
            sudo: caps.contains(Caps::SUDO),
            capabilities: caps,
            min_wrapping_ttl: bound(perms.min_wrapping_ttl_ns),
            max_wrapping_ttl: bound(perms.max_wrapping_ttl_ns),
            mfa_methods: perms.mfa_methods.clone(),
            ..AclDecision::default()
        };
        let needed = operation_capability(op);
        if !caps.contains(needed) {
            return d;
        }
        d.granting_policies = perms.granting_for(needed);
        d.allowed = wrap_ttl_ok(perms, wrap_ttl) && params_ok(perms, op, data);
        d
    }

    /// Capability names on `path` as `sys/capabilities` reports them: sorted, `["root"]` for
    /// root, `["deny"]` when nothing (or an explicit deny) applies. Uses LIST matching, as Vault.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".to_owned()];
        }
        let caps = self.lookup(path, true).map(|p| p.capabilities).unwrap_or_default();
        if caps.is_deny() || caps.is_empty() {
            return vec!["deny".to_owned()];
        }
        caps.names().into_iter().map(str::to_owned).collect()
    }

    /// Whether any rule grants something on or below `mount` (e.g. `secret/`, `auth/token/`):
    /// the check behind `sys/internal/ui/mounts`.
    pub fn has_mount_access(&self, mount: &str) -> bool {
        if self.root {
            return true;
        }
        let mut mount = mount.trim_start_matches('/').to_owned();
        if !mount.ends_with('/') {
            mount.push('/');
        }
        if self.capabilities(&mount) != ["deny"] {
            return true;
        }
        let grants = |p: &Permissions| !p.capabilities.is_deny() && !p.capabilities.is_empty();
        let below = |m: &BTreeMap<String, Permissions>| {
            m.range(mount.clone()..).take_while(|(k, _)| k.starts_with(&mount)).any(|(_, p)| grants(p))
        };
        if below(&self.exact) || below(&self.prefix) {
            return true;
        }
        // A `+` pattern grants access when its segments up to the mount's depth can produce the
        // mount path (Vault's "bare mount" walk).
        let parts: Vec<&str> = mount.split('/').collect();
        let depth = parts.len() - 2; // `mount` ends in '/', so the last part is empty
        self.segments.iter().any(|rule| {
            let last = rule.parts.len() - 1;
            let mut segments: Vec<&str> = Vec::new();
            for (i, want) in rule.parts.iter().enumerate() {
                if i >= parts.len() {
                    return false;
                }
                if want == "+" || want == parts[i] {
                    segments.push(parts[i]);
                } else if rule.is_prefix && i == last && parts[i].starts_with(want.as_str()) {
                    segments.extend_from_slice(&parts[i..]);
                }
                if i == depth {
                    let joined = format!("{}/", segments.join("/"));
                    return joined.starts_with(&mount) && grants(&rule.perms);
                }
            }
            false
        })
    }
}

/// The capability an operation needs.
pub fn operation_capability(op: Operation) -> Caps {
    match op {
        Operation::Create => Caps::CREATE,
        Operation::Delete => Caps::DELETE,
        Operation::List => Caps::LIST,
        Operation::Patch => Caps::PATCH,
        Operation::Read => Caps::READ,
        Operation::Update => Caps::UPDATE,
    }
}

fn wrap_ttl_ok(perms: &Permissions, wrap_ttl: Option<u64>) -> bool {
    let ttl_ns = wrap_ttl.map(|s| i128::from(s) * 1_000_000_000);
    let (min, max) = (perms.min_wrapping_ttl_ns, perms.max_wrapping_ttl_ns);
    if max > 0 && ttl_ns.is_none_or(|t| t > max) {
        return false;
    }
    if min > 0 && ttl_ns.is_none_or(|t| t < min) {
        return false;
    }
    // Possible after merging, though each stanza is checked when parsed.
    !(min != 0 && max != 0 && max < min)
}

fn params_ok(perms: &Permissions, op: Operation, data: &Map<String, Value>) -> bool {
    match op {
        Operation::Read | Operation::Update | Operation::Create | Operation::Patch => {}
        Operation::List => return page_size_ok(perms, data),
        Operation::Delete => return true,
    }
    if perms.required_parameters.iter().any(|p| !data.contains_key(&p.to_lowercase())) {
        return false;
    }
    if data.is_empty() {
        return true;
    }
    if let Some(denied) = perms.denied_parameters.as_ref().filter(|d| !d.is_empty()) {
        if denied.contains_key("*") {
            return false;
        }
        for (k, v) in data {
            if denied.get(&k.to_lowercase()).is_some_and(|list| value_in_list(v, list)) {
                return false;
            }
        }
    }
    let Some(allowed) = perms.allowed_parameters.as_ref().filter(|a| !a.is_empty()) else {
        return true;
    };
    let allow_all = allowed.contains_key("*");
    if allow_all && allowed.len() == 1 {
        return true;
    }
    data.iter().all(|(k, v)| match allowed.get(&k.to_lowercase()) {
        None => allow_all,
        Some(list) => value_in_list(v, list),
    })
}

/// OpenBao's `pagination_limit`: a LIST asking for a larger page (or not asking, when `limit` is
/// a required parameter) is denied. coffer does not paginate lists, so nothing is rewritten.
fn page_size_ok(perms: &Permissions, data: &Map<String, Value>) -> bool {
    if perms.pagination_limit <= 0 {
        return true;
    }
    match data.get("limit") {
        None => !perms.required_parameters.iter().any(|p| p.to_lowercase() == "limit"),
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) => n <= perms.pagination_limit,
                None => v.as_str() == Some("max"),
            }
        }
    }
}

/// Whether a request value is in a policy's value list: an empty list allows any value; strings
/// match with a leading and/or trailing `*` glob; other values compare as JSON (numbers by
/// value — Vault never matches numbers here because its request numbers are `json.Number`;
/// coffer compares them, so a denied number is denied).
pub fn value_in_list(v: &Value, list: &[Value]) -> bool {
    list.is_empty()
        || list.iter().any(|el| match (el, v) {
            (Value::String(pat), Value::String(s)) => glob_match(pat, s),
            (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            },
            (a, b) => a == b,
        })
}

/// Vault's `strutil.GlobbedStringsMatch`.
pub fn glob_match(item: &str, val: &str) -> bool {
    if item.len() < 2 {
        return val == item;
    }
    match (item.strip_prefix('*'), item.strip_suffix('*')) {
        (Some(_), Some(_)) => val.contains(&item[1..item.len() - 1]),
        (Some(rest), None) => val.ends_with(rest),
        (None, Some(rest)) => val.starts_with(rest),
        (None, None) => val == item,
    }
}

#[cfg(test)]
mod tests;
