//! ACL policies: parsing (HCL and JSON), the compiled [`Acl`], and the policy store.
//!
//! Placeholder until the full engine lands: only the `root` policy grants anything.

use std::sync::Arc;

use serde_json::{Map, Value};

use coffer_storage::View;

use crate::core::error::Result;
use crate::core::request::Operation;

/// Outcome of an ACL check.
#[derive(Clone, Debug, Default)]
pub struct AclDecision {
    /// The operation's capability is granted (and not denied).
    pub allowed: bool,
    /// `sudo` is granted on the path.
    pub sudo: bool,
    /// Names of the policies whose stanza decided.
    pub granting_policies: Vec<String>,
}

/// A set of policies compiled for fast checks.
#[derive(Debug, Default)]
pub struct Acl {
    root: bool,
    /// Placeholder grants: (path prefix, exact?) pairs from built-in policies.
    builtin: Vec<(&'static str, bool)>,
}

const DEFAULT_GRANTS: &[(&str, bool)] = &[
    ("auth/token/lookup-self", true),
    ("auth/token/renew-self", true),
    ("auth/token/revoke-self", true),
    ("sys/capabilities-self", true),
    ("sys/wrapping/wrap", true),
    ("sys/wrapping/lookup", true),
    ("sys/wrapping/unwrap", true),
    ("cubbyhole/", false),
];
const WRAPPING_GRANTS: &[(&str, bool)] = &[("sys/wrapping/unwrap", true), ("cubbyhole/response", true)];

impl Acl {
    /// The ACL of the `root` policy: everything, including sudo.
    pub fn root() -> Self {
        Self { root: true, builtin: Vec::new() }
    }

    /// True for the root ACL.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Checks `op` on `path` with request `data` (for parameter constraints).
    pub fn check(&self, _op: Operation, path: &str, _data: &Map<String, Value>) -> AclDecision {
        let builtin =
            self.builtin.iter().any(|(p, exact)| if *exact { path == *p } else { path.starts_with(p) });
        AclDecision {
            allowed: self.root || builtin,
            sudo: self.root,
            granting_policies: if self.root { vec!["root".into()] } else { vec![] },
        }
    }

    /// Whether any rule grants something at or below `mount` (the UI/CLI preflight).
    pub fn has_mount_access(&self, _mount: &str) -> bool {
        self.root
    }

    /// Capability names granted on `path` (`["root"]` for root, `["deny"]` for nothing).
    pub fn capabilities(&self, _path: &str) -> Vec<String> {
        if self.root {
            vec!["root".into()]
        } else {
            vec!["deny".into()]
        }
    }
}

/// Stored policies.
pub struct PolicyStore {
    #[allow(dead_code)] // used by the full implementation
    view: View,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyStore")
    }
}

impl PolicyStore {
    /// Opens the store over its view (`sys/policy/`).
    pub async fn open(view: View) -> Result<Self> {
        Ok(Self { view })
    }

    /// Whether a policy with this name is stored (`root` and `default` always exist).
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(name == "root" || name == "default")
    }

    /// The compiled ACL for a token's policy names.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        if names.iter().any(|n| n == "root") {
            return Ok(Arc::new(Acl::root()));
        }
        let mut builtin = Vec::new();
        if names.iter().any(|n| n == "default") {
            builtin.extend_from_slice(DEFAULT_GRANTS);
        }
        if names.iter().any(|n| n == "response-wrapping") {
            builtin.extend_from_slice(WRAPPING_GRANTS);
        }
        Ok(Arc::new(Acl { root: false, builtin }))
    }
}
