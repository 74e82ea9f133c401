//! Storage of token entries, keyed by HMAC.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use time::OffsetDateTime;

use coffer_storage::keys::SecretBytes;
use coffer_storage::{Batch, View};

use super::{TokenEntry, TokenType, TOKEN_ENTRY_VERSION};
use crate::core::error::{Error, Result};
use crate::secret::ClientToken;
use crate::util::crypto::{hmac_sha256_hex, random_base62};

const SALT_KEY: &str = "salt";

/// Expiry index: `expiry/<unix minute, 12 digits>/<id hmac>` for every expiring token, written
/// and removed in the same batch as the token record, so tidy visits only due tokens.
fn expiry_key(expire_ns: i128, id_hmac: &str) -> String {
    let minute = (expire_ns / 1_000_000_000).max(0) / 60;
    format!("expiry/{minute:012}/{id_hmac}")
}
/// What to issue. Not `Clone`/`Debug`-derived: it may carry a caller-chosen token ID.
#[derive(Default)]
pub struct NewToken {
    pub policies: Vec<String>,
    pub path: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub display_name: String,
    pub num_uses: u64,
    /// TTL in seconds, already capped by the caller; 0 = never expires.
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    /// Parent's id HMAC; `None` = orphan.
    pub parent: Option<String>,
    pub token_type: TokenType,
    pub bound_cidrs: Vec<ipnet::IpNet>,
    pub role: Option<String>,
    pub renewable: bool,
    pub internal: BTreeMap<String, String>,
    /// A caller-chosen token ID (sudo only; validated by the caller).
    pub custom_id: Option<ClientToken>,
    pub is_wrapping: bool,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("policies", &self.policies)
            .field("path", &self.path)
            .field("custom_id", &self.custom_id.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// The token store over its view (`sys/token/`).
pub struct TokenStore {
    view: View,
    salt: SecretBytes,
    /// Entries as decoded, by id HMAC, with the storage version they were read at. A lookup
    /// reads the stored version first (no decryption) and reuses the decoded entry when it is
    /// the same: a version names one write, so equal versions are equal bytes, and no
    /// invalidation is needed — a changed or deleted entry simply misses. Saves the barrier
    /// decryption and JSON decode of every request's token (about a fifth of a kv read).
    decoded: Mutex<HashMap<String, (u64, TokenEntry)>>,
}

/// Decoded token entries kept at most (the map is emptied when it fills: tokens in use come
/// back on their next request).
const DECODED_CAP: usize = 4096;

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenStore")
    }
}

impl TokenStore {
    /// Opens the store, creating its salt on first use.
    pub async fn open(view: View) -> Result<Self> {
        let salt = match view.get(SALT_KEY).await? {
            Some(e) => SecretBytes::from_slice(&e.value),
            None => {
                let salt = SecretBytes::random(32).map_err(|e| Error::internal(format!("rng: {e}")))?;
                let batch = Batch::new().put(SALT_KEY, salt.expose().to_vec()).require_absent(SALT_KEY);
                if view.try_apply(batch).await?.is_some() {
                    salt
                } else {
                    // Another node created it first: use theirs.
                    let e = view.get(SALT_KEY).await?.ok_or_else(|| Error::internal("salt vanished"))?;
                    SecretBytes::from_slice(&e.value)
                }
            }
        };
        Ok(Self { view, salt, decoded: Mutex::default() })
    }

    /// The store's view (for the token backend's own records, e.g. roles).
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Lowercase hex HMAC-SHA256 of `s` under the store salt.
    pub fn hmac(&self, s: &str) -> String {
        hmac_sha256_hex(self.salt.expose(), &[s.as_bytes()])
    }

    /// Issues a token and stores its entry (and accessor and parent indexes) in one batch.
    pub async fn create(&self, mut spec: NewToken, now: OffsetDateTime) -> Result<(ClientToken, TokenEntry)> {
        let prefix = match spec.token_type {
            TokenType::Service => "hvs.",
            TokenType::Batch => "hvb.",
        };
        let token = match spec.custom_id.take() {
            Some(id) => id,
            None => ClientToken::new(format!("{prefix}{}", random_base62(24))),
        };
        let accessor = random_base62(24);
        let id_hmac = self.hmac(token.expose());
        let now_ns = now.unix_timestamp_nanos();
        let expire_time_ns = (spec.ttl > 0).then(|| now_ns + i128::from(spec.ttl) * 1_000_000_000);
        let entry = TokenEntry {
            v: TOKEN_ENTRY_VERSION,
            id_hmac: id_hmac.clone(),
            accessor: accessor.clone(),
            policies: spec.policies,
            path: spec.path,
            meta: spec.meta,
            display_name: spec.display_name,
            num_uses: spec.num_uses,
            creation_time: now.unix_timestamp(),
            ttl: spec.ttl,
            explicit_max_ttl: spec.explicit_max_ttl,
            period: spec.period,
            parent: spec.parent.clone(),
            token_type: spec.token_type,
            bound_cidrs: spec.bound_cidrs,
            role: spec.role,
            renewable: spec.renewable,
            expire_time_ns,
            issue_time_ns: now_ns,
            last_renewal_ns: None,
            entity_id: String::new(),
            internal: spec.internal,
            is_wrapping: spec.is_wrapping,
            pending_revocation: false,
        };
        let id_key = format!("id/{id_hmac}");
        let value = serde_json::to_vec(&entry)?;
        loop {
            let mut batch = Batch::new()
                .put(id_key.clone(), value.clone())
                .require_absent(id_key.clone())
                .put(format!("accessor/{}", self.hmac(&accessor)), id_hmac.as_bytes().to_vec());
            // A child is written only while its parent is live, decided in the same batch as
            // the write: the parent record must still be at the version read here. Revocation
            // marks the parent first (a new version), so no child can appear under a parent
            // being revoked (S11).
            let mut parent_version = None;
            if let Some(parent) = &spec.parent {
                let Some((p, version)) = self.lookup_hmac(parent, now).await? else {
                    return Err(Error::InvalidToken);
                };
                if p.pending_revocation {
                    return Err(Error::InvalidToken);
                }
                parent_version = Some(version);
                batch = batch
                    .put(format!("parent/{parent}/{id_hmac}"), Vec::new())
                    .require_version(format!("id/{parent}"), version);
            }
            if let Some(exp) = entry.expire_time_ns {
                batch = batch.put(expiry_key(exp, &id_hmac), Vec::new());
            }
            if self.view.try_apply(batch).await?.is_some() {
                return Ok((token, entry));
            }
            // Either the ID exists already, or the parent changed (renewed, marked for
            // revocation) since it was read: look again.
            let parent_moved = match (&spec.parent, parent_version) {
                (Some(parent), Some(v)) => {
                    self.get_by_hmac(parent).await?.map(|(_, now_v)| now_v != v).unwrap_or(true)
                }
                _ => false,
            };
            if !parent_moved {
                return Err(Error::bad("cannot create a token with a duplicate ID"));
            }
        }
    }

    /// Reads an entry by id HMAC, with its storage version.
    pub async fn get_by_hmac(&self, id_hmac: &str) -> Result<Option<(TokenEntry, u64)>> {
        let key = ["id/", id_hmac].concat();
        let cached = self.decoded_lock().get(id_hmac).map(|(v, _)| *v);
        if let Some(cached) = cached {
            if self.view.version(&key).await? == Some(cached) {
                if let Some((v, entry)) = self.decoded_lock().get(id_hmac).filter(|(v, _)| *v == cached) {
                    return Ok(Some((entry.clone(), *v)));
                }
            }
        }
        let Some(e) = self.view.get(&key).await? else {
            self.decoded_lock().remove(id_hmac);
            return Ok(None);
        };
        let entry: TokenEntry = serde_json::from_slice(&e.value)
            .map_err(|err| Error::internal(format!("corrupt token entry: {err}")))?;
        if entry.v != TOKEN_ENTRY_VERSION {
            return Err(Error::internal(format!("unsupported token entry version {}", entry.v)));
        }
        let mut decoded = self.decoded_lock();
        if decoded.len() >= DECODED_CAP {
            decoded.clear();
        }
        decoded.insert(id_hmac.to_owned(), (e.version, entry.clone()));
        Ok(Some((entry, e.version)))
    }

    fn decoded_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, TokenEntry)>> {
        self.decoded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up a live token: `None` if unknown, expired or pending revocation. Expired tokens
    /// are removed by the core's tidy loop, which also clears their cubbyholes.
    pub async fn lookup(
        &self,
        token: &ClientToken,
        now: OffsetDateTime,
    ) -> Result<Option<(TokenEntry, u64)>> {
        let id = self.hmac(token.expose());
        self.lookup_hmac(&id, now).await
    }

    /// Like [`lookup`](Self::lookup) by id HMAC.
    pub async fn lookup_hmac(&self, id_hmac: &str, now: OffsetDateTime) -> Result<Option<(TokenEntry, u64)>> {
        match self.get_by_hmac(id_hmac).await? {
            Some((entry, _)) if entry.unusable_at(now.unix_timestamp_nanos()) => Ok(None),
            other => Ok(other),
        }
    }

    /// Resolves an accessor to the token's id HMAC.
    pub async fn hmac_for_accessor(&self, accessor: &str) -> Result<Option<String>> {
        let Some(e) = self.view.get(&format!("accessor/{}", self.hmac(accessor))).await? else {
            return Ok(None);
        };
        String::from_utf8(e.value.to_vec()).map(Some).map_err(|_| Error::internal("corrupt accessor index"))
    }

    /// Consumes one use of a limited-use token. `Ok(None)` when the token is gone or used up;
    /// `Ok(Some(true))` when this was the last use (the caller revokes after the request).
    pub async fn use_once(&self, id_hmac: &str, now: OffsetDateTime) -> Result<Option<bool>> {
        loop {
            let Some((mut entry, version)) = self.lookup_hmac(id_hmac, now).await? else { return Ok(None) };
            if entry.num_uses == 0 {
                return Ok(Some(false));
            }
            let last = entry.num_uses == 1;
            if last {
                entry.pending_revocation = true;
            } else {
                entry.num_uses -= 1;
            }
            if self.update(&entry, version).await? {
                return Ok(Some(last));
            }
        }
    }

    /// Takes a live single-use token (a wrapping token presented in a body) for the caller:
    /// marks it pending revocation if it is still live at the version read, so of concurrent
    /// callers exactly one gets `true` (S22). The caller revokes it afterwards.
    pub async fn consume(&self, id_hmac: &str, now: OffsetDateTime) -> Result<bool> {
        loop {
            let Some((mut entry, version)) = self.lookup_hmac(id_hmac, now).await? else { return Ok(false) };
            entry.pending_revocation = true;
            if self.update(&entry, version).await? {
                return Ok(true);
            }
        }
    }

    /// Replaces an entry if it is still at `version`. `Ok(false)` when it changed meanwhile.
    pub async fn update(&self, entry: &TokenEntry, version: u64) -> Result<bool> {
        self.update_with_old_expiry(entry, version, entry.expire_time_ns).await
    }

    /// Like [`update`](Self::update), moving the expiry index from `old_expire_ns` (renewals).
    pub async fn update_with_old_expiry(
        &self,
        entry: &TokenEntry,
        version: u64,
        old_expire_ns: Option<i128>,
    ) -> Result<bool> {
        let key = format!("id/{}", entry.id_hmac);
        let mut batch =
            Batch::new().put(key.clone(), serde_json::to_vec(entry)?).require_version(key, version);
        if old_expire_ns != entry.expire_time_ns {
            if let Some(old) = old_expire_ns {
                batch = batch.delete(expiry_key(old, &entry.id_hmac));
            }
            if let Some(new) = entry.expire_time_ns {
                batch = batch.put(expiry_key(new, &entry.id_hmac), Vec::new());
            }
        }
        Ok(self.view.try_apply(batch).await?.is_some())
    }

    /// Removes one token's records (entry, accessor index, its own parent link). Children are
    /// left alone (see [`revoke_tree`](Self::revoke_tree) and [`orphan_children`](Self::orphan_children)).
    async fn remove_one(&self, id_hmac: &str) -> Result<Option<TokenEntry>> {
        loop {
            let Some((entry, version)) = self.get_by_hmac(id_hmac).await? else { return Ok(None) };
            let mut batch = Batch::new()
                .delete(format!("id/{id_hmac}"))
                .require_version(format!("id/{id_hmac}"), version)
                .delete(format!("accessor/{}", self.hmac(&entry.accessor)));
            if let Some(parent) = &entry.parent {
                batch = batch.delete(format!("parent/{parent}/{id_hmac}"));
            }
            if let Some(exp) = entry.expire_time_ns {
                batch = batch.delete(expiry_key(exp, id_hmac));
            }
            if self.view.try_apply(batch).await?.is_some() {
                return Ok(Some(entry));
            }
            // Changed concurrently (use count); try again with the fresh version.
        }
    }

    /// Marks a token as being revoked: from the moment this returns, the token is unusable and
    /// no child can be created under it (child creation requires the parent's record at a
    /// version where it was live). `Ok(false)` when the token does not exist.
    async fn mark_revoking(&self, id_hmac: &str) -> Result<bool> {
        loop {
            let Some((mut entry, version)) = self.get_by_hmac(id_hmac).await? else { return Ok(false) };
            if entry.pending_revocation {
                return Ok(true);
            }
            entry.pending_revocation = true;
            if self.update(&entry, version).await? {
                return Ok(true);
            }
        }
    }

    /// Revokes a token and all its descendants. Each token is first marked (so it stops working
    /// and cannot gain children), then its children are revoked until none remains, then its
    /// records are removed. A crash midway leaves marked tokens, which are unusable, and which
    /// the full tidy finds and finishes. Returns the revoked entries (the caller cleans up their
    /// cubbyholes).
    pub async fn revoke_tree(&self, id_hmac: &str) -> Result<Vec<TokenEntry>> {
        let mut revoked = Vec::new();
        let mut stack = vec![(id_hmac.to_owned(), false)];
        while let Some((id, children_listed)) = stack.pop() {
            if !children_listed {
                // Mark before listing: every child committed before the mark is in the list
                // below, and none can be committed after it.
                self.mark_revoking(&id).await?;
                stack.push((id.clone(), true));
                for child in self.view.list(&format!("parent/{id}/")).await? {
                    stack.push((child.trim_end_matches('/').to_owned(), false));
                }
                continue;
            }
            // Walk until no child remains: a child still present goes back on the stack
            // (defensive; the mark makes new children impossible). Links whose child is gone
            // (an earlier, interrupted revocation) are dropped.
            let mut live = Vec::new();
            for child in self.view.list(&format!("parent/{id}/")).await? {
                let child = child.trim_end_matches('/').to_owned();
                if self.get_by_hmac(&child).await?.is_some() {
                    live.push(child);
                } else {
                    self.view.delete(&format!("parent/{id}/{child}")).await?;
                }
            }
            if !live.is_empty() {
                stack.push((id, true));
                stack.extend(live.into_iter().map(|c| (c, false)));
                continue;
            }
            if let Some(e) = self.remove_one(&id).await? {
                revoked.push(e);
            }
        }
        Ok(revoked)
    }

    /// Revokes only `id_hmac`, turning its children into orphans.
    pub async fn revoke_orphan(&self, id_hmac: &str) -> Result<Option<TokenEntry>> {
        self.orphan_children(id_hmac).await?;
        self.remove_one(id_hmac).await
    }

    /// Makes every child of `id_hmac` an orphan.
    pub async fn orphan_children(&self, id_hmac: &str) -> Result<()> {
        for child in self.view.list(&format!("parent/{id_hmac}/")).await? {
            let child = child.trim_end_matches('/').to_owned();
            loop {
                let Some((mut entry, version)) = self.get_by_hmac(&child).await? else { break };
                entry.parent = None;
                if self.update(&entry, version).await? {
                    break;
                }
            }
            self.view.delete(&format!("parent/{id_hmac}/{child}")).await?;
        }
        Ok(())
    }

    /// Id HMACs of tokens whose expiry falls in a minute at or before `now` (index order),
    /// at most `limit` of them. Index entries whose token is gone are removed on the way.
    pub async fn due_for_expiry(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<String>> {
        let now_minute = now.unix_timestamp().max(0) / 60;
        let mut out = Vec::new();
        for bucket in self.view.list("expiry/").await? {
            let minute: i64 = bucket.trim_end_matches('/').parse().unwrap_or(i64::MAX);
            if minute > now_minute {
                break;
            }
            for id in self.view.list(&format!("expiry/{bucket}")).await? {
                match self.get_by_hmac(&id).await? {
                    Some((e, _))
                        if e.expire_time_ns.map(|t| expiry_key(t, &id))
                            == Some(format!("expiry/{bucket}{id}")) =>
                    {
                        if e.expired_at(now.unix_timestamp_nanos()) {
                            out.push(id);
                        }
                    }
                    // The token is gone or was renewed past this bucket: drop the stale entry.
                    _ => {
                        self.view.delete(&format!("expiry/{bucket}{id}")).await?;
                    }
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Every stored id HMAC (tidy, accessor listing).
    pub async fn all_ids(&self) -> Result<Vec<String>> {
        Ok(self.view.list("id/").await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coffer_storage::testing::mem_barrier;

    use super::*;

    async fn store() -> TokenStore {
        TokenStore::open(View::new(mem_barrier().await, "sys/token/")).await.unwrap()
    }

    /// S11: revoking any token of a random tree leaves no live descendant of it, and every
    /// token outside its subtree alive; a child can never be created under a revoked parent.
    #[tokio::test]
    async fn revoking_leaves_no_live_descendant_in_random_trees() {
        use rand::{Rng, SeedableRng};
        let s = store().await;
        let now = coffer_storage::clock::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0011);
        for _ in 0..1000 {
            let n = rng.gen_range(1..24);
            let mut ids: Vec<String> = Vec::new();
            let mut parent_of: Vec<Option<usize>> = Vec::new();
            for i in 0..n {
                let parent = (i > 0 && rng.gen_bool(0.85)).then(|| rng.gen_range(0..i));
                let spec = NewToken {
                    policies: vec!["default".into()],
                    parent: parent.map(|p| ids[p].clone()),
                    ..NewToken::default()
                };
                let (_, e) = s.create(spec, now).await.unwrap();
                ids.push(e.id_hmac);
                parent_of.push(parent);
            }
            let victim = rng.gen_range(0..n);
            s.revoke_tree(&ids[victim]).await.unwrap();
            let in_subtree = |mut i: usize| loop {
                if i == victim {
                    return true;
                }
                match parent_of[i] {
                    Some(p) => i = p,
                    None => return false,
                }
            };
            for (i, id) in ids.iter().enumerate() {
                let live = s.lookup_hmac(id, now).await.unwrap().is_some();
                assert_eq!(live, !in_subtree(i), "token {i} of {n}, victim {victim}");
            }
            let child = NewToken { parent: Some(ids[victim].clone()), ..NewToken::default() };
            assert!(s.create(child, now).await.is_err(), "a child was created under a revoked parent");
            for id in &ids {
                s.revoke_tree(id).await.unwrap();
            }
        }
        assert!(s.view().list("parent/").await.unwrap().is_empty());
        assert!(s.view().list("id/").await.unwrap().is_empty());
    }

    /// The decoded-entry cache never serves a stale entry, also when another store over the
    /// same storage (another node applying the log) changes or removes the token.
    #[tokio::test]
    async fn decoded_entries_follow_writes_made_through_another_store() {
        let barrier = mem_barrier().await;
        let a = TokenStore::open(View::new(Arc::clone(&barrier), "sys/token/")).await.unwrap();
        let b = TokenStore::open(View::new(barrier, "sys/token/")).await.unwrap();
        let now = coffer_storage::clock::now();
        let spec = NewToken { policies: vec!["default".into()], num_uses: 5, ..NewToken::default() };
        let (token, _) = a.create(spec, now).await.unwrap();
        for left in (1..=5).rev() {
            // Twice through `a` (the second a cache hit), then a use through `b`.
            for _ in 0..2 {
                let (e, _) = a.lookup(&token, now).await.unwrap().unwrap();
                assert_eq!(e.num_uses, left);
            }
            let id = b.hmac(token.expose());
            assert_eq!(b.use_once(&id, now).await.unwrap(), Some(left == 1));
        }
        assert!(a.lookup(&token, now).await.unwrap().is_none(), "used up, but still served");
        let (token, _) =
            a.create(NewToken { policies: vec!["x".into()], ..NewToken::default() }, now).await.unwrap();
        assert!(a.lookup(&token, now).await.unwrap().is_some());
        b.revoke_tree(&b.hmac(token.expose())).await.unwrap();
        assert!(a.lookup(&token, now).await.unwrap().is_none(), "revoked elsewhere, but still served");
        // Past the cap the map starts over and lookups still answer.
        for _ in 0..DECODED_CAP + 10 {
            let (t, _) = a.create(NewToken::default(), now).await.unwrap();
            assert!(a.lookup(&t, now).await.unwrap().is_some());
        }
        assert!(a.decoded_lock().len() <= DECODED_CAP);
    }

    #[tokio::test]
    async fn expiry_index_follows_create_renew_and_revoke() {
        let s = store().await;
        let past = coffer_storage::clock::now() - time::Duration::hours(2);
        let spec = |ttl| NewToken { policies: vec!["default".into()], ttl, ..NewToken::default() };
        let (_, expired) = s.create(spec(60), past).await.unwrap();
        let (_, live) = s.create(spec(3600 * 5), past).await.unwrap();
        let (_, forever) = s.create(spec(0), past).await.unwrap();
        let now = coffer_storage::clock::now();
        assert_eq!(s.due_for_expiry(now, 100).await.unwrap(), vec![expired.id_hmac.clone()]);
        // Renewing moves the index entry; the old bucket no longer yields the token.
        let (mut e, v) = s.get_by_hmac(&expired.id_hmac).await.unwrap().unwrap();
        let old = e.expire_time_ns;
        e.expire_time_ns = Some(now.unix_timestamp_nanos() + 3_600_000_000_000);
        assert!(s.update_with_old_expiry(&e, v, old).await.unwrap());
        assert!(s.due_for_expiry(now, 100).await.unwrap().is_empty());
        // Far in the future, both expiring tokens are due; the non-expiring one never is.
        let later = now + time::Duration::hours(10);
        let mut due = s.due_for_expiry(later, 100).await.unwrap();
        due.sort();
        let mut want = vec![expired.id_hmac.clone(), live.id_hmac.clone()];
        want.sort();
        assert_eq!(due, want);
        assert!(!due.contains(&forever.id_hmac));
        // Revocation removes the index entry with the token.
        s.revoke_tree(&live.id_hmac).await.unwrap();
        assert_eq!(s.due_for_expiry(later, 100).await.unwrap(), vec![expired.id_hmac.clone()]);
        assert!(s.view().list("expiry/").await.unwrap().len() == 1);
    }
}
