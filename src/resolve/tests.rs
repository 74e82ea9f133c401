use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use super::*;

/// A fake server: kv v2 secrets by (path, version), one token, call log.
#[derive(Default)]
struct Fake {
    secrets: BTreeMap<(String, Option<u64>), Value>,
    deleted: Vec<String>,
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Transport for Fake {
    async fn request(&self, call: ApiCall<'_>) -> Result<(u16, Value), TransportError> {
        let ApiCall { method, path, query, token, .. } = call;
        let path = match query.first() {
            Some((k, v)) => format!("{path}?{k}={v}"),
            None => path.to_owned(),
        };
        let path = path.as_str();
        self.calls.lock().unwrap().push(format!("{method} {path}"));
        if path == "auth/token/lookup-self" {
            return Ok((200, json!({"data": {"ttl": 0, "renewable": false}})));
        }
        if token != Some("tok") {
            return Ok((403, json!({"errors": ["permission denied"]})));
        }
        let (p, v) = match path.split_once("?version=") {
            Some((p, v)) => (p, Some(v.parse::<u64>().unwrap())),
            None => (path, None),
        };
        let p = p.strip_prefix("secret/data/").unwrap();
        if self.deleted.iter().any(|d| d == p) {
            return Ok((
                404,
                json!({"data": {"data": null, "metadata": {"version": 2, "deletion_time": "2024-01-01T00:00:00Z", "destroyed": false}}}),
            ));
        }
        if p == "forbidden" {
            return Ok((403, json!({"errors": ["1 error occurred:\n\t* permission denied\n\n"]})));
        }
        match self.secrets.get(&(p.to_owned(), v)) {
            Some(d) => Ok((200, json!({"data": {"data": d, "metadata": {"version": 1}}}))),
            None => Ok((404, json!({"errors": []}))),
        }
    }
}

fn resolver(fake: Fake) -> (Resolver, Arc<Fake>) {
    let fake = Arc::new(fake);
    let settings =
        SettingsBuilder { address: Some("http://x".into()), token: Some("tok".into()), ..Default::default() }
            .build()
            .unwrap();
    (Resolver::with_transport(settings, fake.clone()), fake)
}

#[tokio::test]
async fn resolves_fields_versions_env_file_and_fetches_each_path_once() {
    let mut f = Fake::default();
    f.secrets.insert(("ai/k".into(), None), json!({"value": "sk-1", "other": 5}));
    f.secrets.insert(("db/main".into(), Some(3)), json!({"password": "pw3"}));
    let (r, fake) = resolver(f);
    std::env::set_var("COFFER_TEST_ENV_REF", "from-env");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s");
    std::fs::write(&file, "from-file\n").unwrap();
    let text = format!(
        "[ai]\nkey = \"vault:ai/k\"\nagain = \"vault:ai/k\"\nnum = \"vault:ai/k#other\"\npw = \"vault:db/main#password@3\"\ne = \"env:COFFER_TEST_ENV_REF\"\nf = \"file:{}\"\nlit = \"plain\"\nesc = \"\\\\vault:not-a-ref\"\n",
        file.display()
    );
    let mut doc = Document::parse(Format::Toml, &text).unwrap();
    let n = r.resolve_document(&mut doc, &[]).await.unwrap();
    assert_eq!(n, 7, "six references and one escape");
    let out = doc.render();
    for want in [
        "key = \"sk-1\"",
        "again = \"sk-1\"",
        "num = \"5\"",
        "pw = \"pw3\"",
        "e = \"from-env\"",
        "f = \"from-file\"",
        "lit = \"plain\"",
        "esc = \"vault:not-a-ref\"",
    ] {
        assert!(out.contains(want), "{want} missing in {}", out.as_str());
    }
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().filter(|c| c.contains("secret/data/ai/k")).count(), 1, "{calls:?}");
}

#[tokio::test]
async fn errors_name_the_reference_and_never_a_value() {
    let mut f = Fake::default();
    f.secrets.insert(("ai/k".into(), None), json!({"value": "sk-secret-value"}));
    f.deleted.push("gone".into());
    let (r, _) = resolver(f);
    let cases = [
        ("vault:missing/path", "no such secret"),
        ("vault:ai/k#nofield", "has no field \"nofield\""),
        ("vault:gone", "version 2 is deleted"),
        ("vault:forbidden", "permission denied"),
        ("env:COFFER_TEST_SURELY_UNSET_VAR", "environment variable is not set"),
        ("file:/nonexistent/coffer-test", "cannot read the file"),
        ("vault:a#", "empty field"),
    ];
    for (text, want) in cases {
        let e = r.resolve_str(text).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "{text}: {msg}");
        assert!(
            msg.contains(text.trim_end_matches('#')) || msg.contains("vault:a"),
            "{msg} does not name {text}"
        );
        assert!(!msg.contains("sk-secret-value"));
    }
    let mut doc = Document::parse(Format::Json, r#"{"a":"vault:missing/path","b":"vault:ai/k"}"#).unwrap();
    let errs = r.resolve_document(&mut doc, &[]).await.unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(doc.render().contains("vault:ai/k"), "document must be unchanged on failure");
    let n = r.resolve_document(&mut doc, &["vault:missing/path".to_owned()]).await.unwrap();
    assert_eq!(n, 1);
    assert!(doc.render().contains("sk-secret-value"));
    assert!(doc.render().contains("vault:missing/path"));
}

#[test]
fn settings_layering_and_validation() {
    let high = SettingsBuilder { kv_mount: Some("kv".into()), ..Default::default() };
    let low = SettingsBuilder {
        kv_mount: Some("ignored".into()),
        address: Some("https://a:1/".into()),
        token: Some("t".into()),
        ..Default::default()
    };
    let s = high.or(low).build().unwrap();
    assert_eq!(s.kv_mount, "kv");
    assert_eq!(s.address, "https://a:1");
    std::env::set_var("COFFER_TEST_ROLE_ID", "rid");
    let s = SettingsBuilder {
        auth_method: Some("approle".into()),
        role_id: Some("env:COFFER_TEST_ROLE_ID".into()),
        secret_id_file: Some("/x".into()),
        ..Default::default()
    }
    .build()
    .unwrap();
    match s.auth {
        AuthMethod::AppRole { role_id, .. } => assert_eq!(role_id.as_str(), "rid"),
        other => panic!("{other:?}"),
    }
    assert!(SettingsBuilder { auth_method: Some("approle".into()), ..Default::default() }.build().is_err());
    assert!(SettingsBuilder {
        auth_method: Some("ldap".into()),
        token: Some("t".into()),
        ..Default::default()
    }
    .build()
    .is_err());
    assert!(SettingsBuilder { token: Some("vault:x".into()), ..Default::default() }.build().is_err());
}

/// S26: a document cannot send the operator's token (environment or token file) to another
/// address, nor turn TLS verification off; its own AppRole credentials may go to its own address.
#[test]
fn document_cannot_redirect_the_operators_token() {
    let b = |pairs: &[(&str, &str)]| {
        let mut s = SettingsBuilder::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "address" => s.address = v,
                "token" => s.token = v,
                "auth_method" => s.auth_method = v,
                "role_id" => s.role_id = v,
                "secret_id_file" => s.secret_id_file = v,
                "skip_verify" => s.skip_verify = v.map(|v| v == "true"),
                other => panic!("{other}"),
            }
        }
        s
    };
    let layers = |caller: &[(&str, &str)], document: &[(&str, &str)], env: &[(&str, &str)]| Layers {
        caller: b(caller),
        document: b(document),
        env: b(env),
    };
    let env_token = [("address", "https://vault.internal:8200"), ("token", "hvs.operator")];
    let evil = [("address", "http://attacker:8200")];
    let refused = |l: Layers| {
        let e = l.build().unwrap_err();
        assert_eq!(e.reference, "setting address");
        let text = e.to_string();
        assert!(text.contains("http://attacker:8200") && text.contains("own AppRole credentials"), "{text}");
        assert!(!text.contains("hvs.operator"), "{text}");
    };
    // Another address with the environment's token, or with the token file (default address).
    refused(layers(&[], &evil, &env_token));
    refused(layers(&[], &evil, &[("token", "hvs.operator")]));
    // Its own token, or AppRole credentials borrowed from the environment, are refused too.
    refused(layers(&[], &[evil[0], ("token", "hvs.document")], &env_token));
    refused(layers(
        &[],
        &[evil[0], ("auth_method", "approle")],
        &[env_token[0], ("role_id", "rid"), ("secret_id_file", "/run/sid")],
    ));
    refused(layers(
        &[],
        &[evil[0], ("role_id", "rid"), ("secret_id_file", "/x"), ("auth_method", "token")],
        &env_token,
    ));

    // The same address as the environment's (trailing slash or not) keeps the token.
    let s = layers(&[], &[("address", "https://vault.internal:8200/")], &env_token).build().unwrap();
    assert!(matches!(s.auth, AuthMethod::Token(ref t) if t.as_str() == "hvs.operator"));
    // An address on the command line wins over the document's, and the token goes there.
    let s = layers(&[("address", "https://cli:8200")], &evil, &env_token).build().unwrap();
    assert_eq!(s.address, "https://cli:8200");
    assert!(matches!(s.auth, AuthMethod::Token(_)));
    // The document's own AppRole credentials go to its own address; the token stays home.
    let own = [evil[0], ("role_id", "doc-rid"), ("secret_id_file", "/run/doc-sid")];
    let s = layers(&[], &own, &[env_token[0], env_token[1], ("auth_method", "token")]).build().unwrap();
    assert_eq!(s.address, "http://attacker:8200");
    match s.auth {
        AuthMethod::AppRole { role_id, secret_id_file, .. } => {
            assert_eq!((role_id.as_str(), secret_id_file.to_str()), ("doc-rid", Some("/run/doc-sid")));
        }
        other => panic!("{other:?}"),
    }

    // Nor may "its own" credentials be the operator's token under another name.
    let dir = tempfile::tempdir().unwrap();
    let token_copy = dir.path().join("sid");
    std::fs::write(&token_copy, "hvs.operator\n").unwrap();
    for doc in [
        vec![evil[0], ("role_id", "hvs.operator"), ("secret_id_file", "/run/doc-sid")],
        vec![evil[0], ("role_id", "doc-rid"), ("secret_id_file", token_copy.to_str().unwrap())],
    ] {
        let e = layers(&[], &doc, &env_token).build().unwrap_err();
        assert_eq!(e.reference, "setting role_id");
        assert!(e.to_string().contains("operator's token") && !e.to_string().contains("hvs.operator"), "{e}");
    }

    // skip_verify from the document only when the operator allows it too.
    let e = layers(&[], &[("skip_verify", "true")], &env_token).build().unwrap_err();
    assert_eq!(e.reference, "setting skip_verify");
    assert!(e.to_string().contains("-tls-skip-verify"), "{e}");
    let s = layers(&[("skip_verify", "true")], &[("skip_verify", "true")], &env_token).build().unwrap();
    assert!(s.skip_verify);
    let env_skips = [env_token[0], env_token[1], ("skip_verify", "true")];
    assert!(layers(&[], &[("skip_verify", "true")], &env_skips).build().unwrap().skip_verify);
    assert!(!layers(&[], &[("skip_verify", "false")], &env_token).build().unwrap().skip_verify);
}

/// A server for the AppRole flow: counts logins and renewals; renewal can be refused.
#[derive(Default)]
struct AuthFake {
    logins: Mutex<u32>,
    renewals: Mutex<u32>,
    refuse_renewal: bool,
}

#[async_trait]
impl Transport for AuthFake {
    async fn request(&self, call: ApiCall<'_>) -> Result<(u16, Value), TransportError> {
        let ApiCall { method, path, body, .. } = call;
        match (method, path) {
            ("POST", "auth/approle/login") => {
                let b = body.unwrap_or_default();
                assert_eq!(b["role_id"], "rid");
                assert_eq!(b["secret_id"], "sid-from-file");
                let mut n = self.logins.lock().unwrap();
                *n += 1;
                Ok((
                    200,
                    json!({"auth": {"client_token": format!("t{n}"), "lease_duration": 1, "renewable": true}}),
                ))
            }
            ("POST", "auth/token/renew-self") => {
                *self.renewals.lock().unwrap() += 1;
                if self.refuse_renewal {
                    Ok((400, json!({"errors": ["lease is not renewable"]})))
                } else {
                    Ok((200, json!({"auth": {"lease_duration": 3600, "renewable": true}})))
                }
            }
            _ => Ok((404, json!({"errors": []}))),
        }
    }
}

async fn approle_resolver(refuse_renewal: bool) -> (Resolver, Arc<AuthFake>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sid = dir.path().join("sid");
    std::fs::write(&sid, "sid-from-file\n").unwrap();
    let settings = SettingsBuilder {
        address: Some("http://x".into()),
        auth_method: Some("approle".into()),
        role_id: Some("rid".into()),
        secret_id_file: Some(sid.display().to_string()),
        ..Default::default()
    }
    .build()
    .unwrap();
    let fake = Arc::new(AuthFake { refuse_renewal, ..Default::default() });
    (Resolver::with_transport(settings, fake.clone()), fake, dir)
}

#[tokio::test]
async fn approle_token_is_renewed_before_expiry() {
    let (r, fake, _dir) = approle_resolver(false).await;
    assert_eq!(r.token().await.unwrap().as_str(), "t1");
    // The lease (1 s) is due for renewal at once (two thirds of it has passed).
    assert_eq!(r.token().await.unwrap().as_str(), "t1");
    assert_eq!((*fake.logins.lock().unwrap(), *fake.renewals.lock().unwrap()), (1, 1));
    // Renewed to an hour: no more renewals for now.
    r.token().await.unwrap();
    assert_eq!(*fake.renewals.lock().unwrap(), 1);
}

#[tokio::test]
async fn refused_renewal_logs_in_again() {
    let (r, fake, _dir) = approle_resolver(true).await;
    assert_eq!(r.token().await.unwrap().as_str(), "t1");
    assert_eq!(r.token().await.unwrap().as_str(), "t2", "a refused renewal leads to a new login");
    assert_eq!((*fake.logins.lock().unwrap(), *fake.renewals.lock().unwrap()), (2, 1));
}
