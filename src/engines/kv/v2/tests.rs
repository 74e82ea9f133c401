//! Engine-level tests over an in-memory barrier: what the storage holds after destroy, pruning
//! and metadata deletion, the cas race, and the cleaner.

use std::sync::Arc;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use coffer_storage::testing::unsealed_barrier;
use coffer_storage::MemStorage;

use super::record::{version_key, Store};
use super::KvV2;
use crate::core::backend::Backend;
use crate::core::error::Error;
use crate::core::mounts::{MountConfig, MountEntry, Table};
use crate::core::request::{BackendRequest, Response};
use crate::policy::Operation;

struct Env {
    mem: Arc<MemStorage>,
    store: Store,
    backend: KvV2,
}

async fn env() -> Env {
    let mem = Arc::new(MemStorage::new());
    let barrier = unsealed_barrier(mem.clone()).await;
    let store = Store::new(coffer_storage::View::new(barrier, "logical/test/"), &Default::default());
    Env { mem, store, backend: KvV2 { inner: Arc::new(super::Inner::default()) } }
}

fn entry() -> MountEntry {
    MountEntry {
        path: "secret/".into(),
        kind: "kv".into(),
        description: String::new(),
        accessor: "kv_test".into(),
        uuid: "test".into(),
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        options: Some([("version".to_owned(), "2".to_owned())].into()),
        config: MountConfig::default(),
        table: Table::Secrets,
    }
}

impl Env {
    fn req(&self, op: Operation, path: &str, data: Value, now: OffsetDateTime) -> BackendRequest {
        BackendRequest {
            request_id: "test".into(),
            operation: op,
            path: path.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            view: self.store.view.clone(),
            mount: Arc::new(entry()),
            token: None,
            client_token: None,
            remote_addr: None,
            now,
            wrap_ttl: None,
        }
    }

    async fn call_at(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        now: OffsetDateTime,
    ) -> Result<Response, Error> {
        self.backend.handle(&self.req(op, path, data, now)).await
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.call_at(op, path, data, coffer_storage::clock::now()).await
    }

    /// Every plaintext storage key of the mount.
    async fn keys(&self) -> Vec<String> {
        self.store.view.list_recursive("").await.unwrap()
    }
}

fn data_of(r: &Response) -> Value {
    Value::Object(r.data.clone().unwrap_or_default())
}

#[tokio::test]
async fn destroy_erases_the_data_record() {
    let e = env().await;
    for i in 1..=2 {
        e.call(Operation::Create, "data/k", json!({"data": {"pw": format!("secret-{i}")}})).await.unwrap();
    }
    assert!(e.store.view.get(&version_key("k", 1)).await.unwrap().is_some());
    e.call(Operation::Update, "destroy/k", json!({"versions": [1]})).await.unwrap();
    assert!(e.store.view.get(&version_key("k", 1)).await.unwrap().is_none(), "destroyed data still stored");
    assert!(e.store.view.get(&version_key("k", 2)).await.unwrap().is_some());
    // Not even the ciphertext of version 1 is left under its key.
    let raw: Vec<String> = e.mem.dump().unwrap().into_iter().map(|(k, _)| k).collect();
    assert!(!raw.iter().any(|k| k.ends_with("kv2/versions/k/1")), "{raw:?}");
    let Err(Error::Raw(r)) = e.call(Operation::Read, "data/k", json!({"version": "1"})).await else {
        panic!("reading a destroyed version must give a raw 404")
    };
    assert_eq!(r.status, Some(404));
    assert_eq!(data_of(&r)["metadata"]["destroyed"], true);
    assert_eq!(data_of(&r)["data"], Value::Null);
    // Undelete cannot bring it back.
    e.call(Operation::Update, "undelete/k", json!({"versions": [1]})).await.unwrap();
    assert!(matches!(e.call(Operation::Read, "data/k", json!({"version": 1})).await, Err(Error::Raw(_))));
}

#[tokio::test]
async fn pruning_and_metadata_delete_leave_no_records() {
    let e = env().await;
    e.call(Operation::Create, "metadata/p", json!({"max_versions": 2})).await.unwrap();
    for i in 0..4 {
        e.call(Operation::Update, "data/p", json!({"data": {"i": i}})).await.unwrap();
    }
    let keys = e.keys().await;
    assert_eq!(keys, vec!["kv2/meta/p", "kv2/versions/p/3", "kv2/versions/p/4"], "pruned records remain");
    e.call(Operation::Create, "data/dir/q", json!({"data": {"a": 1}})).await.unwrap();
    e.call(Operation::Delete, "metadata/p", json!({})).await.unwrap();
    e.call(Operation::Delete, "metadata/dir/q", json!({})).await.unwrap();
    assert!(e.keys().await.is_empty(), "left behind: {:?}", e.keys().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_writers_have_one_winner_per_version() {
    let e = Arc::new(env().await);
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for w in 0..20 {
            let e = Arc::clone(&e);
            tasks.push(tokio::spawn(async move {
                e.call(Operation::Update, "data/race", json!({"data": {"w": w}, "options": {"cas": round}}))
                    .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    wins += 1;
                    assert_eq!(data_of(&r)["version"], round + 1);
                }
                Err(err) => {
                    assert_eq!(err.to_string(), "check-and-set parameter did not match the current version")
                }
            }
        }
        assert_eq!(wins, 1, "round {round}: {wins} writers won with the same cas");
    }
    let meta = e.call(Operation::Read, "metadata/race", json!({})).await.unwrap();
    assert_eq!(data_of(&meta)["current_version"], 5);
}

#[tokio::test]
async fn a_stale_read_never_commits() {
    let e = env().await;
    e.call(Operation::Create, "data/s", json!({"data": {"v": 1}})).await.unwrap();
    let (stale, read_at) = e.store.meta("s").await.unwrap().unwrap();
    // Another writer lands in between.
    e.call(Operation::Update, "data/s", json!({"data": {"v": 2}})).await.unwrap();
    let (config, _) = e.store.config().await.unwrap();
    let now = super::record::nanos(coffer_storage::clock::now());
    let out =
        super::data::commit_version(&e.store, "s", stale, Some(read_at), &config, Default::default(), now)
            .await
            .unwrap();
    assert!(out.is_none(), "a batch built on a stale read must not apply");
    let (meta, _) = e.store.meta("s").await.unwrap().unwrap();
    assert_eq!(meta.current_version, 2);
    let r = e.call(Operation::Read, "data/s", json!({})).await.unwrap();
    assert_eq!(data_of(&r)["data"], json!({"v": 2}), "the loser overwrote the winner's version");
}

#[tokio::test]
async fn expired_versions_are_hidden_and_swept() {
    let e = env().await;
    let t0 = coffer_storage::clock::now();
    e.call_at(Operation::Update, "config", json!({"delete_version_after": "10s"}), t0).await.unwrap();
    e.call_at(Operation::Create, "data/x", json!({"data": {"a": 1}}), t0).await.unwrap();
    let before = e.call_at(Operation::Read, "data/x", json!({}), t0 + Duration::seconds(5)).await.unwrap();
    assert_eq!(data_of(&before)["data"], json!({"a": 1}), "a future deletion time does not hide data");
    let later = t0 + Duration::seconds(11);
    assert!(
        matches!(e.call_at(Operation::Read, "data/x", json!({}), later).await, Err(Error::Raw(_))),
        "an expired version must read as deleted even before the cleaner runs"
    );
    let shown = data_of(&e.call_at(Operation::Read, "metadata/x", json!({}), later).await.unwrap());
    let swept = super::data::sweep_expired(&e.store, super::record::nanos(later)).await.unwrap();
    assert_eq!(swept, 1);
    let (meta, _) = e.store.meta("x").await.unwrap().unwrap();
    let vm = &meta.versions[&1];
    assert!(vm.expires_at.is_none() && vm.deletion_time.is_some(), "the cleaner records the deletion");
    let after = data_of(&e.call_at(Operation::Read, "metadata/x", json!({}), later).await.unwrap());
    assert_eq!(after["versions"], shown["versions"], "sweeping changes nothing clients see");
    assert_eq!(super::data::sweep_expired(&e.store, super::record::nanos(later)).await.unwrap(), 0);
    // Undelete re-applies delete_version_after from now.
    e.call_at(Operation::Update, "undelete/x", json!({"versions": [1]}), later).await.unwrap();
    let r = e.call_at(Operation::Read, "data/x", json!({}), later).await.unwrap();
    assert_ne!(data_of(&r)["metadata"]["deletion_time"], "");
}

#[tokio::test]
async fn existence_check_covers_data_and_metadata_only() {
    let e = env().await;
    assert_eq!(exists(&e, "data/k").await, Some(false));
    assert_eq!(exists(&e, "metadata/k").await, Some(false));
    e.call(Operation::Create, "data/k", json!({"data": {}})).await.unwrap();
    assert_eq!(exists(&e, "data/k").await, Some(true));
    assert_eq!(exists(&e, "metadata/k").await, Some(true));
    assert_eq!(exists(&e, "delete/k").await, None);
    assert_eq!(exists(&e, "destroy/k").await, None);
    assert_eq!(exists(&e, "config").await, None);
}

async fn exists(e: &Env, path: &str) -> Option<bool> {
    let req = e.req(Operation::Update, path, json!({}), coffer_storage::clock::now());
    e.backend.exists(&req).await.unwrap()
}

#[tokio::test]
async fn version_1_secrets_are_migrated_on_first_use() {
    let e = env().await;
    for (k, v) in [("app", json!({"user": "ada"})), ("dir/db", json!({"pw": "x", "ttl": "1h"}))] {
        let raw = crate::engines::kv::v1::encode(v.as_object().unwrap()).unwrap();
        e.store.view.put(k, raw).await.unwrap();
    }
    let r = e.call(Operation::Read, "data/dir/db", json!({})).await.unwrap();
    assert_eq!(data_of(&r)["data"], json!({"pw": "x", "ttl": "1h"}));
    assert_eq!(data_of(&r)["metadata"]["version"], 1);
    let r = e.call(Operation::Read, "data/app", json!({})).await.unwrap();
    assert_eq!(data_of(&r)["data"], json!({"user": "ada"}));
    assert!(e.keys().await.iter().all(|k| k.starts_with("kv2/")), "v1 records left: {:?}", e.keys().await);
    let list = e.call(Operation::List, "metadata/", json!({})).await.unwrap();
    assert_eq!(data_of(&list)["keys"], json!(["app", "dir/"]));
    // A straggler written after the first pass is picked up by the next one.
    let raw = crate::engines::kv::v1::encode(json!({"late": true}).as_object().unwrap()).unwrap();
    e.store.view.put("late", raw).await.unwrap();
    assert_eq!(super::upgrade::migrate(&e.store, 1).await.unwrap(), 1);
    assert!(e.call(Operation::Read, "data/late", json!({})).await.is_ok());
}

#[tokio::test]
async fn the_periodic_cleaner_soft_deletes_expired_versions() {
    use crate::core::backend::Backend;

    let e = env().await;
    let past = coffer_storage::clock::now() - Duration::seconds(60);
    e.call_at(Operation::Update, "config", json!({"delete_version_after": "1s"}), past).await.unwrap();
    e.call_at(Operation::Create, "data/one", json!({"data": {"a": 1}}), past).await.unwrap();
    e.call(Operation::Create, "data/fresh", json!({"data": {"a": 1}})).await.unwrap();
    assert_eq!(e.backend.periodic_interval(), Some(super::SWEEP_INTERVAL));
    e.backend.periodic(&e.store.view, &entry(), coffer_storage::clock::now()).await.unwrap();
    let (meta, _) = e.store.meta("one").await.unwrap().unwrap();
    assert!(meta.versions[&1].deletion_time.is_some(), "the expired version was not swept");
    let (meta, _) = e.store.meta("fresh").await.unwrap().unwrap();
    assert!(meta.versions[&1].deletion_time.is_none(), "a live version was swept");
}

#[tokio::test]
async fn decoded_metadata_never_outlives_a_change_made_elsewhere() {
    // The backend keeps decoded metadata; `e.store` has a cache of its own and stands for
    // changes the backend did not make (another node's writes, replicated into storage).
    let e = env().await;
    e.call(Operation::Create, "data/c", json!({"data": {"v": 1}})).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            data_of(&e.call(Operation::Read, "data/c", json!({})).await.unwrap())["data"],
            json!({"v": 1})
        );
    }
    let (meta, read_at) = e.store.meta("c").await.unwrap().unwrap();
    let (config, _) = e.store.config().await.unwrap();
    let now = super::record::nanos(coffer_storage::clock::now());
    let data = json!({"v": 2}).as_object().cloned().unwrap();
    super::data::commit_version(&e.store, "c", meta, Some(read_at), &config, data, now)
        .await
        .unwrap()
        .unwrap();
    let r = data_of(&e.call(Operation::Read, "data/c", json!({})).await.unwrap());
    assert_eq!((r["data"].clone(), r["metadata"]["version"].clone()), (json!({"v": 2}), json!(2)));
    e.store.view.apply(coffer_storage::Batch::new().delete(super::record::meta_key("c"))).await.unwrap();
    assert!(
        matches!(e.call(Operation::Read, "data/c", json!({})).await, Err(Error::NotFound(_))),
        "metadata deleted elsewhere still served"
    );
}
