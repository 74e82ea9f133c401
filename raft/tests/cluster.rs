//! Clusters of real nodes in one process: loopback ports, mutual TLS over HTTP/2, sled on disk.
//! Every wait polls with a deadline; nothing sleeps for a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_raft::tls::{self, ClusterCa};
use coffer_raft::{serve_cluster, NodeId, NodeInfo, RaftConfig, RaftError, RaftNode, RaftStorage};
use coffer_storage::{Batch, Changes, Replication, Role, Storage, StorageError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing the test after `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens a node, waiting while the data directory is still locked by a node of this process
/// that was just dropped: sled lets go of its file lock only when its background flusher has
/// seen the database closed, a moment after the last handle went (a killed process would have
/// released it at exit). Any other outcome is returned at once.
async fn open_node(config: RaftConfig) -> Result<Arc<RaftNode>, RaftError> {
    let end = Instant::now() + DEADLINE;
    loop {
        match RaftNode::open(config.clone()).await {
            Err(e) if e.to_string().contains("could not acquire lock") && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

struct TestNode {
    node: Arc<RaftNode>,
    server: JoinHandle<()>,
}

impl TestNode {
    fn store(&self) -> RaftStorage {
        self.node.storage()
    }
}

struct Cluster {
    ca: ClusterCa,
    tmp: tempfile::TempDir,
    addrs: BTreeMap<NodeId, String>,
    nodes: BTreeMap<NodeId, TestNode>,
    tune: fn(&mut RaftConfig),
}

fn info_for(addr: &str) -> NodeInfo {
    NodeInfo {
        name: String::new(),
        api_addr: format!("https://api-of-{addr}"),
        cluster_addr: addr.to_owned(),
    }
}

impl Cluster {
    fn new(tune: fn(&mut RaftConfig)) -> Self {
        Self {
            ca: tls::generate_ca("test cluster CA").unwrap(),
            tmp: tempfile::tempdir().unwrap(),
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            tune,
        }
    }

    fn dir(&self, id: NodeId) -> PathBuf {
        self.tmp.path().join(format!("node{id}"))
    }

    /// Starts (or restarts, on the same port and data directory) node `id`.
    async fn start(&mut self, id: NodeId) -> Result<(), RaftError> {
        let listener = match self.addrs.get(&id) {
            Some(addr) => {
                let addr = addr.clone();
                wait_for("the old port to be free", DEADLINE, || {
                    let addr = addr.clone();
                    async move { TcpListener::bind(&addr).await.ok() }
                })
                .await
            }
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap().to_string();
        self.addrs.insert(id, addr.clone());
        let mut config = RaftConfig::new(id, self.dir(id), info_for(&addr));
        (self.tune)(&mut config);
        let node = open_node(config).await?;
        // The extra IP name lets the test's plain-WebPKI clients verify the server by address.
        let cert = tls::issue_node_cert(&self.ca, &format!("node-{id}"), &["127.0.0.1".into()]).unwrap();
        node.set_tls(&self.ca.cert_pem, &cert).unwrap();
        let server = tokio::spawn(serve_cluster(listener, Arc::clone(&node), None));
        self.nodes.insert(id, TestNode { node, server });
        Ok(())
    }

    /// Kills node `id`: closes its cluster port and stops its Raft (data stays on disk).
    async fn kill(&mut self, id: NodeId) {
        let n = self.nodes.remove(&id).expect("node running");
        n.server.abort();
        let _ = n.server.await;
        n.node.shutdown().await.unwrap();
        // Like a dead process, the node must release its data directory: wait until tasks that
        // still served requests when the port closed have let go of it.
        let node = n.node;
        wait_for("the killed node to be released", DEADLINE, || {
            let count = Arc::strong_count(&node);
            async move { (count == 1).then_some(()) }
        })
        .await;
    }

    fn node(&self, id: NodeId) -> &Arc<RaftNode> {
        &self.nodes[&id].node
    }

    /// Bootstraps node 1 and joins 2..=n as voters.
    async fn bootstrap(tune: fn(&mut RaftConfig), n: u64) -> Self {
        let mut c = Self::new(tune);
        for id in 1..=n {
            c.start(id).await.unwrap();
        }
        c.node(1).initialize_single().await.unwrap();
        c.wait_leader().await;
        for id in 2..=n {
            c.node(id).accept_join().await.unwrap();
            let info = c.node(id).info().clone();
            c.node(1).join_voter(id, info).await.unwrap();
        }
        c
    }

    async fn wait_leader(&self) -> NodeId {
        wait_for("a leader", DEADLINE, || async {
            self.nodes.iter().find(|(_, n)| n.node.role() == Role::Leader).map(|(id, _)| *id)
        })
        .await
    }

    /// Waits until every running node applied at least `index` and all digests agree.
    async fn wait_converged(&self, index: u64) -> [u8; 32] {
        wait_for("all nodes to converge", DEADLINE, || async {
            let digests: Vec<(u64, [u8; 32])> =
                self.nodes.values().map(|n| n.node.digest().unwrap()).collect();
            let first = digests[0];
            (first.0 >= index && digests.iter().all(|d| *d == first)).then_some(first.1)
        })
        .await
    }
}

fn fast(c: &mut RaftConfig) {
    c.heartbeat_interval = Duration::from_millis(50);
    c.election_timeout_min = Duration::from_millis(300);
    c.election_timeout_max = Duration::from_millis(600);
}

fn defaults(_: &mut RaftConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_over_mtls_and_followers_redirect_writes() {
    let c = Cluster::bootstrap(fast, 3).await;
    let leader = c.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut follower_changes = c.node(follower).subscribe();

    let m = c.node(leader).metrics();
    assert_eq!(m.voters, vec![1, 2, 3], "{m:?}");
    assert_eq!(m.nodes.len(), 3);

    // Write on the leader: the version is the entry's log index.
    let v =
        c.nodes[&leader].store().apply(Batch::new().put("sys/a", b"ciphertext-1".to_vec())).await.unwrap();
    assert_eq!(c.nodes[&leader].store().get("sys/a").await.unwrap().unwrap().version, v);

    // A write on a follower is refused with the leader's API address.
    let err = c.nodes[&follower].store().apply(Batch::new().put("sys/b", vec![1])).await.unwrap_err();
    match err {
        StorageError::NotLeader { leader_api_addr } => {
            assert_eq!(leader_api_addr.as_deref(), Some(c.node(leader).info().api_addr.as_str()))
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }
    let li = c.nodes[&follower].store().leader().unwrap();
    assert_eq!(li.node_id, leader);
    assert_eq!(li.cluster_addr, c.addrs[&leader]);
    assert_eq!(c.nodes[&follower].store().role(), Role::Standby);
    assert!(c.nodes[&follower].store().is_ha());

    // Linearizable read on the follower sees the write at once after the barrier.
    let v2 =
        c.nodes[&leader].store().apply(Batch::new().put("sys/a", b"ciphertext-2".to_vec())).await.unwrap();
    c.nodes[&follower].store().linearize().await.unwrap();
    let e = c.nodes[&follower].store().get("sys/a").await.unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.version), (&b"ciphertext-2"[..], v2));

    // Concurrent barriers on a follower share rounds and all succeed.
    let store = c.nodes[&follower].store();
    let rounds_before = c.node(follower).read_rounds();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.linearize().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let rounds = c.node(follower).read_rounds() - rounds_before;
    println!("50 concurrent follower read barriers took {rounds} rounds");
    assert!(rounds < 50, "concurrent barriers must share rounds, got {rounds} rounds for 50 callers");

    // The follower announced the keys each applied entry changed.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(DEADLINE, follower_changes.recv()).await.unwrap().unwrap() {
            Changes::Keys { version, keys } => seen.push((version, keys.to_vec())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec![(v, vec!["sys/a".to_owned()]), (v2, vec!["sys/a".to_owned()])]);

    // A failed precondition is decided by the state machine on every node alike.
    let err = store.node().storage().apply(Batch::new().require_absent("sys/a")).await.unwrap_err();
    assert!(matches!(err, StorageError::NotLeader { .. }));
    let err =
        c.nodes[&leader].store().apply(Batch::new().put("sys/c", vec![1]).require_absent("sys/a")).await;
    assert!(matches!(err, Err(StorageError::PreconditionFailed { ref key }) if key == "sys/a"), "{err:?}");

    let index = c.node(leader).metrics().applied_index.unwrap();
    c.wait_converged(index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_elects_a_new_one_and_a_restarted_node_catches_up() {
    // Default timeouts: this measures the fail-over a real deployment gets.
    let mut c = Cluster::bootstrap(defaults, 3).await;
    let old = c.wait_leader().await;
    for i in 0..20 {
        c.nodes[&old].store().apply(Batch::new().put(format!("k/{i}"), vec![i as u8; 100])).await.unwrap();
    }
    c.kill(old).await;
    let killed_at = Instant::now();
    let (new_leader, version) = wait_for("a write on a new leader", DEADLINE, || {
        let stores: Vec<(NodeId, RaftStorage)> = c.nodes.iter().map(|(id, n)| (*id, n.store())).collect();
        async move {
            for (id, s) in stores {
                if s.role() == Role::Leader {
                    if let Ok(v) = s.apply(Batch::new().put("after/failover", vec![7])).await {
                        return Some((id, v));
                    }
                }
            }
            None
        }
    })
    .await;
    let failover = killed_at.elapsed();
    println!("FAILOVER: writes resumed {failover:?} after the leader was killed (new leader {new_leader})");
    assert_ne!(new_leader, old);
    assert!(failover < Duration::from_secs(3), "fail-over took {failover:?}");

    // More writes while the old leader is down, then it restarts from its data and catches up.
    for i in 0..10 {
        c.nodes[&new_leader].store().apply(Batch::new().put(format!("late/{i}"), vec![i])).await.unwrap();
    }
    c.start(old).await.unwrap();
    assert!(!c.node(old).is_pristine().unwrap());
    let index = c.node(new_leader).metrics().applied_index.unwrap();
    c.wait_converged(index).await;
    let e = c.nodes[&old].store().get("after/failover").await.unwrap().unwrap();
    assert_eq!(e.version, version);
    assert_eq!(c.node(old).role(), Role::Standby);

    // Step-down hands leadership to another node.
    c.node(new_leader).step_down().await.unwrap();
    let next = c.wait_leader().await;
    assert_ne!(next, new_leader);
    c.nodes[&next].store().apply(Batch::new().put("after/step-down", vec![1])).await.unwrap();
}

fn small_snapshots(c: &mut RaftConfig) {
    fast(c);
    c.snapshot_threshold = 20;
    c.logs_to_keep_after_snapshot = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_far_behind_catches_up_through_a_snapshot() {
    let mut c = Cluster::bootstrap(small_snapshots, 3).await;
    let leader = c.wait_leader().await;
    let lagger = (1..=3).find(|id| *id != leader).unwrap();
    c.kill(lagger).await;
    let store = c.nodes[&leader].store();
    for i in 0..120u32 {
        store.apply(Batch::new().put(format!("bulk/{}", i % 40), i.to_be_bytes().to_vec())).await.unwrap();
    }
    store.apply(Batch::new().delete("bulk/0")).await.unwrap();
    // The leader has snapshotted and purged far past what the lagging node has.
    let purged = wait_for("the leader to purge its log", DEADLINE, || async {
        c.node(leader).metrics().purged_index.filter(|p| *p > 60)
    })
    .await;
    println!("leader purged its log up to {purged}");
    c.start(lagger).await.unwrap();
    let index = c.node(leader).metrics().applied_index.unwrap();
    let digest = c.wait_converged(index).await;
    let m = c.node(lagger).metrics();
    assert!(m.snapshot_index.is_some_and(|s| s >= purged), "lagger did not install a snapshot: {m:?}");
    assert!(c.nodes[&lagger].store().get("bulk/0").await.unwrap().is_none());
    assert_eq!(c.nodes[&lagger].store().list("bulk/").await.unwrap().len(), 39);
    println!("digest after snapshot catch-up at {index}: {}", hex(&digest));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A raw HTTP/2-over-TLS request to the cluster port with the given client TLS config.
async fn raw_rpc(addr: &str, cfg: rustls::ClientConfig) -> Result<reqwest::StatusCode, String> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    client
        .post(format!("https://{addr}/v1/raft/vote"))
        .body("{}")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_port_refuses_clients_without_a_cluster_certificate() {
    let c = Cluster::bootstrap(fast, 1).await;
    let addr = c.addrs[&1].clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let trust_ca = || {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(c.ca.cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    };
    let base = || {
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
    };
    // A member certificate works (the vote body is malformed, so the node answers 400).
    let member = tls::issue_node_cert(&c.ca, "member", &[]).unwrap();
    let status = raw_rpc(&addr, tls::client_config(&c.ca.cert_pem, &member).unwrap()).await.unwrap();
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);

    // No client certificate: refused during the handshake, no HTTP status at all.
    let mut no_cert = base().with_root_certificates(trust_ca()).with_no_client_auth();
    no_cert.alpn_protocols = vec![b"h2".to_vec()];
    let err = raw_rpc(&addr, no_cert).await;
    assert!(err.is_err(), "a client without a certificate got an answer: {err:?}");

    // A certificate from another cluster's CA: refused too.
    let other_ca = tls::generate_ca("another cluster").unwrap();
    let stranger = tls::issue_node_cert(&other_ca, "stranger", &[]).unwrap();
    let cfg = tls::client_config(&c.ca.cert_pem, &stranger).unwrap();
    let err = raw_rpc(&addr, cfg).await;
    assert!(err.is_err(), "a foreign certificate got an answer: {err:?}");
}

/// One read-index exchange on the RPC channel (ALPN `coffer-rpc/1`) with the given client TLS
/// config: the answer's status and body.
async fn raw_channel_read_index(addr: &str, mut cfg: rustls::ClientConfig) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    cfg.alpn_protocols = vec![coffer_raft::channel::ALPN_RPC.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(tls::CLUSTER_SERVER_NAME).unwrap();
    let exchange = async {
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await?;
        let mut request = vec![coffer_raft::channel::OP_READ_INDEX];
        request.extend_from_slice(&0i64.to_be_bytes());
        request.extend_from_slice(&0u32.to_be_bytes());
        tls.write_all(&request).await?;
        tls.flush().await?;
        let mut head = [0u8; 14];
        tls.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[10], head[11], head[12], head[13]]) as usize;
        let mut body = vec![0u8; len];
        tls.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>((
            u16::from_be_bytes([head[0], head[1]]),
            String::from_utf8_lossy(&body).into_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_channel_answers_cluster_members_only() {
    let c = Cluster::bootstrap(fast, 1).await;
    let leader = c.wait_leader().await;
    let addr = c.addrs[&leader].clone();
    c.nodes[&leader].store().apply(Batch::new().put("a", vec![1])).await.unwrap();
    let applied = c.node(leader).metrics().applied_index.unwrap();

    // A member gets a read index at least as new as what it wrote.
    let member = tls::issue_node_cert(&c.ca, "member", &[]).unwrap();
    let (status, body) =
        raw_channel_read_index(&addr, tls::client_config(&c.ca.cert_pem, &member).unwrap()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer["Index"].as_u64().is_some_and(|i| i >= applied), "{body}");

    // A certificate from another cluster's CA: refused during the handshake, no answer.
    let other_ca = tls::generate_ca("another cluster").unwrap();
    let stranger = tls::issue_node_cert(&other_ca, "stranger", &[]).unwrap();
    let err = raw_channel_read_index(&addr, tls::client_config(&c.ca.cert_pem, &stranger).unwrap()).await;
    assert!(err.is_err(), "a foreign certificate got an answer: {err:?}");

    // No client certificate: refused too.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(c.ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let no_cert =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let err = raw_channel_read_index(&addr, no_cert).await;
    assert!(err.is_err(), "a client without a certificate got an answer: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_restarted_under_its_old_id_is_refused() {
    let mut c = Cluster::bootstrap(fast, 3).await;
    let leader = c.wait_leader().await;
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    c.nodes[&leader].store().apply(Batch::new().put("before/wipe", vec![1])).await.unwrap();
    let index = c.node(leader).metrics().applied_index.unwrap();
    c.wait_converged(index).await;

    // A data directory remembers its node id.
    c.kill(victim).await;
    let mut wrong = RaftConfig::new(99, c.dir(victim), info_for("127.0.0.1:1"));
    fast(&mut wrong);
    match open_node(wrong).await {
        Err(RaftError::IdentityMismatch { stored, configured }) => {
            assert_eq!((stored, configured), (victim, 99))
        }
        other => panic!("expected IdentityMismatch, got {other:?}"),
    }

    // Wipe and restart under the old id: the node is pristine and answers no raft RPC.
    std::fs::remove_dir_all(c.dir(victim)).unwrap();
    c.start(victim).await.unwrap();
    assert!(c.node(victim).is_pristine().unwrap());
    assert!(!c.node(victim).is_admitted());
    let (status, body) = c.node(victim).handle_rpc("/v1/raft/append", b"{}").await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(&body));

    // Its join under the old id is refused by the leader with a clear error.
    let info = c.node(victim).info().clone();
    let err = c.node(leader).join_voter(victim, info).await.unwrap_err();
    assert!(matches!(err, RaftError::IdInUse { node_id } if node_id == victim), "{err:?}");
    assert!(err.to_string().contains("new node id"), "{err}");

    // The leader keeps replicating to the wiped node, which refuses every RPC (answering would
    // show the leader a reverted log: openraft asserts on that). The leader stays unharmed:
    // writes go on, and the wiped node holds nothing.
    wait_for("the leader to contact the wiped node", DEADLINE, || async {
        (c.node(victim).refused_rpcs() >= 3).then_some(())
    })
    .await;
    for i in 0..5 {
        c.nodes[&leader].store().apply(Batch::new().put(format!("after/{i}"), vec![i])).await.unwrap();
    }
    assert!(c.node(leader).raft().metrics().borrow().running_state.is_ok());
    assert!(c.nodes[&victim].store().get("before/wipe").await.unwrap().is_none());

    // The operator's fix: remove the old id, rejoin under a new one.
    c.node(leader).remove_node(victim).await.unwrap();
    c.kill(victim).await;
    std::fs::remove_dir_all(c.dir(victim)).unwrap();
    c.start(4).await.unwrap();
    c.node(4).accept_join().await.unwrap();
    let info = c.node(4).info().clone();
    c.node(leader).join_voter(4, info).await.unwrap();
    let index = c.node(leader).metrics().applied_index.unwrap();
    c.wait_converged(index).await;
    let mut voters = c.node(leader).metrics().voters;
    voters.sort();
    assert_eq!(voters.len(), 3);
    assert!(voters.contains(&4) && !voters.contains(&victim));
}

async fn single_node(dir: &Path, fatal: Option<coffer_raft::db::FatalHook>) -> Arc<RaftNode> {
    let mut config = RaftConfig::new(1, dir, info_for("127.0.0.1:1"));
    fast(&mut config);
    if let Some(f) = fatal {
        config.fatal = f;
    }
    let node = RaftNode::open(config).await.unwrap();
    node.initialize_single().await.unwrap();
    wait_for("single node leadership", DEADLINE, || async { (node.role() == Role::Leader).then_some(()) })
        .await;
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_storage_passes_the_storage_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let node = single_node(&tmp.path().join("n"), None).await;
    let store = node.storage();
    coffer_storage::testing::conformance(&store).await;
    coffer_storage::testing::conformance_concurrent(Arc::new(store.clone())).await;
    // Oversized batches are refused before they reach the log.
    let err =
        store.apply(Batch::new().put("big", vec![0; coffer_raft::MAX_ENTRY_BYTES + 1])).await.unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { .. }), "{err:?}");
    // Data and versions survive a restart.
    let v = store.apply(Batch::new().put("persist/me", b"x".to_vec())).await.unwrap();
    node.shutdown().await.unwrap();
    drop(store);
    drop(node);
    let mut config = RaftConfig::new(1, tmp.path().join("n"), info_for("127.0.0.1:1"));
    fast(&mut config);
    let node = RaftNode::open(config).await.unwrap();
    wait_for("leadership after restart", DEADLINE, || async { (node.role() == Role::Leader).then_some(()) })
        .await;
    let e = node.storage().get("persist/me").await.unwrap().unwrap();
    assert_eq!(e.version, v);
    assert!(node.storage().apply(Batch::new().put("persist/next", vec![])).await.unwrap() > v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_log_fsync_is_fatal_and_the_write_is_never_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = Arc::clone(&calls);
    let hook: coffer_raft::db::FatalHook =
        Arc::new(move |m: &str| recorder.lock().unwrap().push(m.to_owned()));
    let node = single_node(&tmp.path().join("n"), Some(hook)).await;
    let store = node.storage();
    store.apply(Batch::new().put("ok", vec![1])).await.unwrap();
    node.fail_next_sync("EIO (injected)");
    let err = store.apply(Batch::new().put("lost", vec![1])).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "the fatal hook (process exit in production) must run once: {calls:?}");
    assert!(calls[0].contains("EIO"), "{calls:?}");
    // Raft stopped: nothing is acknowledged any more.
    assert!(store.apply(Batch::new().put("after", vec![1])).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_node_write_throughput_with_fsync_per_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let node = single_node(&tmp.path().join("n"), None).await;
    let store = node.storage();
    let value = vec![0xAB; 512];

    let n = 300u32;
    let syncs = node.sync_count();
    let start = Instant::now();
    for i in 0..n {
        store.apply(Batch::new().put(format!("seq/{i}"), value.clone())).await.unwrap();
    }
    let seq = start.elapsed();
    let seq_syncs = node.sync_count() - syncs;
    assert!(seq_syncs >= u64::from(n), "every sequential commit must be fsynced: {seq_syncs} syncs for {n}");

    let (tasks, per) = (32u32, 20u32);
    let syncs = node.sync_count();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let s = store.clone();
            let v = value.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    s.apply(Batch::new().put(format!("par/{t}/{i}"), v.clone())).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let par = start.elapsed();
    let par_syncs = node.sync_count() - syncs;
    let total = tasks * per;
    // openraft 0.9 appends (and so fsyncs) every entry on its own; concurrent writes share
    // entries through the group-commit queue, so they share fsyncs too — but every entry, and
    // so every acknowledged write, was synced before it was acknowledged.
    assert!(par_syncs >= 1 && par_syncs <= u64::from(total), "{par_syncs} syncs for {total} writes");
    println!(
        "BENCH single node, 512-byte values, fsync per commit: sequential {n} writes in {seq:?} = {:.0} writes/s \
         ({seq_syncs} fsyncs); {tasks} concurrent writers {total} writes in {par:?} = {:.0} writes/s ({par_syncs} fsyncs)",
        f64::from(n) / seq.as_secs_f64(),
        f64::from(total) / par.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_export_restores_atomically_on_every_node_and_damaged_files_change_nothing() {
    let c = Cluster::bootstrap(fast, 3).await;
    let leader = c.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let store = c.nodes[&leader].store();
    store.apply(Batch::new().put("keep/a", b"a-1".to_vec()).put("keep/b", b"b-1".to_vec())).await.unwrap();
    let index = c.node(leader).metrics().applied_index.unwrap();
    c.wait_converged(index).await;

    // Export on a follower (any node can), then change the data.
    let mut file = Vec::new();
    let covered = c.node(follower).export_snapshot(&mut file).await.unwrap();
    assert!(covered >= index);
    store
        .apply(Batch::new().put("keep/a", b"a-2".to_vec()).delete("keep/b").put("new/c", vec![3]))
        .await
        .unwrap();

    // A damaged file is refused before anything is proposed: state unchanged.
    let index = c.node(leader).metrics().applied_index.unwrap();
    c.wait_converged(index).await;
    let before = c.node(leader).digest().unwrap();
    for damage in [file.len() / 2, file.len() - 1] {
        let mut bad = file.clone();
        bad[damage] ^= 0x40;
        let err = c.node(leader).restore_snapshot(&bad).await.unwrap_err();
        assert!(matches!(err, RaftError::Snapshot(_)), "{err:?}");
    }
    assert!(matches!(
        c.node(leader).restore_snapshot(&file[..file.len() - 10]).await,
        Err(RaftError::Snapshot(_))
    ));
    assert_eq!(c.node(leader).digest().unwrap(), before, "a refused restore changed the state");
    // Only the leader restores.
    assert!(matches!(c.node(follower).restore_snapshot(&file).await, Err(RaftError::NotLeader { .. })));

    let mut changes = c.node(follower).subscribe();
    let commit = c.node(leader).restore_snapshot(&file).await.unwrap();
    c.wait_converged(commit).await;
    for n in c.nodes.values() {
        let s = n.store();
        let a = s.get("keep/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value.as_slice(), a.version),
            (&b"a-1"[..], coffer_raft::types::entry_version(commit, 0))
        );
        assert_eq!(s.get("keep/b").await.unwrap().unwrap().value, b"b-1");
        assert!(s.get("new/c").await.unwrap().is_none());
        assert_eq!(s.list("").await.unwrap(), vec!["keep/"], "the staging area must stay invisible");
    }
    let all = wait_for("Changes::All on the follower", DEADLINE, || {
        let got = changes.try_recv().ok();
        async move { got.filter(|c| matches!(c, Changes::All { .. })) }
    })
    .await;
    assert_eq!(all, Changes::All { version: coffer_raft::types::entry_version(commit, 0) });
    // Writes continue with higher versions.
    assert!(
        store.apply(Batch::new().put("keep/a", b"a-3".to_vec())).await.unwrap()
            > coffer_raft::types::entry_version(commit, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_tls_material_is_pending_until_it_gets_its_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tls::generate_ca("pending test CA").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = RaftConfig::new(1, tmp.path().join("n"), info_for(&addr));
    fast(&mut config);
    let node = RaftNode::open(config).await.unwrap();
    let server = tokio::spawn(serve_cluster(listener, Arc::clone(&node), None));
    assert!(!node.cluster_client().is_ready());

    // Sealed: the port closes every connection, and outgoing RPCs are unreachable at once.
    let member = tls::issue_node_cert(&ca, "member", &[]).unwrap();
    let err = raw_rpc(&addr, tls::client_config(&ca.cert_pem, &member).unwrap()).await;
    assert!(err.is_err(), "a pending node answered: {err:?}");
    let out: Result<serde_json::Value, _> =
        node.cluster_client().post_json(&addr, "/v1/raft/vote", &(), Duration::from_secs(1)).await;
    assert!(matches!(out, Err(coffer_raft::network::TransportError::Unreachable { .. })), "{out:?}");

    // Unsealed: TLS material arrives and the same port serves.
    node.set_tls(&ca.cert_pem, &tls::issue_node_cert(&ca, "node-1", &[]).unwrap()).unwrap();
    let status = raw_rpc(&addr, tls::client_config(&ca.cert_pem, &member).unwrap()).await.unwrap();
    // Served over TLS; a pristine, not yet admitted node then refuses the RPC itself (R13).
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    // Sealing again drops it.
    node.clear_tls();
    assert!(raw_rpc(&addr, tls::client_config(&ca.cert_pem, &member).unwrap()).await.is_err());
    server.abort();
}

/// Lease reads: on a healthy cluster the leader answers read indexes from its lease (no
/// heartbeat round), and followers' linearizable reads still see the latest write. The lease
/// needs a majority of the voters *other than the leader*: with one of two followers gone, reads
/// still succeed but through heartbeat rounds only; with both gone, they fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_reads_need_a_majority_of_the_other_voters() {
    let mut c = Cluster::bootstrap(fast, 3).await;
    let leader = c.wait_leader().await;
    let followers: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();
    c.nodes[&leader].store().apply(Batch::new().put("sys/a", b"one".to_vec())).await.unwrap();
    let follower = c.nodes[&followers[0]].store();
    wait_for("a read answered from the leader's lease", DEADLINE, || {
        let f = follower.clone();
        let l = Arc::clone(c.node(leader));
        async move {
            f.linearize().await.ok()?;
            (l.lease_reads() > 0).then_some(())
        }
    })
    .await;
    for i in 0..20u8 {
        let v = c.nodes[&leader].store().apply(Batch::new().put("sys/a", vec![i])).await.unwrap();
        follower.linearize().await.unwrap();
        let e = follower.get("sys/a").await.unwrap().unwrap();
        assert_eq!((e.value, e.version), (vec![i], v), "a follower read after the barrier missed a write");
    }

    // One follower gone: once its last acknowledgement is out of the window, no lease.
    c.kill(followers[1]).await;
    let leader_store = c.nodes[&leader].store();
    wait_for("reads without the lease", DEADLINE, || {
        let s = leader_store.clone();
        let l = Arc::clone(c.node(leader));
        async move {
            let before = l.lease_reads();
            s.linearize().await.ok()?;
            (l.lease_reads() == before).then_some(())
        }
    })
    .await;
    let before = c.node(leader).lease_reads();
    for _ in 0..10 {
        leader_store.linearize().await.unwrap();
        follower.linearize().await.unwrap();
    }
    assert_eq!(c.node(leader).lease_reads(), before, "a lease held with one of two followers down");

    // Both followers gone: the leader refuses reads.
    drop(follower);
    c.kill(followers[0]).await;
    wait_for("the cut-off leader to refuse reads", DEADLINE, || {
        let s = leader_store.clone();
        async move { s.linearize().await.err().map(|_| ()) }
    })
    .await;
    assert_eq!(c.node(leader).lease_reads(), before);
}

/// Readers woken together on the worker thread (as HTTP requests read in one poll of the
/// sockets are) share a read-barrier round: the round waits for the ready readers to join
/// before it closes, instead of running ahead of them with only the first. One worker, as a
/// server pinned to one core has.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn follower_reads_woken_together_share_one_round() {
    const READERS: usize = 16;
    const ROUNDS_EACH: usize = 20;
    let c = Cluster::bootstrap(fast, 3).await;
    let leader = c.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    c.nodes[&leader].store().apply(Batch::new().put("sys/a", b"one".to_vec())).await.unwrap();
    let store = c.nodes[&follower].store();
    store.linearize().await.unwrap();

    let before = c.node(follower).read_rounds();
    let go = Arc::new(tokio::sync::Barrier::new(READERS));
    let tasks: Vec<_> = (0..READERS)
        .map(|_| {
            let (s, go) = (store.clone(), Arc::clone(&go));
            tokio::spawn(async move {
                for _ in 0..ROUNDS_EACH {
                    // All readers start each read in the same pass of the scheduler.
                    go.wait().await;
                    s.linearize().await?;
                }
                Ok::<(), StorageError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let rounds = c.node(follower).read_rounds() - before;
    let reads = READERS * ROUNDS_EACH;
    println!("{reads} follower reads, {READERS} at a time, took {rounds} rounds");
    // Each batch should take one round (no round is in flight when a batch starts: every
    // reader finished the last one). Before the round waited for ready readers, the first
    // reader's round ran alone, ahead of the others, and every batch took two.
    assert!(
        rounds as usize <= ROUNDS_EACH * 3 / 2,
        "readers woken together must share a round: {rounds} rounds for {reads} reads"
    );
}
