//! `audit` blocks: audit devices declared in the configuration, enabled at unseal.
//!
//! Paths and files are unique, options are those the device understands, and the server rules
//! hold (no `prefix` without `allow_audit_log_prefixing`, no file in the storage directory).

use std::path::Path;

use super::de;
use super::error::ConfigError;
use super::raw::RawAudit;
use crate::audit::{AuditSettings, DeclaredDevice};

/// Validates the `audit` blocks: unique paths and files, options the device understands, and
/// the server rules (no `prefix` without `allow_audit_log_prefixing`, no file in the storage
/// directory). Relative `file_path`s are relative to the configuration file's directory.
pub fn check_audit(
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
            return Err(ConfigError::setting(&at("path"), "must not be empty"));
        }
        let path = crate::audit::options::normalize_path(&a.path.0);
        if let Some(j) = out.iter().position(|d| d.path == path) {
            return Err(ConfigError::setting(
                &at("path"),
                format!("{path} is already used by {}", de::index("audit", j, n)),
            ));
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
            crate::audit::AuditError::Invalid { key: Some(k), message } => {
                ConfigError::setting(&at(&k), message)
            }
            other => ConfigError::setting(&key, other),
        })?;
        if let crate::audit::options::SinkPath::File(f) = &opts.sink {
            let same = |d: &DeclaredDevice| {
                crate::audit::options::parse_file_options(&d.options)
                    .is_ok_and(|o| o.sink == crate::audit::options::SinkPath::File(f.clone()))
            };
            if let Some(j) = out.iter().position(same) {
                return Err(ConfigError::setting(
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
