//! Server configuration: one model, three front ends (native TOML, Vault/OpenBao HCL, Vault's
//! JSON), chosen by the file's extension.
//!
//! ```text
//!   file.toml / file.hcl / file.json
//!        │  format.rs: parse, bring into Vault's shape, drop Vault keys coffer ignores (warning)
//!   serde_json::Value
//!        │  de.rs + raw.rs: serde structs with deny_unknown_fields; errors name the key
//!   RawConfig
//!        │  mod.rs: validation of each block (storage.rs, listeners here, seal.rs, audit.rs,
//!        │  address.rs) and the cross-field checks; secret.rs: env:/file: secrets
//!   Config (checked types; `warnings` lists what the server should log)
//! ```
//!
//! Every error ([`ConfigError`], error.rs) names the offending key as a dotted path
//! (`listener.tcp.adress: unknown key`, `listener[1].tcp.tls_key_file: required when
//! tls_cert_file is set`) and never contains a secret. Relative paths (storage, TLS files,
//! `file:` secrets) are relative to the directory of the configuration file, so a service
//! manager's working directory does not matter (Vault uses its working directory; coffer
//! deliberately does not).
//!
//! Imports inside `config` go one way: `error` and `de` are leaves; the front ends (`format`,
//! `unsupported`), the secret loader (`secret`) and the block checks (`address`, `storage`,
//! `seal`, `audit`) import only those and each other downward; `mod.rs` imports them all.

pub mod address;
pub mod audit;
pub mod de;
pub mod error;
pub mod format;
pub mod limits;
pub mod raw;
pub mod seal;
pub mod secret;
pub mod storage;
pub mod unsupported;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use self::address::DEFAULT_ADDRESS;
use self::address::{authority, check_cluster_addr, check_url, parse_socket_addr, same_authority};
use self::audit::check_audit;
pub use self::error::ConfigError;
pub use self::format::Format;
pub use self::limits::ListenerLimits;
use self::raw::{RawConfig, RawListener, RawTcpListener};
use self::seal::check_seal;
pub use self::seal::{PreviousKey, SealConfig, StaticSeal};
use self::secret::Resolver;
use self::storage::check_storage;
pub use self::storage::{RaftTuning, RetryJoin, StorageConfig};
use crate::audit::{AuditSettings, DeclaredDevice};

/// Vault's default for both lease TTLs (768h), used when the file sets none. The same value as
/// the core's own default (`core::DEFAULT_MAX_TTL`; a test checks they agree), kept here so that
/// the configuration does not depend on the core.
pub const DEFAULT_LEASE_TTL: u64 = 768 * 3600;

/// TLS material of a listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One `listener "tcp"` block.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// `None` = `tls_disable`.
    pub tls: Option<TlsFiles>,
    pub max_request_size: usize,
    /// Where this node listens for cluster traffic (raft storage).
    pub cluster_address: Option<SocketAddr>,
    /// Keep `sys/generate-root/*` behind a token (default true, as in OpenBao).
    pub disable_unauthed_generate_root_endpoints: bool,
    /// Keep `sys/rekey/*` and `sys/rekey-recovery-key/*` behind a token (default true).
    pub disable_unauthed_rekey_endpoints: bool,
    /// `http_*` timeouts, `tls_handshake_timeout` and `max_connections`.
    pub limits: ListenerLimits,
    /// `telemetry { unauthenticated_metrics_access = true }`: serve `sys/metrics` on this
    /// listener without a token (default false, as in Vault).
    pub unauthenticated_metrics_access: bool,
}

/// The validated configuration. Not `Clone`: it may hold key material.
#[derive(Debug)]
pub struct Config {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub seal: SealConfig,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub disable_mlock: bool,
    /// Seconds.
    pub default_lease_ttl: u64,
    /// Seconds.
    pub max_lease_ttl: u64,
    pub log_level: Option<String>,
    /// Audit devices declared with `audit` blocks, enabled at unseal.
    pub audit: Vec<DeclaredDevice>,
    /// `unsafe_allow_api_audit_creation`: `sys/audit/<path>` may create devices.
    pub unsafe_allow_api_audit_creation: bool,
    /// `allow_audit_log_prefixing`: devices may have a `prefix`.
    pub allow_audit_log_prefixing: bool,
    /// Accepted settings the server should warn about at start (ignored Vault keys, inline
    /// secrets, disagreeing listeners...). Never contains a secret.
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether `sys/generate-root/*` is served without a token: only when every listener asks
    /// for it, since the setting applies to the whole server.
    pub fn unauthenticated_generate_root(&self) -> bool {
        !self.listeners.is_empty()
            && self.listeners.iter().all(|l| !l.disable_unauthed_generate_root_endpoints)
    }

    /// The audit rules the core enforces: declared devices, the two flags, and the storage
    /// directory audit files must stay out of.
    pub fn audit_settings(&self) -> AuditSettings {
        AuditSettings {
            declared: self.audit.clone(),
            allow_api_creation: self.unsafe_allow_api_audit_creation,
            allow_prefixing: self.allow_audit_log_prefixing,
            storage_dir: self.storage.dir().map(Path::to_path_buf),
        }
    }

    /// Whether `sys/rekey/*` is served without a token (same rule).
    pub fn unauthenticated_rekey(&self) -> bool {
        !self.listeners.is_empty() && self.listeners.iter().all(|l| !l.disable_unauthed_rekey_endpoints)
    }
}

/// Loads and validates a configuration file; the format follows the extension.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let format = Format::from_path(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?,
    );
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let env = |name: &str| std::env::var_os(name);
    let resolver = Resolver { base_dir: &base_dir, config_file: Some(path), env: &env };
    parse(&text, format, &resolver)
}

/// Parses and validates configuration text; `resolver` supplies the base directory, the file
/// (for the inline-secret permission check) and the environment.
pub fn parse(text: &str, format: Format, resolver: &Resolver<'_>) -> Result<Config, ConfigError> {
    let (tree, mut warnings) = format::to_tree(text, format)?;
    let raw: RawConfig = de::from_value(tree, "")?;
    let config = Config::from_raw(raw, resolver, &mut warnings)?;
    Ok(Config { warnings, ..config })
}

/// Convenience for tests and tools: parse with the process environment and `base_dir`.
pub fn parse_with_env(
    text: &str,
    format: Format,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Config, ConfigError> {
    parse(text, format, &Resolver { base_dir, config_file: None, env })
}

fn err(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::setting(key, msg)
}

impl Config {
    /// Validation: raw settings into checked types, then the cross-field checks. Secrets are
    /// resolved through `r`; accepted-but-noteworthy settings are appended to `warnings`.
    pub fn from_raw(
        raw: RawConfig,
        r: &Resolver<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        from_raw(raw, r, warnings)
    }
}

fn from_raw(raw: RawConfig, r: &Resolver<'_>, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    let storage = check_storage(raw.storage, raw.backend, r.base_dir)?;
    let listeners = check_listeners(raw.listener, r.base_dir, warnings)?;
    let seal = check_seal(raw.seal, r, warnings)?;

    let api_addr = raw.api_addr.map(|t| check_url("api_addr", &t.0)).transpose()?;
    let cluster_addr = match raw.cluster_addr {
        Some(t) => Some(check_cluster_addr(&t.0, warnings)?),
        None => None,
    };
    let cluster_name = match raw.cluster_name {
        Some(t) if t.0.trim().is_empty() => return Err(err("cluster_name", "must not be empty")),
        Some(t) => Some(t.0),
        None => None,
    };
    let log_level = raw.log_level.map(|t| check_log_level(&t.0)).transpose()?;
    let unsafe_allow_api_audit_creation = raw.unsafe_allow_api_audit_creation.map(|f| f.0).unwrap_or(false);
    let allow_audit_log_prefixing = raw.allow_audit_log_prefixing.map(|f| f.0).unwrap_or(false);
    let rules = AuditSettings {
        declared: Vec::new(),
        allow_api_creation: unsafe_allow_api_audit_creation,
        allow_prefixing: allow_audit_log_prefixing,
        storage_dir: storage.dir().map(Path::to_path_buf),
    };
    let audit = check_audit(raw.audit, &rules, r.base_dir)?;
    if unsafe_allow_api_audit_creation {
        warnings.push(
            "unsafe_allow_api_audit_creation: audit devices may be created through sys/audit, which lets a caller with sudo on sys/audit make the server write to files of its choosing".into(),
        );
    }

    let max_lease_ttl = match raw.max_lease_ttl {
        Some(t) if t.0 > 0 => t.0,
        _ => DEFAULT_LEASE_TTL,
    };
    let default_lease_ttl = match raw.default_lease_ttl {
        Some(t) if t.0 > 0 => {
            if t.0 > max_lease_ttl {
                return Err(ConfigError::Conflict(format!(
                    "default_lease_ttl ({}) must not exceed max_lease_ttl ({})",
                    crate::util::duration::format_go_seconds(t.0 as i64),
                    crate::util::duration::format_go_seconds(max_lease_ttl as i64),
                )));
            }
            t.0
        }
        // Unset: Vault's 768h, but never above max_lease_ttl.
        _ => DEFAULT_LEASE_TTL.min(max_lease_ttl),
    };

    if let (Some(api), Some(cluster)) = (&api_addr, &cluster_addr) {
        if same_authority(api, cluster) {
            return Err(ConfigError::Conflict(format!(
                "api_addr and cluster_addr must differ (both are {}): the cluster port is separate from the API port",
                authority(api)
            )));
        }
    }
    if let Some(api) = &api_addr {
        let tls_any = listeners.iter().any(|l| l.tls.is_some());
        let plain_any = listeners.iter().any(|l| l.tls.is_none());
        if api.starts_with("https://") && !tls_any {
            warnings.push("api_addr: uses https but every listener has tls_disable set".into());
        } else if api.starts_with("http://") && !plain_any {
            warnings.push("api_addr: uses http but every listener serves TLS".into());
        }
    }
    if let StorageConfig::Raft { retry_join, .. } = &storage {
        if let Some(api) = &api_addr {
            if let Some(i) = retry_join.iter().position(|j| same_authority(&j.leader_api_addr, api)) {
                return Err(err(
                    &format!("{}.leader_api_addr", de::index("storage.raft.retry_join", i, retry_join.len())),
                    "must not be this node's own api_addr",
                ));
            }
        }
    }
    if listeners.len() > 1 {
        for (flag, name) in [
            (
                listeners.iter().map(|l| l.disable_unauthed_generate_root_endpoints).collect::<Vec<_>>(),
                "disable_unauthed_generate_root_endpoints",
            ),
            (
                listeners.iter().map(|l| l.disable_unauthed_rekey_endpoints).collect::<Vec<_>>(),
                "disable_unauthed_rekey_endpoints",
            ),
        ] {
            if flag.iter().any(|f| *f) && flag.iter().any(|f| !*f) {
                warnings.push(format!(
                    "listener: the listeners disagree on {name}; coffer applies it to the whole server, so the endpoints stay authenticated"
                ));
            }
        }
    }

    Ok(Config {
        storage,
        listeners,
        seal,
        api_addr,
        cluster_addr,
        cluster_name,
        disable_mlock: raw.disable_mlock.map(|f| f.0).unwrap_or(false),
        default_lease_ttl,
        max_lease_ttl,
        log_level,
        audit,
        unsafe_allow_api_audit_creation,
        allow_audit_log_prefixing,
        warnings: Vec::new(),
    })
}

fn check_listeners(
    raw: Option<Vec<RawListener>>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(err(
            "listener",
            "at least one listener is required (for example listener \"tcp\" { address = \"127.0.0.1:8200\" }, or [[listener]] in TOML)",
        ));
    }
    let n = raw.len();
    let mut out: Vec<ListenerConfig> = Vec::with_capacity(n);
    for (i, l) in raw.into_iter().enumerate() {
        let RawListener::Tcp(tcp) = l;
        let path = de::join(&de::index("listener", i, n), "tcp");
        let checked = check_tcp(&path, tcp, base, warnings)?;
        if checked.address.port() != 0 {
            if let Some(j) = out.iter().position(|o| o.address == checked.address) {
                return Err(err(
                    &de::join(&path, "address"),
                    format!("{} is already used by {}", checked.address, de::index("listener", j, n)),
                ));
            }
        }
        out.push(checked);
    }
    Ok(out)
}

fn check_tcp(
    path: &str,
    l: RawTcpListener,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<ListenerConfig, ConfigError> {
    let key = |k: &str| de::join(path, k);
    let address = match &l.address {
        Some(a) => parse_socket_addr(&key("address"), &a.0)?,
        None => parse_socket_addr(&key("address"), DEFAULT_ADDRESS)?,
    };
    let cluster_address =
        l.cluster_address.as_ref().map(|a| parse_socket_addr(&key("cluster_address"), &a.0)).transpose()?;
    let tls_disable = l.tls_disable.map(|f| f.0).unwrap_or(false);
    let limits = check_limits(path, &l, !tls_disable, warnings)?;
    let tls = if tls_disable {
        if l.tls_cert_file.is_some() || l.tls_key_file.is_some() {
            warnings
                .push(format!("{path}: tls_disable is set, so tls_cert_file and tls_key_file are not used"));
        }
        None
    } else {
        match (l.tls_cert_file, l.tls_key_file) {
            (Some(c), Some(k)) => {
                for (name, v) in [("tls_cert_file", &c.0), ("tls_key_file", &k.0)] {
                    if v.trim().is_empty() {
                        return Err(err(&key(name), "must not be empty"));
                    }
                }
                Some(TlsFiles { cert_file: base.join(c.0), key_file: base.join(k.0) })
            }
            (Some(_), None) => return Err(err(&key("tls_key_file"), "required when tls_cert_file is set")),
            (None, Some(_)) => return Err(err(&key("tls_cert_file"), "required when tls_key_file is set")),
            (None, None) => {
                return Err(err(
                    path,
                    "tls_cert_file and tls_key_file are required (TLS is on by default); set tls_disable = true to serve plain HTTP",
                ));
            }
        }
    };
    if let Some(v) = &l.tls_min_version {
        match v.0.as_str() {
            "tls12" => {}
            "tls10" | "tls11" => {
                warnings.push(format!("{}: coffer never negotiates below TLS 1.2", key("tls_min_version")));
            }
            "tls13" => {
                return Err(err(
                    &key("tls_min_version"),
                    "\"tls13\" is not supported yet (coffer negotiates TLS 1.2 and 1.3)",
                ));
            }
            other => {
                return Err(err(
                    &key("tls_min_version"),
                    format!("unknown version \"{other}\" (expected tls10, tls11, tls12 or tls13)"),
                ));
            }
        }
    }
    if l.tls_require_and_verify_client_cert.map(|f| f.0).unwrap_or(false) {
        return Err(err(
            &key("tls_require_and_verify_client_cert"),
            "TLS client certificate authentication is not supported",
        ));
    }
    let max_request_size = match l.max_request_size {
        None => limits::DEFAULT_MAX_REQUEST_SIZE,
        Some(raw::Int(0)) => limits::DEFAULT_MAX_REQUEST_SIZE,
        Some(raw::Int(n)) if n < 0 => {
            return Err(err(
                &key("max_request_size"),
                "must be positive (coffer always limits request bodies; 0 means the default of 32 MiB)",
            ));
        }
        Some(raw::Int(n)) => {
            usize::try_from(n).map_err(|_| err(&key("max_request_size"), "too large for this platform"))?
        }
    };
    Ok(ListenerConfig {
        address,
        tls,
        max_request_size,
        limits,
        cluster_address,
        disable_unauthed_generate_root_endpoints: l
            .disable_unauthed_generate_root_endpoints
            .map(|f| f.0)
            .unwrap_or(true),
        disable_unauthed_rekey_endpoints: l.disable_unauthed_rekey_endpoints.map(|f| f.0).unwrap_or(true),
        unauthenticated_metrics_access: l
            .telemetry
            .and_then(|t| t.unauthenticated_metrics_access)
            .map(|f| f.0)
            .unwrap_or(false),
    })
}

/// Longest accepted listener timeout (a year); Vault sets no bound, but a deadline must fit.
const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;
/// Largest accepted `max_connections`.
const MAX_CONNECTIONS: i64 = 1 << 20;

/// The listener's timeouts and connection cap. As in Vault, a timeout of 0 (or none) means the
/// default; `http_write_timeout` defaults to none.
fn check_limits(
    path: &str,
    l: &RawTcpListener,
    tls: bool,
    warnings: &mut Vec<String>,
) -> Result<ListenerLimits, ConfigError> {
    let key = |k: &str| de::join(path, k);
    let timeout = |name: &str, v: Option<raw::Ttl>| -> Result<Option<std::time::Duration>, ConfigError> {
        match v {
            None | Some(raw::Ttl(0)) => Ok(None),
            Some(raw::Ttl(s)) if s > MAX_TIMEOUT_SECS => Err(err(
                &key(name),
                format!(
                    "must be at most {}",
                    crate::util::duration::format_go_seconds(MAX_TIMEOUT_SECS as i64)
                ),
            )),
            Some(raw::Ttl(s)) => Ok(Some(std::time::Duration::from_secs(s))),
        }
    };
    let max_connections = match l.max_connections {
        None => limits::DEFAULT_MAX_CONNECTIONS,
        Some(raw::Int(n)) if n < 1 => {
            return Err(err(&key("max_connections"), "must be at least 1"));
        }
        Some(raw::Int(n)) if n > MAX_CONNECTIONS => {
            return Err(err(&key("max_connections"), format!("must be at most {MAX_CONNECTIONS}")));
        }
        Some(raw::Int(n)) => usize::try_from(n).map_err(|_| err(&key("max_connections"), "too large"))?,
    };
    let tls_handshake_timeout = timeout("tls_handshake_timeout", l.tls_handshake_timeout)?;
    if tls_handshake_timeout.is_some() && !tls {
        warnings.push(format!("{path}: tls_disable is set, so tls_handshake_timeout is not used"));
    }
    Ok(ListenerLimits {
        read_header_timeout: timeout("http_read_header_timeout", l.http_read_header_timeout)?
            .unwrap_or(limits::DEFAULT_READ_HEADER_TIMEOUT),
        read_timeout: timeout("http_read_timeout", l.http_read_timeout)?
            .unwrap_or(limits::DEFAULT_READ_TIMEOUT),
        idle_timeout: timeout("http_idle_timeout", l.http_idle_timeout)?
            .unwrap_or(limits::DEFAULT_IDLE_TIMEOUT),
        write_timeout: timeout("http_write_timeout", l.http_write_timeout)?,
        tls_handshake_timeout: tls_handshake_timeout.unwrap_or(limits::DEFAULT_TLS_HANDSHAKE_TIMEOUT),
        max_connections,
    })
}

fn check_log_level(s: &str) -> Result<String, ConfigError> {
    let level = s.trim().to_ascii_lowercase();
    match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => Ok(level),
        "warning" => Ok("warn".into()),
        "err" => Ok("error".into()),
        _ => Err(err(
            "log_level",
            format!("unknown level \"{s}\" (expected trace, debug, info, warn or error)"),
        )),
    }
}
