//! Where a kv path lives: the preflight (`GET sys/internal/ui/mounts/<path>`) tells the mount
//! and its KV version (a 404 means an old server and KV v1), and KV v2 API paths put their
//! prefix (`data/`, `metadata/`, `delete/`, `undelete/`, `destroy/`) after the mount, as the
//! Vault CLI's `kvPreflightVersionRequest` and `addPrefixToKVPath` do.

use reqwest::Method;
use serde_json::Value;

use super::super::{sanitize_path, usage, Exit};
use crate::client::Client;

/// Where a kv path lives: the mount (with trailing slash, "" when unknown), its version, and the
/// path including the mount.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub mount: String,
    pub v2: bool,
    pub partial: String,
}

impl Resolved {
    /// The API path under `prefix` (v2) or the plain path (v1).
    pub fn api_path(&self, prefix: &str) -> String {
        if self.v2 {
            add_prefix(&self.partial, &self.mount, prefix)
        } else {
            self.partial.clone()
        }
    }
}

/// Joins path pieces with single slashes (Go's `path.Join` without `.`/`..` handling).
pub fn join(parts: &[&str]) -> String {
    parts.iter().flat_map(|p| p.split('/')).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/")
}

/// Inserts the v2 API prefix after the mount (`secret/foo` → `secret/data/foo`).
pub fn add_prefix(path: &str, mount: &str, prefix: &str) -> String {
    let m = mount.trim_end_matches('/');
    if path == mount || path == m {
        return join(&[m, prefix]);
    }
    let suffix = path.strip_prefix(mount).unwrap_or(path);
    join(&[m, prefix, suffix])
}

/// `-versions` values (repeated and/or comma separated), checked to be numbers.
pub fn parse_versions(raw: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for r in raw {
        for v in crate::core::fields::split_comma(r) {
            if v.parse::<u64>().is_err() {
                return Err(usage(format!("invalid version \"{v}\": versions are numbers")));
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// The preflight: mount path and KV version of `path`.
pub async fn preflight(client: &Client, path: &str) -> anyhow::Result<(String, bool)> {
    let r = client.send(Method::GET, &format!("sys/internal/ui/mounts/{path}"), &[], None).await?;
    if r.status == 404 {
        return Ok((String::new(), false));
    }
    let body = r.into_result()?.ok_or_else(|| anyhow::anyhow!("nil response from pre-flight request"))?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let mount = data.get("path").and_then(Value::as_str).unwrap_or("").to_owned();
    let v2 = data.get("options").and_then(|o| o.get("version")).and_then(Value::as_str) == Some("2");
    Ok((mount, v2))
}

/// Resolves a target through the preflight.
pub async fn resolve(client: &Client, mount: Option<&str>, path: &str) -> anyhow::Result<Resolved> {
    match mount {
        Some(m) => {
            let flag_mount = sanitize_path(m);
            let (found, v2) = preflight(client, &flag_mount).await?;
            let mount_path = if found.is_empty() { format!("{flag_mount}/") } else { found };
            let partial = join(&[&mount_path, &sanitize_path(path)]);
            Ok(Resolved { mount: mount_path, v2, partial })
        }
        None => {
            let partial = path.trim().trim_start_matches('/').to_owned();
            let (mount_path, v2) = preflight(client, &sanitize_path(&partial)).await?;
            Ok(Resolved { mount: mount_path, v2, partial: sanitize_path(&partial) })
        }
    }
}

/// [`resolve`], for a command that needs KV version 2 (`what` names it in the error).
pub async fn resolve_v2(
    client: &Client,
    mount: Option<&str>,
    path: &str,
    what: &str,
) -> anyhow::Result<Resolved> {
    let r = resolve(client, mount, path).await?;
    v2_only(&r, what)?;
    Ok(r)
}

/// `what` needs KV version 2 (exit 2 on a v1 mount, as the Vault CLI).
fn v2_only(r: &Resolved, what: &str) -> anyhow::Result<()> {
    if r.v2 {
        Ok(())
    } else {
        Err(Exit { code: 2, message: format!("{what} not supported on KV Version 1") }.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(add_prefix("secret/foo", "secret/", "data"), "secret/data/foo");
        assert_eq!(add_prefix("secret/a/b", "secret/", "metadata"), "secret/metadata/a/b");
        assert_eq!(add_prefix("secret", "secret/", "metadata"), "secret/metadata");
        assert_eq!(add_prefix("secret/", "secret/", "metadata"), "secret/metadata");
        assert_eq!(add_prefix("team/kv/x", "team/kv/", "data"), "team/kv/data/x");
        assert_eq!(join(&["secret/", "/foo//bar/"]), "secret/foo/bar");
        let r = Resolved { mount: "kv/".into(), v2: false, partial: "kv/x".into() };
        assert_eq!(r.api_path("data"), "kv/x");
    }

    #[test]
    fn versions() {
        assert_eq!(parse_versions(&["1,2".into(), " 3 ".into()]).unwrap(), vec!["1", "2", "3"]);
        assert!(parse_versions(&["one".into()]).is_err());
    }
}
