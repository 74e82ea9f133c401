//! `k=v` arguments of `write`, `kv put` and friends, read the way the Vault CLI reads them:
//!
//! * `key=value` sets a string; a key given twice becomes a list;
//! * `key=@path` reads the value from a file, `key=-` from stdin;
//! * `-` alone reads a JSON object from stdin, `@path` alone a JSON object from a file; their
//!   keys merge with the others.
//!
//! Stdin can be consumed once per command.

use std::io::Read;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use super::usage;

/// [`parse`] with the process's stdin; a failure is a usage error, as the Vault CLI reports it.
pub fn parse_args(args: &[String]) -> anyhow::Result<Map<String, Value>> {
    parse(args, &mut std::io::stdin()).map_err(|e| usage(format!("Failed to parse K=V data: {e:#}")))
}

/// Query parameters from `k=v` arguments ([`parse_args`], then [`to_query`]).
pub fn query_args(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    Ok(to_query(&parse_args(args)?))
}

/// `(k, v)` pairs borrowed, as [`crate::client::Client`] takes query parameters.
pub fn borrow_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Repeated `-flag=k=v` values (`-options`, `-metadata`, ...) as a JSON object of strings;
/// `what` names the flag in the usage error.
pub fn flag_map(flags: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for flag in flags {
        let Some((k, v)) = flag.split_once('=') else {
            return Err(usage(format!("invalid {what} \"{flag}\": format must be key=value")));
        };
        m.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(m)
}

/// Parses `args` into a JSON object, reading `-` from `stdin`.
pub fn parse(args: &[String], stdin: &mut dyn Read) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut stdin_used = false;
    let mut read_stdin = |what: &str| -> anyhow::Result<String> {
        if stdin_used {
            bail!("stdin can only be used once ({what})");
        }
        stdin_used = true;
        let mut s = String::new();
        stdin.read_to_string(&mut s).context("cannot read stdin")?;
        Ok(s)
    };
    for arg in args {
        if arg == "-" {
            let text = read_stdin("-")?;
            merge_json(&mut out, &text, "stdin")?;
            continue;
        }
        if let Some(path) = arg.strip_prefix('@') {
            let text = std::fs::read_to_string(path).with_context(|| format!("error reading file {path}"))?;
            merge_json(&mut out, &text, path)?;
            continue;
        }
        let Some((key, raw)) = arg.split_once('=') else {
            bail!("invalid key/value pair \"{arg}\": format must be key=value");
        };
        if key.is_empty() {
            bail!("invalid key/value pair \"{arg}\": format must be key=value");
        }
        let value = if raw == "-" {
            read_stdin(key)?
        } else if let Some(path) = raw.strip_prefix('@') {
            std::fs::read_to_string(path).with_context(|| format!("error reading file {path}"))?
        } else {
            raw.to_owned()
        };
        insert(&mut out, key, Value::String(value));
    }
    Ok(out)
}

fn merge_json(out: &mut Map<String, Value>, text: &str, source: &str) -> anyhow::Result<()> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("failed to parse JSON from {source}"))?;
    let Value::Object(m) = v else { bail!("JSON from {source} must be an object") };
    for (k, v) in m {
        out.insert(k, v);
    }
    Ok(())
}

fn insert(out: &mut Map<String, Value>, key: &str, v: Value) {
    match out.get_mut(key) {
        None => {
            out.insert(key.to_owned(), v);
        }
        Some(Value::Array(a)) => a.push(v),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, v]);
        }
    }
}

/// Query parameters from `k=v` arguments (for `read` and `delete`): lists repeat the key.
pub fn to_query(m: &Map<String, Value>) -> Vec<(String, String)> {
    let mut q = Vec::new();
    for (k, v) in m {
        match v {
            Value::Array(a) => q.extend(a.iter().map(|x| (k.clone(), super::output::go_value(x)))),
            other => q.push((k.clone(), super::output::go_value(other))),
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn key_values() {
        let m = parse(&args(&["a=1", "b=x=y", "a=2", "a=3", "e="]), &mut std::io::empty()).unwrap();
        assert_eq!(Value::Object(m), json!({"a": ["1", "2", "3"], "b": "x=y", "e": ""}));
        assert!(parse(&args(&["novalue"]), &mut std::io::empty())
            .unwrap_err()
            .to_string()
            .contains("key=value"));
        assert!(parse(&args(&["=v"]), &mut std::io::empty()).is_err());
    }

    #[test]
    fn stdin_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.txt");
        std::fs::write(&f, "file-value\n").unwrap();
        let j = dir.path().join("d.json");
        std::fs::write(&j, r#"{"n": 5, "s": "t"}"#).unwrap();
        let m = parse(
            &args(&[&format!("k=@{}", f.display()), &format!("@{}", j.display()), "p=-"]),
            &mut "from-stdin".as_bytes(),
        )
        .unwrap();
        assert_eq!(Value::Object(m), json!({"k": "file-value\n", "n": 5, "s": "t", "p": "from-stdin"}));
        let m = parse(&args(&["-", "x=1"]), &mut r#"{"a": {"b": true}}"#.as_bytes()).unwrap();
        assert_eq!(Value::Object(m), json!({"a": {"b": true}, "x": "1"}));
        assert!(parse(&args(&["-", "y=-"]), &mut "{}".as_bytes()).is_err(), "stdin twice");
        assert!(parse(&args(&["-"]), &mut "[1]".as_bytes()).is_err(), "not an object");
        assert!(parse(&args(&["k=@/nonexistent/file"]), &mut std::io::empty()).is_err());
    }

    #[test]
    fn query() {
        let m = parse(&args(&["version=2", "v=a", "v=b"]), &mut std::io::empty()).unwrap();
        let mut q = to_query(&m);
        q.sort();
        assert_eq!(
            q,
            vec![("v".into(), "a".into()), ("v".into(), "b".into()), ("version".into(), "2".into())]
        );
    }
}
