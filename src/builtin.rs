//! The registry of built-in backends and the mounts a new store starts with.
//!
//! Sits above the core, the engines and the auth methods: the core routes to backends it never
//! names; this module is the one place that knows every backend type (see
//! [`Registry`](crate::core::backend::Registry)). The server hands [`Builtin`] to
//! [`Core::new`](crate::core::Core::new).

use std::sync::{Arc, Weak};

use async_trait::async_trait;

use crate::auth::approle::AppRole;
use crate::auth::token::TokenBackend;
use crate::core::backend::{Backend, BackendEnv, Registry};
use crate::core::error::{Error, Result};
use crate::core::mounts::{new_accessor, MountConfig, MountEntry, Table};
use crate::core::request::{BackendRequest, Response};
use crate::core::Core;
use crate::engines::{cubbyhole, kv, sys, transit};

/// Mount types that can be enabled through `sys/mounts`.
const SECRET_TYPES: &[&str] = &["kv", "generic", "kv-v1", "kv-v2", "transit"];
/// Mount types that can be enabled through `sys/auth`.
const AUTH_TYPES: &[&str] = &["approle"];
/// Auth method types whose mounts take Vault's `user_lockout_config` (only AppRole is built in).
const LOCKOUT_TYPES: &[&str] = &["approle", "ldap", "userpass"];

/// The backends coffer ships.
#[derive(Debug, Default)]
pub struct Builtin;

impl Registry for Builtin {
    fn build(&self, core: &Weak<Core>, env: BackendEnv) -> Result<Arc<dyn Backend>> {
        let b: Arc<dyn Backend> = match env.mount.kind.as_str() {
            "kv" | "generic" => match env.mount.kv_version() {
                "1" | "" => Arc::new(kv::v1::KvV1),
                "2" => Arc::new(kv::v2::KvV2::new(env)),
                other => return Err(Error::bad(format!("unsupported kv version {other}"))),
            },
            "cubbyhole" => Arc::new(cubbyhole::Cubbyhole),
            "system" => Arc::new(sys::Sys::new(core.clone())),
            "identity" => Arc::new(Unsupported),
            "transit" => Arc::new(transit::Transit::new(env)),
            "token" => Arc::new(TokenBackend::new(core.clone())),
            "approle" => Arc::new(AppRole::new(env)),
            other => return Err(Error::bad(format!("plugin not found in the catalog: {other}"))),
        };
        Ok(b)
    }

    fn mountable(&self, table: Table, kind: &str) -> bool {
        match table {
            Table::Secrets => SECRET_TYPES.contains(&kind),
            Table::Auth => AUTH_TYPES.contains(&kind),
        }
    }

    fn supports_lockout(&self, kind: &str) -> bool {
        LOCKOUT_TYPES.contains(&kind)
    }

    fn default_mounts(&self, table: Table) -> Vec<MountEntry> {
        match table {
            Table::Secrets => vec![
                builtin_mount("cubbyhole/", "cubbyhole", "per-token private secret storage", true, table),
                builtin_mount("identity/", "identity", "identity store", false, table),
                builtin_mount(
                    "sys/",
                    "system",
                    "system endpoints used for control, policy and debugging",
                    false,
                    table,
                ),
            ],
            Table::Auth => vec![builtin_mount("token/", "token", "token based credentials", false, table)],
        }
    }
}

fn builtin_mount(path: &str, kind: &str, description: &str, local: bool, table: Table) -> MountEntry {
    MountEntry {
        path: path.into(),
        kind: kind.into(),
        description: description.into(),
        accessor: new_accessor(kind, table),
        uuid: uuid::Uuid::new_v4().to_string(),
        local,
        seal_wrap: kind == "system",
        external_entropy_access: false,
        options: None,
        config: MountConfig::default(),
        table,
    }
}

/// A placeholder for built-in mounts coffer lists but does not implement (identity).
struct Unsupported;

#[async_trait]
impl Backend for Unsupported {
    async fn handle(&self, _req: &BackendRequest) -> Result<Response> {
        Err(Error::UnsupportedPath)
    }
}
