//! A profiling harness (not a test that runs in CI: `#[ignore]`): drives transit encrypt and
//! decrypt, single and batch (100 × 1 KiB, as `bench/lua/transit-*.lua` send them), through the
//! HTTP layer of an in-process, unsealed core, so instructions per request can be counted with
//! callgrind on this noisy machine (see bench/RESULTS.md):
//!
//! ```sh
//! cargo test --release --lib --no-run
//! PERF_OP=encrypt PERF_N=2000 valgrind --tool=callgrind --collect-atstart=no \
//!   --toggle-collect='*transit_perf_measured*' target/release/deps/coffer-<hash> \
//!   --ignored --exact engines::transit::perf_tests::transit_request_profile
//! ```
//!
//! `PERF_OP` is `encrypt`, `decrypt`, `encrypt-batch` or `decrypt-batch`; `PERF_N` the number
//! of measured requests (after 20 warm-up requests). Every answer must be a 200.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::core::quorum::fixtures;
use crate::http::dispatch::serve;
use crate::http::request::HttpRequest;
use crate::http::state::HttpState;

fn request(root: &str, path: &str, body: &Bytes) -> HttpRequest {
    let mut headers = HeaderMap::new();
    headers.insert("x-vault-token", root.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    HttpRequest {
        method: Method::POST,
        path: path.to_owned(),
        query: Vec::new(),
        headers,
        body: body.clone(),
        remote: "127.0.0.1:1".parse().unwrap(),
        request_id: "perf".into(),
        target: format!("/v1/{path}"),
        budget: None,
    }
}

async fn call(state: &HttpState, root: &str, path: &str, body: &Bytes) -> Vec<u8> {
    let reply = serve(state, &request(root, path, body)).await;
    assert_eq!(reply.status.as_u16(), 200, "{path}: {}", String::from_utf8_lossy(&reply.body));
    reply.body
}

/// The measured loop (callgrind's `--toggle-collect` target).
#[inline(never)]
fn transit_perf_measured(
    rt: &tokio::runtime::Runtime,
    state: &HttpState,
    root: &str,
    path: &str,
    body: &Bytes,
    n: usize,
) -> usize {
    rt.block_on(async {
        let mut total = 0;
        for _ in 0..n {
            total += call(state, root, path, body).await.len();
        }
        total
    })
}

#[test]
#[ignore = "profiling harness: run under callgrind (see the module documentation)"]
fn transit_request_profile() {
    let op = std::env::var("PERF_OP").unwrap_or_else(|_| "encrypt".into());
    let n: usize = std::env::var("PERF_N").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (node, state) = rt.block_on(async {
        let node = fixtures::shamir(1, 1).await;
        let state = HttpState::new(node.core.clone(), 32 << 20, Duration::from_secs(30));
        (node, state)
    });
    let root = node.root_token.clone();
    let plaintext = B64.encode((0..1024u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>());
    let ciphertext = rt.block_on(async {
        let mount = Bytes::from(json!({"type": "transit"}).to_string());
        let reply = serve(&state, &request(&root, "sys/mounts/transit", &mount)).await;
        assert!(reply.status.as_u16() < 300);
        call(&state, &root, "transit/keys/bench", &Bytes::from_static(b"{}")).await;
        let body = Bytes::from(json!({"plaintext": plaintext}).to_string());
        let out: Value =
            serde_json::from_slice(&call(&state, &root, "transit/encrypt/bench", &body).await).unwrap();
        out["data"]["ciphertext"].as_str().unwrap().to_owned()
    });
    let batch = |field: &str, value: &str| {
        let items: Vec<Value> = (0..100).map(|_| json!({ field: value })).collect();
        Bytes::from(json!({ "batch_input": items }).to_string())
    };
    let (path, body) = match op.as_str() {
        "encrypt" => ("transit/encrypt/bench", Bytes::from(json!({"plaintext": plaintext}).to_string())),
        "decrypt" => ("transit/decrypt/bench", Bytes::from(json!({"ciphertext": ciphertext}).to_string())),
        "encrypt-batch" => ("transit/encrypt/bench", batch("plaintext", &plaintext)),
        "decrypt-batch" => ("transit/decrypt/bench", batch("ciphertext", &ciphertext)),
        other => panic!("unknown PERF_OP {other}"),
    };
    rt.block_on(async {
        for _ in 0..20 {
            call(&state, &root, path, &body).await;
        }
    });
    let started = std::time::Instant::now();
    let bytes = transit_perf_measured(&rt, &state, &root, path, &body, n);
    let elapsed = started.elapsed();
    eprintln!(
        "transit perf: op={op} n={n} reply_bytes={bytes} {:.1} us/request (wall clock, noisy)",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    drop(node);
}
