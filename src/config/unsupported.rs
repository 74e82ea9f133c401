//! Vault keys that coffer does not implement, and what happens to each: ignored with a warning
//! that gives the reason, or refused because ignoring it would silently weaken security or break
//! clients. Applied to the Vault-shaped tree (see `format.rs`) before deserialization, at the
//! top level, in `tcp` listeners, in `raft` storage and in its `retry_join` blocks.

use serde_json::{Map, Value};

use super::de::{index, join};
use super::error::ConfigError;

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
    (
        "telemetry",
        Ignore(
            "coffer serves its metrics at sys/metrics; metric sinks and their settings are not implemented",
        ),
    ),
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
    (
        "unauthenticated_metrics_access",
        Ignore("it belongs in the listener's telemetry block: telemetry { unauthenticated_metrics_access = true }"),
    ),
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
];

const RETRY_JOIN: &[(&str, Unsupported)] = &[
    ("auto_join", Refuse("cloud auto-join is not supported; list peers with leader_api_addr")),
    ("auto_join_port", Refuse("cloud auto-join is not supported; list peers with leader_api_addr")),
    ("auto_join_scheme", Refuse("cloud auto-join is not supported; list peers with leader_api_addr")),
    ("leader_ca_cert", Refuse("inline PEM is not supported; use leader_ca_cert_file")),
    ("leader_client_cert", Refuse("inline PEM is not supported; use leader_client_cert_file")),
    ("leader_client_key", Refuse("inline PEM is not supported; use leader_client_key_file")),
];

/// Removes ignored keys (with a warning) and refuses refused ones, at the top level, in `tcp`
/// listeners and in `raft` storage; also turns single `retry_join` blocks into lists.
pub fn strip_unsupported(tree: &mut Value, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let Value::Object(top) = tree else { return Ok(()) };
    strip(top, "", TOP_LEVEL, warnings)?;
    for (key, kind, table) in [("listener", "tcp", TCP_LISTENER), ("storage", "raft", RAFT_STORAGE)] {
        let Some(Value::Array(items)) = top.get_mut(key) else { continue };
        let n = items.len();
        for (i, item) in items.iter_mut().enumerate() {
            let Some(Value::Object(body)) = item.get_mut(kind) else { continue };
            let path = join(&index(key, i, n), kind);
            strip(body, &path, table, warnings)?;
            // A block written as a list of one (Vault's JSON form) is the block.
            if let Some(Value::Array(blocks)) = body.get_mut("telemetry") {
                if blocks.len() == 1 {
                    let block = blocks.remove(0);
                    body.insert("telemetry".into(), block);
                }
            }
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
                return Err(ConfigError::setting(
                    &join(path, key),
                    format!("not supported by coffer: {reason}"),
                ));
            }
        }
    }
    Ok(())
}
