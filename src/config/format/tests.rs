//! The front ends: block shapes, syntax errors, and Vault keys coffer ignores or refuses.

use serde_json::json;

use super::*;

#[test]
fn format_by_extension() {
    use std::path::Path;
    assert_eq!(Format::from_path(Path::new("/etc/coffer/coffer.toml")).unwrap(), Format::Toml);
    assert_eq!(Format::from_path(Path::new("vault.HCL")).unwrap(), Format::Hcl);
    assert_eq!(Format::from_path(Path::new("x.json")).unwrap(), Format::Json);
    assert_eq!(
        Format::from_path(Path::new("x.yaml")).unwrap_err().to_string(),
        "unsupported configuration file extension \".yaml\" (expected .toml, .hcl or .json)"
    );
    assert_eq!(
        Format::from_path(Path::new("noext")).unwrap_err().to_string(),
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
    let e = to_tree("[storage]\npath = \"/d\"\n", Format::Toml).unwrap_err().to_string();
    assert_eq!(e, "storage.type: required (for example type = \"file\")");
    let e = to_tree("storage = 3\n", Format::Toml).unwrap_err().to_string();
    assert_eq!(e, "storage: expected a table, found a number");
    let e = to_tree("[storage]\ntype = 1\n", Format::Toml).unwrap_err().to_string();
    assert_eq!(e, "storage.type: expected a string, found a number");
    let e = to_tree("[[listener]]\n[[listener]]\ntype = false\n", Format::Toml).unwrap_err().to_string();
    assert_eq!(e, "listener[1].type: expected a string, found a boolean");
    let e = to_tree("listener = [1]\n", Format::Toml).unwrap_err().to_string();
    assert_eq!(e, "listener: expected a table, found a number");
    let e = to_tree("a = 1\nb = \"secret\n", Format::Toml).unwrap_err().to_string();
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
    let e = to_tree("listener \"tcp\" {\n address = \n}\n", Format::Hcl).unwrap_err().to_string();
    assert!(e.starts_with("invalid HCL at line 2, column "), "{e}");
    assert!(!e.contains('\n'));
    let e =
        to_tree("seal \"static\" {\n current_key = \"hunter2\" x\n}\n", Format::Hcl).unwrap_err().to_string();
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
    let e = to_tree("{\"listener\": 5}", Format::Json).unwrap_err().to_string();
    assert_eq!(e, "listener: expected a block (listener \"TYPE\" { ... }), found a number");
    let e = to_tree("[1]", Format::Json).unwrap_err().to_string();
    assert_eq!(e, "expected an object at the top, found a list");
    let e = to_tree("{\"listener\": [7]}", Format::Json).unwrap_err().to_string();
    assert_eq!(e, "listener: expected a block, found a number");
    assert!(to_tree("{", Format::Json).unwrap_err().to_string().starts_with("invalid JSON: "));
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
            "telemetry: ignored (coffer serves its metrics at sys/metrics; metric sinks and their settings are not implemented)",
            "listener.tcp.x_forwarded_for_hop_skips: ignored (X-Forwarded-For is not interpreted)",
            "storage.raft.performance_multiplier: ignored (not configurable yet)",
        ]
    );
    assert_eq!(t, json!({"listener": [{"tcp": {"address": "a"}}], "storage": [{"raft": {"path": "/d"}}]}));

    let e = to_tree(
        &json!({"listener": [{"tcp": {}}, {"tcp": {"proxy_protocol_behavior": "use_always"}}]}).to_string(),
        Format::Json,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "listener[1].tcp.proxy_protocol_behavior: not supported by coffer: the PROXY protocol is not supported"
    );
    let e = to_tree("ha_storage \"consul\" {}\n", Format::Hcl).unwrap_err().to_string();
    assert_eq!(
        e,
        "ha_storage: not supported by coffer: coffer has no separate HA storage; raft storage provides HA"
    );
    let e = to_tree(
        "storage \"raft\" {\n path = \"/d\"\n retry_join { auto_join = \"provider=aws\" }\n}\n",
        Format::Hcl,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "storage.raft.retry_join.auto_join: not supported by coffer: cloud auto-join is not supported; list peers with leader_api_addr"
    );
}
