//! The AppRole mount's storage layout, inside its view:
//!
//! ```text
//!   salt                                   32 random bytes: the HMAC key of everything below
//!   role/<lower-case name>                 RoleEntry (versioned JSON)
//!   role_id/<hmac("role_id", role_id)>     {v, name}: login index, one per role ID
//!   secret_id/<role id>/<hmac(secret)>     SecretIdEntry; the HMAC input binds the role id
//!   accessor/<hmac("accessor", acc)>       {v, role, secret}: where the accessor's secret ID is
//!   lockout/<hmac("lockout", role_id)>     a lockout in force (counters live in memory; `lockout`)
//! ```
//!
//! Secret IDs, role IDs and accessors never appear in a key: only their HMACs (SHA-256 under
//! the per-mount salt, with a domain label per kind). Every multi-key change is one batch with
//! preconditions, so a secret ID and its accessor appear and disappear together, a role ID is
//! claimed by one role only, and a use count is decremented exactly once per successful login
//! even when logins race (or run on different nodes).

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use coffer_storage::keys::SecretBytes;
use coffer_storage::{Batch, View};

use super::role::{RoleEntry, ROLE_VERSION};
use super::secret_id::{SecretId, SecretIdEntry, SECRET_ID_VERSION};
use crate::core::error::{Error, Result};
use crate::util::crypto::hmac_sha256_hex;

const SALT_KEY: &str = "salt";
/// Format version of index records.
const INDEX_VERSION: u8 = 1;
/// Number of keys deleted per batch when a role's secret IDs are flushed.
const FLUSH_CHUNK: usize = 128;

/// Loads the mount's salt, creating it on first use (another node may win the race).
pub async fn load_salt(view: &View) -> Result<SecretBytes> {
    if let Some(e) = view.get(SALT_KEY).await? {
        return Ok(SecretBytes::from_slice(&e.value));
    }
    let salt = SecretBytes::random(32).map_err(|e| Error::internal(format!("rng: {e}")))?;
    let batch = Batch::new().put(SALT_KEY, salt.expose().to_vec()).require_absent(SALT_KEY);
    if view.try_apply(batch).await?.is_some() {
        return Ok(salt);
    }
    let e = view.get(SALT_KEY).await?.ok_or_else(|| Error::internal("approle salt vanished"))?;
    Ok(SecretBytes::from_slice(&e.value))
}

/// `role_id/…` record.
#[derive(Serialize, Deserialize)]
struct RoleIdIndex {
    v: u8,
    name: String,
}

/// `accessor/…` record.
#[derive(Serialize, Deserialize)]
pub struct AccessorIndex {
    pub v: u8,
    /// The owning role's internal id.
    pub role: String,
    /// HMAC of the secret ID (its key below `secret_id/<role>/`).
    pub secret: String,
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| Error::internal(format!("corrupt approle {what} record: {e}")))
}

/// Outcome of consuming one use of a secret ID.
#[derive(Debug)]
pub enum Consumed {
    /// Gone or expired meanwhile.
    Invalid,
    /// The login may proceed; the entry as it was before this use.
    Ok(SecretIdEntry),
}

/// The storage of one AppRole mount.
pub struct Store<'a> {
    pub view: &'a View,
    salt: &'a SecretBytes,
}

impl std::fmt::Debug for Store<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("view", self.view).finish_non_exhaustive()
    }
}

impl<'a> Store<'a> {
    pub fn new(view: &'a View, salt: &'a SecretBytes) -> Self {
        Self { view, salt }
    }

    /// Lower-case hex HMAC-SHA256 of `label \0 value` under the salt.
    pub fn hmac(&self, label: &str, value: &str) -> String {
        hmac_sha256_hex(self.salt.expose(), &[label.as_bytes(), &[0], value.as_bytes()])
    }

    /// HMAC of a secret ID, bound to the role it belongs to.
    pub fn secret_hmac(&self, role_id: &str, secret: &SecretId) -> String {
        self.hmac(&format!("secret_id\0{role_id}"), secret.expose())
    }

    fn role_key(name: &str) -> String {
        format!("role/{name}")
    }

    fn role_id_key(&self, role_id: &str) -> String {
        format!("role_id/{}", self.hmac("role_id", role_id))
    }

    pub fn secret_key(role: &str, secret_hmac: &str) -> String {
        format!("secret_id/{role}/{secret_hmac}")
    }

    pub fn accessor_key(&self, accessor: &str) -> String {
        format!("accessor/{}", self.hmac("accessor", accessor))
    }

    /// Reads a role by canonical name, with its storage version.
    pub async fn role(&self, name: &str) -> Result<Option<(RoleEntry, u64)>> {
        let Some(e) = self.view.get(&Self::role_key(name)).await? else { return Ok(None) };
        let role: RoleEntry = decode("role", &e.value)?;
        if role.v != ROLE_VERSION {
            return Err(Error::internal(format!("unsupported approle role version {}", role.v)));
        }
        Ok(Some((role, e.version)))
    }

    /// All role names, sorted.
    pub async fn role_names(&self) -> Result<Vec<String>> {
        Ok(self.view.list("role/").await?.into_iter().filter(|k| !k.ends_with('/')).collect())
    }

    /// The role a role ID logs in to. Always does two reads (the index, then the role or a key
    /// that never exists), so an unknown role ID costs what a known one does.
    pub async fn role_by_role_id(&self, role_id: &str) -> Result<Option<RoleEntry>> {
        let name = match self.view.get(&self.role_id_key(role_id)).await? {
            Some(e) => Some(decode::<RoleIdIndex>("role_id", &e.value)?.name),
            None => None,
        };
        // "-" is not a valid role name, so `role/-` never exists.
        let role = self.role(name.as_deref().unwrap_or("-")).await?;
        // The index matched by HMAC; confirm the role still carries this role ID (in constant
        // time: role IDs are credentials).
        Ok(role.map(|(r, _)| r).filter(|r| bool::from(r.role_id.as_bytes().ct_eq(role_id.as_bytes()))))
    }

    /// Writes a role created or changed from the version read (`None` = create). Claims the new
    /// role ID's index and releases the old one in the same batch. `Ok(false)` = someone else
    /// changed the role meanwhile; the caller re-reads and retries.
    pub async fn put_role(&self, role: &RoleEntry, prev: Option<(&RoleEntry, u64)>) -> Result<bool> {
        let new_index = self.role_id_key(&role.role_id);
        if let Some(e) = self.view.get(&new_index).await? {
            let owner = decode::<RoleIdIndex>("role_id", &e.value)?.name;
            if owner != role.name {
                return Err(Error::bad("role_id already in use"));
            }
        }
        let key = Self::role_key(&role.name);
        let mut batch =
            Batch::new().put(key.clone(), serde_json::to_vec(role)?).require(key, prev.map(|p| p.1));
        let changed_id = prev.map(|(p, _)| p.role_id != role.role_id).unwrap_or(true);
        if changed_id {
            if let Some((p, _)) = prev {
                batch = batch.delete(self.role_id_key(&p.role_id));
            }
            let index = RoleIdIndex { v: INDEX_VERSION, name: role.name.clone() };
            batch =
                batch.put(new_index.clone(), serde_json::to_vec(&index)?).require_absent(new_index.clone());
        }
        if self.view.try_apply(batch).await?.is_some() {
            return Ok(true);
        }
        // Either the role changed or another role took the role ID first.
        if changed_id {
            if let Some(e) = self.view.get(&new_index).await? {
                if decode::<RoleIdIndex>("role_id", &e.value)?.name != role.name {
                    return Err(Error::bad("role_id already in use"));
                }
            }
        }
        Ok(false)
    }

    /// Deletes a role, all its secret IDs and accessors, and its role ID index. Secret IDs go
    /// first (in chunks); the role itself last, so an interrupted delete leaves a role that can
    /// be deleted again, never secret IDs without a role that could be revived.
    pub async fn delete_role(&self, role: &RoleEntry) -> Result<()> {
        self.flush_secret_ids(&role.id).await?;
        let batch = Batch::new().delete(Self::role_key(&role.name)).delete(self.role_id_key(&role.role_id));
        self.view.apply(batch).await?;
        Ok(())
    }

    /// Deletes every secret ID (and accessor) stored under a role id.
    pub async fn flush_secret_ids(&self, role: &str) -> Result<()> {
        let hmacs = self.view.list(&format!("secret_id/{role}/")).await?;
        for chunk in hmacs.chunks(FLUSH_CHUNK) {
            let mut batch = Batch::new();
            for h in chunk {
                let key = Self::secret_key(role, h);
                if let Some(e) = self.view.get(&key).await? {
                    let entry: SecretIdEntry = decode("secret_id", &e.value)?;
                    batch = batch.delete(self.accessor_key(&entry.accessor));
                }
                batch = batch.delete(key);
            }
            self.view.apply(batch).await?;
        }
        Ok(())
    }

    /// Stores a new secret ID and its accessor together. Fails with Vault's 500 text if the
    /// secret ID is already registered for this role.
    pub async fn create_secret_id(
        &self,
        role: &RoleEntry,
        secret: &SecretId,
        entry: &mut SecretIdEntry,
    ) -> Result<()> {
        let secret_hmac = self.secret_hmac(&role.id, secret);
        let key = Self::secret_key(&role.id, &secret_hmac);
        loop {
            entry.v = SECRET_ID_VERSION;
            entry.accessor = uuid::Uuid::new_v4().to_string();
            let acc_key = self.accessor_key(&entry.accessor);
            let index =
                AccessorIndex { v: INDEX_VERSION, role: role.id.clone(), secret: secret_hmac.clone() };
            let batch = Batch::new()
                .put(key.clone(), serde_json::to_vec(&*entry)?)
                .require_absent(key.clone())
                .put(acc_key.clone(), serde_json::to_vec(&index)?)
                .require_absent(acc_key);
            if self.view.try_apply(batch).await?.is_some() {
                return Ok(());
            }
            if self.view.get(&key).await?.is_some() {
                return Err(Error::InternalVisible(
                    "failed to store secret_id: SecretID is already registered".into(),
                ));
            }
            // An accessor collision (random UUIDs): draw another one.
        }
    }

    /// Reads a secret ID record by its HMAC under a role id.
    pub async fn secret_id(&self, role: &str, secret_hmac: &str) -> Result<Option<(SecretIdEntry, u64)>> {
        let Some(e) = self.view.get(&Self::secret_key(role, secret_hmac)).await? else { return Ok(None) };
        let entry: SecretIdEntry = decode("secret_id", &e.value)?;
        if entry.v != SECRET_ID_VERSION {
            return Err(Error::internal(format!("unsupported approle secret_id version {}", entry.v)));
        }
        Ok(Some((entry, e.version)))
    }

    /// Resolves an accessor.
    pub async fn accessor(&self, accessor: &str) -> Result<Option<(AccessorIndex, u64)>> {
        let Some(e) = self.view.get(&self.accessor_key(accessor)).await? else { return Ok(None) };
        Ok(Some((decode("accessor", &e.value)?, e.version)))
    }

    /// Deletes a secret ID and its accessor if the record is still at `version`. `Ok(false)` if
    /// it changed meanwhile.
    pub async fn delete_secret_id(
        &self,
        role: &str,
        secret_hmac: &str,
        entry: &SecretIdEntry,
        version: u64,
    ) -> Result<bool> {
        let key = Self::secret_key(role, secret_hmac);
        let batch = Batch::new()
            .delete(key.clone())
            .require_version(key, version)
            .delete(self.accessor_key(&entry.accessor));
        Ok(self.view.try_apply(batch).await?.is_some())
    }

    /// Deletes a secret ID whatever its state (destroy); no-op when absent.
    pub async fn destroy_secret_id(&self, role: &str, secret_hmac: &str) -> Result<()> {
        loop {
            let Some((entry, version)) = self.secret_id(role, secret_hmac).await? else { return Ok(()) };
            if self.delete_secret_id(role, secret_hmac, &entry, version).await? {
                return Ok(());
            }
        }
    }

    /// Consumes one use of a secret ID read at `version`: decrements the count, or deletes the
    /// secret ID (and accessor) when this is its last use. The write is conditional on the
    /// version read, and a lost race re-reads, so N uses allow at most N successful logins
    /// however many run concurrently (a loser only retries after another login made progress).
    pub async fn consume(
        &self,
        role: &str,
        secret_hmac: &str,
        mut entry: SecretIdEntry,
        mut version: u64,
        now: time::OffsetDateTime,
    ) -> Result<Consumed> {
        loop {
            if entry.expired_at(now) {
                return Ok(Consumed::Invalid);
            }
            let key = Self::secret_key(role, secret_hmac);
            let batch = match entry.num_uses {
                0 => return Ok(Consumed::Ok(entry)),
                1 => Batch::new()
                    .delete(key.clone())
                    .require_version(key, version)
                    .delete(self.accessor_key(&entry.accessor)),
                n => {
                    let mut next = entry.clone();
                    next.num_uses = n - 1;
                    next.last_updated_ns = now.unix_timestamp_nanos();
                    Batch::new().put(key.clone(), serde_json::to_vec(&next)?).require_version(key, version)
                }
            };
            if self.view.try_apply(batch).await?.is_some() {
                return Ok(Consumed::Ok(entry));
            }
            match self.secret_id(role, secret_hmac).await? {
                Some((e, v)) => {
                    entry = e;
                    version = v;
                }
                None => return Ok(Consumed::Invalid),
            }
        }
    }

    /// Accessors of a role's secret IDs, in storage order.
    pub async fn accessors(&self, role: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for h in self.view.list(&format!("secret_id/{role}/")).await? {
            if let Some((entry, _)) = self.secret_id(role, &h).await? {
                out.push(entry.accessor);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use coffer_storage::testing::unsealed_barrier;
    use coffer_storage::MemStorage;

    use super::*;

    /// An unsealed in-memory barrier and a view on it.
    pub async fn view() -> (Arc<MemStorage>, View) {
        let mem = Arc::new(MemStorage::new());
        let barrier = unsealed_barrier(mem.clone()).await;
        (mem, View::new(barrier, "auth/test/"))
    }

    pub fn entry(num_uses: u64) -> SecretIdEntry {
        SecretIdEntry {
            v: SECRET_ID_VERSION,
            accessor: String::new(),
            num_uses,
            ttl: 0,
            creation_ns: 0,
            expiration_ns: None,
            last_updated_ns: 0,
            metadata: BTreeMap::new(),
            cidr_list: Vec::new(),
            token_bound_cidrs: Vec::new(),
        }
    }

    fn role(name: &str, role_id: &str) -> RoleEntry {
        let mut r = RoleEntry::new(name, uuid::Uuid::new_v4().to_string());
        r.role_id = role_id.into();
        r
    }

    #[tokio::test]
    async fn salt_is_created_once() {
        let (_, v) = view().await;
        let a = load_salt(&v).await.unwrap();
        let b = load_salt(&v).await.unwrap();
        assert!(a.ct_eq(b.expose()));
        assert_eq!(a.len(), 32);
    }

    #[tokio::test]
    async fn role_ids_are_unique_and_move_with_the_role() {
        let (_, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let a = role("a", "rid-1");
        assert!(s.put_role(&a, None).await.unwrap());
        let b = role("b", "rid-1");
        assert_eq!(s.put_role(&b, None).await.unwrap_err().to_string(), "role_id already in use");
        assert_eq!(s.role_by_role_id("rid-1").await.unwrap().unwrap().name, "a");
        // Change a's role ID: the old index is released.
        let (cur, ver) = s.role("a").await.unwrap().unwrap();
        let mut moved = cur.clone();
        moved.role_id = "rid-2".into();
        assert!(s.put_role(&moved, Some((&cur, ver))).await.unwrap());
        assert!(s.role_by_role_id("rid-1").await.unwrap().is_none());
        assert!(s.put_role(&b, None).await.unwrap());
        // A stale write loses.
        assert!(!s.put_role(&moved, Some((&cur, ver))).await.unwrap());
        assert!(s.role_by_role_id("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn secret_ids_live_under_hmacs_only() {
        let (mem, v) = view().await;
        let salt = load_salt(&v).await.unwrap();
        let s = Store::new(&v, &salt);
        let r = role("web", "rid");
        s.put_role(&r, None).await.unwrap();
        let secret = SecretId::new("custom-secret-value");
        let mut e = entry(0);
        s.create_secret_id(&r, &secret, &mut e).await.unwrap();
        let mut again = entry(0);
        let err = s.create_secret_id(&r, &secret, &mut again).await.unwrap_err();
        assert_eq!(err.to_string(), "failed to store secret_id: SecretID is already registered");
        let keys = v.list_recursive("").await.unwrap();
        assert!(keys.iter().all(|k| !k.contains("custom-secret-value") && !k.contains(&e.accessor)));
        assert!(keys.iter().all(|k| !k.contains("rid")));
        for (k, val) in mem.dump().unwrap() {
            assert!(!String::from_utf8_lossy(&val).contains("custom-secret-value"), "{k}");
        }
        assert_eq!(s.accessors(&r.id).await.unwrap(), vec![e.accessor.clone()]);
        // Deleting the role removes secret IDs, accessors and the role ID index.
        s.delete_role(&r).await.unwrap();
        let left: Vec<String> = v.list_recursive("").await.unwrap();
        assert_eq!(left, vec!["salt".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_consumption_never_exceeds_num_uses() {
        let (_, v) = view().await;
        let salt = Arc::new(load_salt(&v).await.unwrap());
        let r = role("web", "rid");
        let secret = SecretId::new("s");
        let h = {
            let s = Store::new(&v, &salt);
            s.put_role(&r, None).await.unwrap();
            s.create_secret_id(&r, &secret, &mut entry(5)).await.unwrap();
            s.secret_hmac(&r.id, &secret)
        };
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (v, salt, id, h) = (v.clone(), salt.clone(), r.id.clone(), h.clone());
            tasks.push(tokio::spawn(async move {
                let s = Store::new(&v, &salt);
                let Some((e, ver)) = s.secret_id(&id, &h).await.unwrap() else { return false };
                matches!(
                    s.consume(&id, &h, e, ver, coffer_storage::clock::now()).await.unwrap(),
                    Consumed::Ok(_)
                )
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        assert_eq!(ok, 5);
        let s = Store::new(&v, &salt);
        assert!(s.secret_id(&r.id, &h).await.unwrap().is_none());
        assert!(s.accessors(&r.id).await.unwrap().is_empty());
    }
}
