//! One regression test per advisory class of security.md §2 that applies to tokens, policies,
//! paths and audit (AppRole, seal and policy-engine advisories live with their modules).
//! Each test is named after its advisory.

use serde_json::{json, Value};

use crate::harness::Server;

fn audit_to(s: &Server, name: &str, path: &std::path::Path, extra: Value) {
    let mut options = json!({"file_path": path});
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let (st, b) =
        s.call("PUT", &format!("sys/audit/{name}"), Some(json!({"type": "file", "options": options})));
    assert_eq!(st, 204, "{b}");
}

/// CVE-2024-8365 / HCSEC-2024-18: client tokens and accessors must never reach the audit log in
/// the clear.
#[test]
fn cve_2024_8365_tokens_and_accessors_are_hashed_in_audit() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    audit_to(&s, "file", &log, json!({}));
    let (_, t) = s.call("POST", "auth/token/create", Some(json!({"policies": ["default"]})));
    let token = t["auth"]["client_token"].as_str().unwrap();
    let accessor = t["auth"]["accessor"].as_str().unwrap();
    s.call_as(token, "GET", "auth/token/lookup-self", None);
    s.call("POST", "auth/token/lookup-accessor", Some(json!({"accessor": accessor})));
    let text = std::fs::read_to_string(&log).unwrap();
    for canary in [token, accessor, s.token.as_str()] {
        assert!(!text.contains(canary), "{canary} in audit log");
    }
}

/// CVE-2024-0831: a `log_raw` device must not make another device write raw values. (`log_raw`
/// is accepted from the configuration only.)
#[test]
fn cve_2024_0831_log_raw_on_one_device_does_not_leak_into_another() {
    let n = crate::audit::Node::start(|dir| {
        format!(
            "audit \"file\" \"raw\" {{\n options {{\n  file_path = \"{}\"\n  log_raw = true\n }}\n}}\n\
             audit \"file\" \"hashed\" {{\n options {{\n  file_path = \"{}\"\n }}\n}}\n",
            dir.join("raw.log").display(),
            dir.join("hashed.log").display()
        )
    });
    let s = &n.s;
    let raw = n.dir.path().join("raw.log");
    let hashed = n.dir.path().join("hashed.log");
    s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let canary = "log-raw-canary-5d0e";
    s.call("PUT", "kv1/x", Some(json!({"v": canary})));
    s.call("GET", "kv1/x", None);
    assert!(std::fs::read_to_string(&raw).unwrap().contains(canary), "the raw device logs raw values");
    assert!(
        !std::fs::read_to_string(&hashed).unwrap().contains(canary),
        "raw value leaked into the hashed device"
    );
}

/// CVE-2025-62513 / CVE-2025-62705: raw response bodies (unwrap returns a stored response
/// verbatim) must be hashed in audit like any other response.
#[test]
fn cve_2025_62513_raw_response_bodies_are_hashed_in_audit() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    audit_to(&s, "file", &log, json!({}));
    let canary = "wrapped-canary-91bb";
    let w: Value = s
        .client()
        .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "60")
        .json(&json!({"secret": canary}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let wt = w["wrap_info"]["token"].as_str().unwrap().to_owned();
    let (st, u) = s.call("POST", "sys/wrapping/unwrap", Some(json!({"token": wt})));
    assert_eq!(st, 200);
    assert_eq!(u["data"]["secret"], canary);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(canary), "wrapped value in audit log");
    assert!(!text.contains(&wt), "wrapping token in audit log");
}

/// CVE-2025-4166 / HCSEC-2025-09: a malformed payload's conversion error must not echo the
/// submitted value (response, audit or server log).
#[test]
fn cve_2025_4166_type_errors_do_not_echo_values() {
    let s = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    audit_to(&s, "file", &log, json!({}));
    let canary = "type-error-canary-3e7a";
    for (path, body) in [
        ("auth/token/create", json!({"num_uses": canary})),
        ("auth/token/create", json!({"renewable": canary})),
        ("auth/token/create", json!({"policies": {"x": canary}})),
        ("auth/token/roles/r", json!({"token_type": 5, "orphan": canary})),
    ] {
        let (st, b) = s.call("POST", path, Some(body));
        assert_eq!(st, 400, "{b}");
        assert!(!b.to_string().contains(canary), "error echoed the value: {b}");
    }
    let bad = s
        .client()
        .post(format!("{}/v1/auth/token/create", s.addr))
        .header("X-Vault-Token", &s.token)
        .body(format!("{{\"x\": \"{canary}"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(!bad.text().unwrap().contains(canary));
    assert!(!std::fs::read_to_string(&log).unwrap().contains(canary));
    assert!(!s.stderr.text().contains(canary), "value in server log");
}

/// CVE-2021-32923: renewing near the max TTL must never yield a token that does not expire.
#[test]
fn cve_2021_32923_renewal_at_max_ttl_never_makes_a_token_immortal() {
    let s = Server::dev();
    let (_, t) = s.call(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"], "ttl": "2s", "explicit_max_ttl": "2s"})),
    );
    let token = t["auth"]["client_token"].as_str().unwrap().to_owned();
    // Renew repeatedly right up to (and past) the max; every answer keeps an expiry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (st, b) = s.call_as(&token, "POST", "auth/token/renew-self", Some(json!({"increment": "1h"})));
        if st != 200 {
            assert!(st == 400 || st == 403, "{st} {b}");
            break;
        }
        assert!(b["auth"]["lease_duration"].as_u64().unwrap() <= 2, "{b}");
        let (_, l) = s.call("POST", "auth/token/lookup", Some(json!({"token": token})));
        if l["data"].is_object() {
            assert!(!l["data"]["expire_time"].is_null(), "token became non-expiring: {l}");
        }
        assert!(std::time::Instant::now() < deadline, "token never stopped renewing");
    }
    crate::harness::wait_for("the token to expire", std::time::Duration::from_secs(20), || {
        (s.call_as(&token, "GET", "auth/token/lookup-self", None).0 == 403).then_some(())
    });
}

/// Vault 1.0.2: child tokens must inherit the parent's CIDR binding.
#[test]
fn vault_1_0_2_child_tokens_inherit_bound_cidrs() {
    let s = Server::dev();
    s.call(
        "POST",
        "auth/token/roles/local",
        Some(json!({"token_bound_cidrs": ["127.0.0.1/32"], "allowed_policies": ["root"]})),
    );
    let (st, p) = s.call("POST", "auth/token/create/local", Some(json!({"policies": ["root"]})));
    assert_eq!(st, 200, "{p}");
    let parent = p["auth"]["client_token"].as_str().unwrap().to_owned();
    let (st, c) = s.call_as(&parent, "POST", "auth/token/create", Some(json!({})));
    assert_eq!(st, 200, "{c}");
    let child = c["auth"]["client_token"].as_str().unwrap();
    let (_, l) = s.call("POST", "auth/token/lookup", Some(json!({"token": child})));
    assert_eq!(l["data"]["bound_cidrs"], json!(["127.0.0.1/32"]));
    // A binding that excludes the caller makes the token unusable.
    s.call("POST", "auth/token/roles/far", Some(json!({"token_bound_cidrs": ["10.0.0.0/8"]})));
    let (_, f) = s.call("POST", "auth/token/create/far", Some(json!({})));
    let far = f["auth"]["client_token"].as_str().unwrap();
    assert_eq!(s.call_as(far, "GET", "auth/token/lookup-self", None).0, 403);
}

/// CVE-2026-40264 / CVE-2026-46405: accessor operations need their own grant, and an error path
/// never mints a token.
#[test]
fn cve_2026_40264_accessor_operations_need_explicit_grants() {
    let s = Server::dev();
    let (_, victim) = s.call("POST", "auth/token/create", Some(json!({"policies": ["default"]})));
    let accessor = victim["auth"]["accessor"].as_str().unwrap();
    let (_, weak) = s.call("POST", "auth/token/create", Some(json!({"policies": ["default"]})));
    let weak = weak["auth"]["client_token"].as_str().unwrap();
    for path in ["auth/token/revoke-accessor", "auth/token/renew-accessor", "auth/token/lookup-accessor"] {
        assert_eq!(s.call_as(weak, "POST", path, Some(json!({"accessor": accessor}))).0, 403, "{path}");
    }
    let victim_token = victim["auth"]["client_token"].as_str().unwrap();
    assert_eq!(s.call_as(victim_token, "GET", "auth/token/lookup-self", None).0, 200);
    let before = s.call("LIST", "auth/token/accessors", None).1["data"]["keys"].as_array().unwrap().len();
    for bad in [json!({"type": "batch", "period": "1h"}), json!({"num_uses": -1}), json!({"id": "a.b"})] {
        assert_eq!(s.call("POST", "auth/token/create", Some(bad)).0, 400);
    }
    let after = s.call("LIST", "auth/token/accessors", None).1["data"]["keys"].as_array().unwrap().len();
    assert_eq!(before, after, "a failed create minted a token");
}

/// CVE-2026-3605 / HCSEC-2026-05: dot segments in request paths are refused before routing and
/// ACL; repeated slashes are collapsed.
#[test]
fn cve_2026_3605_dot_segments_are_refused_before_acl() {
    let s = Server::dev();
    s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    s.call("PUT", "kv1/a", Some(json!({"v": "1"})));
    let c = s.client();
    for p in ["kv1/../sys/mounts", "kv1/%2e%2e/sys/mounts", "kv1/%2E%2E/x", "kv1/./a", "kv1/a/.."] {
        let req = format!(
            "GET /v1/{p} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {}\r\nConnection: close\r\n\r\n",
            s.token
        );
        let (status, text) = crate::harness::raw_http(&s.addr, req.as_bytes());
        assert_eq!(status, 400, "{p}: {text}");
    }
    let r = c.get(format!("{}/v1/kv1//a", s.addr)).header("X-Vault-Token", &s.token).send().unwrap();
    assert_eq!(r.status(), 200, "double slash is collapsed");
}

/// CVE-2020-25594: unauthenticated requests must not reveal which mounts exist.
#[test]
fn cve_2020_25594_unauthenticated_answers_do_not_reveal_mounts() {
    let s = Server::dev();
    s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let a = s.call_as("", "GET", "kv1/x", None);
    let b = s.call_as("", "GET", "nosuchmount/x", None);
    assert_eq!(a, b);
    assert_eq!(a.0, 403);
    let a = s.call_as("hvs.bogus", "GET", "kv1/x", None);
    let b = s.call_as("hvs.bogus", "GET", "nosuchmount/x", None);
    assert_eq!(a, b);
}

/// CVE-2023-6337 / CVE-2025-6203: oversized bodies get 413 without being read; complex JSON
/// gets 400.
#[test]
fn cve_2025_6203_body_limits() {
    let s = Server::dev();
    let c = s.client();
    // Announce 33 MiB but send nothing: the answer must come from the header alone.
    let req = format!(
        "POST /v1/sys/mounts/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {}\r\nContent-Length: {}\r\n\r\n",
        s.token,
        33 * 1024 * 1024
    );
    let (status, text) = crate::harness::raw_http(&s.addr, req.as_bytes());
    assert_eq!(status, 413, "{text}");
    s.call("POST", "sys/mounts/kv1", Some(json!({"type": "kv"})));
    let post = |path: &str, body: String| {
        c.post(format!("{}/v1/{path}", s.addr))
            .header("X-Vault-Token", &s.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    let deep = "[".repeat(100) + &"]".repeat(100);
    let r = post("kv1/deep", format!("{{\"a\":{deep}}}"));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("nesting"));
    let many: Vec<String> = (0..2000).map(|i| format!("s{i}")).collect();
    let r = post("kv1/many", json!({"a": many}).to_string());
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("more than 1000 strings"));
    // Just under the limits is fine.
    let ok: Vec<String> = (0..900).map(|i| format!("s{i}")).collect();
    assert_eq!(post("kv1/ok", json!({"a": ok}).to_string()).status(), 204);
}

/// S4 / CVE-2023-6337: concurrent large uploads queue for a bounded body budget instead of
/// growing memory with their number. 100 connections each deliver all but the last byte of a
/// 2 MiB body and hold it there; without a bound the server would buffer 200 MiB. Its peak RSS
/// may grow by at most 96 MiB (budget 32 MiB of raw bodies, plus parsing).
#[test]
fn s4_concurrent_large_bodies_stay_within_the_memory_budget() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[storage]\ntype = \"inmem\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\nmax_request_size = 2097152\n",
    )
    .unwrap();
    let mut s = Server::with_config(&cfg, None, &[]);
    let (_, init) =
        s.call_as("", "PUT", "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1})));
    s.token = init["root_token"].as_str().unwrap().to_owned();
    s.call_as("", "PUT", "sys/unseal", Some(json!({"key": init["keys"][0]})));
    let pid = s.child.id();
    let peak_kib = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let body = format!("{{\"a\":\"{}\"}}", "x".repeat(2 * 1024 * 1024 - 16));
    let head = format!(
        "POST /v1/sys/mounts/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s.token,
        body.len()
    );
    let hostport = s.addr.trim_start_matches("http://").to_owned();
    let before = peak_kib();
    let written = AtomicUsize::new(0);
    let release = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..100 {
            sc.spawn(|| {
                let mut c = std::net::TcpStream::connect(&hostport).unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(120))).unwrap();
                c.write_all(head.as_bytes()).unwrap();
                c.write_all(&body.as_bytes()[..body.len() - 1]).unwrap();
                written.fetch_add(1, Ordering::SeqCst);
                crate::harness::wait_for("release", std::time::Duration::from_secs(120), || {
                    release.load(Ordering::SeqCst).then_some(())
                });
                c.write_all(&body.as_bytes()[body.len() - 1..]).unwrap();
                let mut resp = Vec::new();
                let _ = c.read_to_end(&mut resp);
                if resp.starts_with(b"HTTP/1.1 400") {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Hold every body one byte short of complete while the writers make progress (kernel
        // buffers absorb what the server does not read), then until the server's memory stops
        // growing: an unbounded server has then read all 100 bodies into memory.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut last = (0, std::time::Instant::now());
        while written.load(Ordering::SeqCst) < 100 && std::time::Instant::now() < end {
            let w = written.load(Ordering::SeqCst);
            if w != last.0 {
                last = (w, std::time::Instant::now());
            } else if last.1.elapsed() > std::time::Duration::from_secs(2) {
                break;
            }
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
        let rss_kib = || -> u64 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap()
                .parse()
                .unwrap()
        };
        let mut last = (rss_kib(), std::time::Instant::now());
        while std::time::Instant::now() < end && last.1.elapsed() < std::time::Duration::from_millis(500) {
            let r = rss_kib();
            if r > last.0 + 1024 {
                last = (r, std::time::Instant::now());
            }
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
        release.store(true, Ordering::SeqCst);
    });
    let grown_kib = peak_kib().saturating_sub(before);
    assert_eq!(answered.load(Ordering::SeqCst), 100, "every request is eventually served");
    let grown_mib = grown_kib / 1024;
    eprintln!(
        "S4: peak RSS grew by {grown_mib} MiB; {} of 100 bodies were fully written before the measurement",
        written.load(Ordering::SeqCst)
    );
    assert!(grown_mib <= 96, "peak RSS grew by {grown_mib} MiB with 100 × 2 MiB bodies in flight");
    assert!(s.terminate().success());
}
