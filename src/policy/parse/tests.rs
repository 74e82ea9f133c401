//! Parser tests: Vault's grammar, checks and error texts.

use std::collections::BTreeMap;

use super::*;
use crate::policy::model::PathPattern;
use serde_json::json;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn p(text: &str) -> Policy {
    parse(text, NOW).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn err(text: &str) -> String {
    parse(text, NOW).expect_err(text).to_string()
}

fn one(text: &str) -> PathRule {
    let mut pol = p(text);
    assert_eq!(pol.paths.len(), 1, "{text}");
    pol.paths.remove(0)
}

#[test]
fn capabilities_block() {
    let r = one(
        r#"path "secret/data/app/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }"#,
    );
    assert_eq!(r.raw_path, "secret/data/app/*");
    assert_eq!(r.pattern, PathPattern::Prefix("secret/data/app/".into()));
    assert_eq!(r.capabilities.names(), vec!["create", "delete", "list", "patch", "read", "update"]);
}

#[test]
fn every_capability_name() {
    let r = one(
        r#"path "a" { capabilities = ["create","read","update","patch","delete","list","sudo","scan"] }"#,
    );
    assert_eq!(
        r.capabilities.names(),
        vec!["create", "delete", "list", "patch", "read", "scan", "sudo", "update"]
    );
}

#[test]
fn json_documents() {
    let r = one(r#"{"path": {"secret/data/x": {"capabilities": ["read"]}}}"#);
    assert_eq!(r.pattern, PathPattern::Exact("secret/data/x".into()));
    assert_eq!(r.capabilities, Caps::READ);
    let pol = p(r#"{"name":"n","path":[{"a":{"capabilities":["read"]}},{"b":{"capabilities":["list"]}}]}"#);
    assert_eq!(pol.paths.len(), 2);
    assert_eq!(pol.paths[1].capabilities, Caps::LIST);
    let pol = p(r#"{"path": {"a": [{"capabilities":["read"]}, {"capabilities":["list"]}]}}"#);
    assert_eq!(pol.paths.len(), 2);
    let r = one(r#"  {"path": {"a": {"policy": "write", "allowed_parameters": {"K": ["v", 1, true]}}}}"#);
    assert_eq!(r.capabilities.names(), vec!["create", "delete", "list", "read", "update"]);
    assert_eq!(
        r.allowed_parameters,
        Some(BTreeMap::from([("k".to_owned(), vec![json!("v"), json!(1), json!(true)])]))
    );
}

#[test]
fn legacy_policy_shorthand() {
    assert_eq!(one(r#"path "a" { policy = "deny" }"#).capabilities, Caps::DENY);
    assert_eq!(one(r#"path "a" { policy = "read" }"#).capabilities.names(), vec!["list", "read"]);
    assert_eq!(
        one(r#"path "a" { policy = "write" }"#).capabilities.names(),
        vec!["create", "delete", "list", "read", "update"]
    );
    assert_eq!(
        one(r#"path "a" { policy = "sudo" }"#).capabilities.names(),
        vec!["create", "delete", "list", "read", "sudo", "update"]
    );
    // `deny` replaces capabilities; the others add to them.
    assert_eq!(
        one("path \"a\" {\n policy = \"deny\"\n capabilities = [\"read\"]\n}").capabilities,
        Caps::DENY
    );
    assert_eq!(
        one("path \"a\" {\n policy = \"read\"\n capabilities = [\"patch\"]\n}").capabilities.names(),
        vec!["list", "patch", "read"]
    );
    assert_eq!(
        err(r#"path "a" { policy = "nope" }"#),
        r#"failed to parse policy: path "a": path "a": invalid policy "nope""#
    );
    assert_eq!(
        err("path \"a\" {\n policy = \"read\"\n capabilities = [\"bogus\"]\n}"),
        r#"failed to parse policy: path "a": path "a": invalid capability "bogus""#
    );
}

#[test]
fn deny_short_circuits_like_vault() {
    // Vault stops at `deny`: a later invalid capability and other keys are not examined.
    let r = one(r#"path "a" { capabilities = ["read", "deny", "bogus"] }"#);
    assert_eq!(r.capabilities, Caps::DENY);
    let r = one("path \"a\" {\n capabilities = [\"deny\"]\n allowed_parameters = { x = [] }\n min_wrapping_ttl = \"1h\"\n max_wrapping_ttl = \"1m\"\n}");
    assert_eq!(r.capabilities, Caps::DENY);
    assert_eq!(r.allowed_parameters, None);
    assert_eq!(r.min_wrapping_ttl_ns, 0);
}

#[test]
fn all_keys() {
    let r = one(r#"path "a" {
  capabilities = ["read", "list"]
  allowed_parameters = {
"Foo" = []
"bar" = ["x*", 1, true]
  }
  denied_parameters = {
"*" = []
  }
  min_wrapping_ttl = 60
  max_wrapping_ttl = "1h"
  required_parameters = ["q"]
  mfa_methods = ["m"]
  pagination_limit = 5
  comment = "hi"
  expiration = "2099-01-01T00:00:00Z"
  list_scan_response_keys_filter_path = "{{ .path }}"
  control_group {
factor "ops" {
  identity {
    group_names = ["managers"]
    approvals = 1
  }
}
  }
}"#);
    let allowed = r.allowed_parameters.clone().unwrap();
    assert_eq!(allowed["foo"], Vec::<Value>::new());
    assert_eq!(allowed["bar"], vec![json!("x*"), json!(1), json!(true)]);
    assert_eq!(r.denied_parameters.clone().unwrap()["*"], Vec::<Value>::new());
    assert_eq!(r.min_wrapping_ttl_ns, 60_000_000_000);
    assert_eq!(r.max_wrapping_ttl_ns, 3_600_000_000_000);
    assert_eq!(r.required_parameters, vec!["q"]);
    assert_eq!(r.mfa_methods, vec!["m"]);
    assert_eq!(r.pagination_limit, 5);
    assert_eq!(r.expiration, Some(datetime!(2099-01-01 00:00 UTC)));
    assert_eq!(r.response_keys_filter_path.as_deref(), Some("{{ .path }}"));
    assert!(r.control_group.is_some());
}

#[test]
fn block_forms_of_parameter_maps() {
    let r =
        one("path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters {\n x = []\n Y = [\"v\"]\n }\n}");
    assert_eq!(r.allowed_parameters.unwrap().keys().collect::<Vec<_>>(), vec!["x", "y"]);
}

#[test]
fn wrapping_ttl_forms() {
    assert_eq!(one(r#"path "a" { min_wrapping_ttl = "1.5s" }"#).min_wrapping_ttl_ns, 1_500_000_000);
    assert_eq!(one(r#"path "a" { min_wrapping_ttl = "90" }"#).min_wrapping_ttl_ns, 90_000_000_000);
    assert_eq!(one(r#"path "a" { min_wrapping_ttl = "-5s" }"#).min_wrapping_ttl_ns, -5_000_000_000);
    assert_eq!(one(r#"path "a" { min_wrapping_ttl = -5 }"#).min_wrapping_ttl_ns, -5_000_000_000);
    assert_eq!(
        err(r#"path "a" { min_wrapping_ttl = "abc" }"#),
        r#"failed to parse policy: path "a": error parsing min_wrapping_ttl: time: invalid duration "abc""#
    );
    assert_eq!(
        err(r#"path "a" { max_wrapping_ttl = true }"#),
        r#"failed to parse policy: path "a": error parsing max_wrapping_ttl: could not parse duration from input"#
    );
    assert_eq!(
        err("path \"a\" {\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}"),
        r#"failed to parse policy: path "a": max_wrapping_ttl cannot be less than min_wrapping_ttl"#
    );
}

#[test]
fn patterns() {
    let pat = |s: &str| one(&format!("path \"{s}\" {{ capabilities = [\"read\"] }}")).pattern;
    assert_eq!(pat("/secret/x"), PathPattern::Exact("secret/x".into()));
    assert_eq!(pat("//secret/x"), PathPattern::Exact("/secret/x".into()), "only one / is stripped");
    assert_eq!(pat("secret/*"), PathPattern::Prefix("secret/".into()));
    assert_eq!(pat("*"), PathPattern::Prefix("".into()));
    assert_eq!(pat("secret/a*b"), PathPattern::Exact("secret/a*b".into()), "inner * is literal");
    assert_eq!(pat("secret/+/config"), PathPattern::Segments { pattern: "secret/+/config".into() });
    assert_eq!(pat("+/x"), PathPattern::Segments { pattern: "+/x".into() });
    assert_eq!(pat("+"), PathPattern::Segments { pattern: "+".into() });
    assert_eq!(pat("a/+/b*"), PathPattern::Segments { pattern: "a/+/b*".into() });
    assert_eq!(pat("a+/b"), PathPattern::Exact("a+/b".into()), "+ inside a segment is literal");
    assert_eq!(
        pat("identity/entity/id/{{identity.entity.id}}"),
        PathPattern::Templated("identity/entity/id/{{identity.entity.id}}".into())
    );
}

#[test]
fn plus_star_is_forbidden() {
    assert_eq!(
        err(r#"path "a+*" { capabilities = ["read"] }"#),
        r#"failed to parse policy: path "a+*": path "a+*": invalid use of wildcards ('+*' is forbidden)"#
    );
    assert_eq!(
        err(r#"path "/x/+*" { policy = "read" }"#),
        r#"failed to parse policy: path "/x/+*": path "x/+*": invalid use of wildcards ('+*' is forbidden)"#
    );
}

#[test]
fn invalid_capability() {
    assert_eq!(
        err(r#"path "a" { capabilities = ["foo"] }"#),
        r#"failed to parse policy: path "a": path "a": invalid capability "foo""#
    );
    assert_eq!(
        err(r#"path "a" { capabilities = ["Read"] }"#),
        r#"failed to parse policy: path "a": path "a": invalid capability "Read""#
    );
    assert_eq!(
        err(r#"path "a" { capabilities = [1] }"#),
        r#"failed to parse policy: path "a": path "a": invalid capability "1""#
    );
    assert_eq!(
        err("path \"a\" { capabilities = [\"read\"] }\npath \"b\" { capabilities = [\"bad\"] }"),
        r#"failed to parse policy: path "b": path "b": invalid capability "bad""#
    );
    assert_eq!(
        err(r#"{"path":{"a":{"capabilities":["rxead"]}}}"#),
        r#"failed to parse policy: path "a": path "a": invalid capability "rxead""#
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        err("\n\npath \"a\" {\n capabilities=[\"read\"]\n\n bogus = 1\n}\n"),
        "failed to parse policy: path \"a\": 1 error occurred:\n\t* invalid key \"bogus\" on line 6\n\n"
    );
    assert_eq!(
        err("path \"a\" {\n capabilities=[\"read\"]\n bogus = 1\n other = 2\n}\n"),
        "failed to parse policy: path \"a\": 2 errors occurred:\n\t* invalid key \"bogus\" on line 3\n\t* invalid key \"other\" on line 4\n\n"
    );
    assert_eq!(
        err("\n\nbogus = 1\n"),
        "failed to parse policy: 1 error occurred:\n\t* invalid key \"bogus\" on line 3\n\n"
    );
    assert_eq!(
        err("\n\nbogus \"x\" {\n}\n"),
        "failed to parse policy: 1 error occurred:\n\t* invalid key \"bogus\" on line 0\n\n"
    );
    assert_eq!(
        err("{\n\"path\": {\n\"a\": {\n\"bogus\": 1}}}"),
        "failed to parse policy: path \"a\": 1 error occurred:\n\t* invalid key \"bogus\" on line 4\n\n"
    );
    assert_eq!(
        err(r#"{"foo":1}"#),
        "failed to parse policy: 1 error occurred:\n\t* invalid key \"foo\" on line 1\n\n"
    );
    // `path = {...}` is a stanza for the path "path" in Vault, so "a" is an unknown key.
    assert_eq!(
        err(r#"path = { "a" = { capabilities = ["read"] } }"#),
        "failed to parse policy: path \"path\": 1 error occurred:\n\t* invalid key \"a\" on line 1\n\n"
    );
}

#[test]
fn type_errors() {
    assert_eq!(
        err(r#"path "a" { capabilities = "read" }"#),
        r#"failed to parse policy: path "a": path "a": capabilities: expected a list of strings"#
    );
    assert_eq!(
        err(r#"path "a" { allowed_parameters = { "x" = "y" } }"#),
        r#"failed to parse policy: path "a": path "a": allowed_parameters: expected an object of lists"#
    );
    assert_eq!(
        err(r#"path "a" { required_parameters = "y" }"#),
        r#"failed to parse policy: path "a": path "a": required_parameters: expected a list of strings"#
    );
    assert_eq!(
        err(r#"path "a" { pagination_limit = "x" }"#),
        r#"failed to parse policy: path "a": path "a": strconv.ParseInt: parsing "x": invalid syntax"#
    );
    assert_eq!(
        err(r#"{"path": "a"}"#),
        "failed to parse policy: line 1: path must be an object of paths, not a string"
    );
}

#[test]
fn expiration() {
    // An expired stanza is dropped before its other keys are validated (as in OpenBao).
    assert!(p("path \"a\" {\n expiration = \"2001-01-01T00:00:00Z\"\n capabilities = [\"bogus\"]\n}")
        .paths
        .is_empty());
    assert_eq!(
        err(r#"path "a" { expiration = "tomorrow" }"#),
        r#"failed to parse policy: path "a": path "a": invalid expiration time: could not parse string as date and time"#
    );
    assert_eq!(
        one(r#"path "a" { expiration = "4102444800" }"#).expiration,
        Some(datetime!(2100-01-01 00:00 UTC))
    );
}

#[test]
fn filter_path_needs_list() {
    assert_eq!(
        err("path \"a\" {\n capabilities = [\"read\"]\n list_scan_response_keys_filter_path = \"x\"\n}"),
        "failed to parse policy: path \"a\": list_scan_response_keys_filter_path needs to be used on a path with the list capability"
    );
}

#[test]
fn control_group_needs_a_factor() {
    assert_eq!(
        err(r#"path "a" { control_group = { ttl = "4h" } }"#),
        "failed to parse policy: path \"a\": error handling control_group: 1 error occurred:\n\t* requires at least one factor but had none\n\n"
    );
}

#[test]
fn degenerate_documents() {
    assert!(p("# just a comment").paths.is_empty());
    assert!(p("").paths.is_empty());
    assert_eq!(one(r#"path "a" { }"#).capabilities, Caps::NONE);
    assert_eq!(one(r#"path "a" { capabilities = [] }"#).capabilities, Caps::NONE);
    assert_eq!(p("name = \"zz\"\npath \"a\" { capabilities = [\"read\"] }").paths.len(), 1);
    // Repeated stanzas are kept (the ACL merges them).
    assert_eq!(
        p("path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }").paths.len(),
        2
    );
    // Extra labels are ignored, as HCL v1 does; no label means the path "path".
    assert_eq!(one(r#"path "b" "c" { capabilities = ["read"] }"#).raw_path, "b");
    assert_eq!(one("path {\n capabilities = [\"read\"]\n}").raw_path, "path");
}

#[test]
fn syntax_errors() {
    assert!(err(r#"path "a" { capabilities = ["read"] "#).starts_with("failed to parse policy: "));
    assert!(err("{\"path\": ").starts_with("failed to parse policy: "));
    assert!(err(r#"path "a" { capabilities = ["${var.x}"] }"#).contains("string template"));
    assert!(err(r#"path "a" { capabilities = upper("x") }"#).starts_with("failed to parse policy: "));
    assert!(err("[1]").starts_with("failed to parse policy: "));
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    for open in ["[", "{", "("] {
        let close = match open {
            "[" => "]",
            "{" => "}",
            _ => ")",
        };
        let text =
            format!("path \"a\" {{ capabilities = {}{} }}", open.repeat(100_000), close.repeat(100_000));
        assert_eq!(err(&text), "failed to parse policy: nesting deeper than 32 levels");
    }
    let json = format!("{{\"path\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(err(&json), "failed to parse policy: nesting deeper than 32 levels");
    // Brackets inside strings do not count, escaped quotes do not end a string.
    let text = format!("path \"{}\\\"{}\" {{ capabilities = [\"read\"] }}", "{".repeat(100), "[".repeat(100));
    assert_eq!(p(&text).paths.len(), 1);
    // The limit itself is fine.
    let ok = format!(
        "path \"a\" {{ allowed_parameters = {{ k = {}{} }} }}",
        "[".repeat(MAX_DEPTH - 2),
        "]".repeat(MAX_DEPTH - 2)
    );
    assert_eq!(p(&ok).paths.len(), 1);
}

#[test]
fn caps_helpers() {
    assert_eq!(Caps::from_name("sudo"), Some(Caps::SUDO));
    assert_eq!(Caps::from_name("root"), None);
    let c = Caps::READ | Caps::LIST;
    assert!(c.contains(Caps::READ) && !c.contains(Caps::UPDATE) && c.intersects(Caps::LIST | Caps::SUDO));
    assert_eq!(c.iter().collect::<Vec<_>>(), vec![Caps::LIST, Caps::READ]);
    assert_eq!(format!("{c:?}"), r#"Caps["list", "read"]"#);
}
