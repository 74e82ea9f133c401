//! The `storage` block (or Vault's older name, `backend`): where data lives.
//!
//! Exactly one block is allowed. `file` (sled) and `raft` need a `path`, relative to the
//! configuration file's directory; `raft`'s `retry_join` peers are checked here, except for the
//! rule that a node must not join itself, which needs `api_addr` and lives with the cross-field
//! checks in `mod.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::check_url;
use super::de;
use super::error::ConfigError;
use super::raw::{self, RawRetryJoin, RawStorage};

/// Where data lives.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// `file` (sled) at `path`.
    File { path: PathBuf },
    /// `inmem`: nothing survives a restart.
    Memory,
    /// `raft`: replicated storage.
    Raft { path: PathBuf, node_id: Option<String>, retry_join: Vec<RetryJoin>, tuning: RaftTuning },
}

/// Timings and behaviour of a raft node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTuning {
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// Entries applied between snapshots.
    pub snapshot_threshold: u64,
    /// Entries kept behind a snapshot.
    pub trailing_logs: u64,
    pub request_forwarding: bool,
    pub stale_reads: bool,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(150),
            election_timeout: Duration::from_millis(1000),
            snapshot_threshold: 8192,
            trailing_logs: 10_000,
            request_forwarding: true,
            stale_reads: false,
        }
    }
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

/// Checks the `storage` / `backend` blocks: exactly one, with a non-empty `path` for `file` and
/// `raft` (relative to `base`).
pub fn check_storage(
    storage: Option<Vec<RawStorage>>,
    backend: Option<Vec<RawStorage>>,
    base: &Path,
) -> Result<StorageConfig, ConfigError> {
    let (key, mut blocks) = match (storage, backend) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict(
                "storage and backend are both set; backend is Vault's old name for storage, keep one".into(),
            ));
        }
        (Some(s), None) => ("storage", s),
        (None, Some(b)) => ("backend", b),
        (None, None) => {
            return Err(ConfigError::setting(
                "storage",
                "required (for example storage \"file\" { path = \"/var/lib/coffer\" }, or [storage] type = \"file\" in TOML)",
            ));
        }
    };
    if blocks.len() != 1 {
        return Err(ConfigError::setting(
            key,
            format!("exactly one storage block is allowed, found {}", blocks.len()),
        ));
    }
    let Some(block) = blocks.pop() else { return Err(ConfigError::setting(key, "required")) };
    let path_of = |sub: &str, p: &str| -> Result<PathBuf, ConfigError> {
        if p.trim().is_empty() {
            return Err(ConfigError::setting(&format!("{key}.{sub}.path"), "must not be empty"));
        }
        Ok(base.join(p))
    };
    Ok(match block {
        RawStorage::File(f) => StorageConfig::File { path: path_of("file", &f.path.0)? },
        RawStorage::Inmem(_) => StorageConfig::Memory,
        RawStorage::Raft(r) => {
            let tuning = check_tuning(key, &r)?;
            let path = path_of("raft", &r.path.0)?;
            let node_id = match r.node_id {
                Some(t) if t.0.trim().is_empty() => {
                    return Err(ConfigError::setting(&format!("{key}.raft.node_id"), "must not be empty"))
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
            StorageConfig::Raft { path, node_id, retry_join, tuning }
        }
    })
}

/// A Go duration of at least 1 ms.
fn millis(key: &str, t: &raw::Text) -> Result<Duration, ConfigError> {
    let ns = crate::util::duration::parse_go_duration(&t.0)
        .map_err(|e| ConfigError::setting(key, format!("invalid duration {:?}: {e}", t.0)))?;
    if ns < 1_000_000 {
        return Err(ConfigError::setting(key, "must be at least 1ms"));
    }
    Ok(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
}

fn check_tuning(key: &str, r: &raw::RawRaftStorage) -> Result<RaftTuning, ConfigError> {
    let mut t = RaftTuning::default();
    let k = |sub: &str| format!("{key}.raft.{sub}");
    if let Some(d) = &r.heartbeat_interval {
        t.heartbeat_interval = millis(&k("heartbeat_interval"), d)?;
    }
    if let Some(d) = &r.election_timeout {
        t.election_timeout = millis(&k("election_timeout"), d)?;
    }
    if t.election_timeout < t.heartbeat_interval * 3 {
        return Err(ConfigError::setting(
            &k("election_timeout"),
            "must be at least three heartbeat intervals, or followers elect while the leader is alive",
        ));
    }
    for (name, v, slot) in [
        ("snapshot_threshold", &r.snapshot_threshold, &mut t.snapshot_threshold),
        ("trailing_logs", &r.trailing_logs, &mut t.trailing_logs),
    ] {
        if let Some(n) = v {
            *slot = u64::try_from(n.0)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::setting(&k(name), "must be a positive number"))?;
        }
    }
    if let Some(f) = &r.request_forwarding {
        t.request_forwarding = f.0;
    }
    if let Some(c) = &r.read_consistency {
        t.stale_reads = match c.0.trim() {
            "" | "linearizable" => false,
            "stale" => true,
            other => {
                return Err(ConfigError::setting(
                    &k("read_consistency"),
                    format!("must be \"linearizable\" or \"stale\", not {other:?}"),
                ))
            }
        };
    }
    Ok(t)
}

/// One `retry_join` block; `path` is its dotted key.
fn check_retry_join(path: &str, j: RawRetryJoin, base: &Path) -> Result<RetryJoin, ConfigError> {
    let leader_api_addr = check_url(&de::join(path, "leader_api_addr"), &j.leader_api_addr.0)?;
    let file = |t: Option<raw::Text>| t.map(|t| base.join(t.0));
    if j.leader_client_cert_file.is_some() != j.leader_client_key_file.is_some() {
        return Err(ConfigError::setting(
            path,
            "leader_client_cert_file and leader_client_key_file must be set together",
        ));
    }
    Ok(RetryJoin {
        leader_api_addr,
        leader_ca_cert_file: file(j.leader_ca_cert_file),
        leader_client_cert_file: file(j.leader_client_cert_file),
        leader_client_key_file: file(j.leader_client_key_file),
        leader_tls_servername: j.leader_tls_servername.map(|t| t.0),
    })
}
