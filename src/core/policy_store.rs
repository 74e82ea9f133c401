//! Stored ACL policies and the cache of compiled ACLs.
//!
//! # Storage
//!
//! One record per policy at `acl/<name>` in the store's view (`sys/policy/`), the name
//! percent-encoded so that any name (`a/b`, `..`) is one flat key. The record is versioned and
//! keeps the submitted text exactly; it is parsed again when loaded, so what is enforced is
//! always what `GET` returns.
//!
//! # Names and built-ins
//!
//! Names are trimmed and lower-cased everywhere (a token's `Root` is `root`). `root` is never
//! stored: it is implicit, immutable and compiles to [`Acl::root`]. `default` is written on first
//! open with OpenBao 2.7.2's text; it can be edited but not deleted. `response-wrapping` is
//! built in, immutable, hidden from lists and cannot be given to tokens by users
//! ([`check_assignable`]). A policy that does not exist behaves as an empty one.
//!
//! # Cache
//!
//! Parsed policies and compiled ACLs (keyed by the sorted set of names) are cached. Every
//! change made through this store clears both and bumps a generation number; a reader only
//! inserts what it built if the generation did not move while it read storage, so a concurrent
//! change can never leave a stale entry behind. Changes replicated from another node must call
//! [`PolicyStore::invalidate`]. Both caches are bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use coffer_storage::{Batch, View};

use crate::core::error::{Error, Result};
use crate::policy::parse::parse;
use crate::policy::{Acl, Policy};

/// OpenBao 2.7.2's `default` policy, byte for byte.
pub const DEFAULT_POLICY: &str = include_str!("default_policy.hcl");

/// OpenBao 2.7.2's `response-wrapping` policy, byte for byte.
pub const RESPONSE_WRAPPING_POLICY: &str = include_str!("response_wrapping_policy.hcl");

/// Name of the internal policy of response-wrapping tokens.
pub const RESPONSE_WRAPPING: &str = "response-wrapping";

/// Format version of stored policy records.
pub const POLICY_RECORD_VERSION: u8 = 1;

/// How many parsed policies and compiled ACLs are kept before the caches are emptied.
const CACHE_LIMIT: usize = 1024;

/// Bytes kept as they are in storage keys; everything else is percent-encoded.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Vault's name normalisation: trimmed, lower-cased.
pub fn sanitize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Refuses policies users may not put on tokens (`response-wrapping`).
pub fn check_assignable(policies: &[String]) -> Result<()> {
    match policies.iter().find(|p| sanitize_name(p) == RESPONSE_WRAPPING) {
        Some(_) => Err(Error::bad(format!("cannot assign policy \"{RESPONSE_WRAPPING}\""))),
        None => Ok(()),
    }
}

fn storage_key(name: &str) -> String {
    format!("acl/{}", utf8_percent_encode(name, KEY_SET))
}

/// The stored form of a policy.
#[derive(Serialize, Deserialize)]
struct PolicyRecord {
    /// [`POLICY_RECORD_VERSION`].
    v: u8,
    name: String,
    /// The text as submitted (after base64 decoding, if it was encoded).
    raw: String,
    /// Number of writes, starting at 1.
    version: u64,
    /// Unix nanoseconds of the last write.
    modified_ns: i128,
}

/// A policy as stored (or built in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy {
    pub name: String,
    pub raw: String,
    /// Number of writes (0 for built-ins never written).
    pub version: u64,
    pub modified: Option<OffsetDateTime>,
}

/// What [`PolicyStore::set`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetOutcome {
    /// The normalised name the policy was stored under.
    pub name: String,
    /// True when the normalised name differs from the one given.
    pub renamed: bool,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    policies: HashMap<String, Option<Arc<Policy>>>,
    acls: HashMap<Vec<String>, Arc<Acl>>,
}

/// Stored policies over the view `sys/policy/`.
pub struct PolicyStore {
    view: View,
    cache: Mutex<Cache>,
    root: Arc<Acl>,
    response_wrapping: Arc<Policy>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyStore")
    }
}

fn decode_record(bytes: &[u8]) -> Result<PolicyRecord> {
    let r: PolicyRecord =
        serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("corrupt policy record: {e}")))?;
    if r.v != POLICY_RECORD_VERSION {
        return Err(Error::internal(format!("unsupported policy record version {}", r.v)));
    }
    Ok(r)
}

impl PolicyStore {
    /// Opens the store over its view, writing the `default` policy if it is missing.
    pub async fn open(view: View) -> Result<Self> {
        let response_wrapping = parse(RESPONSE_WRAPPING_POLICY, coffer_storage::clock::now())
            .map_err(|e| Error::internal(format!("built-in response-wrapping policy: {e}")))?;
        let store = Self {
            view,
            cache: Mutex::new(Cache::default()),
            root: Arc::new(Acl::root()),
            response_wrapping: Arc::new(response_wrapping),
        };
        let key = storage_key("default");
        if store.view.get(&key).await?.is_none() {
            let record = PolicyRecord {
                v: POLICY_RECORD_VERSION,
                name: "default".to_owned(),
                raw: DEFAULT_POLICY.to_owned(),
                version: 1,
                modified_ns: coffer_storage::clock::now().unix_timestamp_nanos(),
            };
            let batch = Batch::new().put(key.clone(), serde_json::to_vec(&record)?).require_absent(key);
            // `Ok(None)`: another node wrote it first.
            match store.view.try_apply(batch).await {
                Ok(_) => {}
                Err(e) => match Error::from(e) {
                    // A node that cannot write (a standby) leaves it to the active node; until
                    // then `default` behaves as empty, which only denies more.
                    Error::Unavailable(reason) => {
                        tracing::warn!(%reason, "default policy missing and not writable here")
                    }
                    other => return Err(other),
                },
            }
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every cached policy and ACL (call after a replicated change under `sys/policy/`).
    pub fn invalidate(&self) {
        let mut c = self.lock();
        c.generation = c.generation.wrapping_add(1);
        c.policies.clear();
        c.acls.clear();
    }

    /// Reads a policy; `root` and `response-wrapping` are answered without storage.
    pub async fn get(&self, name: &str) -> Result<Option<StoredPolicy>> {
        let name = sanitize_name(name);
        match name.as_str() {
            "root" => return Ok(Some(StoredPolicy { name, raw: String::new(), version: 0, modified: None })),
            RESPONSE_WRAPPING => {
                return Ok(Some(StoredPolicy {
                    name,
                    raw: RESPONSE_WRAPPING_POLICY.to_owned(),
                    version: 1,
                    modified: None,
                }))
            }
            _ => {}
        }
        let Some(entry) = self.view.get(&storage_key(&name)).await? else { return Ok(None) };
        let r = decode_record(&entry.value)?;
        Ok(Some(StoredPolicy {
            name: r.name,
            raw: r.raw,
            version: r.version,
            modified: OffsetDateTime::from_unix_timestamp_nanos(r.modified_ns).ok(),
        }))
    }

    /// Creates or replaces a policy after checking that `raw` parses.
    pub async fn set(&self, name: &str, raw: &str) -> Result<SetOutcome> {
        let clean = sanitize_name(name);
        if clean.is_empty() {
            return Err(Error::bad("policy name missing"));
        }
        if clean == "root" || clean == RESPONSE_WRAPPING {
            return Err(Error::bad(format!("cannot update \"{clean}\" policy")));
        }
        parse(raw, coffer_storage::clock::now()).map_err(|e| Error::BadRequest(e.to_string()))?;
        let key = storage_key(&clean);
        loop {
            let existing = self.view.get(&key).await?;
            let (prev_version, expected) = match &existing {
                Some(e) => (decode_record(&e.value)?.version, Some(e.version)),
                None => (0, None),
            };
            let record = PolicyRecord {
                v: POLICY_RECORD_VERSION,
                name: clean.clone(),
                raw: raw.to_owned(),
                version: prev_version + 1,
                modified_ns: coffer_storage::clock::now().unix_timestamp_nanos(),
            };
            let batch =
                Batch::new().put(key.clone(), serde_json::to_vec(&record)?).require(key.clone(), expected);
            match self.view.try_apply(batch).await {
                Ok(Some(_)) => break,
                // A concurrent write won; count versions from it.
                Ok(None) => continue,
                Err(e) => {
                    self.invalidate();
                    return Err(e.into());
                }
            }
        }
        self.invalidate();
        Ok(SetOutcome { renamed: clean != name, name: clean })
    }

    /// Deletes a policy (deleting a missing one succeeds).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let clean = sanitize_name(name);
        if clean == "root" || clean == RESPONSE_WRAPPING {
            return Err(Error::bad(format!("cannot delete \"{clean}\" policy")));
        }
        if clean == "default" {
            return Err(Error::bad("cannot delete default policy"));
        }
        if clean.is_empty() {
            return Ok(());
        }
        let result = self.view.delete(&storage_key(&clean)).await;
        self.invalidate();
        result?;
        Ok(())
    }

    /// Names of the stored policies, sorted (`root` and `response-wrapping` not included).
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .view
            .list("acl/")
            .await?
            .into_iter()
            .filter(|k| !k.ends_with('/'))
            .map(|k| percent_decode_str(&k).decode_utf8_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// A policy's parsed form (`None` if it does not exist), through the cache.
    async fn load(&self, name: &str, generation: u64) -> Result<Option<Arc<Policy>>> {
        if name == RESPONSE_WRAPPING {
            return Ok(Some(Arc::clone(&self.response_wrapping)));
        }
        if let Some(p) = self.lock().policies.get(name) {
            return Ok(p.clone());
        }
        let parsed = match self.view.get(&storage_key(name)).await? {
            None => None,
            Some(entry) => {
                let r = decode_record(&entry.value)?;
                // Fail closed: a policy that no longer parses might hold a deny.
                let p = parse(&r.raw, coffer_storage::clock::now())
                    .map_err(|e| Error::internal(format!("stored policy {name:?} does not parse: {e}")))?;
                Some(Arc::new(p))
            }
        };
        let mut c = self.lock();
        if c.generation == generation {
            if c.policies.len() >= CACHE_LIMIT {
                c.policies.clear();
            }
            c.policies.insert(name.to_owned(), parsed.clone());
        }
        Ok(parsed)
    }

    /// The compiled ACL for a token's policy names (normalised; unknown names are empty).
    ///
    /// Only the exact name `root` gives the root ACL. Token policies are normalised when tokens
    /// are issued, so a variant such as `Root` or ` root` can only come from a bug elsewhere;
    /// it is treated as a policy that does not exist rather than as root (the class of
    /// CVE-2025-5999, where a non-normalised `Root` was honoured as root).
    /// Whether a policy with this name exists (`root` and `default` always do).
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(name == "root" || name == "default" || self.get(name).await?.is_some())
    }

    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        if names.iter().any(|n| n == "root") {
            return Ok(Arc::clone(&self.root));
        }
        let mut key: Vec<String> =
            names.iter().map(|n| sanitize_name(n)).filter(|n| !n.is_empty() && n != "root").collect();
        key.sort();
        key.dedup();
        let now = coffer_storage::clock::now();
        let generation = {
            let c = self.lock();
            if let Some(acl) = c.acls.get(&key).filter(|a| a.valid_at(now)) {
                return Ok(Arc::clone(acl));
            }
            c.generation
        };
        let mut loaded = Vec::with_capacity(key.len());
        for name in &key {
            if let Some(p) = self.load(name, generation).await? {
                loaded.push((name.clone(), p));
            }
        }
        let acl = Arc::new(Acl::compile(loaded.iter().map(|(n, p)| (n.as_str(), p.as_ref())), now));
        let mut c = self.lock();
        if c.generation == generation {
            if c.acls.len() >= CACHE_LIMIT {
                c.acls.clear();
            }
            c.acls.insert(key, Arc::clone(&acl));
        }
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Operation;
    use coffer_storage::testing::mem_barrier;
    use coffer_storage::Barrier;
    use serde_json::Map;

    async fn store() -> (Arc<Barrier>, PolicyStore) {
        let barrier = mem_barrier().await;
        let view = View::new(Arc::clone(&barrier), "sys/policy/");
        (barrier, PolicyStore::open(view).await.unwrap())
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn default_policy_is_created_verbatim() {
        let (_b, s) = store().await;
        let d = s.get("default").await.unwrap().unwrap();
        assert_eq!(d.raw, DEFAULT_POLICY);
        assert!(DEFAULT_POLICY.contains("path \"sys/capabilities-self\""));
        assert_eq!(s.list().await.unwrap(), vec!["default"]);
        let acl = s.acl(&names(&["default"])).await.unwrap();
        let none = Map::new();
        assert!(acl.check(Operation::Read, "auth/token/lookup-self", &none).allowed);
        assert!(acl.check(Operation::Update, "sys/capabilities-self", &none).allowed);
        assert!(acl.check(Operation::Create, "cubbyhole/x", &none).allowed);
        assert!(acl.check(Operation::Update, "identity/oidc/provider/p/authorize", &none).allowed);
        assert!(!acl.check(Operation::Read, "identity/entity/id/x", &none).allowed, "templated: no identity");
        assert!(!acl.check(Operation::Read, "secret/x", &none).allowed);
    }

    #[tokio::test]
    async fn crud_and_cache_invalidation() {
        let (_b, s) = store().await;
        let text = "# mine\npath \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";
        let out = s.set("MyPol", text).await.unwrap();
        assert_eq!(out, SetOutcome { name: "mypol".into(), renamed: true });
        assert_eq!(s.get("MYPOL").await.unwrap().unwrap().raw, text);
        assert_eq!(s.get("mypol").await.unwrap().unwrap().version, 1);
        let none = Map::new();
        let acl = s.acl(&names(&["mypol"])).await.unwrap();
        assert!(acl.check(Operation::Read, "secret/a", &none).allowed);
        // Cached: the same Arc comes back until a change.
        assert!(Arc::ptr_eq(&acl, &s.acl(&names(&["MyPol", "mypol"])).await.unwrap()));
        s.set("mypol", "path \"secret/*\" { capabilities = [\"deny\"] }").await.unwrap();
        assert_eq!(s.get("mypol").await.unwrap().unwrap().version, 2);
        let acl = s.acl(&names(&["mypol"])).await.unwrap();
        assert!(!acl.check(Operation::Read, "secret/a", &none).allowed);
        s.delete("mypol").await.unwrap();
        assert!(s.get("mypol").await.unwrap().is_none());
        // Missing policies behave as empty.
        assert!(!s.acl(&names(&["mypol"])).await.unwrap().check(Operation::Read, "secret/a", &none).allowed);
        s.delete("never-existed").await.unwrap();
    }

    #[tokio::test]
    async fn odd_names_are_flat_keys() {
        let (_b, s) = store().await;
        for n in ["a/b", "..", "x y", "é"] {
            s.set(n, "path \"a\" { capabilities = [\"read\"] }").await.unwrap();
            assert_eq!(s.get(n).await.unwrap().unwrap().name, sanitize_name(n));
        }
        assert_eq!(s.list().await.unwrap(), vec!["..", "a/b", "default", "x y", "é"]);
    }

    #[tokio::test]
    async fn builtins() {
        let (_b, s) = store().await;
        for n in ["root", "Root", " ROOT "] {
            assert_eq!(
                s.set(n, "path \"a\" {}").await.unwrap_err().to_string(),
                "cannot update \"root\" policy"
            );
            assert_eq!(s.delete(n).await.unwrap_err().to_string(), "cannot delete \"root\" policy");
        }
        assert!(s.acl(&names(&["root"])).await.unwrap().is_root());
        assert!(s.acl(&names(&["default", "root"])).await.unwrap().is_root());
        for n in ["Root", " root", "ROOT"] {
            let acl = s.acl(&names(&[n])).await.unwrap();
            assert!(!acl.is_root(), "{n:?} must not be root");
            assert!(!acl.check(Operation::Read, "sys/mounts", &Map::new()).allowed);
        }
        assert_eq!(
            s.set("response-wrapping", "path \"a\" {}").await.unwrap_err().to_string(),
            "cannot update \"response-wrapping\" policy"
        );
        assert_eq!(
            s.delete("Response-Wrapping").await.unwrap_err().to_string(),
            "cannot delete \"response-wrapping\" policy"
        );
        assert_eq!(s.delete("Default").await.unwrap_err().to_string(), "cannot delete default policy");
        assert_eq!(s.get("root").await.unwrap().unwrap().raw, "");
        assert_eq!(s.get("response-wrapping").await.unwrap().unwrap().raw, RESPONSE_WRAPPING_POLICY);
        assert!(!s.list().await.unwrap().contains(&RESPONSE_WRAPPING.to_owned()));
        let rw = s.acl(&names(&["response-wrapping"])).await.unwrap();
        assert!(rw.check(Operation::Create, "cubbyhole/response", &Map::new()).allowed);
        assert!(!rw.check(Operation::Create, "cubbyhole/other", &Map::new()).allowed);
        assert!(check_assignable(&names(&["a", "default"])).is_ok());
        assert_eq!(
            check_assignable(&names(&["a", "Response-Wrapping"])).unwrap_err().to_string(),
            "cannot assign policy \"response-wrapping\""
        );
        // `default` can be edited.
        s.set("default", "path \"x\" { capabilities = [\"read\"] }").await.unwrap();
        let again = PolicyStore::open(s.view.clone()).await.unwrap();
        assert_eq!(
            again.get("default").await.unwrap().unwrap().raw,
            "path \"x\" { capabilities = [\"read\"] }"
        );
    }

    #[tokio::test]
    async fn invalid_text_is_a_bad_request() {
        let (_b, s) = store().await;
        let e = s.set("x", "path \"a\" { capabilities = [\"foo\"] }").await.unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)));
        assert_eq!(
            e.to_string(),
            "failed to parse policy: path \"a\": path \"a\": invalid capability \"foo\""
        );
        assert!(s.get("x").await.unwrap().is_none());
        assert_eq!(s.set("  ", "path \"a\" {}").await.unwrap_err().to_string(), "policy name missing");
    }

    #[tokio::test]
    async fn corrupt_or_unparseable_records_fail_closed() {
        let (_b, s) = store().await;
        let record = PolicyRecord {
            v: POLICY_RECORD_VERSION,
            name: "bad".into(),
            raw: "path \"a\" { capabilities = [\"nope\"] }".into(),
            version: 1,
            modified_ns: 0,
        };
        s.view.put(&storage_key("bad"), serde_json::to_vec(&record).unwrap()).await.unwrap();
        assert!(matches!(s.acl(&names(&["bad"])).await.unwrap_err(), Error::Internal(_)));
        s.view
            .put(&storage_key("v9"), br#"{"v":9,"name":"v9","raw":"","version":1,"modified_ns":0}"#.to_vec())
            .await
            .unwrap();
        s.invalidate();
        assert!(matches!(s.get("v9").await.unwrap_err(), Error::Internal(_)));
    }
}
