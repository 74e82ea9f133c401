//! KV version 2 through real clients: a differential run of one scripted call sequence against
//! `bao server -dev` and coffer, `vaultrs` over every endpoint it has, the `bao kv` CLI, a
//! cas race of 20 writers, the v1→v2 upgrade, ACL paths and the no-echo rule for bad input.

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
        st("POST", "sys/mounts/old/tune", j(r#"{"options":{"version":"2"}}"#), Known(
            "bao 2.7.2 warns `Upgrading mount from version 0 to version 0` (a bao bug); coffer names versions 1 and 2",
        )),
        st("POST", "old/data/x", j(r#"{"data":{"a":1}}"#), Same),
        st("GET", "old/data/x", N, Same),
        st("POST", "sys/mounts/old1", j(r#"{"type":"kv"}"#), Same),
        st("POST", "old1/x", j(r#"{"a":1}"#), Same),
        st("POST", "sys/mounts/old1/tune", j(r#"{"options":{"version":"2"}}"#), Known(
            "bao migrates version 1 secrets on upgrade; coffer refuses to upgrade a non-empty version 1 mount (400)",
        )),
        st("POST", "sys/mounts/old/tune", j(r#"{"options":{"version":"1"}}"#), Same),
    ]
}

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
    json!({
        "status": status,
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
    let Some(bao) = harness::require_bao() else { return };
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
        "kv v2 differential: {} calls compared, {} documented differences:\n{}",
        steps.len(),
        known.len(),
        known.join("\n")
    );
    assert!(unexpected.is_empty(), "{} unexpected differences:\n{}", unexpected.len(), unexpected.join("\n"));
}
