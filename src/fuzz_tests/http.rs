//! `forwarded_request` and `transit_http`: requests through the HTTP layer of an in-process,
//! unsealed core (no sockets), as a leader serves what a standby forwards.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use coffer_storage::fuzzing::{bytes_from, Structured};
use http::{HeaderMap, Method};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

use super::{rt, CANARY, SUITE};
use crate::cluster::forward::{ForwardedRequest, FORWARD_VERSION};
use crate::core::quorum::fixtures;
use crate::http::dispatch::{serve, serve_forwarded};
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;

/// An unsealed in-process node and its root token.
struct Api {
    state: HttpState,
    root: String,
    _node: fixtures::Node,
}

/// Calls `method path` with the root token and a JSON body; `(status, raw body)`.
async fn call_raw(api: &Api, method: &str, path: &str, body: Value) -> (u16, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert("x-vault-token", api.root.parse().unwrap());
    let request = HttpRequest {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        path: path.to_owned(),
        query: Vec::new(),
        headers,
        body: Bytes::from(body.to_string()),
        remote: "127.0.0.1:1".parse().unwrap(),
        request_id: "fuzz".into(),
        target: format!("/v1/{path}"),
        budget: None,
    };
    let reply = serve(&api.state, &request).await;
    (reply.status.as_u16(), reply.body)
}

/// [`call_raw`] with the body parsed (`null` when empty or not JSON).
async fn call(api: &Api, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, raw) = call_raw(api, method, path, body).await;
    (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
}

async fn ok(api: &Api, method: &str, path: &str, body: Value) -> Value {
    let (status, v) = call(api, method, path, body).await;
    assert!(status < 300, "{method} {path}: {status} {v}");
    v
}

/// A node with kv v1 and v2, transit and AppRole mounted, and something in each.
async fn api() -> Api {
    let node = fixtures::shamir(3, 2).await;
    let api = Api {
        state: HttpState::new(node.core.clone(), 1 << 20, Duration::from_secs(30)),
        root: node.root_token.clone(),
        _node: node,
    };
    ok(&api, "POST", "sys/mounts/secret", json!({"type": "kv", "options": {"version": "2"}})).await;
    ok(&api, "POST", "sys/mounts/kv1", json!({"type": "kv"})).await;
    ok(&api, "POST", "sys/mounts/transit", json!({"type": "transit"})).await;
    ok(&api, "POST", "sys/auth/approle", json!({"type": "approle"})).await;
    ok(&api, "POST", "secret/data/x", json!({"data": {"a": "b"}})).await;
    ok(&api, "POST", "kv1/x", json!({"a": "b"})).await;
    ok(&api, "POST", "transit/keys/k", json!({})).await;
    ok(&api, "POST", "transit/keys/c", json!({"type": "chacha20-poly1305"})).await;
    ok(&api, "POST", "transit/keys/d", json!({"derived": true})).await;
    ok(&api, "POST", "transit/keys/ed", json!({"type": "ed25519"})).await;
    ok(&api, "POST", "transit/keys/x", json!({"exportable": true, "allow_plaintext_backup": true})).await;
    ok(&api, "POST", "auth/approle/role/web", json!({"secret_id_num_uses": 3})).await;
    ok(
        &api,
        "POST",
        "sys/policies/acl/p1",
        json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    api
}

/// What every reply must be: below 500, and a refusal is Vault-shaped and repeats no submitted
/// value.
fn verify_reply(what: &str, status: u16, body: &[u8]) -> Result<(), String> {
    verify_reply_echo(what, status, body, &Echo::None)
}

/// Fields whose values are secret (or may be): an error never repeats them.
const SECRET_FIELDS: &[&str] = &[
    "data",
    "plaintext",
    "ciphertext",
    "batch_input",
    "role_id",
    "secret_id",
    "context",
    "input",
    "token",
    "key",
    "nonce",
    "otp",
    "backup",
    "associated_data",
    "value",
    "signature",
];

/// Which repetitions of the canary an error may contain.
enum Echo {
    /// None: it was submitted under a secret field, or nowhere.
    None,
    /// Any: it sits only under settings (TTLs, names, counts, ...), which an error may name as
    /// Vault's do (`time: invalid duration "<value>"`).
    Any,
    /// Only these renderings of settings values (the canary is also under a secret field, so
    /// any other repetition of it is an echo of the secret).
    Only(Vec<String>),
}

/// What an error may repeat of the canary in `body`.
fn echo_allowed(body: &[u8]) -> Echo {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else { return Echo::None };
    let carries = |v: &Value| v.to_string().contains(CANARY);
    let secret = m.iter().any(|(k, v)| SECRET_FIELDS.contains(&k.as_str()) && carries(v));
    let settings: Vec<&Value> = m
        .iter()
        .filter(|(k, v)| !SECRET_FIELDS.contains(&k.as_str()) && carries(v))
        .map(|(_, v)| v)
        .collect();
    if !secret {
        return if settings.is_empty() { Echo::None } else { Echo::Any };
    }
    let mut shown: Vec<String> = settings
        .iter()
        .flat_map(|v| [Some(v.to_string()), v.as_str().map(str::to_owned)])
        .flatten()
        .collect();
    // Longest first, so a value's JSON text goes before the bare string inside it.
    shown.sort_by_key(|r| std::cmp::Reverse(r.len()));
    Echo::Only(shown)
}

/// Whether a string in `v` repeats the canary other than in one of `shown`.
fn repeats_canary(v: &Value, shown: &[String]) -> bool {
    match v {
        Value::String(s) => {
            let mut rest = s.clone();
            for r in shown {
                rest = rest.replace(r.as_str(), "");
            }
            rest.contains(CANARY)
        }
        Value::Array(a) => a.iter().any(|x| repeats_canary(x, shown)),
        Value::Object(m) => m.iter().any(|(k, x)| k.contains(CANARY) || repeats_canary(x, shown)),
        _ => false,
    }
}

/// [`verify_reply`], where `echo` says which repetitions of the canary an error may contain.
fn verify_reply_echo(what: &str, status: u16, body: &[u8], echo: &Echo) -> Result<(), String> {
    let text = String::from_utf8_lossy(body);
    if status >= 500 {
        return Err(format!("{what}: {status} {text}"));
    }
    if status >= 400 && !body.is_empty() {
        let v: Value =
            serde_json::from_slice(body).map_err(|_| format!("{what}: {status} body is not JSON: {text}"))?;
        // kv v2 answers a path outside its API with Vault's 404 envelope carrying a warning.
        let kv2_warning = status == 404 && v["warnings"].as_array().is_some_and(|w| !w.is_empty());
        // kv v2 answers a deleted or destroyed version with Vault's 404 carrying its metadata
        // (`data.data` null), as hvac and the CLI expect.
        let kv2_deleted = status == 404 && v["data"]["data"].is_null() && v["data"]["metadata"].is_object();
        if !kv2_warning
            && !kv2_deleted
            && !v["errors"].as_array().is_some_and(|e| e.iter().all(Value::is_string))
        {
            return Err(format!("{what}: {status} body has no errors list: {text}"));
        }
        let echoed = match echo {
            Echo::Any => false,
            Echo::None => text.contains(CANARY),
            Echo::Only(shown) => repeats_canary(&v, shown),
        };
        if echoed {
            return Err(format!("{what}: {status} error repeats a submitted value: {text}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// forwarded_request

const DICT: &[&[u8]] = &[
    b"\"v\":1",
    b"\"method\":",
    b"\"GET\"",
    b"\"POST\"",
    b"\"LIST\"",
    b"\"path_and_query\":",
    b"\"/v1/sys/health\"",
    b"\"/v1/secret/data/x\"",
    b"\"headers\":",
    b"[\"x-vault-token\",\"hvs.x\"]",
    b"[\"x-vault-wrap-ttl\",\"5m\"]",
    b"[\"content-type\",\"application/json\"]",
    b"\"body\":",
    b"\"e30=\"",
    b"\"remote_addr\":",
    b"\"127.0.0.1\"",
    b"\"::1\"",
];

/// Paths of every endpoint family (no `sys/seal` and no self-revocation: a root token must
/// keep working for the whole run).
const PATHS: &[&str] = &[
    "sys/health",
    "sys/seal-status",
    "sys/leader",
    "sys/init",
    "sys/unseal",
    "sys/step-down",
    "sys/mounts",
    "sys/mounts/m1",
    "sys/mounts/secret/tune",
    "sys/auth",
    "sys/auth/a1",
    "sys/remount",
    "sys/policies/acl",
    "sys/policies/acl/p1",
    "sys/policy/p2",
    "sys/capabilities-self",
    "sys/capabilities",
    "sys/capabilities-accessor",
    "sys/wrapping/wrap",
    "sys/wrapping/unwrap",
    "sys/wrapping/lookup",
    "sys/wrapping/rewrap",
    "sys/audit",
    "sys/audit/f1",
    "sys/audit-hash/file",
    "sys/tools/random",
    "sys/tools/random/32",
    "sys/tools/hash/sha2-512",
    "sys/key-status",
    "sys/rotate",
    "sys/rekey/init",
    "sys/rekey/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/generate-root-token/attempt",
    "sys/storage/raft/configuration",
    "sys/storage/raft/snapshot",
    "sys/storage/raft/join",
    "sys/leases/lookup",
    "sys/internal/ui/mounts",
    "sys/internal/ui/mounts/secret",
    "auth/token/create",
    "auth/token/create-orphan",
    "auth/token/lookup",
    "auth/token/lookup-self",
    "auth/token/lookup-accessor",
    "auth/token/renew",
    "auth/token/renew-self",
    "auth/token/revoke",
    "auth/token/revoke-accessor",
    "auth/token/roles/r1",
    "auth/token/accessors",
    "auth/approle/role",
    "auth/approle/role/web",
    "auth/approle/role/web/secret-id",
    "auth/approle/role/web/custom-secret-id",
    "auth/approle/role/web/role-id",
    "auth/approle/role/web/secret-id/lookup",
    "auth/approle/role/web/secret-id-accessor/lookup",
    "auth/approle/login",
    "kv1/x",
    "kv1/",
    "secret/config",
    "secret/data/x",
    "secret/data/y/z",
    "secret/metadata/x",
    "secret/metadata/",
    "secret/delete/x",
    "secret/undelete/x",
    "secret/destroy/x",
    "secret/subkeys/x",
    "transit/keys",
    "transit/keys/k",
    "transit/keys/k2",
    "transit/keys/k/config",
    "transit/keys/k/rotate",
    "transit/keys/k/trim",
    "transit/encrypt/k",
    "transit/decrypt/k",
    "transit/rewrap/k",
    "transit/datakey/plaintext/k",
    "transit/hmac/k",
    "transit/sign/ed",
    "transit/verify/ed",
    "transit/hash",
    "transit/random/16",
    "transit/backup/x",
    "transit/restore",
    "transit/export/encryption-key/x",
    "transit/cache-config",
    "cubbyhole/x",
    "nope/x",
];

const FIELDS: &[&str] = &[
    "type",
    "policies",
    "policy",
    "ttl",
    "num_uses",
    "period",
    "explicit_max_ttl",
    "data",
    "options",
    "config",
    "plaintext",
    "ciphertext",
    "batch_input",
    "versions",
    "cas",
    "metadata",
    "role_id",
    "secret_id",
    "key_version",
    "context",
    "input",
    "token",
    "accessor",
    "increment",
    "max_versions",
    "custom_metadata",
    "description",
    "secret_shares",
    "secret_threshold",
    "key",
    "nonce",
    "otp",
    "paths",
    "path",
    "from",
    "to",
    "token_policies",
    "secret_id_num_uses",
    "cidr_list",
    "token_bound_cidrs",
    "min_decryption_version",
    "exportable",
    "backup",
    "delete_version_after",
    "hash_algorithm",
    "signature",
    "format",
    "bytes",
    "associated_data",
    "derived",
    "version",
    "list",
    "name",
    "id",
    "value",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(CANARY)),
        Just(json!("")),
        Just(json!("1h")),
        Just(json!("-1")),
        Just(json!("vault:v1:AAAA")),
        Just(json!("aGVsbG8=")),
        Just(json!("default")),
        "[a-z0-9/_.*+-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((select(FIELDS), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = vec((select(FIELDS), json_value()), 0..5).prop_map(|kv| {
        let m: serde_json::Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Value::Object(m).to_string().into_bytes()
    });
    prop_oneof![
        6 => object,
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => vec(any::<u8>(), 0..32),
        1 => Just(Vec::new()),
    ]
}

fn forwarded(root: String) -> impl Strategy<Value = Structured<ForwardedRequest>> {
    let methods = ["GET", "LIST", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "GET"];
    let query = select(vec!["", "", "?list=true", "?version=1", "?versions=-1", "?wrap=%zz", "?help=1"]);
    let token = select(vec![
        Some(root.clone()),
        Some(root),
        None,
        Some("hvs.garbage".to_owned()),
        Some(String::new()),
    ]);
    let headers = proptest::sample::subsequence(
        vec![
            ("x-vault-wrap-ttl", "5m"),
            ("x-vault-wrap-ttl", "-3"),
            ("x-vault-wrap-ttl", "zz"),
            ("x-vault-namespace", "ns1"),
            ("x-vault-namespace", "root/"),
            ("content-type", "text/plain"),
            ("x-vault-request", "true"),
            ("authorization", "Bearer hvs.other"),
            ("x-vault-no-request-forwarding", "true"),
            ("x-vault-inconsistent", "forward-active-node"),
        ],
        0..3,
    );
    let remote =
        prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from)];
    (select(methods.to_vec()), select(PATHS), query, token, headers, body(), remote).prop_map(
        |(method, path, query, token, extra, body, remote_addr)| {
            let mut headers: Vec<(String, String)> =
                extra.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            if let Some(t) = token {
                headers.push(("x-vault-token".into(), t));
            }
            Structured(ForwardedRequest {
                v: FORWARD_VERSION,
                method: method.to_owned(),
                path_and_query: format!("/v1/{path}{query}"),
                headers,
                body: B64.encode(body),
                remote_addr,
            })
        },
    )
}

#[test]
fn forwarded_request() {
    let mut t = SUITE.target("forwarded_request", 1200);
    let rt = rt();
    let api = rt.block_on(api());
    let statuses = Mutex::new(BTreeMap::<u16, usize>::new());
    let serve_one = |fwd: ForwardedRequest| -> Result<(), String> {
        let what = format!("{} {}", fwd.method, fwd.path_and_query);
        let echo = B64.decode(&fwd.body).map_or(Echo::None, |b| echo_allowed(&b));
        let resp = rt.block_on(serve_forwarded(&api.state, fwd));
        *statuses.lock().unwrap().entry(resp.status).or_default() += 1;
        if resp.v != FORWARD_VERSION {
            return Err(format!("{what}: response version {}", resp.v));
        }
        let body = resp.body_bytes().map_err(|e| format!("{what}: {e}"))?;
        verify_reply_echo(&what, resp.status, &body, &echo)
    };
    // The cluster port's decoder: what does not decode is answered 400 there; what decodes is
    // served.
    let check = |raw: &[u8]| -> Result<(), String> {
        match serde_json::from_slice::<ForwardedRequest>(raw) {
            Ok(fwd) => serve_one(fwd),
            Err(_) => Ok(()),
        }
    };
    t.replay(check);
    let n = t.cases();
    t.generate_n(n / 3, bytes_from(t.seeds(), DICT), |b| check(b));
    t.generate_n(n, forwarded(api.root.clone()), |Structured(fwd)| {
        let again: ForwardedRequest =
            serde_json::from_slice(&serde_json::to_vec(fwd).map_err(|e| e.to_string())?)
                .map_err(|e| format!("forwarded request does not round-trip: {e}"))?;
        serve_one(again)
    });
    t.note(format!("statuses {:?}", statuses.lock().unwrap()));
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// transit_http

/// `vault:v<N>:<base64>` as transit reads it (see `transit.rs`).
fn normalize(s: &str) -> Option<(i64, Vec<u8>)> {
    let (v, data) = s.strip_prefix("vault:v")?.split_once(':')?;
    let ver = crate::engines::transit::cipher::go_atoi(v)?;
    Some((if ver == 0 { 1 } else { ver }, crate::engines::transit::crypto::go_b64_decode(data).ok()?))
}

const MESSAGE_B64: &str = "ZnV6eiBtZXNzYWdl";

#[test]
fn transit_http() {
    let mut t = SUITE.target("transit_http", 400);
    let rt = rt();
    let api = rt.block_on(api());
    let context = B64.encode("fuzz-context");
    // Genuine ciphertexts and signatures of this run: (key, version, payload) -> plaintext.
    let mut genuine: BTreeMap<(&str, i64, Vec<u8>), String> = BTreeMap::new();
    let mut seeds = t.seeds();
    rt.block_on(async {
        for key in ["k", "c", "d"] {
            if key == "k" {
                ok(&api, "POST", "transit/keys/k/rotate", json!({})).await;
            }
            for (i, pt) in ["", "aGVsbG8=", "AAAAAAAAAAAAAAAAAAAAAAAA"].iter().enumerate() {
                let version = if key == "k" { i % 2 + 1 } else { 0 };
                let body = json!({"plaintext": pt, "context": context, "key_version": version});
                let v = ok(&api, "POST", &format!("transit/encrypt/{key}"), body).await;
                let ct = v["data"]["ciphertext"].as_str().unwrap().to_owned();
                let (ver, payload) = normalize(&ct).unwrap();
                genuine.insert((key, ver, payload), (*pt).to_owned());
                seeds.push(ct.into_bytes());
            }
        }
        let v = ok(&api, "POST", "transit/sign/ed", json!({"input": MESSAGE_B64})).await;
        let sig = v["data"]["signature"].as_str().unwrap().to_owned();
        let (ver, payload) = normalize(&sig).unwrap();
        genuine.insert(("ed", ver, payload), MESSAGE_B64.to_owned());
        seeds.push(sig.into_bytes());
        let v = ok(&api, "GET", "transit/backup/x", json!({})).await;
        seeds.push(v["data"]["backup"].as_str().unwrap().as_bytes().to_vec());
    });
    let restore_500 = std::sync::atomic::AtomicUsize::new(0);
    let check = |raw: &[u8]| -> Result<(), String> {
        let s = String::from_utf8_lossy(raw).into_owned();
        rt.block_on(async {
            for key in ["k", "c", "d"] {
                let body = json!({"ciphertext": s, "context": context});
                let (status, raw) = call_raw(&api, "POST", &format!("transit/decrypt/{key}"), body).await;
                verify_reply(&format!("decrypt/{key}"), status, &raw)?;
                if status == 200 {
                    let v: Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
                    let got = v["data"]["plaintext"].as_str().unwrap_or_default();
                    match normalize(&s).and_then(|(ver, p)| genuine.get(&(key, ver, p))) {
                        Some(want) if want == got => {}
                        _ => return Err(format!("decrypt/{key} accepted {s:?}")),
                    }
                }
            }
            let batch = json!({"batch_input": [{"ciphertext": s}, {"ciphertext": s, "context": context}]});
            let (status, raw) = call_raw(&api, "POST", "transit/decrypt/k", batch).await;
            verify_reply("batch decrypt", status, &raw)?;
            let body = json!({"input": MESSAGE_B64, "signature": s});
            let (status, raw) = call_raw(&api, "POST", "transit/verify/ed", body).await;
            verify_reply("verify", status, &raw)?;
            let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            if v["data"]["valid"] == json!(true)
                && !normalize(&s).is_some_and(|(ver, p)| genuine.contains_key(&("ed", ver, p)))
            {
                return Err(format!("verify accepted {s:?}"));
            }
            let (status, raw) = call_raw(&api, "POST", "transit/restore", json!({"backup": s})).await;
            // A malformed backup is a 400; the only 500s are the refusals the contract pins as
            // Vault's (a key that already exists, a name that is a path), with Go's plain text.
            let text = String::from_utf8_lossy(&raw);
            let pinned = text.contains("already exists") || text.contains("key names cannot be paths");
            if status == 500 && pinned && vault_plain_error(&raw) {
                restore_500.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
            verify_reply("restore", status, &raw)
        })
    };
    t.replay(check);
    t.generate(bytes_from(seeds, DICT), |b| check(b));
    t.note(format!(
        "transit/restore refusals as Vault's pinned 500s: {}",
        restore_500.load(std::sync::atomic::Ordering::Relaxed)
    ));
    t.finish();
}

/// Vault's 500 for a plain Go error of a handler: one `errors` entry `1 error occurred:\n\t* ...`,
/// repeating no submitted value.
fn vault_plain_error(body: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = String::from_utf8_lossy(body);
    v["errors"].as_array().is_some_and(|e| {
        e.len() == 1 && e[0].as_str().is_some_and(|m| m.starts_with("1 error occurred:\n\t* "))
    }) && !text.contains(CANARY)
}

#[test]
fn the_echo_oracle_tells_a_named_setting_from_an_echoed_secret() {
    // Found by a random seed: a setting that carries the canary, named in Vault's error text,
    // while a secret field of the same body carries it too.
    let body = format!(r#"{{"period":["{CANARY}"],"signature":{{"type":"{CANARY}"}}}}"#);
    let echo = echo_allowed(body.as_bytes());
    let named = json!({"errors": [format!(r#"time: invalid duration "["{CANARY}"]""#)]}).to_string();
    assert_eq!(verify_reply_echo("t", 400, named.as_bytes(), &echo), Ok(()));
    let leaked = json!({"errors": [format!(r#"bad signature {{"type":"{CANARY}"}}"#)]}).to_string();
    assert!(verify_reply_echo("t", 400, leaked.as_bytes(), &echo).is_err(), "the secret's echo passed");
    let bare = json!({"errors": [format!("bad signature {CANARY}")]}).to_string();
    assert!(verify_reply_echo("t", 400, bare.as_bytes(), &echo).is_err(), "the secret's echo passed");
    // Only settings: any naming passes; only a secret: none does.
    let settings_only = format!(r#"{{"ttl":"{CANARY}"}}"#);
    assert_eq!(verify_reply_echo("t", 400, bare.as_bytes(), &echo_allowed(settings_only.as_bytes())), Ok(()));
    let secret_only = format!(r#"{{"plaintext":"{CANARY}"}}"#);
    assert!(verify_reply_echo("t", 400, bare.as_bytes(), &echo_allowed(secret_only.as_bytes())).is_err());
}
