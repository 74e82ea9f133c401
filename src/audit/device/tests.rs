//! Device tests: fail-closed broker, fsync group commit, reopening after crashes and
//! replaced files, and head writes kept off the request path.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::BufRead;

use coffer_storage::testing::mem_barrier as barrier;
use serde_json::json;

use super::*;
use crate::audit::{verify, AuditBroker, RequestInfo, Source};

fn config_with(path: &str, extra: &[(&str, &str)]) -> DeviceConfig {
    let mut options: BTreeMap<String, String> = [("file_path".to_owned(), path.to_owned())].into();
    for (k, v) in extra {
        options.insert((*k).into(), (*v).into());
    }
    DeviceConfig {
        path: "file/".into(),
        kind: "file".into(),
        description: String::new(),
        options,
        local: false,
        salt: "salt".into(),
        id: "dev-1".into(),
        source: Source::Api,
    }
}

fn config(path: &str) -> DeviceConfig {
    config_with(path, &[])
}

fn entry(i: usize) -> Value {
    json!({"time": "t", "type": "request", "request": {"path": format!("kv/{i}")}})
}

async fn check(dev: &Device) -> verify::Report {
    verify::verify_device(dev).unwrap()
}

/// Opens the device, writes the lines `lines`, and closes it (its head stored).
async fn write_and_close(cfg: &DeviceConfig, b: &Arc<Barrier>, lines: std::ops::Range<usize>) {
    let dev = Device::open(cfg.clone(), Arc::clone(b)).await.unwrap();
    for i in lines {
        dev.write(entry(i)).unwrap();
    }
    dev.close().await;
}

#[tokio::test]
async fn broker_fails_closed_when_no_device_writes() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    // /dev/full is refused by open (not a regular file): it counts as broken.
    let broker = AuditBroker::open_configs(&b, vec![config("/dev/full")]).await;
    let req = RequestInfo { path: "kv1/x".into(), ..RequestInfo::default() };
    assert!(broker.log_request(None, &req, "").is_err(), "a broken device must fail the request");
    let ok = config(dir.path().join("a.log").to_str().unwrap());
    let ok = DeviceConfig { id: "dev-2".into(), path: "ok/".into(), ..ok };
    let broker = AuditBroker::open_configs(&b, vec![config("/dev/full"), ok]).await;
    assert!(broker.log_request(None, &req, "").is_ok(), "one working device is enough");
    assert!(AuditBroker::default().log_request(None, &req, "").is_ok());
}

#[tokio::test]
async fn fsync_option_syncs_every_line() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let synced =
        Device::open(config_with(p.to_str().unwrap(), &[("fsync", "true")]), Arc::clone(&b)).await.unwrap();
    for i in 0..5 {
        synced.write(entry(i)).unwrap();
    }
    assert_eq!(synced.fsyncs(), 5);
    let q = dir.path().join("b.log");
    let plain =
        Device::open(DeviceConfig { id: "dev-2".into(), ..config(q.to_str().unwrap()) }, b).await.unwrap();
    for i in 0..5 {
        plain.write(entry(i)).unwrap();
    }
    assert_eq!(plain.fsyncs(), 0, "fsync is off by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_one_intact_chain_with_fsync() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let dev =
        Arc::new(Device::open(config_with(p.to_str().unwrap(), &[("fsync", "true")]), b).await.unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let dev = Arc::clone(&dev);
            std::thread::spawn(move || {
                for i in 0..25 {
                    dev.write(entry(t * 100 + i)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(dev.fsyncs() >= 1 && dev.fsyncs() <= 200, "{}", dev.fsyncs());
    assert_eq!(dev.head().last.map(|l| l.seq), Some(199));
    let r = check(&dev).await;
    assert_eq!((&r.problem, r.lines), (&None, 200), "{r:?}");
}

#[tokio::test]
async fn reopen_accepts_an_authentic_tail_beyond_the_stored_head() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let cfg = config(p.to_str().unwrap());
    let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
    for i in 0..3 {
        dev.write(entry(i)).unwrap();
    }
    dev.close().await;
    let stored = dev.head();
    assert_eq!(stored.last.as_ref().map(|l| l.seq), Some(2));
    drop(dev);
    // A "crash" after more appends but before their head was stored: open a device whose
    // head writer never runs (dropped without close).
    let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
    dev.head.stop();
    for i in 3..6 {
        dev.write(entry(i)).unwrap();
    }
    drop(dev);
    let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
    assert_eq!(dev.head().last.map(|l| l.seq), Some(5), "continues after the authentic tail");
    dev.write(entry(6)).unwrap();
    let r = check(&dev).await;
    assert_eq!(r.problem, None, "{r:?}");
    assert_eq!((r.first_seq, r.last_seq, r.lines), (Some(0), Some(6), 7));
    dev.close().await;
    drop(dev);

    // The same tail without its MACs' key (forged lines) is not accepted.
    let text = std::fs::read_to_string(&p).unwrap();
    let forged = text.lines().last().unwrap().replace("kv/6", "kv/X");
    std::fs::write(&p, format!("{text}{forged}\n")).unwrap();
    let dev = Device::open(cfg, b).await.unwrap();
    assert_eq!(dev.head().last.map(|l| l.seq), Some(6), "a forged line does not move the head");
    let r = check(&dev).await;
    assert_eq!(r.problem.as_ref().map(|p| p.line), Some(8), "{r:?}");
}

#[tokio::test]
async fn reopen_drops_an_interrupted_last_line() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let cfg = config(p.to_str().unwrap());
    let dev = Device::open(cfg.clone(), Arc::clone(&b)).await.unwrap();
    dev.write(entry(0)).unwrap();
    dev.close().await;
    drop(dev);
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"{\"time\":\"t\",\"type\":\"req").unwrap();
    let dev = Device::open(cfg, b).await.unwrap();
    dev.write(entry(1)).unwrap();
    let r = check(&dev).await;
    assert_eq!(r.problem, None, "{r:?}");
    assert_eq!(std::io::BufReader::new(File::open(&p).unwrap()).lines().count(), 2);
}

#[tokio::test]
async fn a_replaced_file_starts_a_new_segment_and_remembers_the_old_one() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let cfg = config(p.to_str().unwrap());
    write_and_close(&cfg, &b, 0..4).await;
    std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
    let dev = Device::open(cfg, b).await.unwrap();
    dev.write(entry(4)).unwrap();
    let h = dev.head();
    assert_eq!((h.segment.start_seq, h.segment.start_offset), (4, 0));
    assert_eq!(h.earlier.len(), 1);
    assert_eq!((h.earlier[0].first_seq, h.earlier[0].last_seq), (0, 3));
    let r = check(&dev).await;
    assert_eq!(r.problem, None, "{r:?}");
    assert_eq!(r.first_seq, Some(4));
}

#[tokio::test]
async fn head_writes_are_coalesced_off_the_request_path() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let dev = Device::open(config(p.to_str().unwrap()), b).await.unwrap();
    let before = dev.head_writes();
    for i in 0..500 {
        dev.write(entry(i)).unwrap();
    }
    // 500 lines written in far less than 500 × HEAD_WRITE_INTERVAL: at most a few heads.
    let during = dev.head_writes() - before;
    assert!(during <= 3, "{during} head writes for 500 lines");
    dev.close().await;
    assert_eq!(dev.head().last.map(|l| l.seq), Some(499));
}

/// A replicated store seen from a follower: reads work, writes are refused.
struct Follower {
    inner: coffer_storage::MemStorage,
    follower: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl coffer_storage::Storage for Follower {
    async fn get(&self, key: &str) -> Result<Option<coffer_storage::Entry>, coffer_storage::StorageError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, coffer_storage::StorageError> {
        self.inner.list(prefix).await
    }
    async fn apply(&self, batch: coffer_storage::Batch) -> Result<u64, coffer_storage::StorageError> {
        if self.follower.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(coffer_storage::StorageError::NotLeader { leader_api_addr: None });
        }
        self.inner.apply(batch).await
    }
}

/// Found by the cluster canary test: a follower could not store its chain head (a replicated
/// key), warned on every write, and every node overwrote the others' heads. Chain records are
/// node-local now: a follower opens a device, keeps its own head, and finds a truncated tail
/// after a restart.
#[tokio::test]
async fn a_follower_keeps_its_own_head_and_finds_a_truncated_tail() {
    use coffer_storage::Storage as _;
    let shared = Arc::new(Follower {
        inner: coffer_storage::MemStorage::new(),
        follower: std::sync::atomic::AtomicBool::new(false),
    });
    let local = Arc::new(coffer_storage::MemStorage::new());
    let b = coffer_storage::testing::unsealed_barrier(Arc::new(coffer_storage::WithLocal::new(
        shared.clone(),
        local.clone(),
    )))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let cfg = config(p.to_str().unwrap());
    // This node follows: it cannot write replicated keys, and still opens the device.
    shared.follower.store(true, std::sync::atomic::Ordering::SeqCst);
    write_and_close(&cfg, &b, 0..5).await;
    assert_eq!(shared.list("core/").await.unwrap(), ["keyring"], "nothing of the chain is replicated");
    assert!(local.get(&chain::key_path("dev-1")).await.unwrap().is_some(), "the key is local");
    assert!(local.get(&chain::head_path("dev-1")).await.unwrap().is_some(), "the head is local");
    // Cut the last line: the stored head names it, so the restarted device reports it.
    let text = std::fs::read_to_string(&p).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    std::fs::write(&p, format!("{}\n", kept[..kept.len() - 1].join("\n"))).unwrap();
    let dev = Device::open(cfg, b).await.unwrap();
    let r = check(&dev).await;
    assert_eq!(r.problem.as_ref().map(|p| p.kind), Some(verify::ProblemKind::Truncated), "{r:?}");
}

/// A key and head stored where they were kept before they were node-local still anchor the
/// chain, and move to the node-local keys.
#[tokio::test]
async fn a_head_in_the_old_replicated_place_is_read_and_moved() {
    let b = barrier().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    let cfg = config(p.to_str().unwrap());
    write_and_close(&cfg, &b, 0..3).await;
    // As an older build left them: key and head under replicated keys only.
    for (local, legacy) in [
        (chain::key_path("dev-1"), chain::legacy_key_path("dev-1")),
        (chain::head_path("dev-1"), chain::legacy_head_path("dev-1")),
    ] {
        let value = b.get(&local).await.unwrap().unwrap().value;
        b.apply(coffer_storage::Batch::new().delete(&local)).await.unwrap();
        b.put(&legacy, value.to_vec()).await.unwrap();
    }
    let dev = Device::open(cfg, Arc::clone(&b)).await.unwrap();
    assert_eq!(dev.head().last.map(|l| l.seq), Some(2), "continues the old head");
    assert!(b.get(&chain::key_path("dev-1")).await.unwrap().is_some(), "key stored node-locally");
    assert!(b.get(&chain::head_path("dev-1")).await.unwrap().is_some(), "head stored node-locally");
    dev.write(entry(3)).unwrap();
    let r = check(&dev).await;
    assert_eq!((r.problem, r.first_seq, r.last_seq), (None, Some(0), Some(3)));
}
