//! Addresses in the configuration: listener socket addresses (`host:port`, resolved once at
//! load) and the `api_addr` / `cluster_addr` / `leader_api_addr` URLs (`http(s)://host[:port]`,
//! nothing after the authority).

use std::net::{SocketAddr, ToSocketAddrs};

use super::error::ConfigError;

/// Vault's default listener address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8200";

/// `IP:port`, `[v6]:port` or `host:port` (resolved now, first address).
pub fn parse_socket_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let host_and_port = s.rsplit_once(':');
    if !host_and_port.is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()) {
        return Err(ConfigError::setting(
            key,
            format!("\"{s}\" is not an address (expected host:port, e.g. {DEFAULT_ADDRESS})"),
        ));
    }
    s.to_socket_addrs()
        .map_err(|e| ConfigError::setting(key, format!("cannot resolve \"{s}\": {e}")))?
        .next()
        .ok_or_else(|| ConfigError::setting(key, format!("\"{s}\" resolves to no address")))
}

/// `cluster_addr`: a URL as [`check_url`] checks it, always `https://`. The cluster port speaks
/// TLS whatever the scheme says, so `http://` (which HashiCorp's integrated-storage tutorial
/// writes) is accepted with a warning and rewritten, as Vault and OpenBao do.
pub fn check_cluster_addr(s: &str, warnings: &mut Vec<String>) -> Result<String, ConfigError> {
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
pub fn check_url(key: &str, s: &str) -> Result<String, ConfigError> {
    let s = s.trim();
    let uri: http::Uri = s.parse().map_err(|_| {
        ConfigError::setting(key, format!("\"{s}\" is not a URL (expected https://host:port)"))
    })?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(ConfigError::setting(key, format!("\"{s}\" must start with http:// or https://"))),
    }
    let Some(auth) = uri.authority() else {
        return Err(ConfigError::setting(key, format!("\"{s}\" has no host")));
    };
    if auth.host().is_empty() || auth.as_str().contains('@') {
        return Err(ConfigError::setting(
            key,
            format!("\"{s}\" must be scheme://host[:port] without credentials"),
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(ConfigError::setting(key, format!("\"{s}\" must not have a path or query")));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `host:port` of a URL, with the scheme's default port.
pub fn authority(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) => {
            let host = u.host().unwrap_or_default().to_ascii_lowercase();
            let port = u.port_u16().unwrap_or(if u.scheme_str() == Some("http") { 80 } else { 443 });
            format!("{host}:{port}")
        }
        Err(_) => url.to_owned(),
    }
}

/// Whether two URLs name the same host and port.
pub fn same_authority(a: &str, b: &str) -> bool {
    authority(a) == authority(b)
}
