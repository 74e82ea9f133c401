//! KV version 2 through real clients: a differential run of one scripted call sequence against
//! `bao server -dev` and coffer, `vaultrs` over every endpoint it has, the `bao kv` CLI, a
//! cas race of 20 writers, the v1→v2 upgrade, ACL paths and the no-echo rule for bad input.

use std::sync::{Arc, Barrier};

use serde_json::{json, Value};

use crate::harness::{self, Server};

const MERGE: &str = "application/merge-patch+json";

/// A request body.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    /// Raw bytes with a content type (bad JSON, PATCH media types).
    Raw(&'static str, &'static str),
}

/// Sends one request; an empty body reads as `Null`.
fn send(s: &Server, token: &str, method: &str, path: &str, body: Body) -> (u16, Value) {
    let c = s.client();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = c.request(m, format!("{}/v1/{path}", s.addr));
    if !token.is_empty() {
        r = r.header("X-Vault-Token", token);
    }
    r = match body {
        Body::None => r,
        Body::Json(j) => r.header("Content-Type", "application/json").body(j),
        Body::Raw(ct, raw) => r.header("Content-Type", ct).body(raw),
    };
    let resp = r.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// How a step's two answers are compared.
#[derive(Clone, Copy)]
enum Cmp {
    /// Status, errors, warnings and the whole `data` (timestamps masked) must be equal.
    Same,
    /// Status, errors, warnings and the key sets of `data` and `data.metadata`.
    Keys,
    /// A deliberate, documented difference: both answers are shown, and they must differ
    /// (so this list stays true).
    Known(&'static str),
}

struct Step {
    method: &'static str,
    path: &'static str,
    body: Body,
    cmp: Cmp,
}

const fn st(method: &'static str, path: &'static str, body: Body, cmp: Cmp) -> Step {
    Step { method, path, body, cmp }
}

fn j(s: &'static str) -> Body {
    Body::Json(s)
}

fn patch(s: &'static str) -> Body {
    Body::Raw(MERGE, s)
}

/// Reason shared by the upgrade steps.
const UPGRADE_WARNING: &str =
    "bao 2.7.2 warns `Upgrading mount from version 0 to version 0` (a bao bug); coffer names versions 1 and 2";

/// Reason shared by the bad-JSON steps.
const JSON_DECODER: &str =
    "both 400 `failed to decode JSON input: ...`; the detail after the colon is serde_json's \
     message, not Go's encoding/json one (the HTTP layer's parser, not the engine)";

/// The scripted sequence: every endpoint, the usual errors (cas mismatch, missing and
/// destroyed versions, bad JSON, wrong types) and deep subkeys.
fn script() -> Vec<Step> {
    use Body::None as N;
    use Cmp::{Keys, Known, Same};
    vec![
        st("POST", "sys/mounts/diff", j(r#"{"type":"kv","options":{"version":"2"}}"#), Same),
        st("GET", "diff/config", N, Same),
        st("POST", "diff/config", j(r#"{"max_versions":5,"cas_required":false,"delete_version_after":"0s"}"#), Same),
        st("GET", "diff/config", N, Same),
        st("POST", "diff/data/app", j(r#"{"data":{"user":"ada","n":3,"f":1.5,"nested":{"a":{"b":[1,2]}}}}"#), Same),
        st("GET", "diff/data/app", N, Same),
        st("POST", "diff/data/app", j(r#"{"data":{"user":"bob","nested":{"a":{"b":[3]}}},"options":{"cas":1}}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":{"x":1},"options":{"cas":1}}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":{"x":1},"options":{"cas":0}}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":{"x":1},"options":{"cas":"abc"}}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":{"x":1},"options":{"cas":1.5}}"#), Same),
        st("POST", "diff/data/new", j(r#"{"data":{"k":"v"},"options":{"cas":0}}"#), Same),
        st("POST", "diff/data/new", j(r#"{"data":{"k":"v2"},"options":{"cas":"1"}}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":"not-a-map"}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":[{"a":1},7]}"#), Same),
        st("POST", "diff/data/app", j(r#"{"data":{"x":1},"options":5}"#), Same),
        st("POST", "diff/data/app", j(r#"{"nodata":1}"#), Same),
        st("POST", "diff/data/app", Body::Raw("application/json", "{bad json"), Known(JSON_DECODER)),
        st("POST", "diff/data/app", j(r#"{"data":{"x":1},"version":"x"}"#), Same),
        st("POST", "diff/data/merged", j(r#"{"data":[{"a":1},{"b":2}]}"#), Same),
        st("GET", "diff/data/merged", N, Same),
        st("GET", "diff/data/app?version=1", N, Same),
        st("GET", "diff/data/app?version=9", N, Same),
        st("GET", "diff/data/app?version=abc", N, Same),
        st("GET", "diff/data/app?version=-1", N, Same),
        st("GET", "diff/data/app?bogus=1", N, Same),
        st("GET", "diff/data/missing", N, Same),
        st("PATCH", "diff/data/app", patch(r#"{"data":{"user":null,"nested":{"a":{"c":true}},"added":"y"}}"#), Same),
        st("GET", "diff/data/app", N, Same),
        st("PATCH", "diff/data/app", patch(r#"{"data":{"z":1},"options":{"cas":1}}"#), Same),
        st("PATCH", "diff/data/app", patch(r#"{"data":{"z":1},"options":{"cas":3}}"#), Same),
        st("PATCH", "diff/data/missing", patch(r#"{"data":{"a":1}}"#), Same),
        st("PATCH", "diff/data/app", Body::Raw("application/json", r#"{"data":{"a":1}}"#), Same),
        st("PATCH", "diff/data/app", patch(r#"{"options":{"cas":4}}"#), Same),
        st("PATCH", "diff/data/app", patch(r#"{"data":5}"#), Same),
        st("PATCH", "diff/data/app", patch("not json"), Known(JSON_DECODER)),
        st("GET", "diff/subkeys/app", N, Same),
        st("GET", "diff/subkeys/app?depth=1", N, Same),
        st("GET", "diff/subkeys/app?depth=2", N, Same),
        st("GET", "diff/subkeys/app?version=1", N, Same),
        st("GET", "diff/subkeys/app?depth=x", N, Same),
        st("GET", "diff/subkeys/missing", N, Same),
        st("POST", "diff/data/deep", j(r#"{"data":{"l1":{"l2":{"l3":{"l4":{"l5":"x","e":{}}}},"s":[{"t":1}]},"top":0}}"#), Same),
        st("GET", "diff/subkeys/deep", N, Same),
        st("GET", "diff/subkeys/deep?depth=3", N, Same),
        st("GET", "diff/subkeys/deep?depth=-1", N, Same),
        st("DELETE", "diff/data/app", N, Same),
        st("GET", "diff/data/app", N, Same),
        st("GET", "diff/subkeys/app", N, Same),
        st("PATCH", "diff/data/app", patch(r#"{"data":{"q":1}}"#), Same),
        st("DELETE", "diff/data/app", N, Same),
        st("POST", "diff/undelete/app", j(r#"{"versions":[4]}"#), Same),
        st("GET", "diff/data/app", N, Same),
        st("POST", "diff/delete/app", j(r#"{"versions":[1,2]}"#), Same),
        st("GET", "diff/data/app?version=1", N, Same),
        st("POST", "diff/destroy/app", j(r#"{"versions":[2]}"#), Same),
        st("GET", "diff/data/app?version=2", N, Same),
        st("POST", "diff/undelete/app", j(r#"{"versions":"1,2"}"#), Same),
        st("GET", "diff/data/app?version=1", N, Same),
        st("GET", "diff/data/app?version=2", N, Same),
        st("GET", "diff/subkeys/app?version=2", N, Same),
        st("POST", "diff/destroy/app", j(r#"{"versions":[2,99]}"#), Same),
        st("POST", "diff/delete/app", j("{}"), Same),
        st("POST", "diff/undelete/app", j(r#"{"versions":[]}"#), Same),
        st("POST", "diff/destroy/app", j("{}"), Same),
        st("POST", "diff/delete/app", j(r#"{"versions":["x"]}"#), Same),
        st("POST", "diff/delete/app", j(r#"{"versions":"1,x"}"#), Same),
        st("POST", "diff/delete/missing", j(r#"{"versions":[1]}"#), Same),
        st("POST", "diff/undelete/missing", j(r#"{"versions":[1]}"#), Same),
        st("POST", "diff/destroy/missing", j(r#"{"versions":[1]}"#), Same),
        st("GET", "diff/delete/app", N, Same),
        st("GET", "diff/metadata/app", N, Same),
        st("POST", "diff/metadata/app", j(r#"{"max_versions":2,"custom_metadata":{"owner":"ops","tier":1,"on":true}}"#), Same),
        st("GET", "diff/metadata/app", N, Same),
        st("POST", "diff/data/app", j(r#"{"data":{"v":5}}"#), Same),
        st("GET", "diff/metadata/app", N, Same),
        st("GET", "diff/data/app?version=1", N, Same),
        st("POST", "diff/metadata/app", j(r#"{"custom_metadata":{"owner":""}}"#), Same),
        // One error each: Go reports several in random map order.
        st("POST", "diff/metadata/app", j(r#"{"custom_metadata":{"":"x"}}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"custom_metadata":{"b":"y\u0001"}}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"custom_metadata":{"a":{"n":1}}}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"custom_metadata":"x=y"}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"delete_version_after":"-1h"}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"max_versions":"x"}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"cas_required":"maybe"}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"unknown":1}"#), Same),
        st("POST", "diff/metadata/app", j(r#"{"max_versions":null,"cas_required":null}"#), Same),
        st("GET", "diff/metadata/app", N, Same),
        st("POST", "diff/delete/app", j(r#"{"versions":null}"#), Same),
        st("PATCH", "diff/metadata/app", patch(r#"{"custom_metadata":{"tier":null,"team":"core"},"max_versions":3,"delete_version_after":"1h"}"#), Same),
        st("GET", "diff/metadata/app", N, Same),
        st("PATCH", "diff/metadata/app", patch(r#"{"custom_metadata":null}"#), Same),
        st("GET", "diff/metadata/app", N, Same),
        st("PATCH", "diff/metadata/app", patch(r#"{"delete_version_after":"-1h"}"#), Same),
        st("PATCH", "diff/metadata/missing", patch(r#"{"max_versions":1}"#), Same),
        st("POST", "diff/metadata/meta-only", j(r#"{"max_versions":4}"#), Same),
        st("GET", "diff/data/meta-only", N, Same),
        st("GET", "diff/metadata/meta-only", N, Same),
        st("POST", "diff/metadata/meta-only", j(r#"{"metadata_cas":5,"max_versions":3}"#), Same),
        st("POST", "diff/metadata/meta-only", j(r#"{"metadata_cas":1,"max_versions":3,"metadata_cas_required":true}"#), Same),
        st("POST", "diff/metadata/meta-only", j(r#"{"max_versions":5}"#), Same),
        st("POST", "diff/metadata/fresh", j(r#"{"metadata_cas":1,"max_versions":3}"#), Same),
        st("POST", "diff/config", j(r#"{"cas_required":true}"#), Same),
        st("POST", "diff/data/new", j(r#"{"data":{"k":"w"}}"#), Same),
        st("POST", "diff/metadata/new", j(r#"{"cas_required":false}"#), Same),
        st("POST", "diff/config", j(r#"{"cas_required":false}"#), Same),
        st("POST", "diff/data/dir/one", j(r#"{"data":{"a":1}}"#), Same),
        st("POST", "diff/data/dir/sub/two", j(r#"{"data":{"a":2}}"#), Same),
        st("POST", "diff/data/dir", j(r#"{"data":{"a":3}}"#), Same),
        st("LIST", "diff/metadata/", N, Same),
        st("LIST", "diff/metadata/dir", N, Same),
        st("GET", "diff/metadata/dir/?list=true", N, Same),
        st("GET", "diff/metadata?list=true", N, Same),
        st("LIST", "diff/metadata/nothing", N, Same),
        st("LIST", "diff/metadata/?limit=2&after=app", N, Same),
        st("LIST", "diff/detailed-metadata/dir/", N, Same),
        st("DELETE", "diff/metadata/dir", N, Same),
        st("LIST", "diff/metadata/", N, Same),
        st("GET", "diff/data", N, Same),
        st("PUT", "diff/metadata", j(r#"{"max_versions":1}"#), Same),
        st("GET", "diff/", N, Same),
        st("POST", "diff/foo", j(r#"{"a":1}"#), Same),
        st("LIST", "diff/data", N, Same),
        st("LIST", "diff/config", N, Same),
        st("DELETE", "diff/config", N, Same),
        st("GET", "diff/config?x=1", N, Same),
        st("POST", "diff/config", j(r#"{"max_versions":"x"}"#), Same),
        st("POST", "diff/config", j(r#"{"cas_required":"maybe"}"#), Same),
        st("POST", "diff/config", j(r#"{"delete_version_after":"-5s"}"#), Same),
        st("GET", "diff/config", N, Same),
        st("POST", "diff/config", j(r#"{"delete_version_after":"1h30m"}"#), Same),
        st("GET", "diff/config", N, Same),
        st("POST", "diff/data/expiring", j(r#"{"data":{"a":1}}"#), Same),
        st("POST", "diff/config", j(r#"{"delete_version_after":0}"#), Same),
        st("POST", "diff/data/app2", j(r#"{"data":{"k":"v"},"foo":1,"bar":2}"#), Same),
        st("DELETE", "diff/metadata/app", N, Same),
        st("GET", "diff/metadata/app", N, Same),
        st("GET", "diff/data/app", N, Same),
        st("DELETE", "diff/data/missing", N, Same),
        st("DELETE", "diff/metadata/missing", N, Same),
        st("GET", "sys/internal/ui/mounts/diff/data/x", N, Keys),
        // Deliberate differences.
        st("POST", "diff/data/nulldata", j(r#"{"data":null}"#), Known(
            "bao stores a version whose data is JSON null (a later PATCH then fails with 500); coffer refuses it as `no data provided`",
        )),
        st("POST", "diff/metadata/neg", j(r#"{"max_versions":-1}"#), Known(
            "bao stores uint32(-1) = 4294967295; coffer refuses negative max_versions with 400",
        )),
        st("POST", "diff/config", j(r#"{"delete_version_after":"abc"}"#), Known(
            "bao's error quotes the submitted string; coffer never echoes submitted values (CVE-2025-4166)",
        )),
        st("POST", "sys/mounts/old", j(r#"{"type":"kv"}"#), Same),
        st("POST", "sys/mounts/old/tune", j(r#"{"options":{"version":"2"}}"#), Known(UPGRADE_WARNING)),
        st("POST", "old/data/x", j(r#"{"data":{"a":1}}"#), Same),
        st("GET", "old/data/x", N, Same),
        st("POST", "sys/mounts/old1", j(r#"{"type":"kv"}"#), Same),
        st("POST", "old1/x", j(r#"{"a":1}"#), Same),
        st("POST", "old1/sub/y", j(r#"{"b":2}"#), Same),
        st("POST", "sys/mounts/old1/tune", j(r#"{"options":{"version":"2"}}"#), Known(UPGRADE_WARNING)),
        st("GET", "old1/data/x", N, Same),
        st("GET", "old1/data/sub/y", N, Same),
        st("LIST", "old1/metadata/", N, Same),
        st("GET", "old1/metadata/x", N, Same),
        st("POST", "sys/mounts/old/tune", j(r#"{"options":{"version":"1"}}"#), Same),
    ]
}

/// Differences the comparison removes on purpose, each with its reason (printed with the
/// summary so the list of differences is complete).
const NORMALISED: &[&str] = &[
    "timestamps are masked: both send RFC 3339 with nanoseconds, at different instants",
    "the invalid-path warning names `OpenBao CLI`/`bao kv` in bao and `Vault CLI`/`vault kv` in coffer \
     (coffer speaks the Vault API; the rest of the text is identical)",
    "the envelope's key set is compared without `mount_type`: coffer adds it, as Vault does; OpenBao omits it",
    "PATCH of a missing key: bao sends 404 with an empty body, coffer 404 `{\"errors\":[]}` (the contract's form); \
     both have no error text",
];

/// Replaces RFC 3339 timestamps with a marker so values from two servers compare.
fn mask(v: &Value) -> Value {
    match v {
        Value::String(s) if looks_like_time(s) => json!("<time>"),
        Value::Array(a) => Value::Array(a.iter().map(mask).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), mask(v))).collect()),
        other => other.clone(),
    }
}

fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && s.ends_with('Z')
}

/// The OpenBao CLI names itself in one warning; coffer uses Vault's wording.
fn normalize_text(s: &str) -> String {
    s.replace("OpenBao CLI", "Vault CLI").replace("'bao kv ", "'vault kv ")
}

fn list_of(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| normalize_text(x.as_str().unwrap_or_default())).collect())
        .unwrap_or_default()
}

fn keys_of(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// What is compared of one answer.
fn view(status: u16, body: &Value, cmp: Cmp) -> Value {
    let data = body.get("data");
    let shape = match cmp {
        Cmp::Same | Cmp::Known(_) => data.map(mask).unwrap_or(Value::Null),
        Cmp::Keys => json!({
            "data": keys_of(data),
            "metadata": keys_of(data.and_then(|d| d.get("metadata"))),
        }),
    };
    let envelope: Vec<String> = match body {
        Value::Null if status == 404 => vec!["errors".to_owned()],
        other => keys_of(Some(other)).into_iter().filter(|k| k != "mount_type").collect(),
    };
    json!({
        "status": status,
        "envelope": envelope,
        "errors": list_of(body, "errors"),
        "warnings": list_of(body, "warnings"),
        "data": shape,
    })
}

fn run(s: &Server, steps: &[Step]) -> Vec<(u16, Value)> {
    steps.iter().map(|step| send(s, &s.token, step.method, step.path, step.body)).collect()
}

#[test]
fn differential_against_bao() {
    let Some(bao) = harness::require_bao_dev("kv2") else { return };
    let coffer = Server::dev();
    let steps = script();
    assert!(steps.len() >= 60, "the sequence must have at least 60 calls");
    let theirs = run(&bao, &steps);
    drop(bao);
    let ours = run(&coffer, &steps);
    let mut unexpected = Vec::new();
    let mut known = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (a, b) = (&theirs[i], &ours[i]);
        let (va, vb) = (view(a.0, &a.1, step.cmp), view(b.0, &b.1, step.cmp));
        let line = format!("#{i} {} {}\n   bao:    {va}\n   coffer: {vb}", step.method, step.path);
        match step.cmp {
            Cmp::Known(reason) => {
                assert_ne!(va, vb, "documented difference no longer differs (update the list): {line}");
                known.push(format!("{line}\n   reason: {reason}"));
            }
            Cmp::Same | Cmp::Keys => {
                if va != vb {
                    unexpected.push(line);
                }
            }
        }
    }
    eprintln!(
        "kv v2 differential: {} calls compared, {} documented differences:\n{}\nnormalised before comparing:\n - {}",
        steps.len(),
        known.len(),
        known.join("\n"),
        NORMALISED.join("\n - ")
    );
    assert!(unexpected.is_empty(), "{} unexpected differences:\n{}", unexpected.len(), unexpected.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// vaultrs over every kv2 call it has (patch and subkeys it lacks are covered above and by the
// bao CLI test).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaultrs_covers_every_endpoint() {
    use std::collections::HashMap;

    use vaultrs::api::kv2::requests::{
        SetConfigurationRequest, SetSecretMetadataRequest, SetSecretRequestOptions,
    };
    use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
    use vaultrs::error::ClientError;
    use vaultrs::kv2;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = tokio::task::spawn_blocking(Server::dev).await.unwrap();
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default().address(&s.addr).token(&s.token).build().unwrap(),
    )
    .unwrap();
    let m = "secret";

    kv2::config::set(
        &client,
        m,
        Some(
            SetConfigurationRequest::builder()
                .max_versions(6u64)
                .delete_version_after("0s")
                .cas_required(false),
        ),
    )
    .await
    .unwrap();
    let cfg = kv2::config::read(&client, m).await.unwrap();
    assert_eq!((cfg.max_versions, cfg.cas_required, cfg.delete_version_after.as_str()), (6, false, "0s"));

    let v1 = kv2::set(&client, m, "app/db", &json!({"user": "ada", "port": 5432})).await.unwrap();
    assert_eq!((v1.version, v1.destroyed, v1.deletion_time.as_str()), (1, false, ""));
    assert!(v1.created_time.ends_with('Z'));
    let opts = SetSecretRequestOptions { cas: 1 };
    let v2 =
        kv2::set_with_options(&client, m, "app/db", &json!({"user": "bob"}), opts.clone()).await.unwrap();
    assert_eq!(v2.version, 2);
    match kv2::set_with_options(&client, m, "app/db", &json!({"user": "eve"}), opts).await {
        Err(ClientError::APIError { code: 400, errors }) => {
            assert_eq!(errors, vec!["check-and-set parameter did not match the current version"])
        }
        other => panic!("stale cas must fail with 400, got {other:?}"),
    }
    let latest: Value = kv2::read(&client, m, "app/db").await.unwrap();
    assert_eq!(latest, json!({"user": "bob"}));
    let first: Value = kv2::read_version(&client, m, "app/db", 1).await.unwrap();
    assert_eq!(first, json!({"user": "ada", "port": 5432}));

    let md = kv2::read_metadata(&client, m, "app/db").await.unwrap();
    assert_eq!((md.current_version, md.oldest_version, md.versions.len()), (2, 0, 2));
    assert_eq!(md.delete_version_after, "0s");
    let custom = HashMap::from([("owner".to_owned(), "ops".to_owned())]);
    kv2::set_metadata(
        &client,
        m,
        "app/db",
        Some(SetSecretMetadataRequest::builder().max_versions(4u64).custom_metadata(custom.clone())),
    )
    .await
    .unwrap();
    let md = kv2::read_metadata(&client, m, "app/db").await.unwrap();
    assert_eq!((md.max_versions, md.custom_metadata), (4, Some(custom)));

    kv2::set(&client, m, "app/web", &json!({"k": "v"})).await.unwrap();
    assert_eq!(kv2::list(&client, m, "").await.unwrap(), vec!["app/"]);
    assert_eq!(kv2::list(&client, m, "app").await.unwrap(), vec!["db", "web"]);
    match kv2::list(&client, m, "nothing").await {
        Err(ClientError::APIError { code: 404, .. }) => {}
        other => panic!("an empty list must be a 404, got {other:?}"),
    }

    kv2::delete_latest(&client, m, "app/db").await.unwrap();
    assert!(kv2::read::<Value>(&client, m, "app/db").await.is_err());
    let md = kv2::read_metadata(&client, m, "app/db").await.unwrap();
    assert_ne!(md.versions["2"].deletion_time, "");
    kv2::undelete_versions(&client, m, "app/db", vec![2]).await.unwrap();
    assert_eq!(kv2::read::<Value>(&client, m, "app/db").await.unwrap(), json!({"user": "bob"}));
    kv2::delete_versions(&client, m, "app/db", vec![1]).await.unwrap();
    assert!(kv2::read_version::<Value>(&client, m, "app/db", 1).await.is_err());
    kv2::destroy_versions(&client, m, "app/db", vec![1]).await.unwrap();
    let md = kv2::read_metadata(&client, m, "app/db").await.unwrap();
    assert!(md.versions["1"].destroyed);
    kv2::delete_metadata(&client, m, "app/db").await.unwrap();
    match kv2::read_metadata(&client, m, "app/db").await {
        Err(ClientError::APIError { code: 404, .. }) => {}
        other => panic!("deleted metadata must read as 404, got {other:?}"),
    }
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The `bao kv` CLI against coffer.

struct Cli<'a> {
    s: &'a Server,
}

impl Cli<'_> {
    /// Runs `bao <args>`; returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new("bao")
            .args(args)
            .env("BAO_ADDR", &self.s.addr)
            .env("BAO_TOKEN", &self.s.token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("HOME", std::env::temp_dir())
            .output()
            .expect("run bao");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "bao {args:?} failed:\n{out}\n{err}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        // Flags go before the positional path.
        let (path, head) = args.split_last().expect("bao args");
        let mut all = head.to_vec();
        all.push("-format=json");
        all.push(path);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bao {args:?}: not JSON ({e}): {out}"))
    }
}

#[test]
fn bao_kv_cli_works_against_coffer() {
    if !harness::bao_available() {
        harness::require_bao("kv2"); // panics under COFFER_REQUIRE_BAO=1, otherwise notes the skip
        return;
    }
    let s = Server::dev();
    let cli = Cli { s: &s };
    cli.ok(&["kv", "put", "secret/cli", "user=ada", "n=1"]);
    let got = cli.json(&["kv", "get", "secret/cli"]);
    assert_eq!(got["data"]["data"], json!({"user": "ada", "n": "1"}));
    assert_eq!(got["data"]["metadata"]["version"], 1);
    cli.ok(&["kv", "put", "-cas=1", "secret/cli", "user=bob"]);
    let (code, _, err) = cli.run(&["kv", "put", "-cas=1", "secret/cli", "user=eve"]);
    assert_eq!(code, 2);
    assert!(err.contains("check-and-set parameter did not match the current version"), "{err}");
    cli.ok(&["kv", "patch", "secret/cli", "extra=x"]);
    cli.ok(&["kv", "patch", "-method=rw", "secret/cli", "more=y"]);
    let got = cli.json(&["kv", "get", "secret/cli"]);
    assert_eq!(got["data"]["data"], json!({"user": "bob", "extra": "x", "more": "y"}));
    assert_eq!(got["data"]["metadata"]["version"], 4);
    assert_eq!(cli.ok(&["kv", "get", "-version=1", "-field=user", "secret/cli"]), "ada");
    assert_eq!(cli.json(&["kv", "list", "secret/"]), json!(["cli"]));

    cli.ok(&["kv", "delete", "secret/cli"]);
    let (_, out, _) = cli.run(&["kv", "get", "secret/cli"]);
    assert!(out.contains("deletion_time") && !out.contains("bob"), "deleted version shown: {out}");
    cli.ok(&["kv", "undelete", "-versions=4", "secret/cli"]);
    assert_eq!(cli.ok(&["kv", "get", "-field=user", "secret/cli"]), "bob");
    cli.ok(&["kv", "delete", "-versions=1", "secret/cli"]);
    cli.ok(&["kv", "destroy", "-versions=1", "secret/cli"]);
    cli.ok(&["kv", "metadata", "put", "-max-versions=7", "-custom-metadata=owner=ops", "secret/cli"]);
    cli.ok(&["kv", "metadata", "patch", "-custom-metadata=team=core", "secret/cli"]);
    let md = cli.json(&["kv", "metadata", "get", "secret/cli"]);
    assert_eq!(md["data"]["max_versions"], 7);
    assert_eq!(md["data"]["custom_metadata"], json!({"owner": "ops", "team": "core"}));
    assert_eq!(md["data"]["versions"]["1"]["destroyed"], true);
    cli.ok(&["kv", "rollback", "-version=2", "secret/cli"]);
    let got = cli.json(&["kv", "get", "secret/cli"]);
    assert_eq!(
        (got["data"]["data"].clone(), got["data"]["metadata"]["version"].clone()),
        (json!({"user": "bob"}), json!(5))
    );
    cli.ok(&["kv", "metadata", "delete", "secret/cli"]);
    let (code, out, err) = cli.run(&["kv", "get", "secret/cli"]);
    assert_eq!(code, 2, "{out}{err}");

    // An empty version 1 mount upgraded in place.
    cli.ok(&["secrets", "enable", "-path=kvcli", "kv"]);
    cli.ok(&["kv", "enable-versioning", "kvcli/"]);
    cli.ok(&["kv", "put", "kvcli/x", "a=1"]);
    let got = cli.json(&["kv", "get", "kvcli/x"]);
    assert_eq!(got["data"]["metadata"]["version"], 1);
}

// ---------------------------------------------------------------------------------------------
// Twenty writers racing on one key with cas.

#[test]
fn twenty_cas_writers_leave_a_gap_free_history() {
    const WRITERS: usize = 20;
    let s = Arc::new(Server::dev());
    assert_eq!(s.call("POST", "secret/metadata/race", Some(json!({"max_versions": 100}))).0, 204);

    // Everyone tries to create the key at once: exactly one may.
    let start = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (s, start) = (Arc::clone(&s), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                s.call(
                    "POST",
                    "secret/data/race",
                    Some(json!({"data": {"writer": w}, "options": {"cas": 0}})),
                )
            })
        })
        .collect();
    let results: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<usize> = (0..WRITERS).filter(|w| results[*w].0 == 200).collect();
    assert_eq!(winners.len(), 1, "cas=0 must have exactly one winner: {results:?}");
    for (st, b) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*st, 400);
        assert_eq!(b["errors"], json!(["check-and-set parameter did not match the current version"]));
    }

    // The others keep retrying with the version they last saw until each has written once.
    let start = Arc::new(Barrier::new(WRITERS - 1));
    let handles: Vec<_> = (0..WRITERS)
        .filter(|w| *w != winners[0])
        .map(|w| {
            let (s, start) = (Arc::clone(&s), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                loop {
                    let (_, md) = s.call("GET", "secret/metadata/race", None);
                    let seen = md["data"]["current_version"].as_u64().unwrap();
                    let (st, b) = s.call(
                        "POST",
                        "secret/data/race",
                        Some(json!({"data": {"writer": w}, "options": {"cas": seen}})),
                    );
                    match st {
                        200 => return (w, b["data"]["version"].as_u64().unwrap()),
                        400 => assert_eq!(
                            b["errors"][0],
                            "check-and-set parameter did not match the current version"
                        ),
                        other => panic!("writer {w}: unexpected {other}: {b}"),
                    }
                }
            })
        })
        .collect();
    let mut won: Vec<(usize, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    won.push((winners[0], 1));
    won.sort_by_key(|(_, v)| *v);
    let versions: Vec<u64> = won.iter().map(|(_, v)| *v).collect();
    assert_eq!(versions, (1..=WRITERS as u64).collect::<Vec<_>>(), "versions must be 1..=20, each won once");
    let (_, md) = s.call("GET", "secret/metadata/race", None);
    assert_eq!(md["data"]["current_version"], WRITERS);
    for (writer, version) in won {
        let (st, b) = s.call("GET", &format!("secret/data/race?version={version}"), None);
        assert_eq!(st, 200);
        assert_eq!(b["data"]["data"]["writer"], writer, "version {version} holds another writer's data");
    }
}

// ---------------------------------------------------------------------------------------------
// Upgrade of a version 1 mount.

#[test]
fn upgrading_v1_migrates_its_secrets() {
    let s = Server::dev();
    assert_eq!(s.call("POST", "sys/mounts/up", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call("PUT", "up/x", Some(json!({"a": 1}))).0, 204);
    assert_eq!(s.call("PUT", "up/dir/y", Some(json!({"b": "two"}))).0, 204);
    let (st, b) = s.call("POST", "sys/mounts/up/tune", Some(json!({"options": {"version": "2"}})));
    assert_eq!(st, 200, "{b}");
    assert!(b["warnings"][0].as_str().unwrap().starts_with("Upgrading mount from version 1 to version 2"));
    assert_eq!(s.call("GET", "sys/mounts/up", None).1["options"], json!({"version": "2"}));
    let (st, b) = s.call("GET", "up/data/x", None);
    assert_eq!(
        (st, b["data"]["data"].clone(), b["data"]["metadata"]["version"].clone()),
        (200, json!({"a": 1}), json!(1))
    );
    assert_eq!(s.call("GET", "up/data/dir/y", None).1["data"]["data"], json!({"b": "two"}));
    assert_eq!(s.call("LIST", "up/metadata/", None).1["data"]["keys"], json!(["dir/", "x"]));
    let (st, b) = s.call("GET", "up/x", None);
    assert_eq!(st, 404, "v1 paths are gone after the upgrade: {b}");
    let (st, b) = s.call("POST", "up/data/x", Some(json!({"data": {"a": 2}, "options": {"cas": 1}})));
    assert_eq!((st, b["data"]["version"].clone()), (200, json!(2)), "{b}");
    let (_, ui) = s.call("GET", "sys/internal/ui/mounts/up/x", None);
    assert_eq!(
        (ui["data"]["path"].clone(), ui["data"]["options"]["version"].clone()),
        (json!("up/"), json!("2"))
    );
    let (st, b) = s.call("POST", "sys/mounts/up/tune", Some(json!({"options": {"version": "1"}})));
    assert_eq!((st, b["errors"].clone()), (400, json!(["cannot downgrade mount from version 2"])));
    // v1 secrets stored where v2 keeps its own records are not mistaken for them.
    assert_eq!(s.call("POST", "sys/mounts/clash", Some(json!({"type": "kv"}))).0, 204);
    assert_eq!(s.call("PUT", "clash/kv2/meta/x", Some(json!({"a": 1}))).0, 204);
    let (st, b) = s.call("POST", "sys/mounts/clash/tune", Some(json!({"options": {"version": "2"}})));
    assert_eq!(st, 400, "{b}");
    assert_eq!(
        s.call("GET", "clash/kv2/meta/x", None).1["data"],
        json!({"a": 1}),
        "a refused upgrade changed data"
    );
    // kv-v2 alias and the dev server's secret/.
    assert_eq!(s.call("POST", "sys/mounts/alias", Some(json!({"type": "kv-v2"}))).0, 204);
    assert_eq!(s.call("GET", "sys/mounts/alias", None).1["options"], json!({"version": "2"}));
    let (_, mounts) = s.call("GET", "sys/mounts", None);
    assert_eq!(mounts["data"]["secret/"]["type"], "kv");
    assert_eq!(mounts["data"]["secret/"]["options"], json!({"version": "2"}));
}

// ---------------------------------------------------------------------------------------------
// ACL: paths and operations are Vault's.

fn token_with(s: &Server, policies: &[&str]) -> String {
    let (st, b) = s.call("POST", "auth/token/create", Some(json!({"policies": policies})));
    assert_eq!(st, 200, "{b}");
    b["auth"]["client_token"].as_str().unwrap().to_owned()
}

#[test]
fn default_policy_grants_nothing_on_kv_v2() {
    let s = Server::dev();
    assert_eq!(s.call("POST", "secret/data/app", Some(json!({"data": {"k": "v"}}))).0, 200);
    let t = token_with(&s, &["default"]);
    for (method, path) in [
        ("GET", "secret/data/app"),
        ("POST", "secret/data/app"),
        ("DELETE", "secret/data/app"),
        ("GET", "secret/metadata/app"),
        ("LIST", "secret/metadata/"),
        ("POST", "secret/delete/app"),
        ("POST", "secret/undelete/app"),
        ("POST", "secret/destroy/app"),
        ("GET", "secret/subkeys/app"),
        ("GET", "secret/config"),
    ] {
        let body = (method == "POST").then(|| json!({"data": {"k": "x"}, "versions": [1]}));
        let (st, b) = s.call_as(&t, method, path, body);
        assert_eq!(st, 403, "{method} {path} with the default policy: {b}");
    }
    let (st, b) = s.call_as(&t, "GET", "sys/internal/ui/mounts/secret/app", None);
    assert_eq!(st, 403);
    assert_eq!(
        b["errors"][0],
        "preflight capability check returned 403, please ensure client's policies grant access to path \"secret/app/\""
    );
    // Root reaches every path, and the data is untouched by the denied calls.
    let (st, b) = s.call("GET", "secret/data/app", None);
    assert_eq!((st, b["data"]["data"].clone()), (200, json!({"k": "v"})));
    let (_, ui) = s.call("GET", "sys/internal/ui/mounts/secret/app", None);
    assert_eq!(ui["data"]["options"]["version"], "2");
}

/// Writes an ACL policy; `false` when this build has no policy engine yet.
fn write_policy(s: &Server, name: &str, hcl: &str) -> bool {
    let (st, b) = s.call("PUT", &format!("sys/policies/acl/{name}"), Some(json!({"policy": hcl})));
    match st {
        204 | 200 => true,
        _ if std::env::var("COFFER_REQUIRE_POLICY").as_deref() == Ok("1") => {
            panic!("policy write failed with {st}: {b}")
        }
        _ => false,
    }
}

/// Policy-based separation of the v2 capabilities. NOTE FOR THE LEAD: this test needs the
/// policy engine (sys/policies/acl and path rules in src/policy). Until it is merged the
/// policy write answers 404/405 and the test only prints that it skipped; with
/// `COFFER_REQUIRE_POLICY=1` (set it once the engine is in) a missing engine fails the test.
#[test]
fn kv_v2_capabilities_are_separate_paths() {
    let s = Server::dev();
    let rules = [
        ("reader", r#"path "secret/data/app" { capabilities = ["read"] }"#),
        ("creator", r#"path "secret/data/*" { capabilities = ["create"] }"#),
        ("patcher", r#"path "secret/data/app" { capabilities = ["patch", "read"] }"#),
        ("deleter", r#"path "secret/delete/app" { capabilities = ["update"] }"#),
        ("lister", r#"path "secret/metadata/" { capabilities = ["list"] }"#),
        ("v1style", r#"path "secret/app" { capabilities = ["create", "read", "update", "delete", "list"] }"#),
    ];
    for (name, hcl) in rules {
        if !write_policy(&s, name, hcl) {
            eprintln!("skipping: this build has no policy engine yet (set COFFER_REQUIRE_POLICY=1 to fail)");
            return;
        }
    }
    assert_eq!(s.call("POST", "secret/data/app", Some(json!({"data": {"k": "v"}}))).0, 200);
    let call = |policy: &str, method: &str, path: &str, body: Option<Value>| {
        let t = token_with(&s, &[policy]);
        s.call_as(&t, method, path, body).0
    };
    let write = || Some(json!({"data": {"k": "w"}}));
    let versions = || Some(json!({"versions": [1]}));
    // read on data/ only.
    assert_eq!(call("reader", "GET", "secret/data/app", None), 200);
    assert_eq!(call("reader", "POST", "secret/data/app", write()), 403);
    assert_eq!(call("reader", "GET", "secret/metadata/app", None), 403);
    assert_eq!(call("reader", "GET", "secret/subkeys/app", None), 403);
    assert_eq!(call("reader", "DELETE", "secret/data/app", None), 403);
    assert_eq!(call("reader", "GET", "sys/internal/ui/mounts/secret/app", None), 200);
    // create without update: new keys only (the existence check decides).
    assert_eq!(call("creator", "POST", "secret/data/brand-new", write()), 200);
    assert_eq!(call("creator", "POST", "secret/data/app", write()), 403);
    // patch is its own capability.
    let t = token_with(&s, &["patcher"]);
    let (st, _) = send(&s, &t, "PATCH", "secret/data/app", Body::Raw(MERGE, r#"{"data":{"p":1}}"#));
    assert_eq!(st, 200);
    assert_eq!(call("patcher", "POST", "secret/data/app", write()), 403);
    // delete/undelete/destroy are separate paths needing update.
    assert_eq!(call("deleter", "POST", "secret/delete/app", versions()), 204);
    assert_eq!(call("deleter", "POST", "secret/undelete/app", versions()), 403);
    assert_eq!(call("deleter", "POST", "secret/destroy/app", versions()), 403);
    assert_eq!(call("deleter", "DELETE", "secret/data/app", None), 403);
    // list on metadata/.
    assert_eq!(call("lister", "LIST", "secret/metadata/", None), 200);
    assert_eq!(call("lister", "GET", "secret/metadata/app", None), 403);
    // A v1-style rule grants nothing on a v2 mount.
    assert_eq!(call("v1style", "GET", "secret/data/app", None), 403);
    // The ACL lets the v1-style path through, but a v2 mount serves nothing there (Vault answers
    // 404 with its invalid-path warning).
    let t = token_with(&s, &["v1style"]);
    let (st, b) = s.call_as(&t, "GET", "secret/app", None);
    assert_eq!(st, 404, "{b}");
    assert!(b["data"].is_null() || b["data"]["data"].is_null(), "{b}");
}

// ---------------------------------------------------------------------------------------------
// CVE-2025-4166: malformed payloads never echo submitted values.

#[test]
fn bad_input_never_echoes_values() {
    let mut s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (st, b) =
        s.call("PUT", "sys/audit/file", Some(json!({"type": "file", "options": {"file_path": log}})));
    assert_eq!(st, 204, "{b}");
    assert_eq!(s.call("POST", "secret/data/k", Some(json!({"data": {"a": 1}}))).0, 200);
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "secret/data/k".into(), Some(json!({"data": "CANARY-data-1"}))),
        ("POST", "secret/data/k".into(), Some(json!({"data": ["CANARY-data-2"]}))),
        ("POST", "secret/data/k".into(), Some(json!({"data": {}, "options": "CANARY-opt-3"}))),
        ("POST", "secret/data/k".into(), Some(json!({"data": {}, "options": {"cas": "CANARY-cas-4"}}))),
        ("POST", "secret/data/k".into(), Some(json!({"data": {}, "version": "CANARY-ver-5"}))),
        ("GET", "secret/data/k?version=CANARY-ver-6".into(), None),
        ("GET", "secret/subkeys/k?depth=CANARY-depth-7".into(), None),
        ("POST", "secret/delete/k".into(), Some(json!({"versions": "1,CANARY-versions-8"}))),
        ("POST", "secret/destroy/k".into(), Some(json!({"versions": ["CANARY-versions-9"]}))),
        ("POST", "secret/metadata/k".into(), Some(json!({"custom_metadata": "CANARY-cm-10"}))),
        ("POST", "secret/metadata/k".into(), Some(json!({"custom_metadata": {"k": ["CANARY-cm-11"]}}))),
        ("POST", "secret/metadata/k".into(), Some(json!({"custom_metadata": {"k": "CANARY-cm-12\u{1}"}}))),
        ("POST", "secret/metadata/k".into(), Some(json!({"delete_version_after": "CANARY-dva-13"}))),
        ("POST", "secret/metadata/k".into(), Some(json!({"max_versions": "CANARY-max-14"}))),
        ("POST", "secret/metadata/k".into(), Some(json!({"cas_required": "CANARY-bool-15"}))),
        (
            "POST",
            "secret/metadata/k".into(),
            Some(json!({"max_versions": 1, "metadata_cas": "CANARY-mcas-16"})),
        ),
        ("POST", "secret/config".into(), Some(json!({"delete_version_after": "CANARY-dva-17"}))),
        ("POST", "secret/config".into(), Some(json!({"max_versions": ["CANARY-max-18"]}))),
    ];
    for (method, path, body) in &cases {
        let (st, b) = s.call(method, path, body.clone());
        assert!((400..500).contains(&st), "{method} {path} {body:?}: {st} {b}");
        assert!(!b.to_string().contains("CANARY"), "{method} {path}: the error echoes the value: {b}");
    }
    // PATCH with a wrong-typed document.
    let (st, b) = send(
        &s,
        &s.token.clone(),
        "PATCH",
        "secret/data/k",
        Body::Raw(MERGE, r#"{"data":"CANARY-patch-19"}"#),
    );
    assert_eq!(st, 400);
    assert!(!b.to_string().contains("CANARY"), "{b}");
    s.terminate();
    let audit = std::fs::read_to_string(&log).unwrap();
    assert!(audit.contains("secret/data/k"), "the audit log recorded nothing");
    assert!(!audit.contains("CANARY"), "a submitted value reached the audit log");
    let logs = format!("{}\n{}", s.stdout.text(), s.stderr.text());
    assert!(!logs.contains("CANARY"), "a submitted value reached the server log");
}
