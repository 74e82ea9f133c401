//! `coffer status`: `GET sys/seal-status` then `GET sys/leader`, printed like `vault status`.
//! Exit code 0 unsealed, 2 sealed, 1 error.

use anyhow::Context;
use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value};

use super::output::{self, Format};
use super::Invocation;
use crate::client::Client;

/// Arguments of `coffer status` (only the global flags).
#[derive(Debug, Args)]
pub struct StatusArgs {}

/// Runs `coffer status`.
pub async fn run(inv: &Invocation, _args: StatusArgs) -> anyhow::Result<u8> {
    let client = inv.client()?;
    let status = client
        .send(Method::GET, "sys/seal-status", &[], None)
        .await
        .and_then(|r| r.into_result())
        .context("Error checking seal status")?
        .unwrap_or(Value::Null);
    print_seal_status(inv, &client, &status).await
}

/// Prints a seal status (plus the leader status) and returns 2 when sealed, else 0.
pub async fn print_seal_status(inv: &Invocation, client: &Client, status: &Value) -> anyhow::Result<u8> {
    let leader = match client.send(Method::GET, "sys/leader", &[], None).await.and_then(|r| r.into_result()) {
        Ok(l) => l.unwrap_or(Value::Null),
        // Sealed HA nodes cannot answer; the CLI then shows HA as enabled.
        Err(e) if e.to_string().contains("Vault is sealed") => serde_json::json!({"ha_enabled": true}),
        Err(e) => return Err(anyhow::Error::new(e).context("Error checking leader status")),
    };
    let sealed = status.get("sealed").and_then(Value::as_bool).unwrap_or(true);
    match inv.format() {
        Format::Json => outln!("{}", output::json_pretty(&merged(status, &leader))),
        Format::Table => outln!("{}", seal_status_table(status, &leader)),
    }
    Ok(if sealed { 2 } else { 0 })
}

/// Seal status fields plus the leader fields `vault status -format=json` shows.
fn merged(status: &Value, leader: &Value) -> Value {
    let mut m = status.as_object().cloned().unwrap_or_default();
    let l = leader.as_object().cloned().unwrap_or_default();
    m.insert("ha_enabled".into(), l.get("ha_enabled").cloned().unwrap_or(Value::Bool(false)));
    let nonzero = |v: &Value| match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty() && s != "0001-01-01T00:00:00Z",
        Value::Number(n) => n.as_u64() != Some(0),
        Value::Null => false,
        _ => true,
    };
    for k in [
        "is_self",
        "active_time",
        "leader_address",
        "leader_cluster_address",
        "raft_committed_index",
        "raft_applied_index",
    ] {
        if let Some(v) = l.get(k).filter(|v| nonzero(v)) {
            m.insert(k.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// The `vault status` table.
pub fn seal_status_table(status: &Value, leader: &Value) -> String {
    let empty = Map::new();
    let s = status.as_object().unwrap_or(&empty);
    let l = leader.as_object().unwrap_or(&empty);
    let text = |m: &Map<String, Value>, k: &str| m.get(k).map(output::go_value).unwrap_or_default();
    let flag = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    let num = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut rows: Vec<Vec<String>> = vec![vec!["Seal Type".into(), text(s, "type")]];
    let recovery = flag(s, "recovery_seal");
    if recovery {
        rows.push(vec!["Recovery Seal Type".into(), text(s, "recovery_seal_type")]);
    }
    let sealed = flag(s, "sealed");
    rows.push(vec!["Initialized".into(), flag(s, "initialized").to_string()]);
    rows.push(vec!["Sealed".into(), sealed.to_string()]);
    rows.push(vec![
        format!("Total {}Shares", if recovery { "Recovery " } else { "" }),
        num(s, "n").to_string(),
    ]);
    rows.push(vec!["Threshold".into(), num(s, "t").to_string()]);
    if sealed {
        rows.push(vec!["Unseal Progress".into(), format!("{}/{}", num(s, "progress"), num(s, "t"))]);
        rows.push(vec!["Unseal Nonce".into(), text(s, "nonce")]);
    }
    if flag(s, "migration") {
        rows.push(vec!["Seal Migration in Progress".into(), "true".into()]);
    }
    for (key, label) in [("version", "Version"), ("build_date", "Build Date"), ("commit_date", "Commit Date")]
    {
        if !text(s, key).is_empty() {
            rows.push(vec![label.into(), text(s, key)]);
        }
    }
    if !text(s, "storage_type").is_empty() {
        rows.push(vec!["Storage Type".into(), text(s, "storage_type")]);
    }
    if !text(s, "cluster_name").is_empty() && !text(s, "cluster_id").is_empty() {
        rows.push(vec!["Cluster Name".into(), text(s, "cluster_name")]);
        rows.push(vec!["Cluster ID".into(), text(s, "cluster_id")]);
    }
    let ha = flag(l, "ha_enabled");
    rows.push(vec!["HA Enabled".into(), ha.to_string()]);
    if ha && !sealed {
        let is_self = flag(l, "is_self");
        rows.push(vec!["HA Cluster".into(), text(l, "leader_cluster_address")]);
        rows.push(vec!["HA Mode".into(), if is_self { "active" } else { "standby" }.into()]);
        let active = text(l, "active_time");
        if is_self && !active.is_empty() && active != "0001-01-01T00:00:00Z" {
            rows.push(vec!["Active Since".into(), active]);
        }
        if !is_self && !text(l, "leader_address").is_empty() {
            rows.push(vec!["Active Node Address".into(), text(l, "leader_address")]);
        }
    }
    for (key, label) in
        [("raft_committed_index", "Raft Committed Index"), ("raft_applied_index", "Raft Applied Index")]
    {
        if num(l, key) > 0 {
            rows.push(vec![label.into(), num(l, key).to_string()]);
        }
    }
    output::table(&["Key", "Value"], rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sealed_table() {
        let s = json!({"type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5, "progress": 1,
                       "nonce": "", "version": "2.7.2", "commit_date": "2026-10-26T20:32:27Z",
                       "storage_type": "raft", "migration": false, "recovery_seal": false});
        let t = seal_status_table(&s, &json!({"ha_enabled": true}));
        assert_eq!(
            t,
            "Key                Value\n\
             ---                -----\n\
             Seal Type          shamir\n\
             Initialized        true\n\
             Sealed             true\n\
             Total Shares       5\n\
             Threshold          3\n\
             Unseal Progress    1/3\n\
             Unseal Nonce       n/a\n\
             Version            2.7.2\n\
             Commit Date        2026-10-26T20:32:27Z\n\
             Storage Type       raft\n\
             HA Enabled         true"
        );
    }

    #[test]
    fn active_ha_table() {
        let s = json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1,
                       "version": "1.17.0", "cluster_name": "c", "cluster_id": "id"});
        let l = json!({"ha_enabled": true, "is_self": true, "active_time": "2024-01-09T00:11:46.439409062Z",
                       "leader_cluster_address": "https://n1:8201", "raft_committed_index": 7, "raft_applied_index": 7});
        let t = seal_status_table(&s, &l);
        assert!(t.contains("HA Mode                 active\n"), "{t}");
        assert!(t.contains("Active Since            2024-01-09T00:11:46.439409062Z\n"), "{t}");
        assert!(t.ends_with("Raft Applied Index      7"), "{t}");
        assert!(!t.contains("Unseal Progress"));
        let j = merged(&s, &l);
        assert_eq!(j["ha_enabled"], true);
        assert_eq!(j["raft_applied_index"], 7);
        let j = merged(&s, &json!({"ha_enabled": false, "is_self": false, "leader_address": ""}));
        assert!(j.get("is_self").is_none() && j.get("leader_address").is_none());
    }
}
