//! The server's cluster glue: a coffer node as a member of a Raft cluster.
//!
//! Sits above the core and on top of the Raft crate (`coffer_raft`): it implements the core's
//! [`ClusterHooks`] (bootstrap at init, cluster TLS at unseal, the join handshake of [`join`])
//! and offers what the HTTP layer needs on a cluster: the leader's addresses, forwarding of
//! requests to the leader over the mutual-TLS cluster port ([`forward`]), and the operations
//! behind `sys/storage/raft/*`.
//!
//! Identity: the operator names a node (`node_id` in `storage "raft"`); the Raft id is derived
//! from that name (the first 8 bytes of its SHA-256), so a node restarted under its name keeps
//! its id, and a wiped node restarted under an old name is refused by the leader (R13).

pub mod admin;
pub mod ca;
pub mod forward;
pub mod join;
pub mod snapshot;
mod stats;

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use coffer_raft::tls::{NodeCert, SecretPem};
use coffer_raft::{NodeInfo, RaftNode};
use coffer_storage::keys::RootKey;
use coffer_storage::replication::Role;
use coffer_storage::Barrier;

use crate::core::cluster::{ClusterHooks, JoinTicket};
use crate::core::error::{Error, Result};
use crate::core::seal::{RECOVERY_CHECK_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH};
use crate::core::{ClusterInfo, Core, CLUSTER_PATH};

use self::join::{AnswerRequest, AnswerResponse, ChallengeRequest, ChallengeResponse};

/// The `errors` of a Vault-shaped error body, joined (or the body's start when it is not one).
fn leader_errors(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["errors"].as_array().map(|e| e.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join("; "))
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// The Raft node id of a node name.
pub fn node_id_of(name: &str) -> u64 {
    let h = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    // Zero is not a usable id for some tools; the odds of hitting it are 2^-64 anyway.
    u64::from_be_bytes(b).max(1)
}

/// A leader this node may join (`retry_join` in the configuration, or `sys/storage/raft/join`).
#[derive(Clone, Debug, Default)]
pub struct JoinTarget {
    /// The leader's API address (`https://10.0.0.1:8200`).
    pub leader_api_addr: String,
    /// PEM CA certificate to trust for the leader's API (empty: the system's roots).
    pub leader_ca_cert: Option<String>,
    pub non_voter: bool,
}

/// How this node behaves on a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Operator's node name.
    pub node_name: String,
    /// This node's API address as clients reach it.
    pub api_addr: String,
    /// This node's cluster address (`host:port`, mutual TLS).
    pub cluster_addr: String,
    /// Forward leader-bound requests to the leader (else answer 307).
    pub forwarding: bool,
    /// Serve reads locally without a read barrier unless a client asks for linearizable reads.
    pub stale_reads_by_default: bool,
    /// Leaders to try at start while the node is not a member of a cluster.
    pub retry_join: Vec<JoinTarget>,
}

/// A join in progress on this node.
struct PendingJoin {
    target: JoinTarget,
    challenge: ChallengeResponse,
}

/// This node as a cluster member.
pub struct ClusterNode {
    raft: Arc<RaftNode>,
    settings: ClusterSettings,
    core: OnceLock<Weak<Core>>,
    pending: Mutex<Option<PendingJoin>>,
    http: reqwest::Client,
    /// Forwarded requests and write latency, for `sys/metrics`.
    stats: stats::ClusterStats,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode").field("node", &self.settings.node_name).finish_non_exhaustive()
    }
}

pub(crate) fn raft_error(e: coffer_raft::RaftError) -> Error {
    use coffer_raft::RaftError as R;
    match e {
        R::NotLeader { leader } => Error::Standby { leader: leader.map(|l| l.api_addr) },
        R::IdInUse { .. } | R::AlreadyInitialized | R::Config(_) | R::Snapshot(_) => {
            Error::bad(e.to_string())
        }
        other => Error::Unavailable(other.to_string()),
    }
}

impl ClusterNode {
    /// The glue for `raft`, with the given settings.
    pub fn new(raft: Arc<RaftNode>, settings: ClusterSettings) -> Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("join client: {e}")))?;
        let stats = stats::ClusterStats::for_node(&raft);
        Ok(Arc::new(Self { raft, settings, core: OnceLock::new(), pending: Mutex::new(None), http, stats }))
    }

    /// Binds the glue to its core (once) and installs the core's hooks.
    pub fn attach(self: &Arc<Self>, core: &Arc<Core>) {
        let _ = self.core.set(Arc::downgrade(core));
        core.set_cluster_hooks(Arc::clone(self) as Arc<dyn ClusterHooks>);
    }

    pub(crate) fn core(&self) -> Result<Arc<Core>> {
        self.core
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }

    /// The Raft node.
    pub fn raft(&self) -> &Arc<RaftNode> {
        &self.raft
    }

    /// The settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Installs TLS material issued by `ca` for this node.
    fn install_tls(&self, ca_cert_pem: &str, cert: &NodeCert) -> Result<()> {
        self.raft.set_tls(ca_cert_pem, cert).map_err(|e| Error::internal(format!("cluster TLS: {e}")))
    }

    /// Waits (bounded) until `f` holds.
    async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
        let end = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(5);
        while !f() {
            if tokio::time::Instant::now() >= end {
                return Err(Error::Unavailable(format!("timed out waiting until {what}")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        Ok(())
    }

    // ---- joining side -------------------------------------------------------------------

    /// Asks `target` for a join challenge and keeps it: the node then waits for its unseal keys
    /// (or, with a static seal, joins at once). `sys/storage/raft/join` and `retry_join`.
    pub async fn request_join(self: &Arc<Self>, target: JoinTarget) -> Result<()> {
        let core = self.core()?;
        if core.is_initialized().await? && self.pending.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Err(Error::bad("node is already initialized; it cannot join another cluster"));
        }
        if self.raft.is_admitted() {
            return Err(Error::bad("node is already a member of a cluster"));
        }
        let url = format!(
            "{}/v1/sys/storage/raft/bootstrap/challenge",
            target.leader_api_addr.trim_end_matches('/')
        );
        let client = match &target.leader_ca_cert {
            Some(pem) if !pem.trim().is_empty() => {
                let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| Error::bad(format!("invalid leader_ca_cert: {e}")))?;
                reqwest::Client::builder()
                    .add_root_certificate(cert)
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| Error::internal(format!("join client: {e}")))?
            }
            _ => self.http.clone(),
        };
        let resp = client
            .post(&url)
            .json(&ChallengeRequest { server_id: self.settings.node_name.clone() })
            .send()
            .await
            .map_err(|e| {
                Error::Unavailable(format!("cannot reach the leader at {}: {e}", target.leader_api_addr))
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let reason = leader_errors(&body);
            let msg = format!("the node at {} refused the join: {reason}", target.leader_api_addr);
            return Err(if status.is_client_error() {
                Error::BadRequest(msg)
            } else {
                Error::Unavailable(msg)
            });
        }
        let challenge: ChallengeResponse = resp
            .json()
            .await
            .map_err(|e| Error::Unavailable(format!("bad join challenge from the leader: {e}")))?;
        tracing::info!(leader = %target.leader_api_addr, "received a join challenge; waiting for the unseal keys");
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(PendingJoin { target, challenge });
        // A static seal holds the key already: finish the join now.
        let weak = Arc::downgrade(&core);
        tokio::spawn(async move {
            if let Some(core) = weak.upgrade() {
                if let Err(e) = core.join_with_static_key().await {
                    tracing::warn!(error = %e, "joining with the static seal key failed");
                }
            }
        });
        Ok(())
    }

    /// Tries the configured `retry_join` leaders until one hands out a challenge; a node that
    /// is initialized or already a member does nothing.
    pub fn spawn_retry_join(self: &Arc<Self>) {
        self.spawn_join_retry(self.settings.retry_join.clone());
    }

    /// Tries `targets` in turn, every two seconds, until one hands out a challenge or the node
    /// is initialized or a member.
    pub fn spawn_join_retry(self: &Arc<Self>, targets: Vec<JoinTarget>) {
        if targets.is_empty() {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let Ok(core) = me.core() else { return };
                let initialized = core.is_initialized().await.unwrap_or(true);
                if initialized || me.raft.is_admitted() {
                    return;
                }
                for target in &targets {
                    match me.request_join(target.clone()).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::debug!(leader = %target.leader_api_addr, error = %e, "join attempt failed")
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }

    // ---- leader side -------------------------------------------------------------------

    fn require_leader(&self) -> Result<()> {
        if self.raft.role() == Role::Leader {
            return Ok(());
        }
        Err(Error::Standby { leader: self.raft.leader().map(|l| l.api_addr) })
    }

    /// `sys/storage/raft/bootstrap/challenge` on the leader.
    pub async fn challenge(&self, req: ChallengeRequest) -> Result<ChallengeResponse> {
        self.require_leader()?;
        if req.server_id.trim().is_empty() {
            return Err(Error::bad("no server id provided"));
        }
        // A member asking to join again lost its data (R13): refuse at once.
        let id = node_id_of(req.server_id.trim());
        if self.raft.metrics().nodes.contains_key(&id) {
            return Err(raft_error(coffer_raft::RaftError::IdInUse { node_id: id }));
        }
        let core = self.core()?;
        let active = core.active()?;
        let raw = core.barrier().raw();
        let seal_config = core.seal_config().await?.ok_or_else(|| Error::bad("Vault is not initialized"))?;
        let wrapped =
            raw.get(ROOT_KEY_PATH).await?.ok_or_else(|| Error::internal("wrapped root key missing"))?;
        let check = raw.get(RECOVERY_CHECK_PATH).await?.map(|e| B64.encode(e.value));
        let now = coffer_storage::clock::now();
        let cluster_id = active.cluster.id.clone();
        let challenge = core
            .barrier()
            .with_root_key(|root| join::issue_challenge(root, &cluster_id, req.server_id.trim(), now))??;
        Ok(ChallengeResponse {
            challenge,
            seal_config,
            wrapped_root_key: B64.encode(wrapped.value),
            recovery_check: check,
            cluster_id,
        })
    }

    /// `sys/storage/raft/bootstrap/answer` on the leader: verifies, issues the node's
    /// certificate, and adds the node as a voter (in the background).
    pub async fn answer(&self, req: AnswerRequest) -> Result<AnswerResponse> {
        self.require_leader()?;
        let core = self.core()?;
        let active = core.active()?;
        let now = coffer_storage::clock::now();
        let cluster_id = active.cluster.id.clone();
        let nonce =
            core.barrier().with_root_key(|root| join::verify_answer(root, &cluster_id, &req, now))??;
        let id = node_id_of(&req.server_id);
        if self.raft.metrics().nodes.contains_key(&id) {
            return Err(raft_error(coffer_raft::RaftError::IdInUse { node_id: id }));
        }
        let ca = ca::load(core.barrier()).await?.ok_or_else(|| Error::internal("cluster CA missing"))?;
        let cert = ca::issue(&ca, &req.server_id)?;
        let bundle = join::Bundle {
            ca_cert_pem: ca.cert_pem.clone(),
            node_cert_pem: cert.cert_pem.clone(),
            node_key_pem: cert.key_pem.expose().to_owned(),
        };
        let sealed = core.barrier().with_root_key(|root| join::seal_bundle(root, &nonce, &bundle))??;
        let info =
            NodeInfo { name: req.server_id.clone(), api_addr: req.api_addr, cluster_addr: req.cluster_addr };
        let raft = Arc::clone(&self.raft);
        let non_voter = req.non_voter;
        tokio::spawn(async move {
            let r =
                if non_voter { raft.add_learner(id, info).await } else { raft.join_voter(id, info).await };
            match r {
                Ok(()) => tracing::info!(node = id, "node joined the cluster"),
                Err(e) => tracing::warn!(node = id, error = %e, "adding a joining node failed"),
            }
        });
        Ok(AnswerResponse { bundle: sealed })
    }

    /// Whether a joining node's store holds the replicated records it needs to unseal.
    async fn has_replicated_keys(&self) -> bool {
        let Ok(core) = self.core() else { return false };
        let raw = core.barrier().raw();
        for key in [SEAL_CONFIG_PATH, ROOT_KEY_PATH, coffer_storage::barrier::KEYRING_PATH, CLUSTER_PATH] {
            if !matches!(raw.get(key).await, Ok(Some(_))) {
                return false;
            }
        }
        true
    }
}

#[async_trait]
impl ClusterHooks for ClusterNode {
    async fn before_init(&self) -> Result<()> {
        if !self.raft.is_admitted() {
            self.raft.initialize_single().await.map_err(raft_error)?;
        }
        let raft = Arc::clone(&self.raft);
        Self::wait_until("this node leads the new cluster", Duration::from_secs(15), || {
            raft.role() == Role::Leader
        })
        .await
    }

    async fn after_unseal(&self, barrier: &Arc<Barrier>) -> Result<()> {
        let cluster: ClusterInfo = match barrier.get(CLUSTER_PATH).await? {
            Some(e) => serde_json::from_slice(&e.value)
                .map_err(|err| Error::internal(format!("corrupt cluster info: {err}")))?,
            None => return Err(Error::internal("cluster info missing")),
        };
        // The CA is created by the leader; a standby that unseals first waits for it.
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        let ca = loop {
            if let Some(ca) = ca::load(barrier).await? {
                break ca;
            }
            if self.raft.role() == Role::Leader {
                break ca::load_or_create(barrier, &cluster.id).await?;
            }
            if tokio::time::Instant::now() >= end {
                return Err(Error::Unavailable("the cluster CA has not replicated to this node yet".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let cert = ca::issue(&ca, &self.settings.node_name)?;
        self.install_tls(&ca.cert_pem, &cert)
    }

    async fn before_seal(&self) {
        if self.raft.role() == Role::Leader {
            if let Err(e) = self.raft.step_down().await {
                tracing::warn!(error = %e, "could not hand leadership over before sealing");
            }
        }
        self.raft.clear_tls();
    }

    fn join_ticket(&self) -> Option<JoinTicket> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let p = pending.as_ref()?;
        Some(JoinTicket {
            seal_config: p.challenge.seal_config.clone(),
            wrapped_root_key: B64.decode(&p.challenge.wrapped_root_key).ok()?,
            recovery_check: p.challenge.recovery_check.as_ref().and_then(|c| B64.decode(c).ok()),
        })
    }

    async fn complete_join(&self, root: &RootKey) -> Result<()> {
        let (target, challenge) = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let p = pending.as_ref().ok_or_else(|| Error::bad("no join in progress"))?;
            (p.target.clone(), p.challenge.clone())
        };
        let answer = join::answer_challenge(root, &challenge.cluster_id, &challenge.challenge)
            .map_err(|_| Error::bad("unseal failed, invalid key"))?;
        let req = AnswerRequest {
            server_id: self.settings.node_name.clone(),
            challenge: challenge.challenge.clone(),
            answer: answer.clone(),
            api_addr: self.settings.api_addr.clone(),
            cluster_addr: self.settings.cluster_addr.clone(),
            non_voter: target.non_voter,
        };
        let url =
            format!("{}/v1/sys/storage/raft/bootstrap/answer", target.leader_api_addr.trim_end_matches('/'));
        let resp = self.http.post(&url).json(&req).send().await.map_err(|e| {
            Error::Unavailable(format!("cannot reach the leader at {}: {e}", target.leader_api_addr))
        })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(Error::bad(format!(
                "the leader refused the join ({status}): {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        let answered: AnswerResponse = resp
            .json()
            .await
            .map_err(|e| Error::Unavailable(format!("bad join answer from the leader: {e}")))?;
        let bundle = join::open_bundle(root, &answer, &answered.bundle)?;
        let cert = NodeCert {
            cert_pem: bundle.node_cert_pem.clone(),
            key_pem: SecretPem::new(bundle.node_key_pem.clone()),
        };
        self.install_tls(&bundle.ca_cert_pem, &cert)?;
        self.raft.accept_join().await.map_err(raft_error)?;
        // The leader now replicates to this node; unseal once the keys arrived.
        let end = tokio::time::Instant::now() + Duration::from_secs(120);
        while !self.has_replicated_keys().await {
            if tokio::time::Instant::now() >= end {
                return Err(Error::Unavailable(
                    "joined, but the cluster's data has not arrived yet; unseal again".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!(leader = %target.leader_api_addr, "joined the cluster");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id_of("node1"), node_id_of("node1"));
        assert_ne!(node_id_of("node1"), node_id_of("node2"));
        assert_ne!(node_id_of(""), 0);
    }
}
