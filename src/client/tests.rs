//! Settings from the environment, the token helper file, URLs and the 404 rules.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| m.get(k).cloned()
}

#[test]
fn settings_from_environment() {
    let s = Settings::from_lookup(env(&[]), None).unwrap();
    assert_eq!(s.address, DEFAULT_ADDRESS);
    assert!(s.token.is_none());
    assert!(!s.dangerous_skip_verify);

    let s = Settings::from_lookup(
        env(&[
            ("VAULT_ADDR", "http://v:1"),
            ("BAO_ADDR", "http://b:2"),
            ("VAULT_TOKEN", "vt"),
            ("VAULT_SKIP_VERIFY", "true"),
            ("VAULT_NAMESPACE", "ns1/"),
            ("VAULT_CACERT", "/ca.pem"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(s.address, "http://b:2", "BAO_ wins over VAULT_");
    assert_eq!(s.token.as_ref().unwrap().expose(), "vt");
    assert!(s.dangerous_skip_verify);
    assert_eq!(s.namespace.as_deref(), Some("ns1/"));
    assert_eq!(s.ca_cert.as_deref(), Some(Path::new("/ca.pem")));

    let s = Settings::from_lookup(env(&[("COFFER_ADDR", "http://c:3"), ("BAO_ADDR", "http://b:2")]), None)
        .unwrap();
    assert_eq!(s.address, "http://c:3");
    assert!(Settings::from_lookup(env(&[("VAULT_SKIP_VERIFY", "maybe")]), None).is_err());
    // An empty variable counts as unset.
    let s = Settings::from_lookup(env(&[("COFFER_TOKEN", ""), ("VAULT_TOKEN", "x")]), None).unwrap();
    assert_eq!(s.token.unwrap().expose(), "x");
}

#[test]
fn token_helper_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Settings::from_lookup(env(&[]), Some(dir.path())).unwrap().token.is_none());
    let path = dir.path().join(TOKEN_HELPER_FILE);
    store_token_helper(&path, &ClientToken::new("hvs.abc".into())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let s = Settings::from_lookup(env(&[]), Some(dir.path())).unwrap();
    assert_eq!(s.token.unwrap().expose(), "hvs.abc");
    // The environment wins over the file.
    let s = Settings::from_lookup(env(&[("VAULT_TOKEN", "envtok")]), Some(dir.path())).unwrap();
    assert_eq!(s.token.unwrap().expose(), "envtok");
    erase_token_helper(&path).unwrap();
    erase_token_helper(&path).unwrap();
    assert!(!path.exists());
}

#[test]
fn urls_are_built_per_segment() {
    let c = Client::new(Settings { address: "http://127.0.0.1:8200".into(), ..Settings::default() }).unwrap();
    assert_eq!(c.url("secret/data/a b", &[]).as_str(), "http://127.0.0.1:8200/v1/secret/data/a%20b");
    assert_eq!(c.url("secret/metadata/", &[]).as_str(), "http://127.0.0.1:8200/v1/secret/metadata/");
    assert_eq!(c.url("x?y#z", &[("version", "2")]).as_str(), "http://127.0.0.1:8200/v1/x%3Fy%23z?version=2");
    let c = Client::new(Settings { address: "https://h/prefix/".into(), ..Settings::default() }).unwrap();
    assert_eq!(c.url("sys/health", &[]).as_str(), "https://h/prefix/v1/sys/health");
    assert!(Client::new(Settings { address: "ftp://h".into(), ..Settings::default() }).is_err());
    assert!(Client::new(Settings { address: "not a url".into(), ..Settings::default() }).is_err());
}

#[test]
fn debug_hides_the_token() {
    let c = Client::new(Settings {
        address: "http://h:1".into(),
        token: Some(ClientToken::new("hvs.secret-token".into())),
        ..Settings::default()
    })
    .unwrap();
    assert!(!format!("{c:?}").contains("secret-token"));
}

#[test]
fn logical_404_rules() {
    let r = |status, body: Option<Value>| RawResponse {
        status,
        body,
        method: "GET".into(),
        url: "u".into(),
        raw_error: None,
    };
    assert!(r(404, Some(json!({"errors": []}))).into_logical().unwrap().is_none());
    assert!(r(404, None).into_logical().unwrap().is_none());
    let deleted = json!({"data": {"data": null, "metadata": {"version": 1}}});
    assert_eq!(r(404, Some(deleted.clone())).into_logical().unwrap(), Some(deleted));
    assert_eq!(r(403, None).into_logical().unwrap_err().status(), Some(403));
    assert!(r(204, None).into_result().unwrap().is_none());
    assert_eq!(r(404, Some(json!({"errors": ["nope"]}))).into_write().unwrap_err().status(), Some(404));
}

#[test]
fn missing_ca_file_fails_early() {
    let e = Client::new(Settings {
        address: "https://h:1".into(),
        ca_cert: Some("/nonexistent/ca.pem".into()),
        ..Settings::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

/// `crate::X` modules named outside comments in the production `.rs` files under `src/<dir>`
/// (`tests.rs` files may use anything).
fn crate_modules_used(dir: &str) -> std::collections::BTreeSet<String> {
    fn walk(p: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir), &mut files);
    let mut used = std::collections::BTreeSet::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                used.insert(name);
            }
        }
    }
    used
}

#[test]
fn client_and_resolve_import_nothing_of_the_server() {
    let allowed = |extra: &[&str]| {
        let mut a: std::collections::BTreeSet<String> = ["secret", "util"].map(String::from).into();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let client = crate_modules_used("client");
    assert!(client.is_subset(&allowed(&["client"])), "client uses {client:?}");
    let resolve = crate_modules_used("resolve");
    assert!(resolve.is_subset(&allowed(&["client", "resolve"])), "resolve uses {resolve:?}");
    assert!(resolve.contains("client"), "the scan sees the resolver's use of the client");
}
