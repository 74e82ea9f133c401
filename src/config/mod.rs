//! Server configuration: one model, three front ends (native TOML, Vault/OpenBao HCL, Vault's
//! JSON), chosen by the file's extension.
//!
//! ```text
//!   file.toml / file.hcl / file.json
//!        │  format.rs: parse, bring into Vault's shape, drop Vault keys coffer ignores (warning)
//!   serde_json::Value
//!        │  de.rs + raw.rs: serde structs with deny_unknown_fields; errors name the key
//!   RawConfig
//!        │  mod.rs: validation and cross-field checks; secret.rs: env:/file: secrets
//!   Config (checked types; `warnings` lists what the server should log)
//! ```
//!
//! Every error names the offending key as a dotted path (`listener.tcp.adress: unknown key`,
//! `listener[1].tcp.tls_key_file: required when tls_cert_file is set`) and never contains a
//! secret. Relative paths (storage, TLS files, `file:` secrets) are relative to the directory of
//! the configuration file, so a service manager's working directory does not matter (Vault uses
//! its working directory; coffer deliberately does not).

pub mod de;
pub mod format;
pub mod limits;
pub mod raw;
pub mod secret;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use coffer_storage::keys::UnsealKey;
use zeroize::Zeroizing;

pub use self::format::Format;
pub use self::limits::ListenerLimits;
use self::raw::{
    RawAudit, RawConfig, RawListener, RawRetryJoin, RawSeal, RawStaticSeal, RawStorage, RawTcpListener,
};
use self::secret::Resolver;
use crate::audit::{AuditSettings, DeclaredDevice};

/// Vault's default listener address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8200";

/// Where data lives.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// `file` (sled) at `path`.
    File { path: PathBuf },
    /// `inmem`: nothing survives a restart.
    Memory,
    /// `raft`: replicated storage; parsed now, served by a later release.
    Raft { path: PathBuf, node_id: Option<String>, retry_join: Vec<RetryJoin> },
}

impl StorageConfig {
    /// Name `seal-status` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            StorageConfig::File { .. } => "file",
            StorageConfig::Memory => "inmem",
            StorageConfig::Raft { .. } => "raft",
        }
    }

    /// The directory data lives in, if any.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            StorageConfig::File { path } | StorageConfig::Raft { path, .. } => Some(path),
            StorageConfig::Memory => None,
        }
    }
}

/// One `retry_join` block of raft storage: a peer to join through.
#[derive(Clone, Debug)]
pub struct RetryJoin {
    pub leader_api_addr: String,
    pub leader_ca_cert_file: Option<PathBuf>,
    pub leader_client_cert_file: Option<PathBuf>,
    pub leader_client_key_file: Option<PathBuf>,
    pub leader_tls_servername: Option<String>,
}

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
}

/// How the root key is protected.
#[derive(Debug)]
pub enum SealConfig {
    /// No `seal` block: operators unseal with Shamir shares.
    Shamir,
    /// OpenBao's `seal "static"`: a 32-byte key from the environment or a file.
    Static(StaticSeal),
}

/// A `seal "static"` block with its key material loaded.
#[derive(Debug)]
pub struct StaticSeal {
    pub current_key_id: String,
    pub current_key: UnsealKey,
    /// The key being rotated away from, if any.
    pub previous: Option<PreviousKey>,
}

/// `previous_key_id` and `previous_key`.
#[derive(Debug)]
pub struct PreviousKey {
    pub key_id: String,
    pub key: UnsealKey,
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

/// Errors loading a configuration file; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<de::DeError> for ConfigError {
    fn from(e: de::DeError) -> Self {
        ConfigError(e.to_string())
    }
}

/// Loads and validates a configuration file; the format follows the extension.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let format = Format::from_path(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?,
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
    ConfigError(format!("{key}: {msg}"))
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
        _ => crate::core::DEFAULT_MAX_TTL,
    };
    let default_lease_ttl = match raw.default_lease_ttl {
        Some(t) if t.0 > 0 => {
            if t.0 > max_lease_ttl {
                return Err(ConfigError(format!(
                    "default_lease_ttl ({}) must not exceed max_lease_ttl ({})",
                    crate::util::duration::format_go_seconds(t.0 as i64),
                    crate::util::duration::format_go_seconds(max_lease_ttl as i64),
                )));
            }
            t.0
        }
        // Unset: Vault's 768h, but never above max_lease_ttl.
        _ => crate::core::DEFAULT_MAX_TTL.min(max_lease_ttl),
    };

    if let (Some(api), Some(cluster)) = (&api_addr, &cluster_addr) {
        if same_authority(api, cluster) {
            return Err(ConfigError(format!(
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

/// Validates the `audit` blocks: unique paths and files, options the device understands, and
/// the server rules (no `prefix` without `allow_audit_log_prefixing`, no file in the storage
/// directory). Relative `file_path`s are relative to the configuration file's directory.
fn check_audit(
    raw: Option<Vec<RawAudit>>,
    rules: &AuditSettings,
    base: &Path,
) -> Result<Vec<DeclaredDevice>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let n = raw.len();
    let mut out: Vec<DeclaredDevice> = Vec::with_capacity(n);
    for (i, a) in raw.into_iter().enumerate() {
        let key = de::index("audit", i, n);
        let at = |k: &str| de::join(&key, k);
        if a.path.0.trim().trim_matches('/').is_empty() {
            return Err(err(&at("path"), "must not be empty"));
        }
        let path = crate::audit::options::normalize_path(&a.path.0);
        if let Some(j) = out.iter().position(|d| d.path == path) {
            return Err(err(&at("path"), format!("{path} is already used by {}", de::index("audit", j, n))));
        }
        let mut options: std::collections::BTreeMap<String, String> =
            a.options.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        for k in ["file_path", "path"] {
            if let Some(p) = options.get_mut(k) {
                let trimmed = p.trim();
                if !trimmed.is_empty() && trimmed != "stdout" && trimmed != "discard" {
                    let joined = base.join(trimmed);
                    *p = std::path::absolute(&joined).unwrap_or(joined).display().to_string();
                }
            }
        }
        let opts = rules.check(&a.kind.0, &options, crate::audit::Origin::Config).map_err(|e| match e {
            crate::audit::AuditError::Invalid { key: Some(k), message } => err(&at(&k), message),
            other => err(&key, other),
        })?;
        if let crate::audit::options::SinkPath::File(f) = &opts.sink {
            let same = |d: &DeclaredDevice| {
                crate::audit::options::parse_file_options(&d.options)
                    .is_ok_and(|o| o.sink == crate::audit::options::SinkPath::File(f.clone()))
            };
            if let Some(j) = out.iter().position(same) {
                return Err(err(
                    &at("options.file_path"),
                    format!(
                        "{} is already the file of {}; each device needs its own file",
                        f.display(),
                        de::index("audit", j, n)
                    ),
                ));
            }
        }
        out.push(DeclaredDevice {
            path,
            kind: a.kind.0,
            description: a.description.map(|t| t.0).unwrap_or_default(),
            local: a.local.map(|f| f.0).unwrap_or(false),
            options,
        });
    }
    Ok(out)
}

fn check_storage(
    storage: Option<Vec<RawStorage>>,
    backend: Option<Vec<RawStorage>>,
    base: &Path,
) -> Result<StorageConfig, ConfigError> {
    let (key, mut blocks) = match (storage, backend) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "storage and backend are both set; backend is Vault's old name for storage, keep one".into(),
            ));
        }
        (Some(s), None) => ("storage", s),
        (None, Some(b)) => ("backend", b),
        (None, None) => {
            return Err(err(
                "storage",
                "required (for example storage \"file\" { path = \"/var/lib/coffer\" }, or [storage] type = \"file\" in TOML)",
            ));
        }
    };
    if blocks.len() != 1 {
        return Err(err(key, format!("exactly one storage block is allowed, found {}", blocks.len())));
    }
    let Some(block) = blocks.pop() else { return Err(err(key, "required")) };
    let path_of = |sub: &str, p: &str| -> Result<PathBuf, ConfigError> {
        if p.trim().is_empty() {
            return Err(err(&format!("{key}.{sub}.path"), "must not be empty"));
        }
        Ok(base.join(p))
    };
    Ok(match block {
        RawStorage::File(f) => StorageConfig::File { path: path_of("file", &f.path.0)? },
        RawStorage::Inmem(_) => StorageConfig::Memory,
        RawStorage::Raft(r) => {
            let path = path_of("raft", &r.path.0)?;
            let node_id = match r.node_id {
                Some(t) if t.0.trim().is_empty() => {
                    return Err(err(&format!("{key}.raft.node_id"), "must not be empty"))
                }
                Some(t) => Some(t.0),
                None => None,
            };
            let joins = r.retry_join.unwrap_or_default();
            let n = joins.len();
            let retry_join = joins
                .into_iter()
                .enumerate()
                .map(|(i, j)| check_retry_join(&de::index(&format!("{key}.raft.retry_join"), i, n), j, base))
                .collect::<Result<_, _>>()?;
            StorageConfig::Raft { path, node_id, retry_join }
        }
    })
}

fn check_retry_join(path: &str, j: RawRetryJoin, base: &Path) -> Result<RetryJoin, ConfigError> {
    let leader_api_addr = check_url(&de::join(path, "leader_api_addr"), &j.leader_api_addr.0)?;
    let file = |t: Option<raw::Text>| t.map(|t| base.join(t.0));
    if j.leader_client_cert_file.is_some() != j.leader_client_key_file.is_some() {
        return Err(err(path, "leader_client_cert_file and leader_client_key_file must be set together"));
    }
    Ok(RetryJoin {
        leader_api_addr,
        leader_ca_cert_file: file(j.leader_ca_cert_file),
        leader_client_cert_file: file(j.leader_client_cert_file),
        leader_client_key_file: file(j.leader_client_key_file),
        leader_tls_servername: j.leader_tls_servername.map(|t| t.0),
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

/// `IP:port`, `[v6]:port` or `host:port` (resolved now, first address).
fn parse_socket_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(err(
            key,
            format!("\"{s}\" is not an address (expected host:port, e.g. {DEFAULT_ADDRESS})"),
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(err(
            key,
            format!("\"{s}\" is not an address (expected host:port, e.g. {DEFAULT_ADDRESS})"),
        ));
    }
    s.to_socket_addrs()
        .map_err(|e| err(key, format!("cannot resolve \"{s}\": {e}")))?
        .next()
        .ok_or_else(|| err(key, format!("\"{s}\" resolves to no address")))
}

/// `cluster_addr`: a URL as [`check_url`] checks it, always `https://`. The cluster port speaks
/// TLS whatever the scheme says, so `http://` (which HashiCorp's integrated-storage tutorial
/// writes) is accepted with a warning and rewritten, as Vault and OpenBao do.
fn check_cluster_addr(s: &str, warnings: &mut Vec<String>) -> Result<String, ConfigError> {
    let url = check_url("cluster_addr", s)?;
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            let https = format!("https://{rest}");
            warnings.push(format!(
                "cluster_addr: \"{url}\" uses http, but the cluster port always speaks TLS; using {https}"
            ));
            Ok(https)
        }
        _ => Ok(url),
    }
}

/// An `http(s)://host[:port]` URL with nothing after the authority but an optional `/`.
fn check_url(key: &str, s: &str) -> Result<String, ConfigError> {
    let s = s.trim();
    let uri: http::Uri =
        s.parse().map_err(|_| err(key, format!("\"{s}\" is not a URL (expected https://host:port)")))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(err(key, format!("\"{s}\" must start with http:// or https://"))),
    }
    let Some(auth) = uri.authority() else {
        return Err(err(key, format!("\"{s}\" has no host")));
    };
    if auth.host().is_empty() || auth.as_str().contains('@') {
        return Err(err(key, format!("\"{s}\" must be scheme://host[:port] without credentials")));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(err(key, format!("\"{s}\" must not have a path or query")));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `host:port` of a URL, with the scheme's default port.
fn authority(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) => {
            let host = u.host().unwrap_or_default().to_ascii_lowercase();
            let port = u.port_u16().unwrap_or(if u.scheme_str() == Some("http") { 80 } else { 443 });
            format!("{host}:{port}")
        }
        Err(_) => url.to_owned(),
    }
}

fn same_authority(a: &str, b: &str) -> bool {
    authority(a) == authority(b)
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

fn check_seal(
    raw: Option<Vec<RawSeal>>,
    r: &Resolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<SealConfig, ConfigError> {
    let mut blocks = raw.unwrap_or_default();
    if blocks.len() > 1 {
        return Err(err("seal", format!("only one seal block is allowed, found {}", blocks.len())));
    }
    match blocks.pop() {
        None => Ok(SealConfig::Shamir),
        Some(RawSeal::Static(s)) => check_static_seal(s, r, warnings).map(SealConfig::Static),
    }
}

fn check_static_seal(
    s: RawStaticSeal,
    r: &Resolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<StaticSeal, ConfigError> {
    const P: &str = "seal.static";
    if s.disabled.map(|f| f.0).unwrap_or(false) {
        return Err(err(
            &format!("{P}.disabled"),
            "seal migration is not supported; remove the seal block or disabled",
        ));
    }
    let id = |k: &str, t: Option<raw::Text>| -> Result<Option<String>, ConfigError> {
        match t {
            Some(t) if t.0.trim().is_empty() => Err(err(&format!("{P}.{k}"), "must not be empty")),
            other => Ok(other.map(|t| t.0)),
        }
    };
    let current_key_id = id("current_key_id", s.current_key_id)?.ok_or_else(|| {
        err(&format!("{P}.current_key_id"), "required (a permanent identifier for current_key)")
    })?;
    let previous_key_id = id("previous_key_id", s.previous_key_id)?;
    let load = |k: &str, v: &raw::SecretText, warnings: &mut Vec<String>| -> Result<UnsealKey, ConfigError> {
        let key = format!("{P}.{k}");
        if v.0.trim().is_empty() {
            return Err(err(&key, "must not be empty"));
        }
        let bytes = r.resolve(&key, &v.0, warnings)?;
        secret::decode_key(&key, &bytes)
    };
    let current_key = match &s.current_key {
        Some(v) => load("current_key", v, warnings)?,
        None => {
            return Err(err(&format!("{P}.current_key"), "required (env:NAME, file:PATH or the key itself)"))
        }
    };
    let previous = match (previous_key_id, &s.previous_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(err(&format!("{P}.previous_key"), "required when previous_key_id is set"))
        }
        (None, Some(_)) => {
            return Err(err(&format!("{P}.previous_key_id"), "required when previous_key is set"))
        }
        (Some(key_id), Some(v)) => {
            let key = load("previous_key", v, warnings)?;
            let same_key = current_key.ct_eq(key.expose());
            if same_key && key_id != current_key_id {
                return Err(err(P, "current_key and previous_key are the same key with different ids"));
            }
            if !same_key && key_id == current_key_id {
                return Err(err(P, "current_key and previous_key differ but have the same id"));
            }
            warnings.push(format!(
                "{P}.previous_key: seal key rotation is not implemented yet; only current_key unseals"
            ));
            Some(PreviousKey { key_id, key })
        }
    };
    Ok(StaticSeal { current_key_id, current_key, previous })
}
