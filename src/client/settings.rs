//! Where the client connects and with which token: [`Settings`], from the caller or from the
//! environment. The most specific variable prefix wins (`COFFER_` over `BAO_` over `VAULT_`); an
//! empty variable counts as unset; without a token variable the token helper file is read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ClientError;
use super::token_helper::{home_dir, read_token_helper, TOKEN_HELPER_FILE};
use crate::secret::ClientToken;

/// Address used when none is configured, as the Vault CLI.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// Per-request timeout when none is configured (the Go client's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach and authenticate to the server.
#[derive(Debug)]
pub struct Settings {
    /// Base URL, e.g. `https://vault.example:8200`.
    pub address: String,
    /// Client token, if any.
    pub token: Option<ClientToken>,
    /// PEM bundle of CA certificates to trust instead of the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate. Dangerous: only for tests against self-signed servers.
    pub dangerous_skip_verify: bool,
    /// Namespace sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            token: None,
            ca_cert: None,
            dangerous_skip_verify: false,
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Settings {
    /// Settings from the process environment and the token helper file.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_lookup(|name| std::env::var(name).ok(), home_dir().as_deref())
    }

    /// Settings from an environment lookup function and a home directory (for tests).
    pub fn from_lookup(
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let var = |suffix: &str| {
            ["COFFER_", "BAO_", "VAULT_"]
                .iter()
                .find_map(|p| env(&format!("{p}{suffix}")).filter(|v| !v.trim().is_empty()))
        };
        let mut s = Settings::default();
        if let Some(addr) = var("ADDR") {
            s.address = addr.trim().to_owned();
        }
        s.token = match var("TOKEN") {
            Some(t) => Some(ClientToken::new(t.trim().to_owned())),
            None => match home {
                Some(h) => read_token_helper(&h.join(TOKEN_HELPER_FILE))?,
                None => None,
            },
        };
        s.ca_cert = var("CACERT").map(PathBuf::from);
        if let Some(v) = var("SKIP_VERIFY") {
            s.dangerous_skip_verify = crate::util::strconv::parse_bool_str(v.trim())
                .ok_or_else(|| ClientError::SkipVerify { value: v.trim().to_owned() })?;
        }
        s.namespace = var("NAMESPACE");
        if let Some(t) = var("CLIENT_TIMEOUT") {
            let secs = crate::util::duration::parse_str_seconds_signed(&t).map_err(ClientError::Timeout)?;
            if secs > 0 {
                s.timeout = Duration::from_secs(secs as u64);
            }
        }
        Ok(s)
    }
}
