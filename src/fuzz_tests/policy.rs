//! `policy_parse`: policy documents through the parser and the compiled ACL.

use coffer_storage::fuzzing::{bytes_from, Structured};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use time::macros::datetime;
use time::OffsetDateTime;

use super::SUITE;
use crate::policy::parse::parse;
use crate::policy::{Acl, Caps, Operation, ParseError, Policy};

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

const DICT: &[&[u8]] = &[
    b"path",
    b"path \"",
    b"capabilities",
    b"capabilities = [",
    b"\"read\"",
    b"\"create\"",
    b"\"update\"",
    b"\"patch\"",
    b"\"delete\"",
    b"\"list\"",
    b"\"sudo\"",
    b"\"deny\"",
    b"\"scan\"",
    b"policy",
    b"\"write\"",
    b"allowed_parameters",
    b"denied_parameters",
    b"required_parameters",
    b"min_wrapping_ttl",
    b"max_wrapping_ttl",
    b"\"1h\"",
    b"\"-5s\"",
    b"\"99999999999h\"",
    b"expiration",
    b"\"2030-01-01T00:00:00Z\"",
    b"pagination_limit",
    b"list_scan_response_keys_filter_path",
    b"control_group",
    b"mfa_methods",
    b"\"*\"",
    b"\"+\"",
    b"+*",
    b"{{identity.entity.id}}",
    b"${var}",
    b"<<EOF\n",
    b"\nEOF\n",
    b"# comment\n",
    b"/* c */",
    b"//",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
];

/// Paths a compiled ACL is asked about, besides the document's own.
const PROBES: &[&str] = &["", "secret/data/x", "sys/mounts", "a/b/c", "auth/token/create", "+", "a/+/b"];

const OPS: [Operation; 6] = [
    Operation::Create,
    Operation::Delete,
    Operation::List,
    Operation::Patch,
    Operation::Read,
    Operation::Update,
];

/// What any parsed policy must survive: compiling, and every check on its own paths and the
/// probes.
fn exercise(policy: &Policy) {
    let acl = Acl::compile([("fuzz", policy)], NOW);
    let data: Map<String, Value> = json!({"k": "v", "n": 1}).as_object().cloned().unwrap_or_default();
    let own = policy.paths.iter().map(|r| r.raw_path.trim_start_matches('/').to_owned());
    for path in own.chain(PROBES.iter().map(|p| (*p).to_owned())) {
        for op in OPS {
            let d = acl.check_request(op, &path, &data, Some(60));
            assert!(!d.allowed || !d.capabilities.is_deny(), "deny allowed {op} on {path}");
        }
        let _ = acl.capabilities(&path);
        let _ = acl.has_mount_access(&path);
    }
}

fn check(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    match parse(&text, NOW) {
        Ok(policy) => {
            exercise(&policy);
            Ok(())
        }
        // Like Vault's, errors name the path, key, capability or setting at fault; a syntax
        // error names the position only and never echoes the source (a line may hold a
        // parameter value).
        Err(e @ ParseError::Syntax(_)) if e.to_string().contains(super::CANARY) => {
            Err(format!("a syntax error repeats the document's text: {e}"))
        }
        Err(_) => Ok(()),
    }
}

/// A document whose stanza holds the canary as a parameter value and is broken elsewhere.
fn broken_with_secret_parameter() -> impl Strategy<Value = String> {
    let c = super::CANARY;
    let params = select(vec![
        format!("allowed_parameters = {{ \"password\" = [\"{c}\"] }}"),
        format!("denied_parameters = {{ \"token\" = [\"x\", \"{c}\"] }}"),
        format!("allowed_parameters = {{ \"password\" = [\"{c}\", {{ a = 1 }}] }}"),
        format!("denied_parameters = {{ \"token\" = \"{c}\" }}"),
        format!("required_parameters = [\"{c}\", 3]"),
    ]);
    let breakage = select(vec![
        "capabilities = [\"read\", \"fly\"]",
        "capabilities = [\"read\"]\n  min_wrapping_ttl = \"soon\"",
        "capabilities = [\"read\"]\n  no_such_key = 1",
        "capabilities = \"read\"",
        "capabilities = [\"read\"]\n  max_wrapping_ttl = \"1s\"\n  min_wrapping_ttl = \"1h\"",
        "capabilities = [\"read\"\n",
        "capabilities = [\"read\"]\n  pagination_limit = \"many\"",
    ]);
    (params, breakage, any::<bool>()).prop_map(|(params, breakage, first)| {
        let body = if first { format!("{params}\n  {breakage}") } else { format!("{breakage}\n  {params}") };
        format!("path \"secret/data/app\" {{\n  {body}\n}}\n")
    })
}

/// A generated stanza: path and capability names.
fn stanza() -> impl Strategy<Value = (String, Vec<&'static str>)> {
    let names = ["create", "read", "update", "patch", "delete", "list", "sudo", "deny", "scan"];
    let segment = prop_oneof![4 => "[a-z0-9_-]{1,5}", 1 => Just("+".to_owned())];
    let path = (any::<bool>(), vec(segment, 1..4), any::<bool>()).prop_map(|(slash, segs, star)| {
        let mut p = if slash { "/".to_owned() } else { String::new() };
        p.push_str(&segs.join("/"));
        if star {
            p.push('*');
        }
        p
    });
    (path, proptest::sample::subsequence(names.to_vec(), 0..5))
}

fn render_hcl(stanzas: &[(String, Vec<&str>)]) -> String {
    let mut out = String::new();
    for (path, caps) in stanzas {
        let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        out.push_str(&format!("path \"{path}\" {{\n  capabilities = [{}]\n}}\n", caps.join(", ")));
    }
    out
}

fn render_json(stanzas: &[(String, Vec<&str>)]) -> String {
    let list: Vec<Value> = stanzas.iter().map(|(p, caps)| json!({ p: { "capabilities": caps } })).collect();
    json!({ "path": list }).to_string()
}

/// The capabilities a stanza must end with: a deny anywhere is a deny alone.
fn expected_caps(names: &[&str]) -> Caps {
    if names.contains(&"deny") {
        return Caps::DENY;
    }
    names.iter().filter_map(|n| Caps::from_name(n)).fold(Caps::NONE, |a, c| a | c)
}

#[test]
fn policy_parse() {
    let mut t = SUITE.target("policy_parse", 1500);
    t.replay(check);
    let n = t.cases();
    t.generate_n(n, bytes_from(t.seeds(), DICT), |b| check(b));
    // Generated documents: HCL and JSON renderings parse to the same stanzas, with the
    // capabilities they name.
    t.generate_n(n / 3, vec(stanza(), 0..6).prop_map(Structured), |Structured(stanzas)| {
        let hcl = parse(&render_hcl(stanzas), NOW);
        let json = parse(&render_json(stanzas), NOW);
        match (&hcl, &json) {
            (Ok(h), Ok(j)) => {
                if h != j {
                    return Err(format!("HCL and JSON differ:\n{h:?}\n{j:?}"));
                }
                let got: Vec<(&str, Caps)> =
                    h.paths.iter().map(|r| (r.raw_path.as_str(), r.capabilities)).collect();
                let want: Vec<(&str, Caps)> =
                    stanzas.iter().map(|(p, c)| (p.as_str(), expected_caps(c))).collect();
                if got != want {
                    return Err(format!("parsed {got:?}, wrote {want:?}"));
                }
                exercise(h);
                Ok(())
            }
            // The same refusal (`+*`), though HCL and JSON name different lines.
            (Err(_), Err(_)) => Ok(()),
            _ => Err(format!("HCL gave {hcl:?}, JSON gave {json:?}")),
        }
    });
    // Parameter values (the ones a policy may hold back from clients) never reach an error.
    t.generate_n(n / 10, broken_with_secret_parameter().prop_map(Structured), |Structured(doc)| match parse(
        doc, NOW,
    ) {
        Ok(_) => Err(format!("a broken document parsed: {doc}")),
        Err(e) if e.to_string().contains(super::CANARY) => {
            Err(format!("error repeats a parameter value: {e}"))
        }
        Err(_) => Ok(()),
    });
    t.finish();
}
