//! JSON merge patch (RFC 7396) and the value-stripping walk behind `subkeys`.

use serde_json::{Map, Value};

/// Applies `patch` to `target` in place: objects merge recursively, `null` removes a member,
/// anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Replaces every leaf (non-object value or empty object) with `null`. Objects below
/// `max_depth` levels are leaves too; `max_depth` 0 means no limit, a negative depth makes
/// every top-level key a leaf (as Vault does).
pub fn strip_values(data: &mut Map<String, Value>, max_depth: i64) {
    fn walk(m: &mut Map<String, Value>, depth: i64, max_depth: i64) {
        for v in m.values_mut() {
            let next = depth + 1;
            match v {
                Value::Object(inner) if !inner.is_empty() && (max_depth == 0 || next <= max_depth) => {
                    walk(inner, next, max_depth)
                }
                other => *other = Value::Null,
            }
        }
    }
    walk(data, 1, max_depth);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc7396_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [{"b": "c"}]});
        merge_patch(&mut t, &json!({"a": [1]}));
        assert_eq!(t, json!({"a": [1]}));
        let mut t = json!({"a": "foo"});
        merge_patch(&mut t, &json!({"b": {"c": null}}));
        assert_eq!(t, json!({"a": "foo", "b": {}}));
    }

    #[test]
    fn strips_to_depth() {
        let doc = json!({"a": 1, "b": {"c": 2, "d": {"e": 3, "f": {}}}, "g": [{"h": 1}]});
        let run = |depth| {
            let mut m = doc.as_object().cloned().unwrap();
            strip_values(&mut m, depth);
            Value::Object(m)
        };
        assert_eq!(run(0), json!({"a": null, "b": {"c": null, "d": {"e": null, "f": null}}, "g": null}));
        assert_eq!(run(1), json!({"a": null, "b": null, "g": null}));
        assert_eq!(run(2), json!({"a": null, "b": {"c": null, "d": null}, "g": null}));
        assert_eq!(run(-1), json!({"a": null, "b": null, "g": null}));
    }
}
