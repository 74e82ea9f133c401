//! The per-cluster certificate authority, kept behind the barrier.
//!
//! Created once, on the leader, at the first unseal after init (`core/cluster/ca`, a versioned
//! JSON record: the CA certificate and its private key). Every unsealed member reads it and
//! issues its own node certificate (in memory only); a joining node, which has no data yet,
//! gets its certificate from the leader in the join answer. A node without a certificate from
//! this CA cannot open a connection to the cluster port (mutual TLS).

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use coffer_raft::tls::{self, ClusterCa, NodeCert, SecretPem};
use coffer_storage::{Barrier, Batch};

use crate::core::error::{Error, Result};

/// Storage key of the CA record (behind the barrier).
pub const CA_PATH: &str = "core/cluster/ca";
/// Format version of the CA record.
const CA_RECORD_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct CaRecord {
    v: u8,
    common_name: String,
    cert_pem: String,
    key_pem: String,
}

impl Drop for CaRecord {
    fn drop(&mut self) {
        self.key_pem.zeroize();
    }
}

fn tls_error(e: coffer_raft::RaftError) -> Error {
    Error::internal(format!("cluster TLS: {e}"))
}

/// Reads the CA, if one was created.
pub async fn load(barrier: &Barrier) -> Result<Option<ClusterCa>> {
    let Some(e) = barrier.get(CA_PATH).await? else { return Ok(None) };
    let mut rec: CaRecord = serde_json::from_slice(&e.value)
        .map_err(|err| Error::internal(format!("corrupt cluster CA record: {err}")))?;
    if rec.v != CA_RECORD_VERSION {
        return Err(Error::internal(format!("unsupported cluster CA record version {}", rec.v)));
    }
    let key = std::mem::take(&mut rec.key_pem);
    Ok(Some(ClusterCa {
        common_name: std::mem::take(&mut rec.common_name),
        cert_pem: std::mem::take(&mut rec.cert_pem),
        key_pem: SecretPem::new(key),
    }))
}

/// Reads the CA, creating it when there is none (only the leader can write; two creators race
/// on a precondition and the loser reads the winner's).
pub async fn load_or_create(barrier: &Barrier, cluster_id: &str) -> Result<ClusterCa> {
    if let Some(ca) = load(barrier).await? {
        return Ok(ca);
    }
    let ca = tls::generate_ca(&format!("coffer cluster {cluster_id}")).map_err(tls_error)?;
    let rec = CaRecord {
        v: CA_RECORD_VERSION,
        common_name: ca.common_name.clone(),
        cert_pem: ca.cert_pem.clone(),
        key_pem: ca.key_pem.expose().to_owned(),
    };
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&rec)?);
    match barrier.try_apply(Batch::new().put(CA_PATH, bytes.to_vec()).require_absent(CA_PATH)).await? {
        Some(_) => Ok(ca),
        None => load(barrier).await?.ok_or_else(|| Error::internal("cluster CA vanished")),
    }
}

/// A node certificate for `node_name`, signed by `ca`.
pub fn issue(ca: &ClusterCa, node_name: &str) -> Result<NodeCert> {
    tls::issue_node_cert(ca, node_name, &[]).map_err(tls_error)
}
