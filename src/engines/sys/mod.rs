//! The `sys/` backend: mounts, auth methods, remount, the UI preflight, key status and rotation,
//! policies and capabilities.
//!
//! Seal, init, unseal, health and leader are served by the HTTP layer itself (they work while
//! sealed: `http::unrouted`), as are root generation and rekeying (`http::quorum`); everything
//! here runs through the normal request lifecycle.

mod audit;
mod mounts;
mod policy;
mod tools;
mod wrapping;

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};

use async_trait::async_trait;
use serde_json::json;

use crate::core::backend::Backend;
use crate::core::error::{Error, Result};
use crate::core::mounts::Table;
use crate::core::request::{BackendRequest, Response};
use crate::core::{obj, Core};
use crate::policy::Operation;
use crate::util::timefmt::rfc3339_nano;

/// A parsed `sys/` path.
#[derive(Debug, PartialEq, Eq)]
enum SysPath<'a> {
    Audit,
    AuditDevice(&'a str),
    AuditHash(&'a str),
    AuditVerify(&'a str),
    Capabilities,
    CapabilitiesAccessor,
    CapabilitiesSelf,
    KeyStatus,
    /// `sys/mounts/<path>` (secrets) or `sys/auth/<path>` (auth methods).
    Mount(Table, &'a str),
    /// `sys/mounts` or `sys/auth`.
    MountTable(Table),
    /// `sys/mounts/<path>/tune` or `sys/auth/<path>/tune`.
    MountTune(Table, &'a str),
    Policies,
    Policy(&'a str),
    PolicyAcl(&'a str),
    PolicyList,
    Remount,
    RemountStatus(&'a str),
    Rotate,
    Tools(&'a str),
    UiMount(&'a str),
    UiMounts,
    Unknown,
    WrappingLookup,
    WrappingRewrap,
    WrappingUnwrap,
    WrappingWrap,
}

/// A path made of a fixed prefix and a parameter (the rest of the path).
struct ParameterPath {
    prefix: &'static str,
    variant: for<'a> fn(&'a str) -> SysPath<'a>,
}

/// The parameter paths other than mounts. No prefix is a prefix of another, so their order
/// does not matter.
const PARAMETER_PATHS: &[ParameterPath] = &[
    ParameterPath { prefix: "audit/", variant: |rest| SysPath::AuditDevice(rest) },
    ParameterPath { prefix: "audit-hash/", variant: |rest| SysPath::AuditHash(rest) },
    ParameterPath { prefix: "audit-verify/", variant: |rest| SysPath::AuditVerify(rest) },
    ParameterPath { prefix: "internal/ui/mounts/", variant: |rest| SysPath::UiMount(rest) },
    ParameterPath { prefix: "policies/acl/", variant: |rest| SysPath::PolicyAcl(rest) },
    ParameterPath { prefix: "policy/", variant: |rest| SysPath::Policy(rest) },
    ParameterPath { prefix: "remount/status/", variant: |rest| SysPath::RemountStatus(rest) },
    ParameterPath { prefix: "tools/", variant: |rest| SysPath::Tools(rest) },
];

fn parse(path: &str) -> SysPath<'_> {
    let p = path.trim_end_matches('/');
    match p {
        "mounts" => return SysPath::MountTable(Table::Secrets),
        "audit" => return SysPath::Audit,
        "auth" => return SysPath::MountTable(Table::Auth),
        "remount" => return SysPath::Remount,
        "key-status" => return SysPath::KeyStatus,
        "rotate" | "rotate/keyring" => return SysPath::Rotate,
        "internal/ui/mounts" => return SysPath::UiMounts,
        "wrapping/lookup" => return SysPath::WrappingLookup,
        "wrapping/rewrap" => return SysPath::WrappingRewrap,
        "wrapping/unwrap" => return SysPath::WrappingUnwrap,
        "wrapping/wrap" => return SysPath::WrappingWrap,
        "policies/acl" => return SysPath::Policies,
        "policy" => return SysPath::PolicyList,
        "capabilities" => return SysPath::Capabilities,
        "capabilities-self" => return SysPath::CapabilitiesSelf,
        "capabilities-accessor" => return SysPath::CapabilitiesAccessor,
        _ => {}
    }
    for (prefix, table) in [("mounts/", Table::Secrets), ("auth/", Table::Auth)] {
        if let Some(rest) = p.strip_prefix(prefix) {
            return match rest.strip_suffix("/tune") {
                Some(m) if !m.is_empty() => SysPath::MountTune(table, m),
                _ => SysPath::Mount(table, rest),
            };
        }
    }
    for path in PARAMETER_PATHS {
        if let Some(rest) = p.strip_prefix(path.prefix) {
            return (path.variant)(rest);
        }
    }
    SysPath::Unknown
}

/// The system backend.
pub struct Sys {
    core: Weak<Core>,
    migrations: Mutex<BTreeMap<String, (String, String)>>,
}

impl Sys {
    /// A sys backend bound to its core.
    pub fn new(core: Weak<Core>) -> Self {
        Self { core, migrations: Mutex::new(BTreeMap::new()) }
    }

    fn core(&self) -> Result<std::sync::Arc<Core>> {
        self.core.upgrade().ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }
}

/// Sys paths that need `sudo` in addition to the operation's capability (Vault's root paths).
pub fn sys_root_protected(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p.starts_with("auth/")
        || p == "audit"
        || p.starts_with("audit/")
        || p.starts_with("audit-verify/")
        || p == "remount"
        || p == "raw"
        || p.starts_with("raw/")
        || p == "rotate"
        || p.starts_with("rotate/")
        || p == "config/cors"
        || p.starts_with("config/auditing/")
        || p.starts_with("config/ui/headers/")
        || p.starts_with("plugins/catalog/")
        || p.starts_with("revoke-prefix/")
        || p.starts_with("revoke-force/")
        || p.starts_with("leases/revoke-prefix/")
        || p.starts_with("leases/revoke-force/")
        || p.starts_with("leases/lookup/")
        || p == "leases"
        || p.starts_with("internal/inspect/")
}

#[async_trait]
impl Backend for Sys {
    fn root_protected(&self, path: &str) -> bool {
        sys_root_protected(path)
    }

    async fn handle(&self, req: &BackendRequest) -> Result<Response> {
        let core = self.core()?;
        let active = core.active()?;
        let op = req.operation;
        let write = matches!(op, Operation::Create | Operation::Update);
        match (parse(&req.path), op) {
            (SysPath::MountTable(table), Operation::Read) => Ok(mounts::list(&active, table)),
            (SysPath::Mount(table, p), Operation::Read) => mounts::read(&active, table, p),
            (SysPath::Mount(table, p), _) if write => {
                mounts::enable(&core, &active, table, p, &req.data).await
            }
            (SysPath::Mount(table, p), Operation::Delete) => mounts::disable(&core, &active, table, p).await,
            (SysPath::MountTune(table, p), Operation::Read) => mounts::read_tune(&core, &active, table, p),
            (SysPath::MountTune(table, p), _) if write => {
                mounts::tune(&core, &active, table, p, &req.data).await
            }
            (SysPath::Remount, _) if write => {
                let id = mounts::remount(&core, &active, &req.data).await?;
                let mut resp = Response::data(obj([("migration_id", json!(id.0))])).top_level();
                resp.warnings.push(
                    "Mount move has been queued. Progress will be reported in Vault's server log, tagged with the returned migration_id"
                        .into(),
                );
                self.migrations.lock().unwrap_or_else(|p| p.into_inner()).insert(id.0, (id.1, id.2));
                Ok(resp)
            }
            (SysPath::RemountStatus(id), Operation::Read) => {
                let m = self.migrations.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
                let Some((from, to)) = m else { return Err(Error::NotFound(None)) };
                Ok(Response::data(obj([
                    ("migration_id", json!(id)),
                    (
                        "migration_info",
                        json!({"source_mount": from, "target_mount": to, "status": "success"}),
                    ),
                ])))
            }
            (SysPath::UiMounts, Operation::Read) => mounts::ui_list(&active, req).await,
            (SysPath::UiMount(p), Operation::Read) => mounts::ui_mount(&active, req, p).await,
            (SysPath::KeyStatus, Operation::Read) => key_status(&core),
            (SysPath::Rotate, _) if write => {
                core.barrier().rotate().await?;
                Ok(Response::empty())
            }
            (SysPath::Audit, Operation::Read) => Ok(audit::list(&active)),
            (SysPath::AuditDevice(p), _) if write => audit::enable(&core, &active, p, &req.data).await,
            (SysPath::AuditDevice(p), Operation::Delete) => audit::disable(&core, &active, p).await,
            (SysPath::AuditHash(p), _) if write => audit::hash(&active, p, &req.data),
            (SysPath::AuditVerify(p), Operation::Read) => audit::verify(&active, p).await,
            (SysPath::WrappingUnwrap, _) if write => wrapping::unwrap(&core, &active, req).await,
            (SysPath::WrappingLookup, _) if write || op == Operation::Read => {
                wrapping::lookup(&core, &active, req).await
            }
            (SysPath::WrappingWrap, _) if write => wrapping::wrap(req).await.map(|r| r.top_level()),
            (SysPath::WrappingRewrap, _) if write => wrapping::rewrap(&core, &active, req).await,
            (SysPath::Policies, Operation::List) => policy::list_acl(&active).await,
            (SysPath::PolicyAcl(name), Operation::Read) => policy::read_acl(&active, name).await,
            (SysPath::PolicyAcl(name), _) if write => policy::write_acl(&active, name, &req.data).await,
            (SysPath::PolicyAcl(name) | SysPath::Policy(name), Operation::Delete) => {
                policy::delete(&active, name).await
            }
            (SysPath::PolicyList, Operation::Read | Operation::List) => policy::list_legacy(&active).await,
            (SysPath::Policy(name), Operation::Read) => policy::read_legacy(&active, name).await,
            (SysPath::Policy(name), _) if write => policy::write_legacy(&active, name, &req.data).await,
            (SysPath::CapabilitiesSelf, op) if policy::is_write(op) => {
                policy::capabilities_self(&active, req).await
            }
            (SysPath::Capabilities, op) if policy::is_write(op) => {
                policy::capabilities_token(&active, req, req.now).await
            }
            (SysPath::CapabilitiesAccessor, op) if policy::is_write(op) => {
                policy::capabilities_accessor(&active, req, req.now).await
            }
            (SysPath::Tools(rest), _) => tools::handle(req, rest),
            (SysPath::Unknown, _) => Err(Error::UnsupportedPath),
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

fn key_status(core: &Core) -> Result<Response> {
    let s = core.barrier().key_status()?;
    Ok(Response::data(obj([
        ("term", json!(s.term)),
        ("install_time", json!(rfc3339_nano(s.install_time))),
        ("encryptions", json!(s.encryptions)),
    ]))
    .top_level())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(parse("mounts"), SysPath::MountTable(Table::Secrets));
        assert_eq!(parse("auth"), SysPath::MountTable(Table::Auth));
        assert_eq!(parse("mounts/secret"), SysPath::Mount(Table::Secrets, "secret"));
        assert_eq!(parse("mounts/a/b/tune"), SysPath::MountTune(Table::Secrets, "a/b"));
        assert_eq!(parse("auth/approle"), SysPath::Mount(Table::Auth, "approle"));
        assert_eq!(parse("auth/approle/tune"), SysPath::MountTune(Table::Auth, "approle"));
        assert_eq!(parse("internal/ui/mounts/secret/foo"), SysPath::UiMount("secret/foo"));
        assert_eq!(parse("nope"), SysPath::Unknown);
        assert_eq!(parse("policies/acl/"), SysPath::Policies);
        assert_eq!(parse("policies/acl/a/b"), SysPath::PolicyAcl("a/b"));
        assert_eq!(parse("policy"), SysPath::PolicyList);
        assert_eq!(parse("policy/x"), SysPath::Policy("x"));
        assert_eq!(parse("capabilities-self"), SysPath::CapabilitiesSelf);
        assert_eq!(parse("capabilities-accessor"), SysPath::CapabilitiesAccessor);
        assert_eq!(parse("capabilities"), SysPath::Capabilities);
        assert_eq!(parse("audit/file"), SysPath::AuditDevice("file"));
        assert_eq!(parse("audit-hash/file"), SysPath::AuditHash("file"));
        assert_eq!(parse("audit-verify/file"), SysPath::AuditVerify("file"));
        assert_eq!(parse("remount/status/id"), SysPath::RemountStatus("id"));
        assert_eq!(parse("tools/random/32"), SysPath::Tools("random/32"));
        assert!(sys_root_protected("auth/approle"));
        assert!(!sys_root_protected("auth"));
        assert!(!sys_root_protected("mounts/x"));
    }
}
