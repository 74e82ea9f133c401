//! The three front ends: native TOML, Vault/OpenBao HCL and Vault's JSON form, each turned into
//! one `serde_json::Value` tree in Vault's shape for `raw.rs`.
//!
//! The shape: top-level scalars as they are; labelled blocks (`storage`, `backend`, `listener`,
//! `seal`) as lists of one-key objects, `"listener": [{"tcp": {...}}, {"tcp": {...}}]`; nested
//! unlabelled blocks (`retry_join`) as lists. Native TOML writes the label as `type`:
//!
//! ```toml
//! [storage]
//! type = "file"
//! path = "/var/lib/coffer"
//!
//! [[listener]]
//! type = "tcp"        # the default
//! address = "127.0.0.1:8200"
//! ```
//!
//! Vault keys that mean nothing to coffer are removed here with a warning; Vault keys whose
//! absence would change behaviour in a way an operator must know about are refused.

use serde_json::{Map, Value};

use super::de::{index, join, value_kind};
use super::ConfigError;

/// Which front end reads a file, chosen by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Json,
    Toml,
}

impl Format {
    /// `.toml`, `.hcl` or `.json` (case-insensitive).
    pub fn from_path(path: &std::path::Path) -> Result<Format, ConfigError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("toml") => Ok(Format::Toml),
            Some("hcl") => Ok(Format::Hcl),
            Some("json") => Ok(Format::Json),
            _ => Err(ConfigError(format!(
                "unsupported configuration file extension{} (expected .toml, .hcl or .json)",
                ext.map(|e| format!(" \".{e}\"")).unwrap_or_default()
            ))),
        }
    }
}

/// Keys that hold labelled blocks (`listener "tcp" { }`).
const LABELLED_BLOCKS: &[&str] = &["backend", "ha_backend", "ha_storage", "listener", "seal", "storage"];

/// What to do with a Vault key that coffer does not implement.
enum Unsupported {
    /// Accepted and ignored, with a warning that gives the reason.
    Ignore(&'static str),
    /// Refused: ignoring it would silently weaken security or break clients.
    Refuse(&'static str),
}

use Unsupported::{Ignore, Refuse};

const TOP_LEVEL: &[(&str, Unsupported)] = &[
    ("administrative_namespace_path", Ignore("coffer has no namespaces")),
    ("cache_size", Ignore("coffer does not use Vault's physical cache")),
    ("cluster_cipher_suites", Ignore("the cluster port uses rustls' default cipher suites")),
    ("default_max_request_duration", Ignore("request duration limits are not implemented")),
    ("detect_deadlocks", Ignore("a Vault debugging aid")),
    ("disable_cache", Ignore("coffer does not use Vault's physical cache")),
    ("disable_clustering", Ignore("clustering comes with raft storage")),
    ("disable_performance_standby", Ignore("coffer has no performance standbys")),
    ("disable_printable_check", Ignore("a Vault compatibility switch")),
    ("disable_sealwrap", Ignore("coffer has no seal wrapping")),
    ("disable_sentinel_trace", Ignore("coffer has no Sentinel")),
    ("enable_response_header_hostname", Ignore("not implemented")),
    ("enable_response_header_raft_node_id", Ignore("not implemented")),
    ("ha_backend", Refuse("coffer has no separate HA storage; raft storage provides HA")),
    ("ha_storage", Refuse("coffer has no separate HA storage; raft storage provides HA")),
    ("imprecise_lease_role_tracking", Ignore("not implemented")),
    ("initialize", Ignore("declarative initialisation is not implemented; use `operator init`")),
    ("introspection_endpoint", Ignore("not implemented")),
    ("license_path", Ignore("coffer needs no license")),
    ("log_file", Ignore("coffer logs to stderr (the journal under systemd)")),
    ("log_format", Ignore("coffer logs in its own text format")),
    ("log_requests_level", Ignore("request logging is not implemented")),
    ("log_rotate_bytes", Ignore("coffer logs to stderr (the journal under systemd)")),
    ("log_rotate_duration", Ignore("coffer logs to stderr (the journal under systemd)")),
    ("log_rotate_max_files", Ignore("coffer logs to stderr (the journal under systemd)")),
    ("pid_file", Ignore("use the service manager to track the process")),
    ("plugin", Ignore("coffer has no plugins")),
    ("plugin_auto_download", Ignore("coffer has no plugins")),
    ("plugin_auto_register", Ignore("coffer has no plugins")),
    ("plugin_directory", Ignore("coffer has no plugins")),
    ("plugin_file_permissions", Ignore("coffer has no plugins")),
    ("plugin_file_uid", Ignore("coffer has no plugins")),
    ("plugin_tmpdir", Ignore("coffer has no plugins")),
    ("raw_storage_endpoint", Ignore("sys/raw is not implemented")),
    ("service_registration", Ignore("service registration is not implemented")),
    ("telemetry", Ignore("metrics export is not implemented")),
    ("ui", Ignore("coffer has no web UI")),
    ("user_lockout", Ignore("not configurable yet")),
];

const TCP_LISTENER: &[(&str, Unsupported)] = &[
    ("chroot_namespace", Ignore("coffer has no namespaces")),
    ("custom_response_headers", Ignore("not implemented")),
    ("disable_replication_status_endpoints", Ignore("coffer has no replication status endpoints")),
    ("disable_request_limiter", Ignore("coffer has no request limiter")),
    ("inflight_requests_logging", Ignore("not implemented")),
    ("max_request_duration", Ignore("request duration limits are not implemented")),
    ("max_request_json_memory", Ignore("not configurable")),
    ("max_request_json_strings", Ignore("not configurable")),
    ("profiling", Ignore("not implemented")),
    ("proxy_protocol_authorized_addrs", Refuse("the PROXY protocol is not supported")),
    ("proxy_protocol_behavior", Refuse("the PROXY protocol is not supported")),
    ("redact_addresses", Ignore("not implemented")),
    ("redact_cluster_name", Ignore("not implemented")),
    ("redact_version", Ignore("not implemented")),
    ("telemetry", Ignore("metrics export is not implemented")),
    ("tls_acme_ca_directory", Refuse("ACME certificates are not supported; use tls_cert_file")),
    ("tls_acme_domains", Refuse("ACME certificates are not supported; use tls_cert_file")),
    ("tls_acme_email", Refuse("ACME certificates are not supported; use tls_cert_file")),
    ("tls_cipher_suites", Ignore("coffer uses rustls' default cipher suites")),
    // Without tls_require_and_verify_client_cert, Vault only requests client certificates for
    // its cert auth method, which coffer does not have: ignoring the CA weakens nothing.
    ("tls_client_ca_file", Ignore("coffer has no cert auth method and requests no client certificates")),
    ("tls_disable_client_certs", Ignore("coffer does not request client certificates")),
    ("tls_max_version", Ignore("coffer negotiates TLS 1.2 and 1.3")),
    ("tls_prefer_server_cipher_suites", Ignore("rustls chooses cipher suites")),
    ("unauthenticated_metrics_access", Ignore("metrics export is not implemented")),
    ("x_forwarded_for_authorized_addrs", Ignore("X-Forwarded-For is not interpreted")),
    ("x_forwarded_for_client_cert_header", Ignore("X-Forwarded-For is not interpreted")),
    ("x_forwarded_for_client_cert_header_decoders", Ignore("X-Forwarded-For is not interpreted")),
    ("x_forwarded_for_hop_skips", Ignore("X-Forwarded-For is not interpreted")),
    ("x_forwarded_for_reject_not_authorized", Ignore("X-Forwarded-For is not interpreted")),
    ("x_forwarded_for_reject_not_present", Ignore("X-Forwarded-For is not interpreted")),
];

const RAFT_STORAGE: &[(&str, Unsupported)] = &[
    ("autopilot_reconcile_interval", Ignore("not configurable yet")),
    ("autopilot_update_interval", Ignore("not configurable yet")),
    ("max_entry_size", Ignore("not configurable yet")),
    ("max_mount_and_namespace_table_entry_size", Ignore("not configurable yet")),
    ("performance_multiplier", Ignore("not configurable yet")),
    ("raft_log_verification_interval", Ignore("not configurable yet")),
    ("raft_log_verifier_enabled", Ignore("not configurable yet")),
    ("snapshot_interval", Ignore("not configurable yet")),
    ("snapshot_threshold", Ignore("not configurable yet")),
    ("trailing_logs", Ignore("not configurable yet")),
];

const RETRY_JOIN: &[(&str, Unsupported)] = &[
    ("auto_join", Refuse("cloud auto-join is not supported; list peers with leader_api_addr")),
    ("auto_join_port", Refuse("cloud auto-join is not supported; list peers with leader_api_addr")),
    ("auto_join_scheme", Refuse("cloud auto-join is not supported; list peers with leader_api_addr")),
    ("leader_ca_cert", Refuse("inline PEM is not supported; use leader_ca_cert_file")),
    ("leader_client_cert", Refuse("inline PEM is not supported; use leader_client_cert_file")),
    ("leader_client_key", Refuse("inline PEM is not supported; use leader_client_key_file")),
];

/// Parses `text` in `format` into the Vault-shaped tree and the warnings for ignored keys.
pub fn to_tree(text: &str, format: Format) -> Result<(Value, Vec<String>), ConfigError> {
    let mut tree = match format {
        Format::Toml => {
            let v: toml::Value = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
            let v = serde_json::to_value(v).map_err(|e| ConfigError(format!("invalid TOML: {e}")))?;
            toml_to_vault_shape(v)?
        }
        Format::Hcl => {
            let body = hcl::parse(text).map_err(|e| hcl_error(&e))?;
            // Audit blocks have two labels (type and path); the generic conversion would nest
            // them, so they are taken out here and flattened.
            let (audits, rest): (Vec<hcl::Structure>, Vec<hcl::Structure>) = body
                .into_iter()
                .partition(|s| matches!(s, hcl::Structure::Block(b) if b.identifier.as_str() == "audit"));
            let v = hcl::Value::from(hcl::Body::from_iter(rest));
            let mut v = serde_json::to_value(v).map_err(|e| ConfigError(format!("invalid HCL: {e}")))?;
            if !audits.is_empty() {
                let n = audits.len();
                let blocks = audits
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s {
                        hcl::Structure::Block(b) => Some(hcl_audit_block(&index("audit", i, n), b)),
                        hcl::Structure::Attribute(_) => None,
                    })
                    .collect::<Result<Vec<Value>, ConfigError>>()?;
                if let Value::Object(top) = &mut v {
                    top.insert("audit".into(), Value::Array(blocks));
                }
            }
            normalize_blocks(v)?
        }
        Format::Json => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| ConfigError(format!("invalid JSON: {e}")))?;
            normalize_blocks(v)?
        }
    };
    if let Value::Object(top) = &mut tree {
        normalize_audit(top)?;
    }
    let mut warnings = Vec::new();
    strip_unsupported(&mut tree, &mut warnings)?;
    Ok((tree, warnings))
}

/// A TOML syntax error with its position. The parser's own rendering quotes the source line,
/// which may hold an inline secret, so only the message and the position are kept.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
            ConfigError(format!("invalid TOML at line {line}, column {column}: {message}"))
        }
        None => ConfigError(format!("invalid TOML: {message}")),
    }
}

/// An HCL syntax error with its position, without the quoted source line (see [`toml_error`]).
fn hcl_error(e: &hcl::Error) -> ConfigError {
    match e {
        hcl::Error::Parse(p) => ConfigError(format!(
            "invalid HCL at line {}, column {}: {}",
            p.location().line(),
            p.location().column(),
            p.message().trim().replace('\n', "; ")
        )),
        other => ConfigError(format!("invalid HCL: {other}")),
    }
}

/// One HCL `audit "TYPE" "PATH" { ... }` block as a flat object (`type`, `path` and the body).
/// The labels may also be written inside the block.
fn hcl_audit_block(path: &str, b: hcl::Block) -> Result<Value, ConfigError> {
    let labels: Vec<String> = b.labels.iter().map(|l| l.as_str().to_owned()).collect();
    let body = serde_json::to_value(hcl::Value::from(b.body))
        .map_err(|e| ConfigError(format!("invalid HCL: {e}")))?;
    let Value::Object(mut body) = body else {
        return Err(ConfigError(format!("{path}: expected a block")));
    };
    if labels.len() > 2 {
        return Err(ConfigError(format!(
            "{path}: expected audit \"TYPE\" \"PATH\" {{ ... }}, found {} labels",
            labels.len()
        )));
    }
    for (label, key) in labels.into_iter().zip(["type", "path"]) {
        if body.contains_key(key) {
            return Err(ConfigError(format!("{path}.{key}: given both as a block label and in the block")));
        }
        body.insert(key.to_owned(), Value::String(label));
    }
    Ok(Value::Object(body))
}

/// Brings `audit` into one shape: a list of flat objects with `type` and `path`. Accepted:
/// flat objects (`[[audit]] type = "file" path = "x"` in TOML, or JSON with `type`), and
/// Vault/OpenBao's JSON form keyed by type, then path (`{"audit": [{"file": {"x": {..}}}]}`).
fn normalize_audit(top: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let Some(value) = top.remove("audit") else { return Ok(()) };
    let items = match value {
        Value::Array(items) => items,
        Value::Object(m) => vec![Value::Object(m)],
        other => {
            return Err(ConfigError(format!(
                "audit: expected a block (audit \"TYPE\" \"PATH\" {{ ... }}), found {}",
                value_kind(&other)
            )));
        }
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(ConfigError(format!("audit: expected a block, found {}", value_kind(&item))));
        };
        if m.get("type").is_some_and(Value::is_string) {
            out.push(Value::Object(m));
            continue;
        }
        for (kind, by_path) in m {
            let groups = match by_path {
                Value::Array(a) => a,
                other => vec![other],
            };
            for group in groups {
                let Value::Object(paths) = group else {
                    return Err(ConfigError(format!(
                        "audit.{kind}: expected blocks keyed by the device path, found {}",
                        value_kind(&group)
                    )));
                };
                for (path, body) in paths {
                    let bodies = match body {
                        Value::Array(b) => b,
                        other => vec![other],
                    };
                    for body in bodies {
                        let Value::Object(mut body) = body else {
                            return Err(ConfigError(format!(
                                "audit.{kind}.{path}: expected a block, found {}",
                                value_kind(&body)
                            )));
                        };
                        for key in ["type", "path"] {
                            if body.contains_key(key) {
                                return Err(ConfigError(format!(
                                    "audit.{kind}.{path}.{key}: given both as a label and in the block"
                                )));
                            }
                        }
                        body.insert("type".into(), Value::String(kind.clone()));
                        body.insert("path".into(), Value::String(path.clone()));
                        out.push(Value::Object(body));
                    }
                }
            }
        }
    }
    top.insert("audit".into(), Value::Array(out));
    Ok(())
}

/// Native TOML: `[storage] type = "file"` becomes `"storage": [{"file": {...}}]`, and so on.
fn toml_to_vault_shape(v: Value) -> Result<Value, ConfigError> {
    let Value::Object(mut top) = v else { return Err(ConfigError("expected a TOML document".into())) };
    for key in LABELLED_BLOCKS {
        let Some(value) = top.remove(*key) else { continue };
        let items = match value {
            Value::Array(items) => items,
            Value::Object(m) => vec![Value::Object(m)],
            other => {
                return Err(ConfigError(format!("{key}: expected a table, found {}", value_kind(&other))));
            }
        };
        let n = items.len();
        let mut out = Vec::with_capacity(n);
        for (i, item) in items.into_iter().enumerate() {
            let path = index(key, i, n);
            let Value::Object(mut body) = item else {
                return Err(ConfigError(format!("{path}: expected a table, found {}", value_kind(&item))));
            };
            let label = match body.remove("type") {
                Some(Value::String(t)) => t,
                None if *key == "listener" => "tcp".to_owned(),
                None => {
                    return Err(ConfigError(format!("{path}.type: required (for example type = \"file\")")));
                }
                Some(other) => {
                    return Err(ConfigError(format!(
                        "{path}.type: expected a string, found {}",
                        value_kind(&other)
                    )));
                }
            };
            out.push(Value::Object(Map::from_iter([(label, Value::Object(body))])));
        }
        top.insert((*key).to_owned(), Value::Array(out));
    }
    Ok(Value::Object(top))
}

/// Vault HCL and JSON: every labelled block becomes a list of one-key objects, whichever of the
/// forms HCL and Vault's JSON allow was used (`{"tcp": {..}}`, `{"tcp": [{..}, {..}]}`,
/// `[{"tcp": {..}}]`, `{"tcp": {..}, "unix": {..}}`).
fn normalize_blocks(v: Value) -> Result<Value, ConfigError> {
    let Value::Object(mut top) = v else {
        return Err(ConfigError(format!("expected an object at the top, found {}", value_kind(&v))));
    };
    for key in LABELLED_BLOCKS {
        let Some(value) = top.remove(*key) else { continue };
        let mut out = Vec::new();
        let groups = match value {
            Value::Array(items) => items,
            Value::Object(m) => vec![Value::Object(m)],
            other => {
                return Err(ConfigError(format!(
                    "{key}: expected a block ({key} \"TYPE\" {{ ... }}), found {}",
                    value_kind(&other)
                )));
            }
        };
        for group in groups {
            let Value::Object(labels) = group else {
                return Err(ConfigError(format!("{key}: expected a block, found {}", value_kind(&group))));
            };
            for (label, body) in labels {
                let bodies = match body {
                    Value::Array(b) => b,
                    b => vec![b],
                };
                for b in bodies {
                    out.push(Value::Object(Map::from_iter([(label.clone(), b)])));
                }
            }
        }
        top.insert((*key).to_owned(), Value::Array(out));
    }
    Ok(Value::Object(top))
}

/// Removes ignored keys (with a warning) and refuses refused ones, at the top level, in `tcp`
/// listeners and in `raft` storage; also turns single `retry_join` blocks into lists.
fn strip_unsupported(tree: &mut Value, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let Value::Object(top) = tree else { return Ok(()) };
    strip(top, "", TOP_LEVEL, warnings)?;
    for (key, kind, table) in [("listener", "tcp", TCP_LISTENER), ("storage", "raft", RAFT_STORAGE)] {
        let Some(Value::Array(items)) = top.get_mut(key) else { continue };
        let n = items.len();
        for (i, item) in items.iter_mut().enumerate() {
            let Some(Value::Object(body)) = item.get_mut(kind) else { continue };
            let path = join(&index(key, i, n), kind);
            strip(body, &path, table, warnings)?;
            if kind == "raft" {
                if let Some(rj) = body.get_mut("retry_join") {
                    if rj.is_object() {
                        *rj = Value::Array(vec![rj.take()]);
                    }
                    if let Value::Array(joins) = rj {
                        let m = joins.len();
                        for (j, join_block) in joins.iter_mut().enumerate() {
                            if let Value::Object(jb) = join_block {
                                strip(jb, &index(&join(&path, "retry_join"), j, m), RETRY_JOIN, warnings)?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn strip(
    map: &mut Map<String, Value>,
    path: &str,
    table: &[(&str, Unsupported)],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (key, what) in table {
        if !map.contains_key(*key) {
            continue;
        }
        match what {
            Ignore(reason) => {
                map.remove(*key);
                warnings.push(format!("{}: ignored ({reason})", join(path, key)));
            }
            Refuse(reason) => {
                return Err(ConfigError(format!("{}: not supported by coffer: {reason}", join(path, key))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn format_by_extension() {
        use std::path::Path;
        assert_eq!(Format::from_path(Path::new("/etc/coffer/coffer.toml")).unwrap(), Format::Toml);
        assert_eq!(Format::from_path(Path::new("vault.HCL")).unwrap(), Format::Hcl);
        assert_eq!(Format::from_path(Path::new("x.json")).unwrap(), Format::Json);
        assert_eq!(
            Format::from_path(Path::new("x.yaml")).unwrap_err().0,
            "unsupported configuration file extension \".yaml\" (expected .toml, .hcl or .json)"
        );
        assert_eq!(
            Format::from_path(Path::new("noext")).unwrap_err().0,
            "unsupported configuration file extension (expected .toml, .hcl or .json)"
        );
    }

    #[test]
    fn toml_blocks_take_their_label_from_type() {
        let (t, w) = to_tree(
            r#"
            api_addr = "https://a:8200"
            [storage]
            type = "file"
            path = "/d"
            [[listener]]
            address = "127.0.0.1:1"
            [[listener]]
            type = "tcp"
            address = "127.0.0.1:2"
            [seal]
            type = "static"
            current_key_id = "k1"
            "#,
            Format::Toml,
        )
        .unwrap();
        assert!(w.is_empty());
        assert_eq!(
            t,
            json!({
                "api_addr": "https://a:8200",
                "storage": [{"file": {"path": "/d"}}],
                "listener": [{"tcp": {"address": "127.0.0.1:1"}}, {"tcp": {"address": "127.0.0.1:2"}}],
                "seal": [{"static": {"current_key_id": "k1"}}],
            })
        );
    }

    #[test]
    fn toml_errors_name_the_key() {
        let e = to_tree("[storage]\npath = \"/d\"\n", Format::Toml).unwrap_err().0;
        assert_eq!(e, "storage.type: required (for example type = \"file\")");
        let e = to_tree("storage = 3\n", Format::Toml).unwrap_err().0;
        assert_eq!(e, "storage: expected a table, found a number");
        let e = to_tree("[storage]\ntype = 1\n", Format::Toml).unwrap_err().0;
        assert_eq!(e, "storage.type: expected a string, found a number");
        let e = to_tree("[[listener]]\n[[listener]]\ntype = false\n", Format::Toml).unwrap_err().0;
        assert_eq!(e, "listener[1].type: expected a string, found a boolean");
        let e = to_tree("listener = [1]\n", Format::Toml).unwrap_err().0;
        assert_eq!(e, "listener: expected a table, found a number");
        let e = to_tree("a = 1\nb = \"secret\n", Format::Toml).unwrap_err().0;
        assert!(e.starts_with("invalid TOML at line 2, column "), "{e}");
        assert!(!e.contains('\n') && !e.contains("secret"), "{e}");
    }

    #[test]
    fn hcl_blocks_are_normalized() {
        let (t, w) = to_tree(
            r#"
            ui = true
            storage "raft" {
              path = "/d"
              node_id = "n1"
              retry_join { leader_api_addr = "https://a:8200" }
            }
            listener "tcp" { address = "127.0.0.1:1" }
            listener "tcp" {
              address = "127.0.0.1:2"
              tls_disable = 1
            }
            seal "static" { current_key_id = "k" }
            "#,
            Format::Hcl,
        )
        .unwrap();
        assert_eq!(w, vec!["ui: ignored (coffer has no web UI)".to_owned()]);
        assert_eq!(
            t,
            json!({
                "storage": [{"raft": {"path": "/d", "node_id": "n1",
                    "retry_join": [{"leader_api_addr": "https://a:8200"}]}}],
                "listener": [{"tcp": {"address": "127.0.0.1:1"}},
                             {"tcp": {"address": "127.0.0.1:2", "tls_disable": 1}}],
                "seal": [{"static": {"current_key_id": "k"}}],
            })
        );
    }

    #[test]
    fn hcl_syntax_errors_are_one_line() {
        let e = to_tree("listener \"tcp\" {\n address = \n}\n", Format::Hcl).unwrap_err().0;
        assert!(e.starts_with("invalid HCL at line 2, column "), "{e}");
        assert!(!e.contains('\n'));
        let e = to_tree("seal \"static\" {\n current_key = \"hunter2\" x\n}\n", Format::Hcl).unwrap_err().0;
        assert!(e.starts_with("invalid HCL at line 2, column "), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn json_accepts_all_of_vaults_block_forms() {
        let want = json!({"listener": [{"tcp": {"address": "a"}}, {"tcp": {"address": "b"}}]});
        for doc in [
            json!({"listener": {"tcp": [{"address": "a"}, {"address": "b"}]}}),
            json!({"listener": [{"tcp": {"address": "a"}}, {"tcp": {"address": "b"}}]}),
            json!({"listener": [{"tcp": [{"address": "a"}]}, {"tcp": {"address": "b"}}]}),
        ] {
            let (t, _) = to_tree(&doc.to_string(), Format::Json).unwrap();
            assert_eq!(t, want, "{doc}");
        }
        let e = to_tree("{\"listener\": 5}", Format::Json).unwrap_err().0;
        assert_eq!(e, "listener: expected a block (listener \"TYPE\" { ... }), found a number");
        let e = to_tree("[1]", Format::Json).unwrap_err().0;
        assert_eq!(e, "expected an object at the top, found a list");
        let e = to_tree("{\"listener\": [7]}", Format::Json).unwrap_err().0;
        assert_eq!(e, "listener: expected a block, found a number");
        assert!(to_tree("{", Format::Json).unwrap_err().0.starts_with("invalid JSON: "));
    }

    #[test]
    fn unsupported_vault_keys_warn_or_refuse() {
        let (t, w) = to_tree(
            &json!({
                "pid_file": "/run/vault.pid",
                "telemetry": {"statsite_address": "x"},
                "listener": {"tcp": {"address": "a", "x_forwarded_for_hop_skips": 1}},
                "storage": {"raft": {"path": "/d", "performance_multiplier": 1}},
            })
            .to_string(),
            Format::Json,
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                "pid_file: ignored (use the service manager to track the process)",
                "telemetry: ignored (metrics export is not implemented)",
                "listener.tcp.x_forwarded_for_hop_skips: ignored (X-Forwarded-For is not interpreted)",
                "storage.raft.performance_multiplier: ignored (not configurable yet)",
            ]
        );
        assert_eq!(
            t,
            json!({"listener": [{"tcp": {"address": "a"}}], "storage": [{"raft": {"path": "/d"}}]})
        );

        let e = to_tree(
            &json!({"listener": [{"tcp": {}}, {"tcp": {"proxy_protocol_behavior": "use_always"}}]})
                .to_string(),
            Format::Json,
        )
        .unwrap_err()
        .0;
        assert_eq!(
            e,
            "listener[1].tcp.proxy_protocol_behavior: not supported by coffer: the PROXY protocol is not supported"
        );
        let e = to_tree("ha_storage \"consul\" {}\n", Format::Hcl).unwrap_err().0;
        assert_eq!(
            e,
            "ha_storage: not supported by coffer: coffer has no separate HA storage; raft storage provides HA"
        );
        let e = to_tree(
            "storage \"raft\" {\n path = \"/d\"\n retry_join { auto_join = \"provider=aws\" }\n}\n",
            Format::Hcl,
        )
        .unwrap_err()
        .0;
        assert_eq!(
            e,
            "storage.raft.retry_join.auto_join: not supported by coffer: cloud auto-join is not supported; list peers with leader_api_addr"
        );
    }
}
