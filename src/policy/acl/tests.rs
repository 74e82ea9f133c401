//! Unit tests of the ACL engine, and a property test against an independent reference model.

use serde_json::{json, Map, Value};
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::policy::parse::parse;

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn acl(policies: &[(&str, &str)]) -> Acl {
    let parsed: Vec<(String, Policy)> = policies
        .iter()
        .map(|(n, t)| (n.to_string(), parse(t, NOW).unwrap_or_else(|e| panic!("{t}: {e}"))))
        .collect();
    Acl::compile(parsed.iter().map(|(n, p)| (n.as_str(), p)), NOW)
}

fn one(text: &str) -> Acl {
    acl(&[("p", text)])
}

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn allowed(a: &Acl, op: Operation, path: &str) -> bool {
    a.check(op, path, &Map::new()).allowed
}

fn caps(a: &Acl, path: &str) -> Vec<String> {
    a.capabilities(path)
}

use Operation::{Create, Delete, List, Patch, Read, Update};

// --- matching (§4.3)

#[test]
fn exact_match_only_matches_itself() {
    let a = one(r#"path "secret/foo" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "secret/foo"));
    assert!(!allowed(&a, Read, "secret/foo/bar"));
    assert!(!allowed(&a, Read, "secret/fo"));
    assert!(!allowed(&a, Read, "secret/foo/"));
    assert!(allowed(&a, Read, "/secret/foo"), "leading slashes of the request path are ignored");
}

#[test]
fn glob_is_a_prefix_match() {
    // Vault docs: "secret/foo*" matches secret/foo, secret/foobar, secret/foo/bar.
    let a = one(r#"path "secret/foo*" { capabilities = ["read"] }"#);
    for p in ["secret/foo", "secret/foobar", "secret/foo/bar", "secret/foo/"] {
        assert!(allowed(&a, Read, p), "{p}");
    }
    assert!(!allowed(&a, Read, "secret/fo"));
    let a = one(r#"path "secret/*" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "secret/"));
    assert!(allowed(&a, Read, "secret/a/b/c"));
    assert!(!allowed(&a, Read, "secret"));
    let a = one(r#"path "*" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "anything/at/all"));
}

#[test]
fn inner_star_is_literal() {
    let a = one(r#"path "kv/a*b" { capabilities = ["update"] }"#);
    assert!(allowed(&a, Update, "kv/a*b"));
    assert!(!allowed(&a, Update, "kv/axb"));
}

#[test]
fn plus_matches_exactly_one_segment() {
    // Vault docs: "secret/+/teamb" matches secret/foo/teamb and secret/bar/teamb, not
    // secret/foo/bar/teamb.
    let a = one(r#"path "secret/+/teamb" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "secret/foo/teamb"));
    assert!(allowed(&a, Read, "secret/bar/teamb"));
    assert!(!allowed(&a, Read, "secret/foo/bar/teamb"));
    assert!(!allowed(&a, Read, "secret/teamb"));
    // Docs: "secret/+/+/teamb" matches secret/a/b/teamb.
    let a = one(r#"path "secret/+/+/teamb" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "secret/a/b/teamb"));
    assert!(!allowed(&a, Read, "secret/a/teamb"));
    // `+` and a trailing `*` together: "secret/+/teamb*" matches secret/a/teamb/x.
    let a = one(r#"path "secret/+/teamb*" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "secret/a/teamb"));
    assert!(allowed(&a, Read, "secret/a/teambravo"));
    assert!(allowed(&a, Read, "secret/a/teamb/x/y"));
    assert!(!allowed(&a, Read, "secret/a/team"));
    // A leading `+`.
    let a = one(r#"path "+/config" { capabilities = ["read"] }"#);
    assert!(allowed(&a, Read, "kv/config"));
    assert!(!allowed(&a, Read, "kv/x/config"));
    // `+` also matches an empty segment (Go's strings.Split), e.g. a trailing slash.
    let a = one(r#"path "m/+" { capabilities = ["list"] }"#);
    assert!(allowed(&a, List, "m/"));
    assert!(allowed(&a, List, "m/x/"), "retried without the trailing slash");
}

#[test]
fn exact_beats_wildcards() {
    let a = one(r#"
path "secret/*" { capabilities = ["read"] }
path "secret/+" { capabilities = ["read"] }
path "secret/super" { capabilities = ["deny"] }
"#);
    assert!(!allowed(&a, Read, "secret/super"));
    assert!(allowed(&a, Read, "secret/other"));
}

#[test]
fn longest_prefix_wins_and_does_not_fall_through() {
    let a = one(r#"
path "secret/*" { capabilities = ["read", "list"] }
path "secret/restricted/*" { capabilities = ["create"] }
"#);
    assert!(allowed(&a, Read, "secret/x"));
    assert!(allowed(&a, Create, "secret/restricted/x"));
    // The more specific stanza decides alone: no read from "secret/*".
    assert!(!allowed(&a, Read, "secret/restricted/x"));
}

#[test]
fn priority_first_wildcard_position() {
    // "foo/a*" is preferred over "foo/+" (first glob at 4 vs + at 4 → tie broken by prefix-ness?
    // No: '*' at index 5 in "foo/a*" is later than '+' at index 4).
    let a = one(r#"
path "foo/a*" { capabilities = ["read"] }
path "foo/+" { capabilities = ["update"] }
"#);
    assert!(allowed(&a, Read, "foo/ab"));
    assert!(!allowed(&a, Update, "foo/ab"));
    assert!(allowed(&a, Update, "foo/b"));
    // "foo/bar/+/baz" over "foo/+/bar/baz".
    let a = one(r#"
path "foo/bar/+/baz" { capabilities = ["read"] }
path "foo/+/+/baz" { capabilities = ["update"] }
"#);
    assert!(allowed(&a, Read, "foo/bar/x/baz") && !allowed(&a, Update, "foo/bar/x/baz"));
    assert!(allowed(&a, Update, "foo/qux/x/baz"));
}

#[test]
fn priority_non_prefix_over_prefix() {
    // "foo/+/bar" over "foo/+/ba*"; "foo/+" over "foo/*".
    let a = one(r#"
path "foo/+/bar" { capabilities = ["read"] }
path "foo/+/ba*" { capabilities = ["update"] }
path "x/+" { capabilities = ["read"] }
path "x/*" { capabilities = ["update"] }
"#);
    assert!(allowed(&a, Read, "foo/a/bar") && !allowed(&a, Update, "foo/a/bar"));
    assert!(allowed(&a, Update, "foo/a/baz"));
    assert!(allowed(&a, Read, "x/y") && !allowed(&a, Update, "x/y"));
    assert!(allowed(&a, Update, "x/y/z"));
}

#[test]
fn priority_fewer_plus_segments_then_length_then_lexicographic() {
    // Same first wildcard position (4), both non-prefix: fewer `+` wins.
    let a = one(r#"
path "foo/+/bar/baz" { capabilities = ["read"] }
path "foo/+/+/baz" { capabilities = ["update"] }
"#);
    assert!(allowed(&a, Read, "foo/a/bar/baz") && !allowed(&a, Update, "foo/a/bar/baz"));
    // Longer wins: "foo/+/bar/ba*" over "foo/+/bar/b*".
    let a = one(r#"
path "foo/+/bar/ba*" { capabilities = ["read"] }
path "foo/+/bar/b*" { capabilities = ["update"] }
"#);
    assert!(allowed(&a, Read, "foo/a/bar/baz") && !allowed(&a, Update, "foo/a/bar/baz"));
    assert!(allowed(&a, Update, "foo/a/bar/bz"));
    // Everything equal but the text: the lexicographically greater wins.
    let a = one(r#"
path "foo/+/a*" { capabilities = ["read"] }
path "foo/+/b*" { capabilities = ["update"] }
"#);
    assert!(allowed(&a, Read, "foo/x/ab"));
    assert!(allowed(&a, Update, "foo/x/bb"));
}

#[test]
fn prefix_rule_against_plus_rule() {
    // The prefix "secret/*" has its glob at 7, the `+` of "secret/+/x" is also at 7; the
    // non-prefix wins.
    let a = one(r#"
path "secret/*" { capabilities = ["deny"] }
path "secret/+/x" { capabilities = ["read"] }
"#);
    assert!(allowed(&a, Read, "secret/a/x"));
    assert!(!allowed(&a, Read, "secret/a/y"));
    // A longer prefix beats an earlier `+`.
    let a = one(r#"
path "secret/a/*" { capabilities = ["deny"] }
path "secret/+/x" { capabilities = ["read"] }
"#);
    assert!(!allowed(&a, Read, "secret/a/x"));
    assert!(allowed(&a, Read, "secret/b/x"));
}

#[test]
fn list_trailing_slash_rules() {
    // An exact pattern without the slash grants LIST on the path with it.
    let a = one(r#"path "secret/metadata/foo" { capabilities = ["list"] }"#);
    assert!(allowed(&a, List, "secret/metadata/foo/"));
    assert!(!allowed(&a, Read, "secret/metadata/foo/"));
    // The path as given is tried before the path without its slash (OpenBao 2.7.2).
    let a = one(r#"
path "s1/foo*" { capabilities = ["deny"] }
path "s1/foo/*" { capabilities = ["list", "read"] }
"#);
    assert!(allowed(&a, List, "s1/foo/"));
    assert_eq!(caps(&a, "s1/foo/"), vec!["list", "read"]);
    let a = one(r#"
path "s1/foo/*" { capabilities = ["deny"] }
path "s1/foo*" { capabilities = ["list"] }
"#);
    assert!(!allowed(&a, List, "s1/foo/"));
    // The exact-without-slash step comes before wildcards.
    let a = one(r#"
path "s1/foo" { capabilities = ["list"] }
path "s1/foo/*" { capabilities = ["deny"] }
"#);
    assert!(allowed(&a, List, "s1/foo/"));
    // Retry without the slash only when nothing matched with it.
    let a = one(r#"
path "s1/+" { capabilities = ["list"] }
path "s1/x/*" { capabilities = ["deny"] }
"#);
    assert!(allowed(&a, List, "s1/y/"));
    assert!(!allowed(&a, List, "s1/x/"));
    // Non-list operations never strip the slash.
    let a = one(r#"path "secret/foo" { capabilities = ["read"] }"#);
    assert!(!allowed(&a, Read, "secret/foo/"));
}

#[test]
fn operations_map_to_capabilities() {
    let all = one(r#"path "p" { capabilities = ["create","read","update","patch","delete","list"] }"#);
    for op in [Create, Read, Update, Patch, Delete, List] {
        assert!(allowed(&all, op, "p"), "{op}");
        let single = one(&format!("path \"p\" {{ capabilities = [\"{}\"] }}", op.as_str()));
        for other in [Create, Read, Update, Patch, Delete, List] {
            assert_eq!(allowed(&single, other, "p"), other == op, "{op} grants {other}?");
        }
    }
    let a = one(r#"path "p" { capabilities = ["sudo"] }"#);
    let d = a.check(Read, "p", &Map::new());
    assert!(!d.allowed && d.sudo, "sudo alone grants no operation");
}

// --- merging across policies

#[test]
fn capabilities_are_ored_and_deny_wins() {
    let a = acl(&[
        ("a", r#"path "secret/x" { capabilities = ["read"] }"#),
        ("b", r#"path "secret/x" { capabilities = ["update"] }"#),
    ]);
    assert!(allowed(&a, Read, "secret/x") && allowed(&a, Update, "secret/x"));
    let d = a.check(Update, "secret/x", &Map::new());
    assert_eq!(d.granting_policies, vec!["b"]);
    for order in [[0, 1], [1, 0]] {
        let texts = [
            ("grant", r#"path "secret/x" { capabilities = ["read", "sudo"] }"#),
            ("deny", r#"path "secret/x" { capabilities = ["deny"] }"#),
        ];
        let a = acl(&[texts[order[0]], texts[order[1]]]);
        let d = a.check(Read, "secret/x", &Map::new());
        assert!(!d.allowed && !d.sudo);
        assert_eq!(caps(&a, "secret/x"), vec!["deny"]);
    }
    // Deny applies to that pattern only: a deny on "secret/*" does not beat an exact grant.
    let a = acl(&[
        ("a", r#"path "secret/*" { capabilities = ["deny"] }"#),
        ("b", r#"path "secret/x" { capabilities = ["read"] }"#),
    ]);
    assert!(allowed(&a, Read, "secret/x"));
    assert!(!allowed(&a, Read, "secret/y"));
}

#[test]
fn granting_policies() {
    let a = acl(&[
        ("a", r#"path "k" { capabilities = ["read"] }"#),
        ("b", r#"path "k" { capabilities = ["read", "list"] }"#),
    ]);
    assert_eq!(a.check(Read, "k", &Map::new()).granting_policies, vec!["a", "b"]);
    assert_eq!(a.check(List, "k", &Map::new()).granting_policies, vec!["b"]);
    assert!(a.check(Update, "k", &Map::new()).granting_policies.is_empty());
    let r = Acl::root().check(Update, "anything", &Map::new());
    assert!(r.allowed && r.sudo && r.is_root);
    assert_eq!(r.granting_policies, vec!["root"]);
}

#[test]
fn parameter_maps_merge() {
    // Lists are concatenated; an empty list (any value) wins.
    let a = acl(&[
        ("a", "path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n k = [\"x\"]\n any = [\"1\"]\n }\n}"),
        ("b", "path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n k = [\"y\"]\n any = []\n }\n}"),
    ]);
    let ok = |v: Value| a.check(Update, "p", &data(v)).allowed;
    assert!(ok(json!({"k": "x"})) && ok(json!({"k": "y"})) && !ok(json!({"k": "z"})));
    assert!(ok(json!({"any": "whatever"})));
    assert!(!ok(json!({"other": 1})));
    // A policy without constraints merged with one with constraints: the constraints hold
    // (Vault's behaviour).
    let a = acl(&[
        ("a", r#"path "p" { capabilities = ["update"] }"#),
        ("b", "path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n k = []\n }\n}"),
    ]);
    assert!(!a.check(Update, "p", &data(json!({"other": 1}))).allowed);
    // Deny merged in drops parameter maps entirely (and denies).
    let a = acl(&[
        ("a", "path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n k = []\n }\n}"),
        ("b", r#"path "p" { capabilities = ["deny"] }"#),
    ]);
    assert!(!a.check(Update, "p", &data(json!({"k": 1}))).allowed);
    // Required parameters are united.
    let a = acl(&[
        ("a", "path \"p\" {\n capabilities = [\"update\"]\n required_parameters = [\"a\"]\n}"),
        ("b", "path \"p\" {\n capabilities = [\"update\"]\n required_parameters = [\"b\"]\n}"),
    ]);
    assert!(!a.check(Update, "p", &data(json!({"a": 1}))).allowed);
    assert!(a.check(Update, "p", &data(json!({"a": 1, "b": 2}))).allowed);
}

#[test]
fn wrapping_ttl_bounds_merge_to_the_smaller_non_zero() {
    let a = acl(&[
        ("a", "path \"p\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"10s\"\n max_wrapping_ttl = \"1h\"\n}"),
        ("b", "path \"p\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"20s\"\n max_wrapping_ttl = \"10m\"\n}"),
    ]);
    let check = |w: Option<u64>| a.check_request(Read, "p", &Map::new(), w).allowed;
    assert!(!check(None), "a stanza with bounds needs a wrapped request");
    assert!(!check(Some(9)));
    assert!(check(Some(10)));
    assert!(check(Some(600)));
    assert!(!check(Some(601)));
    let d = a.check_request(Read, "p", &Map::new(), Some(60));
    assert_eq!(d.min_wrapping_ttl, Some(Duration::from_secs(10)));
    assert_eq!(d.max_wrapping_ttl, Some(Duration::from_secs(600)));
    // Merging can produce max < min, which denies everything.
    let a = acl(&[
        ("a", "path \"p\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"1h\"\n}"),
        ("b", "path \"p\" {\n capabilities = [\"read\"]\n max_wrapping_ttl = \"1m\"\n}"),
    ]);
    for w in [None, Some(30), Some(3600)] {
        assert!(!a.check_request(Read, "p", &Map::new(), w).allowed);
    }
    // Only a minimum: any TTL at or above it.
    let a = one("path \"p\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = 60\n}");
    assert!(a.check_request(Read, "p", &Map::new(), Some(60)).allowed);
    assert!(!a.check(Read, "p", &Map::new()).allowed);
}

// --- parameter constraints (§4.2)

#[test]
fn required_parameters() {
    let a = one("path \"p\" {\n capabilities = [\"create\", \"read\", \"list\", \"delete\"]\n required_parameters = [\"Name\"]\n}");
    assert!(!a.check(Create, "p", &Map::new()).allowed);
    assert!(a.check(Create, "p", &data(json!({"name": "x"}))).allowed);
    assert!(!a.check(Create, "p", &data(json!({"Name": "x"}))).allowed, "the request key must be lower-case");
    assert!(!a.check(Read, "p", &Map::new()).allowed, "checked for reads too");
    assert!(a.check(List, "p", &Map::new()).allowed, "not checked for list");
    assert!(a.check(Delete, "p", &Map::new()).allowed, "not checked for delete");
}

#[test]
fn denied_parameters() {
    let a = one("path \"p\" {\n capabilities = [\"update\"]\n denied_parameters = {\n secret = []\n color = [\"red\", \"bl*\"]\n}\n}");
    let ok = |v: Value| a.check(Update, "p", &data(v)).allowed;
    assert!(ok(json!({})));
    assert!(ok(json!({"other": 1})));
    assert!(!ok(json!({"secret": "x"})));
    assert!(!ok(json!({"SECRET": "x"})), "request keys compared lower-case");
    assert!(!ok(json!({"color": "red"})));
    assert!(!ok(json!({"color": "blue"})));
    assert!(ok(json!({"color": "green"})));
    let a = one("path \"p\" {\n capabilities = [\"update\"]\n denied_parameters = {\n \"*\" = []\n}\n}");
    assert!(a.check(Update, "p", &Map::new()).allowed, "empty data is allowed");
    assert!(!a.check(Update, "p", &data(json!({"x": 1}))).allowed);
}

#[test]
fn allowed_parameters() {
    let a = one("path \"p\" {\n capabilities = [\"update\", \"list\"]\n allowed_parameters = {\n name = []\n env = [\"prod-*\", \"*-test\", \"*mid*\", \"dev\"]\n n = [1, true]\n}\n}");
    let ok = |v: Value| a.check(Update, "p", &data(v)).allowed;
    assert!(ok(json!({})));
    assert!(ok(json!({"name": "anything"})));
    assert!(ok(json!({"NAME": "anything"})));
    assert!(!ok(json!({"other": "x"})));
    assert!(ok(json!({"env": "prod-eu"})));
    assert!(ok(json!({"env": "x-test"})));
    assert!(ok(json!({"env": "amidb"})));
    assert!(ok(json!({"env": "dev"})));
    assert!(!ok(json!({"env": "devx"})));
    assert!(!ok(json!({"env": 5})));
    assert!(ok(json!({"n": 1})) && ok(json!({"n": true})) && !ok(json!({"n": 2})) && !ok(json!({"n": "1"})));
    assert!(a.check(List, "p", &data(json!({"other": 1}))).allowed, "not checked for list");
    // "*" allows any key, explicit keys still restrict their values.
    let a = one("path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n \"*\" = []\n env = [\"dev\"]\n}\n}");
    assert!(a.check(Update, "p", &data(json!({"x": 1}))).allowed);
    assert!(!a.check(Update, "p", &data(json!({"env": "prod"}))).allowed);
    let a = one("path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n \"*\" = []\n}\n}");
    assert!(a.check(Update, "p", &data(json!({"x": 1}))).allowed);
    // Denied parameters are checked before allowed ones.
    let a = one("path \"p\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n \"*\" = []\n}\n denied_parameters = {\n x = []\n}\n}");
    assert!(!a.check(Update, "p", &data(json!({"x": 1}))).allowed);
}

#[test]
fn glob_matching_like_vault() {
    assert!(glob_match("*", "*") && !glob_match("*", "x"), "a lone * is literal");
    assert!(glob_match("a*", "abc") && !glob_match("a*", "bac"));
    assert!(glob_match("*c", "abc") && !glob_match("*c", "cab"));
    assert!(glob_match("*b*", "abc") && !glob_match("*b*", "ac"));
    assert!(glob_match("abc", "abc") && !glob_match("abc", "abcd"));
    assert!(value_in_list(&json!(null), &[json!(null)]));
    assert!(!value_in_list(&json!(null), &[json!("x")]));
    assert!(value_in_list(&json!(1.0), &[json!(1.0)]));
    assert!(value_in_list(&json!(["a"]), &[json!(["a"])]));
    assert!(value_in_list(&json!("anything"), &[]));
}

#[test]
fn pagination_limit() {
    let a = one("path \"p/\" {\n capabilities = [\"list\"]\n pagination_limit = 10\n}");
    let ok = |v: Value| a.check(List, "p/", &data(v)).allowed;
    assert!(ok(json!({})));
    assert!(ok(json!({"limit": 10})) && ok(json!({"limit": "5"})) && ok(json!({"limit": "max"})));
    assert!(!ok(json!({"limit": 11})) && !ok(json!({"limit": "lots"})));
    let a = one("path \"p/\" {\n capabilities = [\"list\"]\n pagination_limit = 10\n required_parameters = [\"limit\"]\n}");
    assert!(!a.check(List, "p/", &Map::new()).allowed);
}

// --- capabilities and mount access

#[test]
fn capabilities_report() {
    let a = one(r#"
path "secret/foo/*" { capabilities = ["list", "read", "sudo"] }
path "secret/bar" { capabilities = ["deny"] }
path "secret/none" { capabilities = [] }
"#);
    assert_eq!(caps(&a, "secret/foo/x"), vec!["list", "read", "sudo"]);
    assert_eq!(caps(&a, "secret/bar"), vec!["deny"]);
    assert_eq!(caps(&a, "secret/none"), vec!["deny"]);
    assert_eq!(caps(&a, "elsewhere"), vec!["deny"]);
    assert_eq!(caps(&Acl::root(), "x"), vec!["root"]);
    assert_eq!(caps(&Acl::default(), "x"), vec!["deny"]);
    // LIST matching: an exact "secret/bar" rule also answers for "secret/bar/".
    assert_eq!(caps(&a, "secret/bar/"), vec!["deny"]);
}

#[test]
fn mount_access() {
    let check = |text: &str, mount: &str| one(text).has_mount_access(mount);
    assert!(check(r#"path "s1/+/q" { capabilities = ["read"] }"#, "s1/"));
    assert!(check(r#"path "s1/a/b" { capabilities = ["patch"] }"#, "s1/"));
    assert!(!check(
        "path \"s1/+/q\" { capabilities = [\"deny\"] }\npath \"s1\" { capabilities = [\"deny\"] }",
        "s1/"
    ));
    assert!(check(r#"path "s1*" { capabilities = ["read"] }"#, "s1/"));
    assert!(check(r#"path "s1" { capabilities = ["read"] }"#, "s1/"));
    assert!(check(r#"path "s1/" { capabilities = ["read"] }"#, "s1/"));
    assert!(check(r#"path "+/x" { capabilities = ["read"] }"#, "s1/"));
    assert!(check(r#"path "s1/deep/er*" { capabilities = ["read"] }"#, "s1/"));
    assert!(!check(r#"path "s2/x" { capabilities = ["read"] }"#, "s1/"));
    assert!(!check(r#"path "s1x/y" { capabilities = ["read"] }"#, "s1/"));
    assert!(check(r#"path "auth/+/login" { capabilities = ["update"] }"#, "auth/approle/"));
    assert!(!check(r#"path "auth/token/+" { capabilities = ["update"] }"#, "auth/approle/"));
    assert!(check(r#"path "auth/token/+" { capabilities = ["update"] }"#, "auth/token/"));
    assert!(check(r#"path "auth/token/+" { capabilities = ["update"] }"#, "auth/token"));
    assert!(!check(r#"path "s1/a" { capabilities = ["deny"] }"#, "s1/"));
    assert!(Acl::root().has_mount_access("anything/"));
    assert!(!Acl::default().has_mount_access("secret/"));
}

#[test]
fn expired_stanzas_and_templates_never_apply() {
    let text = "path \"p\" {\n capabilities = [\"read\"]\n expiration = \"2026-01-01T00:00:30Z\"\n}\npath \"{{identity.entity.id}}/x\" { capabilities = [\"read\"] }";
    let a = one(text);
    assert!(allowed(&a, Read, "p"));
    assert!(a.valid_at(NOW) && !a.valid_at(datetime!(2026-01-01 00:01 UTC)));
    let policy = parse(text, NOW).unwrap();
    let later = Acl::compile([("p", &policy)], datetime!(2026-01-01 00:01 UTC));
    assert!(!allowed(&later, Read, "p"));
    assert!(!allowed(&a, Read, "{{identity.entity.id}}/x"));
}

// --- property test against a reference model

mod model {
    //! A deliberately naive restatement of the matching rules of the contract (§4.3),
    //! independent of the engine: stanzas are strings, every pattern is tried against the path,
    //! and the winner is the maximum of a ranking tuple.

    use std::collections::BTreeMap;

    pub const NAMES: [&str; 8] = ["create", "delete", "deny", "list", "patch", "read", "sudo", "update"];

    /// Capabilities of one merged pattern, as a sorted set of names.
    pub type CapSet = std::collections::BTreeSet<&'static str>;

    fn plus_segments(pattern: &str) -> usize {
        pattern.split('/').filter(|s| *s == "+").count()
    }

    /// Does `pattern` (no leading `/`) match `path`?
    fn matches(pattern: &str, path: &str) -> bool {
        let glob = pattern.ends_with('*');
        let stem = if glob { &pattern[..pattern.len() - 1] } else { pattern };
        if plus_segments(pattern) == 0 {
            return if glob { path.starts_with(stem) } else { path == stem };
        }
        let want: Vec<&str> = stem.split('/').collect();
        let have: Vec<&str> = path.split('/').collect();
        if have.len() < want.len() || (!glob && have.len() != want.len()) {
            return false;
        }
        want.iter().enumerate().all(|(i, w)| {
            *w == "+" || *w == have[i] || (glob && i == want.len() - 1 && have[i].starts_with(w))
        })
    }

    fn is_wildcard(pattern: &str) -> bool {
        pattern.ends_with('*') || plus_segments(pattern) > 0
    }

    fn best_wildcard<'a>(merged: &'a BTreeMap<String, CapSet>, path: &str) -> Option<&'a CapSet> {
        merged
            .iter()
            .filter(|(p, _)| is_wildcard(p) && matches(p, path))
            .max_by_key(|(p, _)| {
                let stem = p.strip_suffix('*').unwrap_or(p);
                (
                    p.find(['+', '*']).unwrap_or(p.len()),
                    !p.ends_with('*'),
                    usize::MAX - plus_segments(p),
                    stem.len(),
                    stem.to_owned(),
                )
            })
            .map(|(_, c)| c)
    }

    /// Merges stanzas `(pattern as written, capabilities)` per pattern.
    pub fn merge(stanzas: &[(String, CapSet)]) -> BTreeMap<String, CapSet> {
        let mut merged: BTreeMap<String, CapSet> = BTreeMap::new();
        for (pattern, caps) in stanzas {
            let pattern = pattern.strip_prefix('/').unwrap_or(pattern).to_owned();
            let entry = merged.entry(pattern).or_default();
            entry.extend(caps.iter().copied());
            if entry.contains("deny") {
                *entry = CapSet::from(["deny"]);
            }
        }
        merged
    }

    /// The capabilities that decide for `path`.
    pub fn decide<'a>(merged: &'a BTreeMap<String, CapSet>, path: &str, list: bool) -> Option<&'a CapSet> {
        let path = path.trim_start_matches('/');
        let exact = |p: &str| merged.get(p).filter(|_| !is_wildcard(p));
        if let Some(c) = exact(path) {
            return Some(c);
        }
        let without = path.strip_suffix('/');
        if list {
            if let Some(c) = exact(without.unwrap_or(path)) {
                return Some(c);
            }
        }
        if let Some(c) = best_wildcard(merged, path) {
            return Some(c);
        }
        match (list, without) {
            (true, Some(w)) => best_wildcard(merged, w),
            _ => None,
        }
    }
}

mod property {
    use proptest::prelude::*;

    use super::model::{self, CapSet};
    use super::*;

    const PATTERN_SEGMENTS: [&str; 5] = ["a", "b", "ab", "+", "+"];
    const PATH_SEGMENTS: [&str; 6] = ["a", "b", "ab", "abc", "ba", "b+"];
    const OPS: [Operation; 6] = [Create, Delete, List, Patch, Read, Update];

    fn pattern() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::sample::select(&PATTERN_SEGMENTS[..]), 0..4),
            0u8..4,
            proptest::bool::weighted(0.15),
        )
            .prop_map(|(segs, glob, slash)| {
                let mut p = segs.join("/");
                match glob {
                    // Glob at the end of the last segment, unless that would make "+*".
                    1 if !p.ends_with('+') => p.push('*'),
                    2 if !p.is_empty() => p.push_str("/*"),
                    _ if p.is_empty() => p.push('*'),
                    _ => {}
                }
                if slash {
                    p.insert(0, '/');
                }
                p
            })
    }

    fn caps() -> impl Strategy<Value = CapSet> {
        (proptest::sample::subsequence(&model::NAMES[..], 0..=4), proptest::bool::weighted(0.15)).prop_map(
            |(names, deny)| {
                let mut set: CapSet = names.into_iter().filter(|n| *n != "deny").collect();
                if deny {
                    set.insert("deny");
                }
                set
            },
        )
    }

    fn request_path() -> impl Strategy<Value = String> {
        (proptest::collection::vec(proptest::sample::select(&PATH_SEGMENTS[..]), 1..5), any::<bool>())
            .prop_map(|(segs, slash)| {
                let mut p = segs.join("/");
                if slash {
                    p.push('/');
                }
                p
            })
    }

    fn policy_set() -> impl Strategy<Value = Vec<Vec<(String, CapSet)>>> {
        proptest::collection::vec(proptest::collection::vec((pattern(), caps()), 1..6), 1..4)
    }

    fn render(stanzas: &[(String, CapSet)]) -> String {
        stanzas
            .iter()
            .map(|(p, c)| {
                let list: Vec<String> = c.iter().map(|n| format!("\"{n}\"")).collect();
                format!("path \"{p}\" {{\n  capabilities = [{}]\n}}\n", list.join(", "))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// 16,000 policy sets × 8 (path, operation) pairs, each also checked for its
        /// capability list: 128,000 decisions compared with the model.
        #[test]
        fn engine_agrees_with_model(
            policies in policy_set(),
            requests in proptest::collection::vec((request_path(), proptest::sample::select(&OPS[..])), 8),
        ) {
            let texts: Vec<String> = policies.iter().map(|p| render(p)).collect();
            let named: Vec<(String, &str)> = texts.iter().enumerate().map(|(i, t)| (format!("p{i}"), t.as_str())).collect();
            let refs: Vec<(&str, &str)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
            let engine = acl(&refs);
            let all: Vec<(String, CapSet)> = policies.concat();
            let merged = model::merge(&all);
            for (path, op) in &requests {
                let decided = model::decide(&merged, path, *op == List);
                let expect_allowed = decided.is_some_and(|c| !c.contains("deny") && c.contains(op.as_str()));
                let expect_sudo = decided.is_some_and(|c| c.contains("sudo"));
                let d = engine.check(*op, path, &Map::new());
                prop_assert_eq!(d.allowed, expect_allowed, "{} {} with\n{}", op, path, texts.join("---\n"));
                prop_assert_eq!(d.sudo, expect_sudo, "sudo on {} with\n{}", path, texts.join("---\n"));
                let listed = model::decide(&merged, path, true);
                let expect_caps: Vec<String> = match listed {
                    Some(c) if !c.is_empty() && !c.contains("deny") => c.iter().map(|s| s.to_string()).collect(),
                    _ => vec!["deny".to_owned()],
                };
                prop_assert_eq!(engine.capabilities(path), expect_caps, "capabilities of {} with\n{}", path, texts.join("---\n"));
            }
        }
    }
}
