//! The request and response entries a device writes: Vault's audit entry shape, with tokens,
//! accessors (with `hmac_accessor`), wrap tokens and every leaf of request and response data
//! hashed under the device's salt, unless the device has `log_raw`; list responses can be
//! elided to their key count.

use serde_json::{json, Value};

use super::Device;
use crate::audit::{auth_json, hash_tree, omit_empty, AuthInfo, RequestInfo};
use crate::util::timefmt::rfc3339_nano;

impl Device {
    /// A token-like value: hashed unless `log_raw` (empty stays empty).
    fn hashed(&self, s: &str) -> Value {
        if self.opts.log_raw || s.is_empty() {
            json!(s)
        } else {
            json!(self.hash(s))
        }
    }

    /// An accessor: hashed only with `hmac_accessor`.
    fn hashed_accessor(&self, s: &str) -> Value {
        if self.opts.hmac_accessor {
            self.hashed(s)
        } else {
            json!(s)
        }
    }

    /// Request or response data: every leaf hashed unless `log_raw`.
    fn hashed_tree(&self, v: &Value) -> Value {
        if self.opts.log_raw {
            v.clone()
        } else {
            hash_tree(&self.config.salt, v, &[])
        }
    }

    /// The `auth` section for the caller.
    fn auth(&self, a: Option<&AuthInfo>) -> Value {
        let Some(a) = a else { return Value::Null };
        let mut v = auth_json(a);
        v["client_token"] = self.hashed(&a.client_token);
        v["accessor"] = self.hashed_accessor(&a.accessor);
        if let Some(m) = &a.metadata {
            v["metadata"] = self.hashed_tree(&json!(m));
        }
        v
    }

    /// The `request` section.
    fn request(&self, r: &RequestInfo) -> Value {
        json!({
            "id": r.id,
            "operation": r.operation,
            "mount_point": r.mount_point,
            "mount_type": r.mount_type,
            "mount_accessor": r.mount_accessor,
            "client_token": self.hashed(&r.client_token),
            "client_token_accessor": self.hashed_accessor(&r.client_token_accessor),
            "namespace": {"id": "root"},
            "path": r.path,
            "data": r.data.as_ref().map(|d| self.hashed_tree(&Value::Object(d.clone()))),
            "remote_address": r.remote_address,
            "wrap_ttl": r.wrap_ttl,
            "headers": r.headers,
        })
    }

    /// The request entry for this device (hashed).
    pub fn request_line(&self, auth: Option<&AuthInfo>, req: &RequestInfo, error: &str) -> Value {
        omit_empty(json!({
            "time": rfc3339_nano(coffer_storage::clock::now()),
            "type": "request",
            "auth": self.auth(auth),
            "request": self.request(req),
            "error": error,
        }))
    }

    /// The response entry for this device (hashed). `resp` is the rendered envelope.
    pub fn response_line(
        &self,
        auth: Option<&AuthInfo>,
        req: &RequestInfo,
        resp: Option<&Value>,
        error: &str,
    ) -> Value {
        let response = resp.map(|r| {
            let mut data = r.get("data").cloned().unwrap_or(Value::Null);
            if self.opts.elide_list_responses {
                if let Some(keys) = data.get("keys").and_then(Value::as_array).map(|k| k.len()) {
                    data["keys"] = json!(keys);
                }
            }
            let mut out = json!({
                "mount_point": req.mount_point,
                "mount_type": req.mount_type,
                "mount_accessor": req.mount_accessor,
                "data": if data.is_null() { Value::Null } else { self.hashed_tree(&data) },
                "warnings": r.get("warnings").cloned().unwrap_or(Value::Null),
            });
            if let Some(a) = r.get("auth").filter(|a| !a.is_null()) {
                let mut a = a.clone();
                if let Some(t) = a.get("client_token").and_then(Value::as_str).map(str::to_owned) {
                    a["client_token"] = self.hashed(&t);
                }
                if let Some(t) = a.get("accessor").and_then(Value::as_str).map(str::to_owned) {
                    a["accessor"] = self.hashed_accessor(&t);
                }
                if let Some(m) = a.get("metadata").filter(|m| !m.is_null()).cloned() {
                    a["metadata"] = self.hashed_tree(&m);
                }
                out["auth"] = a;
            }
            if let Some(w) = r.get("wrap_info").filter(|w| !w.is_null()) {
                let mut w = w.clone();
                for k in ["token"] {
                    if let Some(t) = w.get(k).and_then(Value::as_str).map(str::to_owned) {
                        w[k] = self.hashed(&t);
                    }
                }
                for k in ["accessor", "wrapped_accessor"] {
                    if let Some(t) = w.get(k).and_then(Value::as_str).map(str::to_owned) {
                        w[k] = self.hashed_accessor(&t);
                    }
                }
                out["wrap_info"] = w;
            }
            out
        });
        omit_empty(json!({
            "time": rfc3339_nano(coffer_storage::clock::now()),
            "type": "response",
            "auth": self.auth(auth),
            "request": self.request(req),
            "response": response,
            "error": error,
        }))
    }
}
